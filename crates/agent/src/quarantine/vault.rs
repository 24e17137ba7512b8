//! The quarantine on disk: `<state_dir>/quarantine/` (0700) holds each isolated file as
//! `<id>` with mode 0000, outside any executable path, and `index.json` (0600) its original
//! path, owner, mode and hash. A file is copied in and synced before its original is removed,
//! so a crash leaves it in one place or both, never in neither.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use hostward_agent_core::util::{unix_now, write_atomic};

/// Largest file isolated: a bigger one is killed but left in place (and said so).
pub const MAX_BYTES: u64 = 512 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub reason: String,
    pub killed: Vec<u32>,
    pub isolated_at: i64,
    /// `isolated` or `deleted` (restored entries leave the index).
    pub state: String,
}

pub struct Vault {
    dir: PathBuf,
    entries: Vec<Entry>,
}

impl Vault {
    pub fn open(state_dir: &Path) -> std::io::Result<Vault> {
        let dir = state_dir.join("quarantine");
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let entries = match std::fs::read(dir.join("index.json")) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::error!(error = %e, "quarantine index unreadable; starting a new one beside the files");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        Ok(Vault { dir, entries })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    fn save(&self) -> std::io::Result<()> {
        let data = serde_json::to_vec_pretty(&self.entries).expect("entries serialise");
        write_atomic(&self.dir.join("index.json"), &data, 0o600).map_err(std::io::Error::other)
    }

    /// Moves `path` into the quarantine; the entry is returned (and kept).
    pub fn isolate(
        &mut self,
        path: &Path,
        reason: &str,
        killed: Vec<u32>,
    ) -> Result<Entry, String> {
        let meta =
            std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{} is not a regular file", path.display()));
        }
        if meta.size() > MAX_BYTES {
            return Err(format!(
                "{} is larger than {} MiB",
                path.display(),
                MAX_BYTES >> 20
            ));
        }
        let mut src = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut data = Vec::with_capacity(meta.size() as usize);
        src.read_to_end(&mut data)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let sha256 = hex::encode(Sha256::digest(&data));
        let id = format!("{}-{}", &sha256[..16], unix_now());
        let dest = self.dir.join(&id);
        write_atomic(&dest, &data, 0o000).map_err(|e| format!("{}: {e}", dest.display()))?;
        let entry = Entry {
            id,
            path: path.to_string_lossy().into_owned(),
            sha256,
            size: meta.size(),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            reason: reason.to_string(),
            killed,
            isolated_at: unix_now(),
            state: "isolated".into(),
        };
        self.entries.push(entry.clone());
        self.save().map_err(|e| format!("quarantine index: {e}"))?;
        std::fs::remove_file(path).map_err(|e| format!("removing {}: {e}", path.display()))?;
        Ok(entry)
    }

    /// Puts an isolated file back with its owner and mode.
    pub fn restore(&mut self, id: &str) -> Result<Entry, String> {
        let e = self
            .get(id)
            .filter(|e| e.state == "isolated")
            .cloned()
            .ok_or_else(|| format!("no isolated file {id:?}"))?;
        let src = self.dir.join(&e.id);
        let data = std::fs::read(&src).map_err(|err| format!("{}: {err}", src.display()))?;
        let dest = Path::new(&e.path);
        if dest.exists() {
            return Err(format!("{} exists again; move it away first", e.path));
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|err| format!("{}: {err}", parent.display()))?;
        }
        // Mode 0 while written; owner, then mode (set-user-ID bits survive only after chown).
        write_atomic(dest, &data, 0).map_err(|err| format!("{}: {err}", e.path))?;
        std::os::unix::fs::lchown(dest, Some(e.uid), Some(e.gid))
            .map_err(|err| format!("chown {}: {err}", e.path))?;
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(e.mode))
            .map_err(|err| format!("chmod {}: {err}", e.path))?;
        self.entries.retain(|x| x.id != id);
        self.save()
            .map_err(|err| format!("quarantine index: {err}"))?;
        let _ = std::fs::remove_file(&src);
        Ok(e)
    }

    /// Deletes an isolated file's content for good; the entry stays, as `deleted`, so its hash
    /// is still refused.
    pub fn delete(&mut self, id: &str) -> Result<Entry, String> {
        let pos = self
            .entries
            .iter()
            .position(|e| e.id == id && e.state == "isolated")
            .ok_or_else(|| format!("no isolated file {id:?}"))?;
        let src = self.dir.join(id);
        match std::fs::remove_file(&src) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", src.display())),
        }
        self.entries[pos].state = "deleted".into();
        self.save().map_err(|e| format!("quarantine index: {e}"))?;
        Ok(self.entries[pos].clone())
    }

    /// Hashes and sizes refused at exec: isolated and deleted files alike.
    pub fn denied(&self) -> Vec<(u64, String)> {
        self.entries
            .iter()
            .map(|e| (e.size, e.sha256.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolate_restore_and_delete_keep_owner_mode_and_index() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("bin/rsh");
        std::fs::create_dir_all(victim.parent().unwrap()).unwrap();
        std::fs::write(&victim, b"#!/bin/sh\necho pwned\n").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o4755)).unwrap();
        let mut v = Vault::open(&t.path().join("state")).unwrap();
        let e = v.isolate(&victim, "reverse_shell", vec![7]).unwrap();
        assert!(!victim.exists());
        let stored = t.path().join("state/quarantine").join(&e.id);
        assert_eq!(
            std::fs::metadata(&stored).unwrap().mode() & 0o7777,
            0,
            "mode 0000"
        );
        assert_eq!(e.mode, 0o4755);
        assert_eq!(v.denied().len(), 1);
        // The index survives a reopen.
        let mut v = Vault::open(&t.path().join("state")).unwrap();
        assert_eq!(v.entries().len(), 1);
        let back = v.restore(&e.id).unwrap();
        assert_eq!(back.path, victim.to_string_lossy());
        let m = std::fs::metadata(&victim).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o4755, "set-user-ID restored");
        assert_eq!(std::fs::read(&victim).unwrap(), b"#!/bin/sh\necho pwned\n");
        assert!(v.entries().is_empty() && !stored.exists());
        let e2 = v.isolate(&victim, "manual", vec![]).unwrap();
        assert!(v.restore("nope").is_err());
        std::fs::write(&victim, b"new").unwrap();
        assert!(v.restore(&e2.id).unwrap_err().contains("exists again"));
        let d = v.delete(&e2.id).unwrap();
        assert_eq!(d.state, "deleted");
        assert_eq!(v.denied().len(), 1, "a deleted file's hash stays refused");
        assert!(v.delete(&e2.id).is_err());
    }
}
