//! `/etc/hostward/agent.toml`: the few settings an operator may change. Flags override the file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/hostward/agent.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hostward-agent";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Identity, keys and the outbox live here.
    pub state_dir: PathBuf,
    /// tracing filter directive, e.g. `info` or `hostward_agent=debug`.
    pub log_level: String,
    /// Outbox bound; past it new records are dropped and counted (back-pressure).
    pub outbox_max_records: u64,
    /// Filesystem root the inventory collectors read the host under; `/` except in tests.
    pub inventory_root: PathBuf,
    /// Where authentication events come from (`[authlog]`: source, per-service log paths).
    pub authlog: crate::bruteforce::authlog::Config,
    /// The nftables table brute-force sources are blocked in (`[firewall]`: nft command, table
    /// name, protected TCP ports).
    pub firewall: crate::bruteforce::nft::Config,
    /// Runtime detection (`[behaviour]`: sensor tier auto/proc/off, network namespace).
    pub behaviour: crate::behaviour::Config,
    /// File integrity monitoring (`[fim]`: enabled).
    pub fim: crate::fim::Config,
    /// Malware scanning (`[malware]`: enabled, the scanner binary).
    pub malware: crate::malware::Config,
    /// Risk checks (`[risk]`: the first scan after the agent starts on a host).
    pub risk: crate::risk::Config,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            log_level: "info".into(),
            outbox_max_records: 100_000,
            inventory_root: PathBuf::from("/"),
            authlog: Default::default(),
            firewall: Default::default(),
            behaviour: Default::default(),
            fim: Default::default(),
            malware: Default::default(),
            risk: Default::default(),
        }
    }
}

impl Config {
    /// Parses the TOML text; errors carry toml's line/column and the offending key.
    pub fn parse(text: &str, origin: &Path) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "invalid config {}: {}",
                origin.display(),
                e.to_string().trim_end()
            )
        })?;
        if cfg.outbox_max_records == 0 {
            anyhow::bail!(
                "invalid config {}: outbox_max_records must be at least 1",
                origin.display()
            );
        }
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Config::parse(&text, path)
    }

    /// An explicit path must exist; without one, the default path is used only if present so
    /// that a bare `hostward-agent status` works on a host installed without a config file.
    pub fn resolve(explicit: Option<&Path>) -> Result<Config> {
        match explicit {
            Some(p) => Config::load(p),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                Config::load(Path::new(DEFAULT_CONFIG_PATH))
            }
            None => Ok(Config::default()),
        }
    }

    pub fn to_toml(&self) -> String {
        format!(
            "# Hostward agent configuration. Unknown keys are rejected.\n{}",
            toml::to_string(self).expect("config serialises")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults_and_keys_override() {
        let p = Path::new("agent.toml");
        assert_eq!(Config::parse("", p).unwrap(), Config::default());
        let c = Config::parse("state_dir = \"/tmp/x\"\noutbox_max_records = 5\n", p).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.outbox_max_records, 5);
        assert_eq!(c.log_level, "info");
    }

    #[test]
    fn unknown_key_error_names_key_line_and_file() {
        let err = Config::parse(
            "log_level = \"info\"\nstate_dri = \"/x\"\n",
            Path::new("/etc/hostward/agent.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("state_dri"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("/etc/hostward/agent.toml"), "{err}");
    }

    #[test]
    fn wrong_type_error_names_the_key() {
        let err = Config::parse("outbox_max_records = \"many\"\n", Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("outbox_max_records"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn written_config_parses_back() {
        let c = Config {
            state_dir: "/srv/hw".into(),
            ..Config::default()
        };
        assert_eq!(Config::parse(&c.to_toml(), Path::new("x")).unwrap(), c);
    }
}
