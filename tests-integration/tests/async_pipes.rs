//! Async pipes (feature `tokio`) across real processes: blocking and async
//! peers in both roles, ten thousand concurrent async clients on one
//! listener, and (Unix) the wire as tokio-util's `LengthDelimitedCodec`.

mod common;

use std::time::Duration;

use common::*;
use named_ipc::pipe::{ConnectOptions, PipeMode};
use named_ipc::tokio::{PipeListener, PipeStream};

const SIZES: &[usize] = &[0, 1, 4, 5, 4095, 4096, 65536, 65537, 1 << 20, 3 << 20];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A blocking server (the `peer` echo role) and an async client on the
/// multi-thread runtime.
#[test]
fn async_client_talks_to_a_blocking_server() {
    async_client_talks_to_a_blocking_server_on(runtime());
}

/// The same on the current-thread runtime.
#[test]
fn async_client_talks_to_a_blocking_server_current_thread() {
    async_client_talks_to_a_blocking_server_on(current_thread());
}

fn async_client_talks_to_a_blocking_server_on(rt: tokio::runtime::Runtime) {
    let name = unique("a-cli");
    let mut srv = Peer::spawn(&["echo", &name, "message", "255", &(8u32 << 20).to_string()]);
    srv.expect("READY");
    rt.block_on(async {
        let mut o = ConnectOptions::new();
        o.timeout(STEP).max_message_size(8 << 20);
        let c = PipeStream::connect_with(&name, &o).await.unwrap();
        for (i, &len) in SIZES.iter().enumerate() {
            let m = payload(i as u64, len);
            c.send(&m).await.unwrap();
            let back = tokio::time::timeout(STEP, c.recv()).await.unwrap().unwrap();
            assert!(back.as_ref() == Some(&m), "echo of {len} bytes differs");
        }
    });
}

/// An async server (the `peer` async-echo role) and a blocking client.
#[test]
fn blocking_client_talks_to_an_async_server() {
    let name = unique("a-srv");
    let mut srv = Peer::spawn(&["async-echo", &name, &(8u32 << 20).to_string()]);
    srv.expect("READY");
    let c = ConnectOptions::new()
        .mode(PipeMode::Message)
        .timeout(STEP)
        .max_message_size(8 << 20)
        .connect(&name)
        .unwrap();
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
    let mut p = Peer::spawn(&["client-echo", &name, "20", "0,7,4096,70000"]);
    p.expect("OK");
}

/// Ten thousand async clients (two processes of five thousand, each holding
/// all its connections at once) on one async listener: every one is
/// accepted and served. The server needs ~10,000 descriptors: this test
/// raises its soft `RLIMIT_NOFILE` to the hard limit (the peers raise
/// theirs too). Runs under Wine too (about 30 s there).
#[test]
fn ten_thousand_concurrent_async_clients_on_one_listener() {
    many_concurrent_async_clients(2, 5000);
}

/// `procs` processes of `per` async clients each, all connected at once,
/// on one async listener: every one accepted and served.
fn many_concurrent_async_clients(procs: u64, per: u64) {
    raise_fd_limit();
    let name = unique("a-many");
    let rt = runtime();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let _guard = rt.enter();
    let l = PipeListener::bind(&name).unwrap();
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
        .map(|_| Peer::spawn(&["async-clients", &name, &per.to_string()]))
        .collect();
    for p in &mut peers {
        p.expect("CONNECTED");
    }
    for p in &mut peers {
        p.expect("OK");
    }
    assert_eq!(
        served.load(std::sync::atomic::Ordering::Relaxed),
        procs * per
    );
    for mut p in peers {
        p.close_stdin();
        p.wait_ok();
    }
    server.abort();
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn raise_fd_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a valid out-pointer; raising the soft limit to the hard one.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

#[cfg(not(unix))]
fn raise_fd_limit() {}

/// The Unix message wire is exactly tokio-util's `LengthDelimitedCodec`
/// configured little-endian with a u32 length: a `Framed` peer talks to a
/// named-ipc pipe both ways, as server and as client.
#[cfg(unix)]
#[test]
fn the_unix_wire_is_a_little_endian_u32_length_delimited_codec() {
    use bytes::Bytes;
    use futures_util::{SinkExt, StreamExt};
    use named_ipc::tokio::ListenerOptions;
    use tokio_util::codec::{Framed, LengthDelimitedCodec};

    fn codec() -> LengthDelimitedCodec {
        LengthDelimitedCodec::builder()
            .little_endian()
            .length_field_type::<u32>()
            .max_frame_length(8 << 20)
            .new_codec()
    }

    runtime().block_on(async {
        // A Framed client on our async listener.
        let name = unique("codec");
        let mut o = ListenerOptions::new();
        o.max_message_size(8 << 20);
        let l = PipeListener::bind_with(&name, &o).unwrap();
        let path = l.os_name();
        let srv = tokio::spawn(async move {
            let conn = l.accept().await?;
            while let Some(m) = conn.recv().await? {
                let mut r = m.clone();
                r.reverse();
                conn.send(&r).await?;
            }
            std::io::Result::Ok(())
        });
        let sock = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut framed = Framed::new(sock, codec());
        for (i, &len) in SIZES.iter().enumerate() {
            let m = payload(i as u64, len);
            framed.send(Bytes::from(m.clone())).await.unwrap();
            let mut back = framed.next().await.unwrap().unwrap().to_vec();
            back.reverse();
            assert!(back == m, "{len} bytes");
        }
        drop(framed);
        srv.await.unwrap().unwrap();

        // Our blocking and async clients on a Framed server.
        let dir = std::env::temp_dir().join(unique("codec-dir"));
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("s.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let srv = tokio::spawn(async move {
            for _ in 0..2 {
                let (sock, _) = listener.accept().await?;
                let mut framed = Framed::new(sock, codec());
                while let Some(m) = framed.next().await {
                    framed.send(m?.freeze()).await?;
                }
            }
            std::io::Result::Ok(())
        });
        let name = path.to_str().unwrap().to_owned();
        let mut o = ConnectOptions::new();
        o.timeout(STEP).max_message_size(8 << 20);
        let c = PipeStream::connect_with(&name, &o).await.unwrap();
        for (i, &len) in SIZES.iter().enumerate() {
            let m = payload(i as u64, len);
            c.send(&m).await.unwrap();
            assert!(c.recv().await.unwrap() == Some(m), "{len} bytes");
        }
        drop(c);
        let sync_name = name.clone();
        tokio::task::spawn_blocking(move || {
            let c = ConnectOptions::new()
                .timeout(STEP)
                .connect(&sync_name)
                .unwrap();
            c.set_read_timeout(Some(STEP)).unwrap();
            c.send(b"blocking").unwrap();
            assert_eq!(c.recv().unwrap().as_deref(), Some(&b"blocking"[..]));
        })
        .await
        .unwrap();
        srv.await.unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// `connect` waits on the timer for a pipe that does not exist yet, and
/// finds it once it appears; without a timeout a missing pipe fails at once.
#[test]
fn async_connect_waits_for_a_server_that_appears_later() {
    let name = unique("a-late");
    runtime().block_on(async {
        let e = PipeStream::connect(&name).await.unwrap_err();
        assert_eq!(e.kind(), named_ipc::ErrorKind::NotFound, "{e}");
        let waiting = tokio::spawn({
            let name = name.clone();
            async move { PipeStream::connect_timeout(&name, STEP).await }
        });
        // The client is waiting (not failed) while the server starts.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        let l = PipeListener::bind(&name).unwrap();
        let (c, s) = tokio::join!(waiting, l.accept());
        let c = c.unwrap().unwrap();
        let s = s.unwrap();
        c.send(b"late").await.unwrap();
        assert_eq!(s.recv().await.unwrap().as_deref(), Some(&b"late"[..]));
    });
}

/// Windows: an accept whose wait for a client was started on a thread that
/// has ended since (Windows cancels a thread's pending I/O when the thread
/// exits) does not fail the next accept: the listener waits again. (Unix:
/// a listener belongs to its runtime's reactor, so there is no such case.)
#[cfg(windows)]
#[test]
fn an_accept_left_by_a_thread_that_ended_does_not_fail_the_next() {
    let name = unique("a-gone");
    let l = std::sync::Arc::new(PipeListener::bind(&name).unwrap());
    std::thread::spawn({
        let l = l.clone();
        move || {
            current_thread().block_on(async {
                let r = tokio::time::timeout(Duration::from_millis(50), l.accept()).await;
                assert!(r.is_err(), "an accept with no client returned");
            });
        }
    })
    .join()
    .unwrap();
    current_thread().block_on(async {
        let mut o = ConnectOptions::new();
        o.timeout(STEP);
        let (s, c) = tokio::join!(
            tokio::time::timeout(STEP, l.accept()),
            PipeStream::connect_with(&name, &o)
        );
        let s = s
            .expect("accept hung")
            .expect("the accept after the thread's exit failed");
        let c = c.unwrap();
        c.send(b"ping").await.unwrap();
        assert_eq!(s.recv().await.unwrap().as_deref(), Some(&b"ping"[..]));
    });
}
