//! Message round trip through `PipeStream`, beside a raw Unix-socket ping-pong
//! measured in the same run (the floor our framing sits on).
//!
//! `cargo bench -p named-ipc --bench pipe_rtt`. Each pair of functions in a group
//! differs only in the transport, so their ratio is the cost of named-ipc.
// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use named_ipc::pipe::{Framed, ListenerOptions, PipeListener, PipeMode, PipeStream};

const SIZES: [usize; 3] = [64, 4096, 65536];

fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "bench-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An echo server on its own thread; returns the connected client.
fn message_pair(mode: PipeMode) -> PipeStream {
    let name = unique("rtt");
    let listener: PipeListener = ListenerOptions::new().mode(mode).create(&name).unwrap();
    std::thread::spawn(move || {
        let s = listener.accept().unwrap();
        match mode {
            PipeMode::Message => {
                let mut buf = Vec::new();
                while s.recv_into(&mut buf).unwrap().is_some() {
                    s.send(&buf).unwrap();
                }
            }
            PipeMode::Byte => {
                let mut f = Framed::new(&s);
                let mut buf = Vec::new();
                while f.recv_into(&mut buf).unwrap().is_some() {
                    f.send(&buf).unwrap();
                }
            }
        }
    });
    named_ipc::pipe::ConnectOptions::new()
        .mode(mode)
        .timeout(Duration::from_secs(10))
        .connect(&name)
        .unwrap()
}

fn rtt(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipe_rtt");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let msg = vec![0x5au8; size];

        let client = message_pair(PipeMode::Message);
        let mut buf = Vec::with_capacity(size);
        g.bench_with_input(
            BenchmarkId::new("named-ipc message", size),
            &msg,
            |b, msg| {
                b.iter(|| {
                    client.send(black_box(msg)).unwrap();
                    client.recv_into(&mut buf).unwrap().unwrap();
                })
            },
        );

        // The same with read and write timeouts set (never reached): a
        // socket timeout, not a poll per call, so this should match.
        let client = message_pair(PipeMode::Message);
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        client
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        g.bench_with_input(
            BenchmarkId::new("named-ipc message + timeouts", size),
            &msg,
            |b, msg| {
                b.iter(|| {
                    client.send(black_box(msg)).unwrap();
                    client.recv_into(&mut buf).unwrap().unwrap();
                })
            },
        );

        let client = message_pair(PipeMode::Byte);
        let mut framed = Framed::new(&client);
        g.bench_with_input(
            BenchmarkId::new("named-ipc framed", size),
            &msg,
            |b, msg| {
                b.iter(|| {
                    framed.send(black_box(msg)).unwrap();
                    framed.recv_into(&mut buf).unwrap().unwrap();
                })
            },
        );

        #[cfg(unix)]
        raw::bench(&mut g, size, &msg);
    }
    g.finish();
}

#[cfg(unix)]
mod raw {
    use std::io::{Read, Write};
    use std::os::unix::net::{UnixListener, UnixStream};

    use super::*;

    /// The baseline: a fixed-size ping-pong on a plain Unix socket, no framing.
    pub fn bench(
        g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        size: usize,
        msg: &[u8],
    ) {
        let path = std::env::temp_dir().join(format!("{}.sock", unique("raw")));
        let l = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = vec![0u8; size];
            while s.read_exact(&mut buf).is_ok() {
                s.write_all(&buf).unwrap();
            }
        });
        let mut c = UnixStream::connect(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let mut buf = vec![0u8; size];
        g.bench_with_input(BenchmarkId::new("raw unix socket", size), msg, |b, msg| {
            b.iter(|| {
                c.write_all(black_box(msg)).unwrap();
                c.read_exact(&mut buf).unwrap();
            })
        });
    }
}

criterion_group!(benches, rtt);
criterion_main!(benches);
