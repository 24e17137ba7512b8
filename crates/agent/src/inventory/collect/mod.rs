//! Inventory collectors, one module per kind. Each reads the host under [`Ctx::root`] (`/` in
//! production, a fixture tree in tests), returns what it could read plus a [`CollectIssue`] for
//! every file it could not read or parse (naming the file and line), and never panics on bad
//! input: a corrupted file costs its own entries, not the rest of the inventory.
//!
//! Collectors are pure functions of the filesystem; scheduling, diffing and sending live in
//! [`crate::inventory`].

pub mod accounts;
pub mod autostart;
pub mod hashcache;
pub mod kmods;
pub mod middleware;
pub mod ports;
pub mod processes;
pub mod software;

use std::path::{Path, PathBuf};

use hostward_proto::InventoryKind;
use hostward_proto::inventory::{CollectIssue, InventoryPolicy, Items};

pub use hashcache::HashCache;

/// What a collector gets.
pub struct Ctx<'a> {
    /// Filesystem root the host is read under; `/` in production.
    pub root: &'a Path,
    pub policy: &'a InventoryPolicy,
    /// SHA-256 of files, cached by device, inode, mtime and size.
    pub hashes: &'a HashCache,
}

impl Ctx<'_> {
    /// Where a host path (`/etc/passwd`) is under the root.
    pub fn path(&self, host_path: &str) -> PathBuf {
        self.root.join(host_path.trim_start_matches('/'))
    }

    /// The host path of a file under the root, for items and issues.
    pub fn host_path(&self, path: &Path) -> String {
        match path.strip_prefix(self.root) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => path.display().to_string(),
        }
    }

    /// An issue about a host path, optionally at a 1-based line.
    pub fn issue(
        &self,
        host_path: &str,
        line: Option<u32>,
        message: impl Into<String>,
    ) -> CollectIssue {
        CollectIssue {
            file: host_path.to_string(),
            line,
            message: message.into(),
        }
    }

    /// Reads a host file as text. A missing file is `Ok(None)` (most inventory sources are
    /// optional); any other failure is an issue. Invalid UTF-8 is replaced, not fatal: the
    /// parsers then reject the damaged lines one by one.
    pub fn read_text(&self, host_path: &str, issues: &mut Vec<CollectIssue>) -> Option<String> {
        match std::fs::read(self.path(host_path)) {
            Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                issues.push(self.issue(host_path, None, format!("cannot read: {e}")));
                None
            }
        }
    }
}

/// A collector's result.
#[derive(Debug)]
pub struct Collected {
    pub items: Items,
    pub issues: Vec<CollectIssue>,
}

/// Runs the collector of one kind.
pub fn collect(kind: InventoryKind, ctx: &Ctx) -> Collected {
    match kind {
        InventoryKind::Accounts => accounts::collect(ctx),
        InventoryKind::Ports => ports::collect(ctx),
        InventoryKind::Processes => processes::collect(ctx),
        InventoryKind::Software => software::collect(ctx),
        InventoryKind::Autostart => autostart::collect(ctx),
        InventoryKind::KernelModules => kmods::collect(ctx),
        InventoryKind::Middleware => middleware::collect(ctx),
    }
}
