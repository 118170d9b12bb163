//! What both directions of a channel end share, and the one way either of
//! them waits: spin for a while, then sleep on a bell, watching the deadline
//! and the peer's liveness.

use std::io;
use std::time::{Duration, Instant};

use super::atomic;
use super::ring::{prepare_sleep, Bell};
use crate::pipe::PipeStream;
use crate::sys::{self, Wait};

/// How often a sleeper looks whether its peer is still alive.
pub(crate) const PEER_CHECK: Duration = Duration::from_millis(50);

/// Which bells a side sleeps on and rings (indices into the OS wake-up
/// objects: Windows events; on Unix the futex words themselves).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bells {
    /// The bell our receiver sleeps on (data of our rx ring).
    pub(crate) rx_data: usize,
    /// The bell we ring after freeing rx space.
    pub(crate) rx_space: usize,
    /// The bell we ring after publishing tx data.
    pub(crate) tx_data: usize,
    /// The bell our sender sleeps on (space of our tx ring).
    pub(crate) tx_space: usize,
}

impl Bells {
    /// The server receives on ring 0 and sends on ring 1.
    pub(crate) const SERVER: Bells = Bells {
        rx_data: 0,
        rx_space: 1,
        tx_data: 2,
        tx_space: 3,
    };
    /// The client sends on ring 0 and receives on ring 1.
    pub(crate) const CLIENT: Bells = Bells {
        rx_data: 2,
        rx_space: 3,
        tx_data: 0,
        tx_space: 1,
    };
}

/// What both directions of one channel end share. Dropped last: the rings
/// point into `_map`, and `pipe` is how the peer notices us leave.
pub(crate) struct Inner {
    pub(crate) signals: sys::channel::Signals,
    pub(crate) bells: Bells,
    pub(crate) spin: Duration,
    /// The most the peer accepts.
    pub(crate) peer_max: u32,
    pub(crate) max_message: u32,
    pub(crate) name: String,
    pub(crate) pipe: PipeStream,
    pub(crate) _map: sys::shm::Mapping,
}

pub(crate) fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

pub(crate) fn peer_gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "peer gone: the other process ended without closing the channel",
    )
}

impl Inner {
    /// Runs `attempt` until it yields, spinning first and then sleeping on
    /// `bell`, watching the peer and the deadline.
    pub(crate) fn wait_on<T>(
        &self,
        wait: Wait,
        bell: &Bell,
        bell_index: usize,
        mut attempt: impl FnMut() -> io::Result<Option<T>>,
    ) -> io::Result<T> {
        if let Some(v) = attempt()? {
            return Ok(v);
        }
        if wait == Wait::Never {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if !self.spin.is_zero() {
            let start = Instant::now();
            let mut i = 0u32;
            loop {
                atomic::spin_hint();
                if let Some(v) = attempt()? {
                    return Ok(v);
                }
                i = i.wrapping_add(1);
                if i.is_multiple_of(128) {
                    let spun = start.elapsed();
                    if spun >= self.spin || wait.remaining().is_some_and(|l| l.is_zero()) {
                        break;
                    }
                    if spun >= PEER_CHECK && self.signals.peer_gone() {
                        return Err(peer_gone());
                    }
                }
            }
        }
        loop {
            let mut found = None;
            let seen = prepare_sleep(bell, || match attempt() {
                Ok(None) => false,
                other => {
                    found = Some(other);
                    true
                }
            });
            if let Some(r) = found {
                if let Some(v) = r? {
                    return Ok(v);
                }
            }
            let Some(seen) = seen else { continue };
            let slice = match wait.remaining() {
                None => PEER_CHECK,
                Some(left) => left.min(PEER_CHECK),
            };
            if slice.is_zero() {
                bell.done();
                return Err(wait.expired_error());
            }
            self.signals.wait(bell_index, &bell.seq, seen, slice);
            bell.done();
            if let Some(v) = attempt()? {
                return Ok(v);
            }
            if self.signals.peer_gone() {
                // One last look: what it published before dying is still ours.
                if let Some(v) = attempt()? {
                    return Ok(v);
                }
                return Err(peer_gone());
            }
        }
    }

    /// Wakes whoever sleeps on `bell` (the caller saw its waiting flag).
    pub(crate) fn notify(&self, bell: &Bell, index: usize) {
        bell.bump();
        self.signals.ring(index, &bell.seq);
    }

    /// Refuses a message larger than the peer accepts.
    pub(crate) fn check_len(&self, len: usize) -> io::Result<()> {
        if len > self.peer_max as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {len}-byte message is larger than the peer accepts ({} bytes) on channel {:?}",
                    self.peer_max, self.name
                ),
            ));
        }
        Ok(())
    }
}
