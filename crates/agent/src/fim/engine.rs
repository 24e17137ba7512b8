//! The file integrity engine: what the monitored paths look like now (a [`Baseline`]: kind,
//! size, mode, owner and BLAKE3 of each file) and what changed between two baselines. Pure: a
//! function of a filesystem root (`/` in production, a fixture tree in tests); watching and
//! reporting live beside it.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hostward_proto::fim::{FileState, FimPolicy, Operation, WatchedDir};
use serde::{Deserialize, Serialize};

/// Entries one scan records at most: a runaway directory (a cache with millions of files)
/// costs its scan's completeness, which [`Scan::truncated`] says, not the agent's memory.
pub const MAX_ENTRIES: usize = 500_000;

/// The kind of a path, as the wire reports it.
pub use hostward_proto::fim::FileKind as Kind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    pub size: u64,
    /// Permission bits with set-user-ID, set-group-ID and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// BLAKE3 in hex of a regular file's content; a symlink's target.
    pub hash: Option<String>,
    /// Identity and times, not compared: what lets a later scan trust the hash it has (see
    /// [`scan`]).
    pub ino: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Entry {
    /// Same inode, size, modification and status-change time: the content is what it was.
    /// Writing a file always moves its ctime, which only the kernel sets (`touch -r` restores
    /// the mtime, not the ctime).
    fn unchanged_since(&self, before: &Entry) -> bool {
        self.kind == Kind::File
            && before.kind == Kind::File
            && self.ino == before.ino
            && self.size == before.size
            && self.mtime_ns == before.mtime_ns
            && self.ctime_ns == before.ctime_ns
    }
}

impl Entry {
    /// What the wire reports of it.
    pub fn state(&self) -> FileState {
        FileState {
            kind: self.kind,
            size: self.size,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            hash: self.hash.clone(),
        }
    }
}

/// Host path -> what it was.
pub type Baseline = BTreeMap<String, Entry>;

#[derive(Debug, Default)]
pub struct Scan {
    pub baseline: Baseline,
    /// Paths that could not be read, with why ("/srv/x: permission denied").
    pub errors: Vec<String>,
    /// [`MAX_ENTRIES`] was reached: what is past it is not watched.
    pub truncated: bool,
}

fn at(root: &Path, host_path: &str) -> PathBuf {
    root.join(host_path.trim_start_matches('/'))
}

/// BLAKE3 of a file's content.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path)?)?;
    Ok(h.finalize().to_hex().to_string())
}

/// What `host_path` is now (not following a final symlink); None when it does not exist. A
/// regular file is hashed unless `known` is the same file unchanged (its hash is reused).
pub fn entry(root: &Path, host_path: &str, known: Option<&Entry>) -> io::Result<Option<Entry>> {
    let p = at(root, host_path);
    let md = match std::fs::symlink_metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let ft = md.file_type();
    let mut e = Entry {
        kind: Kind::Other,
        size: if ft.is_file() { md.len() } else { 0 },
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        hash: None,
        ino: md.ino(),
        mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
    };
    let (kind, hash) = if ft.is_file() {
        e.kind = Kind::File;
        match known.filter(|k| e.unchanged_since(k)) {
            Some(k) => (Kind::File, k.hash.clone()),
            None => (Kind::File, Some(hash_file(&p)?)),
        }
    } else if ft.is_dir() {
        (Kind::Dir, None)
    } else if ft.is_symlink() {
        let target = std::fs::read_link(&p)?;
        (Kind::Symlink, Some(target.display().to_string()))
    } else {
        // Sockets, fifos, devices: their presence and attributes are what can change.
        (Kind::Other, None)
    };
    e.kind = kind;
    e.hash = hash;
    Ok(Some(e))
}

struct Walker<'a> {
    root: &'a Path,
    /// The previous baseline, whose hashes unchanged files keep.
    known: Option<&'a Baseline>,
    scan: Scan,
}

impl Walker<'_> {
    fn add(&mut self, host_path: &str) -> Option<Kind> {
        let s = &mut self.scan;
        if s.baseline.len() >= MAX_ENTRIES {
            s.truncated = true;
            return None;
        }
        let known = self.known.and_then(|b| b.get(host_path));
        match entry(self.root, host_path, known) {
            Ok(Some(e)) => {
                let kind = e.kind;
                s.baseline.insert(host_path.to_string(), e);
                Some(kind)
            }
            Ok(None) => None,
            Err(e) => {
                s.errors.push(format!("{host_path}: {e}"));
                None
            }
        }
    }

    /// The names in a directory, sorted; an unreadable one is an error, a missing one nothing.
    fn children(&mut self, dir: &str) -> Vec<String> {
        match std::fs::read_dir(at(self.root, dir)) {
            Ok(rd) => {
                let mut names: Vec<String> = rd
                    .filter_map(Result::ok)
                    .map(|d| d.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                names
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                self.scan.errors.push(format!("{dir}: {e}"));
                Vec::new()
            }
        }
    }

    /// Walks a monitored directory from `start` (the directory itself, or a directory below
    /// it). What `covers` leaves out is neither recorded nor descended into: an excluded path
    /// with all below it, and names of an excluded type.
    fn walk(&mut self, d: &WatchedDir, start: &str) {
        if start == d.path && !at(self.root, start).is_dir() {
            self.scan
                .errors
                .push(format!("{start}: does not exist or is not a directory"));
            return;
        }
        let mut stack = vec![start.to_string()];
        while let Some(dir) = stack.pop() {
            for name in self.children(&dir) {
                let path = format!("{dir}/{name}");
                if !d.covers(&path) {
                    continue;
                }
                if self.add(&path) == Some(Kind::Dir) && d.recursive {
                    stack.push(path);
                }
                if self.scan.truncated {
                    return;
                }
            }
        }
    }

    /// An important path: the file, or a directory and the entries directly in it.
    fn important(&mut self, f: &str) {
        if self.add(f) == Some(Kind::Dir) {
            for name in self.children(f) {
                self.add(&format!("{f}/{name}"));
            }
        }
    }
}

/// Everything the policy monitors, as it is now under `root`. With `known` (the last
/// baseline), a file with the same inode, size, mtime and ctime keeps its hash instead of being
/// read again: a check of an unchanged tree is a walk of its metadata. Pass None for a full
/// re-read.
pub fn scan(root: &Path, policy: &FimPolicy, known: Option<&Baseline>) -> Scan {
    let mut w = Walker {
        root,
        known,
        scan: Scan::default(),
    };
    for f in &policy.important_files {
        w.important(f);
    }
    for d in &policy.directories {
        w.walk(d, &d.path);
    }
    w.scan
}

/// Whether the policy monitors `path` at all (important, or in a directory's scope).
pub fn in_scope(policy: &FimPolicy, path: &str) -> bool {
    important(policy, path) || policy.directories.iter().any(|d| d.covers(path))
}

/// What a file event at `paths` changed: the part of `known` at or below them (`old`) and the
/// same part as it is now (`new`), walked like [`scan`] walks it. `diff(old, new)` is the
/// change; replacing `old`'s keys with `new` in the baseline brings it up to date. Paths out of
/// the policy's scope are skipped.
pub fn rescan(
    root: &Path,
    policy: &FimPolicy,
    paths: &[String],
    known: &Baseline,
) -> (Baseline, Scan) {
    let mut old = Baseline::new();
    let mut w = Walker {
        root,
        known: Some(known),
        scan: Scan::default(),
    };
    for p in paths {
        if !in_scope(policy, p) {
            continue;
        }
        let below = format!("{p}/");
        old.extend(
            known
                .range(p.clone()..)
                .take_while(|(k, _)| *k == p || k.starts_with(&below))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        if w.scan.baseline.contains_key(p) {
            continue;
        }
        if policy.important_files.iter().any(|f| f == p) {
            w.important(p);
            continue;
        }
        if w.add(p) == Some(Kind::Dir) {
            for d in policy
                .directories
                .iter()
                .filter(|d| d.recursive && d.covers(p))
            {
                w.walk(d, p);
            }
        }
    }
    (old, w.scan)
}

/// One difference between two baselines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub op: Operation,
    /// A move's old path.
    pub from: Option<String>,
    pub old: Option<Entry>,
    pub new: Option<Entry>,
}

/// What changed from `old` to `new`, in path order. Content (kind, size or hash) is `modify`;
/// mode or owner alone is `attributes`; a deleted file whose content appears at a new path is
/// one `move`. A change of modification time alone is not a change (`touch`).
pub fn diff(old: &Baseline, new: &Baseline) -> Vec<Change> {
    let mut out = Vec::new();
    let mut deleted: Vec<(&String, &Entry)> = Vec::new();
    let mut created: Vec<(&String, &Entry)> = Vec::new();
    for (path, o) in old {
        match new.get(path) {
            None => deleted.push((path, o)),
            Some(n) if o.kind != n.kind || o.size != n.size || o.hash != n.hash => {
                out.push(Change {
                    path: path.clone(),
                    op: Operation::Modify,
                    from: None,
                    old: Some(o.clone()),
                    new: Some(n.clone()),
                })
            }
            Some(n) if o.mode != n.mode || o.uid != n.uid || o.gid != n.gid => out.push(Change {
                path: path.clone(),
                op: Operation::Attributes,
                from: None,
                old: Some(o.clone()),
                new: Some(n.clone()),
            }),
            Some(_) => {}
        }
    }
    for (path, n) in new {
        if !old.contains_key(path) {
            created.push((path, n));
        }
    }
    for (path, n) in created {
        let moved = (n.kind == Kind::File)
            .then(|| {
                deleted
                    .iter()
                    .position(|(_, o)| o.kind == Kind::File && o.hash == n.hash && o.size == n.size)
            })
            .flatten();
        match moved {
            Some(i) => {
                let (from, o) = deleted.remove(i);
                out.push(Change {
                    path: path.clone(),
                    op: Operation::Move,
                    from: Some(from.clone()),
                    old: Some(o.clone()),
                    new: Some(n.clone()),
                });
            }
            None => out.push(Change {
                path: path.clone(),
                op: Operation::Create,
                from: None,
                old: None,
                new: Some(n.clone()),
            }),
        }
    }
    for (path, o) in deleted {
        out.push(Change {
            path: path.clone(),
            op: Operation::Delete,
            from: None,
            old: Some(o.clone()),
            new: None,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Whether a change is in an important file's scope (the file itself, or a file directly in an
/// important directory).
pub fn important(policy: &FimPolicy, path: &str) -> bool {
    policy.important_files.iter().any(|f| {
        path == f
            || path
                .strip_prefix(f.as_str())
                .and_then(|r| r.strip_prefix('/'))
                .is_some_and(|r| !r.is_empty() && !r.contains('/'))
    })
}

/// Whether the policy records this change: important files always, a directory's changes when
/// its operations include the change's.
pub fn recorded(policy: &FimPolicy, c: &Change) -> bool {
    important(policy, &c.path)
        || policy.directories.iter().any(|d| {
            d.records(c.op) && (d.covers(&c.path) || c.from.as_deref().is_some_and(|f| d.covers(f)))
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn write(root: &Path, p: &str, content: &str) {
        let f = at(root, p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, content).unwrap();
    }

    fn policy() -> FimPolicy {
        FimPolicy {
            enabled: true,
            important_files: vec!["/etc/passwd".into(), "/etc/pam.d".into()],
            directories: vec![WatchedDir {
                path: "/srv/www".into(),
                exclude: vec!["cache".into()],
                exclude_types: vec!["log".into()],
                ..Default::default()
            }],
        }
    }

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "/etc/passwd", "root:x:0:0::/root:/bin/bash\n");
        write(r, "/etc/pam.d/sshd", "auth include common-auth\n");
        write(r, "/etc/pam.d/deep/x", "not direct\n");
        write(r, "/etc/shadow", "not in the policy\n");
        write(r, "/srv/www/index.html", "<h1>hello</h1>\n");
        write(r, "/srv/www/css/site.css", "body{}\n");
        write(r, "/srv/www/cache/page", "cached\n");
        write(r, "/srv/www/access.log", "GET /\n");
        d
    }

    #[test]
    fn a_scan_records_the_policy_s_files_with_their_hashes_and_nothing_else() {
        let d = tree();
        let s = scan(d.path(), &policy(), None);
        let paths: Vec<&str> = s.baseline.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "/etc/pam.d",
                "/etc/pam.d/deep",
                "/etc/pam.d/sshd",
                "/etc/passwd",
                "/srv/www/css",
                "/srv/www/css/site.css",
                "/srv/www/index.html",
            ]
        );
        let e = &s.baseline["/srv/www/index.html"];
        assert_eq!(
            e.hash.as_deref(),
            Some(blake3::hash(b"<h1>hello</h1>\n").to_hex().as_str())
        );
        assert_eq!((e.kind, e.size), (Kind::File, 15));
        assert!(s.errors.is_empty() && !s.truncated);
    }

    #[test]
    fn changes_are_modify_attributes_create_delete_and_move() {
        let d = tree();
        let r = d.path();
        let p = policy();
        let before = scan(r, &p, None).baseline;
        write(
            r,
            "/etc/passwd",
            "root:x:0:0::/root:/bin/bash\nevil:x:0:0::/:/bin/sh\n",
        );
        std::fs::set_permissions(
            at(r, "/srv/www/css/site.css"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        std::fs::rename(at(r, "/srv/www/index.html"), at(r, "/srv/www/old.html")).unwrap();
        write(r, "/srv/www/shell.php", "<?php system($_GET[1]);\n");
        std::fs::remove_file(at(r, "/etc/pam.d/sshd")).unwrap();
        write(r, "/srv/www/cache/new", "excluded\n");
        let after = scan(r, &p, None).baseline;
        let changes = diff(&before, &after);
        let got: Vec<(&str, Operation)> = changes.iter().map(|c| (c.path.as_str(), c.op)).collect();
        assert_eq!(
            got,
            [
                ("/etc/pam.d/sshd", Operation::Delete),
                ("/etc/passwd", Operation::Modify),
                ("/srv/www/css/site.css", Operation::Attributes),
                ("/srv/www/old.html", Operation::Move),
                ("/srv/www/shell.php", Operation::Create),
            ]
        );
        let modify = &changes[1];
        assert_ne!(
            modify.old.as_ref().unwrap().hash,
            modify.new.as_ref().unwrap().hash
        );
        assert_eq!(changes[3].from.as_deref(), Some("/srv/www/index.html"));
        assert!(important(&p, "/etc/pam.d/sshd") && !important(&p, "/etc/pam.d/deep/x"));
        assert!(changes.iter().all(|c| recorded(&p, c)));
        // A directory recording only deletions leaves the create out.
        let only_delete = FimPolicy {
            directories: vec![WatchedDir {
                operations: [Operation::Delete].into(),
                ..p.directories[0].clone()
            }],
            ..p.clone()
        };
        assert!(!recorded(&only_delete, &changes[4]));
    }

    #[test]
    fn a_check_reuses_the_hashes_of_unchanged_files_and_rereads_changed_ones() {
        let d = tree();
        let r = d.path();
        let p = policy();
        let mut before = scan(r, &p, None).baseline;
        // A hash the file cannot have: kept, so it was not re-read.
        before.get_mut("/srv/www/css/site.css").unwrap().hash = Some("kept".into());
        before.get_mut("/srv/www/index.html").unwrap().hash = Some("kept".into());
        // Same size, mtime put back: the ctime still moved.
        let f = at(r, "/srv/www/index.html");
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&f, "<h1>HACKED</h1>").unwrap();
        std::fs::File::options()
            .append(true)
            .open(&f)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let after = scan(r, &p, Some(&before)).baseline;
        assert_eq!(after["/srv/www/css/site.css"].hash.as_deref(), Some("kept"));
        assert_eq!(
            after["/srv/www/index.html"].hash.as_deref(),
            Some(blake3::hash(b"<h1>HACKED</h1>").to_hex().as_str())
        );
    }

    #[test]
    fn touching_a_file_is_not_a_change() {
        let d = tree();
        let before = scan(d.path(), &policy(), None).baseline;
        let f = std::fs::File::options()
            .append(true)
            .open(at(d.path(), "/srv/www/index.html"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert!(diff(&before, &scan(d.path(), &policy(), None).baseline).is_empty());
    }

    #[test]
    fn a_rescan_of_event_paths_gives_the_same_changes_as_a_full_scan() {
        let d = tree();
        let r = d.path();
        let p = policy();
        let before = scan(r, &p, None).baseline;
        std::fs::rename(at(r, "/srv/www/index.html"), at(r, "/srv/www/old.html")).unwrap();
        std::fs::create_dir_all(at(r, "/srv/www/new/deep")).unwrap();
        write(r, "/srv/www/new/deep/x.php", "<?php\n");
        write(r, "/srv/www/cache/y", "excluded\n");
        let events: Vec<String> = [
            "/srv/www/index.html",
            "/srv/www/old.html",
            "/srv/www/new",
            "/srv/www/cache/y",
            "/elsewhere/z",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (old, now) = rescan(r, &p, &events, &before);
        let partial = diff(&old, &now.baseline);
        let full = diff(&before, &scan(r, &p, Some(&before)).baseline);
        assert_eq!(partial, full);
        let got: Vec<(&str, Operation)> = partial.iter().map(|c| (c.path.as_str(), c.op)).collect();
        assert_eq!(
            got,
            [
                ("/srv/www/new", Operation::Create),
                ("/srv/www/new/deep", Operation::Create),
                ("/srv/www/new/deep/x.php", Operation::Create),
                ("/srv/www/old.html", Operation::Move),
            ]
        );
        assert!(!in_scope(&p, "/srv/www/cache/y") && !in_scope(&p, "/elsewhere/z"));
    }
}
