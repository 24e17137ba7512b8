//! Isolate and kill: the tasks that kill a process tree and isolate its executable, restore or
//! delete an isolated file, and the `isolated_file` record each change of the agent's
//! quarantine sends, so the center's list matches the host's.

use serde::{Deserialize, Serialize};

/// Kill a process tree and isolate its executable (or isolate a file): [`IsolateRequest`].
pub const ISOLATE_TASK: &str = "isolate_kill";
/// Put an isolated file back with its owner and mode: [`FileRef`].
pub const RESTORE_TASK: &str = "quarantine_restore";
/// Delete an isolated file for good: [`FileRef`].
pub const DELETE_TASK: &str = "quarantine_delete";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolateRequest {
    /// The process whose tree is killed and whose executable is isolated.
    #[serde(default)]
    pub pid: Option<u32>,
    /// The executable the process must be running (guards against a reused pid), or the file
    /// to isolate when there is no pid.
    #[serde(default)]
    pub path: Option<String>,
    /// Why, for the record: an alarm type, or `manual`.
    #[serde(default)]
    pub reason: String,
}

impl IsolateRequest {
    pub fn validate(&self) -> Result<(), String> {
        if self.pid.is_none() && self.path.is_none() {
            return Err("pid or path: set at least one".into());
        }
        if self.pid == Some(0) || self.pid == Some(1) {
            return Err("pid: 0 and 1 cannot be killed".into());
        }
        if let Some(p) = &self.path
            && (!p.starts_with('/') || p.len() > 4096)
        {
            return Err(format!(
                "path: {p:?} is not an absolute path (at most 4,096 bytes)"
            ));
        }
        if self.reason.len() > 64 {
            return Err("reason: at most 64 bytes".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    pub id: String,
}

/// A change of the agent's quarantine (`kind: "isolated_file"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolatedFile {
    pub ts: i64,
    /// The quarantine entry's id: stable across its changes.
    pub id: String,
    /// `isolated`, `restored` or `deleted`.
    pub action: String,
    /// Where the file was (and goes back to on restore).
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits before isolation, set-user-ID and friends included.
    pub mode: u32,
    /// An alarm type, or `manual`.
    pub reason: String,
    /// Processes killed with it, at most 256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub killed: Vec<u32>,
}

impl IsolatedFile {
    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() || self.id.len() > 64 {
            return Err("id: 1 to 64 bytes".into());
        }
        if !matches!(self.action.as_str(), "isolated" | "restored" | "deleted") {
            return Err(format!(
                "action: {:?} is not isolated, restored or deleted",
                self.action
            ));
        }
        if !self.path.starts_with('/') || self.path.len() > 4096 {
            return Err("path: an absolute path of at most 4,096 bytes".into());
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err("sha256: 64 hex digits".into());
        }
        if self.reason.len() > 64 {
            return Err("reason: at most 64 bytes".into());
        }
        if self.killed.len() > 256 {
            return Err("killed: at most 256 pids".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_records_are_checked() {
        let r = IsolateRequest {
            pid: None,
            path: None,
            reason: String::new(),
        };
        assert!(r.validate().unwrap_err().starts_with("pid or path"));
        let r = IsolateRequest {
            pid: Some(1),
            path: None,
            reason: String::new(),
        };
        assert!(r.validate().unwrap_err().starts_with("pid:"));
        let r = IsolateRequest {
            pid: Some(77),
            path: Some("tmp/x".into()),
            reason: String::new(),
        };
        assert!(r.validate().unwrap_err().starts_with("path:"));
        let mut f = IsolatedFile {
            ts: 1,
            id: "q1".into(),
            action: "isolated".into(),
            path: "/tmp/x".into(),
            sha256: "a".repeat(64),
            ..Default::default()
        };
        assert_eq!(f.validate(), Ok(()));
        f.action = "moved".into();
        assert!(f.validate().unwrap_err().starts_with("action"));
        assert!(serde_json::from_str::<IsolateRequest>(r#"{"pid":5,"signal":9}"#).is_err());
    }
}
