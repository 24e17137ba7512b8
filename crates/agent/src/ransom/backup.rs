//! Local backups: snapshots of the policy's directories in `<state_dir>/ransom/backup/` (0700,
//! the agent's own, outside every backed-up tree). A snapshot is a manifest (the file
//! integrity engine's baseline of the directories: kind, size, mode, owner, BLAKE3) and each
//! content once in a shared [`Objects`] store; it is incremental twice over: a file unchanged
//! since the last snapshot (same inode, size, mtime, ctime) is not read again, and a content
//! the store has is not copied again. Retention keeps the newest `keep_count` younger than
//! `keep_days` (the newest always), then drops objects no snapshot refers to. A restore puts
//! a snapshot's files back, byte for byte with mode and owner, at or below the paths asked
//! for, and with `remove_new` removes what the snapshot did not have there. Functions of a
//! filesystem root.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use hostward_agent_core::util::write_atomic;
use hostward_proto::fim::{FimPolicy, WatchedDir};
use hostward_proto::ransom::{
    BackupDir, BackupPolicy, RestoreRequest, RestoreResult, SnapshotInfo,
};
use serde::{Deserialize, Serialize};

use crate::fim::engine::{self, Baseline, Kind};
use crate::objects::{self, Objects};

const MAX_FAILED: usize = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub info: SnapshotInfo,
    pub dirs: Vec<BackupDir>,
    pub entries: Baseline,
}

pub struct Store {
    objects: Objects,
    snapshots: PathBuf,
}

fn scope(dirs: &[BackupDir]) -> FimPolicy {
    FimPolicy {
        enabled: true,
        important_files: Vec::new(),
        directories: dirs
            .iter()
            .map(|d| WatchedDir {
                path: d.path.clone(),
                recursive: true,
                exclude: d.exclude.clone(),
                exclude_types: d.exclude_types.clone(),
                ..Default::default()
            })
            .collect(),
    }
}

fn at(root: &Path, host: &str) -> PathBuf {
    root.join(host.trim_start_matches('/'))
}

impl Store {
    pub fn open(dir: &Path) -> io::Result<Store> {
        let objects = Objects::open(dir)?;
        let snapshots = dir.join("snapshots");
        std::fs::create_dir_all(&snapshots)?;
        std::fs::set_permissions(
            &snapshots,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        Ok(Store { objects, snapshots })
    }

    /// Every readable snapshot's summary, newest first: read from each one's `<id>.info`
    /// beside its manifest, so listing does not read the manifests.
    pub fn list(&self) -> Vec<SnapshotInfo> {
        let mut out: Vec<SnapshotInfo> = std::fs::read_dir(&self.snapshots)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".json")?;
                std::fs::read(self.snapshots.join(format!("{id}.info")))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<SnapshotInfo>(&b).ok())
                    .filter(|i| i.id == id)
                    .or_else(|| self.load(id).ok().map(|s| s.info))
            })
            .collect();
        out.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
        out
    }

    pub fn load(&self, id: &str) -> io::Result<Snapshot> {
        if !hostward_proto::ransom::valid_id(id) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a snapshot id",
            ));
        }
        let text = std::fs::read(self.snapshots.join(format!("{id}.json")))?;
        serde_json::from_slice(&text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("snapshot {id}: {e}")))
    }

    /// Takes a snapshot of `policy`'s directories at `now`, leaving out `skip` (the bait
    /// files).
    pub fn take(
        &self,
        root: &Path,
        policy: &BackupPolicy,
        skip: &BTreeSet<String>,
        now: i64,
    ) -> io::Result<Snapshot> {
        let previous = self
            .list()
            .first()
            .and_then(|i| self.load(&i.id).ok())
            .map(|s| s.entries);
        let mut scan = engine::scan(root, &scope(&policy.directories), previous.as_ref());
        scan.baseline.retain(|p, _| !skip.contains(p));
        let mut errors = scan.errors.len() as u64;
        let (mut files, mut bytes, mut new_bytes) = (0u64, 0u64, 0u64);
        let mut entries = Baseline::new();
        for (path, mut e) in std::mem::take(&mut scan.baseline) {
            if e.kind == Kind::File {
                let hash = e.hash.clone().unwrap_or_default();
                let fresh = !self.objects.has(&hash);
                let file = at(root, &path);
                let stored = match self.objects.store(&file, &hash) {
                    // It changed between the walk and the copy: take it as it is now.
                    Err(_) => engine::hash_file(&file).and_then(|h| {
                        self.objects.store(&file, &h)?;
                        e.hash = Some(h);
                        e.size = std::fs::metadata(&file)?.len();
                        Ok(())
                    }),
                    ok => ok,
                };
                if stored.is_err() {
                    errors += 1;
                    continue;
                }
                files += 1;
                bytes += e.size;
                if fresh {
                    new_bytes += e.size;
                }
            }
            entries.insert(path, e);
        }
        let id = format!("{now}-{:04x}", rand::random::<u16>());
        let snap = Snapshot {
            info: SnapshotInfo {
                id: id.clone(),
                at: now,
                directories: policy.directories.iter().map(|d| d.path.clone()).collect(),
                files,
                bytes,
                new_bytes,
                errors,
                truncated: scan.truncated,
            },
            dirs: policy.directories.clone(),
            entries,
        };
        let body = serde_json::to_vec(&snap).map_err(io::Error::other)?;
        let info = serde_json::to_vec(&snap.info).map_err(io::Error::other)?;
        // The summary first: a manifest without one is still listed (read whole).
        write_atomic(&self.snapshots.join(format!("{id}.info")), &info, 0o600)
            .map_err(io::Error::other)?;
        write_atomic(&self.snapshots.join(format!("{id}.json")), &body, 0o600)
            .map_err(io::Error::other)?;
        Ok(snap)
    }

    /// Drops snapshots past the policy's retention and the objects only they referred to;
    /// returns the ids dropped.
    pub fn retain(&self, policy: &BackupPolicy, now: i64) -> io::Result<Vec<String>> {
        let all = self.list();
        let oldest = now - i64::from(policy.keep_days) * 86_400;
        let mut dropped = Vec::new();
        for (i, s) in all.iter().enumerate() {
            let too_many = i >= policy.keep_count as usize;
            let too_old = policy.keep_days > 0 && s.at < oldest;
            if i > 0 && (too_many || too_old) {
                std::fs::remove_file(self.snapshots.join(format!("{}.json", s.id)))?;
                let _ = std::fs::remove_file(self.snapshots.join(format!("{}.info", s.id)));
                dropped.push(s.id.clone());
            }
        }
        if !dropped.is_empty() {
            let kept: Vec<Baseline> = self
                .list()
                .iter()
                .map(|i| self.load(&i.id).map(|s| s.entries))
                .collect::<io::Result<_>>()?;
            let refs: Vec<&Baseline> = kept.iter().collect();
            self.objects.prune(&refs)?;
        }
        Ok(dropped)
    }

    /// Bytes the object store holds.
    pub fn stored_bytes(&self) -> u64 {
        self.objects.bytes()
    }

    /// The snapshot a restore asks for: by id, or the newest taken at or before `at`.
    pub fn pick(&self, req: &RestoreRequest) -> Result<Snapshot, String> {
        let id = match (&req.snapshot, req.at) {
            (Some(id), _) => id.clone(),
            (None, Some(t)) => self
                .list()
                .into_iter()
                .find(|s| s.at <= t)
                .map(|s| s.id)
                .ok_or_else(|| format!("at: no snapshot was taken at or before {t}"))?,
            (None, None) => return Err("snapshot, at: name a snapshot or a point in time".into()),
        };
        self.load(&id)
            .map_err(|e| format!("snapshot: {id:?} cannot be read ({e})"))
    }

    /// Puts back what `req` asks for from `snap` under `root`; `skip` (the bait files) is
    /// never removed.
    pub fn restore(
        &self,
        root: &Path,
        snap: &Snapshot,
        req: &RestoreRequest,
        skip: &BTreeSet<String>,
    ) -> RestoreResult {
        let mut r = RestoreResult {
            snapshot: snap.info.id.clone(),
            taken_at: snap.info.at,
            ..Default::default()
        };
        let fail = |r: &mut RestoreResult, msg: String| {
            if r.failed.len() < MAX_FAILED {
                r.failed.push(msg);
            }
        };
        let mut wanted: Vec<String> = req.paths.clone();
        for p in &wanted {
            if !snap.dirs.iter().any(|d| d.covers(p)) {
                fail(&mut r, format!("{p}: not in the snapshot's directories"));
            }
        }
        wanted.retain(|p| snap.dirs.iter().any(|d| d.covers(p)));
        if req.paths.is_empty() {
            wanted = snap.dirs.iter().map(|d| d.path.clone()).collect();
        }
        let under = |p: &str| wanted.iter().any(|w| hostward_proto::paths::nested(w, p));
        let mut any = false;
        for (path, e) in snap.entries.iter().filter(|(p, _)| under(p)) {
            any = true;
            let now = engine::entry(root, path, Some(e)).ok().flatten();
            let same = now.as_ref().is_some_and(|n| {
                n.kind == e.kind
                    && n.hash == e.hash
                    && n.mode == e.mode
                    && n.uid == e.uid
                    && n.gid == e.gid
            });
            if same {
                r.unchanged += 1;
                continue;
            }
            match self.objects.restore(root, path, e) {
                Ok(()) => r.restored += 1,
                Err(err) => fail(&mut r, format!("{path}: {err}")),
            }
        }
        if !any && r.failed.is_empty() {
            fail(&mut r, "nothing in the snapshot at these paths".into());
        }
        if req.remove_new {
            // Only what the snapshot's directories back up can be "new": an excluded path was
            // never in it.
            let now = engine::scan(root, &scope(&snap.dirs), Some(&snap.entries));
            for path in now.baseline.keys().rev() {
                if under(path) && !snap.entries.contains_key(path) && !skip.contains(path) {
                    match objects::remove(&at(root, path)) {
                        Ok(()) => r.removed += 1,
                        Err(err) => fail(&mut r, format!("{path}: not removed ({err})")),
                    }
                }
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn policy(keep: u32) -> BackupPolicy {
        BackupPolicy {
            enabled: true,
            directories: vec![BackupDir {
                path: "/srv/data".into(),
                exclude: vec!["cache".into()],
                exclude_types: vec!["tmp".into()],
            }],
            keep_count: keep,
            keep_days: 30,
            ..Default::default()
        }
    }

    fn write(root: &Path, p: &str, body: &str) {
        let f = root.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, body).unwrap();
    }

    #[test]
    fn snapshots_are_incremental_restore_byte_for_byte_and_retention_drops_the_oldest() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        for i in 0..20 {
            write(
                &root,
                &format!("srv/data/docs/{i}.txt"),
                &format!("document {i}\n").repeat(50),
            );
        }
        write(&root, "srv/data/cache/x", "cached");
        write(&root, "srv/data/a.tmp", "temporary");
        write(&root, "srv/data/!0-bait.docx", "bait");
        std::fs::set_permissions(
            root.join("srv/data/docs/3.txt"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let store = Store::open(&d.path().join("backup")).unwrap();
        let skip: BTreeSet<String> = ["/srv/data/!0-bait.docx".to_string()].into();
        let first = store.take(&root, &policy(2), &skip, 1000).unwrap();
        assert_eq!(first.info.files, 20);
        assert_eq!(first.info.new_bytes, first.info.bytes);
        assert!(!first.entries.contains_key("/srv/data/cache/x"));
        assert!(!first.entries.contains_key("/srv/data/a.tmp"));
        assert!(!first.entries.contains_key("/srv/data/!0-bait.docx"));

        write(&root, "srv/data/docs/0.txt", "changed");
        let second = store.take(&root, &policy(2), &skip, 2000).unwrap();
        assert_eq!(second.info.new_bytes, 7, "only the changed file is copied");

        // Ransomware: every document encrypted into a new file, the original removed.
        for i in 0..20 {
            let p = root.join(format!("srv/data/docs/{i}.txt"));
            std::fs::write(p.with_extension("txt.enc"), [0xAAu8; 64]).unwrap();
            std::fs::remove_file(p).unwrap();
        }
        let req = RestoreRequest {
            at: Some(1500),
            paths: vec!["/srv/data/docs".into()],
            remove_new: true,
            ..Default::default()
        };
        let snap = store.pick(&req).unwrap();
        assert_eq!(snap.info.id, first.info.id, "the newest at or before 1500");
        let r = store.restore(&root, &snap, &req, &skip);
        assert_eq!((r.restored, r.removed), (20, 20), "{r:?}");
        assert!(r.failed.is_empty(), "{r:?}");
        for i in 0..20 {
            assert_eq!(
                std::fs::read_to_string(root.join(format!("srv/data/docs/{i}.txt"))).unwrap(),
                format!("document {i}\n").repeat(50)
            );
        }
        let mode = std::fs::metadata(root.join("srv/data/docs/3.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(root.join("srv/data/!0-bait.docx").exists(), "baits stay");
        assert!(root.join("srv/data/cache/x").exists(), "exclusions stay");
        // Again: all unchanged.
        let again = store.restore(&root, &snap, &req, &skip);
        assert_eq!((again.restored, again.removed), (0, 0));

        // A single file from a snapshot by id; a path outside it is named.
        let one = RestoreRequest {
            snapshot: Some(second.info.id.clone()),
            paths: vec!["/srv/data/docs/0.txt".into(), "/etc/passwd".into()],
            ..Default::default()
        };
        let r = store.restore(&root, &store.pick(&one).unwrap(), &one, &skip);
        assert_eq!(r.restored, 1);
        assert_eq!(r.failed, ["/etc/passwd: not in the snapshot's directories"]);
        assert_eq!(
            std::fs::read_to_string(root.join("srv/data/docs/0.txt")).unwrap(),
            "changed"
        );
        assert!(
            store
                .pick(&RestoreRequest {
                    at: Some(10),
                    ..Default::default()
                })
                .unwrap_err()
                .starts_with("at:")
        );

        store.take(&root, &policy(2), &skip, 3000).unwrap();
        let dropped = store.retain(&policy(2), 3000).unwrap();
        assert_eq!(dropped, std::slice::from_ref(&first.info.id));
        assert_eq!(store.list().len(), 2);
        // Age: only the newest survives when all are older than keep_days.
        let dropped = store.retain(&policy(5), 3000 + 40 * 86_400).unwrap();
        assert_eq!(dropped.len(), 1);
        assert_eq!(store.list().len(), 1);
    }
}
