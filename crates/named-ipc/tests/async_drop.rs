//! Dropping async pipes in every state leaks no descriptor (Linux:
//! /proc/self/fd) and no handle (Windows: `GetProcessHandleCount`; runs
//! under Wine): streams, halves and listeners idle, with a read, a write or
//! an accept in flight. Alone in its test binary, so no other test's
//! descriptors come and go during the count.
#![cfg(all(feature = "tokio", any(target_os = "linux", windows)))]

mod support;

use named_ipc::tokio::{ListenerOptions, PipeListener, PipeMode, PipeStream};
use support::{cancel_after, handles, payload, pipe_pair};

async fn pair() -> (PipeListener, PipeStream, PipeStream) {
    pipe_pair(&ListenerOptions::new(), PipeMode::Message).await
}

/// One round of drops in every state.
async fn round(i: u64) {
    // Halves: a receive and an accept pending when dropped, a send
    // part-way through a message nobody reads yet.
    let (l, c, s) = pair().await;
    let (rx, tx) = s.into_split();
    assert!(cancel_after(1, rx.recv()).await.is_none());
    assert!(cancel_after(1, l.accept()).await.is_none());
    let big = payload(i, 1 << 20);
    assert!(cancel_after(2, c.send(&big)).await.is_none());
    // The write half idle, the listener with its accept in flight.
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

    // Whole streams: one idle, one with a read in flight.
    let (l, c, s) = pair().await;
    assert!(cancel_after(1, s.recv()).await.is_none());
    drop(s);
    drop(c);
    // A listener dropped idle (its spare instance listening).
    drop(l);

    // A stream dropped with a write in flight whose reader never reads (the
    // grace period runs out) and a reader half dropped with its read in
    // flight; then the other ends.
    let (l, c, s) = pair().await;
    let (rx, tx) = c.into_split();
    assert!(cancel_after(1, rx.recv()).await.is_none());
    assert!(cancel_after(2, tx.send(&big)).await.is_none());
    drop(rx);
    drop(tx);
    drop(s);
    drop(l);
}

#[tokio::test(flavor = "current_thread")]
async fn drops_in_flight_leak_no_descriptor_or_handle() {
    // Warm up the runtime's own descriptors, its blocking pool and (Windows)
    // the thread pool's wait threads.
    round(1000).await;
    let before = handles();
    for i in 0..30u64 {
        round(i).await;
    }
    assert_eq!(handles(), before);
}
