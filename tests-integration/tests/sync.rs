//! Named mutexes and events across real processes, including a holder that is
//! killed while it holds the lock.

mod common;

use std::time::{Duration, Instant};

use common::*;
use named_ipc::shm::ShmSegment;
use named_ipc::sync::{EventMode, NamedEvent, NamedMutex};
use named_ipc::ErrorKind;

#[test]
fn the_mutex_excludes_other_processes() {
    let lock_name = unique("mx");
    let seg_name = unique("mx-seg");
    let lock = NamedMutex::create(&lock_name).unwrap();
    let seg = ShmSegment::create(&seg_name, 8).unwrap();
    let per = 3000u64;
    let mut workers: Vec<Peer> = (0..2)
        .map(|_| Peer::spawn(&["mutex-count", &lock_name, &seg_name, &per.to_string()]))
        .collect();
    for w in &mut workers {
        w.expect("READY");
    }
    // This process races them with the same read-modify-write.
    for _ in 0..per {
        let g = lock.lock().unwrap();
        assert!(!g.abandoned());
        let mut b = [0u8; 8];
        seg.read_at(0, &mut b).unwrap();
        std::thread::yield_now();
        seg.write_at(0, &(u64::from_le_bytes(b) + 1).to_le_bytes())
            .unwrap();
    }
    for w in &mut workers {
        w.expect("DONE");
        w.wait_ok();
    }
    let mut b = [0u8; 8];
    seg.read_at(0, &mut b).unwrap();
    assert_eq!(
        u64::from_le_bytes(b),
        3 * per,
        "lost updates: the mutex did not exclude"
    );
}

#[test]
fn a_holder_killed_while_holding_leaves_an_abandoned_mutex() {
    let name = unique("abandon");
    let lock = NamedMutex::create(&name).unwrap();
    let mut holder = Peer::spawn(&["mutex-hold", &name]);
    holder.expect("LOCKED");
    assert!(
        lock.try_lock().unwrap().is_none(),
        "held by the other process"
    );
    let t = Instant::now();
    assert!(lock
        .lock_timeout(Duration::from_millis(200))
        .unwrap()
        .is_none());
    assert!(t.elapsed() >= Duration::from_millis(190));

    holder.kill(); // SIGKILL / TerminateProcess, mid-hold
    {
        let g = with_watchdog_lock(&name);
        assert!(g, "the next locker must be told the holder died");
    }
    // Repaired: the lock after that is clean, in another process too.
    let g = lock.lock().unwrap();
    assert!(!g.abandoned());
    drop(g);
    let mut next = Peer::spawn(&["mutex-hold", &name]);
    assert_eq!(next.line(), "LOCKED");
}

/// Locks `name` through a fresh handle on a watchdog thread; returns whether the
/// guard said "abandoned".
fn with_watchdog_lock(name: &str) -> bool {
    let name = name.to_owned();
    with_watchdog("lock after the holder died", move || {
        let m = NamedMutex::open(&name).unwrap();
        let g = m.lock().unwrap();
        g.abandoned()
    })
}

#[test]
fn locking_twice_on_one_thread_is_an_error_not_a_deadlock() {
    let lock = NamedMutex::create(&unique("reentrant")).unwrap();
    let g = lock.lock().unwrap();
    let e = lock.try_lock().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("not reentrant"), "{e}");
    drop(g);
    assert!(lock.try_lock().unwrap().is_some());
}

#[test]
fn an_auto_reset_event_releases_one_waiter_per_set() {
    let name = unique("auto");
    let ev = NamedEvent::create(&name, EventMode::AutoReset, false).unwrap();
    assert_eq!(ev.mode(), EventMode::AutoReset);
    let mut waiters = [
        Peer::spawn(&["event-wait", &name, "60000"]),
        Peer::spawn(&["event-wait", &name, "60000"]),
    ];
    for w in &mut waiters {
        w.expect("WAITING");
    }
    ev.set().unwrap();
    let first = first_to_speak(&mut waiters);
    let [a, b] = &mut waiters;
    let (woke, other) = if first == 0 { (a, b) } else { (b, a) };
    assert_eq!(woke.line(), "SIGNALLED");
    // One set, one release: the other stays asleep...
    assert_eq!(
        other.try_line_within(std::time::Duration::from_millis(300)),
        None
    );
    // ...until the next set.
    ev.set().unwrap();
    assert_eq!(other.line(), "SIGNALLED");
    assert!(!ev.try_wait().unwrap(), "two sets, two waits: nothing left");
}

/// Index of the first peer with an output line (left unread), within STEP.
fn first_to_speak(peers: &mut [Peer]) -> usize {
    let deadline = Instant::now() + STEP;
    loop {
        for (i, p) in peers.iter_mut().enumerate() {
            if p.has_line_within(Duration::from_millis(20)) {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "nobody woke up");
    }
}

#[test]
fn a_manual_reset_event_releases_everyone_until_reset() {
    let name = unique("manual");
    let ev = NamedEvent::create(&name, EventMode::ManualReset, false).unwrap();
    let mut waiters: Vec<Peer> = (0..3)
        .map(|_| Peer::spawn(&["event-wait", &name, "60000"]))
        .collect();
    for w in &mut waiters {
        w.expect("WAITING");
    }
    ev.set().unwrap();
    for w in &mut waiters {
        assert_eq!(w.line(), "SIGNALLED");
    }
    assert!(ev.try_wait().unwrap(), "still set");
    ev.reset().unwrap();
    assert!(!ev.wait_timeout(Duration::from_millis(100)).unwrap());
    let opened = NamedEvent::open(&name).unwrap();
    assert_eq!(opened.mode(), EventMode::ManualReset);
}

#[test]
fn an_event_set_by_another_process_wakes_a_timed_wait() {
    let name = unique("timed");
    let ev = NamedEvent::create(&name, EventMode::AutoReset, false).unwrap();
    let t = Instant::now();
    assert!(!ev.wait_timeout(Duration::from_millis(150)).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(140));
    let mut setter = Peer::spawn(&["event-set", &name]);
    setter.expect("SET");
    assert!(ev.wait_timeout(STEP).unwrap());
    assert!(!ev.try_wait().unwrap());
    let initially = NamedEvent::create(&unique("initial"), EventMode::AutoReset, true).unwrap();
    assert!(initially.try_wait().unwrap());
}

#[test]
fn names_of_the_wrong_kind_are_refused() {
    let name = unique("kind");
    let _m = NamedMutex::create(&name).unwrap();
    let e = NamedEvent::open(&name).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::AlreadyExists),
        "{e}"
    );
    let e = NamedMutex::create(&name).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    let e = NamedMutex::open(&unique("nomutex")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    if cfg!(unix) {
        // A plain segment is not a mutex either.
        let seg_name = unique("plain");
        let _seg = ShmSegment::create(&seg_name, 4096).unwrap();
        let e = NamedMutex::open(&seg_name).unwrap_err();
        assert!(
            e.to_string().contains("not a named-ipc mutex")
                || e.to_string().contains("never initialised"),
            "{e}"
        );
    }
}

/// Waits (up to [`STEP`]) until each thread `tids` of process `pid` is
/// blocked in `futex(2)` on a word of the event `name` (the futex address lies
/// in the process's mapping of `/dev/shm/NAME`): inside its event wait.
#[cfg(target_os = "linux")]
fn until_waiting_on(pid: u32, tids: &[i64], name: &str) {
    let deadline = Instant::now() + STEP;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let suffix = format!("/dev/shm/{name}");
    let (lo, hi) = maps
        .lines()
        .find(|l| l.ends_with(&suffix))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|r| r.split_once('-'))
        .map(|(a, b)| {
            (
                u64::from_str_radix(a, 16).unwrap(),
                u64::from_str_radix(b, 16).unwrap(),
            )
        })
        .unwrap_or_else(|| panic!("process {pid} does not map {suffix}"));
    for tid in tids {
        let path = format!("/proc/{pid}/task/{tid}/syscall");
        loop {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
            let mut f = text.split_whitespace();
            let nr = f.next().and_then(|n| n.parse::<i64>().ok());
            let addr = f
                .next()
                .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok());
            if nr == Some(libc::SYS_futex) && addr.is_some_and(|a| (lo..hi).contains(&a)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "thread {tid} of {pid} never blocked in its wait: {text}"
            );
            // Polling a readiness condition against a deadline.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn gettid() -> i64 {
    // SAFETY: gettid has no preconditions and cannot fail.
    i64::from(unsafe { libc::gettid() })
}

/// `set(); reset();` on a manual-reset event releases every thread that was
/// waiting at `set`, here and in another process (Windows semantics), even
/// though the event is reset again before they run.
#[cfg(target_os = "linux")]
#[test]
fn a_manual_reset_pulse_releases_every_waiter_in_every_process() {
    use std::sync::mpsc::channel;
    use std::sync::Arc;

    let name = unique("pulse");
    let ev = Arc::new(NamedEvent::create(&name, EventMode::ManualReset, false).unwrap());
    let (tid_tx, tid_rx) = channel();
    let (got_tx, got_rx) = channel();
    for _ in 0..3 {
        let (ev, tid_tx, got_tx) = (ev.clone(), tid_tx.clone(), got_tx.clone());
        std::thread::spawn(move || {
            tid_tx.send(gettid()).unwrap();
            let _ = got_tx.send(ev.wait_timeout(STEP).unwrap());
        });
    }
    let local: Vec<i64> = (0..3).map(|_| tid_rx.recv_timeout(STEP).unwrap()).collect();
    let ms = STEP.as_millis().to_string();
    let mut peer = Peer::spawn(&["event-wait-threads", &name, "3", &ms]);
    let line = peer.expect("WAITING ");
    let remote: Vec<i64> = line["WAITING ".len()..]
        .split(',')
        .map(|t| t.parse().unwrap())
        .collect();
    until_waiting_on(std::process::id(), &local, &name);
    until_waiting_on(peer.pid(), &remote, &name);

    ev.set().unwrap();
    ev.reset().unwrap();

    for _ in 0..3 {
        let got = got_rx.recv_timeout(STEP + STEP).expect("a waiter hung");
        assert!(got, "a waiter of this process slept through the pulse");
    }
    assert_eq!(peer.line(), "RESULT 3/3", "waiters in the other process");
    peer.wait_ok();
    assert!(!ev.try_wait().unwrap(), "reset after the pulse");
}

/// A mutex whose header says another ABI (here: 32-bit pointers), or an older
/// layout version, is refused with `VersionMismatch` and a message saying
/// what differs and what to do, never used.
#[cfg(target_os = "linux")]
#[test]
fn a_mutex_made_for_another_abi_or_version_is_refused() {
    use named_ipc::shm::Protection;
    let name = unique("abi");
    let _m = NamedMutex::create(&name).unwrap();
    let raw = ShmSegment::open(&name, Protection::ReadWrite).unwrap();
    // Byte 38 of the header: the creator's pointer width in bytes.
    raw.write_at(38, &[4]).unwrap();
    let e = NamedMutex::open(&name).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::VersionMismatch, "{e}");
    assert!(e.to_string().contains("32-bit"), "{e}");
    assert!(e.to_string().contains("same target"), "{e}");
    raw.write_at(38, &[8]).unwrap();
    assert!(NamedMutex::open(&name).is_ok());
    // Bytes 8..12: the layout version.
    raw.write_at(8, &1u32.to_ne_bytes()).unwrap();
    let e = NamedMutex::open(&name).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::VersionMismatch, "{e}");
    assert!(e.to_string().contains("version 1"), "{e}");
}

/// Windows: the native manual-reset event, pulsed with `set(); reset();`.
/// Nothing shows that a Windows thread is already blocked in its wait, so
/// this pulses until every waiter (three threads here, three in another
/// process) has returned, pacing the pulses by waiting for the other process
/// to report; each wait must end `true` although the event is reset again at
/// once. An event whose pulse did not release the threads already waiting
/// would leave them asleep until the deadline.
#[cfg(windows)]
#[test]
fn a_manual_reset_pulse_releases_waiters_on_windows() {
    use std::sync::mpsc::channel;
    use std::sync::Arc;

    let name = unique("pulse");
    let ev = Arc::new(NamedEvent::create(&name, EventMode::ManualReset, false).unwrap());
    let (got_tx, got_rx) = channel();
    for _ in 0..3 {
        let (ev, got_tx) = (ev.clone(), got_tx.clone());
        std::thread::spawn(move || {
            let _ = got_tx.send(ev.wait_timeout(STEP).unwrap());
        });
    }
    let ms = STEP.as_millis().to_string();
    let mut peer = Peer::spawn(&["event-wait-threads", &name, "3", &ms]);
    peer.expect("WAITING ");
    let deadline = Instant::now() + STEP;
    let (mut local, mut pulses) = (0, 0u32);
    let mut remote = None;
    while local < 3 || remote.is_none() {
        assert!(
            Instant::now() < deadline,
            "waiters still asleep after {pulses} pulses"
        );
        ev.set().unwrap();
        ev.reset().unwrap();
        pulses += 1;
        while let Ok(got) = got_rx.try_recv() {
            assert!(got, "a waiter here timed out");
            local += 1;
        }
        if remote.is_none() && peer.has_line_within(Duration::from_millis(10)) {
            remote = Some(peer.line());
        }
    }
    assert_eq!(remote.as_deref(), Some("RESULT 3/3"));
    peer.wait_ok();
    assert!(!ev.try_wait().unwrap(), "reset after the pulses");
    eprintln!("all six waiters released after {pulses} pulse(s)");
}
