//! A policy file in Wazuh's SCA YAML format, read into a [`Policy`] whose rules are parsed and
//! whose regexes are compiled: every error names the file and the line, and for a rule the
//! check id and the rule's position (1-based). Unknown keys are ignored, so Wazuh's `mitre`,
//! `regex_type` and future fields load; the fields Wazuh requires are required here too
//! (policy id, file, name, description; requirements title, description, condition, rules;
//! check id, title, condition, rules), `title` also spelled `name` as in Wazuh 5.

use crate::rule::{Rule, clip};
use crate::{Condition, Severity};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// Largest policy accepted (Wazuh's biggest CIS policies are under 1 MiB).
const MAX_POLICY_BYTES: usize = 8 * 1024 * 1024;

/// A loaded policy, ready to [`crate::run`].
#[derive(Debug, Clone)]
pub struct Policy {
    pub id: String,
    pub file: String,
    pub name: String,
    pub description: String,
    pub references: Vec<String>,
    pub requirements: Option<Requirements>,
    pub checks: Vec<Check>,
}

/// The rules that must hold on a host for the policy to apply there at all.
#[derive(Debug, Clone)]
pub struct Requirements {
    pub title: String,
    pub description: String,
    pub condition: Condition,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub rationale: String,
    pub remediation: String,
    /// Framework -> ids, from either of Wazuh's shapes (a list of one-key maps, or a map).
    pub compliance: BTreeMap<String, Vec<String>>,
    pub references: Vec<String>,
    pub severity: Severity,
    pub condition: Condition,
    pub rules: Vec<Rule>,
}

/// Why a policy did not load: `file:line: [check ID [rule N]: ]message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub file: String,
    /// 1-based; 0 when the parser knew no position.
    pub line: u64,
    pub check: Option<i64>,
    /// 1-based position of the rule in its check's (or the requirements') list.
    pub rule: Option<usize>,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        match (self.check, self.rule) {
            (Some(c), Some(r)) => write!(f, "check {c} rule {r}: ")?,
            (Some(c), None) => write!(f, "check {c}: ")?,
            (None, Some(r)) => write!(f, "requirements rule {r}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

#[derive(Deserialize)]
struct RawFile {
    policy: Spanned<RawPolicy>,
    #[serde(default)]
    requirements: Option<Spanned<RawRequirements>>,
    #[serde(default)]
    variables: Option<BTreeMap<String, Spanned<Option<OneOrMany>>>>,
    checks: Spanned<Vec<Spanned<RawCheck>>>,
}

#[derive(Deserialize)]
struct RawPolicy {
    id: Scalar,
    file: Scalar,
    name: Scalar,
    description: Scalar,
    #[serde(default)]
    references: Option<References>,
}

#[derive(Deserialize)]
struct RawRequirements {
    // Wazuh 4 says `title`, Wazuh 5 `name`.
    #[serde(alias = "name")]
    title: Scalar,
    description: Scalar,
    condition: Spanned<String>,
    rules: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
struct RawCheck {
    // Required fields are checked after parsing, so a refusal can name the check.
    #[serde(default)]
    id: Option<Spanned<i64>>,
    #[serde(default, alias = "name")]
    title: Option<Scalar>,
    #[serde(default)]
    description: Option<Scalar>,
    #[serde(default)]
    rationale: Option<Scalar>,
    #[serde(default)]
    remediation: Option<Scalar>,
    #[serde(default)]
    compliance: Option<RawCompliance>,
    #[serde(default)]
    references: Option<References>,
    #[serde(default)]
    severity: Option<Spanned<String>>,
    #[serde(default)]
    condition: Option<Spanned<String>>,
    #[serde(default)]
    rules: Option<Vec<Spanned<String>>>,
}

/// Wazuh 4 writes `- cis: ["1.1"]` items, Wazuh 5 a map; ids may be unquoted numbers.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawCompliance {
    List(Vec<BTreeMap<String, OneOrMany>>),
    Map(BTreeMap<String, OneOrMany>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Scalar>),
    One(Scalar),
}

/// References as Wazuh's policies write them: a list of URLs, one string, or list items that
/// YAML reads as one-key maps (`- Title: https://...`).
#[derive(Deserialize)]
#[serde(untagged)]
enum References {
    Many(Vec<Reference>),
    One(Scalar),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Reference {
    Text(Scalar),
    Titled(BTreeMap<String, Scalar>),
}

/// A YAML scalar taken as text whatever it looks like (`5.2.1`, `4.1`, `true`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn text(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

fn opt_text(s: Option<Scalar>) -> String {
    s.map(Scalar::text).unwrap_or_default()
}

fn texts(v: Option<References>) -> Vec<String> {
    match v {
        None => Vec::new(),
        Some(References::One(s)) => vec![s.text()],
        Some(References::Many(v)) => v
            .into_iter()
            .flat_map(|r| match r {
                Reference::Text(s) => vec![s.text()],
                Reference::Titled(m) => m
                    .into_iter()
                    .map(|(k, v)| format!("{k}: {}", v.text()))
                    .collect(),
            })
            .collect(),
    }
}

/// Loads a policy from its text; `file` names it in errors (a file name or path).
pub fn load(file: &str, text: &str) -> Result<Policy, PolicyError> {
    let err = |line: u64, check: Option<i64>, rule: Option<usize>, message: String| PolicyError {
        file: file.to_string(),
        line,
        check,
        rule,
        message,
    };
    if text.len() > MAX_POLICY_BYTES {
        return Err(err(
            0,
            None,
            None,
            format!("larger than {MAX_POLICY_BYTES} bytes"),
        ));
    }
    let raw: RawFile = serde_saphyr::from_str(text).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line());
        err(line, None, None, yaml_message(&e))
    })?;
    let policy_line = raw.policy.referenced.line();
    let meta = raw.policy.value;
    let id = meta.id.text();
    if id.trim().is_empty() {
        return Err(err(policy_line, None, None, "policy.id is empty".into()));
    }

    let mut vars: Vec<(String, String)> = Vec::new();
    for (name, value) in raw.variables.unwrap_or_default() {
        if !name.starts_with('$') || name.len() < 2 {
            return Err(err(
                value.referenced.line(),
                None,
                None,
                format!("variable {:?} must start with '$'", clip(&name, 40)),
            ));
        }
        let text = match value.value {
            None => String::new(),
            Some(OneOrMany::One(s)) => s.text(),
            // A list is Wazuh's comma-separated alternatives written as YAML.
            Some(OneOrMany::Many(v)) => v
                .into_iter()
                .map(Scalar::text)
                .collect::<Vec<_>>()
                .join(","),
        };
        vars.push((name, text));
    }
    // Longest first, so `$sshd_files` is not taken for `$sshd` followed by "_files".
    vars.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));

    let parse_rules = |rules: Vec<Spanned<String>>,
                       check: Option<i64>,
                       at: u64|
     -> Result<Vec<Rule>, PolicyError> {
        if rules.is_empty() {
            return Err(err(at, check, None, "no rules".into()));
        }
        rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                Rule::parse(&expand(&r.value, &vars))
                    .map_err(|m| err(r.referenced.line(), check, Some(i + 1), m))
            })
            .collect()
    };

    let requirements = match raw.requirements {
        None => None,
        Some(req) => {
            let line = req.referenced.line();
            let r = req.value;
            let condition = parse_condition(&r.condition)
                .map_err(|m| err(r.condition.referenced.line(), None, None, m))?;
            Some(Requirements {
                title: r.title.text(),
                description: r.description.text(),
                condition,
                rules: parse_rules(r.rules, None, line)?,
            })
        }
    };

    let mut seen = HashSet::new();
    let mut checks = Vec::with_capacity(raw.checks.value.len());
    for c in raw.checks.value {
        let line = c.referenced.line();
        let c = c.value;
        let Some(id_at) = c.id else {
            return Err(err(line, None, None, "check without an id".into()));
        };
        let id = id_at.value;
        let missing = |field: &str| err(line, Some(id), None, format!("missing field `{field}`"));
        let title = c.title.ok_or_else(|| missing("title"))?;
        let condition_at = c.condition.ok_or_else(|| missing("condition"))?;
        let rules = c.rules.ok_or_else(|| missing("rules"))?;
        if !seen.insert(id) {
            return Err(err(
                id_at.referenced.line(),
                Some(id),
                None,
                "duplicate check id".into(),
            ));
        }
        let condition = parse_condition(&condition_at)
            .map_err(|m| err(condition_at.referenced.line(), Some(id), None, m))?;
        let severity = match c.severity {
            None => Severity::Medium,
            Some(s) => Severity::parse(&s.value.trim().to_ascii_lowercase()).ok_or_else(|| {
                err(
                    s.referenced.line(),
                    Some(id),
                    None,
                    format!(
                        "unknown severity {:?} (critical, high, medium or low)",
                        clip(&s.value, 20)
                    ),
                )
            })?,
        };
        let compliance = match c.compliance {
            None => BTreeMap::new(),
            Some(RawCompliance::Map(m)) => flatten_compliance(vec![m]),
            Some(RawCompliance::List(l)) => flatten_compliance(l),
        };
        checks.push(Check {
            id,
            title: title.text(),
            description: opt_text(c.description),
            rationale: opt_text(c.rationale),
            remediation: opt_text(c.remediation),
            compliance,
            references: texts(c.references),
            severity,
            condition,
            rules: parse_rules(rules, Some(id), line)?,
        });
    }
    if checks.is_empty() {
        return Err(err(
            raw.checks.referenced.line(),
            None,
            None,
            "no checks".into(),
        ));
    }
    Ok(Policy {
        id,
        file: meta.file.text(),
        name: meta.name.text(),
        description: meta.description.text(),
        references: texts(meta.references),
        requirements,
        checks,
    })
}

fn flatten_compliance(maps: Vec<BTreeMap<String, OneOrMany>>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in maps {
        for (k, v) in m {
            let ids = match v {
                OneOrMany::Many(v) => v.into_iter().map(Scalar::text).collect(),
                OneOrMany::One(s) => vec![s.text()],
            };
            out.entry(k).or_default().extend(ids);
        }
    }
    out
}

fn parse_condition(c: &Spanned<String>) -> Result<Condition, String> {
    match c.value.trim() {
        "all" => Ok(Condition::All),
        "any" => Ok(Condition::Any),
        "none" => Ok(Condition::None),
        other => Err(format!(
            "unknown condition {:?} (all, any or none)",
            clip(other, 20)
        )),
    }
}

/// Replaces each defined `$name` by its value; other `$` (a shell's `$1` in a command) stay.
fn expand(rule: &str, vars: &[(String, String)]) -> String {
    if !rule.contains('$') {
        return rule.to_string();
    }
    let mut out = String::with_capacity(rule.len());
    let mut rest = rule;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        match vars.iter().find(|(n, _)| tail.starts_with(n.as_str())) {
            Some((n, v)) => {
                out.push_str(v);
                rest = &tail[n.len()..];
            }
            None => {
                out.push('$');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The parser's message on one line without its own position (ours goes in front).
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let plain = e.without_snippet().to_string();
    let first = plain.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let first = first.trim();
    // serde-saphyr appends " at line L column C": the line is already ours.
    let first = match first.rfind(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    clip(first, 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_longest_first() {
        let vars = vec![
            ("$sshd_files".to_string(), "/a,/b".to_string()),
            ("$sshd".to_string(), "/c".to_string()),
        ];
        assert_eq!(expand("f:$sshd_files -> r:x", &vars), "f:/a,/b -> r:x");
        assert_eq!(expand("f:$sshd", &vars), "f:/c");
        assert_eq!(
            expand("c:awk '{print $1}' $sshd", &vars),
            "c:awk '{print $1}' /c"
        );
    }
}
