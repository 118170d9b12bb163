//! Round trip through the shared-memory channel (split halves, spinning, and
//! blocking; spinning with read/write timeouts set, which should cost nothing
//! while nothing waits; spinning with zero copy on both ends), beside a raw
//! ping-pong on one atomic, in one run. Two threads of one process;
//! `nipc bench` measures two processes.
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

/// How the echo thread answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Echo {
    /// `recv_into` then `send`.
    Copy,
    /// `recv_with` reading the message in place, `send_with` writing the
    /// answer in place.
    InPlace,
}

/// A channel with an echo thread on the other end; returns our halves.
fn channel(spin: Duration, echo: Echo) -> (ShmSender, ShmReceiver) {
    let name = unique("chan");
    let l = ChannelOptions::new()
        .capacity(1 << 20)
        .spin(spin)
        .bind(&name)
        .unwrap();
    std::thread::spawn(move || {
        let (mut tx, mut rx) = l.accept().unwrap().split();
        let mut buf = Vec::new();
        match echo {
            Echo::Copy => {
                while rx.recv_into(&mut buf).unwrap().is_some() {
                    tx.send(&buf).unwrap();
                }
            }
            Echo::InPlace => {
                let mut word = [0u8; 8];
                while let Some(len) = rx
                    .recv_with(|m| {
                        m.read_at(0, &mut word[..m.len().min(8)]);
                        m.len()
                    })
                    .unwrap()
                {
                    tx.send_with(len, |b| {
                        b.write_at(0, &word[..len.min(8)]);
                    })
                    .unwrap();
                }
            }
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
            let (mut tx, mut rx) = channel(spin, Echo::Copy);
            g.bench_with_input(BenchmarkId::new(label, size), &msg, |b, msg| {
                b.iter(|| {
                    tx.send(black_box(msg)).unwrap();
                    rx.recv_into(&mut buf).unwrap().unwrap();
                })
            });
        }

        // Timeouts set on every end, never reached: the clock is read only
        // when a call has to wait, so this should match "shm spin".
        let (mut tx, mut rx) = channel(Duration::from_secs(60), Echo::Copy);
        tx.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        g.bench_with_input(
            BenchmarkId::new("shm spin + timeouts", size),
            &msg,
            |b, msg| {
                b.iter(|| {
                    tx.send(black_box(msg)).unwrap();
                    rx.recv_into(&mut buf).unwrap().unwrap();
                })
            },
        );

        // Zero copy both ways: the message is written and read in place,
        // touching its first 8 bytes.
        let (mut tx, mut rx) = channel(Duration::from_secs(60), Echo::InPlace);
        g.bench_with_input(
            BenchmarkId::new("shm spin in place", size),
            &size,
            |b, &n| {
                b.iter(|| {
                    tx.send_with(n, |buf| {
                        buf.write_at(0, &[1u8; 8][..n.min(8)]);
                    })
                    .unwrap();
                    rx.recv_with(|m| m.get(0)).unwrap().unwrap();
                })
            },
        );

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
