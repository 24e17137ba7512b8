//! SHA-256 of files, cached by (device, inode, mtime, size) so an unchanged binary is hashed once
//! per agent run, not once per cycle.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

#[derive(Debug, Default)]
pub struct HashCache {
    entries: Mutex<HashMap<(u64, u64), Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    mtime_ns: i128,
    size: u64,
    sha256: String,
}

impl HashCache {
    /// Files larger than this are not hashed (a 4 GiB database file is no executable).
    pub const MAX_BYTES: u64 = 512 << 20;

    /// Hex SHA-256 of a regular file; `None` for a missing, unreadable, special or huge file.
    pub fn sha256(&self, path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() || meta.len() > Self::MAX_BYTES {
            return None;
        }
        let key = (meta.dev(), meta.ino());
        let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        if let Some(e) = self.entries.lock().unwrap().get(&key)
            && e.mtime_ns == mtime_ns
            && e.size == meta.len()
        {
            return Some(e.sha256.clone());
        }
        let sha256 = hash_file(path)?;
        self.entries.lock().unwrap().insert(
            key,
            Entry {
                mtime_ns,
                size: meta.len(),
                sha256: sha256.clone(),
            },
        );
        Some(sha256)
    }

    /// Number of cached hashes, for tests and the bench.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Hex SHA-256 of a byte string.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hex SHA-256 of a file, uncached. Plain reads, not mmap: a file truncated while mapped
/// raises SIGBUS.
pub fn hash_file(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    Some(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_files_hit_the_cache_and_changed_ones_are_rehashed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin");
        std::fs::write(&p, b"abc").unwrap();
        let cache = HashCache::default();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(cache.sha256(&p).as_deref(), Some(abc));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.sha256(&p).as_deref(), Some(abc));
        std::fs::write(&p, b"abcd").unwrap();
        assert_ne!(
            cache.sha256(&p).as_deref(),
            Some(abc),
            "size changed: rehashed"
        );
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.sha256(&dir.path().join("missing")), None);
        assert_eq!(cache.sha256(dir.path()), None, "directories are not hashed");
    }
}
