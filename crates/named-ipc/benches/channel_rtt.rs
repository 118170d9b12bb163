//! Round trip through the shared-memory channel (split halves, spinning, and
//! blocking), beside a raw ping-pong on one atomic and a pipe, in one run.
//! Two threads of one process; `nipc bench` measures two processes.
//!
//! `cargo bench -p named-ipc --bench channel_rtt`
// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use named_ipc::channel::{ChannelOptions, ShmReceiver, ShmSender, ShmStream};

const SIZES: [usize; 3] = [64, 4096, 65536];

fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "bench-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A channel with an echo thread on the other end; returns our halves.
fn channel(spin: Duration) -> (ShmSender, ShmReceiver) {
    let name = unique("chan");
    let l = ChannelOptions::new()
        .capacity(1 << 20)
        .spin(spin)
        .bind(&name)
        .unwrap();
    std::thread::spawn(move || {
        let (mut tx, mut rx) = l.accept().unwrap().split();
        let mut buf = Vec::new();
        while rx.recv_into(&mut buf).unwrap().is_some() {
            tx.send(&buf).unwrap();
        }
    });
    ChannelOptions::new()
        .spin(spin)
        .timeout(Duration::from_secs(10))
        .connect(&name)
        .map(ShmStream::split)
        .unwrap()
}

fn rtt(c: &mut Criterion) {
    let mut g = c.benchmark_group("channel_rtt");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let msg = vec![0x5au8; size];
        let mut buf = Vec::with_capacity(size);
        for (label, spin) in [
            ("shm spin", Duration::from_secs(60)),
            ("shm blocking", Duration::ZERO),
        ] {
            let (mut tx, mut rx) = channel(spin);
            g.bench_with_input(BenchmarkId::new(label, size), &msg, |b, msg| {
                b.iter(|| {
                    tx.send(black_box(msg)).unwrap();
                    rx.recv_into(&mut buf).unwrap().unwrap();
                })
            });
        }

        // The floor: payload through a shared buffer, one atomic each way.
        let flag = Arc::new((AtomicU32::new(0), AtomicU32::new(0)));
        let shared = Arc::new(std::sync::Mutex::new(vec![0u8; size]));
        let (f2, s2) = (Arc::clone(&flag), Arc::clone(&shared));
        std::thread::spawn(move || {
            let mut last = 0;
            let mut local = vec![0u8; size];
            loop {
                let v = f2.0.load(Ordering::Acquire);
                if v == last {
                    std::hint::spin_loop();
                    continue;
                }
                if v == u32::MAX {
                    break;
                }
                last = v;
                local.copy_from_slice(&s2.lock().unwrap());
                f2.1.store(v, Ordering::Release);
            }
        });
        let mut seq = 0u32;
        g.bench_with_input(BenchmarkId::new("raw spin", size), &msg, |b, msg| {
            b.iter(|| {
                shared.lock().unwrap().copy_from_slice(black_box(msg));
                seq += 1;
                flag.0.store(seq, Ordering::Release);
                while flag.1.load(Ordering::Acquire) != seq {
                    std::hint::spin_loop();
                }
            })
        });
        flag.0.store(u32::MAX, Ordering::Release);
    }
    g.finish();
}

criterion_group!(benches, rtt);
criterion_main!(benches);
