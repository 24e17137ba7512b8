//! Archives inside scanned files: zip, gzip and tar, nested up to a depth. Every member is read
//! through a cap, never trusting the sizes an archive declares: a member larger than the cap,
//! one that expands more than `max_ratio` times its compressed size, or an archive that would
//! expand past the file's budget is a bomb, skipped with a reason and never expanded.

use std::io::{Cursor, Read};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Archives within archives: the file itself is depth 0.
    pub max_depth: u32,
    /// Bytes one member may expand to.
    pub max_member: u64,
    /// Bytes all members of one scanned file may expand to, at every depth.
    pub max_total: u64,
    /// Expanded / compressed size past which a member (of more than 1 MiB) is a bomb.
    pub max_ratio: u64,
    /// Members of one archive.
    pub max_members: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 4,
            max_member: 64 << 20,
            max_total: 256 << 20,
            max_ratio: 200,
            max_members: 50_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Zip,
    Gzip,
    Tar,
}

/// What kind of archive `data` is, by its magic numbers.
pub fn kind(data: &[u8]) -> Option<Kind> {
    if data.starts_with(b"PK\x03\x04") {
        Some(Kind::Zip)
    } else if data.starts_with(b"\x1f\x8b") {
        Some(Kind::Gzip)
    } else if data.len() >= 512 && &data[257..262] == b"ustar" {
        Some(Kind::Tar)
    } else {
        None
    }
}

/// Reads at most `cap` bytes; Err when there is more.
fn capped(r: impl Read, cap: u64, what: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{what}: unreadable ({e})"))?;
    if out.len() as u64 > cap {
        return Err(format!("{what}: expands past {cap} bytes"));
    }
    Ok(out)
}

/// A member's expansion against its compressed size.
fn ratio_ok(expanded: u64, compressed: u64, l: &Limits) -> bool {
    expanded <= 1 << 20 || expanded <= compressed.max(1).saturating_mul(l.max_ratio)
}

/// Calls `each(name, bytes)` for every member of `data` (a `kind` archive); `budget` is what
/// the scanned file may still expand to, at every depth (shared: the members of a member may
/// be expanded on another thread meanwhile). Err: the archive is a bomb or unreadable (the
/// reason); members already passed on stay scanned.
pub fn members(
    data: &[u8],
    kind: Kind,
    l: &Limits,
    budget: &AtomicU64,
    each: &mut dyn FnMut(&str, Vec<u8>),
) -> Result<(), String> {
    let take = |name: &str, r: &mut dyn Read, compressed: u64| -> Result<Vec<u8>, String> {
        // Read no further than the ratio allows: a bomb stops at its first excess byte.
        let by_ratio = compressed.max(1).saturating_mul(l.max_ratio).max(1 << 20);
        let left = budget.load(Ordering::Relaxed);
        let cap = l.max_member.min(by_ratio);
        let spent = || {
            format!(
                "{name}: not expanded, the file's members already expand to the limit of {} bytes",
                l.max_total
            )
        };
        let bytes = capped(r, cap.min(left), name).map_err(|e| {
            if left < cap {
                spent()
            } else {
                format!("bomb or oversized member: {e}")
            }
        })?;
        if !ratio_ok(bytes.len() as u64, compressed, l) {
            return Err(format!(
                "bomb: {name} expands {} bytes from {compressed} (more than {} times)",
                bytes.len(),
                l.max_ratio
            ));
        }
        let n = bytes.len() as u64;
        if budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(n))
            .is_err()
        {
            // Spent by another level meanwhile.
            return Err(spent());
        }
        Ok(bytes)
    };
    match kind {
        Kind::Zip => {
            let mut z = zip::ZipArchive::new(Cursor::new(data))
                .map_err(|e| format!("zip unreadable: {e}"))?;
            for i in 0..z.len() {
                if i >= l.max_members {
                    return Err(format!(
                        "{} members: those past the first {} not looked into",
                        z.len(),
                        l.max_members
                    ));
                }
                let mut f = z.by_index(i).map_err(|e| format!("zip member {i}: {e}"))?;
                if !f.is_file() {
                    continue;
                }
                let name = f
                    .name()
                    .map(|n| n.into_owned())
                    .unwrap_or_else(|_| format!("member {i}"));
                // The declared sizes first: a bomb that says what it is goes without a read.
                if !ratio_ok(f.size(), f.compressed_size(), l) || f.size() > l.max_member {
                    return Err(format!(
                        "bomb: {name} declares {} bytes from {} compressed",
                        f.size(),
                        f.compressed_size()
                    ));
                }
                let compressed = f.compressed_size();
                let bytes = take(&name, &mut f, compressed)?;
                each(&name, bytes);
            }
        }
        Kind::Gzip => {
            let mut d = flate2::read::GzDecoder::new(data);
            let name = d
                .header()
                .and_then(|h| h.filename())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_else(|| "(gunzipped)".into());
            let bytes = take(&name, &mut d, data.len() as u64)?;
            each(&name, bytes);
        }
        Kind::Tar => {
            let mut t = tar::Archive::new(Cursor::new(data));
            let entries = t.entries().map_err(|e| format!("tar unreadable: {e}"))?;
            for (n, e) in entries.enumerate() {
                if n >= l.max_members {
                    return Err(format!(
                        "members past the first {} not looked into",
                        l.max_members
                    ));
                }
                let mut e = e.map_err(|e| format!("tar member {n}: {e}"))?;
                if !e.header().entry_type().is_file() {
                    continue;
                }
                let name = e
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| format!("member {n}"));
                // A tar stores members as they are: its size is what it holds.
                let size = e.header().size().unwrap_or(0);
                let bytes = take(&name, &mut e, size)?;
                each(&name, bytes);
            }
        }
    }
    Ok(())
}
