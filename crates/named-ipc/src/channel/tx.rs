//! The sending direction of a channel end.

use std::io;
use std::sync::Arc;

use super::flow;
use super::raw::{InPlaceMut, Raw};
use super::ring::Producer;
use super::wait::Inner;
use crate::proto::send::SendState;
use crate::sys::Wait;

/// The sending direction: the ring's producer and the shared send state.
pub(crate) struct TxEnd {
    pub(crate) p: Producer<'static, Raw>,
    pub(crate) state: SendState,
    pub(crate) inner: Arc<Inner>,
}

impl Drop for TxEnd {
    fn drop(&mut self) {
        flow::close_producer(&self.p, &*self.inner);
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

    /// Sends one message (see [`flow::send`]).
    #[inline]
    pub(crate) fn send(&mut self, msg: &[u8], wait: Wait) -> io::Result<()> {
        self.inner.check_len(msg.len())?;
        let TxEnd { p, state, inner } = self;
        flow::send(p, state, &**inner, msg, wait)
    }

    /// Writes a `len`-byte message in place: reserve one record, let `fill`
    /// write it, commit.
    pub(crate) fn send_with<R>(
        &mut self,
        len: usize,
        wait: Wait,
        fill: impl FnOnce(&mut InPlaceMut<'_>) -> R,
    ) -> io::Result<R> {
        self.check_in_place(len)?;
        // Room now is the common case: the wait is not touched on it.
        let r = match flow::reserve_now(&mut self.p, len) {
            Some(r) => r,
            None => flow::reserve_waiting(&mut self.p, &*self.inner, len, &mut { wait })?,
        };
        let out = fill(&mut self.p.memory().view_mut(r.offset, len));
        flow::commit(&mut self.p, &*self.inner, r);
        Ok(out)
    }

    /// What `send_with` (and an async reservation) checks first: the sending
    /// side is usable, and `len` fits the peer and a record.
    #[inline]
    pub(crate) fn check_in_place(&self, len: usize) -> io::Result<()> {
        self.state.check()?;
        self.inner.check_len(len)?;
        if len > self.p.max_record() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "send_with can write at most {} bytes in place on channel {:?} (the ring size \
                     minus 16: the record's header and the next one's); ask for a larger ring \
                     (ChannelOptions::capacity) or use send",
                    self.p.max_record(),
                    self.inner.name
                ),
            ));
        }
        Ok(())
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
