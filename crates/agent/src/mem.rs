//! The daemon's memory between jobs: one malloc arena, and freed heap and one-off code pages
//! given back after each inventory collection and risk scan.
//!
//! Why: idle, the agent only heartbeats, polls its outbox and follows logs, yet its RSS was
//! what its heaviest moments left behind. glibc gives each thread that allocates its own arena
//! (up to 8 per core) and keeps freed memory inside arenas, and the blocking pool starts a fresh
//! thread for nearly every 30 s ports collection, so collections left heap everywhere. The code
//! of collectors, scans and startup stays mapped once run, and the kernel maps its neighbours
//! with it (fault-around), so most of the executable's text was resident though idle code is a
//! small part of it. Both are undone here; nothing polls more: [`release`] runs after jobs only.

/// One arena for every thread. The agent's threads (runtime, blocking pool, SQLite worker, log
/// followers) rarely allocate at once, so the lock costs nothing measurable, while each extra
/// arena keeps its own freed memory. Call before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
}

/// Gives back what a finished job left: free heap pages (every arena) and the resident pages of
/// the executable's read-only mappings (code, constants). Those pages are clean copies of the
/// file, so dropping them loses nothing: the code that idle runs faults them back from the page
/// cache. Blocking (reads /proc/self/smaps); call it off the runtime thread or where that's fine.
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel.
    unsafe {
        nix::libc::malloc_trim(0);
    }
    #[cfg(target_os = "linux")]
    drop_clean_exe_pages();
}

/// [`release`] on the blocking pool, for the daemon's job loops.
pub async fn release_after_job() {
    let _ = tokio::task::spawn_blocking(release).await;
}

/// Read-only, file-backed, private mappings of the executable that hold no private (written)
/// page: text and rodata, not RELRO (written by the loader, then made read-only) nor data.
#[cfg(target_os = "linux")]
fn clean_exe_mappings(smaps: &str, exe: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut f = line.split_ascii_whitespace();
        let first = f.next().unwrap_or_default();
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            let perms = f.next().unwrap_or_default();
            let path = f.nth(3).unwrap_or_default();
            cur = (path == exe && (perms == "r-xp" || perms == "r--p")).then_some((a, b - a));
        } else if first == "Anonymous:"
            && let Some(m) = cur.take()
            && f.next() == Some("0")
        {
            out.push(m);
        }
    }
    out
}

#[cfg(target_os = "linux")]
fn drop_clean_exe_pages() {
    let (Ok(exe), Ok(smaps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/smaps"),
    ) else {
        return;
    };
    let Some(exe) = exe.to_str() else { return };
    for (addr, len) in clean_exe_mappings(&smaps, exe) {
        // SAFETY: the range is a whole mapping of the executable, read-only and without private
        // pages, so MADV_DONTNEED only unmaps pages that later accesses refill from the file.
        unsafe {
            nix::libc::madvise(addr as *mut _, len, nix::libc::MADV_DONTNEED);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn status_kb(field: &str) -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap()
    }

    #[test]
    fn only_clean_read_only_mappings_of_the_executable_are_dropped() {
        let smaps = "\
55d0a0000000-55d0a0100000 r--p 00000000 08:01 42 /usr/bin/hostward-agent
Rss:                 100 kB
Anonymous:             0 kB
55d0a0100000-55d0a0900000 r-xp 00100000 08:01 42 /usr/bin/hostward-agent
Anonymous:             0 kB
55d0a0900000-55d0a0940000 r--p 00900000 08:01 42 /usr/bin/hostward-agent
Anonymous:           228 kB
55d0a0940000-55d0a0942000 rw-p 00940000 08:01 42 /usr/bin/hostward-agent
Anonymous:             8 kB
7f0000000000-7f0000100000 r-xp 00000000 08:01 7 /usr/lib/libc.so.6
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Anonymous:           512 kB
";
        assert_eq!(
            clean_exe_mappings(smaps, "/usr/bin/hostward-agent"),
            vec![(0x55d0a0000000, 0x100000), (0x55d0a0100000, 0x800000)]
        );
        let own = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        assert!(!clean_exe_mappings(&own, exe.to_str().unwrap()).is_empty());
    }

    #[cfg(target_env = "gnu")]
    #[test]
    fn freed_heap_goes_back_to_the_kernel() {
        // 32 MiB in small blocks, all freed but the last, which pins the heap's top: only
        // malloc_trim gives the pages below it back.
        let mut blocks: Vec<Vec<u8>> = (0..32 * 1024).map(|_| vec![1u8; 1000]).collect();
        let last = blocks.pop();
        drop(blocks);
        let held = status_kb("RssAnon:");
        release();
        let after = status_kb("RssAnon:");
        drop(last);
        assert!(
            after + 16 * 1024 < held,
            "RssAnon {held} kB before release, {after} kB after"
        );
    }
}
