//! Kernel module loads: how rootkits get into the kernel.

use hostward_sensor::Task;

use super::{Compiled, Finding};
use crate::behaviour::table::Table;

/// The pid of kthreadd: the kernel's own module requests run modprobe as its child.
const KTHREADD: u32 = 2;

/// Programs that load drivers on a healthy host: at boot and on hotplug.
fn system_loader(name: &str) -> bool {
    matches!(
        name,
        "systemd-udevd" | "(udev-worker)" | "systemd-modules-load" | "systemd-modules"
    )
}

/// An `init_module` or `finit_module` call, loaded or refused, by anything but the kernel's
/// own requests and the boot and hotplug loaders, of a module not on the allowed list.
pub fn load(
    cfg: &Compiled,
    task: &Task,
    file: &str,
    result: i32,
    t: &Table,
    out: &mut Vec<Finding>,
) {
    if !cfg.on("kernel_module") {
        return;
    }
    let module = module_name(file);
    if !module.is_empty() && cfg.policy.module_allowed.iter().any(|m| m == module) {
        return;
    }
    let loader = t.get(task.pid);
    let loader_name = loader.map_or(task.comm.as_str(), |p| p.name());
    if task.ppid == KTHREADD || system_loader(loader_name) || system_loader(&task.comm) {
        return;
    }
    let what = if file.is_empty() {
        "a module image from memory (init_module)".to_string()
    } else {
        format!("module file {file} (finit_module)")
    };
    let outcome = match result {
        0 => "the kernel loaded it".to_string(),
        -38 => "the kernel refused it: it has no module support (ENOSYS)".to_string(),
        e => format!("the kernel refused it (errno {})", -e),
    };
    let mut details = vec![format!(
        "{} (pid {}) asked the kernel to load {what}: {outcome}",
        loader.map_or(task.comm.as_str(), |p| p.exe.as_str()),
        task.pid
    )];
    if let Some(p) = loader {
        details.push(format!("command line: {}", p.command_line()));
    }
    out.push(Finding {
        alarm_type: "kernel_module_load",
        key: if module.is_empty() {
            format!("memory {}", loader_name)
        } else {
            module.to_string()
        },
        pid: task.pid,
        details,
        ..Default::default()
    });
}

/// `nf_tables.ko.zst` -> `nf_tables`.
pub fn module_name(file: &str) -> &str {
    let base = file.rsplit('/').next().unwrap_or(file);
    [".ko.zst", ".ko.xz", ".ko.gz", ".ko"]
        .iter()
        .find_map(|ext| base.strip_suffix(ext))
        .unwrap_or(base)
}
