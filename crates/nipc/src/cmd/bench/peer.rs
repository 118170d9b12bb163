//! The benchmark's second process: `nipc __bench-peer [--pin CPU] ROLE TARGET
//! SIZE [EXTRA]`, the echo or sink side of every measured row.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use named_ipc::bench_support;
use named_ipc::channel::{ChannelOptions, ShmReceiver, ShmSender};
use named_ipc::pipe::{ConnectOptions, PipeMode};
use named_ipc::shm::{Protection, ShmSegment};
use named_ipc::sync::NamedEvent;

use super::raw::{signal, wait_for, PingPong, RawRing, RawWait, Stall, STOP};
use super::transports::TIMEOUT;
use crate::cli::BenchPeerArgs;

/// The peer's end of a `channel_to` channel (`extra` is the spin in ns), split.
fn connect_channel(a: &BenchPeerArgs) -> Result<(ShmSender, ShmReceiver)> {
    let spin: u64 = a.extra.as_deref().unwrap_or("0").parse()?;
    Ok(ChannelOptions::new()
        .spin(Duration::from_nanos(spin))
        .timeout(Duration::from_secs(30))
        .connect(&a.target)?
        .split())
}

/// Runs one peer role until the measuring process says stop or leaves.
pub fn peer(a: BenchPeerArgs) -> Result<()> {
    if let Some(cpu) = a.pin {
        bench_support::set_affinity(&[cpu])
            .with_context(|| format!("cannot pin the benchmark's second process to CPU {cpu}"))?;
    }
    if super::asyncs::peer(&a)? {
        return Ok(());
    }
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
            if a.extra.as_deref() == Some("timeouts") {
                c.set_read_timeout(Some(TIMEOUT))?;
                c.set_write_timeout(Some(TIMEOUT))?;
            }
            let mut buf = Vec::with_capacity(size);
            while c.recv_into(&mut buf)?.is_some() {
                c.send(&buf)?;
            }
        }
        "pipe-sink" => {
            let c = ConnectOptions::new()
                .mode(PipeMode::Message)
                .timeout(Duration::from_secs(30))
                .connect(&a.target)?;
            let mut buf = Vec::with_capacity(size);
            let mut n = 0u64;
            while c.recv_into(&mut buf)?.context("the sender left")? == size {
                n += 1;
            }
            c.send(&n.to_le_bytes())?;
            // Wait for the measuring side to close.
            while c.recv()?.is_some() {}
        }
        "chan-sink" | "chan-sink-timeouts" => {
            let (mut tx, mut rx) = connect_channel(&a)?;
            if a.role == "chan-sink-timeouts" {
                rx.set_read_timeout(Some(TIMEOUT))?;
            }
            let mut buf = Vec::with_capacity(size);
            let mut n = 0u64;
            while rx.recv_into(&mut buf)?.context("the sender left")? == size {
                n += 1;
            }
            tx.send(&n.to_le_bytes())?;
            // Wait for the measuring side to close.
            while rx.recv()?.is_some() {}
        }
        "chan-sink-in-place" => {
            // Reads every byte in place, 4 KiB at a time (what a parser of
            // the message would touch), never copying the message out whole.
            let (mut tx, mut rx) = connect_channel(&a)?;
            let mut chunk = [0u8; 4096];
            let mut n = 0u64;
            let mut sum = 0u64;
            loop {
                let len = rx
                    .recv_with(|m| {
                        let mut at = 0;
                        while at < m.len() {
                            let k = (m.len() - at).min(chunk.len());
                            m.read_at(at, &mut chunk[..k]);
                            sum = sum.wrapping_add(u64::from(chunk[k - 1]));
                            at += k;
                        }
                        m.len()
                    })?
                    .context("the sender left")?;
                if len != size {
                    break;
                }
                n += 1;
            }
            std::hint::black_box(sum);
            tx.send(&n.to_le_bytes())?;
            // Wait for the measuring side to close.
            while rx.recv()?.is_some() {}
        }
        "raw-spin" | "raw-futex" => raw_echo(&a)?,
        "raw-ring" => raw_sink(&a)?,
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

/// The echo side of `raw-spin` / `raw-futex` (`extra`: the event pair's base
/// name where there is no futex).
fn raw_echo(a: &BenchPeerArgs) -> Result<()> {
    let how = if a.role == "raw-spin" {
        RawWait::Spin
    } else {
        RawWait::Kernel
    };
    let pp = PingPong::new(a.size);
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
    let mut buf = vec![0u8; a.size];
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
            return Ok(());
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

/// The consuming side of `raw-ring`: copies every slot out.
fn raw_sink(a: &BenchPeerArgs) -> Result<()> {
    let r = RawRing::new(a.size);
    let seg = ShmSegment::from_child_token(&a.target, Protection::ReadWrite)?;
    let (head, tail) = (seg.atomic_u64(r.head)?, seg.atomic_u64(r.tail)?);
    let (stop, done) = (seg.atomic_u64(r.stop)?, seg.atomic_u64(r.done)?);
    let mut buf = vec![0u8; a.size];
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
    Ok(())
}
