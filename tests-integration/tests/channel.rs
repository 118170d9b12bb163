//! The shared-memory channel across real processes: every size (including
//! messages many times the ring), millions of messages in order, zero copy,
//! orderly close versus a peer that dies, timeouts, many clients.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use named_ipc::channel::{ChannelOptions, ShmStream};

fn echo(capacity: usize) -> (Peer, String) {
    let name = unique("chan");
    let mut p = Peer::spawn(&["chan-echo", &name, &capacity.to_string()]);
    p.expect("READY");
    (p, name)
}

fn connect(name: &str) -> ShmStream {
    let c =
        ShmStream::connect_timeout(name, STEP).unwrap_or_else(|e| panic!("connect {name}: {e}"));
    c.set_read_timeout(Some(STEP)).unwrap();
    c.set_write_timeout(Some(STEP)).unwrap();
    c
}

#[test]
fn every_size_round_trips_including_messages_larger_than_the_ring() {
    // A 4 KiB ring: a copying send puts up to 1024 bytes (a quarter) in one
    // record and streams anything bigger in pieces; in place, up to the ring
    // size minus a header and the next record's header slot.
    let (_srv, name) = echo(4096);
    let c = connect(&name);
    let m = c.max_in_place();
    assert_eq!(m, 4096 - 16);
    let sizes = [
        0,
        1,
        7,
        8,
        9,
        63,
        64,
        100,
        1023,
        1024,
        1025,
        2048,
        m - 1,
        m,
        m + 1,
        4096,
        3 * 4096 + 3,
        65536,
        1 << 20,
        16 << 20,
    ];
    let mut buf = Vec::new();
    for (seq, size) in sizes.into_iter().enumerate() {
        let p = payload(seq as u64, size);
        c.send(&p).unwrap();
        assert_eq!(c.recv_into(&mut buf).unwrap(), Some(size));
        assert!(buf == p, "echo of {size} bytes differs");
    }
}

#[test]
fn millions_of_messages_arrive_complete_and_in_order() {
    let name = unique("sink");
    let mut sink = Peer::spawn(&["chan-sink", &name]);
    sink.expect("READY");
    let c = connect(&name);
    // Fewer under Wine, which is much slower at this.
    let count: u64 = if is_wine() { 200_000 } else { 2_000_000 };
    let mut msg = Vec::new();
    for seq in 0..count {
        msg.clear();
        msg.extend_from_slice(&seq.to_le_bytes());
        msg.extend_from_slice(&payload(seq, (seq % 61) as usize));
        c.send(&msg).unwrap();
    }
    drop(c);
    assert_eq!(sink.line(), format!("GOT {count}"));
    sink.wait_ok();
}

#[test]
fn both_directions_at_once_under_load() {
    let (_srv, name) = echo(8192);
    let c = Arc::new(connect(&name));
    let n: u64 = if is_wine() { 20_000 } else { 200_000 };
    let reader = {
        let c = Arc::clone(&c);
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            for seq in 0..n {
                c.recv_into(&mut buf).unwrap().expect("server closed");
                assert!(
                    buf == payload(seq, (seq % 3000) as usize),
                    "echo {seq} differs"
                );
            }
        })
    };
    for seq in 0..n {
        c.send(&payload(seq, (seq % 3000) as usize)).unwrap();
    }
    reader.join().unwrap();
}

#[test]
fn zero_copy_send_and_receive() {
    let (_srv, name) = echo(65536);
    let c = connect(&name);
    let written = c
        .send_with(1000, |buf| {
            let bytes: Vec<u8> = (0..1000).map(|i| (i % 256) as u8).collect();
            assert!(buf.write_at(0, &bytes[..600]));
            assert!(buf.write_at(600, &bytes[600..]));
            assert!(!buf.write_at(999, b"xy"), "a write past the end is refused");
            buf.len()
        })
        .unwrap();
    assert_eq!(written, 1000);
    let sum = c
        .recv_with(|msg| {
            assert_eq!(msg.len(), 1000);
            let v = msg.to_vec();
            assert!(v.iter().enumerate().all(|(i, &b)| b == (i % 256) as u8));
            let mut tail = [0u8; 2];
            assert!(msg.read_at(998, &mut tail));
            assert!(
                !msg.read_at(999, &mut tail),
                "a read past the end is refused"
            );
            assert_eq!(msg.get(999), Some((999 % 256) as u8));
            assert_eq!(msg.get(1000), None);
            v.iter().map(|&b| u64::from(b)).sum::<u64>()
        })
        .unwrap()
        .unwrap();
    assert_eq!(sum, (0..1000u64).map(|i| i % 256).sum());
    // Larger than one record: not in place, but still delivered.
    let big = payload(5, 100_000);
    c.send(&big).unwrap();
    assert!(c.recv_with(|m| m.to_vec() == big).unwrap().unwrap());
    let e = c.send_with(c.max_in_place() + 1, |_| ()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

/// The `unsafe` slice route, for peers whose code you trust.
#[test]
#[allow(unsafe_code)]
fn zero_copy_slices_for_trusted_peers() {
    let (_srv, name) = echo(65536);
    let c = connect(&name);
    c.send_with(16, |buf| {
        // SAFETY: the peer is our own echo server, which never writes into a
        // record before it has been sent.
        unsafe { buf.as_mut_slice() }.copy_from_slice(&[9; 16]);
    })
    .unwrap();
    // SAFETY: as above; the echo server never writes into our receive ring's
    // records after committing them.
    let same = c.recv_with(|m| unsafe { m.as_slice() } == [9; 16]);
    assert!(same.unwrap().unwrap());
}

#[test]
fn an_orderly_close_reads_as_end_after_the_last_message() {
    for how in ["drop", "exit"] {
        let name = unique("close");
        let mut srv = Peer::spawn(&["chan-send-then-exit", &name, "50", "300", how]);
        srv.expect("READY");
        let c = connect(&name);
        for seq in 0..50 {
            assert_eq!(
                c.recv().unwrap().unwrap(),
                payload(seq, 300),
                "{how}: message {seq}"
            );
        }
        if how == "drop" {
            assert_eq!(
                c.recv().unwrap(),
                None,
                "orderly close is the end of the stream"
            );
            srv.expect("DONE");
            let e = c.send(b"anyone?").unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
        } else {
            // The process exited without dropping the stream: the peer is gone.
            let e = c.recv().unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
}

/// Kills `peer` while this process is blocked in `op`, and returns how long
/// after the kill `op` failed (reported, not asserted: machines are noisy).
fn time_to_notice(
    mut peer: Peer,
    op: impl FnOnce() -> std::io::Error + Send + 'static,
) -> Duration {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let e = op();
        tx.send((Instant::now(), e)).unwrap();
    });
    // Let `op` reach its sleep; whether it has does not change the outcome.
    std::thread::yield_now();
    let killed = Instant::now();
    peer.kill();
    let (when, e) = rx
        .recv_timeout(STEP)
        .expect("the blocked call never returned");
    t.join().unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    assert!(e.to_string().contains("peer gone"), "{e}");
    when.saturating_duration_since(killed)
}

#[test]
fn a_blocked_recv_learns_that_the_peer_died() {
    let name = unique("die-recv");
    let mut srv = Peer::spawn(&["chan-hold", &name]);
    srv.expect("READY");
    let c = ShmStream::connect_timeout(&name, STEP).unwrap();
    srv.expect("ACCEPTED");
    let d = time_to_notice(srv, move || c.recv().unwrap_err());
    eprintln!("blocked recv noticed the peer's death after {d:?}");
}

#[test]
fn a_blocked_send_learns_that_the_peer_died() {
    let name = unique("die-send");
    let l = ChannelOptions::new().capacity(4096).bind(&name).unwrap();
    let mut cli = Peer::spawn(&["chan-connect-hold", &name]);
    let s = l.accept_timeout(STEP).unwrap();
    cli.expect("CONNECTED");
    // Fill the ring: the peer never reads.
    let chunk = vec![1u8; 1000];
    while s.try_send(&chunk).is_ok() {}
    let d = time_to_notice(cli, move || loop {
        if let Err(e) = s.send(&chunk) {
            return e;
        }
    });
    eprintln!("blocked send noticed the peer's death after {d:?}");
}

#[test]
fn timeouts_and_try_calls_lose_nothing() {
    let name = unique("try");
    let l = ChannelOptions::new().capacity(4096).bind(&name).unwrap();
    let c = std::thread::spawn({
        let name = name.clone();
        move || ShmStream::connect_timeout(&name, STEP).unwrap()
    });
    let s = l.accept_timeout(STEP).unwrap();
    let c = c.join().unwrap();

    assert_eq!(
        s.try_recv().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    let t = Instant::now();
    assert_eq!(
        s.recv_timeout(Duration::from_millis(120))
            .unwrap_err()
            .kind(),
        std::io::ErrorKind::TimedOut
    );
    assert!(t.elapsed() >= Duration::from_millis(110));

    // Fill the ring from the client without anyone reading: 500-byte
    // messages, then empty ones in what is left.
    let mut sent = 0u64;
    while c.try_send(&payload(sent, 500)).is_ok() {
        sent += 1;
    }
    assert!(sent > 0);
    let mut empty = 0u64;
    while c.try_send(&[]).is_ok() {
        empty += 1;
    }
    assert_eq!(
        c.try_send(&[1]).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    assert_eq!(
        c.send_timeout(&[1], Duration::from_millis(50))
            .unwrap_err()
            .kind(),
        std::io::ErrorKind::TimedOut
    );
    // Everything accepted arrives, in order; refused sends left no trace.
    for seq in 0..sent {
        assert_eq!(s.try_recv().unwrap().unwrap(), payload(seq, 500));
    }
    for _ in 0..empty {
        assert_eq!(s.try_recv().unwrap().unwrap(), b"");
    }
    assert_eq!(
        s.try_recv().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );

    // A large message interrupted by a timeout on the receiving side resumes.
    let big = payload(9, 20_000);
    let sender = std::thread::spawn(move || {
        c.send(&big).unwrap();
        c
    });
    let mut got = None;
    for _ in 0..10_000 {
        match s.recv_timeout(Duration::from_millis(1)) {
            Ok(m) => {
                got = m;
                break;
            }
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut),
        }
    }
    let c = sender.join().unwrap();
    assert_eq!(got.expect("never arrived"), payload(9, 20_000));
    drop(c);
    assert_eq!(s.recv().unwrap(), None);
}

#[test]
fn many_clients_each_get_their_own_rings() {
    let (_srv, name) = echo(16384);
    let clients: Vec<ShmStream> = (0..48).map(|_| connect(&name)).collect();
    for round in 0..20u64 {
        for (i, c) in clients.iter().enumerate() {
            c.send(&payload(round * 100 + i as u64, 200 + i)).unwrap();
        }
        for (i, c) in clients.iter().enumerate() {
            assert_eq!(
                c.recv().unwrap().unwrap(),
                payload(round * 100 + i as u64, 200 + i)
            );
        }
    }
}

#[test]
fn limits_are_learned_in_the_handshake() {
    let name = unique("limits");
    let l = ChannelOptions::new()
        .max_message_size(1000)
        .bind(&name)
        .unwrap();
    let c = std::thread::spawn({
        let name = name.clone();
        move || ShmStream::connect_timeout(&name, STEP).unwrap()
    });
    let s = l.accept_timeout(STEP).unwrap();
    let c = c.join().unwrap();
    assert_eq!(c.peer_max_message(), 1000);
    assert_eq!(s.peer_max_message(), 16 << 20);
    c.send(&[0; 1000]).unwrap();
    let e = c.send(&[0; 1001]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("1000 bytes"), "{e}");
    assert_eq!(s.recv().unwrap().unwrap().len(), 1000);
    assert_eq!(c.peer_pid().unwrap(), std::process::id());
}

#[test]
fn a_plain_pipe_server_is_not_mistaken_for_a_channel() {
    let name = unique("notchan");
    let mut srv = Peer::spawn(&["echo", &name, "message", "255", "1000000"]);
    srv.expect("READY");
    let e = ShmStream::connect_timeout(&name, STEP).unwrap_err();
    assert!(e.to_string().contains("handshake"), "{e}");
}

#[cfg(target_os = "linux")]
#[test]
fn an_idle_channel_burns_no_cpu() {
    let (srv, name) = echo(65536);
    let c = connect(&name);
    c.send(b"wake up").unwrap();
    c.recv().unwrap();
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let before = cpu(srv.pid());
    // Idle for a while: the server's thread is blocked in recv.
    assert!(c.recv_timeout(Duration::from_millis(500)).is_err());
    let used = cpu(srv.pid()) - before;
    // Clock ticks (normally 1/100 s): a spinning thread would use ~50.
    assert!(
        used <= 5,
        "an idle echo server used {used} ticks of CPU in 0.5 s"
    );
}

#[test]
fn split_halves_work_from_their_own_threads() {
    let (_srv, name) = echo(8192);
    let (mut tx, mut rx) = connect(&name).split();
    rx.set_read_timeout(Some(STEP)).unwrap();
    let n: u64 = if is_wine() { 20_000 } else { 300_000 };
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        for seq in 0..n {
            rx.recv_into(&mut buf).unwrap().expect("server closed");
            assert!(
                buf == payload(seq, (seq % 2000) as usize),
                "echo {seq} differs"
            );
        }
        // Zero copy on the receiving half too.
        assert_eq!(rx.recv_with(|m| m.to_vec()).unwrap().unwrap(), b"last");
        rx
    });
    for seq in 0..n {
        tx.send(&payload(seq, (seq % 2000) as usize)).unwrap();
    }
    tx.send_with(4, |b| b.copy_from_slice(b"last")).unwrap();
    let mut rx = reader.join().unwrap();
    // Dropping the sender closes our direction: the echo server sees the end
    // and closes its own, which the receiver reads as the end.
    drop(tx);
    assert_eq!(rx.recv().unwrap(), None);
}

/// A server and a client in this process, on a small ring.
fn local_pair(capacity: usize) -> (ShmStream, ShmStream) {
    let name = unique("local");
    let l = ChannelOptions::new()
        .capacity(capacity)
        .bind(&name)
        .unwrap();
    let c = std::thread::spawn(move || ShmStream::connect_timeout(&name, STEP).unwrap());
    let s = l.accept_timeout(STEP).unwrap();
    (s, c.join().unwrap())
}

/// A send whose write timeout runs out after part of a large message is in
/// the ring must not report success (the rest would be lost, or sent later
/// into the middle of the next message): it gets a grace period, then closes
/// the sending direction, and the receiver gets an error instead of a cut
/// message.
#[test]
fn a_send_stuck_part_way_closes_the_sending_side() {
    with_watchdog("stuck send", || {
        let (s, c) = local_pair(4096);
        let big = payload(1, 20_000);
        let t = Instant::now();
        let e = c
            .send_timeout(&big, Duration::from_millis(50))
            .expect_err("a send that could not finish reported success");
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains("sending side is closed"), "{e}");
        eprintln!("stuck send gave up after {:?}", t.elapsed());
        // Every later send fails the same way; nothing more enters the ring.
        assert_eq!(
            c.send(b"next").unwrap_err().kind(),
            std::io::ErrorKind::TimedOut
        );
        assert!(c.flush().is_err());
        // The receiver sees the message cut, as an error, never as a message.
        let e = s.recv_timeout(STEP).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
        assert!(
            e.to_string()
                .contains("in the middle of a 20000-byte message"),
            "{e}"
        );
        // The other direction still works.
        s.send(b"still here").unwrap();
        assert_eq!(c.recv().unwrap().unwrap(), b"still here");
    });
}

/// A stuck send that the peer unblocks within the grace period completes.
#[test]
fn a_send_stuck_part_way_finishes_when_the_peer_reads_in_time() {
    with_watchdog("grace", || {
        let (s, c) = local_pair(4096);
        let big = payload(2, 20_000);
        let reader = std::thread::spawn(move || {
            // A slow peer: it starts reading only after the sender's timeout
            // has run out (a delay we inject, not a wait for readiness).
            std::thread::sleep(Duration::from_millis(200));
            let got = s.recv().unwrap().unwrap();
            (s, got)
        });
        c.send_timeout(&big, Duration::from_millis(50)).unwrap();
        let (s, got) = reader.join().unwrap();
        assert_eq!(got, big);
        c.send(b"after").unwrap();
        assert_eq!(s.recv().unwrap().unwrap(), b"after");
    });
}

/// `try_send` sends a whole message or nothing: a message of several records
/// that does not fit in the free space now leaves no record behind.
#[test]
fn try_send_is_all_or_nothing() {
    let (s, c) = local_pair(4096);
    c.try_send(&payload(0, 2000)).unwrap();
    let three_records = payload(1, 2500);
    assert_eq!(
        c.try_send(&three_records).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    assert_eq!(s.try_recv().unwrap().unwrap(), payload(0, 2000));
    assert_eq!(
        s.try_recv().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "a refused try_send left part of its message in the ring"
    );
    // Now it fits.
    c.try_send(&three_records).unwrap();
    assert_eq!(s.try_recv().unwrap().unwrap(), three_records);
    // Larger than the ring: never without waiting.
    assert_eq!(
        c.try_send(&payload(2, 10_000)).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
}

/// Windows: the server's handle values name its own objects, so `accept` must
/// not return (its caller could drop them, and the values be reused) until the
/// client says it has duplicated them.
#[cfg(windows)]
#[test]
fn a_windows_server_keeps_its_handles_until_the_client_has_taken_them() {
    use named_ipc::pipe::PipeStream;
    let name = unique("chan-ok");
    let mut srv = Peer::spawn(&["chan-hold", &name]);
    srv.expect("READY");
    // A hand-made client: the hello of channel/header.rs, version 4.
    let c = PipeStream::connect_timeout(&name, STEP).unwrap();
    let mut hi = b"NIPC-CL1".to_vec();
    hi.extend_from_slice(&4u32.to_le_bytes());
    hi.extend_from_slice(&(1u32 << 20).to_le_bytes());
    hi.extend_from_slice(&0u64.to_le_bytes());
    hi.extend_from_slice(&0u32.to_le_bytes());
    c.send(&hi).unwrap();
    c.set_read_timeout(Some(STEP)).unwrap();
    let hello = c.recv().unwrap().expect("the server's handshake");
    assert_eq!(&hello[..8], b"NIPC-HS1");
    assert!(
        !srv.has_line_within(Duration::from_millis(500)),
        "accept returned before the client answered"
    );
    c.send(b"ok").unwrap();
    srv.expect("ACCEPTED");
}

/// A client that connects to the rendezvous pipe and then says nothing must
/// not hold up `accept` for the others: their handshakes run concurrently.
/// (Before, `accept` sat on the silent client for the 10 s handshake deadline
/// and then failed.)
#[test]
fn a_silent_client_does_not_stall_accept_for_the_others() {
    with_watchdog("silent client", || {
        let name = unique("silent");
        let l = ChannelOptions::new().capacity(4096).bind(&name).unwrap();
        // Connected to the pipe, never speaks.
        let silent = named_ipc::pipe::PipeStream::connect_timeout(&name, STEP).unwrap();
        let client = std::thread::spawn({
            let name = name.clone();
            move || {
                let c = ShmStream::connect_timeout(&name, STEP).unwrap();
                let got = c.recv_timeout(STEP).unwrap().unwrap();
                c.send(&got).unwrap();
                c
            }
        });
        let s = l
            .accept_timeout(STEP)
            .expect("accept waited on the silent client");
        s.send(b"hello").unwrap();
        assert_eq!(s.recv_timeout(STEP).unwrap().unwrap(), b"hello");
        // The silent client's handshake is still pending: the server has not
        // given up on it (nor answered it) yet.
        silent.set_nonblocking(true);
        assert_eq!(
            silent.recv().unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        drop(client.join().unwrap());
        // A well-behaved client after the silent one is served too, and a
        // second accept does not return the silent one.
        let late = std::thread::spawn({
            let name = name.clone();
            move || ShmStream::connect_timeout(&name, STEP).unwrap()
        });
        let s2 = l.accept_timeout(STEP).unwrap();
        let c2 = late.join().unwrap();
        s2.send(b"x").unwrap();
        assert_eq!(c2.recv_timeout(STEP).unwrap().unwrap(), b"x");
    });
}

/// A client may ask for its ring size (the server grants up to its
/// `max_capacity`), and a message written in place may fill the ring but
/// for its header: a user who needs 1 MiB in place gets it.
#[test]
fn a_client_asks_for_its_ring_and_writes_up_to_all_of_it_in_place() {
    with_watchdog("ring size", || {
        let name = unique("ring");
        let l = ChannelOptions::new()
            .capacity(4096)
            .max_capacity(2 << 20)
            .bind(&name)
            .unwrap();
        let server = std::thread::spawn(move || {
            let mut got = Vec::new();
            for _ in 0..3 {
                let s = l.accept_timeout(STEP).unwrap();
                got.push(s.max_in_place());
                // Echo in place until the client leaves.
                while let Some(len) = s
                    .recv_with(|m| {
                        let v = m.to_vec();
                        (v.len(), v)
                    })
                    .unwrap()
                {
                    let (n, v) = len;
                    s.send_with(n, |buf| buf.copy_from_slice(&v)).unwrap();
                }
            }
            got
        });
        let connect_with = |cap: Option<usize>| {
            let mut o = ChannelOptions::new();
            o.timeout(STEP);
            if let Some(c) = cap {
                o.capacity(c);
            }
            o.connect(&name).unwrap()
        };
        // Not asking: the server's size.
        let c = connect_with(None);
        assert_eq!(c.max_in_place(), 4096 - 16);
        drop(c);
        // Asking for 1 MiB: granted; a 1 MiB − 16 message goes in place.
        let c = connect_with(Some(1 << 20));
        assert_eq!(c.max_in_place(), (1 << 20) - 16);
        let big = payload(11, (1 << 20) - 16);
        c.send_with(big.len(), |buf| buf.copy_from_slice(&big))
            .unwrap();
        assert!(c.recv_with(|m| m.to_vec() == big).unwrap().unwrap());
        // And after a small one, so the big one needs padding first.
        c.send(b"small").unwrap();
        assert_eq!(c.recv().unwrap().unwrap(), b"small");
        c.send_with(big.len(), |buf| buf.copy_from_slice(&big))
            .unwrap();
        assert!(c.recv_with(|m| m.to_vec() == big).unwrap().unwrap());
        drop(c);
        // Asking for more than the server grants: bounded.
        let c = connect_with(Some(64 << 20));
        assert_eq!(c.max_in_place(), (2 << 20) - 16);
        drop(c);
        assert_eq!(
            server.join().unwrap(),
            vec![4096 - 16, (1 << 20) - 16, (2 << 20) - 16]
        );
    });
}

/// `recv_slice` reads a message into a buffer that may be too small: it says
/// how much is left, the next call continues, and mixing it with `recv_into`
/// loses nothing — for one-record messages and for messages of many records.
#[test]
fn recv_slice_reads_any_message_into_a_small_buffer_without_loss() {
    with_watchdog("recv_slice", || {
        let (s, c) = local_pair(4096);
        let sizes = [0usize, 1, 10, 700, 1024, 1025, 3000, 4088, 9000, 50_000];
        let sender = std::thread::spawn(move || {
            for (i, n) in sizes.iter().enumerate() {
                s.send(&payload(i as u64, *n)).unwrap();
            }
            s
        });
        for (i, n) in sizes.iter().enumerate() {
            let want = payload(i as u64, *n);
            let mut got = Vec::new();
            let mut buf = vec![0u8; 333];
            // Alternate: slices only, or one slice then recv_into the rest.
            loop {
                let r = c.recv_slice(&mut buf).unwrap().expect("a message");
                got.extend_from_slice(&buf[..r.len]);
                assert_eq!(
                    r.remaining as usize,
                    n - got.len(),
                    "message {i} of {n} bytes"
                );
                if r.remaining == 0 {
                    break;
                }
                if i % 2 == 1 {
                    let rest = c.recv().unwrap().unwrap();
                    got.extend_from_slice(&rest);
                    break;
                }
            }
            assert!(got == want, "message {i} of {n} bytes differs");
        }
        drop(sender.join().unwrap());
        assert_eq!(c.recv_slice(&mut [0u8; 8]).unwrap(), None);
    });
}
