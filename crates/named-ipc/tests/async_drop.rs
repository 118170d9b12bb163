//! Dropping async pipes in every state leaks no descriptor (Linux:
//! /proc/self/fd). Alone in its test binary, so no other test's descriptors
//! come and go during the count.
#![cfg(all(feature = "tokio", target_os = "linux"))]

mod support;

use named_ipc::tokio::{ConnectOptions, ListenerOptions, PipeListener, PipeMode, PipeStream};
use support::{cancel_after, payload, STEP};

async fn pair(n: u64) -> (PipeListener, PipeStream, PipeStream) {
    let name = format!("nad-{}-{n}", std::process::id());
    let l = PipeListener::bind_with(&name, &ListenerOptions::new()).unwrap();
    let mut co = ConnectOptions::new();
    co.mode(PipeMode::Message).timeout(STEP);
    let (c, s) = tokio::join!(PipeStream::connect_with(&name, &co), l.accept());
    (l, c.unwrap(), s.unwrap())
}

/// Drops in every state leak no descriptor (Linux: /proc/self/fd).
#[tokio::test(flavor = "current_thread")]
async fn drops_in_flight_leak_no_descriptor() {
    fn fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }
    // Warm up the runtime's own descriptors.
    drop(pair(1000).await);
    let before = fds();
    for i in 0..50u64 {
        let (l, c, s) = pair(i).await;
        let (rx, tx) = s.into_split();
        // A receive and an accept pending, a send part-way.
        assert!(cancel_after(1, rx.recv()).await.is_none());
        assert!(cancel_after(1, l.accept()).await.is_none());
        let big = payload(i, 1 << 20);
        assert!(cancel_after(2, c.send(&big)).await.is_none());
        drop(tx);
        drop(l);
        // The reader half reads what the stream completes at its drop.
        let t = tokio::spawn(async move {
            let first = rx.recv().await?;
            let end = rx.recv().await?;
            std::io::Result::Ok((first, end))
        });
        drop(c);
        let (first, end) = t.await.unwrap().unwrap();
        assert!(first.is_none_or(|m| m == big));
        assert!(end.is_none());
    }
    assert_eq!(fds(), before);
}
