//! High-risk commands: the policy's patterns against each command line, and a download piped
//! into a shell typed at a prompt (two execs joined by one pipe, which no single command line
//! shows).

use hostward_sensor::Exec;

use super::{Compiled, Finding, Pipes, command_line, is_interpreter, is_shell, name_of};

pub fn matches(cfg: &Compiled, e: &Exec) -> Vec<Finding> {
    let exe = e.exe();
    let cmd = command_line(&exe, &e.argv);
    cfg.commands
        .iter()
        .filter(|(_, re)| re.is_match(&cmd))
        .map(|(c, _)| Finding {
            alarm_type: "high_risk_command",
            key: format!("{} {}", c.name, exe),
            pid: e.task.pid,
            rule: Some(c.name.clone()),
            details: vec![
                clip(&format!("command: {cmd}")),
                clip(&format!("matched {}: {}", c.name, c.description)),
            ],
            ..Default::default()
        })
        .collect()
}

fn clip(s: &str) -> String {
    if s.len() <= 512 {
        return s.to_string();
    }
    let mut cut = 509;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

fn is_downloader(name: &str) -> bool {
    matches!(name, "curl" | "wget" | "fetch" | "aria2c" | "lwp-download")
}

/// `curl URL | sh` typed in a shell: the downloader's stdout and the shell's stdin are one pipe.
pub fn piped_download(pipes: &mut Pipes, e: &Exec, out: &mut Vec<Finding>) {
    let exe = e.exe();
    let name = name_of(&exe);
    let finding = |pid: u32, cmd: &str| Finding {
        alarm_type: "high_risk_command",
        key: format!("download_to_shell {exe}"),
        pid,
        rule: Some("download_to_shell".into()),
        details: vec![
            clip(&format!("downloader: {cmd}")),
            format!("piped into {name} (pid {})", e.task.pid),
        ],
        ..Default::default()
    };
    if is_downloader(name) {
        let Some(ino) = e.fds[1].pipe() else { return };
        let cmd = command_line(&exe, &e.argv);
        if let Some((shell_pid, _)) = pipes.readers.remove(&ino) {
            let mut f = finding(shell_pid, &cmd);
            f.details[1] = format!("piped into a shell or interpreter (pid {shell_pid})");
            out.push(f);
            return;
        }
        pipes.writers.insert(ino, (e.task.pid, cmd, e.ts_ns));
        pipes.order.push_back((ino, e.ts_ns));
    } else if is_shell(name) || is_interpreter(name) {
        let Some(ino) = e.fds[0].pipe() else { return };
        if let Some((_, cmd, _)) = pipes.writers.remove(&ino) {
            out.push(finding(e.task.pid, &cmd));
            return;
        }
        pipes.readers.insert(ino, (e.task.pid, e.ts_ns));
        pipes.order.push_back((ino, e.ts_ns));
    }
}
