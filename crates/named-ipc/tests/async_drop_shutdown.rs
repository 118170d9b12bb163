//! A runtime shut down while a dropped stream's last write is still going
//! out (the grace period's task) frees nothing the kernel still uses and
//! leaks nothing: Linux counts /proc/self/fd, Windows (under Wine)
//! `GetProcessHandleCount`. Alone in its test binary, so no other test's
//! descriptors come and go during the count.
#![cfg(all(feature = "tokio", any(target_os = "linux", windows)))]

mod support;

use named_ipc::tokio::{ListenerOptions, PipeListener, PipeMode, PipeStream};
use support::{cancel_after, handles, payload, pipe_pair};

async fn pair() -> (PipeListener, PipeStream, PipeStream) {
    pipe_pair(&ListenerOptions::new(), PipeMode::Message).await
}

/// A stream dropped with a write in flight leaves that write to a task on
/// the runtime (the grace period); a runtime shut down at once drops the
/// task with the write still in flight. The write's memory must not be
/// freed under the kernel (Windows: the operation is cancelled and waited
/// for when its owner goes) and nothing may leak.
#[test]
fn a_runtime_shut_down_in_the_grace_period_frees_nothing_in_use() {
    let warm = || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { drop(pair().await) });
    };
    warm();
    let before = handles();
    // Five rounds: on Unix each dropped task finishes its write on the
    // dropping thread, waiting out the grace period (1 s).
    for i in 0..5u64 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (l, s) = rt.block_on(async {
            let (l, c, s) = pair().await;
            let big = payload(i, 1 << 20);
            // Nobody reads: the write stays in flight, part-way.
            assert!(cancel_after(2, c.send(&big)).await.is_none());
            drop(c);
            (l, s)
        });
        // The grace task is dropped with its write in flight.
        drop(rt);
        drop(s);
        drop(l);
    }
    assert_eq!(handles(), before);
}
