//! `nipc shm …`

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use named_ipc::shm::{self, OwnerState, Protection, SegmentOptions, ShmSegment};

use crate::cli::{HoldArg, ShmCommand};
use crate::cmd::pipe::{install_shutdown_handler, seconds, SHUTDOWN};
use crate::out;

pub fn run(cmd: ShmCommand) -> Result<()> {
    match cmd {
        ShmCommand::Create { name, size, hold } => {
            let hold = seconds(hold.hold, "--hold")?;
            let seg = SegmentOptions::new()
                .remove_on_drop(false)
                .create(&name, size)?;
            eprintln!(
                "nipc: created shared memory {name:?} ({}), {} bytes",
                os_name(&seg),
                seg.len()
            );
            hold_for(&seg, hold)
        }
        ShmCommand::Write {
            name,
            text,
            offset,
            size,
            hold,
        } => write(&name, &text, offset, size, &hold),
        ShmCommand::Read {
            name,
            offset,
            len,
            hex,
        } => read(&name, offset, len, hex),
        ShmCommand::Rm { name } => {
            ShmSegment::remove(&name)?;
            Ok(())
        }
        ShmCommand::Ls => ls(),
        ShmCommand::Gc => {
            for name in shm::gc().context("cannot collect shared memory")? {
                out::line(&format!("removed {name}"))?;
            }
            Ok(())
        }
    }
}

fn os_name(seg: &ShmSegment) -> &str {
    seg.os_name().unwrap_or("")
}

/// Keeps the segment mapped for `hold` (Ctrl-C/SIGTERM end it early).
fn hold_for(seg: &ShmSegment, hold: Duration) -> Result<()> {
    if hold.is_zero() {
        return Ok(());
    }
    install_shutdown_handler();
    eprintln!("nipc: holding {} for {hold:?}", os_name(seg));
    let end = Instant::now() + hold;
    while !SHUTDOWN.load(Ordering::SeqCst) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    Ok(())
}

fn write(name: &str, text: &str, offset: u64, size: u64, hold: &HoldArg) -> Result<()> {
    let hold = seconds(hold.hold, "--hold")?;
    let seg = SegmentOptions::new()
        .remove_on_drop(false)
        .open_or_create(name, size)?;
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    seg.write_at(offset, &bytes)
        .with_context(|| format!("cannot write to shared memory {name:?}"))?;
    hold_for(&seg, hold)
}

fn read(name: &str, offset: u64, len: Option<u64>, hex: bool) -> Result<()> {
    let seg = ShmSegment::open(name, Protection::ReadOnly)?;
    let ctx = || format!("cannot read shared memory {name:?}");
    let size = seg.len() as u64;
    if offset > size {
        anyhow::bail!("offset {offset} is beyond the end of shared memory {name:?} ({size} bytes)");
    }
    let mut data = Vec::new();
    match len {
        Some(n) => {
            data.resize(usize::try_from(n).context("--len is too large")?, 0);
            seg.read_at(offset, &mut data).with_context(ctx)?;
        }
        None => {
            // Up to the first NUL, in chunks, so a huge segment is not copied
            // whole just to find a short string.
            let mut at = offset;
            let mut chunk = vec![0u8; 64 * 1024];
            while at < size {
                let n = chunk.len().min((size - at) as usize);
                seg.read_at(at, &mut chunk[..n]).with_context(ctx)?;
                if let Some(nul) = chunk[..n].iter().position(|&b| b == 0) {
                    data.extend_from_slice(&chunk[..nul]);
                    break;
                }
                data.extend_from_slice(&chunk[..n]);
                at += n as u64;
            }
        }
    }
    out::message(&data, hex)
}

fn ls() -> Result<()> {
    for e in shm::list().context("cannot list shared memory")? {
        let size = e.size.map_or_else(|| "-".to_owned(), |s| s.to_string());
        let pid = e
            .owner_pid
            .map_or_else(|| "-".to_owned(), |p| p.to_string());
        let owner = match e.owner {
            OwnerState::Alive => "alive",
            OwnerState::Dead => "dead",
            OwnerState::Kept => "kept",
            _ => "unknown",
        };
        let kind = e.kind.as_deref().unwrap_or("-");
        out::line(&format!("{}\t{size}\t{pid}\t{owner}\t{kind}", e.os_name))?;
    }
    Ok(())
}
