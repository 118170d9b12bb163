//! Chaos: the peer process is killed (SIGKILL; `TerminateProcess` on Windows)
//! at random points — while it sends, while it receives, during the channel
//! handshake, while it holds a named mutex — over and over. Each time the
//! survivor (this process) must get a clean error (never a hang, a panic, a
//! corrupt or reordered message), a restarted peer must get the names back,
//! and after `nipc shm gc` nothing of ours is left in `nipc shm ls`. How long a
//! blocked call takes to notice the death is measured and reported (asserted
//! only against a generous bound).
//!
//! Every run prints its random seed; `NIPC_CHAOS_SEED=S` replays one, and
//! `NIPC_CHAOS_ITERS=N` sets the iterations per scenario (default: enough for
//! more than 1,000 kills on Linux; fewer under Wine, where starting a process
//! costs ~100 times more).

mod common;

use std::io::{ErrorKind as IoKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::*;
use named_ipc::channel::{ChannelOptions, ShmListener, ShmStream};
use named_ipc::pipe::{PipeListener, PipeStream};
use named_ipc::shm::SegmentOptions;
use named_ipc::sync::NamedMutex;
use tests_integration::{chaos_len, check_numbered, distribution, numbered, Rng};

/// The generous bound on noticing a dead peer (the library aims at ~50 ms).
const DETECTION_BOUND: Duration = Duration::from_secs(10);

/// Writes a line that shows in the test output even when the test passes
/// (libtest captures `eprintln!`, not writes to the stderr handle).
fn report(line: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{line}");
}

/// Iterations per scenario: `linux` on Linux (and other native OSes), far
/// fewer under Wine (a sixth), where starting a process costs far more.
fn iterations(linux: u64) -> u64 {
    if let Some(n) = std::env::var("NIPC_CHAOS_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return n;
    }
    if is_wine() {
        (linux / 6).max(10)
    } else {
        linux
    }
}

fn rng(test: &str) -> Rng {
    let seed = Rng::seed_from_env();
    report(&format!(
        "{test}: seed {seed} (NIPC_CHAOS_SEED={seed} replays it)"
    ));
    Rng::new(seed)
}

/// Lets the peer run on for a random moment (0 to `max_us` µs; ten times that
/// under Wine, where everything takes longer) before it is killed: the point
/// of the kill is what is random here, nothing waits for the peer to be ready.
fn random_pause(rng: &mut Rng, max_us: u64) {
    let max_us = if is_wine() { max_us * 10 } else { max_us };
    let us = rng.below(max_us + 1);
    if us > 0 {
        std::thread::sleep(Duration::from_micros(us));
    }
}

/// A pipe or channel stream, as the survivor holds it.
enum Conn {
    Pipe(PipeStream),
    Chan(ShmStream),
}

impl Conn {
    fn send(&self, m: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Pipe(p) => p.send(m),
            Conn::Chan(c) => c.send(m),
        }
    }

    fn recv_into(&self, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
        match self {
            Conn::Pipe(p) => p.recv_into(buf),
            Conn::Chan(c) => c.recv_into(buf),
        }
    }

    fn timeouts(&self, t: Duration) {
        match self {
            Conn::Pipe(p) => {
                p.set_read_timeout(Some(t)).unwrap();
                p.set_write_timeout(Some(t)).unwrap();
            }
            Conn::Chan(c) => {
                c.set_read_timeout(Some(t)).unwrap();
                c.set_write_timeout(Some(t)).unwrap();
            }
        }
    }
}

/// The survivor's listener when the peer is the client.
enum Listener {
    Pipe(PipeListener),
    Chan(ShmListener),
}

/// Errors a survivor may see when its peer died. Never `TimedOut` (the OS
/// tells), never `InvalidData` (a killed peer publishes nothing half-written).
fn is_clean_death(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        IoKind::BrokenPipe
            | IoKind::ConnectionReset
            | IoKind::ConnectionAborted
            | IoKind::UnexpectedEof
    )
}

/// What the survivor saw in one iteration.
#[derive(Default, Debug)]
struct Tally {
    iterations: u64,
    messages: u64,
    ended: std::collections::BTreeMap<String, u64>,
}

impl Tally {
    fn end(&mut self, how: String) {
        *self.ended.entry(how).or_default() += 1;
    }
}

fn end_name(r: &std::io::Result<Option<usize>>) -> String {
    match r {
        Ok(None) => "end of stream".into(),
        Ok(Some(_)) => "message".into(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

/// One iteration of "kill the peer while it streams": the peer (`kind`
/// pipe/chan, `side` server/client, `dir` out = it sends / in = it receives)
/// is killed after the survivor has handled a random number of messages.
fn stream_iteration(
    kind: &'static str,
    side: &'static str,
    dir: &'static str,
    name: &str,
    listener: Option<&Listener>,
    rng: &mut Rng,
    tally: &mut Tally,
) {
    let role = if dir == "out" {
        "stream-out"
    } else {
        "stream-in"
    };
    let mut peer = Peer::hostile(&[role, kind, side, name]);
    let conn = match listener {
        None => {
            peer.expect("READY");
            let c = match kind {
                "pipe" => Conn::Pipe(PipeStream::connect_timeout(name, STEP).expect("connect")),
                _ => Conn::Chan(ShmStream::connect_timeout(name, STEP).expect("connect")),
            };
            peer.expect("UP");
            c
        }
        Some(Listener::Pipe(l)) => Conn::Pipe(l.accept_timeout(STEP).expect("accept")),
        Some(Listener::Chan(l)) => Conn::Chan(l.accept_timeout(STEP).expect("accept")),
    };
    conn.timeouts(STEP);
    let before_kill = rng.below(40);
    let pause = Duration::from_micros(rng.below(300));
    let mut buf = Vec::new();
    let mut seq = 0u64;
    let (seq, r) = with_watchdog("survivor of a killed peer", move || {
        let mut killed = false;
        let r = loop {
            if seq == before_kill && !killed {
                std::thread::sleep(pause);
                peer.kill();
                killed = true;
            }
            if dir == "out" {
                match conn.recv_into(&mut buf) {
                    Ok(Some(_)) => {
                        let got = check_numbered(&buf).unwrap_or_else(|e| panic!("{e}"));
                        assert_eq!(got, seq, "message {got} arrived where {seq} was due");
                        seq += 1;
                    }
                    other => break other,
                }
            } else {
                match conn.send(&numbered(seq, chaos_len(seq))) {
                    Ok(()) => seq += 1,
                    Err(e) => break Err(e),
                }
            }
            assert!(seq < before_kill + 100_000, "the dead peer never went away");
        };
        assert!(killed, "the stream ended before the peer was killed: {r:?}");
        (seq, r)
    });
    match &r {
        Ok(None) => {}
        Err(e) => assert!(is_clean_death(e), "{kind} {side} {dir}: {e}"),
        Ok(Some(_)) => unreachable!(),
    }
    tally.iterations += 1;
    tally.messages += seq;
    tally.end(end_name(&r));
}

fn streams(kind: &'static str, iters: u64, test: &str) {
    let mut rng = rng(test);
    let name = unique(&format!("chaos-{kind}"));
    let listener_name = unique(&format!("chaos-{kind}-l"));
    // The survivor's listener lives across iterations (clients come and die).
    let listener = match kind {
        "pipe" => Listener::Pipe(PipeListener::bind(&listener_name).unwrap()),
        _ => Listener::Chan(ShmListener::bind(&listener_name).unwrap()),
    };
    let mut tally = Tally::default();
    let t = Instant::now();
    for _ in 0..iters {
        let side = if rng.below(2) == 0 {
            "server"
        } else {
            "client"
        };
        let dir = if rng.below(2) == 0 { "out" } else { "in" };
        match side {
            // The peer is the server: every iteration binds the same name,
            // left behind by the server killed before (restart reclaims it).
            "server" => stream_iteration(kind, side, dir, &name, None, &mut rng, &mut tally),
            _ => stream_iteration(
                kind,
                side,
                dir,
                &listener_name,
                Some(&listener),
                &mut rng,
                &mut tally,
            ),
        }
    }
    // The name of the last killed server comes back once more, cleanly.
    reclaim_and_release(kind, &name);
    report(&format!(
        "{test}: {} kills in {:?}, {} messages checked; survivor saw {:?}",
        tally.iterations,
        t.elapsed(),
        tally.messages,
        tally.ended
    ));
}

/// Binds `name` (left behind by a killed server, or never used) and drops it:
/// on Unix its socket file must then be gone.
fn reclaim_and_release(kind: &str, name: &str) {
    match kind {
        "pipe" => drop(PipeListener::bind(name).expect("rebind a killed server's name")),
        _ => drop(ShmListener::bind(name).expect("rebind a killed server's name")),
    }
    if cfg!(unix) {
        let path = named_ipc::name::pipe_os_name(name).unwrap();
        assert!(!std::path::Path::new(&path).exists(), "{path} left behind");
    }
}

#[test]
fn pipe_peers_killed_while_sending_or_receiving() {
    streams("pipe", iterations(300), "pipe streams");
}

#[test]
fn channel_peers_killed_while_sending_or_receiving() {
    streams("chan", iterations(300), "channel streams");
}

/// Kills the peer at a random moment around the channel handshake: before it
/// connects, while the handshake runs, or just after. The survivor's accept or
/// connect succeeds or fails cleanly; a stream that was set up then fails
/// cleanly too; a restarted server gets the name back.
#[test]
fn channel_peers_killed_during_the_handshake() {
    let mut rng = rng("channel handshake");
    let iters = iterations(200);
    let server_name = unique("chaos-hs-srv");
    let client_name = unique("chaos-hs-cli");
    let l = Arc::new(ShmListener::bind(&client_name).unwrap());
    let mut tally = Tally::default();
    let t = Instant::now();
    for i in 0..iters {
        if i % 2 == 0 {
            // The peer is a client; we accept while it is killed: before it
            // connects, during the handshake, or after.
            let mut peer = Peer::hostile(&["stream-out", "chan", "client", &client_name]);
            peer.expect("STARTING");
            let dead = Arc::new(AtomicBool::new(false));
            let acceptor = std::thread::spawn({
                let (l, dead) = (Arc::clone(&l), Arc::clone(&dead));
                move || loop {
                    // Once the peer is dead, whatever it managed is queued:
                    // one more empty wait means it never connected.
                    let was_dead = dead.load(Ordering::SeqCst);
                    match l.accept_timeout(Duration::from_millis(50)) {
                        Err(e) if e.kind() == IoKind::TimedOut && !was_dead => continue,
                        r => return r,
                    }
                }
            });
            // Under Wine a client takes milliseconds to reach its handshake.
            random_pause(&mut rng, if is_wine() { 20_000 } else { 600 });
            peer.kill();
            dead.store(true, Ordering::SeqCst);
            let r = with_watchdog("accept from a client being killed", move || {
                acceptor.join().unwrap()
            });
            match r {
                Ok(s) => {
                    s.set_read_timeout(Some(STEP)).unwrap();
                    let r = drain_numbered(|b| s.recv_into(b));
                    tally.end(format!("accepted, then {}", end_name(&r)));
                }
                Err(e) if e.kind() == IoKind::TimedOut => tally.end("never connected".into()),
                Err(e) => {
                    assert!(is_clean_death(&e), "accept: {e}");
                    tally.end(format!("accept {:?}", e.kind()));
                }
            }
        } else {
            // The peer is a server; we connect while it is killed.
            let mut peer = Peer::hostile(&["stream-out", "chan", "server", &server_name]);
            peer.expect("READY");
            let client = std::thread::spawn({
                let name = server_name.clone();
                // Not long: a connect that comes after the kill waits this
                // long for a server that will never come back.
                move || ShmStream::connect_timeout(&name, Duration::from_millis(500))
            });
            random_pause(&mut rng, 400);
            peer.kill();
            let r = with_watchdog("connect to a server being killed", move || {
                client.join().unwrap()
            });
            match r {
                Ok(s) => {
                    s.set_read_timeout(Some(STEP)).unwrap();
                    let r = drain_numbered(|b| s.recv_into(b));
                    tally.end(format!("connected, then {}", end_name(&r)));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        named_ipc::ErrorKind::NotFound | named_ipc::ErrorKind::TimedOut
                    ) =>
                {
                    tally.end(format!("connect after the kill: {:?}", e.kind()));
                }
                Err(e) => {
                    let io = std::io::Error::from(e);
                    assert!(is_clean_death(&io), "connect: {io}");
                    tally.end(format!("connect {:?}", io.kind()));
                }
            }
        }
        tally.iterations += 1;
    }
    reclaim_and_release("chan", &server_name);
    report(&format!(
        "channel handshake: {} kills in {:?}; survivor saw {:?}",
        tally.iterations,
        t.elapsed(),
        tally.ended
    ));
}

/// Receives numbered messages until the stream ends; checks their order and
/// that it ended cleanly.
fn drain_numbered(
    mut recv: impl FnMut(&mut Vec<u8>) -> std::io::Result<Option<usize>>,
) -> std::io::Result<Option<usize>> {
    let mut buf = Vec::new();
    let mut want = 0;
    loop {
        match recv(&mut buf) {
            Ok(Some(_)) => {
                let seq = check_numbered(&buf).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(seq, want, "message {seq} arrived where {want} was due");
                want += 1;
            }
            Ok(None) => return Ok(None),
            Err(e) => {
                assert!(is_clean_death(&e), "{e}");
                return Err(e);
            }
        }
    }
}

/// A peer that keeps locking a named mutex to update two words of a segment
/// is killed at random points. Whenever we then get the lock without being
/// told it was abandoned, the two words agree; each peer reopens the mutex by
/// name (its creator, the first peer, is long dead); at the end `nipc shm gc`
/// removes what the dead creator left and `nipc shm ls` shows nothing of ours.
#[test]
fn mutex_holders_killed_at_random_points() {
    let mut rng = rng("mutex holders");
    let iters = iterations(200);
    let mutex_name = unique("chaos-mutex");
    let seg_name = unique("chaos-mutex-seg");
    let seg = SegmentOptions::new().create(&seg_name, 16).unwrap();
    let mut abandoned = 0;
    let mut m: Option<NamedMutex> = None;
    let t = Instant::now();
    for _ in 0..iters {
        let mut peer = Peer::hostile(&["mutex-churn", &mutex_name, &seg_name]);
        peer.expect("READY");
        let m = m.get_or_insert_with(|| NamedMutex::open(&mutex_name).unwrap());
        random_pause(&mut rng, 2000);
        peer.kill();
        let g = m
            .lock_timeout(STEP)
            .unwrap()
            .expect("the mutex of a killed holder was never released");
        let (mut a, mut b) = ([0u8; 8], [0u8; 8]);
        seg.read_at(0, &mut a).unwrap();
        seg.read_at(8, &mut b).unwrap();
        if g.abandoned() {
            abandoned += 1;
            seg.write_at(8, &a).unwrap();
        } else {
            assert_eq!(
                a, b,
                "the lock was not reported abandoned, yet the holder died mid-update"
            );
        }
        drop(g);
    }
    let mut count = [0u8; 8];
    seg.read_at(0, &mut count).unwrap();
    report(&format!(
        "mutex holders: {iters} kills in {:?}, {} updates, {abandoned} kills while holding (abandoned)",
        t.elapsed(),
        u64::from_le_bytes(count)
    ));
    drop(m);
    drop(seg);
    // A fresh process reopens the name once more after all those deaths.
    let mut last = Peer::hostile(&["mutex-churn", &mutex_name, &seg_name]);
    let _ = last.try_line_within(STEP);
    last.kill();
    nothing_stale_after_gc(&[&mutex_name, &seg_name]);
}

/// `nipc shm gc` then `nipc shm ls`: no row names any of `names`.
fn nothing_stale_after_gc(names: &[&str]) {
    let run = |args: &[&str]| -> Vec<String> {
        let mut p = Peer::start(&nipc_exe(), args);
        let mut out = Vec::new();
        while let Some(l) = p.try_line() {
            out.push(l);
        }
        let st = p.wait();
        assert!(st.success(), "nipc {args:?}: {st}\n{}", p.stderr_text());
        out
    };
    let removed = run(&["shm", "gc"]);
    report(&format!("nipc shm gc: {removed:?}"));
    let ls = run(&["shm", "ls"]);
    for row in &ls {
        let first = row.split('\t').next().unwrap_or("");
        assert!(
            !names.iter().any(|n| first.ends_with(n)),
            "stale after gc: {row}"
        );
    }
}

/// How long a call blocked in `op` takes to fail once its peer is killed,
/// over many kills; the survivor must see `BrokenPipe` (or a reset) each
/// time.
fn detection(kind: &'static str, op: &'static str, iters: u64) -> Vec<Duration> {
    let mut times = Vec::new();
    let name = unique(&format!("chaos-detect-{kind}-{op}"));
    let listener = match kind {
        "pipe" => Listener::Pipe(PipeListener::bind(&name).unwrap()),
        _ => Listener::Chan(ChannelOptions::new().capacity(4096).bind(&name).unwrap()),
    };
    for _ in 0..iters {
        let mut peer = Peer::hostile(&["hold", kind, "client", &name]);
        let conn = match &listener {
            Listener::Pipe(l) => Conn::Pipe(l.accept_timeout(STEP).unwrap()),
            Listener::Chan(l) => Conn::Chan(l.accept_timeout(STEP).unwrap()),
        };
        peer.expect("STARTING");
        peer.expect("UP");
        if op == "send" {
            // Fill what the peer does not read, so the next send blocks.
            match &conn {
                Conn::Pipe(p) if cfg!(windows) => {
                    // A Windows write that times out while the pipe holds
                    // its message poisons the sending side (see
                    // `PipeStream::send`); a non-blocking one that finds
                    // the pipe full takes nothing and leaves it usable.
                    p.set_nonblocking(true);
                    while p.send(&[7; 4000]).is_ok() {}
                    p.set_nonblocking(false);
                }
                Conn::Pipe(p) => {
                    p.set_write_timeout(Some(Duration::from_millis(50)))
                        .unwrap();
                    while p.send(&[7; 4000]).is_ok() {}
                    p.set_write_timeout(None).unwrap();
                }
                Conn::Chan(c) => while c.try_send(&[7; 900]).is_ok() {},
            }
        }
        let (tx, rx) = mpsc::channel();
        let blocked = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let e = loop {
                let r = if op == "send" {
                    conn.send(&[7; 900]).map(|()| Some(0))
                } else {
                    conn.recv_into(&mut buf)
                };
                match r {
                    Err(e) => break Some(e),
                    Ok(None) => break None,
                    Ok(Some(_)) => {}
                }
            };
            let _ = tx.send((Instant::now(), e));
        });
        // Let the call reach its wait; if it has not yet, it notices at once.
        std::thread::yield_now();
        let killed = Instant::now();
        peer.kill();
        let (when, e) = rx
            .recv_timeout(STEP)
            .unwrap_or_else(|_| panic!("a blocked {kind} {op} never noticed its peer died"));
        blocked.join().unwrap();
        match e {
            Some(e) => assert!(
                matches!(
                    e.kind(),
                    IoKind::BrokenPipe | IoKind::ConnectionReset | IoKind::ConnectionAborted
                ),
                "{kind} {op}: {e}"
            ),
            None => assert_eq!(op, "recv", "a send cannot end with end of stream"),
        }
        times.push(when.saturating_duration_since(killed));
    }
    times
}

#[test]
fn peer_death_detection_time_is_bounded_and_reported() {
    let iters = iterations(50);
    for kind in ["pipe", "chan"] {
        for op in ["recv", "send"] {
            let mut times = detection(kind, op, iters);
            report(&format!(
                "peer-death detection, blocked {kind} {op}: {}",
                distribution(&mut times)
            ));
            let max = times.iter().max().copied().unwrap_or_default();
            assert!(
                max < DETECTION_BOUND,
                "a blocked {kind} {op} took {max:?} to notice its peer died"
            );
        }
    }
}
