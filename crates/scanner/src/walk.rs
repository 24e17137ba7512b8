//! Walking the paths of a scan in one fixed order, so a scan interrupted by a restart goes on
//! from where it stopped: children sorted by name, depth first, which is the order of
//! [`Path`]'s component-wise comparison. A checkpoint is (root index, last path finished);
//! resuming skips every file at or before it and every directory wholly before it, without
//! reading them. Symlinks are not followed, other filesystems are not entered (each root is its
//! own), and excluded paths are left out with all below them.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where a scan stands: the root being walked and the last file finished in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub root: usize,
    pub after: Option<PathBuf>,
}

pub struct Walk<'a> {
    pub roots: &'a [PathBuf],
    pub exclude: &'a [PathBuf],
}

impl Walk<'_> {
    /// Calls `visit(root index, file)` for each regular file after `from`, in order; stops
    /// when `visit` returns false. Returns whether the walk finished.
    pub fn run(&self, from: &Checkpoint, visit: &mut dyn FnMut(usize, &Path) -> bool) -> bool {
        for (i, root) in self.roots.iter().enumerate().skip(from.root) {
            let after = if i == from.root {
                from.after.as_deref()
            } else {
                None
            };
            if !self.walk(i, root, None, after, visit) {
                return false;
            }
        }
        true
    }

    fn walk(
        &self,
        i: usize,
        p: &Path,
        dev: Option<u64>,
        after: Option<&Path>,
        visit: &mut dyn FnMut(usize, &Path) -> bool,
    ) -> bool {
        if self.exclude.iter().any(|e| p.starts_with(e)) {
            return true;
        }
        if let Some(a) = after
            && p <= a
            && !a.starts_with(p)
        {
            // Wholly before the checkpoint: done before the restart.
            return true;
        }
        let Ok(md) = std::fs::symlink_metadata(p) else {
            return true;
        };
        if dev.is_some_and(|d| d != md.dev()) {
            return true;
        }
        if md.is_file() {
            if after.is_some_and(|a| p <= a) {
                return true;
            }
            return visit(i, p);
        }
        if !md.is_dir() {
            return true;
        }
        let Ok(rd) = std::fs::read_dir(p) else {
            return true;
        };
        let mut kids: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        kids.sort();
        for k in kids {
            if !self.walk(i, &k, Some(md.dev()), after, visit) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for f in ["a/1", "a/2", "a/b/3", "a/b/c/4", "a/d/5", "e/6", "f", "x/7"] {
            let p = t.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("a/link")).unwrap();
        t
    }

    fn names(t: &Path, w: &Walk, from: &Checkpoint, stop_at: usize) -> (Vec<String>, bool) {
        let mut out = Vec::new();
        let done = w.run(from, &mut |_, p| {
            out.push(p.strip_prefix(t).unwrap().display().to_string());
            out.len() < stop_at
        });
        (out, done)
    }

    #[test]
    fn a_walk_resumes_after_its_checkpoint_in_the_same_order() {
        let t = tree();
        let roots = vec![t.path().join("a"), t.path().join("e"), t.path().join("f")];
        let exclude = vec![t.path().join("a/d")];
        let w = Walk {
            roots: &roots,
            exclude: &exclude,
        };
        let (all, done) = names(t.path(), &w, &Checkpoint::default(), usize::MAX);
        assert!(done);
        assert_eq!(all, ["a/1", "a/2", "a/b/3", "a/b/c/4", "e/6", "f"]);
        // Stopped after each file, resumed from there: the rest, each file once.
        for k in 1..all.len() {
            let (first, done) = names(t.path(), &w, &Checkpoint::default(), k);
            assert!(!done);
            let last = t.path().join(first.last().unwrap());
            let root = roots.iter().position(|r| last.starts_with(r)).unwrap();
            let (rest, done) = names(
                t.path(),
                &w,
                &Checkpoint {
                    root,
                    after: Some(last),
                },
                usize::MAX,
            );
            assert!(done);
            assert_eq!([first, rest].concat(), all, "stopped after {k}");
        }
    }
}
