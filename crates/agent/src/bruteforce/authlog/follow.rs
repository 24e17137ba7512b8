//! Following one log file: inotify on its directory (plus a slow tick as a safety net), reading
//! bytes by offset and splitting on `\n`, through rename+create rotation (the renamed file is
//! read to its end by its open descriptor, and a little longer since the writer may not have
//! reopened yet, before the new one) and copytruncate (the file shrank, or the bytes before our
//! offset changed: first the copy beside it from where we stopped, when one holds what we read,
//! then start again at 0). The position is kept in a state file so that a restart
//! neither replays nor loses lines; without one, reading starts at the end.

use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::Sender;

use super::{Counters, MAX_LINE, Skip, Stats, parse_for};
use hostward_agent_core::util::replace_file;
pub(crate) use hostward_agent_core::util::unix_now;

use crate::bruteforce::{AuthEvent, Service};

const CHUNK: usize = 64 * 1024;
/// Bytes before the offset remembered to recognise the file we were reading: a copytruncate
/// followed by more writes than we had read leaves a file as long as before but different.
const TAIL: usize = 32;
/// How long a rotated file is still read: rsyslog writes to it until its HUP after the rename.
const GRACE: Duration = Duration::from_secs(5);
/// Wait between looks when inotify says nothing (it can miss a directory that reappears).
const TICK_MS: u16 = 500;

/// Receives each line, or the skip of a dropped one.
pub(crate) type OnLine<'a> = dyn FnMut(Result<&[u8], Skip>) + 'a;

/// Lines out of a byte stream: complete lines are handed out, a partial last line waits for its
/// newline, and a line over [`MAX_LINE`] is dropped (reported once) without being buffered.
#[derive(Debug)]
pub(crate) struct LineBuf {
    pending: Vec<u8>,
    /// Inside a dropped line; `true` if it must be reported as too long when it ends.
    discard: Option<bool>,
    max: usize,
}

impl Default for LineBuf {
    fn default() -> Self {
        LineBuf::with_max(MAX_LINE)
    }
}

impl LineBuf {
    pub(crate) fn with_max(max: usize) -> LineBuf {
        LineBuf {
            pending: Vec::new(),
            discard: None,
            max,
        }
    }

    pub(crate) fn feed(&mut self, chunk: &[u8], f: &mut OnLine<'_>) {
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let piece = &rest[..i];
            rest = &rest[i + 1..];
            if let Some(report) = self.discard.take() {
                if report {
                    f(Err(Skip::TooLong));
                }
            } else if self.pending.is_empty() {
                f(Ok(piece));
            } else {
                self.pending.extend_from_slice(piece);
                f(Ok(&self.pending));
                self.pending.clear();
            }
        }
        if self.discard.is_none() && !rest.is_empty() {
            // Room for the `\r` a line may end with.
            if self.pending.len() + rest.len() > self.max + 1 {
                self.pending.clear();
                self.discard = Some(true);
            } else {
                self.pending.extend_from_slice(rest);
            }
        }
    }

    /// The stream ended: what is pending is a last line without its newline.
    pub(crate) fn finish(&mut self, f: &mut OnLine<'_>) {
        if self.discard.take() == Some(true) {
            f(Err(Skip::TooLong));
        } else if !self.pending.is_empty() {
            f(Ok(&self.pending));
        }
        self.pending.clear();
    }

    fn reset(&mut self) {
        self.pending.clear();
        self.discard = None;
    }
}

/// What the state file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    dev: u64,
    ino: u64,
    offset: u64,
    /// Hex of the bytes just before `offset`.
    tail: String,
}

struct Open {
    file: File,
    dev: u64,
    ino: u64,
    /// Everything before this is done: complete lines, and dropped bytes of a too-long line.
    offset: u64,
    lines: LineBuf,
    /// Up to [`TAIL`] bytes just before `offset`.
    tail: Vec<u8>,
}

impl Open {
    fn new(path: &Path) -> Option<Open> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot open log");
                return None;
            }
        };
        let md = file.metadata().ok()?;
        Some(Open {
            file,
            dev: md.dev(),
            ino: md.ino(),
            offset: 0,
            lines: LineBuf::default(),
            tail: Vec::new(),
        })
    }

    fn len(&self) -> u64 {
        // An unreadable size must not look like a truncation.
        self.file.metadata().map_or(u64::MAX, |m| m.len())
    }

    fn read_pos(&self) -> u64 {
        self.offset + self.lines.pending.len() as u64
    }

    fn bytes_at(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let mut b = vec![0; len];
        self.file.read_exact_at(&mut b, offset).ok()?;
        Some(b)
    }

    fn set_offset(&mut self, offset: u64) {
        self.offset = offset;
        self.lines.reset();
        let n = TAIL.min(offset as usize);
        self.tail = self.bytes_at(offset - n as u64, n).unwrap_or_default();
    }

    /// At the end, but at the start of the last (maybe still being written) line.
    fn seek_end(&mut self) {
        let len = self.len();
        let n = len.min(16 * 1024);
        let last = self.bytes_at(len - n, n as usize).unwrap_or_default();
        match last.iter().rposition(|&b| b == b'\n') {
            Some(i) => self.set_offset(len - n + i as u64 + 1),
            None => {
                self.set_offset(len);
                if len > 0 {
                    self.lines.discard = Some(false);
                }
            }
        }
    }

    /// At `s` if it still describes this file, else at the start.
    fn resume(&mut self, s: &Saved) {
        let tail = hex::decode(&s.tail).unwrap_or_default();
        let fits = s.offset <= self.len()
            && tail.len() as u64 <= s.offset
            && self.bytes_at(s.offset - tail.len() as u64, tail.len()) == Some(tail);
        self.set_offset(if fits { s.offset } else { 0 });
    }

    /// Copytruncate: shorter than what we read, or not the bytes we read.
    fn truncated(&self) -> bool {
        if self.len() < self.read_pos() {
            return true;
        }
        !self.tail.is_empty()
            && self
                .bytes_at(self.offset - self.tail.len() as u64, self.tail.len())
                .as_deref()
                != Some(&self.tail[..])
    }

    fn saved(&self) -> Saved {
        Saved {
            dev: self.dev,
            ino: self.ino,
            offset: self.offset,
            tail: hex::encode(&self.tail),
        }
    }
}

/// Sends a batch of events; `false` when nobody listens any more.
pub type Deliver<'a> = dyn FnMut(Vec<AuthEvent>) -> bool + 'a;

struct Ctx<'a, 'b> {
    services: &'a [Service],
    counters: &'a Counters,
    buf: &'a mut Vec<u8>,
    deliver: &'a mut Deliver<'b>,
    state_file: Option<&'a Path>,
    saved: &'a mut Option<Saved>,
}

impl Ctx<'_, '_> {
    fn handle(&self, line: Result<&[u8], Skip>, now: i64, out: &mut Vec<AuthEvent>) {
        let r = line.and_then(|l| parse_for(self.services, l, now));
        self.counters.count(&r);
        if let Ok(Some(e)) = r {
            out.push(e);
        }
    }

    /// Reads `o` to its end. `persist`: `o` is the current file, whose position is saved after
    /// each batch is delivered. `Err` when the receiver is gone.
    fn drain(&mut self, o: &mut Open, persist: bool) -> Result<(), ()> {
        loop {
            let pos = o.read_pos();
            let n = match o.file.read_at(self.buf, pos) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read log");
                    return Ok(());
                }
            };
            let now = unix_now();
            let mut events = Vec::new();
            let chunk = &self.buf[..n];
            o.lines
                .feed(chunk, &mut |l| self.handle(l, now, &mut events));
            let end = pos + n as u64;
            let offset = end - o.lines.pending.len() as u64;
            if offset != o.offset {
                // The tail is in this chunk unless the chunk was mostly a partial line.
                let k = offset.saturating_sub(pos) as usize;
                o.offset = offset;
                o.tail = if k >= TAIL {
                    chunk[k - TAIL..k].to_vec()
                } else {
                    let t = TAIL.min(offset as usize);
                    o.bytes_at(offset - t as u64, t).unwrap_or_default()
                };
            }
            if !events.is_empty() && !(self.deliver)(events) {
                return Err(());
            }
            if persist {
                self.persist(o);
            }
        }
    }

    /// Reads a rotated file to its end, with a last line lacking its newline.
    fn finish(&mut self, mut o: Open) -> Result<(), ()> {
        self.drain(&mut o, false)?;
        let mut events = Vec::new();
        let now = unix_now();
        o.lines.finish(&mut |l| self.handle(l, now, &mut events));
        if !events.is_empty() && !(self.deliver)(events) {
            return Err(());
        }
        Ok(())
    }

    fn persist(&mut self, o: &Open) {
        let Some(path) = self.state_file else {
            return;
        };
        let s = o.saved();
        if self.saved.as_ref() == Some(&s) {
            return;
        }
        match write_state(path, &s) {
            Ok(()) => *self.saved = Some(s),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot save log position")
            }
        }
    }
}

fn write_state(path: &Path, s: &Saved) -> std::io::Result<()> {
    // Not fsynced: after a power cut a few lines are read twice at worst.
    replace_file(path, &serde_json::to_vec(s)?, 0o644, false)
}

/// The state file name for a followed path.
pub(crate) fn state_file_name(path: &Path) -> String {
    let p = path.to_string_lossy();
    let mut name = String::from("authlog");
    for c in p.chars() {
        name.push(if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            c
        } else {
            '_'
        });
    }
    name.push_str(".state");
    name
}

/// Follows one log file for the services that log to it.
pub struct Follower {
    path: PathBuf,
    services: Vec<Service>,
    state_file: Option<PathBuf>,
    counters: Arc<Counters>,
    started: bool,
    cur: Option<Open>,
    /// A rotated file still read, and when we noticed the rotation.
    old: Option<(Open, Instant)>,
    saved: Option<Saved>,
    buf: Vec<u8>,
}

impl Follower {
    /// `state_file`: where the position is kept (none: start at the end on each start).
    pub fn new(path: PathBuf, services: Vec<Service>, state_file: Option<PathBuf>) -> Follower {
        Follower::with_counters(path, services, state_file, Arc::default())
    }

    pub(crate) fn with_counters(
        path: PathBuf,
        services: Vec<Service>,
        state_file: Option<PathBuf>,
        counters: Arc<Counters>,
    ) -> Follower {
        Follower {
            path,
            services,
            state_file,
            counters,
            started: false,
            cur: None,
            old: None,
            saved: None,
            buf: vec![0; CHUNK],
        }
    }

    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    fn start(&mut self) {
        let saved = self.state_file.as_deref().and_then(|p| {
            let s = serde_json::from_slice::<Saved>(&std::fs::read(p).ok()?);
            s.map_err(|e| tracing::warn!(path = %p.display(), error = %e, "bad log position file"))
                .ok()
        });
        let cur = Open::new(&self.path);
        match (saved, cur) {
            (Some(s), Some(mut c)) if (c.dev, c.ino) == (s.dev, s.ino) => {
                c.resume(&s);
                self.cur = Some(c);
            }
            // Rotated while we were not running: finish the old file if it is still beside
            // (not yet compressed), then read the new one from its start.
            (Some(s), cur) => {
                self.old = find_rotated(&self.path, &s).map(|o| (o, Instant::now()));
                self.cur = cur;
            }
            (None, Some(mut c)) => {
                c.seek_end();
                self.cur = Some(c);
            }
            (None, None) => {}
        }
    }

    /// Reads whatever is new and hands it to `deliver`; `false` when `deliver` refused.
    pub fn poll(&mut self, deliver: &mut Deliver<'_>) -> bool {
        if !self.started {
            self.start();
            self.started = true;
        }
        let Follower {
            path,
            services,
            state_file,
            counters,
            cur,
            old,
            saved,
            buf,
            ..
        } = self;
        let mut cx = Ctx {
            services,
            counters,
            buf,
            deliver,
            state_file: state_file.as_deref(),
            saved,
        };
        // The rotated file first: its lines are older than the new file's.
        if let Some((o, since)) = old {
            if cx.drain(o, false).is_err() {
                return false;
            }
            if since.elapsed() >= GRACE {
                let (o, _) = old.take().expect("old is set");
                if cx.finish(o).is_err() {
                    return false;
                }
            }
        }
        let id = std::fs::metadata(&*path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| (m.dev(), m.ino()));
        match (cur.as_mut(), id) {
            (Some(c), Some(id)) if (c.dev, c.ino) == id => {
                if c.truncated() {
                    tracing::info!(path = %path.display(), "log truncated, reading from its start");
                    // Copytruncate copies first: lines written after our last read and before the
                    // truncation are only in the copy.
                    if let Some(copy) = find_copy(path, c)
                        && cx.finish(copy).is_err()
                    {
                        return false;
                    }
                    c.set_offset(0);
                }
            }
            (Some(_), Some(_)) => {
                let mut c = cur.take().expect("cur is set");
                if cx.drain(&mut c, false).is_err() {
                    return false;
                }
                if let Some((o, _)) = old.take()
                    && cx.finish(o).is_err()
                {
                    return false;
                }
                *old = Some((c, Instant::now()));
                *cur = Open::new(path);
            }
            (None, Some(_)) => *cur = Open::new(path),
            // Renamed and not yet recreated, or deleted: the open file is still worth reading.
            (_, None) => {}
        }
        if let Some(c) = cur {
            if cx.drain(c, true).is_err() {
                return false;
            }
            cx.persist(c);
        }
        true
    }

    /// Follows until `stop` is set or `tx` is closed.
    pub fn run(&mut self, stop: &AtomicBool, tx: &Sender<AuthEvent>) {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| tracing::warn!(error = %e, "no inotify, polling the log"))
            .ok();
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self.path.file_name().map(|n| n.to_os_string());
        let mask = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        let mut watching = false;
        let mut deliver =
            |events: Vec<AuthEvent>| events.into_iter().all(|e| tx.blocking_send(e).is_ok());
        while !stop.load(Ordering::Relaxed) {
            if let Some(i) = &inotify
                && !watching
            {
                watching = i.add_watch(&dir, mask).is_ok();
            }
            if !self.poll(&mut deliver) {
                break;
            }
            let Some(i) = inotify.as_ref().filter(|_| watching) else {
                std::thread::sleep(Duration::from_millis(TICK_MS.into()));
                continue;
            };
            // Wait for an event about our file (the directory may be /var/log, busy with
            // others), any event while a rotated file is still read, or the tick.
            let deadline = Instant::now() + Duration::from_millis(TICK_MS.into());
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let ms = u16::try_from(left.as_millis()).unwrap_or(TICK_MS);
                if ms == 0 || stop.load(Ordering::Relaxed) {
                    break;
                }
                let mut fds = [PollFd::new(i.as_fd(), PollFlags::POLLIN)];
                if nix::poll::poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) <= 0 {
                    continue;
                }
                let mut relevant = self.old.is_some();
                while let Ok(events) = i.read_events() {
                    for ev in events {
                        if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                            watching = false;
                        }
                        // On overflow events were lost: look at the file again.
                        relevant |= ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                            || ev.mask.contains(AddWatchFlags::IN_IGNORED)
                            || ev.name.is_none()
                            || ev.name == name;
                    }
                }
                if relevant {
                    break;
                }
            }
        }
    }
}

/// Files beside `path` whose names extend its name (`auth.log.1`, `auth.log-20261201`): where
/// rotation puts the old file or its copy.
fn beside(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (
        path.parent().filter(|d| !d.as_os_str().is_empty()),
        path.file_name().and_then(|n| n.to_str()),
    ) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n != name && n.starts_with(name))
        })
        .map(|e| e.path())
        .collect()
}

/// The file beside `path` that is the one `s` describes (renamed by rotation).
fn find_rotated(path: &Path, s: &Saved) -> Option<Open> {
    let p = beside(path)
        .into_iter()
        .find(|p| std::fs::metadata(p).is_ok_and(|md| (md.dev(), md.ino()) == (s.dev, s.ino)))?;
    let mut o = Open::new(&p)?;
    o.resume(s);
    Some(o)
}

/// After a copytruncate of `path`: the copy beside it of what `c` had read, longer than that,
/// positioned where `c` stopped. None when `c` had read nothing to match on.
fn find_copy(path: &Path, c: &Open) -> Option<Open> {
    if c.tail.is_empty() {
        return None;
    }
    let at = c.offset - c.tail.len() as u64;
    beside(path).into_iter().find_map(|p| {
        let mut o = Open::new(&p)?;
        let holds_ours = (o.dev, o.ino) != (c.dev, c.ino)
            && o.len() > c.offset
            && o.bytes_at(at, c.tail.len()).as_deref() == Some(&c.tail[..]);
        if !holds_ours {
            return None;
        }
        tracing::info!(copy = %p.display(), from = c.offset, "reading the lines the truncation left only in the copy");
        o.set_offset(c.offset);
        Some(o)
    })
}

#[cfg(test)]
mod tests;
