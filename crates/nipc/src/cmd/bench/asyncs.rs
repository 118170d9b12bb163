//! The async rows (`named_ipc::tokio`), both sides: `pipe-async` (the
//! message-mode pipe) and `shm-async` (the channel, split, spinning as
//! `shm-spin` does), each measured against its sync row of the same
//! repetition (`report::baseline`). Both processes run the async end on a
//! `current_thread` tokio runtime; the measuring loop is async too (one
//! `block_on` per measurement, not per message), so the rows show what the
//! async ends cost, not what entering a runtime costs.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use named_ipc::tokio::{
    ChannelOptions, ConnectOptions, ListenerOptions, PipeListener, PipeMode, PipeStream,
    ShmListener, ShmReceiver, ShmSender, ShmStream,
};

use super::report::Measurement;
use super::transports::capacity_for;
use super::{unique, Ctx, PeerProc};
use crate::cli::BenchPeerArgs;

/// A `current_thread` runtime with I/O and timers, for one measurement or
/// one peer.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")
}

/// `super::sample` for an async round trip: about `budget` of timed round
/// trips after a warm-up of a tenth of it.
async fn sample(budget: Duration, mut one: impl AsyncFnMut() -> Result<()>) -> Result<Vec<u64>> {
    let warm = Instant::now();
    while warm.elapsed() < budget / 10 {
        one().await?;
    }
    let mut ns = Vec::with_capacity(100_000);
    let start = Instant::now();
    while (start.elapsed() < budget || ns.len() < 50) && ns.len() < 2_000_000 {
        let t = Instant::now();
        one().await?;
        ns.push(t.elapsed().as_nanos() as u64);
    }
    Ok(ns)
}

/// The handshake's deadline, as the sync rows have it.
const ACCEPT: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, f: impl Future<Output = std::io::Result<T>>) -> Result<T> {
    tokio::time::timeout(ACCEPT, f)
        .await
        .with_context(|| format!("the benchmark's second process did not {what} in 30 s"))?
        .map_err(Into::into)
}

/// A message-mode async pipe to a new `role` process (it connects; we
/// accept).
async fn pipe_to(ctx: &Ctx, role: &str, size: usize) -> Result<(PeerProc, PipeStream)> {
    let name = unique(role);
    let l = PipeListener::bind_with(&name, ListenerOptions::new().mode(PipeMode::Message))?;
    let peer = PeerProc::spawn(ctx, role, &name, size, None)?;
    let c = within("connect", l.accept()).await?;
    Ok((peer, c))
}

/// An async channel to a new `role` process, split; both ends spin for
/// `spin` before they sleep.
async fn channel_to(
    ctx: &Ctx,
    role: &str,
    spin: Duration,
    size: usize,
) -> Result<(PeerProc, ShmSender, ShmReceiver)> {
    let name = unique(role);
    let l = ShmListener::bind_with(
        &name,
        ChannelOptions::new()
            .capacity(capacity_for(size))
            .spin(spin),
    )?;
    let peer = PeerProc::spawn(ctx, role, &name, size, Some(&spin.as_nanos().to_string()))?;
    let (tx, rx) = within("connect", l.accept()).await?.into_split();
    Ok((peer, tx, rx))
}

/// `pipe-async` round trips: `send` then `recv_into` on an async
/// message-mode pipe to an async echo process.
pub(super) fn rtt_pipe(ctx: &Ctx, size: usize) -> Result<Vec<u64>> {
    runtime()?.block_on(async {
        let (peer, c) = pipe_to(ctx, "pipe-echo-async", size).await?;
        let msg = vec![0x5a; size];
        let mut buf = Vec::with_capacity(size);
        let ns = sample(ctx.budget, async || {
            c.send(&msg).await?;
            c.recv_into(&mut buf)
                .await?
                .context("the echo process left")?;
            Ok(())
        })
        .await?;
        drop(c);
        peer.finish()?;
        Ok(ns)
    })
}

/// `shm-async` round trips: the channel's async halves to an async echo
/// process, both spinning for `spin` before they sleep.
pub(super) fn rtt_channel(ctx: &Ctx, spin: Duration, size: usize) -> Result<Vec<u64>> {
    runtime()?.block_on(async {
        let (peer, mut tx, mut rx) = channel_to(ctx, "chan-echo-async", spin, size).await?;
        let msg = vec![0x5a; size];
        let mut buf = Vec::with_capacity(size);
        let ns = sample(ctx.budget, async || {
            tx.send(&msg).await?;
            rx.recv_into(&mut buf)
                .await?
                .context("the echo process left")?;
            Ok(())
        })
        .await?;
        drop((tx, rx));
        peer.finish()?;
        Ok(ns)
    })
}

/// One way: sends `size`-byte messages for the budget (16 at a time), then a
/// message of another size that ends the run; the sink acknowledges with
/// its count. Returns the count and the time to the acknowledgement.
async fn one_way(
    budget: Duration,
    size: usize,
    mut send: impl AsyncFnMut(&[u8]) -> std::io::Result<()>,
    ack: impl Future<Output = std::io::Result<Option<Vec<u8>>>>,
) -> Result<(u64, Duration)> {
    let msg = vec![0x5a; size];
    let end: Vec<u8> = if size == 0 { vec![0] } else { Vec::new() };
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget || n < 16 {
        for _ in 0..16 {
            send(&msg).await?;
        }
        n += 16;
    }
    send(&end).await?;
    let ack = ack.await?.context("the sink process left")?;
    let took = start.elapsed();
    let counted = u64::from_le_bytes(ack.get(..8).context("bad ack")?.try_into()?);
    if counted != n {
        bail!("the sink counted {counted} messages, {n} were sent");
    }
    Ok((n, took))
}

/// `pipe-async` one way, to an async sink process.
pub(super) fn tput_pipe(ctx: &Ctx, size: usize) -> Result<Measurement> {
    runtime()?.block_on(async {
        let (peer, c) = pipe_to(ctx, "pipe-sink-async", size).await?;
        let (n, took) = {
            let (rd, wr) = c.into_split();
            one_way(ctx.budget, size, async |m| wr.send(m).await, rd.recv()).await?
        };
        peer.finish()?;
        Ok(Measurement::throughput("pipe-async", size, n, took))
    })
}

/// `shm-async` one way, to an async sink process, both ends spinning.
pub(super) fn tput_channel(ctx: &Ctx, spin: Duration, size: usize) -> Result<Measurement> {
    runtime()?.block_on(async {
        let (peer, mut tx, mut rx) = channel_to(ctx, "chan-sink-async", spin, size).await?;
        let (n, took) = one_way(ctx.budget, size, async |m| tx.send(m).await, rx.recv()).await?;
        drop((tx, rx));
        peer.finish()?;
        Ok(Measurement::throughput("shm-async", size, n, took))
    })
}

/// The peer roles of the async rows; `false` if `a.role` is none of them.
pub(super) fn peer(a: &BenchPeerArgs) -> Result<bool> {
    const ROLES: [&str; 4] = [
        "pipe-echo-async",
        "pipe-sink-async",
        "chan-echo-async",
        "chan-sink-async",
    ];
    if !ROLES.contains(&a.role.as_str()) {
        return Ok(false);
    }
    let size = a.size;
    let rt = runtime()?;
    match a.role.as_str() {
        "pipe-echo-async" => rt.block_on(async {
            let c = connect_pipe(a).await?;
            let mut buf = Vec::with_capacity(size);
            while c.recv_into(&mut buf).await?.is_some() {
                c.send(&buf).await?;
            }
            Ok::<_, anyhow::Error>(())
        })?,
        "pipe-sink-async" => rt.block_on(async {
            let c = connect_pipe(a).await?;
            let mut buf = Vec::with_capacity(size);
            let mut n = 0u64;
            while c.recv_into(&mut buf).await?.context("the sender left")? == size {
                n += 1;
            }
            c.send(&n.to_le_bytes()).await?;
            // Wait for the measuring side to close.
            while c.recv().await?.is_some() {}
            Ok::<_, anyhow::Error>(())
        })?,
        "chan-echo-async" => rt.block_on(async {
            let (mut tx, mut rx) = connect_channel(a).await?.into_split();
            let mut buf = Vec::with_capacity(size);
            while rx.recv_into(&mut buf).await?.is_some() {
                tx.send(&buf).await?;
            }
            Ok::<_, anyhow::Error>(())
        })?,
        "chan-sink-async" => rt.block_on(async {
            let (mut tx, mut rx) = connect_channel(a).await?.into_split();
            let mut buf = Vec::with_capacity(size);
            let mut n = 0u64;
            while rx.recv_into(&mut buf).await?.context("the sender left")? == size {
                n += 1;
            }
            tx.send(&n.to_le_bytes()).await?;
            while rx.recv().await?.is_some() {}
            Ok::<_, anyhow::Error>(())
        })?,
        other => bail!("unknown async bench role {other:?}"),
    }
    Ok(true)
}

async fn connect_pipe(a: &BenchPeerArgs) -> Result<PipeStream> {
    Ok(PipeStream::connect_with(
        &a.target,
        ConnectOptions::new()
            .mode(PipeMode::Message)
            .timeout(ACCEPT),
    )
    .await?)
}

/// The peer's end of a `channel_to` channel (`extra` is the spin in ns).
async fn connect_channel(a: &BenchPeerArgs) -> Result<ShmStream> {
    let spin: u64 = a.extra.as_deref().unwrap_or("0").parse()?;
    Ok(ShmStream::connect_with(
        &a.target,
        ChannelOptions::new()
            .spin(Duration::from_nanos(spin))
            .timeout(ACCEPT),
    )
    .await?)
}
