//! The brute-force and login-monitoring decision engine. Pure: no I/O and no clock; time comes
//! in the events (and `expire`'s argument), the local hour as an argument, so every decision
//! is reproducible in tests. Sources feed it [`AuthEvent`]s; the agent acts on the returned
//! [`Decision`]s (firewall blocks, alarm records).
//!
//! Failures are counted per source address across services: an attacker switching from SSH to
//! FTP is still one attacker, and the firewall blocks addresses, not address and port.

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use hostward_proto::bruteforce::Net;
pub use hostward_proto::bruteforce::{
    MAX_BLOCK_MINUTES, MAX_FAILURES, MAX_USUAL_LOGIN_IPS, MAX_WHITELIST, MAX_WINDOW_SECS, Policy,
    ServerLoginIps,
};

use super::{AuthEvent, AuthOutcome, Service};

/// Distinct source addresses tracked at once. Past it the least recently active is forgotten,
/// so an attack from many addresses costs bounded memory (see the bench for the figure). A
/// forgotten source that was blocked and fails again is blocked again: the firewall takes a
/// repeated block as a refresh, which is cheaper than exempting blocked sources from the cap.
pub const DEFAULT_MAX_SOURCES: usize = 100_000;
/// Evidence kept per source, as the alarm record allows.
pub const MAX_USERS: usize = 10;
pub const MAX_LINES: usize = 5;
const MAX_LINE_BYTES: usize = 512;
/// Linux user names are at most 32 bytes; anything longer is hostile text and its first 64
/// bytes are evidence enough.
const MAX_USER_BYTES: usize = 64;
/// How long an address's last block is remembered after it ends: a new block within it is
/// escalated, and a login from the address within it is a cracked password.
pub const BLOCK_MEMORY_SECS: i64 = 86_400;

/// What the engine concluded from one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Block `addr` on the firewall until `until`.
    Block(Block),
    Alarm(Alarm),
    /// A login from `addr` made it a usual login address of this server (learning mode); the
    /// caller reports it to the center, which keeps the server's list.
    UsualIpLearned {
        addr: IpAddr,
        /// The login that taught it: Unix seconds, user, service.
        ts: i64,
        user: String,
        service: Service,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub addr: IpAddr,
    /// The service of the failure that crossed the threshold; it chose the duration.
    pub service: Service,
    /// Unix seconds.
    pub at: i64,
    pub duration: Duration,
    /// `at + duration`, Unix seconds.
    pub until: i64,
    /// Failures within the window of the rule that fired.
    pub failures: u32,
    pub window_secs: u32,
    /// Distinct user names tried, at most [`MAX_USERS`], first seen first.
    pub users: Vec<String>,
    /// The first log lines of the attempt, at most [`MAX_LINES`].
    pub sample_lines: Vec<String>,
    /// Lengthened because the address was blocked less than 24 h earlier.
    pub escalated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlarmKind {
    /// A source crossed a failure threshold: emitted with its block, or alone when the source
    /// is whitelisted or blocking is off.
    BruteForce,
    /// A successful login from a source that was failing or blocked recently.
    PasswordCracked,
    UnusualLoginIp,
    UnusualLoginTime,
    RootLogin,
}

impl AlarmKind {
    /// The alarm type code of the wire protocol's alarm catalog.
    pub fn code(self) -> &'static str {
        match self {
            AlarmKind::BruteForce => "brute_force",
            AlarmKind::PasswordCracked => "password_cracked",
            AlarmKind::UnusualLoginIp => "unusual_login_ip",
            AlarmKind::UnusualLoginTime => "unusual_login_time",
            AlarmKind::RootLogin => "root_login",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    pub kind: AlarmKind,
    /// Unix seconds of the event that raised it.
    pub ts: i64,
    pub addr: IpAddr,
    /// The user who logged in (login alarms) or the last user tried (brute force).
    pub user: String,
    pub service: Service,
    /// Brute force: failures in the window that fired. Cracked: failures counted from the
    /// address recently (including those that led to its block). Login alarms: 0.
    pub failures: u32,
    /// Users involved, at most [`MAX_USERS`].
    pub users: Vec<String>,
    /// Log lines, at most [`MAX_LINES`]; for login alarms, the login's own line first.
    pub sample_lines: Vec<String>,
    /// Until when the source is blocked (Unix seconds), if it is.
    pub blocked_until: Option<i64>,
    /// The local hour of the login (login alarms).
    pub local_hour: Option<u8>,
}

/// The last block (or, for a source never blocked, the last brute-force alarm) of a source.
#[derive(Debug, Clone, Copy)]
struct PastBlock {
    until: i64,
    /// Doublings applied (escalation).
    level: u32,
    failures: u32,
    /// Never blocked at the time: an alarm was raised, nothing was blocked. `until` then only
    /// keeps the alarm from repeating for the block duration.
    alarm_only: bool,
}

#[derive(Debug)]
struct Source {
    /// (time, failures), oldest first, one entry per second. Trimmed to the newest entries
    /// that reach the largest threshold: an older entry can never change a decision, since
    /// when it is inside a window all newer ones are too and already reach the threshold.
    window: VecDeque<(i64, u32)>,
    total: u64,
    users: Vec<Box<str>>,
    lines: Vec<Box<str>>,
    last_user: Box<str>,
    block: Option<PastBlock>,
    /// Whitelisted, or blocking is off (the basic edition): alarmed on, never blocked.
    never_blocked: bool,
    /// LRU stamp: the entry of `Engine::lru` with this stamp is the live one.
    stamp: u64,
}

impl Source {
    fn prune(&mut self, now: i64, max_window: i64, max_threshold: u32) {
        while let Some(&(t, n)) = self.window.front() {
            let expired = t < now - max_window;
            let redundant = self.total - u64::from(n) >= u64::from(max_threshold);
            if !(expired || redundant) {
                break;
            }
            self.window.pop_front();
            self.total -= u64::from(n);
        }
        if self.window.is_empty() {
            // Evidence of failures that no longer count must not be attached to a later block.
            self.users.clear();
            self.lines.clear();
        }
    }

    /// Whether at least `threshold` failures fall in `[now - secs, now]`.
    fn reaches(&self, now: i64, secs: u32, threshold: u32) -> bool {
        let from = now - i64::from(secs);
        let mut sum = 0u64;
        for &(t, n) in self.window.iter().rev() {
            if t < from {
                return false;
            }
            sum += u64::from(n);
            if sum >= u64::from(threshold) {
                return true;
            }
        }
        false
    }

    fn count_since(&self, from: i64) -> u32 {
        let sum: u64 = self
            .window
            .iter()
            .rev()
            .take_while(|&&(t, _)| t >= from)
            .map(|&(_, n)| u64::from(n))
            .sum();
        u32::try_from(sum).unwrap_or(u32::MAX)
    }

    fn record_evidence(&mut self, user: &str, line: &str) {
        if self.users.len() < MAX_USERS {
            let user = truncate(user, MAX_USER_BYTES);
            if !self.users.iter().any(|u| &**u == user) {
                self.users.push(user.into());
            }
        }
        if self.lines.len() < MAX_LINES {
            self.lines.push(truncate(line, MAX_LINE_BYTES).into());
        }
        let user = truncate(user, MAX_USER_BYTES);
        if &*self.last_user != user {
            self.last_user = user.into();
        }
    }

    fn active_block(&self, now: i64) -> Option<&PastBlock> {
        // An alarm-only record stops counting as a block once the source may be blocked again.
        self.block
            .as_ref()
            .filter(|b| now < b.until && (!b.alarm_only || self.never_blocked))
    }

    fn forgettable(&self, now: i64) -> bool {
        self.window.is_empty()
            && self
                .block
                .is_none_or(|b| now >= b.until.saturating_add(BLOCK_MEMORY_SECS))
    }
}

/// The decision engine. One per agent; feed it every authentication event in log order.
#[derive(Debug)]
pub struct Engine {
    policy: Policy,
    whitelist: Vec<Net>,
    /// Usual login addresses of every server of the project (the policy's).
    project_usual: Vec<Net>,
    /// This server's own: the center's list, then those learned since it was pushed.
    server_usual: Vec<Net>,
    /// Whether this server still learns (the center's switch; the policy's too must be on).
    server_learning: bool,
    sources: HashMap<IpAddr, Source>,
    /// (address, stamp), least recently active first; entries whose stamp is not the source's
    /// current one are stale and skipped (cheaper than reordering a list on every event).
    lru: VecDeque<(IpAddr, u64)>,
    next_stamp: u64,
    max_sources: usize,
    max_threshold: u32,
    max_window: i64,
}

impl Engine {
    /// Fails (naming the field) when the policy does not validate.
    pub fn new(policy: Policy) -> Result<Engine, String> {
        let mut engine = Engine {
            policy: Policy::default(),
            whitelist: Vec::new(),
            project_usual: Vec::new(),
            server_usual: Vec::new(),
            server_learning: true,
            sources: HashMap::new(),
            lru: VecDeque::new(),
            next_stamp: 0,
            max_sources: DEFAULT_MAX_SOURCES,
            max_threshold: 0,
            max_window: 0,
        };
        engine.set_policy(policy)?;
        Ok(engine)
    }

    /// Replaces the policy; an invalid one is refused and the current one stays. Blocks in
    /// force keep their durations. Returns the addresses blocked now that the new whitelist
    /// covers: the caller lifts them from the firewall. The server's own usual login addresses
    /// stay: they come with [`Engine::set_server_login_ips`].
    pub fn set_policy(&mut self, policy: Policy) -> Result<Vec<IpAddr>, String> {
        policy.validate()?;
        let nets = |list: &[String]| -> Vec<Net> {
            list.iter()
                .map(|s| Net::parse(s).expect("validated"))
                .collect()
        };
        self.whitelist = nets(&policy.whitelist);
        self.project_usual = nets(&policy.usual_login_ips);
        self.max_threshold = policy.short_failures.max(policy.long_failures);
        self.max_window = i64::from(policy.short_window_secs.max(policy.long_window_secs));
        self.policy = policy;
        let mut lifted = Vec::new();
        for (addr, src) in &mut self.sources {
            src.never_blocked =
                !self.policy.block || self.whitelist.iter().any(|n| n.contains(*addr));
            if src.never_blocked
                && let Some(b) = &mut src.block
                && !b.alarm_only
            {
                // No clock here: the block may have ended already; lifting is harmless then.
                b.alarm_only = true;
                b.level = 0;
                lifted.push(*addr);
            }
        }
        lifted.sort();
        Ok(lifted)
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Replaces this server's usual login addresses and learning switch with the center's; an
    /// invalid list is refused and the current one stays. Learned addresses are dropped: they
    /// were reported ([`Decision::UsualIpLearned`]) and the center's list has them unless a
    /// person deleted them there, and a deleted one must stay deleted. One still in flight is
    /// learned again at its next login.
    pub fn set_server_login_ips(&mut self, list: &ServerLoginIps) -> Result<(), String> {
        list.validate()?;
        self.server_usual = list
            .usual
            .iter()
            .map(|s| Net::parse(s).expect("validated"))
            .collect();
        self.server_learning = list.learning;
        Ok(())
    }

    /// Caps the tracked sources (at least 1); the least recently active go first.
    pub fn set_max_sources(&mut self, max: usize) {
        self.max_sources = max.max(1);
        while self.sources.len() > self.max_sources {
            self.evict_one();
        }
    }

    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    /// This server's usual login addresses and prefixes: the center's, then those learned since.
    pub fn server_login_ips(&self) -> Vec<String> {
        self.server_usual.iter().map(Net::to_string).collect()
    }

    /// Until when the engine considers `addr` blocked, at `now`.
    pub fn blocked_until(&self, addr: IpAddr, now: i64) -> Option<i64> {
        let src = self.sources.get(&addr.to_canonical())?;
        src.active_block(now)
            .filter(|b| !b.alarm_only)
            .map(|b| b.until)
    }

    /// A person unblocked `addr` from the console: forget everything about it, so old failures
    /// neither re-block it nor escalate its next block. Returns whether anything was known.
    pub fn unblocked(&mut self, addr: IpAddr) -> bool {
        // Its LRU entry goes stale and is skipped.
        self.sources.remove(&addr.to_canonical()).is_some()
    }

    /// Drops failures older than the windows and sources with nothing left to remember. Call
    /// it periodically (every minute is plenty); events prune their own source as they come.
    pub fn expire(&mut self, now: i64) {
        let (max_window, max_threshold) = (self.max_window, self.max_threshold);
        self.sources.retain(|_, src| {
            src.prune(now, max_window, max_threshold);
            !src.forgettable(now)
        });
        let sources = &self.sources;
        self.lru
            .retain(|(a, s)| sources.get(a).is_some_and(|src| src.stamp == *s));
        // Give back what an attack from many addresses grew, once it is over.
        if self.sources.capacity() > 4 * self.sources.len().max(1024) {
            self.sources.shrink_to_fit();
        }
        if self.lru.capacity() > 4 * self.lru.len().max(1024) {
            self.lru.shrink_to_fit();
        }
    }

    /// Feeds one event. `local_hour` (0 to 23) is the host's local hour at `ev.ts`, for the
    /// usual-hours check.
    pub fn on_event(&mut self, ev: &AuthEvent, local_hour: u8) -> Vec<Decision> {
        let addr = ev.source.to_canonical();
        match ev.outcome {
            AuthOutcome::Failure => self.on_failure(ev, addr),
            AuthOutcome::Success => self.on_success(ev, addr, local_hour),
        }
    }

    fn on_failure(&mut self, ev: &AuthEvent, addr: IpAddr) -> Vec<Decision> {
        let (max_window, max_threshold) = (self.max_window, self.max_threshold);
        let p = &self.policy;
        let (short, long) = (
            (p.short_window_secs, p.short_failures),
            (p.long_window_secs, p.long_failures),
        );
        let (escalate, ssh_minutes, other_minutes) =
            (p.escalate, p.ssh_block_minutes, p.other_block_minutes);

        let src = self.touch(addr);
        if ev.count == 0 {
            // Another line of an attempt already counted (`Invalid user`, PAM, a preauth
            // disconnect): evidence, not one more failure.
            src.record_evidence(&ev.user, &ev.line);
            return Vec::new();
        }
        // Sources interleave journald and log files, so a line may be a little older than the
        // previous one; the window stays ordered by counting it as of the newest time seen.
        let now = src.window.back().map_or(ev.ts, |&(t, _)| t.max(ev.ts));
        src.prune(now, max_window, max_threshold);
        let n = ev.count;
        match src.window.back_mut() {
            Some((t, c)) if *t == now => *c = c.saturating_add(n),
            _ => src.window.push_back((now, n)),
        }
        src.total += u64::from(n);
        src.prune(now, max_window, max_threshold);
        src.record_evidence(&ev.user, &ev.line);

        if src.active_block(now).is_some() {
            return Vec::new();
        }
        let (window_secs, _) = if src.reaches(now, short.0, short.1) {
            short
        } else if src.reaches(now, long.0, long.1) {
            long
        } else {
            return Vec::new();
        };
        let failures = src.count_since(now - i64::from(window_secs));
        let users: Vec<String> = src.users.drain(..).map(String::from).collect();
        let sample_lines: Vec<String> = src.lines.drain(..).map(String::from).collect();
        // The block answers these failures; failures from now on count towards the next one.
        src.window.clear();
        src.total = 0;

        let alarm_only = src.never_blocked;
        let base = match ev.service {
            Service::Ssh => ssh_minutes,
            _ => other_minutes,
        };
        let previous = src.block.filter(|b| !b.alarm_only);
        let (level, minutes) = if alarm_only {
            (0, base)
        } else {
            let level = match previous {
                Some(b) if escalate && now < b.until.saturating_add(BLOCK_MEMORY_SECS) => {
                    (b.level + 1).min(31)
                }
                _ => 0,
            };
            let minutes = (u64::from(base) << level).min(u64::from(MAX_BLOCK_MINUTES)) as u32;
            (level, minutes)
        };
        let until = now + i64::from(minutes) * 60;
        src.block = Some(PastBlock {
            until,
            level,
            failures,
            alarm_only,
        });
        let alarm = Alarm {
            kind: AlarmKind::BruteForce,
            ts: now,
            addr,
            user: src.last_user.to_string(),
            service: ev.service,
            failures,
            users: users.clone(),
            sample_lines: sample_lines.clone(),
            blocked_until: (!alarm_only).then_some(until),
            local_hour: None,
        };
        if alarm_only {
            return vec![Decision::Alarm(alarm)];
        }
        vec![
            Decision::Block(Block {
                addr,
                service: ev.service,
                at: now,
                duration: Duration::from_secs(u64::from(minutes) * 60),
                until,
                failures,
                window_secs,
                users,
                sample_lines,
                escalated: minutes > base,
            }),
            Decision::Alarm(alarm),
        ]
    }

    fn on_success(&mut self, ev: &AuthEvent, addr: IpAddr, local_hour: u8) -> Vec<Decision> {
        let now = ev.ts;
        let mut out = Vec::new();
        let login_alarm = |kind| Alarm {
            kind,
            ts: now,
            addr,
            user: ev.user.clone(),
            service: ev.service,
            failures: 0,
            users: vec![truncate(&ev.user, MAX_USER_BYTES).to_string()],
            sample_lines: vec![truncate(&ev.line, MAX_LINE_BYTES).to_string()],
            blocked_until: None,
            local_hour: Some(local_hour),
        };

        let (max_window, max_threshold) = (self.max_window, self.max_threshold);
        let (long_secs, cracked_min) = (self.policy.long_window_secs, self.policy.short_failures);
        let mut cracked = false;
        if self.sources.contains_key(&addr) {
            // A success does not reset the counts: an attacker holding one weak account would
            // otherwise interleave its logins to guess the others' passwords unhindered.
            let src = self.touch(addr);
            src.prune(now, max_window, max_threshold);
            let failing = src.count_since(now - i64::from(long_secs));
            let recent_block = src
                .block
                .filter(|b| now < b.until.saturating_add(BLOCK_MEMORY_SECS));
            // A typo or two before the right password is a person; as many failures as
            // trip the short rule, or a block, before a success is a guessed password.
            if failing >= cracked_min || recent_block.is_some() {
                cracked = true;
                let mut alarm = login_alarm(AlarmKind::PasswordCracked);
                alarm.failures = failing.saturating_add(recent_block.map_or(0, |b| b.failures));
                for u in &src.users {
                    if alarm.users.len() < MAX_USERS && !alarm.users.iter().any(|x| **x == **u) {
                        alarm.users.push(u.to_string());
                    }
                }
                let room = MAX_LINES - 1;
                alarm
                    .sample_lines
                    .extend(src.lines.iter().take(room).map(|l| l.to_string()));
                alarm.blocked_until = src
                    .active_block(now)
                    .filter(|b| !b.alarm_only)
                    .map(|b| b.until);
                out.push(Decision::Alarm(alarm));
            }
        }

        if self.policy.alarm_on_root_login && ev.user == "root" {
            out.push(Decision::Alarm(login_alarm(AlarmKind::RootLogin)));
        }

        let covered = |list: &[Net]| list.iter().any(|n| n.contains(addr));
        if !covered(&self.project_usual) && !covered(&self.server_usual) {
            // Only the server's list fills up: the project's addresses are usual everywhere and
            // must not use up a server's room. A cracked login's address must not become usual.
            let learning = self.policy.learn_usual_ips
                && self.server_learning
                && self.server_usual.len() < MAX_USUAL_LOGIN_IPS;
            if learning && !cracked {
                self.server_usual.push(Net::host(addr));
                out.push(Decision::UsualIpLearned {
                    addr,
                    ts: now,
                    user: truncate(&ev.user, MAX_USER_BYTES).to_string(),
                    service: ev.service,
                });
            } else if !self.project_usual.is_empty() || !self.server_usual.is_empty() {
                out.push(Decision::Alarm(login_alarm(AlarmKind::UnusualLoginIp)));
            }
        }

        if let Some((start, end)) = self.policy.usual_hours {
            let usual = if start < end {
                (start..end).contains(&local_hour)
            } else {
                local_hour >= start || local_hour < end
            };
            if !usual {
                out.push(Decision::Alarm(login_alarm(AlarmKind::UnusualLoginTime)));
            }
        }
        out
    }

    /// The source of `addr`, created if new, marked most recently active.
    fn touch(&mut self, addr: IpAddr) -> &mut Source {
        if self.lru.len() > 2 * self.sources.len() + 1024 {
            let sources = &self.sources;
            self.lru
                .retain(|(a, s)| sources.get(a).is_some_and(|src| src.stamp == *s));
        }
        if self.sources.len() >= self.max_sources && !self.sources.contains_key(&addr) {
            self.evict_one();
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.lru.push_back((addr, stamp));
        let (whitelist, block) = (&self.whitelist, self.policy.block);
        let src = self.sources.entry(addr).or_insert_with(|| Source {
            window: VecDeque::new(),
            total: 0,
            users: Vec::new(),
            lines: Vec::new(),
            last_user: Box::from(""),
            block: None,
            never_blocked: !block || whitelist.iter().any(|n| n.contains(addr)),
            stamp,
        });
        src.stamp = stamp;
        src
    }

    fn evict_one(&mut self) {
        while let Some((addr, stamp)) = self.lru.pop_front() {
            if self.sources.get(&addr).is_some_and(|s| s.stamp == stamp) {
                self.sources.remove(&addr);
                return;
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
