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

/// The compiled rules, twice: every rule, for most files, and the rules that can match an ELF
/// file, for ELF files. yara-x searches a file for the patterns of every rule once any rule
/// needs them, so the web-shell and config regexes would cost their search on every binary;
/// a shipped rule marked `scope = "text"` starts its condition with the ELF test that makes it
/// false on an ELF file, so leaving it out of the ELF set changes no result. Imported rules
/// are in both.
#[derive(Debug)]
pub struct RuleSet {
    pub all: yara_x::Rules,
    pub elf: yara_x::Rules,
}

impl RuleSet {
    /// Rules in the full set.
    pub fn count(&self) -> usize {
        self.all.iter().count()
    }
}

/// The shipped source without its `scope = "text"` rules (each rule starts at a line
/// beginning with `rule `).
pub fn shipped_for_elf() -> String {
    let mut out = String::new();
    let mut chunk = String::new();
    let flush = |chunk: &mut String, out: &mut String| {
        if !chunk.contains("scope = \"text\"") {
            out.push_str(chunk);
        }
        chunk.clear();
    };
    for line in shipped().split_inclusive('\n') {
        if line.starts_with("rule ") {
            flush(&mut chunk, &mut out);
        }
        chunk.push_str(line);
    }
    flush(&mut chunk, &mut out);
    out
}

fn build(shipped: &str, imported: &[(String, String)]) -> Result<yara_x::Rules, RuleError> {
    let mut c = yara_x::Compiler::new();
    c.new_namespace("hostward");
    c.add_source(yara_x::SourceCode::from(shipped).with_origin(SHIPPED_NAME))
        .map_err(|e| rule_error(SHIPPED_NAME, &e))?;
    for (name, text) in imported {
        c.new_namespace(&namespace(name));
        c.add_source(yara_x::SourceCode::from(text.as_str()).with_origin(name.as_str()))
            .map_err(|e| rule_error(name, &e))?;
    }
    Ok(c.build())
}

/// Compiles the shipped rules and `imported` ((name, text) pairs).
pub fn compile(imported: &[(String, String)]) -> Result<RuleSet, RuleError> {
    Ok(RuleSet {
        all: build(shipped(), imported)?,
        elf: build(&shipped_for_elf(), imported)?,
    })
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
    fn rules_left_out_for_elf_files_cannot_match_one() {
        let elf = shipped_for_elf();
        let rules: Vec<&str> = shipped().split("\nrule ").skip(1).collect();
        let text: Vec<&&str> = rules
            .iter()
            .filter(|r| r.contains("scope = \"text\""))
            .collect();
        assert!(text.len() >= 5, "the text-only rules: {}", text.len());
        for r in &text {
            let name = r.split_whitespace().next().unwrap();
            let cond = &r[r.find("condition:").unwrap()..];
            assert!(
                cond.contains("uint32(0) != 0x464c457f") || cond.contains("$eicar at 0"),
                "{name}: a text-only rule's condition must exclude ELF files"
            );
            assert!(!elf.contains(&format!("rule {name} ")), "{name}");
        }
        for r in rules.iter().filter(|r| !r.contains("scope = \"text\"")) {
            let name = r.split_whitespace().next().unwrap();
            assert!(elf.contains(&format!("rule {name} ")), "{name}");
        }
    }
}
