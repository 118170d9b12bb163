//! Hostile peers, through the public API: a channel peer that breaks the ring
//! protocol in shared memory, a pipe peer that announces a 4 GiB message, peers
//! that read nothing or say nothing. Each must end in a clear error within its
//! deadline (no hang, no panic, no out-of-bounds access) and cost the other
//! clients nothing. The misbehaving side is the `hostile` helper binary.
//!
//! The fake channel ends speak the Linux handshake (a sealed memfd over
//! `SCM_RIGHTS`) and are Linux-only; on Windows the handshake passes section
//! and event handles instead, which the helper does not imitate.

mod common;

use std::io::{ErrorKind as IoKind, Write};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use named_ipc::channel::{ChannelOptions, ShmListener, ShmStream};
use named_ipc::pipe::{ConnectOptions, PipeListener, PipeMode};
use tests_integration::ProcStats;

/// Read/write timeout of a victim: every hostile case must end before it,
/// or with it (`TimedOut`), never later.
#[cfg(target_os = "linux")]
const DEADLINE: Duration = Duration::from_secs(5);

#[cfg(target_os = "linux")]
fn channel_client(name: &str) -> ShmStream {
    let c = ChannelOptions::new()
        .max_message_size(64 << 10)
        .timeout(STEP)
        .connect(name)
        .unwrap_or_else(|e| panic!("connect {name}: {e}"));
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    c.set_write_timeout(Some(DEADLINE)).unwrap();
    c
}

#[cfg(target_os = "linux")]
mod fake_server {
    use super::*;

    /// A fake channel server that did a correct handshake, and our client.
    pub(super) fn connected() -> (Peer, ShmStream) {
        let name = unique("fake-srv");
        let mut srv = Peer::hostile(&["fake-chan-server", &name, "ok"]);
        srv.expect("READY");
        let c = channel_client(&name);
        srv.expect("HANDSHAKEN");
        (srv, c)
    }

    /// Receives once under a watchdog; returns the stream for more.
    pub(super) fn recv(c: ShmStream) -> (ShmStream, std::io::Result<Option<Vec<u8>>>) {
        with_watchdog("receive from a hostile server", move || {
            let r = c.recv();
            (c, r)
        })
    }

    pub(super) fn expect_invalid(r: std::io::Result<Option<Vec<u8>>>, needle: &str, case: &str) {
        match r {
            Err(e) => {
                assert_eq!(e.kind(), IoKind::InvalidData, "{case}: {e}");
                assert!(e.to_string().contains(needle), "{case}: {e}");
            }
            Ok(m) => panic!("{case}: a corrupt ring read as {:?}", m.map(|m| m.len())),
        }
    }
}

/// Every way a server can corrupt what the client reads ends in
/// `InvalidData` saying what was wrong, and the stream stays failed.
#[cfg(target_os = "linux")]
#[test]
fn a_server_corrupting_the_ring_gets_the_client_invalid_data() {
    use fake_server::*;
    // (what the server does, a phrase of the error)
    let cases: &[(&[&str], &str)] = &[
        (&["record 5000 8 16"], "does not fit"),
        // The payload and its header fill the ring: no room for the slot
        // of the next header.
        (&["record 4088 8 16"], "does not fit"),
        (&["record 8 0x88 16"], "unknown flags"),
        // A non-zero header without the RECORD flag (stale bytes).
        (&["record 8 0 16"], "unknown flags"),
        // Padding at offset 0 would be a lap of nothing, forever.
        (&["record 8 10 16"], "padding record"),
        (&["zero-more"], "says more of its message follows"),
        (&["more-stream"], "exceeds the limit"),
        (&["unannounced-stream"], "does not announce its length"),
        (&["record 16 13 24"], "announces fewer bytes"),
        (&["publish 1000", "scribble"], "unknown flags"),
    ];
    for (cmds, needle) in cases {
        let case = cmds.join(", ");
        let (mut srv, c) = connected();
        for cmd in *cmds {
            srv.cmd(cmd);
        }
        let (c, r) = recv(c);
        expect_invalid(r, needle, &case);
        // Sticky: the stream is not at a message boundary any more.
        let (c, r) = recv(c);
        expect_invalid(r, needle, &format!("{case} (again)"));
        drop(c);
        srv.cmd("stop");
    }
}

/// The consumer position the client's sender reads is impossible: the send
/// fails with `InvalidData` once it needs room, never waits forever.
#[cfg(target_os = "linux")]
#[test]
fn a_server_corrupting_its_read_position_fails_the_send() {
    use fake_server::*;
    for head in ["3", "999999", "0xFFFFFFFFFFFFFFF8"] {
        let (mut srv, c) = connected();
        srv.cmd(&format!("head {head}"));
        let e = with_watchdog("send to a hostile server", move || {
            let msg = payload(1, 1000);
            for _ in 0..100 {
                if let Err(e) = c.send(&msg) {
                    return e;
                }
            }
            panic!("100 sends of 1000 bytes into a 4 KiB ring all succeeded");
        });
        assert_eq!(e.kind(), IoKind::InvalidData, "head {head}: {e}");
        assert!(e.to_string().contains("consumer's position"), "{e}");
    }
}

/// Garbage in the words a waiter sleeps on costs at most a timeout: the
/// client's receive ends with `TimedOut` at its deadline, and a real message
/// afterwards is still delivered.
#[cfg(target_os = "linux")]
#[test]
fn garbage_in_the_wait_words_costs_a_timeout_not_a_hang() {
    use fake_server::*;
    let (mut srv, c) = connected();
    srv.cmd("bells");
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let (c, r) = recv(c);
    let e = r.expect_err("nothing was sent");
    assert_eq!(e.kind(), IoKind::TimedOut, "{e}");
    // Sends that fit need no wake-up and are unaffected.
    c.send(b"still talking").unwrap();
    srv.cmd("stop");
    srv.cmd("publish 10");
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    let (_c, r) = recv(c);
    assert_eq!(r.unwrap().unwrap(), payload(0, 10));
}

/// A `closed` flag flipped back and forth while messages arrive: a receive on
/// the empty ring sees the end of the stream or times out, one on a message
/// gets that message — never a message out of order, twice or invented, never
/// an error, never a hang.
#[cfg(target_os = "linux")]
#[test]
fn a_flickering_closed_flag_never_invents_or_reorders_messages() {
    use fake_server::*;
    let (mut srv, mut c) = connected();
    srv.cmd("flicker");
    let (mut ends, mut timeouts) = (0, 0);
    for seq in 0..50u64 {
        // The ring is empty: the end, or nothing yet.
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let (back, r) = recv(c);
        c = back;
        match r {
            Ok(None) => ends += 1,
            Err(e) if e.kind() == IoKind::TimedOut => timeouts += 1,
            Ok(Some(m)) => panic!("a {}-byte message out of nowhere", m.len()),
            Err(e) => panic!("a flickering flag is not corruption: {e}"),
        }
        srv.cmd("publish 50");
        c.set_read_timeout(Some(DEADLINE)).unwrap();
        let (back, r) = recv(c);
        c = back;
        assert_eq!(
            r.unwrap().as_deref(),
            Some(&payload(seq, 50)[..]),
            "message {seq}"
        );
    }
    // A peer that reopens after the end can deliver more: the receiver never
    // promised otherwise, and it is the peer's own data (reported, not asserted).
    eprintln!("on the empty ring: end of stream {ends} times, timed out {timeouts} times");
    srv.cmd("stop");
}

/// The server rewrites a record while the client reads it in place: the view
/// keeps the length read and validated before (1000 bytes), refuses reads
/// past it, and shows only bytes that were at some point in that record.
#[cfg(target_os = "linux")]
#[test]
fn a_record_rewritten_during_a_read_cannot_move_the_reader_out_of_bounds() {
    use fake_server::*;
    let (mut srv, c) = connected();
    srv.cmd("publish 1000");
    let orig = payload(0, 1000);
    let (srv, c, seen) = with_watchdog("read in place", move || {
        let seen = c
            .recv_with(|m| {
                srv.cmd("scribble");
                let mut tail = [0u8; 4];
                assert!(m.read_at(996, &mut tail));
                assert!(!m.read_at(997, &mut tail), "read past the record");
                assert_eq!(m.get(1000), None);
                assert!(m.get(999).is_some());
                m.to_vec()
            })
            .unwrap()
            .unwrap();
        (srv, c, seen)
    });
    let mut srv = srv;
    assert_eq!(seen.len(), 1000);
    for (i, (&got, &was)) in seen.iter().zip(&orig).enumerate() {
        assert!(got == was || got == 0xEE, "byte {i} is {got:#x}");
    }
    // The rewrite hit a consumed record: the ring goes on.
    srv.cmd("publish 10");
    let (_c, r) = recv(c);
    assert_eq!(r.unwrap().unwrap(), payload(1, 10));
}

/// A handshake that lies (segment header, hello, descriptor) is refused at
/// connect with a reason.
#[cfg(target_os = "linux")]
#[test]
fn a_lying_handshake_is_refused_at_connect() {
    for (start, needle) in [
        ("bad-magic", "magic"),
        ("bad-offsets", "offsets"),
        ("bad-hello", "handshake"),
        ("hello-handles", "handles"),
        ("no-fd", "descriptor"),
        ("cap-mismatch", "ring"),
    ] {
        let name = unique("fake-hs");
        let mut srv = Peer::hostile(&["fake-chan-server", &name, start]);
        srv.expect("READY");
        let e = with_watchdog("connect to a lying server", {
            let name = name.clone();
            move || ShmStream::connect_timeout(&name, STEP).unwrap_err()
        });
        assert_eq!(
            e.kind(),
            named_ipc::ErrorKind::VersionMismatch,
            "{start}: {e}"
        );
        assert!(e.to_string().contains(needle), "{start}: {e}");
    }
}

/// A server that accepts and never answers: connect fails with `TimedOut`
/// once the handshake's own deadline (10 s) passes.
#[cfg(target_os = "linux")]
#[test]
fn a_server_that_never_answers_the_handshake_times_out() {
    let name = unique("fake-silent");
    let mut srv = Peer::hostile(&["fake-chan-server", &name, "silent"]);
    srv.expect("READY");
    let e = with_watchdog("connect to a silent server", {
        let name = name.clone();
        move || ShmStream::connect_timeout(&name, STEP).unwrap_err()
    });
    srv.expect("HANDSHAKING");
    assert_eq!(e.kind(), named_ipc::ErrorKind::TimedOut, "{e}");
}

/// Hostile clients of one `ShmListener`: each fails its own connection with
/// `InvalidData`; well-behaved clients before, between and after them are
/// served throughout.
#[cfg(target_os = "linux")]
#[test]
fn hostile_clients_fail_only_their_own_connection() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let name = unique("fake-cli");
    let l = ChannelOptions::new()
        .capacity(4096)
        .max_message_size(64 << 10)
        .bind(&name)
        .unwrap();
    // Accepts and echoes; reports how each connection (by accept order) ended.
    let (tx, ended) = mpsc::channel::<(usize, std::io::Result<()>)>();
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let s = match l.accept_timeout(Duration::from_millis(100)) {
                    Ok(s) => s,
                    Err(e) if e.kind() == IoKind::TimedOut => continue,
                    Err(e) => panic!("accept: {e}"),
                };
                s.set_write_timeout(Some(DEADLINE)).unwrap();
                let tx = tx.clone();
                let id = n;
                n += 1;
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let r = (|| {
                        while s.recv_into(&mut buf)?.is_some() {
                            s.send(&buf)?;
                        }
                        Ok(())
                    })();
                    let _ = tx.send((id, r));
                });
            }
        }
    });
    let good: Vec<ShmStream> = (0..2).map(|_| channel_client(&name)).collect();
    let mut accepted = good.len();
    let check_good = |good: &[ShmStream], round: u64| {
        for (i, c) in good.iter().enumerate() {
            let m = payload(round * 10 + i as u64, 300);
            c.send(&m).unwrap();
            assert_eq!(
                c.recv().unwrap().unwrap(),
                m,
                "good client {i}, round {round}"
            );
        }
    };
    check_good(&good, 0);
    let cases: &[(&[&str], Option<&str>)] = &[
        (&["record 5000 8 16"], Some("does not fit")),
        (&["record 8 0x88 16"], Some("unknown flags")),
        (&["zero-more"], Some("says more of its message follows")),
        (&["more-stream"], Some("exceeds the limit")),
        (
            &["unannounced-stream"],
            Some("does not announce its length"),
        ),
        (
            // The echo fills the ring towards the hostile client, whose read
            // position is impossible: the server's send fails.
            &[
                "head 3",
                "publish 1000",
                "publish 1000",
                "publish 1000",
                "publish 1000",
                "publish 1000",
                "publish 1000",
            ],
            Some("consumer's position"),
        ),
        (&["bells"], None),
        (&["flicker"], None),
    ];
    let mut hostile = Vec::new();
    // Connections whose client misbehaved in a way that is no error (garbage
    // in the wait words, a flickering closed flag): they may end, cleanly.
    let mut harmless = std::collections::HashMap::new();
    fn check_harmless(
        id: usize,
        r: &std::io::Result<()>,
        harmless: &std::collections::HashMap<usize, &&[&str]>,
    ) {
        match harmless.get(&id) {
            Some(cmds) => assert!(r.is_ok(), "connection {id} ({cmds:?}) failed: {r:?}"),
            None => panic!("connection {id} ended: {r:?}"),
        }
    }
    for (round, (cmds, needle)) in cases.iter().enumerate() {
        let mut h = Peer::hostile(&["fake-chan-client", &name]);
        h.expect("CONNECTED");
        let id = accepted;
        accepted += 1;
        for cmd in *cmds {
            h.cmd(cmd);
        }
        if let Some(needle) = needle {
            // This connection, and only it, fails.
            let r = loop {
                let (got, r) = ended
                    .recv_timeout(STEP)
                    .unwrap_or_else(|_| panic!("{cmds:?}: the server did not notice"));
                if got == id {
                    break r;
                }
                check_harmless(got, &r, &harmless);
            };
            let e = r.expect_err("ended without an error");
            assert_eq!(e.kind(), IoKind::InvalidData, "{cmds:?}: {e}");
            assert!(e.to_string().contains(needle), "{cmds:?}: {e}");
        } else {
            harmless.insert(id, cmds);
        }
        check_good(&good, round as u64 + 1);
        hostile.push(h);
    }
    // A newcomer is served too.
    let late = channel_client(&name);
    late.send(b"late").unwrap();
    assert_eq!(late.recv().unwrap().unwrap(), b"late");
    // Whatever the remaining hostile clients did was no error of the server's
    // to report, and no good client ended.
    for mut h in hostile {
        h.cmd("stop");
    }
    while let Ok((id, r)) = ended.try_recv() {
        check_harmless(id, &r, &harmless);
    }
    stop.store(true, Ordering::Relaxed);
    acceptor.join().unwrap();
}

/// What a receiver that accepts messages of up to 4 GiB − 1 went through: a
/// frame header announcing 4 GiB − 1, 2 MiB of it trickling in while it timed
/// out (cleanly) again and again, then the peer leaving. Returns its memory
/// before, and after it reported the truncated message.
fn announce_4_gib() -> (Option<ProcStats>, Option<ProcStats>) {
    // Unix: raw bytes into a message pipe (a byte-mode client can write
    // anything). Windows message pipes delimit messages natively, so there
    // the frames travel on a byte pipe read with `Framed`.
    let mode = if cfg!(unix) { "message" } else { "framed" };
    let name = unique("4gib");
    let mut rx = Peer::hostile(&["pipe-measure", &name, mode]);
    rx.expect("READY");
    let stats = |line: String| -> Option<ProcStats> {
        let s = line.strip_prefix("MEM ").expect("MEM line");
        ProcStats::parse(s)
    };
    let before = stats(rx.line());
    let c = ConnectOptions::new()
        .mode(PipeMode::Byte)
        .timeout(STEP)
        .connect(&name)
        .unwrap();
    // The peer writes the header and 2 MiB from a thread (the receiver reads
    // only when told to), then holds the connection open until told to leave.
    let (done_tx, done) = mpsc::channel();
    let (leave, leave_rx) = mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        (&c).write_all(&u32::MAX.to_le_bytes()).unwrap();
        for _ in 0..2 {
            (&c).write_all(&vec![0x5Au8; 1 << 20]).unwrap();
        }
        done_tx.send(()).unwrap();
        let _ = leave_rx.recv();
        drop(c);
    });
    // Each receive gets what has arrived, then times out: the message is not
    // complete. The last one starts after everything was written.
    let mut finished = false;
    while !finished {
        finished = done.try_recv().is_ok();
        rx.send_line("recv 300");
        let r = rx.expect("RECV");
        assert!(r.starts_with("RECV err TimedOut"), "{r}");
        eprintln!(
            "receiver while the message trickles in: {:?}",
            stats(rx.line())
        );
    }
    leave.send(()).unwrap();
    writer.join().unwrap();
    rx.send_line("recv 60000");
    let r = rx.expect("RECV");
    assert!(r.starts_with("RECV err UnexpectedEof"), "{r}");
    assert!(
        r.contains("4294967295") && r.contains("2097152 bytes received"),
        "{r}"
    );
    let after = stats(rx.line());
    eprintln!("receiver before: {before:?}\nafter: {after:?}");
    rx.wait_ok();
    (before, after)
}

/// Far below the 4 GiB announced, far above the 2 MiB that arrived (KiB).
const GROWTH_LIMIT_KIB: u64 = 256 * 1024;

/// A frame header announcing 4 GiB − 1, then a trickle, then silence: the
/// receiver times out cleanly while it waits, keeps what arrived, reports the
/// truncated message when the peer leaves, and its resident memory grows by
/// what arrived, never by what was announced.
#[test]
fn a_frame_announcing_4_gib_costs_only_what_arrives() {
    let (before, after) = announce_4_gib();
    if let (Some(b), Some(a)) = (before, after) {
        assert!(
            a.peak_rss_kib.saturating_sub(b.peak_rss_kib) < GROWTH_LIMIT_KIB,
            "resident memory grew from {b} to {a}"
        );
    }
}

/// The same, for address space (Linux `VmPeak`; Windows committed memory): a
/// receiver must not even reserve what a peer announces, or a few such peers
/// exhaust it.
#[test]
fn a_frame_announcing_4_gib_reserves_no_address_space_for_it() {
    let (before, after) = announce_4_gib();
    if let (Some(b), Some(a)) = (before, after) {
        assert!(
            a.peak_virtual_kib.saturating_sub(b.peak_virtual_kib) < GROWTH_LIMIT_KIB,
            "address space grew from {b} to {a}"
        );
    }
}

/// Clients that connect and say nothing (or half a frame header) do not stop
/// a pipe server from accepting and serving everyone else.
#[test]
fn silent_pipe_clients_do_not_stop_the_server_serving_others() {
    let name = unique("silent");
    let mut srv = Peer::spawn(&["echo", &name, "message", "255", "1000000"]);
    srv.expect("READY");
    // A byte-mode client can put half a frame into a message pipe only on
    // Unix; on Windows the modes must match.
    let hows: &[&str] = if cfg!(unix) {
        &["nothing", "half-header", "header-only"]
    } else {
        &["nothing"]
    };
    let mut silent = Vec::new();
    for how in hows {
        let mut p = Peer::hostile(&["pipe-silent", &name, how]);
        p.expect("CONNECTED");
        silent.push(p);
    }
    for i in 0..3u64 {
        let c = ConnectOptions::new().timeout(STEP).connect(&name).unwrap();
        c.set_read_timeout(Some(STEP)).unwrap();
        c.send(&payload(i, 100)).unwrap();
        assert_eq!(c.recv().unwrap().unwrap(), payload(i, 100));
    }
    for mut p in silent {
        p.wait_ok();
    }
}

/// A channel client that connects and never starts the handshake must not
/// keep `ShmListener::accept` from accepting the next client.
#[test]
fn a_silent_client_does_not_stall_channel_accept() {
    let name = unique("chan-silent");
    let l = ShmListener::bind(&name).unwrap();
    let mut silent = Peer::hostile(&["chan-silent", &name]);
    silent.expect("CONNECTED");
    let good = std::thread::spawn({
        let name = name.clone();
        move || {
            let c = ShmStream::connect_timeout(&name, STEP).unwrap();
            c.send(b"served").unwrap();
            c
        }
    });
    let s = with_watchdog("accept past a silent client", move || {
        l.accept().map(|s| (s, l))
    });
    let (s, _l) = s.expect("accept failed because of the silent client");
    s.set_read_timeout(Some(STEP)).unwrap();
    assert_eq!(s.recv().unwrap().unwrap(), b"served");
    drop(good.join().unwrap());
    silent.wait_ok();
}

/// A pipe peer that reads nothing: the sender's write timeout ends each send
/// that cannot complete with `TimedOut`, and every send that returned `Ok`
/// reaches the peer whole once it reads.
#[test]
fn a_pipe_peer_that_reads_nothing_gets_no_false_ok() {
    let name = unique("deaf");
    let l = PipeListener::bind(&name).unwrap();
    let mut peer = Peer::hostile(&["pipe-deaf", &name]);
    let s = l.accept_timeout(STEP).unwrap();
    peer.expect("CONNECTED");
    s.set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let (s, ok, e) = with_watchdog("send to a deaf peer", move || {
        let mut ok = 0u64;
        loop {
            match s.send(&payload(ok, 300_000)) {
                Ok(()) => ok += 1,
                Err(e) => return (s, ok, e),
            }
            assert!(
                ok < 10_000,
                "10,000 sends of 300 kB to a peer that reads nothing"
            );
        }
    });
    assert_eq!(e.kind(), IoKind::TimedOut, "{e}");
    drop(s);
    peer.send_line("drain");
    let got = peer.expect("GOT");
    let end = peer.expect("END");
    assert_eq!(
        got,
        format!("GOT {ok}"),
        "sends that returned Ok: {ok}; {end}"
    );
    assert!(
        end == "END eof" || end.starts_with("END error UnexpectedEof"),
        "{end}"
    );
}

/// Reads everything a flooding peer (the `flood` role) sent before it gave
/// up and exited without cleaning up: every send that returned `Ok` must be
/// here, whole, followed by the end of the stream or an error where the
/// message it gave up on was cut.
fn flood_and_count(kind: &str, size: usize) {
    let name = unique(&format!("flood-{kind}"));
    let mut peer;
    let mut got = 0u64;
    let end;
    let mut buf = Vec::new();
    if kind == "pipe" {
        let l = PipeListener::bind(&name).unwrap();
        peer = Peer::hostile(&["flood", kind, &name, &size.to_string(), "300"]);
        let s = l.accept_timeout(STEP).unwrap();
        peer.expect("CONNECTED");
        let sent = peer.expect("SENT");
        peer.wait_ok();
        s.set_read_timeout(Some(STEP)).unwrap();
        end = loop {
            match s.recv_into(&mut buf) {
                Ok(Some(n)) => {
                    assert!(buf == payload(got, n), "message {got} is corrupted");
                    got += 1;
                }
                Ok(None) => break "eof".to_string(),
                Err(e) => break format!("{:?} {e}", e.kind()),
            }
        };
        check_flood(&sent, got, &end);
    } else {
        let l = ChannelOptions::new().capacity(4096).bind(&name).unwrap();
        peer = Peer::hostile(&["flood", kind, &name, &size.to_string(), "300"]);
        let s = l.accept_timeout(STEP).unwrap();
        peer.expect("CONNECTED");
        let sent = peer.expect("SENT");
        peer.wait_ok();
        s.set_read_timeout(Some(STEP)).unwrap();
        end = loop {
            match s.recv_into(&mut buf) {
                Ok(Some(n)) => {
                    assert!(buf == payload(got, n), "message {got} is corrupted");
                    got += 1;
                }
                Ok(None) => break "eof".to_string(),
                Err(e) => break format!("{:?} {e}", e.kind()),
            }
        };
        check_flood(&sent, got, &end);
    }
}

fn check_flood(sent: &str, got: u64, end: &str) {
    let ok: u64 = sent.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(sent.contains(" TimedOut "), "{sent}");
    assert_eq!(got, ok, "{sent}; the reader got {got} messages, then {end}");
    assert!(
        end == "eof" || end.starts_with("UnexpectedEof") || end.starts_with("BrokenPipe"),
        "{end}"
    );
    eprintln!("{sent}; the reader got {got} messages, then {end}");
}

/// A pipe sender whose peer reads nothing gives up with `TimedOut`; every
/// send that returned `Ok` had been handed to the OS whole, so nothing is lost
/// when the sender exits right after.
#[test]
fn a_pipe_send_that_returned_ok_survives_the_sender_exiting() {
    flood_and_count("pipe", 300000);
}

/// The same on a channel, with messages larger than the ring.
#[test]
fn a_channel_send_that_returned_ok_survives_the_sender_exiting() {
    flood_and_count("chan", 10_000);
}

/// The same on a channel: full ring → `TimedOut` with nothing sent; a large
/// message stuck part-way → `TimedOut` "sending side is closed", and the peer
/// sees an error where that message was cut, never a false message.
#[test]
fn a_channel_peer_that_reads_nothing_gets_timeouts_not_false_oks() {
    for big in [false, true] {
        let name = unique("chan-deaf");
        let l = ChannelOptions::new().capacity(4096).bind(&name).unwrap();
        let mut peer = Peer::hostile(&["chan-deaf", &name]);
        let s = l.accept_timeout(STEP).unwrap();
        peer.expect("CONNECTED");
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (s, ok, e) = with_watchdog("send to a deaf channel peer", move || {
            let mut ok = 0u64;
            loop {
                let len = if big && ok == 2 { 20_000 } else { 500 };
                match s.send(&payload(ok, len)) {
                    Ok(()) => ok += 1,
                    Err(e) => return (s, ok, e),
                }
                assert!(ok < 10_000, "10,000 sends into a 4 KiB ring nobody reads");
            }
        });
        assert_eq!(e.kind(), IoKind::TimedOut, "{e}");
        if big {
            assert_eq!(ok, 2);
            assert!(e.to_string().contains("sending side is closed"), "{e}");
            assert_eq!(s.send(b"x").unwrap_err().kind(), IoKind::TimedOut);
        } else {
            // Nothing of the refused message went out: the stream still works.
            assert!(!e.to_string().contains("closed"), "{e}");
        }
        drop(s);
        peer.send_line("drain");
        assert_eq!(peer.expect("GOT"), format!("GOT {ok}"));
        let end = peer.expect("END");
        if big {
            assert!(end.starts_with("END error UnexpectedEof"), "{end}");
        } else {
            assert_eq!(end, "END eof");
        }
        peer.wait_ok();
    }
}

/// Review: a server that rings an async client's wake-up descriptors without
/// end (and publishes nothing) must not keep one poll of the client's
/// receive looping: the task has to yield, so that a timeout around it
/// fires and the other tasks of its (current-thread) runtime run. (Here
/// tokio's cooperative budget, which each readiness poll of the eventfd
/// spends, already forces the yield; `channel::flow`'s unit test
/// `a_flooded_bell_cannot_keep_one_poll_looping` shows the wait loop itself,
/// as the Windows thread-pool doze drives it, needed its own bound.)
#[cfg(target_os = "linux")]
#[test]
fn a_server_flooding_an_async_clients_wake_ups_cannot_stall_its_runtime() {
    let name = unique("fake-flood");
    let mut srv = Peer::hostile(&["fake-chan-server", &name, "flood-wakers"]);
    srv.expect("READY");
    let (rt, c) = with_watchdog("connect an async client", move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let c = rt
            .block_on(named_ipc::tokio::ShmStream::connect_timeout(&name, STEP))
            .unwrap();
        (rt, c)
    });
    srv.expect("HANDSHAKEN");
    srv.expect("FLOODING");
    let (timed_out, ticks) = with_watchdog(
        "an async receive woken for nothing, without end",
        move || {
            rt.block_on(async {
                let ticker = tokio::spawn(async {
                    let mut n = 0u32;
                    loop {
                        tokio::task::yield_now().await;
                        n += 1;
                        if n == 1000 {
                            return n;
                        }
                    }
                });
                let r = tokio::time::timeout(Duration::from_millis(300), c.recv()).await;
                (r.is_err(), ticker.await.unwrap())
            })
        },
    );
    assert!(timed_out, "the receive returned although nothing was sent");
    assert_eq!(ticks, 1000);
}

/// The test harness retries a process start only for Wine's "child died while
/// starting" status (1359, Windows only), at most `SPAWN_TRIES` times; any
/// other failure is reported at once.
#[test]
fn process_start_is_retried_only_for_a_child_that_died_while_starting() {
    use std::io::Error;
    let mut calls = 0;
    let r = spawn_retrying_wine_startup(|| {
        calls += 1;
        Err(Error::from_raw_os_error(1359))
    });
    assert_eq!(r.unwrap_err().raw_os_error(), Some(1359));
    assert_eq!(calls, if cfg!(windows) { 4 } else { 1 });

    let mut calls = 0;
    let r = spawn_retrying_wine_startup(|| {
        calls += 1;
        Err(Error::from(IoKind::NotFound))
    });
    assert_eq!(r.unwrap_err().kind(), IoKind::NotFound);
    assert_eq!(calls, 1);
}
