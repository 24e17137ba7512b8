//! Killing a process tree: every process is stopped first (so none forks a replacement while
//! its siblings die), then killed. The tree is read from `/proc` (a function of the proc root).

use std::collections::HashMap;
use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// pid -> ppid of every process under `proc`.
pub fn parents(proc: &Path) -> HashMap<u32, u32> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(proc) else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let after = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
            out.insert(pid, ppid);
        }
    }
    out
}

/// `root` and all its descendants, root first.
pub fn tree(parents: &HashMap<u32, u32>, root: u32) -> Vec<u32> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        let mut kids: Vec<u32> = parents
            .iter()
            .filter(|(c, pp)| **pp == p && **c != p)
            .map(|(c, _)| *c)
            .collect();
        kids.sort_unstable();
        for k in kids {
            if !out.contains(&k) {
                out.push(k);
            }
        }
        i += 1;
    }
    out
}

/// Stops (SIGSTOP) the tree under `root`, so none of it forks or writes any more; returns the
/// pids stopped. Never pid 1 or us.
pub fn stop_tree(proc: &Path, root: u32) -> Vec<u32> {
    let me = std::process::id();
    let pids: Vec<u32> = tree(&parents(proc), root)
        .into_iter()
        .filter(|p| *p > 1 && *p != me)
        .collect();
    for p in &pids {
        let _ = kill(Pid::from_raw(*p as i32), Signal::SIGSTOP);
    }
    pids
}

/// Stops then kills the tree under `root`; returns the pids signalled. Never pid 1 or us.
pub fn kill_tree(proc: &Path, root: u32) -> Vec<u32> {
    stop_tree(proc, root)
        .into_iter()
        .filter(|p| kill(Pid::from_raw(*p as i32), Signal::SIGKILL).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_follow_parents() {
        let parents: HashMap<u32, u32> = [(10, 1), (11, 10), (12, 11), (13, 10), (20, 1)].into();
        assert_eq!(tree(&parents, 10), [10, 11, 13, 12]);
        assert_eq!(tree(&parents, 20), [20]);
    }

    #[test]
    fn a_real_tree_dies() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 60 & sleep 60 & wait"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let root = child.id();
        let kids = tree(&parents(Path::new("/proc")), root);
        assert!(kids.len() >= 3, "sh and two sleeps: {kids:?}");
        let killed = kill_tree(Path::new("/proc"), root);
        assert_eq!(killed.len(), kids.len());
        let status = child.wait().unwrap();
        assert!(!status.success());
        std::thread::sleep(std::time::Duration::from_millis(100));
        for k in &kids[1..] {
            let alive = std::fs::read_to_string(format!("/proc/{k}/stat"))
                .is_ok_and(|s| !s.contains(") Z "));
            assert!(!alive, "{k} still runs");
        }
    }
}
