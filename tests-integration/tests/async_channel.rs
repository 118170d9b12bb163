//! The async shared-memory channel (feature `tokio`) across real processes:
//! blocking and async ends in both roles (each waking the other from sleep:
//! futex or wake-up descriptor on Unix, events on Windows), a peer killed
//! while the async end sleeps, and many async clients at once.

mod common;

use std::io::ErrorKind as IoKind;
use std::time::{Duration, Instant};

use common::*;
use named_ipc::channel::{ChannelOptions, ShmStream as BlockingStream};
use named_ipc::tokio::{ShmListener, ShmStream};

/// Sizes of one record and of many (the rings are 64 KiB: a record carries
/// at most 16 KiB of a copying send).
const SIZES: &[usize] = &[0, 1, 7, 4096, 16384, 16385, 65536, 300_000, 3 << 20];

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn opts(spin: Duration) -> ChannelOptions {
    let mut o = ChannelOptions::new();
    o.capacity(64 << 10)
        .spin(spin)
        .max_message_size(8 << 20)
        .timeout(STEP);
    o
}

/// The async client's side of an echo exchange: every size, both ways, and
/// the zero-copy forms.
async fn echo_from_async_client(name: &str, spin: Duration) {
    let c = ShmStream::connect_with(name, &opts(spin)).await.unwrap();
    for (i, &len) in SIZES.iter().enumerate() {
        let m = payload(i as u64, len);
        c.send(&m).await.unwrap();
        let back = tokio::time::timeout(STEP, c.recv()).await.unwrap().unwrap();
        assert!(back.as_ref() == Some(&m), "echo of {len} bytes differs");
    }
    let mut p = c.reserve(1000).await.unwrap();
    p.in_place().fill(9);
    p.commit();
    let g = c.recv_in_place().await.unwrap().unwrap();
    assert_eq!(g.in_place().to_vec(), vec![9; 1000]);
}

/// A blocking server (the `peer` chan-echo role, a thread per client) and
/// an async client, on both runtimes, spinning and sleeping at once (so each
/// side sleeps and the other wakes it: Unix, the async client's wake-up
/// descriptors rung by the blocking server, the server's futexes by the
/// async client).
#[test]
fn async_client_talks_to_a_blocking_server() {
    for spin_us in ["0", "20"] {
        let name = unique("ac-cli");
        let mut srv = Peer::spawn(&["chan-echo", &name, "65536", spin_us]);
        srv.expect("READY");
        let spin = Duration::from_micros(spin_us.parse().unwrap());
        current_thread().block_on(echo_from_async_client(&name, spin));
        multi_thread().block_on(echo_from_async_client(&name, spin));
        srv.close_stdin();
        srv.wait_ok();
    }
}

/// An async server (the `peer` async-chan-echo role) and blocking clients.
#[test]
fn blocking_client_talks_to_an_async_server() {
    for spin_us in ["0", "20"] {
        let name = unique("ac-srv");
        let mut srv = Peer::spawn(&["async-chan-echo", &name, "65536", spin_us]);
        srv.expect("READY");
        let spin = Duration::from_micros(spin_us.parse().unwrap());
        let c = opts(spin).connect(&name).unwrap();
        c.set_read_timeout(Some(STEP)).unwrap();
        c.set_write_timeout(Some(STEP)).unwrap();
        for (i, &len) in SIZES.iter().enumerate() {
            let m = payload(i as u64, len);
            c.send(&m).unwrap();
            assert!(
                c.recv().unwrap().as_ref() == Some(&m),
                "echo of {len} bytes differs"
            );
        }
        c.send_with(500, |b| b.fill(3)).unwrap();
        let back = c.recv_with(|m| m.to_vec()).unwrap().unwrap();
        assert_eq!(back, vec![3; 500]);
        // Streaming one way through a small ring: the blocking sender
        // sleeps for room, the async server wakes it as it reads.
        let (mut tx, mut rx) = c.split();
        let reader = std::thread::spawn(move || {
            for i in 0..2000u64 {
                let m = rx.recv().unwrap().unwrap();
                assert!(m == payload(i, (i as usize * 13) % 40_000), "message {i}");
            }
        });
        for i in 0..2000u64 {
            tx.send(&payload(i, (i as usize * 13) % 40_000)).unwrap();
        }
        reader.join().unwrap();
        drop(tx);
        srv.close_stdin();
        srv.wait_ok();
    }
}

/// A blocking client and an async server, the other way round within one
/// test process: the blocking end on a thread, the async server on the
/// runtime, many messages through a ring they keep full.
#[test]
fn a_blocking_peer_and_an_async_peer_keep_a_full_ring_moving() {
    let name = unique("ac-full");
    let rt = multi_thread();
    let mut o = opts(Duration::ZERO);
    o.capacity(4096);
    let _g = rt.enter();
    let l = ShmListener::bind_with(&name, &o).unwrap();
    let n = 20_000u64;
    let blocking = std::thread::spawn({
        let name = name.clone();
        let o = o.clone();
        move || {
            let c = o.connect(&name).unwrap();
            let (mut tx, mut rx) = c.split();
            let echoes = std::thread::spawn(move || {
                for i in 0..n {
                    let m = rx.recv().unwrap().unwrap();
                    assert!(m == payload(i, (i % 3000) as usize), "echo {i}");
                }
            });
            for i in 0..n {
                tx.send(&payload(i, (i % 3000) as usize)).unwrap();
            }
            echoes.join().unwrap();
        }
    });
    rt.block_on(async {
        let s = l.accept().await.unwrap();
        let (mut tx, mut rx) = s.into_split();
        let mut buf = Vec::new();
        while rx.recv_into(&mut buf).await.unwrap().is_some() {
            tx.send(&buf).await.unwrap();
        }
    });
    blocking.join().unwrap();
}

/// How long a sleeping async `recv` or `send` takes to notice that its
/// peer was killed: a clean `BrokenPipe`, reported. Both roles: the async
/// end as server (peer: a blocking client that holds its connection) and as
/// client (peer: a blocking server that holds it).
#[test]
fn a_peer_killed_while_the_async_end_sleeps_is_broken_pipe_at_once() {
    let iters = if is_wine() { 5 } else { 20 };
    let rt = multi_thread();
    for role in ["server", "client"] {
        for op in ["recv", "send"] {
            let mut times = Vec::new();
            for _ in 0..iters {
                let name = unique("ac-kill");
                let _g = rt.enter();
                let (mut peer, conn, _l) = if role == "server" {
                    let mut o = opts(Duration::ZERO);
                    o.capacity(4096);
                    let l = ShmListener::bind_with(&name, &o).unwrap();
                    let mut peer = Peer::hostile(&["hold", "chan", "client", &name]);
                    let conn = rt.block_on(l.accept()).unwrap();
                    peer.expect("STARTING");
                    peer.expect("UP");
                    (peer, conn, Some(l))
                } else {
                    let mut peer = Peer::spawn(&["chan-hold", &name]);
                    peer.expect("READY");
                    let mut o = opts(Duration::ZERO);
                    o.capacity(4096);
                    let conn = rt.block_on(ShmStream::connect_with(&name, &o)).unwrap();
                    peer.expect("ACCEPTED");
                    (peer, conn, None)
                };
                if op == "send" {
                    // Fill what the peer does not read, so the next send sleeps.
                    while conn.try_send(&[7; 900]).is_ok() {}
                }
                let blocked = rt.spawn(async move {
                    let r = if op == "send" {
                        conn.send(&[7; 900]).await.map(|()| Some(0))
                    } else {
                        conn.recv().await.map(|m| m.map(|m| m.len()))
                    };
                    (Instant::now(), r)
                });
                // Let the call reach its sleep; if it has not yet, it
                // notices at once.
                rt.block_on(async {
                    for _ in 0..10 {
                        tokio::task::yield_now().await;
                    }
                });
                let killed = Instant::now();
                peer.kill();
                let (when, r) = rt
                    .block_on(async { tokio::time::timeout(STEP, blocked).await })
                    .unwrap_or_else(|_| panic!("an async {op} never noticed its peer died"))
                    .unwrap();
                let e = r.expect_err("the call must fail");
                assert_eq!(e.kind(), IoKind::BrokenPipe, "{role} {op}: {e}");
                times.push(when.saturating_duration_since(killed));
            }
            times.sort();
            let max = times.last().copied().unwrap_or_default();
            eprintln!(
                "[report] async {role} {op}, peer killed while it sleeps: median {:?}, max {max:?} \
                 over {iters}",
                times[times.len() / 2]
            );
            // Not a timing assertion: a hang-sized bound only.
            assert!(max < Duration::from_secs(10), "{role} {op} took {max:?}");
        }
    }
}

/// Many async clients (two processes, each holding all its connections at
/// once) on one async listener: every one is accepted and served.
#[test]
fn many_concurrent_async_channel_clients() {
    let (procs, per) = if is_wine() { (2, 25) } else { (2, 150) };
    let name = unique("ac-many");
    let rt = multi_thread();
    let _g = rt.enter();
    let mut o = opts(Duration::ZERO);
    o.capacity(4096);
    let l = ShmListener::bind_with(&name, &o).unwrap();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let server = rt.spawn({
        let served = served.clone();
        async move {
            loop {
                let conn = l.accept().await.unwrap();
                let served = served.clone();
                tokio::spawn(async move {
                    while let Some(m) = conn.recv().await? {
                        // Counted before the echo leaves: the client may
                        // see the last echo, and the test read the count,
                        // before this task runs again after the send.
                        served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        conn.send(&m).await?;
                    }
                    std::io::Result::Ok(())
                });
            }
        }
    });
    let mut peers: Vec<Peer> = (0..procs)
        .map(|_| Peer::spawn(&["async-chan-clients", &name, &per.to_string()]))
        .collect();
    for p in &mut peers {
        p.expect("CONNECTED");
    }
    for p in &mut peers {
        p.expect("OK");
    }
    assert_eq!(
        served.load(std::sync::atomic::Ordering::Relaxed),
        procs * per * 10
    );
    for mut p in peers {
        p.close_stdin();
        p.wait_ok();
    }
    server.abort();
}

/// A blocking client's zero-copy send read in place by an async server's
/// guard, and an async permit read in place by a blocking receiver.
#[test]
fn zero_copy_between_blocking_and_async_ends() {
    let name = unique("ac-zc");
    let rt = current_thread();
    let _g = rt.enter();
    let l = ShmListener::bind_with(&name, &opts(Duration::ZERO)).unwrap();
    let client = std::thread::spawn({
        let name = name.clone();
        move || {
            let c: BlockingStream = opts(Duration::ZERO).connect(&name).unwrap();
            c.set_read_timeout(Some(STEP)).unwrap();
            c.send_with(64, |b| b.copy_from_slice(&[5; 64])).unwrap();
            c.recv_with(|m| m.to_vec()).unwrap().unwrap()
        }
    });
    rt.block_on(async {
        let s = l.accept().await.unwrap();
        let g = s.recv_in_place().await.unwrap().unwrap();
        assert_eq!(g.in_place().to_vec(), vec![5; 64]);
        drop(g);
        let mut p = s.reserve(32).await.unwrap();
        p.in_place().fill(6);
        p.commit();
        // Until the client has read it.
        assert!(s.recv().await.unwrap().is_none());
    });
    assert_eq!(client.join().unwrap(), vec![6; 32]);
}
