//! The receiving direction of a channel end.

use std::io;
use std::sync::Arc;

use super::raw::{InPlace, Raw};
use super::ring::{Consumer, Record};
use super::wait::Inner;
use crate::proto::recv::RecvState;
use crate::sys::Wait;

/// A receive loop looks at its deadline at least every this many records, so
/// a producer streaming tiny records cannot keep it past its timeout.
const RECORDS_PER_DEADLINE_CHECK: u32 = 64;

/// The receiving direction: the ring's consumer and the shared receive state.
pub(crate) struct RxEnd {
    c: Consumer<'static, Raw>,
    st: RecvState,
    /// Where a message of several records is assembled for `recv_with`.
    scratch: Vec<u8>,
    pub(crate) inner: Arc<Inner>,
}

impl Drop for RxEnd {
    fn drop(&mut self) {
        if self.c.close() {
            self.inner
                .notify(&self.c.control().space.0, self.inner.bells.rx_space);
        }
    }
}

/// Outcome of a receive that did not have to wait.
enum Step {
    Message,
    End,
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
    pub(crate) fn recv(&mut self, out: &mut Vec<u8>, wait: Wait) -> io::Result<Option<usize>> {
        self.st.begin(out)?;
        let RxEnd { c, st, inner, .. } = self;
        let bell = &c.control().data.0;
        let r = inner.wait_on(wait, bell, inner.bells.rx_data, || {
            step(c, st, inner, out, wait)
        });
        match r {
            Ok(Step::Message) => Ok(Some(out.len())),
            Ok(Step::End) => Ok(None),
            Err(e) => {
                // Keep the part that arrived for the next call.
                self.st.interrupt(out);
                Err(e)
            }
        }
    }

    /// Receives one message and hands `f` a view of it: in place when it is
    /// one record, assembled in a private buffer otherwise.
    pub(crate) fn recv_with<R>(
        &mut self,
        wait: Wait,
        f: impl FnOnce(&InPlace<'_>) -> R,
    ) -> io::Result<Option<R>> {
        self.st.check()?;
        if !self.st.is_mid() {
            let RxEnd { c, st, inner, .. } = self;
            let bell = &c.control().data.0;
            let first = inner.wait_on(wait, bell, inner.bells.rx_data, || {
                next_record(c, st, inner)
            })?;
            let Some(r) = first else {
                return st.end_of_stream(Some(0)).map(|_| None);
            };
            if !r.more {
                st.start(None)?;
                st.grown(r.len as u64)?;
                let out = f(&c.memory().view(r.offset, r.len));
                st.finish();
                release(c, inner, r);
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

fn release(c: &mut Consumer<'static, Raw>, inner: &Inner, r: Record) {
    if c.release(r) {
        inner.notify(&c.control().space.0, inner.bells.rx_space);
    }
}

/// The next record: `None` when there is none yet, `Some(None)` when the
/// producer closed after its last record.
fn next_record(
    c: &mut Consumer<'static, Raw>,
    st: &mut RecvState,
    inner: &Inner,
) -> io::Result<Option<Option<Record>>> {
    let corrupt = |st: &mut RecvState, why: String| st.fail(io::ErrorKind::InvalidData, why);
    match c.peek() {
        Ok(Some(r)) => Ok(Some(Some(r))),
        Ok(None) if !c.peer_closed() => {
            // Caught up: before anyone waits, the producer sees it all.
            if c.publish() {
                inner.notify(&c.control().space.0, inner.bells.rx_space);
            }
            Ok(None)
        }
        // Closed: whatever it published before closing is visible now.
        Ok(None) => match c.peek() {
            Ok(Some(r)) => Ok(Some(Some(r))),
            Ok(None) => Ok(Some(None)),
            Err(e) => Err(corrupt(st, e.0)),
        },
        Err(e) => Err(corrupt(st, e.0)),
    }
}

/// Receives into `out` what has arrived: `None` when the message is not
/// complete yet (the caller waits), otherwise a whole message or the end.
fn step(
    c: &mut Consumer<'static, Raw>,
    st: &mut RecvState,
    inner: &Inner,
    out: &mut Vec<u8>,
    wait: Wait,
) -> io::Result<Option<Step>> {
    let mut records = 0u32;
    loop {
        let r = match next_record(c, st, inner)? {
            None => return Ok(None),
            // Closed: the end, or an error inside a message.
            Some(None) => {
                return st
                    .end_of_stream(Some(out.len() as u64))
                    .map(|_| Some(Step::End))
            }
            Some(Some(r)) => r,
        };
        if !st.is_mid() {
            st.start(None)?;
        }
        st.grown((out.len() + r.len) as u64)?;
        c.memory().append_to(r.offset, r.len, out);
        release(c, inner, r);
        if !r.more {
            st.finish();
            return Ok(Some(Step::Message));
        }
        records += 1;
        if records.is_multiple_of(RECORDS_PER_DEADLINE_CHECK)
            && matches!(wait, Wait::Until(_))
            && wait.remaining().is_some_and(|l| l.is_zero())
        {
            return Err(wait.expired_error());
        }
    }
}
