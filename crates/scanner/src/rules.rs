//! Compiling rule sources: the shipped set, then each imported file in a namespace of its own
//! (its rule names cannot clash with ours). A source that does not compile is refused with
//! its name, line and column, and the rules in force stay what they were: compiling builds a
//! new set, it never changes one.

/// The rules Hostward ships (content/yara/hostward.yar), kept masked in the binary by
/// build.rs so the binary does not carry the strings the rules look for.
pub fn shipped() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    const MASKED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hostward.yar.masked"));
    TEXT.get_or_init(|| {
        String::from_utf8(MASKED.iter().map(|b| b ^ 0xA5).collect()).expect("the rules are UTF-8")
    })
}
pub const SHIPPED_NAME: &str = "hostward.yar";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The source's name (its file name, as imported).
    pub source: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.source, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for RuleError {}

/// The first `line`/`column` pair in a compile error's JSON form (its first label).
fn position(v: &serde_json::Value) -> Option<(usize, usize)> {
    match v {
        serde_json::Value::Object(m) => {
            if let (Some(l), Some(c)) = (
                m.get("line").and_then(|l| l.as_u64()),
                m.get("column").and_then(|c| c.as_u64()),
            ) {
                return Some((l as usize, c as usize));
            }
            m.values().find_map(position)
        }
        serde_json::Value::Array(a) => a.iter().find_map(position),
        _ => None,
    }
}

fn rule_error(source: &str, e: &yara_x::errors::CompileError) -> RuleError {
    let (line, column) = serde_json::to_value(e)
        .ok()
        .as_ref()
        .and_then(position)
        .unwrap_or((0, 0));
    let text = e.to_string();
    let message = text
        .lines()
        .next()
        .unwrap_or("does not compile")
        .trim_start_matches("error")
        .trim_start_matches(|c: char| c == '[' || c.is_ascii_alphanumeric())
        .trim_start_matches([']', ':', ' '])
        .to_string();
    RuleError {
        source: source.to_string(),
        line,
        column,
        message,
    }
}

/// A namespace name from a source name: letters, digits and `_`.
fn namespace(name: &str) -> String {
    let ns: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("user_{ns}")
}

/// The compiled rules, in groups yara-x scans a file with one pass each: every shipped rule
/// alone, and the imported files together. Why: yara-x searches for the atoms of every rule
/// in a set with one automaton, SIMD (Teddy) up to 64 atoms and a byte-at-a-time one past
/// that; our rule set together is past it (nocase strings and regex alternations count many
/// atoms), a shipped rule alone is not, and ten SIMD passes cost less than one slow one
/// (`examples/rule_cost.rs` shows both). Imported files stay one group: their rules may
/// refer to each other. A group of `scope = "text"` rules starts each condition with the ELF
/// test that makes it false on an ELF file, so it is not run on one.
#[derive(Debug)]
pub struct RuleSet {
    pub groups: Vec<Group>,
}

#[derive(Debug)]
pub struct Group {
    pub rules: yara_x::Rules,
    /// Whether the group can match an ELF file.
    pub elf: bool,
}

impl RuleSet {
    /// Rules in all groups.
    pub fn count(&self) -> usize {
        self.groups.iter().map(|g| g.rules.iter().count()).sum()
    }

    /// The rule called `identifier`, in whichever group.
    pub fn find(&self, identifier: &str) -> Option<yara_x::Rule<'_, '_>> {
        self.groups
            .iter()
            .find_map(|g| g.rules.iter().find(|r| r.identifier() == identifier))
    }
}

/// A shipped rule's source, padded with the lines before it so an error names the file's line.
pub struct ShippedRule {
    pub name: String,
    pub source: String,
    /// `scope = "text"`: cannot match an ELF file.
    pub text_only: bool,
}

/// The shipped source cut into its rules (each starts at a line beginning with `rule `); the
/// comment before the first is left out.
pub fn shipped_rules() -> Vec<ShippedRule> {
    let mut out = Vec::new();
    let mut chunk: Option<(usize, String)> = None;
    let flush = |chunk: Option<(usize, String)>, out: &mut Vec<ShippedRule>| {
        if let Some((first, text)) = chunk {
            out.push(ShippedRule {
                name: text[5..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string(),
                text_only: text.contains("scope = \"text\""),
                source: "\n".repeat(first) + &text,
            });
        }
    };
    for (line, l) in shipped().split_inclusive('\n').enumerate() {
        if l.starts_with("rule ") {
            flush(chunk.take(), &mut out);
            chunk = Some((line, String::new()));
        }
        if let Some((_, text)) = chunk.as_mut() {
            text.push_str(l);
        }
    }
    flush(chunk, &mut out);
    out
}

/// Compiles the shipped rules and `imported` ((name, text) pairs).
pub fn compile(imported: &[(String, String)]) -> Result<RuleSet, RuleError> {
    let mut groups = Vec::new();
    for r in shipped_rules() {
        let mut c = yara_x::Compiler::new();
        c.new_namespace("hostward");
        c.add_source(yara_x::SourceCode::from(r.source.as_str()).with_origin(SHIPPED_NAME))
            .map_err(|e| rule_error(SHIPPED_NAME, &e))?;
        groups.push(Group {
            rules: c.build(),
            elf: !r.text_only,
        });
    }
    if !imported.is_empty() {
        let mut c = yara_x::Compiler::new();
        for (name, text) in imported {
            c.new_namespace(&namespace(name));
            c.add_source(yara_x::SourceCode::from(text.as_str()).with_origin(name.as_str()))
                .map_err(|e| rule_error(name, &e))?;
        }
        groups.push(Group {
            rules: c.build(),
            elf: true,
        });
    }
    Ok(RuleSet { groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_compile_and_a_bad_import_is_named_by_line_and_column() {
        let rules = compile(&[]).expect("shipped rules");
        assert!(rules.count() >= 8);
        let good = "rule test_marker { strings: $a = \"hostward-test-marker\" condition: $a }";
        assert!(compile(&[("mine.yar".into(), good.into())]).is_ok());
        let bad = "rule ok { condition: true }\n\nrule broken {\n  strings:\n    $a = \"x\"\n  condition:\n    $a and $b\n}\n";
        let e = compile(&[("mine.yar".into(), bad.into())]).unwrap_err();
        assert_eq!(e.source, "mine.yar");
        assert_eq!((e.line, e.column), (7, 12), "{e}");
        assert!(e.message.contains("$b"), "{e}");
        let e = compile(&[("x.yar".into(), "rule {".into())]).unwrap_err();
        assert_eq!(e.line, 1, "{e}");
    }

    #[test]
    fn the_binary_carries_the_rules_masked() {
        let file = include_str!("../../../content/yara/hostward.yar");
        assert_eq!(shipped(), file);
        let masked = include_bytes!(concat!(env!("OUT_DIR"), "/hostward.yar.masked"));
        assert!(!masked.windows(5).any(|w| w == b"xmrig"));
    }

    #[test]
    fn every_shipped_rule_is_a_group_and_text_only_ones_cannot_match_an_elf_file() {
        let rules = shipped_rules();
        let set = compile(&[]).unwrap();
        assert_eq!(set.groups.len(), rules.len());
        assert_eq!(set.count(), rules.len(), "one rule per group");
        assert!(rules.iter().filter(|r| r.text_only).count() >= 5);
        // Line numbers stay the file's: each rule's source is padded to where it starts.
        for r in &rules {
            let at = r.source.find("rule ").unwrap();
            let line = r.source[..at].matches('\n').count();
            assert!(
                shipped()
                    .split('\n')
                    .nth(line)
                    .unwrap()
                    .starts_with(&format!("rule {}", r.name))
            );
        }
        for r in rules.iter().filter(|r| r.text_only) {
            let cond = &r.source[r.source.find("condition:").unwrap()..];
            assert!(
                cond.contains("uint32(0) != 0x464c457f") || cond.contains("$eicar at 0"),
                "{}: a text-only rule's condition must exclude ELF files",
                r.name
            );
        }
        let imported = "rule b { condition: true }\nrule a { condition: b }";
        let set = compile(&[("mine.yar".into(), imported.into())]).unwrap();
        assert_eq!(
            set.groups.len(),
            rules.len() + 1,
            "imported files: one group"
        );
        assert!(set.find("a").is_some() && set.find("eicar_test_file").is_some());
    }
}
