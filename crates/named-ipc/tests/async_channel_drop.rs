//! Dropping the async channel in every state leaks no descriptor (Linux:
//! /proc/self/fd) and no handle (Windows: `GetProcessHandleCount`; runs
//! under Wine). Alone in its test binary, so no other test's descriptors
//! come and go during the count.
#![cfg(all(feature = "tokio", any(target_os = "linux", windows)))]

mod support;

use std::time::Duration;

use named_ipc::tokio::{ChannelOptions, ShmListener, ShmStream};
use support::{cancel_after, handles, payload, within, STEP};

async fn pair(n: u64) -> (ShmListener, ShmStream, ShmStream) {
    let name = format!("nacd-{}-{n}", std::process::id());
    let mut o = ChannelOptions::new();
    o.capacity(64 << 10)
        .spin(Duration::ZERO)
        .max_message_size(4 << 20);
    let l = ShmListener::bind_with(&name, &o).unwrap();
    o.timeout(STEP);
    let (c, s) = within("connect and accept", async {
        tokio::join!(ShmStream::connect_with(&name, &o), l.accept())
    })
    .await;
    (l, c.unwrap(), s.unwrap())
}

/// One round: a receive, an accept, a reservation and a send part-way
/// through a message of many records, each dropped; halves and streams
/// dropped with a message still going out, which the stream completes.
async fn round(i: u64) {
    let (l, c, s) = pair(i).await;
    let (mut tx, mut rx) = s.into_split();
    assert!(cancel_after(1, rx.recv()).await.is_none());
    assert!(cancel_after(1, l.accept()).await.is_none());
    drop(within("reserve 10", tx.reserve(10)).await.unwrap());
    assert!(cancel_after(0, tx.reserve(100)).await.is_some());
    let big = payload(i, 1 << 20);
    // The 64 KiB ring fills and nobody reads: the send is stopped part-way.
    assert!(cancel_after(2, c.send(&big)).await.is_none());
    drop(tx);
    drop(l);
    // The reader gets the message the stream completes at its drop, then
    // the end.
    let t = tokio::spawn(async move {
        let first = rx.recv().await?;
        let end = rx.recv().await?;
        std::io::Result::Ok((first, end))
    });
    drop(c);
    let (first, end) = within("the reader's two receives", t)
        .await
        .unwrap()
        .unwrap();
    assert!(first.is_some_and(|m| m == big), "the cut message was lost");
    assert!(end.is_none());
    // A receive guard and a permit dropped, then the streams.
    let (_l, c, s) = pair(i + 10_000).await;
    within("send x", c.send(b"x")).await.unwrap();
    let g = within("recv x in place", s.recv_in_place())
        .await
        .unwrap()
        .unwrap();
    let p = within("reserve 5", c.reserve(5)).await.unwrap();
    drop(g);
    drop(p);
    drop(s);
    drop(c);
}

#[tokio::test(flavor = "current_thread")]
async fn drops_in_flight_leak_no_descriptor_or_handle() {
    // Warm up the runtime's own descriptors, its blocking pool and (Windows)
    // the thread pool's threads.
    round(1000).await;
    let before = handles();
    for i in 0..30u64 {
        round(i).await;
    }
    assert_eq!(handles(), before);
}
