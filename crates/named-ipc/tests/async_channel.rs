//! The async shared-memory channel (feature `tokio`) in one process: data of
//! every size (messages of one record and of many), the cancellation
//! contract at every await point, the zero-copy permit and receive guard,
//! halves in separate tasks, accept cancellation, many connections — on the
//! current-thread and the multi-thread runtime. Blocking and async peers
//! across processes are in tests-integration/tests/async_channel.rs.
#![cfg(feature = "tokio")]

mod support;

use std::io;
use std::time::Duration;

use named_ipc::tokio::{ChannelOptions, ShmListener, ShmStream};
use support::{cancel_after, payload, unique, Rng, STEP};

/// 64 KiB rings: a message over 16 KiB travels in several records, and one
/// of several MiB in hundreds.
fn opts(spin: Duration) -> ChannelOptions {
    let mut o = ChannelOptions::new();
    o.spin(spin).capacity(64 << 10).max_message_size(8 << 20);
    o
}

async fn pair(opts: &ChannelOptions) -> (ShmListener, ShmStream, ShmStream) {
    let name = unique("chan");
    let l = ShmListener::bind_with(&name, opts).unwrap();
    let mut co = opts.clone();
    co.timeout(STEP);
    let (c, s) = tokio::join!(ShmStream::connect_with(&name, &co), l.accept());
    (l, c.unwrap(), s.unwrap())
}

async fn sizes_round_trip(spin: Duration) {
    let (_l, c, s) = pair(&opts(spin)).await;
    let echo = tokio::spawn(async move {
        let mut buf = Vec::new();
        while s.recv_into(&mut buf).await?.is_some() {
            s.send(&buf).await?;
        }
        io::Result::Ok(())
    });
    for (i, len) in [
        0usize,
        1,
        7,
        8,
        4095,
        16384,
        16385,
        65536,
        65537,
        1 << 20,
        5 << 20,
    ]
    .into_iter()
    .enumerate()
    {
        let m = payload(i as u64, len);
        c.send(&m).await.unwrap();
        let back = tokio::time::timeout(STEP, c.recv()).await.unwrap().unwrap();
        assert!(back.as_ref() == Some(&m), "size {len}");
    }
    drop(c);
    echo.await.unwrap().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn sizes_round_trip_current_thread() {
    sizes_round_trip(Duration::from_micros(20)).await;
    sizes_round_trip(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_round_trip_multi_thread() {
    sizes_round_trip(Duration::from_micros(20)).await;
    sizes_round_trip(Duration::ZERO).await;
}

/// `recv_into` dropped at every await point, thousands of times, while
/// messages of 0 bytes to several MiB (many of several records) arrive:
/// every message comes out whole, in order, none lost, none twice.
async fn cancelled_receives_lose_nothing(count: u64, spin: Duration) {
    let (_l, c, s) = pair(&opts(spin)).await;
    let sizes: Vec<usize> = {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        (0..count).map(|_| r.size()).collect()
    };
    let sender = tokio::spawn({
        let sizes = sizes.clone();
        async move {
            for (i, len) in sizes.into_iter().enumerate() {
                c.send(&payload(i as u64, len)).await?;
                if i % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            io::Result::Ok(c)
        }
    });
    let mut r = Rng(12345);
    let mut buf = Vec::new();
    let mut cancelled = 0u64;
    for (i, &len) in sizes.iter().enumerate() {
        let got = loop {
            let k = r.below(4) as u32;
            match cancel_after(k, s.recv_into(&mut buf)).await {
                Some(got) => break got,
                None => cancelled += 1,
            }
        };
        assert_eq!(got.unwrap(), Some(len), "message {i}");
        assert!(
            buf == payload(i as u64, len),
            "message {i} of {len} bytes differs"
        );
    }
    let c = sender.await.unwrap().unwrap();
    drop(c);
    assert_eq!(s.recv().await.unwrap(), None);
    assert!(cancelled >= 100, "only {cancelled} cancellations");
}

#[tokio::test(flavor = "current_thread")]
async fn cancelled_receives_lose_nothing_current_thread() {
    cancelled_receives_lose_nothing(3000, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_receives_lose_nothing_multi_thread() {
    cancelled_receives_lose_nothing(3000, Duration::from_micros(20)).await;
}

/// `send` dropped at every await point: each message arrives whole or not
/// at all, in order, never cut and never twice, and every send that
/// returned `Ok` arrives. Messages of several records whose first records
/// went are completed by the stream (before the next send).
async fn cancelled_sends_are_all_or_nothing(count: u64, spin: Duration) {
    let (_l, c, s) = pair(&opts(spin)).await;
    let receiver = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = Vec::new();
        let mut r = Rng(777);
        while s.recv_into(&mut buf).await?.is_some() {
            got.push(buf.clone());
            if r.below(5) == 0 {
                tokio::task::yield_now().await;
            }
        }
        io::Result::Ok(got)
    });
    let mut r = Rng(0xdead_beef);
    let mut oks = Vec::new();
    let mut attempts = Vec::new();
    for i in 0..count {
        let len = r.size().max(8);
        let mut m = payload(i, len);
        m[..8].copy_from_slice(&i.to_le_bytes());
        let k = r.below(4) as u32;
        attempts.push(m.clone());
        if let Some(res) = cancel_after(k, c.send(&m)).await {
            res.unwrap();
            oks.push(i);
        }
    }
    // Whatever the stream still holds goes out before the end of stream.
    drop(c);
    let got = receiver.await.unwrap().unwrap();
    let mut last = None;
    let mut seen = std::collections::HashSet::new();
    for m in &got {
        let seq = u64::from_le_bytes(m[..8].try_into().unwrap());
        assert!(
            last.is_none_or(|l| seq > l),
            "out of order or twice: {seq} after {last:?}"
        );
        last = Some(seq);
        assert!(m == &attempts[seq as usize], "message {seq} differs");
        seen.insert(seq);
    }
    for i in &oks {
        assert!(
            seen.contains(i),
            "message {i} was sent (Ok) but never arrived"
        );
    }
    assert!(
        oks.len() + 100 <= count as usize,
        "only {} sends were cancelled",
        count as usize - oks.len()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn cancelled_sends_are_all_or_nothing_current_thread() {
    cancelled_sends_are_all_or_nothing(2000, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_sends_are_all_or_nothing_multi_thread() {
    cancelled_sends_are_all_or_nothing(2000, Duration::from_micros(20)).await;
}

/// A send of many records cancelled after its first records went: the next
/// send finishes it first, so the peer gets both whole and in order.
#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_multi_record_send_is_completed_before_the_next() {
    let (_l, c, s) = pair(&opts(Duration::ZERO)).await;
    let big = payload(1, 1 << 20);
    // The ring holds 64 KiB: the send must stop part-way, and the reader
    // is not running yet.
    assert!(cancel_after(3, c.send(&big)).await.is_none());
    let reader = tokio::spawn(async move {
        let a = s.recv().await?;
        let b = s.recv().await?;
        io::Result::Ok((a, b, s))
    });
    c.send(b"next").await.unwrap();
    let (a, b, _s) = reader.await.unwrap().unwrap();
    assert!(
        a.as_ref() == Some(&big),
        "the cut message was not completed"
    );
    assert_eq!(b.as_deref(), Some(&b"next"[..]));
}

/// `tokio::select!` and `tokio::time::timeout` around every operation, in a
/// loop: each message arrives whole or not at all (a send cancelled after
/// its first records went is completed by the stream), once, in order, and
/// every send that returned `Ok` arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_and_timeout_cancel_cleanly() {
    let (_l, c, s) = pair(&opts(Duration::from_micros(5))).await;
    let (mut tx, rx) = s.into_split();
    let n = 2000u64;
    let producer = tokio::spawn(async move {
        let mut r = Rng(42);
        let mut oks = Vec::new();
        for seq in 0..n {
            let mut m = payload(seq, r.size().max(8));
            m[..8].copy_from_slice(&seq.to_le_bytes());
            tokio::select! {
                res = tx.send(&m) => { res?; oks.push(seq); }
                _ = tokio::time::sleep(Duration::from_micros(r.below(300))) => {}
            }
        }
        tx.flush().await?;
        io::Result::Ok(oks)
    });
    let mut last = None;
    let mut seen = std::collections::HashSet::new();
    let mut buf = Vec::new();
    let mut timeouts = 0u64;
    loop {
        match tokio::time::timeout(Duration::from_micros(200), c.recv_into(&mut buf)).await {
            Err(_) => timeouts += 1,
            Ok(got) => {
                if got.unwrap().is_none() {
                    break;
                }
                let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
                assert!(
                    last.is_none_or(|l| seq > l),
                    "out of order or twice: {seq} after {last:?}"
                );
                last = Some(seq);
                assert!(
                    buf[8..] == payload(seq, buf.len())[8..],
                    "message {seq} differs"
                );
                seen.insert(seq);
            }
        }
    }
    let oks = producer.await.unwrap().unwrap();
    for i in &oks {
        assert!(
            seen.contains(i),
            "message {i} was sent (Ok) but never arrived"
        );
    }
    assert!(oks.len() < n as usize, "no send was cancelled");
    assert!(timeouts > 0, "no receive was cancelled");
    drop(rx);
}

/// The zero-copy forms: a permit written in place and committed arrives; a
/// permit dropped (or a reserve cancelled) sends nothing; the receive guard
/// reads in place (one record) or an assembled message (several), and
/// releases on drop.
async fn zero_copy() {
    let (_l, c, s) = pair(&opts(Duration::ZERO)).await;
    let (mut tx, mut rx) = c.into_split();
    let max = tx.max_in_place();
    assert_eq!(max, (64 << 10) - 16);
    let big = payload(3, 300_000);
    let sender = tokio::spawn({
        let big = big.clone();
        async move {
            let mut p = tx.reserve(8).await?;
            assert_eq!(p.len(), 8);
            p.in_place().copy_from_slice(&42u64.to_le_bytes());
            p.commit();
            // Dropped permits send nothing.
            drop(tx.reserve(100).await?);
            let _ = cancel_after(0, tx.reserve(200)).await;
            // The whole ring minus a header, in place (once the reader made
            // room).
            let mut p = tx.reserve(max).await?;
            p.in_place().fill(7);
            p.commit();
            let e = tx.reserve(max + 1).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            tx.send(&big).await?;
            tx.send(b"tail").await?;
            io::Result::Ok(tx)
        }
    });
    let g = s.recv_in_place().await.unwrap().unwrap();
    let mut id = [0u8; 8];
    assert!(g.in_place().read_at(0, &mut id));
    assert_eq!(u64::from_le_bytes(id), 42);
    drop(g);
    let g = s.recv_in_place().await.unwrap().unwrap();
    assert_eq!(g.len(), max);
    assert!(g.in_place().to_vec().iter().all(|&b| b == 7));
    drop(g);
    // Several records: assembled, then viewed.
    let g = s.recv_in_place().await.unwrap().unwrap();
    assert!(g.in_place().to_vec() == big);
    drop(g);
    assert_eq!(s.recv().await.unwrap().as_deref(), Some(&b"tail"[..]));
    let tx = sender.await.unwrap().unwrap();
    // The other direction through the stream's own methods.
    let mut p = s.reserve(3).await.unwrap();
    p.in_place().copy_from_slice(b"abc");
    p.commit();
    let g = rx.recv_in_place().await.unwrap().unwrap();
    assert_eq!(g.in_place().to_vec(), b"abc");
    drop(g);
    drop(s);
    assert!(rx.recv_in_place().await.unwrap().is_none());
    drop(tx);
}

#[tokio::test(flavor = "current_thread")]
async fn zero_copy_current_thread() {
    zero_copy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_copy_multi_thread() {
    zero_copy().await;
}

/// In-place receives dropped at every await point lose nothing, for
/// messages of one record and of many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_in_place_receives_lose_nothing() {
    let (_l, c, s) = pair(&opts(Duration::ZERO)).await;
    let n = 1000u64;
    let sizes: Vec<usize> = {
        let mut r = Rng(5);
        (0..n).map(|_| r.size().min(1 << 20)).collect()
    };
    let sender = tokio::spawn({
        let sizes = sizes.clone();
        async move {
            for (i, len) in sizes.into_iter().enumerate() {
                c.send(&payload(i as u64, len)).await?;
            }
            io::Result::Ok(c)
        }
    });
    let mut r = Rng(6);
    let mut cancelled = 0;
    for (i, &len) in sizes.iter().enumerate() {
        loop {
            match cancel_after(r.below(3) as u32, s.recv_in_place()).await {
                None => cancelled += 1,
                Some(g) => {
                    let g = g.unwrap().unwrap();
                    assert!(
                        g.in_place().to_vec() == payload(i as u64, len),
                        "message {i}"
                    );
                    break;
                }
            }
        }
    }
    drop(sender.await.unwrap().unwrap());
    assert!(s.recv().await.unwrap().is_none());
    assert!(cancelled > 0);
}

/// `try_send` takes a message only if it fits now; `try_recv` gives only a
/// whole message.
#[tokio::test(flavor = "current_thread")]
async fn try_calls_never_wait_and_lose_nothing() {
    let (_l, c, s) = pair(&opts(Duration::ZERO)).await;
    assert_eq!(s.try_recv().unwrap_err().kind(), io::ErrorKind::WouldBlock);
    let m = payload(1, 20_000);
    let mut sent = 0;
    loop {
        match c.try_send(&m) {
            Ok(()) => sent += 1,
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                break;
            }
        }
    }
    assert!(sent >= 2);
    assert_eq!(
        c.try_send(&payload(2, 200_000)).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    for _ in 0..sent {
        assert!(s.try_recv().unwrap().unwrap() == m);
    }
    assert_eq!(s.try_recv().unwrap_err().kind(), io::ErrorKind::WouldBlock);
}

/// An orderly close reads as the end after the last message; a peer that
/// closes inside a message of several records is an error, not a message.
#[tokio::test(flavor = "current_thread")]
async fn close_is_the_end_and_a_cut_message_an_error() {
    let (_l, c, s) = pair(&opts(Duration::ZERO)).await;
    c.send(b"last").await.unwrap();
    drop(c);
    assert_eq!(s.recv().await.unwrap().as_deref(), Some(&b"last"[..]));
    assert_eq!(s.recv().await.unwrap(), None);
    // The peer's receiver is gone: a send fails.
    let e = s.send(&payload(0, 300_000)).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
}

/// A client connecting while accepts are dropped at every await point is
/// not lost: a later accept returns it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_accepts_lose_no_client() {
    cancelled_accepts().await;
}

#[tokio::test(flavor = "current_thread")]
async fn cancelled_accepts_lose_no_client_current_thread() {
    cancelled_accepts().await;
}

async fn cancelled_accepts() {
    let name = unique("acc");
    let l = ShmListener::bind(&name).unwrap();
    let n = 20;
    let clients = tokio::spawn({
        let name = name.clone();
        async move {
            let mut v = Vec::new();
            for i in 0..n {
                let c = ShmStream::connect_timeout(&name, STEP).await.unwrap();
                c.send(&payload(i, 10)).await.unwrap();
                v.push(c);
            }
            v
        }
    });
    let mut got = 0;
    let mut r = Rng(99);
    let mut seen = std::collections::HashSet::new();
    while got < n {
        if let Some(s) = cancel_after(r.below(3) as u32, l.accept()).await {
            let s = s.unwrap();
            let m = s.recv().await.unwrap().unwrap();
            assert!(seen.insert(m), "a client was accepted twice");
            got += 1;
        }
    }
    drop(clients.await.unwrap());
}

/// Many connections at once, each served by its own task, on one listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_connections() {
    let name = unique("many");
    let mut o = ChannelOptions::new();
    o.capacity(4096).spin(Duration::ZERO);
    let l = ShmListener::bind_with(&name, &o).unwrap();
    let server = tokio::spawn(async move {
        loop {
            let conn = l.accept().await.unwrap();
            tokio::spawn(async move {
                while let Some(m) = conn.recv().await? {
                    conn.send(&m).await?;
                }
                io::Result::Ok(())
            });
        }
    });
    let n = 200u64;
    let mut tasks = Vec::new();
    for i in 0..n {
        let name = name.clone();
        let o = o.clone();
        tasks.push(tokio::spawn(async move {
            let mut o = o;
            o.timeout(STEP);
            let c = ShmStream::connect_with(&name, &o).await.unwrap();
            for k in 0..20 {
                let m = payload(i * 100 + k, ((i * 37 + k * 101) % 3000) as usize);
                c.send(&m).await.unwrap();
                assert!(c.recv().await.unwrap().unwrap() == m);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    server.abort();
}

/// Review: the rest of a cancelled multi-record send goes before a message
/// taken by `try_send` (which must push the rest first, never slip the new
/// message in as a record inside the cut one).
#[tokio::test(flavor = "current_thread")]
async fn a_kept_tail_goes_before_a_try_send() {
    let (_l, c, s) = pair(&opts(Duration::ZERO)).await;
    let big = payload(1, 1 << 20);
    assert!(cancel_after(3, c.send(&big)).await.is_none());
    let reader = tokio::spawn(async move {
        let a = s.recv().await?;
        let b = s.recv().await?;
        io::Result::Ok((a, b, s))
    });
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match c.try_send(b"small") {
            Ok(()) => break,
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "try_send never took it"
                );
                tokio::task::yield_now().await;
            }
        }
    }
    let (a, b, _s) = reader.await.unwrap().unwrap();
    assert!(
        a.as_ref() == Some(&big),
        "the cut message was not completed first"
    );
    assert_eq!(b.as_deref(), Some(&b"small"[..]));
}

/// Review: the rest of a cancelled multi-record send goes before a message
/// written in place through a permit.
#[tokio::test(flavor = "current_thread")]
async fn a_kept_tail_goes_before_a_permit() {
    let (_l, c, s) = pair(&opts(Duration::ZERO)).await;
    let big = payload(1, 1 << 20);
    assert!(cancel_after(3, c.send(&big)).await.is_none());
    let reader = tokio::spawn(async move {
        let a = s.recv().await?;
        let b = s.recv().await?;
        io::Result::Ok((a, b, s))
    });
    let mut permit = c.reserve(8).await.unwrap();
    permit.in_place().copy_from_slice(b"in place");
    permit.commit();
    let (a, b, _s) = reader.await.unwrap().unwrap();
    assert!(
        a.as_ref() == Some(&big),
        "the cut message was not completed first"
    );
    assert_eq!(b.as_deref(), Some(&b"in place"[..]));
}

/// Review: a stream dropped with a kept tail completes the message (on a
/// runtime task), then closes: the reader gets it whole, then the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_with_a_kept_tail_completes_it_then_ends() {
    let (_l, c, s) = pair(&opts(Duration::ZERO)).await;
    let big = payload(1, 1 << 20);
    assert!(cancel_after(3, c.send(&big)).await.is_none());
    drop(c);
    let a = s.recv().await.unwrap();
    assert!(
        a.as_ref() == Some(&big),
        "the cut message was not completed"
    );
    assert!(s.recv().await.unwrap().is_none());
}

/// Review: permits dropped without a commit, including reservations of the
/// largest record at every position of the ring (whose padding may have
/// gone out on its own), send nothing and leave the stream working: a
/// blocked receiver is woken by the next message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_permits_of_every_size_leave_the_stream_working() {
    let mut o = opts(Duration::ZERO);
    o.capacity(4096);
    let (_l, c, s) = pair(&o).await;
    let max = c.max_in_place();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(m) = s.recv().await? {
            got.push(m);
        }
        io::Result::Ok(got)
    });
    let mut want = Vec::new();
    for i in 0..300u64 {
        let len = [0, 1, 8, 100, max - 8, max][i as usize % 6];
        let p = tokio::time::timeout(STEP, c.reserve(len))
            .await
            .expect("reserve hung")
            .unwrap();
        drop(p);
        let m = payload(i, (i as usize * 37) % 500);
        tokio::time::timeout(STEP, c.send(&m))
            .await
            .expect("send hung")
            .unwrap();
        want.push(m);
        let mut p = tokio::time::timeout(STEP, c.reserve(max))
            .await
            .expect("reserve hung")
            .unwrap();
        let m = payload(i + 1000, max);
        p.in_place().copy_from_slice(&m);
        p.commit();
        want.push(m);
    }
    drop(c);
    let got = tokio::time::timeout(STEP, reader)
        .await
        .expect("reader hung")
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "messages differ");
}

/// Review: a stream dropped outside a runtime with a kept tail finishes it
/// on the dropping thread within the grace period (one second), sleeping on
/// the bell its async end also watches through the reactor (Unix: its
/// eventfd, polled; Windows: an auto-reset event that a thread-pool wait of
/// the async end keeps waiting on too — each wake-up it takes is one the
/// blocking sleep misses, which then sleeps out its 50 ms slice). A reader
/// on another runtime reads all along: 1 MiB through 4 KiB rings (some 256
/// ring-fulls) must arrive whole, then the end.
#[test]
fn a_stream_dropped_outside_a_runtime_finishes_its_tail_for_a_reading_peer() {
    let rt_server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let rt_client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut o = opts(Duration::ZERO);
    o.capacity(4096);
    let name = unique("chan");
    let l = rt_server
        .block_on(async { ShmListener::bind_with(&name, &o) })
        .unwrap();
    let accepted = rt_server.spawn(async move {
        let s = l.accept().await?;
        io::Result::Ok((l, s))
    });
    let mut co = o.clone();
    co.timeout(STEP);
    let c = rt_client
        .block_on(ShmStream::connect_with(&name, &co))
        .unwrap();
    let (_l, s) = rt_server.block_on(accepted).unwrap().unwrap();
    let big = payload(1, 1 << 20);
    assert!(rt_client.block_on(cancel_after(3, c.send(&big))).is_none());
    // The reader starts only now, on its own runtime's thread.
    let reader = rt_server.spawn(async move {
        let a = s.recv().await?;
        let b = s.recv().await;
        io::Result::Ok((a, b))
    });
    // Outside any runtime: the drop finishes the tail on this thread.
    drop(c);
    let (a, b) = rt_server.block_on(reader).unwrap().unwrap();
    assert!(
        a.as_ref() == Some(&big),
        "the kept tail was not completed: {:?} bytes",
        a.as_ref().map(Vec::len)
    );
    assert!(b.unwrap().is_none());
}

/// Review: a listener dropped while clients' handshakes are under way (on
/// the blocking pool) leaves no client hanging: each connect fails, or its
/// stream reads the end (the server's channel is dropped once its
/// handshake finishes), and sends fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_dropped_with_handshakes_in_flight_leaves_no_client_hanging() {
    for round in 0..10u32 {
        let o = opts(Duration::ZERO);
        let name = unique("chan");
        let l = ShmListener::bind_with(&name, &o).unwrap();
        let mut co = o.clone();
        // A client that finds no server waits this long for one to appear.
        co.timeout(Duration::from_secs(1));
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let (name, co) = (name.clone(), co.clone());
                tokio::spawn(async move { ShmStream::connect_with(&name, &co).await })
            })
            .collect();
        // Drive accept a little (clients arrive, handshakes start), then
        // drop the future and the listener.
        let _ = cancel_after(round % 5, l.accept()).await;
        tokio::task::yield_now().await;
        drop(l);
        for c in clients {
            let c = tokio::time::timeout(STEP, c)
                .await
                .expect("connect hung")
                .unwrap();
            if let Ok(c) = c {
                let r = tokio::time::timeout(STEP, c.recv())
                    .await
                    .expect("recv hung");
                assert!(matches!(r, Ok(None) | Err(_)), "round {round}: {r:?}");
            }
        }
    }
}

/// A message of many records whose first records are in the ring when the
/// stream is dropped, and a peer that reads nothing for longer than the
/// grace period (one second): the sending side is closed and the peer's
/// receive fails with `UnexpectedEof` — never a cut message taken for a
/// whole one.
async fn an_unread_started_message_is_an_error_not_a_cut_message() {
    let (_l, c, s) = pair(&opts(Duration::ZERO)).await;
    let big = payload(10, 1 << 20);
    // The 64 KiB ring fills and nobody reads: the send stops part-way.
    assert!(cancel_after(2, c.send(&big)).await.is_none());
    drop(c);
    // The grace period is what this test is about: let it run out, nobody
    // reading.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = tokio::time::timeout(STEP, s.recv()).await.unwrap();
    let e = got.expect_err("a message cut by the drop was delivered");
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
}

#[tokio::test(flavor = "current_thread")]
async fn an_unread_started_message_is_an_error_not_a_cut_message_current_thread() {
    an_unread_started_message_is_an_error_not_a_cut_message().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_started_message_is_an_error_not_a_cut_message_multi_thread() {
    an_unread_started_message_is_an_error_not_a_cut_message().await;
}
