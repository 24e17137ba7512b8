//! The daemon's heap between jobs: one malloc arena, and freed heap given back after each
//! inventory collection and risk scan.
//!
//! Why: idle, the agent only heartbeats, polls its outbox and follows logs, yet its anonymous
//! memory was what its heaviest moments left behind. glibc gives each thread that allocates its
//! own arena (up to 8 per core) and keeps freed memory inside arenas, and the blocking pool
//! starts a fresh thread for nearly every 30 s ports collection, so collections left freed heap
//! in several arenas. Both are undone here; nothing polls more: [`release`] runs after jobs only.
//! (The executable's code pages that ran once stay resident: they are clean page-cache pages,
//! so unmapping them would lower the RSS figure without freeing any memory; a smaller binary is
//! what shrinks them.)

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

/// Gives the heap's free pages (every arena) back to the kernel after a finished job.
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// [`release`] on the blocking pool, for the daemon's job loops.
pub async fn release_after_job() {
    let _ = tokio::task::spawn_blocking(release).await;
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
