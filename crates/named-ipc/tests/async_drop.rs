//! Dropping async pipes in every state leaks no descriptor (Linux:
//! /proc/self/fd). Alone in its test binary, so no other test's descriptors
//! come and go during the count.
#![cfg(all(feature = "tokio", target_os = "linux"))]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use named_ipc::tokio::{ConnectOptions, ListenerOptions, PipeListener, PipeMode, PipeStream};

const STEP: Duration = Duration::from_secs(60);

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

/// Polls `fut` up to `polls + 1` times, then drops it (`None`).
struct CancelAfter<F> {
    fut: Option<Pin<Box<F>>>,
    polls: u32,
}

impl<F: Future> Future for CancelAfter<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Ready(None);
        };
        match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending if self.polls == 0 => {
                self.fut = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                self.polls -= 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

fn cancel_after<F: Future>(polls: u32, fut: F) -> CancelAfter<F> {
    CancelAfter {
        fut: Some(Box::pin(fut)),
        polls,
    }
}

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
