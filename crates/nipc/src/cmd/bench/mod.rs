//! `nipc bench`: two real processes, our transports beside raw baselines
//! measured in the same run.
//!
//! This process measures; `nipc __bench-peer ROLE TARGET SIZE [EXTRA]` is the
//! other side (echo or sink). Round trips are timed one by one (median and
//! 99th percentile); throughput is one-way, timed from the first send to the
//! receiver's acknowledgement of the last message.
//!
//! | row | what it is |
//! |---|---|
//! | `shm-spin` | `ShmStream` (split into its lock-free halves), both ends spinning (never sleeping) while they wait |
//! | `shm-blocking` | the same with no spinning: every wait sleeps in the kernel |
//! | `pipe` | `PipeStream`, message mode |
//! | `raw-spin` | payload copied into shared memory, one atomic flipped, the peer spinning on it: the cache-line limit |
//! | `raw-futex` | the same with futex wait/wake instead of spinning (Windows: an event pair): the kernel wake-up floor. The minimal correct protocol: a waiter announces itself in a flag and the other side calls `futex_wake` only then. (An unconditional wake is no floor: its ~1 µs syscall lets the reply arrive before the waiter sleeps, so small messages never sleep at all.) |
//! | `raw-uds` | a fixed-size ping-pong on a plain Unix socket (Unix only) |
//! | `shm-spin`, `shm-blocking` (throughput) | one way, the receiver copying each message out |
//! | `raw-ring` | a bare SPSC ring of fixed-size slots in shared memory, no headers, no checks |
//! | `memcpy` | one copy of the message in one process |

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use named_ipc::bench_support;
use named_ipc::channel::{ChannelOptions, ShmReceiver, ShmSender};
use named_ipc::pipe::{ConnectOptions, ListenerOptions, PipeMode};
use named_ipc::shm::{Protection, ShmSegment};
use named_ipc::sync::{EventMode, NamedEvent};

use crate::cli::{BenchArgs, BenchPeerArgs, Suite};
use crate::cmd::pipe::seconds;
use crate::out;
use crate::usage;

const RTT_SHM: [&str; 4] = ["shm-spin", "shm-blocking", "raw-spin", "raw-futex"];
const RTT_PIPE: [&str; 2] = ["pipe", "raw-uds"];
const TPUT_SHM: [&str; 4] = ["shm-spin", "shm-blocking", "raw-ring", "memcpy"];

/// One result line.
#[derive(Debug, Clone)]
struct Row {
    test: &'static str,
    transport: &'static str,
    size: usize,
    median_ns: Option<f64>,
    p99_ns: Option<f64>,
    msgs_per_s: Option<f64>,
    bytes_per_s: Option<f64>,
}

impl Row {
    fn rtt(transport: &'static str, size: usize, mut ns: Vec<u64>) -> Row {
        ns.sort_unstable();
        let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64;
        Row {
            test: "rtt",
            transport,
            size,
            median_ns: Some(at(0.5)),
            p99_ns: Some(at(0.99)),
            msgs_per_s: None,
            bytes_per_s: None,
        }
    }

    fn throughput(transport: &'static str, size: usize, msgs: u64, took: Duration) -> Row {
        let secs = took.as_secs_f64().max(1e-9);
        Row {
            test: "throughput",
            transport,
            size,
            median_ns: None,
            p99_ns: None,
            msgs_per_s: Some(msgs as f64 / secs),
            bytes_per_s: Some(msgs as f64 * size as f64 / secs),
        }
    }

    fn json(&self) -> String {
        let num = |v: Option<f64>| v.map_or_else(|| "null".to_owned(), |x| format!("{x:.1}"));
        format!(
            "{{\"test\": \"{}\", \"transport\": \"{}\", \"size\": {}, \"median_ns\": {}, \"p99_ns\": {}, \"msgs_per_s\": {}, \"bytes_per_s\": {}}}",
            self.test,
            self.transport,
            self.size,
            num(self.median_ns),
            num(self.p99_ns),
            num(self.msgs_per_s),
            num(self.bytes_per_s)
        )
    }
}

/// What each measured row is compared with.
fn baseline(test: &str, transport: &str, size: usize) -> Option<&'static str> {
    match (test, transport) {
        ("rtt", "shm-spin") => Some("raw-spin"),
        ("rtt", "shm-blocking") => Some("raw-futex"),
        ("rtt", "pipe") => Some("raw-uds"),
        ("throughput", "shm-spin" | "shm-blocking") if size >= 1 << 20 => Some("memcpy"),
        ("throughput", "shm-spin" | "shm-blocking") => Some("raw-ring"),
        _ => None,
    }
}

/// The other process; killed if still running when dropped.
struct PeerProc(Child);

impl PeerProc {
    fn spawn(role: &str, target: &str, size: usize, extra: Option<&str>) -> Result<PeerProc> {
        let exe = std::env::current_exe().context("cannot find the nipc executable")?;
        let mut c = Command::new(exe);
        c.args(["__bench-peer", role, target, &size.to_string()]);
        if let Some(x) = extra {
            c.arg(x);
        }
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the benchmark's second process")?;
        Ok(PeerProc(child))
    }

    fn finish(mut self) -> Result<()> {
        let st = self.0.wait()?;
        if !st.success() {
            bail!("the benchmark's second process failed ({st})");
        }
        Ok(())
    }
}

impl Drop for PeerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn unique(tag: &str) -> String {
    use std::sync::atomic::AtomicU32;
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "nipc-bench-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Ring size for `size`-byte messages: the same bytes as the raw ring baseline
/// (up to 1024 slots, up to 8 MiB), and room for one message as one record.
fn capacity_for(size: usize) -> usize {
    let stride = size.div_ceil(64).max(1) * 64;
    let one_record = size.saturating_mul(4) + 64;
    (stride * 1024)
        .min(8 << 20)
        .max(one_record)
        .next_power_of_two()
        .clamp(256 << 10, 64 << 20)
}

/// Runs `one` (one timed round trip) for about `budget`, after a warm-up.
fn sample(budget: Duration, mut one: impl FnMut() -> Result<()>) -> Result<Vec<u64>> {
    let warm = Instant::now();
    while warm.elapsed() < budget / 10 {
        one()?;
    }
    let mut ns = Vec::with_capacity(100_000);
    let start = Instant::now();
    while (start.elapsed() < budget || ns.len() < 50) && ns.len() < 2_000_000 {
        let t = Instant::now();
        one()?;
        ns.push(t.elapsed().as_nanos() as u64);
    }
    Ok(ns)
}

/// A channel to a new `role` process (it connects; we accept), split.
fn channel_to(
    role: &str,
    spin: Duration,
    size: usize,
) -> Result<(PeerProc, ShmSender, ShmReceiver)> {
    let name = unique(role);
    let l = ChannelOptions::new()
        .capacity(capacity_for(size))
        .spin(spin)
        .bind(&name)?;
    let peer = PeerProc::spawn(role, &name, size, Some(&spin.as_nanos().to_string()))?;
    let (tx, rx) = l.accept_timeout(Duration::from_secs(30))?.split();
    Ok((peer, tx, rx))
}

fn rtt_channel(spin: Duration, size: usize, budget: Duration) -> Result<Vec<u64>> {
    let (peer, mut tx, mut rx) = channel_to("chan-echo", spin, size)?;
    let msg = vec![0x5a; size];
    let mut buf = Vec::with_capacity(size);
    let ns = sample(budget, || {
        tx.send(&msg)?;
        rx.recv_into(&mut buf)?.context("the echo process left")?;
        Ok(())
    })?;
    drop((tx, rx));
    peer.finish()?;
    Ok(ns)
}

fn rtt_pipe(size: usize, budget: Duration) -> Result<Vec<u64>> {
    let name = unique("pipe");
    let l = ListenerOptions::new()
        .mode(PipeMode::Message)
        .create(&name)?;
    let peer = PeerProc::spawn("pipe-echo", &name, size, None)?;
    let c = l.accept_timeout(Duration::from_secs(30))?;
    let msg = vec![0x5a; size];
    let mut buf = Vec::with_capacity(size);
    let ns = sample(budget, || {
        c.send(&msg)?;
        c.recv_into(&mut buf)?.context("the echo process left")?;
        Ok(())
    })?;
    drop(c);
    peer.finish()?;
    Ok(ns)
}

/// Offsets in the raw ping-pong segment. `ping_waiting`/`pong_waiting` say
/// that someone sleeps on that word (raw-futex only).
struct PingPong {
    ping: u64,
    pong: u64,
    ping_waiting: u64,
    pong_waiting: u64,
    ping_data: u64,
    pong_data: u64,
    len: u64,
}

impl PingPong {
    fn new(size: usize) -> PingPong {
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
enum RawWait {
    Spin,
    Kernel,
}

const STOP: u32 = u32::MAX;

/// Gives up on a raw baseline whose other process stopped making progress (it
/// died, or was stopped): spinning on its memory would never end otherwise.
/// Cheap on the fast path: the clock is read only after 4096 idle checks.
struct Stall {
    since: Option<Instant>,
    n: u32,
    progress: u64,
}

impl Stall {
    const LIMIT: Duration = Duration::from_secs(30);

    fn new() -> Stall {
        Stall {
            since: None,
            n: 0,
            progress: 0,
        }
    }

    /// One idle check; `progress` is anything that grows while the peer works.
    fn check(&mut self, progress: u64) -> Result<()> {
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
fn wait_for(
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
fn signal(word: &AtomicU32, waiting: &AtomicU32, v: u32, how: RawWait) {
    word.store(v, Ordering::Release);
    if how == RawWait::Kernel {
        std::sync::atomic::fence(Ordering::SeqCst);
        if waiting.load(Ordering::Relaxed) != 0 {
            bench_support::futex_wake(word);
        }
    }
}

fn rtt_raw(how: RawWait, size: usize, budget: Duration) -> Result<Vec<u64>> {
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
    let peer = PeerProc::spawn(role, &token, size, events.as_ref().map(|e| e.0.as_str()))?;
    let (ping, pong) = (seg.atomic_u32(pp.ping)?, seg.atomic_u32(pp.pong)?);
    let (ping_waiting, pong_waiting) = (
        seg.atomic_u32(pp.ping_waiting)?,
        seg.atomic_u32(pp.pong_waiting)?,
    );
    let msg = vec![0x5a; size];
    let mut buf = vec![0u8; size];
    let mut seq = 0u32;
    let ns = sample(budget, || {
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

#[cfg(unix)]
fn rtt_uds(size: usize, budget: Duration) -> Result<Option<Vec<u64>>> {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    let path = std::env::temp_dir().join(format!("{}.sock", unique("uds")));
    let l = UnixListener::bind(&path)?;
    let peer = PeerProc::spawn("uds-echo", path.to_str().unwrap_or_default(), size, None)?;
    let (mut s, _) = l.accept()?;
    let _ = std::fs::remove_file(&path);
    let msg = vec![0x5a; size];
    let mut buf = vec![0u8; size];
    let ns = sample(budget, || {
        s.write_all(&msg)?;
        s.read_exact(&mut buf)?;
        Ok(())
    })?;
    drop(s);
    peer.finish()?;
    Ok(Some(ns))
}

#[cfg(not(unix))]
fn rtt_uds(_size: usize, _budget: Duration) -> Result<Option<Vec<u64>>> {
    Ok(None)
}

fn tput_channel(
    transport: &'static str,
    spin: Duration,
    size: usize,
    budget: Duration,
) -> Result<Row> {
    let (peer, mut c, mut back) = channel_to("chan-sink", spin, size)?;
    let msg = vec![0x5a; size];
    let end: Vec<u8> = if size == 0 { vec![0] } else { Vec::new() };
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget || n < 16 {
        for _ in 0..16 {
            c.send(&msg)?;
        }
        n += 16;
    }
    c.send(&end)?;
    let ack = back.recv()?.context("the sink process left")?;
    let took = start.elapsed();
    let counted = u64::from_le_bytes(ack.get(..8).context("bad ack")?.try_into()?);
    if counted != n {
        bail!("the sink counted {counted} messages, {n} were sent");
    }
    drop((c, back));
    peer.finish()?;
    Ok(Row::throughput(transport, size, n, took))
}

/// Offsets in the raw ring segment.
struct RawRing {
    head: u64,
    tail: u64,
    stop: u64,
    done: u64,
    slots: u64,
    stride: u64,
    count: u64,
}

impl RawRing {
    fn new(size: usize) -> RawRing {
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

    fn slot(&self, i: u64) -> u64 {
        self.slots + (i % self.count) * self.stride
    }
}

fn tput_raw_ring(size: usize, budget: Duration) -> Result<Row> {
    let r = RawRing::new(size);
    let mut seg = ShmSegment::anonymous(r.len())?;
    seg.atomic_u64(r.stop)?.store(u64::MAX, Ordering::Release);
    let token = seg.child_token()?;
    let peer = PeerProc::spawn("raw-ring", &token, size, None)?;
    let (head, tail) = (seg.atomic_u64(r.head)?, seg.atomic_u64(r.tail)?);
    let (stop, done) = (seg.atomic_u64(r.stop)?, seg.atomic_u64(r.done)?);
    let msg = vec![0x5a; size];
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < budget || i < 16 {
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
    Ok(Row::throughput("raw-ring", size, i, took))
}

fn tput_memcpy(size: usize, budget: Duration) -> Row {
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget || n < 16 {
        for _ in 0..16 {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        }
        n += 16;
    }
    Row::throughput("memcpy", size, n, start.elapsed())
}

pub fn run(a: BenchArgs) -> Result<()> {
    let budget = seconds(a.duration, "--duration")?;
    if budget.is_zero() {
        usage!("--duration must be more than 0 seconds");
    }
    if a.sizes.is_empty() || a.sizes.iter().any(|&s| s > 16 << 20) {
        usage!("--sizes must list sizes from 0 to 16777216 bytes");
    }
    let mut plan: Vec<(&'static str, &'static str)> = Vec::new();
    if a.suite != Suite::Pipe {
        plan.extend(RTT_SHM.iter().map(|t| ("rtt", *t)));
        plan.extend(TPUT_SHM.iter().map(|t| ("throughput", *t)));
    }
    if a.suite != Suite::Shm {
        plan.extend(RTT_PIPE.iter().map(|t| ("rtt", *t)));
    }
    let bar = ProgressBar::new((plan.len() * a.sizes.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rows = Vec::new();
    for &size in &a.sizes {
        for &(test, transport) in &plan {
            bar.set_message(format!("{test} {transport} {size} B"));
            let row = match (test, transport) {
                ("rtt", "shm-spin") => Some(Row::rtt(
                    transport,
                    size,
                    rtt_channel(Duration::from_secs(3600), size, budget)?,
                )),
                ("rtt", "shm-blocking") => Some(Row::rtt(
                    transport,
                    size,
                    rtt_channel(Duration::ZERO, size, budget)?,
                )),
                ("rtt", "raw-spin") => Some(Row::rtt(
                    transport,
                    size,
                    rtt_raw(RawWait::Spin, size, budget)?,
                )),
                ("rtt", "raw-futex") => Some(Row::rtt(
                    transport,
                    size,
                    rtt_raw(RawWait::Kernel, size, budget)?,
                )),
                ("rtt", "pipe") => Some(Row::rtt(transport, size, rtt_pipe(size, budget)?)),
                ("rtt", "raw-uds") => {
                    rtt_uds(size, budget)?.map(|ns| Row::rtt(transport, size, ns))
                }
                ("throughput", "shm-spin") => Some(tput_channel(
                    transport,
                    Duration::from_secs(3600),
                    size,
                    budget,
                )?),
                ("throughput", "shm-blocking") => {
                    Some(tput_channel(transport, Duration::ZERO, size, budget)?)
                }
                ("throughput", "raw-ring") => Some(tput_raw_ring(size, budget)?),
                ("throughput", "memcpy") => Some(tput_memcpy(size, budget)),
                _ => None,
            };
            rows.extend(row);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    if a.json {
        for r in &rows {
            out::line(&r.json())?;
        }
    } else {
        print_table(&rows)?;
    }
    if let Some(path) = &a.plot {
        std::fs::write(path, svg(&rows))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("nipc: wrote {}", path.display());
    }
    Ok(())
}

fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        None => "-".into(),
        Some(v) if v >= 1e6 => format!("{:.2} ms", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.2} µs", v / 1e3),
        Some(v) => format!("{v:.0} ns"),
    }
}

fn fmt_rate(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 1e9 => format!("{:.2} G{unit}", v / 1e9),
        Some(v) if v >= 1e6 => format!("{:.2} M{unit}", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.2} k{unit}", v / 1e3),
        Some(v) => format!("{v:.0} {unit}"),
    }
}

/// Ratio of a row to its baseline: time ratio for round trips (lower is
/// better), rate ratio for throughput (higher is better).
fn ratio(rows: &[Row], r: &Row) -> Option<(f64, &'static str)> {
    let base = baseline(r.test, r.transport, r.size)?;
    let b = rows
        .iter()
        .find(|x| x.test == r.test && x.transport == base && x.size == r.size)?;
    let v = if r.test == "rtt" {
        r.median_ns? / b.median_ns?
    } else if base == "memcpy" {
        r.bytes_per_s? / b.bytes_per_s?
    } else {
        r.msgs_per_s? / b.msgs_per_s?
    };
    Some((v, base))
}

fn print_table(rows: &[Row]) -> Result<()> {
    out::line(&format!(
        "{:<11} {:<13} {:>9} {:>10} {:>10} {:>12} {:>12}  {}",
        "test", "transport", "size", "median", "p99", "msgs/s", "bytes/s", "vs baseline"
    ))?;
    for r in rows {
        let vs = match ratio(rows, r) {
            Some((v, base)) => format!("{v:.2}x {base}"),
            None => String::new(),
        };
        out::line(&format!(
            "{:<11} {:<13} {:>9} {:>10} {:>10} {:>12} {:>12}  {}",
            r.test,
            r.transport,
            r.size,
            fmt_ns(r.median_ns),
            fmt_ns(r.p99_ns),
            fmt_rate(r.msgs_per_s, "msg/s"),
            fmt_rate(r.bytes_per_s, "B/s"),
            vs
        ))?;
    }
    Ok(())
}

/// An axis label for 10^e nanoseconds.
fn tick(e: i32) -> String {
    let (unit, div) = match e {
        ..=2 => ("ns", 0),
        3..=5 => ("µs", 3),
        6..=8 => ("ms", 6),
        _ => ("s", 9),
    };
    format!("{} {unit}", 10u64.pow((e - div).max(0) as u32))
}

/// A grouped bar chart of round-trip medians, log scale.
fn svg(rows: &[Row]) -> String {
    let rtt: Vec<&Row> = rows
        .iter()
        .filter(|r| r.test == "rtt" && r.median_ns.is_some())
        .collect();
    let mut sizes: Vec<usize> = rtt.iter().map(|r| r.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut transports: Vec<&str> = Vec::new();
    for r in &rtt {
        if !transports.contains(&r.transport) {
            transports.push(r.transport);
        }
    }
    let colors = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    ];
    let (w, h, left, bottom, top) = (900.0, 460.0, 70.0, 60.0, 40.0);
    let plot_h = h - bottom - top;
    let lo = rtt
        .iter()
        .filter_map(|r| r.median_ns)
        .fold(f64::MAX, f64::min)
        .max(1.0)
        .log10()
        .floor();
    let hi = rtt
        .iter()
        .filter_map(|r| r.median_ns)
        .fold(1.0, f64::max)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let y = |ns: f64| top + plot_h * (1.0 - (ns.max(1.0).log10() - lo) / (hi - lo));
    let group_w = (w - left - 20.0) / sizes.len().max(1) as f64;
    let bar_w = group_w * 0.8 / transports.len().max(1) as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"24\" font-size=\"16\">named-ipc: round-trip time, median (log scale)</text>\n"
    );
    let mut e = lo as i32;
    while f64::from(e) <= hi {
        let yy = y(10f64.powi(e));
        s += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            w - 20.0,
            left - 6.0,
            yy + 4.0,
            tick(e)
        );
        e += 1;
    }
    for (gi, size) in sizes.iter().enumerate() {
        let gx = left + gi as f64 * group_w + group_w * 0.1;
        for (ti, t) in transports.iter().enumerate() {
            if let Some(r) = rtt.iter().find(|r| r.size == *size && r.transport == *t) {
                let v = r.median_ns.unwrap_or(1.0);
                let x = gx + ti as f64 * bar_w;
                let yy = y(v);
                s += &format!(
                    "<rect x=\"{x:.1}\" y=\"{yy:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{t} {size} B: {}</title></rect>\n",
                    bar_w * 0.9,
                    (top + plot_h - yy).max(0.0),
                    colors[ti % colors.len()],
                    fmt_ns(Some(v))
                );
            }
        }
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{size} B</text>\n",
            gx + group_w * 0.4,
            top + plot_h + 18.0
        );
    }
    for (ti, t) in transports.iter().enumerate() {
        let x = left + ti as f64 * 130.0;
        s += &format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{t}</text>\n",
            h - 24.0,
            colors[ti % colors.len()],
            x + 16.0,
            h - 14.0
        );
    }
    s += "</svg>\n";
    s
}

// ------------------------------------------------------------------ peer --

/// The peer's end of a `channel_to` channel (`extra` is the spin in ns), split.
fn connect_channel(a: &BenchPeerArgs) -> Result<(ShmSender, ShmReceiver)> {
    let spin: u64 = a.extra.as_deref().unwrap_or("0").parse()?;
    Ok(ChannelOptions::new()
        .spin(Duration::from_nanos(spin))
        .timeout(Duration::from_secs(30))
        .connect(&a.target)?
        .split())
}

pub fn peer(a: BenchPeerArgs) -> Result<()> {
    let size = a.size;
    match a.role.as_str() {
        "chan-echo" => {
            let (mut tx, mut rx) = connect_channel(&a)?;
            let mut buf = Vec::with_capacity(size);
            while rx.recv_into(&mut buf)?.is_some() {
                tx.send(&buf)?;
            }
        }
        "pipe-echo" => {
            let c = ConnectOptions::new()
                .mode(PipeMode::Message)
                .timeout(Duration::from_secs(30))
                .connect(&a.target)?;
            let mut buf = Vec::with_capacity(size);
            while c.recv_into(&mut buf)?.is_some() {
                c.send(&buf)?;
            }
        }
        "chan-sink" => {
            let (mut tx, mut rx) = connect_channel(&a)?;
            let mut buf = Vec::with_capacity(size);
            let mut n = 0u64;
            while rx.recv_into(&mut buf)?.context("the sender left")? == size {
                n += 1;
            }
            tx.send(&n.to_le_bytes())?;
            // Wait for the measuring side to close.
            while rx.recv()?.is_some() {}
        }
        "raw-spin" | "raw-futex" => {
            let how = if a.role == "raw-spin" {
                RawWait::Spin
            } else {
                RawWait::Kernel
            };
            let pp = PingPong::new(size);
            let seg = ShmSegment::from_child_token(&a.target, Protection::ReadWrite)?;
            let events = match &a.extra {
                Some(base) => Some((
                    NamedEvent::open(&format!("{base}-ping"))?,
                    NamedEvent::open(&format!("{base}-pong"))?,
                )),
                None => None,
            };
            let (ping, pong) = (seg.atomic_u32(pp.ping)?, seg.atomic_u32(pp.pong)?);
            let (ping_waiting, pong_waiting) = (
                seg.atomic_u32(pp.ping_waiting)?,
                seg.atomic_u32(pp.pong_waiting)?,
            );
            let mut buf = vec![0u8; size];
            let mut last = 0u32;
            loop {
                let v = match &events {
                    Some((p, _)) => {
                        let mut stall = Stall::new();
                        loop {
                            let v = ping.load(Ordering::Acquire);
                            if v != last {
                                break v;
                            }
                            stall.check(0)?;
                            p.wait_timeout(Duration::from_millis(100))?;
                        }
                    }
                    None => wait_for(ping, ping_waiting, |v| v != last, how)?,
                };
                if v == STOP {
                    break;
                }
                last = v;
                seg.read_at(pp.ping_data, &mut buf)?;
                seg.write_at(pp.pong_data, &buf)?;
                match &events {
                    Some((_, q)) => {
                        pong.store(v, Ordering::Release);
                        q.set()?;
                    }
                    None => signal(pong, pong_waiting, v, how),
                }
            }
        }
        "raw-ring" => {
            let r = RawRing::new(size);
            let seg = ShmSegment::from_child_token(&a.target, Protection::ReadWrite)?;
            let (head, tail) = (seg.atomic_u64(r.head)?, seg.atomic_u64(r.tail)?);
            let (stop, done) = (seg.atomic_u64(r.stop)?, seg.atomic_u64(r.done)?);
            let mut buf = vec![0u8; size];
            let mut h = 0u64;
            let mut stall = Stall::new();
            loop {
                if h == tail.load(Ordering::Acquire) {
                    if stop.load(Ordering::Acquire) == h {
                        break;
                    }
                    stall.check(h)?;
                    std::hint::spin_loop();
                    continue;
                }
                seg.read_at(r.slot(h), &mut buf)?;
                h += 1;
                head.store(h, Ordering::Release);
            }
            done.store(1, Ordering::Release);
        }
        #[cfg(unix)]
        "uds-echo" => {
            use std::io::{Read, Write};
            let mut s = std::os::unix::net::UnixStream::connect(&a.target)?;
            let mut buf = vec![0u8; size];
            while s.read_exact(&mut buf).is_ok() {
                s.write_all(&buf)?;
            }
        }
        other => bail!("unknown bench role {other:?}"),
    }
    Ok(())
}
