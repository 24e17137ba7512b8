//! What the sensor reports, whichever tier produced it: plain data, serialisable so that
//! detectors are tested on recorded sequences (`tests/fixtures/*.jsonl` in the agent).

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// One kernel event about a process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    Exec(Box<Exec>),
    /// A new process (not a thread): `child` starts as a copy of `task`.
    Fork {
        ts_ns: u64,
        task: Task,
        child: u32,
    },
    Exit {
        ts_ns: u64,
        pid: u32,
        code: i32,
    },
    /// An outbound connection (TCP SYN sent).
    Connect(Connect),
    /// A quarantined file was executed and the process killed before it ran.
    Killed(Box<Exec>),
    /// A successful set*id call: the process's credentials now (BPF tier), or as `/proc`
    /// read them right after the kernel reported the change (proc tier).
    Creds {
        ts_ns: u64,
        task: Task,
    },
    /// `ptrace(PTRACE_ATTACH or PTRACE_SEIZE, target)` by `task`.
    Ptrace {
        ts_ns: u64,
        task: Task,
        target: u32,
        /// "attach" or "seize"; "attach" from the proc tier, which does not tell them apart.
        request: String,
        /// The call's result: 0, or minus the errno (only successes from the proc tier).
        result: i32,
    },
    /// A new anonymous memory file (`memfd_create`).
    Memfd {
        ts_ns: u64,
        task: Task,
        name: String,
        flags: u32,
    },
    /// An inbound TCP connection accepted by `task` (`peer` is the remote end).
    Accept(Connect),
    /// A kernel module load asked for (`init_module`, `finit_module`), whatever the kernel said.
    Module {
        ts_ns: u64,
        task: Task,
        /// The module file's name (`finit_module`); empty when loaded from memory.
        #[serde(default)]
        file: String,
        /// 0 when loaded, else minus the errno (ENOSYS on a kernel without modules).
        result: i32,
    },
}

impl Event {
    /// When it happened, in boot-clock nanoseconds.
    pub fn ts_ns(&self) -> u64 {
        match self {
            Event::Exec(e) | Event::Killed(e) => e.ts_ns,
            Event::Connect(c) | Event::Accept(c) => c.ts_ns,
            Event::Fork { ts_ns, .. }
            | Event::Exit { ts_ns, .. }
            | Event::Creds { ts_ns, .. }
            | Event::Ptrace { ts_ns, .. }
            | Event::Memfd { ts_ns, .. }
            | Event::Module { ts_ns, .. } => *ts_ns,
        }
    }

    pub fn pid(&self) -> u32 {
        match self {
            Event::Exec(e) | Event::Killed(e) => e.task.pid,
            Event::Fork { task, .. } => task.pid,
            Event::Exit { pid, .. } => *pid,
            Event::Connect(c) | Event::Accept(c) => c.task.pid,
            Event::Creds { task, .. }
            | Event::Ptrace { task, .. }
            | Event::Memfd { task, .. }
            | Event::Module { task, .. } => task.pid,
        }
    }
}

/// Who did it: the process (thread group) and its credentials at the time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub pid: u32,
    pub ppid: u32,
    /// Session id (the session leader's pid).
    #[serde(default)]
    pub sid: u32,
    pub uid: u32,
    pub euid: u32,
    #[serde(default)]
    pub gid: u32,
    #[serde(default)]
    pub egid: u32,
    /// The parent's effective uid: an exec that raises euid above it crossed a privilege line.
    #[serde(default)]
    pub parent_euid: u32,
    #[serde(default)]
    pub comm: String,
}

impl Task {
    /// The kernel's "no id" (`(uid_t)-1`): credentials the tier could not tell.
    pub const UNKNOWN_ID: u32 = u32::MAX;

    /// A task known by its pid alone.
    pub fn unknown(pid: u32) -> Task {
        Task {
            pid,
            uid: Self::UNKNOWN_ID,
            euid: Self::UNKNOWN_ID,
            gid: Self::UNKNOWN_ID,
            egid: Self::UNKNOWN_ID,
            parent_euid: Self::UNKNOWN_ID,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Exec {
    pub ts_ns: u64,
    pub task: Task,
    /// The path exec was called with (may be relative, or `/dev/fd/N` for fexecve).
    pub filename: String,
    /// The name of the executed file's own directory entry (`memfd:x` for a memfd).
    #[serde(default)]
    pub file_name: String,
    #[serde(default)]
    pub ino: u64,
    #[serde(default)]
    pub dev: u32,
    /// The executed file's mode bits, set-user-ID and set-group-ID included.
    #[serde(default)]
    pub mode: u32,
    /// Links to the executed file; 0 for a deleted file or a memfd.
    #[serde(default = "one")]
    pub nlink: u32,
    pub argv: Vec<String>,
    /// Working directory; None when the tier could not read it.
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub tty: Option<String>,
    /// stdin, stdout and stderr of the new program.
    #[serde(default)]
    pub fds: [Fd; 3],
    /// The same three of its parent at the time.
    #[serde(default)]
    pub parent_fds: [Fd; 3],
}

fn one() -> u32 {
    1
}

pub const S_ISUID: u32 = 0o4000;
pub const S_ISGID: u32 = 0o2000;

impl Exec {
    /// The executable's path as best known: the exec path, made absolute with the cwd.
    pub fn exe(&self) -> String {
        if self.filename.starts_with('/') {
            return self.filename.clone();
        }
        match &self.cwd {
            Some(cwd) => format!("{}/{}", cwd.trim_end_matches('/'), self.filename),
            None => self.filename.clone(),
        }
    }

    /// Memfd or deleted file: nothing on disk to scan or quarantine.
    pub fn fileless(&self) -> bool {
        self.nlink == 0 || self.file_name.starts_with("memfd:")
    }

    pub fn setuid(&self) -> bool {
        self.mode & S_ISUID != 0
    }

    pub fn setgid(&self) -> bool {
        self.mode & S_ISGID != 0
    }

    pub fn command_line(&self) -> String {
        self.argv.join(" ")
    }
}

/// What a standard descriptor is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Fd {
    #[default]
    Closed,
    /// An internet socket, with its peer when connected.
    Inet {
        proto: Proto,
        #[serde(default)]
        peer: Option<SocketAddr>,
    },
    /// A unix or other non-internet socket.
    Socket,
    /// A pipe, by inode: both ends of a shell pipeline show the same one.
    Pipe {
        #[serde(default)]
        ino: u64,
    },
    /// A character device: terminals, /dev/null.
    Char,
    File,
    Other,
}

impl Fd {
    pub fn is_inet(&self) -> bool {
        matches!(self, Fd::Inet { .. })
    }

    pub fn pipe(&self) -> Option<u64> {
        match self {
            Fd::Pipe { ino } if *ino != 0 => Some(*ino),
            _ => None,
        }
    }

    pub fn peer(&self) -> Option<SocketAddr> {
        match self {
            Fd::Inet { peer, .. } => *peer,
            _ => None,
        }
    }
}

/// An internet socket's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    Tcp,
    Udp,
    Raw,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Raw => "raw",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connect {
    pub ts_ns: u64,
    pub task: Task,
    pub proto: Proto,
    pub peer: SocketAddr,
    /// The local port (for an accepted connection, the listening service's).
    #[serde(default)]
    pub local_port: u16,
}

impl Connect {
    pub fn peer_ip(&self) -> IpAddr {
        self.peer.ip()
    }
}
