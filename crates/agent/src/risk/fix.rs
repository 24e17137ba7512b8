//! One-click vulnerability fixes: upgrade the named packages with the host's package manager.
//! Runs only while the project's policy allows it (`allow_fix`, off by default). Package names
//! are checked against the managers' own naming rules and passed after `--`, never through a
//! shell, so a name cannot smuggle an option or a command.

use std::time::Duration;

use hostward_proto::risk::FixRequest;
use tokio::process::Command;

/// Longest a package upgrade may run.
const TIMEOUT: Duration = Duration::from_secs(1800);
/// Output kept for the task result (the tail, where the errors are).
const OUTPUT_TAIL: usize = 4096;

/// The command line for a request, or why it is refused.
pub fn command(req: &FixRequest) -> Result<Vec<String>, String> {
    if req.packages.is_empty() {
        return Err("packages: must not be empty".into());
    }
    if req.packages.len() > 200 {
        return Err("packages: at most 200".into());
    }
    for (i, p) in req.packages.iter().enumerate() {
        if !valid_package(p) {
            return Err(format!("packages[{i}]: not a valid package name"));
        }
    }
    let mut argv: Vec<String> = match req.manager.as_str() {
        "dpkg" => ["apt-get", "install", "--only-upgrade", "-y", "-q", "--"]
            .map(String::from)
            .to_vec(),
        "rpm" => ["dnf", "upgrade", "-y", "-q", "--"]
            .map(String::from)
            .to_vec(),
        other => return Err(format!("manager: {other:?} is not dpkg or rpm")),
    };
    argv.extend(req.packages.iter().cloned());
    Ok(argv)
}

/// dpkg: `[a-z0-9][a-z0-9+.-]+`; rpm names also allow upper case and `_`. Neither starts with
/// `-`, which is what keeps a name from being read as an option.
fn valid_package(p: &str) -> bool {
    let mut chars = p.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && p.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || "+.-_".contains(c))
}

/// What the upgrade did: exit status and the tail of its output.
pub struct Outcome {
    pub success: bool,
    pub exit_code: Option<i32>,
    pub output: String,
}

pub async fn run(req: &FixRequest) -> Result<Outcome, String> {
    let argv = command(req)?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("{} did not finish within {} s", argv[0], TIMEOUT.as_secs()))?
        .map_err(|e| format!("starting {}: {e}", argv[0]))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let cut = text.len().saturating_sub(OUTPUT_TAIL);
    let cut = (cut..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    Ok(Outcome {
        success: out.status.success(),
        exit_code: out.status.code(),
        output: text[cut..].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(manager: &str, packages: &[&str]) -> FixRequest {
        FixRequest {
            manager: manager.into(),
            packages: packages.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn commands_per_manager_end_options_before_the_names() {
        assert_eq!(
            command(&req("dpkg", &["openssl", "libssl3"]))
                .unwrap()
                .join(" "),
            "apt-get install --only-upgrade -y -q -- openssl libssl3"
        );
        assert_eq!(
            command(&req("rpm", &["kernel-core"])).unwrap().join(" "),
            "dnf upgrade -y -q -- kernel-core"
        );
    }

    #[test]
    fn hostile_names_and_unknown_managers_are_refused() {
        for bad in [
            "-oAPT::Update::Pre-Invoke::=sh",
            "a b",
            "x;reboot",
            "$(id)",
            "",
            "a/b",
        ] {
            let err = command(&req("dpkg", &["ok", bad])).unwrap_err();
            assert!(err.starts_with("packages[1]"), "{bad:?}: {err}");
        }
        assert!(
            command(&req("apk", &["musl"]))
                .unwrap_err()
                .starts_with("manager")
        );
        assert!(
            command(&req("dpkg", &[]))
                .unwrap_err()
                .starts_with("packages")
        );
    }
}
