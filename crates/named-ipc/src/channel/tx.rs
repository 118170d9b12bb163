//! The sending direction of a channel end.

use std::io;
use std::sync::Arc;

use super::flow::{self, invalid};
use super::raw::{InPlaceMut, Raw};
use super::ring::Producer;
use super::wait::Inner;
use crate::proto::send::{Outgoing, SendState, Sink};
use crate::sys::Wait;

/// The sending direction: the ring's producer and the shared send state.
pub(crate) struct TxEnd {
    pub(crate) p: Producer<'static, Raw>,
    state: SendState,
    pub(crate) inner: Arc<Inner>,
}

impl Drop for TxEnd {
    fn drop(&mut self) {
        flow::close_producer(&self.p, &*self.inner);
    }
}

/// The ring as a [`Sink`]: each write pushes one record (a piece of at most
/// a record's payload), waiting for room per `wait`.
struct RingSink<'a> {
    p: &'a mut Producer<'static, Raw>,
    inner: &'a Inner,
}

impl Sink for RingSink<'_> {
    #[inline]
    fn write(&mut self, out: &Outgoing<'_>, wait: &mut Wait) -> io::Result<usize> {
        flow::push_next(self.p, self.inner, out, wait)
    }

    fn abort(&mut self) {
        // The consumer sees the ring closed inside the message: an error
        // there, never the cut message as a whole one.
        flow::close_producer(self.p, self.inner);
    }
}

impl TxEnd {
    pub(crate) fn new(p: Producer<'static, Raw>, inner: Arc<Inner>) -> TxEnd {
        TxEnd {
            p,
            state: SendState::new(format!("channel {:?}", inner.name)),
            inner,
        }
    }

    /// Sends one message: all of it (`Ok`), none of it (a wait ran out before
    /// its first record), or — if it stays stuck part-way past the grace
    /// period — a poisoned sending side (see [`crate::proto::send`]).
    #[inline]
    pub(crate) fn send(&mut self, msg: &[u8], wait: Wait) -> io::Result<()> {
        if self.state.is_ready() && msg.len() <= self.inner.peer_max as usize {
            if let Some(r) = flow::send_ready(&mut self.p, &*self.inner, msg) {
                return r;
            }
        }
        self.state.check()?;
        self.inner.check_len(msg.len())?;
        if wait == Wait::Never {
            // Without waiting, only a message that fits now goes: then every
            // record is pushed without waiting, so nothing is ever cut.
            let lens = flow::record_lens(msg.len(), self.p.chunk());
            if !self.p.fits(lens).map_err(|c| invalid(c.0))? {
                if self.p.peer_closed() {
                    return Err(flow::peer_closed());
                }
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        let TxEnd { p, state, inner } = self;
        state.send(&mut RingSink { p, inner }, &mut Outgoing::raw(msg), wait)
    }

    /// Writes a `len`-byte message in place: reserve one record, let `fill`
    /// write it, commit.
    pub(crate) fn send_with<R>(
        &mut self,
        len: usize,
        wait: Wait,
        fill: impl FnOnce(&mut InPlaceMut<'_>) -> R,
    ) -> io::Result<R> {
        self.state.check()?;
        self.inner.check_len(len)?;
        if len > self.p.max_record() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "send_with can write at most {} bytes in place on channel {:?} (the ring size \
                     minus 8); ask for a larger ring (ChannelOptions::capacity) or use send",
                    self.p.max_record(),
                    self.inner.name
                ),
            ));
        }
        let r = flow::reserve(&mut self.p, &*self.inner, len, &mut { wait })?;
        let out = fill(&mut self.p.memory().view_mut(r.offset, len));
        flow::commit(&mut self.p, &*self.inner, r);
        Ok(out)
    }

    /// Everything a successful send returned `Ok` for is already committed;
    /// this only reports a poisoned sending side.
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.state.check()
    }

    pub(crate) fn max_in_place(&self) -> usize {
        self.p.max_record()
    }
}
