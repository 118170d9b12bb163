//! What both directions of a channel end share, and how it waits and wakes
//! through the OS (the wait loop itself is in [`super::flow`]).

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use super::flow::{Bells, Link};
use crate::pipe::PipeStream;
use crate::sys;

/// What both directions of one channel end share. Dropped last: the rings
/// point into `_map`, and `pipe` is how the peer notices us leave.
pub(crate) struct Inner {
    pub(crate) os: sys::channel::OsLink,
    pub(crate) bells: Bells,
    pub(crate) spin: Duration,
    /// The most the peer accepts.
    pub(crate) peer_max: u32,
    pub(crate) max_message: u32,
    pub(crate) name: String,
    pub(crate) pipe: PipeStream,
    pub(crate) _map: sys::shm::Mapping,
}

impl Link for Inner {
    fn sleep(&self, bell: usize, word: &AtomicU32, seen: u32, timeout: Duration) {
        self.os.sleep(bell, word, seen, timeout);
    }

    fn wake(&self, bell: usize, word: &AtomicU32) {
        self.os.wake(bell, word);
    }

    fn peer_gone(&self) -> bool {
        self.os.peer_gone()
    }

    fn spin(&self) -> Duration {
        self.spin
    }

    fn bells(&self) -> Bells {
        self.bells
    }
}

impl Inner {
    /// Refuses a message larger than the peer accepts.
    #[inline]
    pub(crate) fn check_len(&self, len: usize) -> std::io::Result<()> {
        if len > self.peer_max as usize {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "a {len}-byte message is larger than the peer accepts ({} bytes) on channel {:?}",
                    self.peer_max, self.name
                ),
            ));
        }
        Ok(())
    }
}
