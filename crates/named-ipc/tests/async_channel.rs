//! The async shared-memory channel (feature `tokio`) in one process.
#![cfg(feature = "tokio")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use named_ipc::tokio::{ChannelOptions, ShmListener, ShmStream};

const STEP: Duration = Duration::from_secs(60);

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "nac-{tag}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

async fn pair(opts: &ChannelOptions) -> (ShmListener, ShmStream, ShmStream) {
    let name = unique("pair");
    let l = ShmListener::bind_with(&name, opts).unwrap();
    let mut co = opts.clone();
    co.timeout(STEP);
    let (c, s) = tokio::join!(ShmStream::connect_with(&name, &co), l.accept());
    (l, c.unwrap(), s.unwrap())
}

async fn sizes_round_trip(spin: Duration) {
    let mut o = ChannelOptions::new();
    o.spin(spin).capacity(64 << 10).max_message_size(8 << 20);
    let (_l, c, s) = pair(&o).await;
    let echo = tokio::spawn(async move {
        let mut buf = Vec::new();
        while s.recv_into(&mut buf).await?.is_some() {
            s.send(&buf).await?;
        }
        std::io::Result::Ok(())
    });
    for (i, len) in [
        0usize,
        1,
        7,
        8,
        4095,
        4096,
        16384,
        16385,
        65536,
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
