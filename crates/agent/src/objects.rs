//! The content-addressed object store the file protections keep their copies in: each
//! content once, by its BLAKE3 (`<dir>/objects/ab/cdef…`, 0400 in 0700 directories, in the
//! agent's state dir, outside every protected tree), put back at a path as a manifest entry
//! says (the file integrity engine's [`Entry`]: kind, size, mode, owner, hash or symlink
//! target). Tamper protection restores from one (its reference), the ransomware backups keep
//! their snapshots in another.

use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::fim::engine::{Baseline, Entry, Kind, hash_file};

#[derive(Clone)]
pub struct Objects {
    objects: PathBuf,
}

fn private_dir(p: &Path) -> io::Result<()> {
    std::fs::create_dir_all(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
}

impl Objects {
    pub fn open(dir: &Path) -> io::Result<Objects> {
        private_dir(dir)?;
        let objects = dir.join("objects");
        private_dir(&objects)?;
        Ok(Objects { objects })
    }

    fn object(&self, hash: &str) -> PathBuf {
        self.objects.join(&hash[..2.min(hash.len())]).join(hash)
    }

    pub fn has(&self, hash: &str) -> bool {
        self.object(hash).exists()
    }

    /// Keeps the content of `file` under `hash` unless it is there already. The copy is hashed
    /// as it is made: a file that changed since it was hashed is an error, not a wrong backup.
    pub fn store(&self, file: &Path, hash: &str) -> io::Result<()> {
        let dest = self.object(hash);
        if dest.exists() {
            return Ok(());
        }
        private_dir(dest.parent().unwrap_or(&self.objects))?;
        let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
        let result = (|| {
            std::fs::copy(file, &tmp)?;
            let got = hash_file(&tmp)?;
            if got != hash {
                return Err(io::Error::other(format!(
                    "{} changed while it was backed up",
                    file.display()
                )));
            }
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o400))?;
            std::fs::rename(&tmp, &dest)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Puts `host` (under `root`) back as `e` says: a file's content from the backup, written
    /// beside it and renamed over it (a reader sees the old or the restored file, never half
    /// of one), with its mode and owner; a directory made; a symlink made again. The caller
    /// unlocks the parent directory around this.
    pub fn restore(&self, root: &Path, host: &str, e: &Entry) -> io::Result<()> {
        let dest = root.join(host.trim_start_matches('/'));
        let parent = dest.parent().unwrap_or(root);
        let tmp = parent.join(format!(".hostward-restore-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        match e.kind {
            Kind::File => {
                let hash = e.hash.as_deref().unwrap_or_default();
                std::fs::copy(self.object(hash), &tmp)?;
            }
            Kind::Symlink => symlink(e.hash.as_deref().unwrap_or_default(), &tmp)?,
            Kind::Dir => {
                match std::fs::symlink_metadata(&dest) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => remove(&dest)?,
                    Err(_) => {}
                }
                if !dest.exists() {
                    std::fs::create_dir(&dest)?;
                }
                return attributes(&dest, e);
            }
            Kind::Other => return Ok(()),
        }
        let done = (|| {
            if e.kind != Kind::Symlink {
                attributes(&tmp, e)?;
            } else {
                std::os::unix::fs::lchown(&tmp, Some(e.uid), Some(e.gid))?;
            }
            if std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
                remove(&dest)?;
            }
            std::fs::rename(&tmp, &dest)
        })();
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        done
    }

    /// Bytes the store holds.
    pub fn bytes(&self) -> u64 {
        let mut total = 0;
        for sub in std::fs::read_dir(&self.objects)
            .into_iter()
            .flatten()
            .flatten()
        {
            for obj in std::fs::read_dir(sub.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                total += obj.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        total
    }

    /// Deletes objects no manifest refers to any more.
    pub fn prune(&self, keep: &[&Baseline]) -> io::Result<u64> {
        let live: std::collections::HashSet<&str> = keep
            .iter()
            .flat_map(|b| b.values())
            .filter(|e| e.kind == Kind::File)
            .filter_map(|e| e.hash.as_deref())
            .collect();
        let mut removed = 0;
        for sub in std::fs::read_dir(&self.objects)?.flatten() {
            for obj in std::fs::read_dir(sub.path())?.flatten() {
                let name = obj.file_name().to_string_lossy().into_owned();
                if !live.contains(name.as_str()) {
                    std::fs::remove_file(obj.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

fn attributes(p: &Path, e: &Entry) -> io::Result<()> {
    std::os::unix::fs::chown(p, Some(e.uid), Some(e.gid))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(e.mode))
}

/// Removes what should not be at `p`: a file, a symlink, or a directory with all in it.
pub fn remove(p: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fim::engine::entry;

    #[test]
    fn a_file_comes_back_with_its_content_mode_and_owner_and_unreferenced_objects_go() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("www")).unwrap();
        std::fs::write(root.join("www/index.html"), "<h1>original</h1>").unwrap();
        std::fs::set_permissions(
            root.join("www/index.html"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        std::os::unix::fs::symlink("index.html", root.join("www/home.html")).unwrap();
        let b = Objects::open(&d.path().join("backup")).unwrap();
        let e = entry(&root, "/www/index.html", None).unwrap().unwrap();
        let l = entry(&root, "/www/home.html", None).unwrap().unwrap();
        b.store(&root.join("www/index.html"), e.hash.as_deref().unwrap())
            .unwrap();
        assert!(b.has(e.hash.as_deref().unwrap()));
        let mode = std::fs::metadata(d.path().join("backup"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
        // A wrong hash is refused, not stored.
        assert!(
            b.store(&root.join("www/index.html"), &"0".repeat(64))
                .is_err()
        );

        std::fs::write(root.join("www/index.html"), "defaced").unwrap();
        std::fs::set_permissions(
            root.join("www/index.html"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        std::fs::remove_file(root.join("www/home.html")).unwrap();
        b.restore(&root, "/www/index.html", &e).unwrap();
        b.restore(&root, "/www/home.html", &l).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("www/index.html")).unwrap(),
            "<h1>original</h1>"
        );
        let now = entry(&root, "/www/index.html", None).unwrap().unwrap();
        assert_eq!((now.mode, now.hash.clone()), (0o640, e.hash.clone()));
        assert_eq!(
            std::fs::read_link(root.join("www/home.html")).unwrap(),
            Path::new("index.html")
        );
        assert!(std::fs::read_dir(root.join("www")).unwrap().all(|f| {
            !f.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".hostward")
        }));

        let empty = Baseline::new();
        assert_eq!(b.prune(&[&empty]).unwrap(), 1);
        assert!(!b.has(e.hash.as_deref().unwrap()));
    }
}
