//! The receiving direction of a channel end.

use std::io;
use std::sync::Arc;

use super::flow;
use super::raw::{InPlace, Raw};
use super::ring::Consumer;
use super::wait::Inner;
use crate::pipe::framing::Received;
use crate::proto::recv::RecvState;
use crate::sys::Wait;

/// The receiving direction: the ring's consumer and the shared receive state.
pub(crate) struct RxEnd {
    pub(crate) c: Consumer<'static, Raw>,
    pub(crate) st: RecvState,
    /// Where a message of several records is assembled for `recv_with`.
    pub(crate) scratch: Vec<u8>,
    pub(crate) inner: Arc<Inner>,
}

impl Drop for RxEnd {
    fn drop(&mut self) {
        flow::close_consumer(&self.c, &*self.inner);
    }
}

impl RxEnd {
    pub(crate) fn new(c: Consumer<'static, Raw>, inner: Arc<Inner>) -> RxEnd {
        RxEnd {
            c,
            st: RecvState::new(format!("channel {:?}", inner.name), inner.max_message),
            scratch: Vec::new(),
            inner,
        }
    }

    pub(crate) fn recv_vec(&mut self, wait: Wait) -> io::Result<Option<Vec<u8>>> {
        let mut v = Vec::new();
        Ok(self.recv(&mut v, wait)?.map(|_| v))
    }

    /// Receives one whole message into `out` (replacing its contents).
    /// `Ok(None)`: the peer closed the channel after its last message.
    #[inline]
    pub(crate) fn recv(&mut self, out: &mut Vec<u8>, wait: Wait) -> io::Result<Option<usize>> {
        flow::recv(&mut self.c, &mut self.st, &*self.inner, out, wait)
    }

    /// Reads as much of the current (or next) message as fits into `out`.
    pub(crate) fn recv_slice(
        &mut self,
        out: &mut [u8],
        wait: Wait,
    ) -> io::Result<Option<Received>> {
        flow::recv_slice(&mut self.c, &mut self.st, &*self.inner, out, wait)
    }

    /// Receives one message and hands `f` a view of it: in place when it is
    /// one record, assembled in a private buffer otherwise.
    pub(crate) fn recv_with<R>(
        &mut self,
        wait: Wait,
        f: impl FnOnce(&InPlace<'_>) -> R,
    ) -> io::Result<Option<R>> {
        if let Some(r) = flow::whole_record(&mut self.c, &self.st) {
            let out = f(&self.c.memory().view(r.offset, r.len));
            flow::release(&mut self.c, &*self.inner, r);
            flow::settle(&mut self.c, &*self.inner);
            return Ok(Some(out));
        }
        self.st.check()?;
        // One wait for the whole receive: anchored by the first record's
        // wait, it bounds the assembly of the rest too.
        let mut wait = wait;
        if !self.st.is_mid() {
            let RxEnd { c, st, inner, .. } = self;
            let inner = &**inner;
            let ctl = c.control();
            let first = flow::wait_on(inner, &mut wait, &ctl.data.0, inner.bells.rx_data, || {
                flow::next_record(c, st, inner)
            })?;
            let Some(r) = first else {
                return st.end_of_stream(Some(0)).map(|_| None);
            };
            if !r.more {
                st.start(Some(r.len as u64))?;
                let out = f(&c.memory().view(r.offset, r.len));
                st.finish();
                flow::release(c, inner, r);
                flow::settle(c, inner);
                return Ok(Some(out));
            }
            // Several records: assemble them (the first is still unconsumed).
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let got = self.recv(&mut scratch, wait);
        let out = got.map(|m| m.map(|_| f(&InPlace::of(&scratch))));
        self.scratch = scratch;
        out
    }
}
