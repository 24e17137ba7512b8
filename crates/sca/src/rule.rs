//! The rule strings of a check (`f:/etc/x -> r:^a && !r:b`), parsed once at load into a
//! [`Rule`] whose regexes are compiled, so evaluation never meets a syntax error.
//!
//! Grammar (Wazuh SCA): `[not ]TYPE:TARGET[ -> PATTERN]`, TYPE one of `f c d p r`; a PATTERN is
//! minterms joined by ` && `, each optionally `!`-negated: `r:REGEX`, `n:REGEX compare OP N`, or a
//! literal that must equal a whole line. For `d:` the pattern is `NAME_PATTERN[ -> CONTENT]`.

use regex::bytes::{Regex, RegexBuilder};
use std::fmt;

/// Compiled-program bound per regex: a policy's regex cannot make the engine build an automaton
/// of unbounded size (matching itself is linear in the input, whatever the pattern).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// One parsed rule of a check or of a policy's requirements.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The text as written (after variable expansion), for evidence and reports.
    pub text: String,
    /// `not ` in front: the rule's match is inverted (not applicable stays not applicable).
    pub negated: bool,
    pub kind: RuleKind,
}

#[derive(Debug, Clone)]
pub enum RuleKind {
    /// `f:` alternatives (comma separated); a `*` in a path's last part is a glob (Hostward's
    /// extension, for drop-in folders such as `/etc/ssh/sshd_config.d/*.conf`).
    File {
        paths: Vec<String>,
        content: Option<Pattern>,
    },
    /// `c:` a shell command line, its stdout and stderr matched line by line.
    Command {
        command: String,
        content: Option<Pattern>,
    },
    /// `d:` directories (comma separated), searched recursively for a file name and content.
    Dir {
        paths: Vec<String>,
        name: Option<Pattern>,
        content: Option<Pattern>,
    },
    /// `p:` a running process by name.
    Process { name: String },
    /// `r:` a Windows registry key: never applicable on the hosts Hostward runs on.
    Registry { key: String },
}

/// A content pattern: minterms that must all hold on one same line.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub text: String,
    pub minterms: Vec<Minterm>,
}

#[derive(Debug, Clone)]
pub struct Minterm {
    pub negated: bool,
    pub test: Test,
}

#[derive(Debug, Clone)]
pub enum Test {
    Regex(Regex),
    /// The first capture group (the whole match without one) read as an integer, compared.
    Numeric {
        regex: Regex,
        op: CmpOp,
        value: i64,
    },
    /// The whole line must equal it.
    Literal(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
}

impl CmpOp {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "<" => Self::Lt,
            "<=" => Self::Le,
            "==" => Self::Eq,
            "!=" => Self::Ne,
            ">=" => Self::Ge,
            ">" => Self::Gt,
            _ => return None,
        })
    }

    pub fn holds(self, a: i64, b: i64) -> bool {
        match self {
            Self::Lt => a < b,
            Self::Le => a <= b,
            Self::Eq => a == b,
            Self::Ne => a != b,
            Self::Ge => a >= b,
            Self::Gt => a > b,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Test {
    /// Whether this test holds on one line.
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Test::Regex(r) => r.is_match(line.as_bytes()),
            Test::Literal(l) => line == l,
            Test::Numeric { regex, op, value } => {
                let Some(caps) = regex.captures(line.as_bytes()) else {
                    return false;
                };
                let m = caps.get(1).or_else(|| caps.get(0));
                // A capture that is not a number (or overflows) is a line that does not match,
                // rather than an error: the line is simply not the one the rule is about.
                m.and_then(|m| std::str::from_utf8(m.as_bytes()).ok())
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .is_some_and(|n| op.holds(n, *value))
            }
        }
    }
}

impl Minterm {
    pub fn matches(&self, line: &str) -> bool {
        self.test.matches(line) != self.negated
    }
}

impl Rule {
    /// Parses one rule string (variables already expanded). The error says what is wrong in it,
    /// without the location, which the caller (the policy loader) adds.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let trimmed = text.trim();
        let (negated, body) = match trimmed.strip_prefix("not ") {
            Some(rest) => (true, rest.trim_start()),
            None => (false, trimmed),
        };
        if body.is_empty() || trimmed == "not" {
            return Err("empty rule".into());
        }
        let Some((ty, rest)) = body.split_once(':') else {
            return Err(format!(
                "no rule type: expected f:, c:, d:, p: or r: at the start of {:?}",
                clip(body, 40)
            ));
        };
        let (target, pattern) = match rest.split_once(" -> ") {
            Some((t, p)) => (t.trim(), Some(p.trim())),
            None => (rest.trim(), None),
        };
        if target.is_empty() {
            return Err(format!("{ty}: rule without a target"));
        }
        let kind = match ty {
            "f" => {
                let content = match pattern {
                    Some(p) => {
                        if p.contains(" -> ") {
                            return Err("f: rule with more than one ' -> '".into());
                        }
                        Some(Pattern::parse(p)?)
                    }
                    None => None,
                };
                RuleKind::File {
                    paths: split_paths(target)?,
                    content,
                }
            }
            "c" => RuleKind::Command {
                command: target.to_string(),
                content: pattern.map(Pattern::parse).transpose()?,
            },
            "d" => {
                let (name, content) = match pattern {
                    Some(p) => match p.split_once(" -> ") {
                        Some((n, c)) => (
                            Some(Pattern::parse(n.trim())?),
                            Some(Pattern::parse(c.trim())?),
                        ),
                        None => (Some(Pattern::parse(p)?), None),
                    },
                    None => (None, None),
                };
                RuleKind::Dir {
                    paths: split_paths(target)?,
                    name,
                    content,
                }
            }
            "p" => {
                if pattern.is_some() {
                    return Err("p: rules take no ' -> ' pattern".into());
                }
                RuleKind::Process {
                    name: target.to_string(),
                }
            }
            "r" => RuleKind::Registry {
                key: target.to_string(),
            },
            other => return Err(format!("unknown rule type \"{}:\"", clip(other, 20))),
        };
        Ok(Rule {
            text: trimmed.to_string(),
            negated,
            kind,
        })
    }
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let mut minterms = Vec::new();
        for (i, part) in text.split(" && ").enumerate() {
            let part = part.trim();
            let (negated, body) = match part.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, part),
            };
            if body.is_empty() {
                return Err(format!(
                    "empty pattern at term {} of {:?}",
                    i + 1,
                    clip(text, 60)
                ));
            }
            let test = if let Some(re) = body.strip_prefix("r:") {
                Test::Regex(compile(re)?)
            } else if let Some(expr) = body.strip_prefix("n:") {
                parse_numeric(expr)?
            } else {
                Test::Literal(body.to_string())
            };
            minterms.push(Minterm { negated, test });
        }
        Ok(Pattern {
            text: text.to_string(),
            minterms,
        })
    }
}

fn parse_numeric(expr: &str) -> Result<Test, String> {
    let Some((re, cmp)) = expr.rsplit_once(" compare ") else {
        return Err(format!(
            "n: pattern without ' compare OP VALUE': {:?}",
            clip(expr, 60)
        ));
    };
    let mut words = cmp.split_whitespace();
    let (Some(op), Some(value), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!(
            "n: pattern: expected 'compare OP VALUE', found 'compare {}'",
            clip(cmp, 40)
        ));
    };
    let Some(op) = CmpOp::parse(op) else {
        return Err(format!(
            "n: pattern: unknown comparison {:?} (one of <, <=, ==, !=, >=, >)",
            clip(op, 10)
        ));
    };
    let value = value
        .parse::<i64>()
        .map_err(|_| format!("n: pattern: {:?} is not an integer", clip(value, 20)))?;
    Ok(Test::Numeric {
        regex: compile(re)?,
        op,
        value,
    })
}

/// Compiles a policy regex as Wazuh 5 does (PCRE2 without UTF: byte-wise, ASCII classes,
/// case-insensitive) but with the linear-time `regex` crate: what it refuses (backreferences,
/// look-around) is a load error with the reason.
fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern.is_empty() {
        return Err("empty regex".into());
    }
    RegexBuilder::new(&from_pcre(pattern))
        .unicode(false)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let full = e.to_string();
            // regex's syntax errors span lines (the pattern, a caret line, "error: ...");
            // our errors are one line, so keep the reason.
            let reason = full
                .lines()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .map(str::to_string)
                .unwrap_or_else(|| full.lines().last().unwrap_or("").trim().to_string());
            format!("bad regex {:?}: {reason}", clip(pattern, 60))
        })
}

/// The PCRE spellings Wazuh policies use that the `regex` crate spells otherwise: an escaped
/// character that needs no escape (`\/`, `\ `, `\"`), `\h`/`\H` (horizontal space), and a `{`
/// that starts no repetition (`${var}`), which PCRE takes literally.
fn from_pcre(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut in_class = false;
    let mut in_repetition = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                let n = chars[i + 1];
                i += 2;
                match n {
                    'h' if in_class => out.push_str(" \\t"),
                    'h' => out.push_str("[ \\t]"),
                    'H' if !in_class => out.push_str("[^ \\t\\n]"),
                    _ if n.is_ascii_punctuation() || n == ' ' => {
                        if regex::escape(n.encode_utf8(&mut [0; 4])).starts_with('\\') {
                            out.push('\\');
                        }
                        out.push(n);
                    }
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A ']' first in a class (or after '^') is literal.
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '{' if !in_class => {
                if starts_repetition(&chars[i..]) {
                    in_repetition = true;
                    out.push('{');
                } else {
                    out.push_str("\\{");
                }
            }
            '}' if !in_class => {
                if in_repetition {
                    in_repetition = false;
                    out.push('}');
                } else {
                    out.push_str("\\}");
                }
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// `{n}`, `{n,}` or `{n,m}` at the start of `s`.
fn starts_repetition(s: &[char]) -> bool {
    let mut i = 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while s.get(*i).is_some_and(char::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if s.get(i) == Some(&',') {
        i += 1;
        digits(&mut i);
    }
    s.get(i) == Some(&'}')
}

fn split_paths(target: &str) -> Result<Vec<String>, String> {
    let paths: Vec<String> = target
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if paths.is_empty() {
        return Err("no path".into());
    }
    Ok(paths)
}

/// At most `max` characters of `s`, on a character boundary.
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Rule {
        Rule::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn err(text: &str) -> String {
        match Rule::parse(text) {
            Ok(r) => panic!("{text:?} parsed: {r:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn file_existence_and_alternatives() {
        let r = ok("f:/etc/passwd");
        assert!(!r.negated);
        let RuleKind::File { paths, content } = r.kind else {
            panic!()
        };
        assert_eq!(paths, ["/etc/passwd"]);
        assert!(content.is_none());
        let RuleKind::File { paths, .. } = ok("f:/a/b, /c/d ,/e").kind else {
            panic!()
        };
        assert_eq!(paths, ["/a/b", "/c/d", "/e"]);
        assert!(ok("not f:/etc/hosts.equiv").negated);
        assert!(ok("  not   f:/x  ").negated);
    }

    #[test]
    fn file_content_minterms() {
        let RuleKind::File { content, .. } =
            ok(r"f:/etc/ssh/sshd_config -> !r:^# && r:Port && !r:\s*\t*22$").kind
        else {
            panic!()
        };
        let p = content.unwrap();
        assert_eq!(p.minterms.len(), 3);
        assert!(p.minterms[0].negated && !p.minterms[1].negated && p.minterms[2].negated);
        assert!(p.minterms.iter().all(|m| matches!(m.test, Test::Regex(_))));
        // Case-insensitive, as Wazuh 5's PCRE2_CASELESS.
        assert!(p.minterms[1].matches("port 2222"));
    }

    #[test]
    fn numeric_comparisons() {
        for (op, line, want) in [
            ("<=", "MaxAuthTries 4", true),
            ("<=", "MaxAuthTries 5", false),
            ("<", "MaxAuthTries 3", true),
            ("==", "MaxAuthTries 4", true),
            ("!=", "MaxAuthTries 4", false),
            (">=", "MaxAuthTries 4", true),
            (">", "MaxAuthTries 4", false),
            ("<=", "MaxAuthTries x", false),
        ] {
            let rule = ok(&format!(
                r"f:/etc/ssh/sshd_config -> n:^\s*MaxAuthTries\s+(\d+|x) compare {op} 4"
            ));
            let RuleKind::File {
                content: Some(p), ..
            } = rule.kind
            else {
                panic!()
            };
            assert_eq!(p.minterms[0].matches(line), want, "{op} {line}");
        }
        let RuleKind::Command {
            command,
            content: Some(p),
        } = ok(r"c:sshd -T -> n:^maxauthtries\s+(\d+) compare <= 4").kind
        else {
            panic!()
        };
        assert_eq!(command, "sshd -T");
        assert!(p.minterms[0].matches("maxauthtries 3"));
        // Negative numbers and no capture group (whole match).
        let RuleKind::File {
            content: Some(p), ..
        } = ok(r"f:/x -> n:-?\d+ compare < 0").kind
        else {
            panic!()
        };
        assert!(p.minterms[0].matches("-5"));
    }

    #[test]
    fn numeric_errors_name_the_part() {
        assert!(err(r"f:/x -> n:(\d+) compare => 5").contains("unknown comparison"));
        assert!(err(r"f:/x -> n:(\d+) compare <= five").contains("not an integer"));
        assert!(err(r"f:/x -> n:(\d+)").contains("compare"));
        assert!(err(r"f:/x -> n:(\d+) compare <=").contains("compare OP VALUE"));
    }

    #[test]
    fn directory_forms() {
        let RuleKind::Dir {
            paths,
            name,
            content,
        } = ok(r"d:/etc/cron.d,/etc/cron.daily -> r:^\w+$ -> r:wget").kind
        else {
            panic!()
        };
        assert_eq!(paths, ["/etc/cron.d", "/etc/cron.daily"]);
        assert!(name.unwrap().minterms[0].matches("job"));
        assert!(content.unwrap().minterms[0].matches("wget http://x"));
        let RuleKind::Dir { name, content, .. } = ok("d:/etc/sudoers.d -> README").kind else {
            panic!()
        };
        assert!(matches!(name.unwrap().minterms[0].test, Test::Literal(ref l) if l == "README"));
        assert!(content.is_none());
        let RuleKind::Dir { name, .. } = ok("d:/var/log").kind else {
            panic!()
        };
        assert!(name.is_none());
    }

    #[test]
    fn process_command_registry() {
        assert!(matches!(ok("p:sshd").kind, RuleKind::Process { ref name } if name == "sshd"));
        assert!(ok("not p:avahi-daemon").negated);
        assert!(matches!(
            ok("c:systemctl is-enabled cups -> r:^enabled").kind,
            RuleKind::Command { ref command, content: Some(_) } if command == "systemctl is-enabled cups"
        ));
        assert!(matches!(
            ok("c:true").kind,
            RuleKind::Command { content: None, .. }
        ));
        assert!(matches!(
            ok(r"r:HKEY_LOCAL_MACHINE\System -> Value -> 1").kind,
            RuleKind::Registry { .. }
        ));
    }

    #[test]
    fn literal_line_match() {
        let RuleKind::File {
            content: Some(p), ..
        } = ok("f:/proc/sys/net/ipv4/ip_forward -> 0").kind
        else {
            panic!()
        };
        assert!(p.minterms[0].matches("0"));
        assert!(!p.minterms[0].matches("10"));
    }

    #[test]
    fn bad_rules_say_why() {
        assert_eq!(err("x:/etc/passwd"), "unknown rule type \"x:\"");
        assert!(err("").contains("empty"));
        assert!(err("not ").contains("empty"));
        assert!(err("/etc/passwd").contains("no rule type"));
        assert!(err("f:").contains("without a target"));
        assert!(err("f: -> r:x").contains("without a target"));
        assert!(err("f:/x -> r:a &&  && r:b").contains("empty pattern"));
        assert!(err("f:/x -> !").contains("empty pattern"));
        assert!(err("f:/x -> r:").contains("empty regex"));
        assert!(err("f:/x -> r:a -> r:b").contains("more than one"));
        assert!(err("p:sshd -> r:x").contains("no ' -> '"));
        assert!(err("f:, ,").contains("no path"));
    }

    #[test]
    fn regexes_the_engine_refuses_are_load_errors() {
        let e = err(r"f:/x -> r:(a)\1");
        assert!(e.contains("backreferences"), "{e}");
        let e = err(r"f:/x -> r:^(?!no)");
        assert!(e.contains("look-around"), "{e}");
        let e = err(r"f:/x -> r:[a-");
        assert!(e.starts_with("bad regex"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        // Over the size limit: a bounded repetition that would compile to a huge program.
        let e = err(r"f:/x -> r:(\w{1000}){1000}");
        assert!(e.starts_with("bad regex"), "{e}");
    }

    #[test]
    fn wazuh_style_regexes_compile() {
        for r in [
            r"f:/etc/passwd -> !r:^# && !r:^root: && r:^[\w@-]+:[\w@-]+:0:",
            r"f:/etc/login.defs -> n:^\s*PASS_MAX_DAYS\s*\t*(\d+) compare <= 365",
            r"c:stat -Lc '%a %u %g' /etc/ssh/sshd_config -> r:^600\s+0\s+0$",
            r"f:/etc/sysctl.conf -> r:^\s*net\.ipv4\.ip_forward\s*=\s*0\s*$",
            r"c:sysctl net.ipv4.ip_forward -> r:=\s*0$",
            r"f:/etc/x -> r:\.conf$ && r:\s\d\w\t",
        ] {
            ok(r);
        }
    }

    #[test]
    fn pcre_spellings_are_translated() {
        assert_eq!(from_pcre(r"\/sbin\/x"), "/sbin/x");
        assert_eq!(from_pcre(r"a\ b\.c\-"), r"a b\.c\-");
        assert_eq!(from_pcre(r"x\Hy\h"), r"x[^ \t\n]y[ \t]");
        assert_eq!(from_pcre(r"[\h,]"), r"[ \t,]");
        assert_eq!(from_pcre(r"\d{2,3}x{4}"), r"\d{2,3}x{4}");
        assert_eq!(from_pcre(r"${grub_cfg}"), r"$\{grub_cfg\}");
        assert_eq!(from_pcre(r"[{}]"), r"[{}]");
        assert_eq!(from_pcre(r"[]a]"), r"[\]a]");
        assert_eq!(from_pcre(r"[{]x}a{2}}"), r"[{]x\}a{2}\}");
        for p in [r"a}", r"[{]x}", r"{", r"x{,3}", r"\\{1}", r"[^]x]{2}"] {
            compile(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
        // The regexes of Wazuh's own policies these stand for compile and match.
        // ($ is an anchor there, in PCRE as here: it compiles, and matches what PCRE would.)
        let re = compile(r#"if \[ "x${grub_cfg}" != "x" \]; then"#).unwrap();
        assert!(!re.is_match(br#"if [ "x${grub_cfg}" != "x" ]; then"#));
        let re = compile(r"\/sbin\/(auditctl|auditd)\H\*\b").unwrap();
        assert!(re.is_match(b"/sbin/auditdX*y"));
        assert!(!re.is_match(b"/sbin/auditd *y"));
    }

    #[test]
    fn classes_are_ascii_as_in_pcre() {
        // Many \w in alternation: with Unicode classes this is megabytes of program.
        let alts = vec![r"-\w\w\w\ww\w\w\w\w"; 200].join("|");
        compile(&alts).unwrap();
        let re = compile(r"^\w+$").unwrap();
        assert!(re.is_match(b"abc_1"));
        assert!(!re.is_match("é".as_bytes()));
    }

    #[test]
    fn clip_is_char_safe() {
        assert_eq!(clip("héllo", 2), "hé...");
        assert_eq!(clip("ab", 2), "ab");
    }
}
