//! The async channel's steps (`crate::tokio::ShmStream`): each is one poll
//! of a send, a receive or a reservation over the very ends, rings, send and
//! receive states and flow functions the blocking calls use. Where a thread
//! would block in [`flow::wait_on`], a task sleeps through a [`Doze`] in
//! [`flow::poll_wait`] — the same spin, announce, re-check and wake steps.
//!
//! Cancellation (a future dropped between two polls) needs nothing here
//! beyond what the blocking calls already have: a receive keeps what it took
//! ([`RxEnd::recv_interrupted`]), a send that started a message of several
//! records leaves its rest to the sending state ([`TxEnd::abandon`]), which
//! the next send, a flush or the end's drop completes first; a waiting flag
//! comes down when its [`Parked`] is dropped.

use std::io;
use std::task::{Context, Poll};

use super::flow::RingSink;
use super::flow::{self, Doze, Parked};
use super::raw::{InPlace, InPlaceMut};
use super::ring::{Bell, Record, Reservation};
use super::rx::RxEnd;
use super::tx::TxEnd;
use super::wait::Inner;
use crate::proto::send::Outgoing;
use crate::sys::Wait;

/// `WouldBlock` is "not yet" for an attempt of the wait loop.
fn not_yet<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

impl TxEnd {
    /// The bell this end's sender sleeps on (room in its ring).
    pub(crate) fn space_bell(&self) -> &'static Bell {
        &self.p.control().space.0
    }

    /// What a send checks before it starts: the sending side is usable, and
    /// the peer accepts a message of `len` bytes.
    pub(crate) fn check_send(&self, len: usize) -> io::Result<()> {
        self.state.check()?;
        self.inner.check_len(len)
    }

    /// One poll of sending `out` (after a kept tail, if any): `Ready(Ok)`
    /// once all of it is in the ring. The progress stays in `out`.
    pub(crate) fn poll_send<D: Doze + ?Sized>(
        &mut self,
        doze: &D,
        park: &mut Parked<'_>,
        cx: &mut Context<'_>,
        out: &mut Outgoing<'_>,
    ) -> Poll<io::Result<()>> {
        let TxEnd { p, state, inner } = self;
        let inner: &Inner = inner;
        flow::poll_wait(inner, doze, park, cx, || {
            not_yet(state.send_ready(&mut RingSink { p, l: inner }, out))
        })
    }

    /// One poll of pushing out a kept tail: `Ready(Ok)` once nothing of
    /// ours is left to go.
    pub(crate) fn poll_flush<D: Doze + ?Sized>(
        &mut self,
        doze: &D,
        park: &mut Parked<'_>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let TxEnd { p, state, inner } = self;
        let inner: &Inner = inner;
        flow::poll_wait(inner, doze, park, cx, || {
            not_yet(state.flush_ready(&mut RingSink { p, l: inner }))
        })
    }

    /// The sender of `out` stops waiting (its future was dropped): a
    /// message some of whose records are in the ring keeps its rest in the
    /// sending state, which finishes it before anything else goes; one not
    /// started is dropped whole.
    pub(crate) fn abandon(&mut self, out: &Outgoing<'_>) {
        self.state.keep_rest(out);
    }

    /// Whether the rest of an abandoned message waits to go out.
    pub(crate) fn has_tail(&self) -> bool {
        self.state.has_tail()
    }

    /// Gives up on a kept tail (its grace period passed): the sending side
    /// is closed, so the peer sees an error rather than a cut message.
    pub(crate) fn cut_tail(&mut self) {
        let TxEnd { p, state, inner } = self;
        let inner: &Inner = inner;
        state.cut_tail(&mut RingSink { p, l: inner });
    }

    /// Finishes a kept tail on this thread, within the grace period (an
    /// async end dropped outside a runtime).
    pub(crate) fn finish_tail_blocking(&mut self) {
        let TxEnd { p, state, inner } = self;
        let inner: &Inner = inner;
        let _ = state.finish_tail(&mut RingSink { p, l: inner }, Wait::Never);
    }

    /// Sends `msg` without waiting: after a kept tail (which must go out
    /// now), the whole message if it fits in the ring now, else nothing.
    pub(crate) fn try_send_now(&mut self, msg: &[u8]) -> io::Result<()> {
        self.check_send(msg.len())?;
        let TxEnd { p, state, inner } = self;
        let inner: &Inner = inner;
        state.flush_ready(&mut RingSink { p, l: inner })?;
        self.send(msg, Wait::Never)
    }

    /// One poll of reserving a record of `len` payload bytes (after a kept
    /// tail, so the record cannot land inside another message).
    pub(crate) fn poll_reserve<D: Doze + ?Sized>(
        &mut self,
        doze: &D,
        park: &mut Parked<'_>,
        cx: &mut Context<'_>,
        len: usize,
    ) -> Poll<io::Result<Reservation>> {
        let TxEnd { p, state, inner } = self;
        let inner: &Inner = inner;
        flow::poll_wait(inner, doze, park, cx, || {
            if not_yet(state.flush_ready(&mut RingSink { p, l: inner }))?.is_none() {
                return Ok(None);
            }
            not_yet(flow::reserve(p, inner, len, &mut Wait::Never))
        })
    }

    /// A view of a reservation's payload, to fill in place.
    pub(crate) fn view_mut(&self, r: &Reservation) -> InPlaceMut<'_> {
        self.p.memory().view_mut(r.offset, r.len)
    }

    /// Publishes a filled reservation as one whole message.
    pub(crate) fn commit_reserved(&mut self, r: Reservation) {
        flow::commit(&mut self.p, &*self.inner, r);
    }
}

/// What the first step of an in-place receive found.
pub(crate) enum First {
    /// The peer closed the channel after its last message.
    End,
    /// A message in one record, now being read in place: release it with
    /// [`RxEnd::release_in_place`].
    InPlace(Record),
    /// A message of several records (or one begun earlier): receive it
    /// whole into the scratch buffer.
    Assemble,
}

impl RxEnd {
    /// The bell this end's receiver sleeps on (data in its ring).
    pub(crate) fn data_bell(&self) -> &'static Bell {
        &self.c.control().data.0
    }

    /// The first step of a whole-message receive into `out`: `Ok(true)` when
    /// what an interrupted receive kept completes the message.
    pub(crate) fn recv_start(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        flow::recv_start(&mut self.st, out)
    }

    /// One poll of a whole-message receive into `out`, after
    /// [`recv_start`](Self::recv_start). `Ok(None)`: the peer closed the
    /// channel after its last message.
    pub(crate) fn poll_recv<D: Doze + ?Sized>(
        &mut self,
        doze: &D,
        park: &mut Parked<'_>,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Poll<io::Result<Option<usize>>> {
        let RxEnd { c, st, inner, .. } = self;
        let inner = &**inner;
        let r = std::task::ready!(flow::poll_wait(inner, doze, park, cx, || {
            flow::step(c, st, inner, out, &mut Wait::Block)
        }));
        Poll::Ready(flow::recv_done(c, st, inner, out, r))
    }

    /// A receive into `out` stops before its message is complete (a dropped
    /// future): what it took is kept for the next one.
    pub(crate) fn recv_interrupted(&mut self, out: &mut Vec<u8>) {
        let RxEnd { c, st, inner, .. } = self;
        flow::recv_interrupted(c, st, &**inner, out);
    }

    /// One poll of an in-place receive's first step.
    pub(crate) fn poll_first<D: Doze + ?Sized>(
        &mut self,
        doze: &D,
        park: &mut Parked<'_>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<First>> {
        self.st.check()?;
        if self.st.is_mid() {
            return Poll::Ready(Ok(First::Assemble));
        }
        let RxEnd { c, st, inner, .. } = self;
        let inner = &**inner;
        let first = std::task::ready!(flow::poll_wait(inner, doze, park, cx, || {
            flow::next_record(c, st, inner)
        }));
        Poll::Ready(match first {
            Err(e) => Err(e),
            Ok(None) => st.end_of_stream(Some(0)).map(|_| First::End),
            Ok(Some(r)) if r.more => Ok(First::Assemble),
            Ok(Some(r)) => st.start(Some(r.len as u64)).map(|()| First::InPlace(r)),
        })
    }

    /// A view of a one-record message in the ring.
    pub(crate) fn view(&self, r: &Record) -> InPlace<'_> {
        self.c.memory().view(r.offset, r.len)
    }

    /// The one-record message read in place is done with: consumed, and the
    /// producer told.
    pub(crate) fn release_in_place(&mut self, r: Record) {
        let RxEnd { c, st, inner, .. } = self;
        st.finish();
        flow::release(c, &**inner, r);
        flow::settle(c, &**inner);
    }
}
