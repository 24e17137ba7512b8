//! Follower tests on real files in a temporary directory, driving `poll` by hand (and `spawn`
//! once, with inotify).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::*;
use crate::bruteforce::Service;

fn line(i: usize) -> String {
    format!(
        "Dec  1 12:00:00 web1 sshd[77]: Failed password for user{i} from 192.0.2.1 port {} ssh2\n",
        1000 + i
    )
}

fn append(path: &Path, text: &[u8]) {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text).unwrap();
}

fn follower(dir: &Path) -> Follower {
    Follower::new(
        dir.join("auth.log"),
        vec![Service::Ssh],
        Some(dir.join("pos.state")),
    )
}

/// Polls and returns the users of the events.
fn poll(f: &mut Follower) -> Vec<String> {
    let mut got = Vec::new();
    assert!(f.poll(&mut |evs: Vec<AuthEvent>| {
        got.extend(evs.into_iter().map(|e| e.user));
        true
    }));
    got
}

fn users(r: std::ops::Range<usize>) -> Vec<String> {
    r.map(|i| format!("user{i}")).collect()
}

#[test]
fn starts_at_the_end_then_follows_appends() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("auth.log");
    append(&p, line(0).as_bytes());
    // A line being written when we start: its end still arrives.
    let l1 = line(1);
    append(&p, &l1.as_bytes()[..20]);
    let mut f = follower(d.path());
    assert!(poll(&mut f).is_empty());
    append(&p, &l1.as_bytes()[20..]);
    append(&p, line(2).as_bytes());
    // A partial line waits for its newline.
    let l3 = line(3);
    append(&p, &l3.as_bytes()[..30]);
    assert_eq!(poll(&mut f), users(1..3));
    assert!(poll(&mut f).is_empty());
    append(&p, &l3.as_bytes()[30..]);
    assert_eq!(poll(&mut f), users(3..4));
    assert_eq!(f.stats().events, 3);
}

#[test]
fn a_file_created_later_is_read_from_its_start() {
    let d = tempfile::tempdir().unwrap();
    let mut f = follower(d.path());
    assert!(poll(&mut f).is_empty());
    append(
        &d.path().join("auth.log"),
        format!("{}{}", line(0), line(1)).as_bytes(),
    );
    assert_eq!(poll(&mut f), users(0..2));
}

/// rename + create in the middle of a burst, with the writer still appending to the renamed
/// file for a moment (rsyslog until its HUP): every line once, in order.
#[test]
fn rename_rotation_loses_and_repeats_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("auth.log");
    File::create(&p).unwrap();
    let mut f = follower(d.path());
    poll(&mut f);
    let mut got = Vec::new();
    let mut writer = OpenOptions::new().append(true).open(&p).unwrap();
    for i in 0..500 {
        writer.write_all(line(i).as_bytes()).unwrap();
        if i % 97 == 0 {
            got.extend(poll(&mut f));
        }
    }
    fs::rename(&p, d.path().join("auth.log.1")).unwrap();
    for i in 500..600 {
        writer.write_all(line(i).as_bytes()).unwrap();
    }
    got.extend(poll(&mut f)); // renamed, not yet recreated
    for i in 600..620 {
        writer.write_all(line(i).as_bytes()).unwrap();
    }
    // Half a line in the old file when the writer reopens.
    writer.write_all(&line(620).as_bytes()[..25]).unwrap();
    writer.write_all(&line(620).as_bytes()[25..]).unwrap();
    let mut writer = File::create(&p).unwrap();
    for i in 621..700 {
        writer.write_all(line(i).as_bytes()).unwrap();
        if i % 13 == 0 {
            got.extend(poll(&mut f));
        }
    }
    fs::rename(&p, d.path().join("auth.log.2")).unwrap();
    let mut writer = File::create(&p).unwrap();
    for i in 700..1000 {
        writer.write_all(line(i).as_bytes()).unwrap();
    }
    got.extend(poll(&mut f));
    got.extend(poll(&mut f));
    assert_eq!(got, users(0..1000));
    let s = f.stats();
    assert_eq!((s.lines, s.events), (1000, 1000));
}

/// What copytruncate does to the log after copying it: empties it in place.
fn truncate(p: &Path) {
    OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .set_len(0)
        .unwrap();
}

#[test]
fn lines_written_just_before_a_copytruncate_are_read_from_the_copy() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("auth.log");
    File::create(&p).unwrap();
    let mut f = follower(d.path());
    poll(&mut f);
    append(&p, format!("{}{}", line(0), line(1)).as_bytes());
    assert_eq!(poll(&mut f), users(0..2));
    // Written, then copied and truncated before we look again: only the copy holds line 2.
    append(&p, line(2).as_bytes());
    std::fs::copy(&p, d.path().join("auth.log.1")).unwrap();
    truncate(&p);
    append(&p, line(3).as_bytes());
    assert_eq!(poll(&mut f), users(2..4));
    append(&p, line(4).as_bytes());
    assert_eq!(poll(&mut f), users(4..5), "nothing twice");
}

#[test]
fn copytruncate_restarts_at_zero() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("auth.log");
    File::create(&p).unwrap();
    let mut f = follower(d.path());
    poll(&mut f);
    append(&p, format!("{}{}", line(0), line(1)).as_bytes());
    assert_eq!(poll(&mut f), users(0..2));
    // Truncated, then fewer bytes than we had read.
    truncate(&p);
    append(&p, line(2).as_bytes());
    assert_eq!(poll(&mut f), users(2..3));
    // Truncated, then more bytes than we had read before we look again.
    truncate(&p);
    append(&p, format!("{}{}{}", line(3), line(40), line(5)).as_bytes());
    assert_eq!(poll(&mut f), vec!["user3", "user40", "user5"]);
    append(&p, line(6).as_bytes());
    assert_eq!(poll(&mut f), users(6..7));
}

#[test]
fn restart_resumes_from_saved_state() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("auth.log");
    File::create(&p).unwrap();
    let mut f = follower(d.path());
    poll(&mut f);
    append(&p, format!("{}{}", line(0), line(1)).as_bytes());
    assert_eq!(poll(&mut f), users(0..2));
    drop(f);
    // Written while the agent was down, the last one not finished.
    append(&p, format!("{}{}", line(2), &line(3)[..10]).as_bytes());
    let mut f = follower(d.path());
    assert_eq!(poll(&mut f), users(2..3));
    drop(f);
    append(&p, &line(3).as_bytes()[10..]);
    let mut f = follower(d.path());
    assert_eq!(poll(&mut f), users(3..4));
    drop(f);
    // Rotated while down: the rest of the old file, then all of the new one.
    append(&p, line(4).as_bytes());
    fs::rename(&p, d.path().join("auth.log.1")).unwrap();
    append(&p, line(5).as_bytes());
    let mut f = follower(d.path());
    assert_eq!(poll(&mut f), users(4..6));
    drop(f);
    // A state file that does not describe the file (truncated and rewritten while down).
    fs::write(&p, format!("{}{}", line(6), line(7))).unwrap();
    let mut f = follower(d.path());
    assert_eq!(poll(&mut f), users(6..8));
}

#[test]
fn long_lines_and_bad_bytes_are_skipped_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("auth.log");
    File::create(&p).unwrap();
    let mut f = follower(d.path());
    poll(&mut f);
    let mut long = line(0).into_bytes();
    long.splice(60..60, vec![b'a'; 100_000]);
    append(&p, &long[..70_000]);
    assert!(poll(&mut f).is_empty());
    append(&p, &long[70_000..]);
    let mut bad = line(1).into_bytes();
    bad[70] = 0xfe;
    append(&p, &bad);
    append(&p, b"Dec  1 12:00:00 web1 cron[1]: (root) CMD (true)\n");
    append(
        &p,
        b"Dec  1 12:00:00 web1 sshd[77]: Failed password for root from not-an-ip port 1 ssh2\n",
    );
    append(&p, line(2).as_bytes());
    assert_eq!(poll(&mut f), users(2..3));
    let s = f.stats();
    assert_eq!(
        s,
        Stats {
            lines: 5,
            events: 1,
            ignored: 1,
            skipped_non_utf8: 1,
            skipped_too_long: 1,
            skipped_unparsed: 1,
            skipped_no_address: 0,
        }
    );
}

#[test]
fn line_buffer_bounds() {
    let mut lb = LineBuf::with_max(10);
    let mut out = Vec::new();
    let mut f = |l: Result<&[u8], Skip>| out.push(l.map(<[u8]>::to_vec));
    lb.feed(b"abc\n0123456789", &mut f);
    lb.feed(b"AB", &mut f); // over the bound: dropped, not buffered
    assert!(lb.pending.is_empty());
    lb.feed(b"CD\nxy", &mut f);
    lb.finish(&mut f);
    assert_eq!(
        out,
        vec![Ok(b"abc".to_vec()), Err(Skip::TooLong), Ok(b"xy".to_vec())]
    );
}

#[test]
fn spawned_follower_sends_through_rotation() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("auth.log");
    File::create(&p).unwrap();
    // A saved position at 0, so that what is written below is read however late the thread
    // starts.
    let md = fs::metadata(&p).unwrap();
    let saved = Saved {
        dev: md.dev(),
        ino: md.ino(),
        offset: 0,
        tail: String::new(),
    };
    write_state(&d.path().join(state_file_name(&p)), &saved).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let routes = [(Service::Ssh, super::super::Route::File(p.clone()))];
    let handle = super::super::spawn_routes(&routes, Path::new("journalctl"), d.path(), tx);
    let mut writer = OpenOptions::new().append(true).open(&p).unwrap();
    for i in 0..100 {
        writer.write_all(line(i).as_bytes()).unwrap();
    }
    fs::rename(&p, d.path().join("auth.log.1")).unwrap();
    writer.write_all(line(100).as_bytes()).unwrap();
    let mut writer = File::create(&p).unwrap();
    for i in 101..200 {
        writer.write_all(line(i).as_bytes()).unwrap();
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 200 && Instant::now() < deadline {
        match rx.try_recv() {
            Ok(e) => got.push(e.user),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    assert_eq!(got, users(0..200));
    assert_eq!(handle.stats().events, 200);
    handle.stop();
    assert!(rx.blocking_recv().is_none());
    assert!(d.path().join(state_file_name(&p)).is_file());
}
