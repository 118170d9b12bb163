//! Our transports, measuring side: the shared-memory channel (`shm-spin`,
//! `shm-blocking`) and the pipe (`pipe`); the async ones are in `asyncs.rs`. Their peers are in `peer.rs`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use named_ipc::channel::{ChannelOptions, ShmReceiver, ShmSender};
use named_ipc::pipe::{ListenerOptions, PipeMode};

use super::report::Measurement;
use super::{sample, unique, Ctx, PeerProc};

/// Ring size for `size`-byte messages: the same bytes as the raw ring baseline
/// (up to 1024 slots, up to 8 MiB), and room for one message as one record.
pub(super) fn capacity_for(size: usize) -> usize {
    let stride = size.div_ceil(64).max(1) * 64;
    let one_record = size.saturating_mul(4) + 64;
    (stride * 1024)
        .min(8 << 20)
        .max(one_record)
        .next_power_of_two()
        .clamp(256 << 10, 64 << 20)
}

/// A channel to a new `role` process (it connects; we accept), split.
fn channel_to(
    ctx: &Ctx,
    role: &str,
    spin: Duration,
    size: usize,
) -> Result<(PeerProc, ShmSender, ShmReceiver)> {
    let name = unique(role);
    let l = ChannelOptions::new()
        .capacity(capacity_for(size))
        .spin(spin)
        .bind(&name)?;
    let peer = PeerProc::spawn(ctx, role, &name, size, Some(&spin.as_nanos().to_string()))?;
    let (tx, rx) = l.accept_timeout(Duration::from_secs(30))?.split();
    Ok((peer, tx, rx))
}

/// Round trips of `size` bytes through the channel, waiters spinning for
/// `spin` before they sleep.
pub(super) fn rtt_channel(ctx: &Ctx, spin: Duration, size: usize) -> Result<Vec<u64>> {
    let (peer, mut tx, mut rx) = channel_to(ctx, "chan-echo", spin, size)?;
    let msg = vec![0x5a; size];
    let mut buf = Vec::with_capacity(size);
    let ns = sample(ctx.budget, || {
        tx.send(&msg)?;
        rx.recv_into(&mut buf)?.context("the echo process left")?;
        Ok(())
    })?;
    drop((tx, rx));
    peer.finish()?;
    Ok(ns)
}

/// How long the timeouts of the `…-timeouts` rows are: set, never reached.
pub(super) const TIMEOUT: Duration = Duration::from_secs(10);

/// Round trips of `size` bytes through a message-mode pipe; with
/// `timeouts`, both ends have read and write timeouts set (which a robust
/// program does), to show what they cost when nothing times out.
pub(super) fn rtt_pipe(ctx: &Ctx, size: usize, timeouts: bool) -> Result<Vec<u64>> {
    let name = unique("pipe");
    let l = ListenerOptions::new()
        .mode(PipeMode::Message)
        .create(&name)?;
    let extra = timeouts.then_some("timeouts");
    let peer = PeerProc::spawn(ctx, "pipe-echo", &name, size, extra)?;
    let c = l.accept_timeout(Duration::from_secs(30))?;
    if timeouts {
        c.set_read_timeout(Some(TIMEOUT))?;
        c.set_write_timeout(Some(TIMEOUT))?;
    }
    let msg = vec![0x5a; size];
    let mut buf = Vec::with_capacity(size);
    let ns = sample(ctx.budget, || {
        c.send(&msg)?;
        c.recv_into(&mut buf)?.context("the echo process left")?;
        Ok(())
    })?;
    drop(c);
    peer.finish()?;
    Ok(ns)
}

/// `pipe` one way: message-mode sends to a sink process that takes every
/// message and acknowledges the count at the end (the sync row `pipe-async`
/// is compared with).
pub(super) fn tput_pipe(ctx: &Ctx, size: usize) -> Result<Measurement> {
    let name = unique("pipe");
    let l = ListenerOptions::new()
        .mode(PipeMode::Message)
        .create(&name)?;
    let peer = PeerProc::spawn(ctx, "pipe-sink", &name, size, None)?;
    let c = l.accept_timeout(Duration::from_secs(30))?;
    let msg = vec![0x5a; size];
    let end: Vec<u8> = if size == 0 { vec![0] } else { Vec::new() };
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < ctx.budget || n < 16 {
        for _ in 0..16 {
            c.send(&msg)?;
        }
        n += 16;
    }
    c.send(&end)?;
    let ack = c.recv()?.context("the sink process left")?;
    let took = start.elapsed();
    let counted = u64::from_le_bytes(ack.get(..8).context("bad ack")?.try_into()?);
    if counted != n {
        bail!("the sink counted {counted} messages, {n} were sent");
    }
    drop(c);
    peer.finish()?;
    Ok(Measurement::throughput("pipe", size, n, took))
}

/// How the one-way channel rows move their messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Way {
    /// `send` copies each message in, the sink's `recv_into` copies it out.
    Copy,
    /// The same, with read and write timeouts set on both ends.
    CopyTimeouts,
    /// `send_with` writes each message in place (every byte), the sink's
    /// `recv_with` reads it in place (every byte).
    ZeroCopy,
}

/// One way through the channel to a sink that takes every message and
/// acknowledges the count at the end.
pub(super) fn tput_channel(
    ctx: &Ctx,
    transport: &'static str,
    spin: Duration,
    size: usize,
    way: Way,
) -> Result<Measurement> {
    let role = match way {
        Way::Copy => "chan-sink",
        Way::CopyTimeouts => "chan-sink-timeouts",
        Way::ZeroCopy => "chan-sink-in-place",
    };
    let (peer, mut c, mut back) = channel_to(ctx, role, spin, size)?;
    if way == Way::CopyTimeouts {
        c.set_write_timeout(Some(TIMEOUT))?;
    }
    let msg = vec![0x5a; size];
    let end: Vec<u8> = if size == 0 { vec![0] } else { Vec::new() };
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < ctx.budget || n < 16 {
        for _ in 0..16 {
            if way == Way::ZeroCopy {
                c.send_with(size, |buf| buf.fill(n as u8))?;
            } else {
                c.send(&msg)?;
            }
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
    Ok(Measurement::throughput(transport, size, n, took))
}
