//! Process injection: a program attaching with ptrace to a process it did not start.

use hostward_sensor::Task;

use super::{Compiled, Finding};
use crate::behaviour::table::Table;

/// `ptrace(PTRACE_ATTACH or PTRACE_SEIZE)` that succeeded on a process that is not the tracer's
/// descendant: a debugger on its own child (`gdb ./prog`, `strace cmd`) is what ptrace is for;
/// attaching to a running sshd or a shell of another session is how passwords and keys are
/// read out of memory and code is injected.
pub fn ptrace(
    cfg: &Compiled,
    task: &Task,
    target: u32,
    request: &str,
    result: i32,
    t: &Table,
    out: &mut Vec<Finding>,
) {
    if !cfg.on("process_injection") || result != 0 || target == task.pid {
        return;
    }
    if t.ancestors(target).iter().any(|a| a.pid == task.pid) {
        return;
    }
    let tracer = t.get(task.pid);
    let tracer_exe = tracer.map_or_else(|| task.comm.clone(), |p| p.exe.clone());
    if cfg.policy.ptrace_allowed.contains(&tracer_exe) {
        return;
    }
    let victim = t.get(target);
    let victim_exe = victim.map_or_else(|| "unknown".to_string(), |p| p.exe.clone());
    let mut details = vec![format!(
        "{tracer_exe} (pid {}) attached to {victim_exe} (pid {target}) with PTRACE_{}: it can read and change that process's memory",
        task.pid,
        request.to_uppercase()
    )];
    if let Some(v) = victim {
        details.push(format!(
            "traced process: {} (uid {}), not started by the tracer",
            v.command_line(),
            v.uid
        ));
    }
    out.push(Finding {
        alarm_type: "process_injection",
        key: format!("{tracer_exe} -> {victim_exe}"),
        pid: task.pid,
        details,
        ..Default::default()
    });
}
