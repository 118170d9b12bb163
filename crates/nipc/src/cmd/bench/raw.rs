//! The raw baselines, measuring side: `raw-spin` and `raw-futex` (a bare
//! ping-pong through shared memory), `raw-uds` (a plain Unix socket),
//! `raw-ring` (a bare SPSC ring) and `memcpy`. Their peer halves are in
//! `peer.rs`; the layouts and wait helpers here are shared with it.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use named_ipc::bench_support;
use named_ipc::shm::ShmSegment;
use named_ipc::sync::{EventMode, NamedEvent};

use super::report::Measurement;
use super::{sample, unique, Ctx, PeerProc};

/// Offsets in the raw ping-pong segment. `ping_waiting`/`pong_waiting` say
/// that someone sleeps on that word (raw-futex only).
pub(super) struct PingPong {
    pub(super) ping: u64,
    pub(super) pong: u64,
    pub(super) ping_waiting: u64,
    pub(super) pong_waiting: u64,
    pub(super) ping_data: u64,
    pub(super) pong_data: u64,
    len: u64,
}

impl PingPong {
    pub(super) fn new(size: usize) -> PingPong {
        let stride = (size as u64).div_ceil(64) * 64;
        PingPong {
            ping: 0,
            pong: 64,
            ping_waiting: 128,
            pong_waiting: 192,
            ping_data: 256,
            pong_data: 256 + stride,
            len: 256 + 2 * stride.max(64),
        }
    }
}

/// How a raw ping-pong waits: spinning, or the kernel (futex / events).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RawWait {
    Spin,
    Kernel,
}

/// The ping word's value that tells the echo process to leave.
pub(super) const STOP: u32 = u32::MAX;

/// Gives up on a raw baseline whose other process stopped making progress (it
/// died, or was stopped): spinning on its memory would never end otherwise.
/// Cheap on the fast path: the clock is read only after 4096 idle checks.
pub(super) struct Stall {
    since: Option<Instant>,
    n: u32,
    progress: u64,
}

impl Stall {
    const LIMIT: Duration = Duration::from_secs(30);

    pub(super) fn new() -> Stall {
        Stall {
            since: None,
            n: 0,
            progress: 0,
        }
    }

    /// One idle check; `progress` is anything that grows while the peer works.
    pub(super) fn check(&mut self, progress: u64) -> Result<()> {
        self.n = self.n.wrapping_add(1);
        if !self.n.is_multiple_of(4096) {
            return Ok(());
        }
        if progress != self.progress {
            self.progress = progress;
            self.since = None;
            return Ok(());
        }
        match self.since {
            None => self.since = Some(Instant::now()),
            Some(t) if t.elapsed() > Stall::LIMIT => {
                bail!(
                    "the other benchmark process made no progress for {:?}",
                    Stall::LIMIT
                )
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// Waits until `word` satisfies `pred`: spinning, or sleeping on a futex
/// after announcing itself in `waiting` (then re-checking, so a wake-up sent
/// in between is not lost).
pub(super) fn wait_for(
    word: &AtomicU32,
    waiting: &AtomicU32,
    pred: impl Fn(u32) -> bool,
    how: RawWait,
) -> Result<u32> {
    let mut stall = Stall::new();
    loop {
        let v = word.load(Ordering::Acquire);
        if pred(v) {
            return Ok(v);
        }
        stall.check(0)?;
        match how {
            RawWait::Spin => std::hint::spin_loop(),
            RawWait::Kernel => {
                waiting.store(1, Ordering::Relaxed);
                std::sync::atomic::fence(Ordering::SeqCst);
                let v = word.load(Ordering::Acquire);
                if pred(v) {
                    waiting.store(0, Ordering::Relaxed);
                    return Ok(v);
                }
                bench_support::futex_wait(word, v, Some(Duration::from_millis(100)));
                waiting.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// Publishes `v` in `word` and wakes a sleeper if one announced itself.
pub(super) fn signal(word: &AtomicU32, waiting: &AtomicU32, v: u32, how: RawWait) {
    word.store(v, Ordering::Release);
    if how == RawWait::Kernel {
        std::sync::atomic::fence(Ordering::SeqCst);
        if waiting.load(Ordering::Relaxed) != 0 {
            bench_support::futex_wake(word);
        }
    }
}

/// Round trips of `size` bytes through a bare shared-memory ping-pong.
pub(super) fn rtt_raw(ctx: &Ctx, how: RawWait, size: usize) -> Result<Vec<u64>> {
    let pp = PingPong::new(size);
    let mut seg = ShmSegment::anonymous(pp.len)?;
    let token = seg.child_token()?;
    // Windows has no cross-process futex: the kernel floor there is an event pair.
    let events = if how == RawWait::Kernel && !bench_support::HAS_FUTEX {
        let base = unique("ev");
        let ping = NamedEvent::create(&format!("{base}-ping"), EventMode::AutoReset, false)?;
        let pong = NamedEvent::create(&format!("{base}-pong"), EventMode::AutoReset, false)?;
        Some((base, ping, pong))
    } else {
        None
    };
    let role = if how == RawWait::Spin {
        "raw-spin"
    } else {
        "raw-futex"
    };
    let peer = PeerProc::spawn(
        ctx,
        role,
        &token,
        size,
        events.as_ref().map(|e| e.0.as_str()),
    )?;
    let (ping, pong) = (seg.atomic_u32(pp.ping)?, seg.atomic_u32(pp.pong)?);
    let (ping_waiting, pong_waiting) = (
        seg.atomic_u32(pp.ping_waiting)?,
        seg.atomic_u32(pp.pong_waiting)?,
    );
    let msg = vec![0x5a; size];
    let mut buf = vec![0u8; size];
    let mut seq = 0u32;
    let ns = sample(ctx.budget, || {
        seg.write_at(pp.ping_data, &msg)?;
        seq = if seq >= STOP - 1 { 1 } else { seq + 1 };
        match &events {
            Some((_, p, q)) => {
                ping.store(seq, Ordering::Release);
                p.set()?;
                let mut stall = Stall::new();
                while pong.load(Ordering::Acquire) != seq {
                    stall.check(0)?;
                    q.wait_timeout(Duration::from_millis(100))?;
                }
            }
            None => {
                signal(ping, ping_waiting, seq, how);
                wait_for(pong, pong_waiting, |v| v == seq, how)?;
            }
        }
        seg.read_at(pp.pong_data, &mut buf)?;
        Ok(())
    })?;
    ping.store(STOP, Ordering::Release);
    match &events {
        Some((_, p, _)) => p.set()?,
        None => bench_support::futex_wake(ping),
    }
    peer.finish()?;
    Ok(ns)
}

/// Round trips of `size` bytes on a plain Unix socket; `None` where there is
/// none (Windows).
#[cfg(unix)]
pub(super) fn rtt_uds(ctx: &Ctx, size: usize) -> Result<Option<Vec<u64>>> {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    let path = std::env::temp_dir().join(format!("{}.sock", unique("uds")));
    let l = UnixListener::bind(&path)?;
    let peer = PeerProc::spawn(
        ctx,
        "uds-echo",
        path.to_str().unwrap_or_default(),
        size,
        None,
    )?;
    let (mut s, _) = l.accept()?;
    let _ = std::fs::remove_file(&path);
    let msg = vec![0x5a; size];
    let mut buf = vec![0u8; size];
    let ns = sample(ctx.budget, || {
        s.write_all(&msg)?;
        s.read_exact(&mut buf)?;
        Ok(())
    })?;
    drop(s);
    peer.finish()?;
    Ok(Some(ns))
}

/// No Unix sockets here: no `raw-uds` row.
#[cfg(not(unix))]
pub(super) fn rtt_uds(_ctx: &Ctx, _size: usize) -> Result<Option<Vec<u64>>> {
    Ok(None)
}

/// Offsets in the raw ring segment.
pub(super) struct RawRing {
    pub(super) head: u64,
    pub(super) tail: u64,
    pub(super) stop: u64,
    pub(super) done: u64,
    slots: u64,
    stride: u64,
    count: u64,
}

impl RawRing {
    pub(super) fn new(size: usize) -> RawRing {
        let stride = ((size as u64).div_ceil(64) * 64).max(64);
        RawRing {
            head: 0,
            tail: 64,
            stop: 128,
            done: 192,
            slots: 256,
            stride,
            count: ((8u64 << 20) / stride).clamp(2, 1024),
        }
    }

    fn len(&self) -> u64 {
        self.slots + self.stride * self.count
    }

    /// Where message `i` goes.
    pub(super) fn slot(&self, i: u64) -> u64 {
        self.slots + (i % self.count) * self.stride
    }
}

/// One way through a bare ring of fixed-size slots.
pub(super) fn tput_raw_ring(ctx: &Ctx, size: usize) -> Result<Measurement> {
    let r = RawRing::new(size);
    let mut seg = ShmSegment::anonymous(r.len())?;
    seg.atomic_u64(r.stop)?.store(u64::MAX, Ordering::Release);
    let token = seg.child_token()?;
    let peer = PeerProc::spawn(ctx, "raw-ring", &token, size, None)?;
    let (head, tail) = (seg.atomic_u64(r.head)?, seg.atomic_u64(r.tail)?);
    let (stop, done) = (seg.atomic_u64(r.stop)?, seg.atomic_u64(r.done)?);
    let msg = vec![0x5a; size];
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < ctx.budget || i < 16 {
        for _ in 0..16 {
            let mut stall = Stall::new();
            while i - head.load(Ordering::Acquire) >= r.count {
                stall.check(0)?;
                std::hint::spin_loop();
            }
            seg.write_at(r.slot(i), &msg)?;
            i += 1;
            tail.store(i, Ordering::Release);
        }
    }
    stop.store(i, Ordering::Release);
    let mut stall = Stall::new();
    while done.load(Ordering::Acquire) == 0 {
        stall.check(0)?;
        std::hint::spin_loop();
    }
    let took = start.elapsed();
    peer.finish()?;
    Ok(Measurement::throughput("raw-ring", size, i, took))
}

/// One copy of the message in this process.
pub(super) fn tput_memcpy(ctx: &Ctx, size: usize) -> Measurement {
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < ctx.budget || n < 16 {
        for _ in 0..16 {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        }
        n += 16;
    }
    Measurement::throughput("memcpy", size, n, start.elapsed())
}
