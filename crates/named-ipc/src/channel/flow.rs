//! How data flows through one ring, generic over the memory and over how an
//! end sleeps and wakes: the one wait loop, pushing a record (waiting for
//! room), taking records into a message (waiting for data), and closing.
//!
//! The channel runs these with the segment's memory and the OS (futexes,
//! events); the loom model at the bottom runs the very same functions with
//! model-checked memory and a sleeper that waits on the sequence word without
//! a timeout, so a lost wake-up shows up as a hang.

use std::io;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::atomic::{self, AtomicU32};
use super::ring::{
    prepare_sleep, Bell, Consumer, Memory, Part, Producer, Record, Reservation, TOTAL_LEN,
};
use crate::pipe::framing::Received;
use crate::proto::recv::RecvState;
use crate::proto::send::{Outgoing, SendState, Sink};
use crate::sys::Wait;

/// How often a sleeper looks whether its peer is still alive.
pub(crate) const PEER_CHECK: Duration = Duration::from_millis(50);

/// A receive loop looks at its deadline at least every this many records, so
/// a producer streaming tiny records cannot keep it past its timeout.
const RECORDS_PER_DEADLINE_CHECK: u32 = 64;

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
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) const SERVER: Bells = Bells {
        rx_data: 0,
        rx_space: 1,
        tx_data: 2,
        tx_space: 3,
    };
    /// The client sends on ring 0 and receives on ring 1.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) const CLIENT: Bells = Bells {
        rx_data: 2,
        rx_space: 3,
        tx_data: 0,
        tx_space: 1,
    };
}

/// One end's link to its peer: how it sleeps and wakes, and whether the peer
/// is still there.
pub(crate) trait Link {
    /// Sleeps while `word == seen`, at most `timeout`; may return early.
    fn sleep(&self, bell: usize, word: &AtomicU32, seen: u32, timeout: Duration);
    /// Wakes the sleeper on `word` (bell `bell`).
    fn wake(&self, bell: usize, word: &AtomicU32);
    /// Whether the peer process is gone.
    fn peer_gone(&self) -> bool;
    /// How long a wait spins before it sleeps.
    fn spin(&self) -> Duration;
    fn bells(&self) -> Bells;
}

pub(crate) fn peer_gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "peer gone: the other process ended without closing the channel",
    )
}

pub(crate) fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

pub(crate) fn peer_closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the peer closed the channel")
}

/// Wakes whoever sleeps on `bell` (the caller saw its waiting flag).
#[inline]
pub(crate) fn notify<L: Link + ?Sized>(l: &L, bell: &Bell, index: usize) {
    bell.bump();
    l.wake(index, &bell.seq);
}

/// The one wait loop: runs `attempt` until it yields, spinning first and then
/// sleeping on `bell`, watching the deadline and the peer. The clock is read
/// only once the first attempt failed (an `After` wait is anchored then), so
/// a timeout costs nothing while nothing has to wait.
///
/// Its steps — [`spin`], [`arm`], [`woke`] — are also what [`poll_wait`]
/// (the async form) is made of: one mechanism, two ways to sleep.
#[inline]
pub(crate) fn wait_on<T, L: Link + ?Sized>(
    l: &L,
    wait: &mut Wait,
    bell: &Bell,
    bell_index: usize,
    mut attempt: impl FnMut() -> io::Result<Option<T>>,
) -> io::Result<T> {
    if let Some(v) = attempt()? {
        return Ok(v);
    }
    if *wait == Wait::Never {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    let wait = wait.anchor();
    if let Some(v) = spin(l, wait, &mut attempt)? {
        return Ok(v);
    }
    loop {
        let Some(seen) = arm(bell, &mut attempt)? else {
            continue;
        };
        let seen = match seen {
            Armed::Ready(v) => return Ok(v),
            Armed::Sleep(seen) => seen,
        };
        let slice = match wait.remaining() {
            None => PEER_CHECK,
            Some(left) => left.min(PEER_CHECK),
        };
        if slice.is_zero() {
            bell.done();
            return Err(wait.expired_error());
        }
        l.sleep(bell_index, &bell.seq, seen, slice);
        if let Some(v) = woke(l, bell, &mut attempt)? {
            return Ok(v);
        }
    }
}

/// The spinning phase of a wait: runs `attempt` until it yields or the
/// link's spin budget (or `wait`, anchored) runs out (`Ok(None)`: go to
/// sleep). A peer gone while it spins for long is an error.
#[inline]
pub(crate) fn spin<T, L: Link + ?Sized>(
    l: &L,
    wait: Wait,
    attempt: &mut impl FnMut() -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    let spin = l.spin();
    if spin.is_zero() {
        return Ok(None);
    }
    let start = Instant::now();
    let mut i = 0u32;
    loop {
        atomic::spin_hint();
        if let Some(v) = attempt()? {
            return Ok(Some(v));
        }
        i = i.wrapping_add(1);
        if i.is_multiple_of(128) {
            let spun = start.elapsed();
            if spun >= spin || wait.remaining().is_some_and(|left| left.is_zero()) {
                return Ok(None);
            }
            if spun >= PEER_CHECK && l.peer_gone() {
                return Err(peer_gone());
            }
        }
    }
}

/// What [`arm`] found.
pub(crate) enum Armed<T> {
    /// The last attempt yielded (the waiting flag is down again).
    Ready(T),
    /// Sleep while the bell's sequence word is this value (the flag is up),
    /// then call [`woke`].
    Sleep(u32),
}

/// Announces a sleep on `bell` and makes the last attempt before it (see
/// [`prepare_sleep`]). `Ok(None)`: nothing found and nothing to sleep on
/// (try again).
pub(crate) fn arm<T>(
    bell: &Bell,
    attempt: &mut impl FnMut() -> io::Result<Option<T>>,
) -> io::Result<Option<Armed<T>>> {
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
            return Ok(Some(Armed::Ready(v)));
        }
    }
    Ok(seen.map(Armed::Sleep))
}

/// After a sleep (however it ended): the flag comes down, then one more
/// attempt, then — if that found nothing — a look whether the peer is gone.
/// `Ok(None)`: arm and sleep again.
pub(crate) fn woke<T, L: Link + ?Sized>(
    l: &L,
    bell: &Bell,
    attempt: &mut impl FnMut() -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    bell.done();
    if let Some(v) = attempt()? {
        return Ok(Some(v));
    }
    if l.peer_gone() {
        // One last look: what it published before dying is still ours.
        if let Some(v) = attempt()? {
            return Ok(Some(v));
        }
        return Err(peer_gone());
    }
    Ok(None)
}

/// An end that sleeps through a reactor instead of blocking its thread
/// (the async channel): its own wake-up object for one bell, and the peer's
/// death.
#[cfg_attr(not(any(feature = "tokio", loom)), allow(dead_code))]
pub(crate) trait Doze {
    /// `Ready` once the bell was rung, or the peer may have gone, since the
    /// last `Ready` (spurious `Ready`s are allowed: the caller re-checks);
    /// otherwise `Pending`, with `cx`'s waker registered for either.
    fn poll_doze(&self, cx: &mut Context<'_>) -> Poll<()>;
}

/// Where an async wait is between two polls. Dropping it while it sleeps
/// (a cancelled future) takes the waiting flag down, so the peer stops
/// ringing for nobody.
#[cfg_attr(not(any(feature = "tokio", loom)), allow(dead_code))]
pub(crate) struct Parked<'b> {
    bell: &'b Bell,
    /// Spun already (the spin budget is spent once per wait).
    spun: bool,
    /// The waiting flag is up: the next poll asks the [`Doze`] first.
    asleep: bool,
}

#[cfg_attr(not(any(feature = "tokio", loom)), allow(dead_code))]
impl<'b> Parked<'b> {
    pub(crate) fn new(bell: &'b Bell) -> Parked<'b> {
        Parked {
            bell,
            spun: false,
            asleep: false,
        }
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        if self.asleep {
            self.bell.done();
        }
    }
}

/// How many wake-ups that found nothing one poll of [`poll_wait`] takes
/// before it yields.
const MAX_EMPTY_WAKES_PER_POLL: u32 = 8;

/// [`wait_on`] for a task: runs `attempt` until it yields, spinning first
/// (on the calling thread, for the link's spin budget), then sleeping
/// through `doze` — `Pending` with the flag up, woken by the peer's ring or
/// its death. The same steps as the blocking loop, with no deadline (a
/// future's deadline is its cancellation).
#[cfg_attr(not(any(feature = "tokio", loom)), allow(dead_code))]
pub(crate) fn poll_wait<T, L: Link + ?Sized, D: Doze + ?Sized>(
    l: &L,
    doze: &D,
    park: &mut Parked<'_>,
    cx: &mut Context<'_>,
    mut attempt: impl FnMut() -> io::Result<Option<T>>,
) -> Poll<io::Result<T>> {
    let bell = park.bell;
    let mut empty_wakes = 0u32;
    loop {
        if park.asleep {
            if doze.poll_doze(cx).is_pending() {
                return Poll::Pending;
            }
            park.asleep = false;
            match woke(l, bell, &mut attempt) {
                Ok(Some(v)) => return Poll::Ready(Ok(v)),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            // Rung with nothing to show for it, again and again: a peer
            // that floods our wake-up object. Yield (the task is polled
            // again at once) so that it cannot keep this poll looping:
            // timeouts around the future still fire, other tasks still run.
            // (On Unix tokio's cooperative budget, spent by each
            // `AsyncFd::poll_read_ready`, bounds this too; the Windows
            // thread-pool doze spends none.)
            empty_wakes += 1;
            if empty_wakes >= MAX_EMPTY_WAKES_PER_POLL {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        } else {
            match attempt() {
                Ok(None) => {}
                Ok(Some(v)) => return Poll::Ready(Ok(v)),
                Err(e) => return Poll::Ready(Err(e)),
            }
            if !park.spun {
                park.spun = true;
                match spin(l, Wait::Block, &mut attempt) {
                    Ok(None) => {}
                    Ok(Some(v)) => return Poll::Ready(Ok(v)),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        match arm(bell, &mut attempt) {
            Ok(Some(Armed::Ready(v))) => return Poll::Ready(Ok(v)),
            Ok(Some(Armed::Sleep(_))) => park.asleep = true,
            Ok(None) => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

// ---------------------------------------------------------------- producer --

/// Pushes one record (`parts` one after the other), waiting for room per
/// `wait`, and wakes the consumer if it sleeps.
#[inline]
pub(crate) fn push<M: Memory, L: Link + ?Sized>(
    p: &mut Producer<'_, M>,
    l: &L,
    parts: &[&[u8]],
    part: Part,
    wait: &mut Wait,
) -> io::Result<()> {
    let bells = l.bells();
    let ctl = p.control();
    let wake = wait_on(l, wait, &ctl.space.0, bells.tx_space, || {
        if p.peer_closed() {
            return Err(peer_closed());
        }
        let r = p.push(parts, part).map_err(|c| invalid(c.0));
        if p.take_wake() {
            notify(l, &ctl.data.0, bells.tx_data);
        }
        r
    })?;
    if wake {
        notify(l, &ctl.data.0, bells.tx_data);
    }
    Ok(())
}

/// The payload lengths of the records a message of `total` bytes travels
/// in, pieces of `chunk` (see the ring's module docs).
pub(crate) fn record_lens(total: usize, chunk: usize) -> impl Iterator<Item = usize> {
    let (first, rest) = if total <= chunk {
        (total, 0)
    } else {
        (chunk, total - (chunk - TOTAL_LEN))
    };
    std::iter::once(first)
        .chain((0..rest.div_ceil(chunk)).map(move |i| (rest - i * chunk).min(chunk)))
}

/// Pushes the next record of message `out` — all of it, or its next piece —
/// waiting per `wait`; returns how many message bytes the record carried.
#[inline]
pub(crate) fn push_next<M: Memory, L: Link + ?Sized>(
    p: &mut Producer<'_, M>,
    l: &L,
    out: &Outgoing<'_>,
    wait: &mut Wait,
) -> io::Result<usize> {
    let chunk = p.chunk();
    let total = out.len();
    // A kept tail (the rest of a message a cancelled async send started)
    // continues its message: never a new first record.
    if out.sent() == 0 && !out.is_continuation() {
        if total <= chunk {
            let (whole, _) = out.next_piece(total);
            push(p, l, &[whole], Part::Whole, wait)?;
            return Ok(total);
        }
        let (piece, _) = out.next_piece(chunk - TOTAL_LEN);
        let announced = (total as u64).to_le_bytes();
        push(p, l, &[&announced, piece], Part::First, wait)?;
        return Ok(piece.len());
    }
    let (piece, more) = out.next_piece(chunk);
    let part = if more { Part::Middle } else { Part::Last };
    push(p, l, &[piece], part, wait)?;
    Ok(piece.len())
}

/// The first attempt of every send, made before any of the send machinery
/// (partial-send state, wait loop) is set up: a message that travels as one
/// record and finds room now is pushed at once. `None`: nothing was written,
/// take the general path (which also reports a closed peer).
#[inline]
pub(crate) fn send_ready<M: Memory, L: Link + ?Sized>(
    p: &mut Producer<'_, M>,
    l: &L,
    msg: &[u8],
) -> Option<io::Result<()>> {
    if msg.len() > p.chunk() || p.peer_closed() {
        return None;
    }
    match p.push(&[msg], Part::Whole) {
        Ok(Some(wake)) => {
            if wake {
                notify(l, &p.control().data.0, l.bells().tx_data);
            }
            Some(Ok(()))
        }
        Ok(None) => None,
        Err(c) => Some(Err(invalid(c.0))),
    }
}

/// The ring as a [`Sink`] for the shared send driver: each write pushes one
/// record (a piece of at most a record's payload), waiting for room per
/// `wait`.
pub(crate) struct RingSink<'a, 'r, M, L: ?Sized> {
    pub(crate) p: &'a mut Producer<'r, M>,
    pub(crate) l: &'a L,
}

impl<M: Memory, L: Link + ?Sized> Sink for RingSink<'_, '_, M, L> {
    fn write(&mut self, out: &Outgoing<'_>, wait: &mut Wait) -> io::Result<usize> {
        push_next(self.p, self.l, out, wait)
    }

    fn abort(&mut self) {
        // The consumer sees the ring closed inside the message: an error
        // there, never the cut message as a whole one.
        close_producer(self.p, self.l);
    }
}

/// Sends one message: all of it (`Ok`), none of it (a wait ran out before
/// its first record), or — if it stays stuck part-way past the grace period
/// — a poisoned sending side (see [`crate::proto::send`]). A message that
/// is one record and finds room goes at once ([`send_ready`]); `Wait::Never`
/// sends only a message that fits now, so that nothing is ever cut.
#[inline]
pub(crate) fn send<M: Memory, L: Link + ?Sized>(
    p: &mut Producer<'_, M>,
    st: &mut SendState,
    l: &L,
    msg: &[u8],
    wait: Wait,
) -> io::Result<()> {
    if st.is_ready() {
        if let Some(r) = send_ready(p, l, msg) {
            return r;
        }
    }
    st.check()?;
    if wait == Wait::Never {
        let lens = record_lens(msg.len(), p.chunk());
        if !p.fits(lens).map_err(|c| invalid(c.0))? {
            if p.peer_closed() {
                return Err(peer_closed());
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
    }
    st.send(&mut RingSink { p, l }, &mut Outgoing::raw(msg), wait)
}

/// Reserves room for one record of `len` bytes, waiting per `wait`. The
/// first attempt is made before the wait loop is set up (room now is the
/// common case).
#[inline]
#[cfg_attr(not(any(feature = "tokio", loom)), allow(dead_code))]
pub(crate) fn reserve<M: Memory, L: Link + ?Sized>(
    p: &mut Producer<'_, M>,
    l: &L,
    len: usize,
    wait: &mut Wait,
) -> io::Result<Reservation> {
    match reserve_now(p, len) {
        Some(r) => Ok(r),
        None => reserve_waiting(p, l, len, wait),
    }
}

/// The first attempt of [`reserve`]: room for the record now, with the
/// consumer still there. `None`: take [`reserve_waiting`] (which also
/// reports anything wrong).
#[inline]
pub(crate) fn reserve_now<M: Memory>(p: &mut Producer<'_, M>, len: usize) -> Option<Reservation> {
    if p.peer_closed() {
        return None;
    }
    // Padding published on the way is woken for by `commit`, or by the wait
    // loop of `reserve_waiting`.
    p.reserve(len).ok().flatten()
}

/// [`reserve`] once its first attempt failed: waits per `wait`.
pub(crate) fn reserve_waiting<M: Memory, L: Link + ?Sized>(
    p: &mut Producer<'_, M>,
    l: &L,
    len: usize,
    wait: &mut Wait,
) -> io::Result<Reservation> {
    let ctl = p.control();
    wait_on(l, wait, &ctl.space.0, l.bells().tx_space, || {
        if p.peer_closed() {
            return Err(peer_closed());
        }
        let r = p.reserve(len).map_err(|c| invalid(c.0));
        if p.take_wake() {
            notify(l, &ctl.data.0, l.bells().tx_data);
        }
        r
    })
}

/// Publishes a filled reservation and wakes the consumer if it sleeps.
#[inline]
pub(crate) fn commit<M: Memory, L: Link + ?Sized>(p: &mut Producer<'_, M>, l: &L, r: Reservation) {
    if p.commit(r, Part::Whole) {
        notify(l, &p.control().data.0, l.bells().tx_data);
    }
}

/// Marks the producer closed and wakes a sleeping consumer.
pub(crate) fn close_producer<M: Memory, L: Link + ?Sized>(p: &Producer<'_, M>, l: &L) {
    if p.close() {
        notify(l, &p.control().data.0, l.bells().tx_data);
    }
}

// ---------------------------------------------------------------- consumer --

/// Marks the consumer closed and wakes a producer sleeping for room.
pub(crate) fn close_consumer<M: Memory, L: Link + ?Sized>(c: &Consumer<'_, M>, l: &L) {
    if c.close() {
        notify(l, &c.control().space.0, l.bells().rx_space);
    }
}

/// Consumes `r` and wakes a producer sleeping for room, if it has to know.
#[inline]
pub(crate) fn release<M: Memory, L: Link + ?Sized>(c: &mut Consumer<'_, M>, l: &L, r: Record) {
    if c.release(r) {
        notify(l, &c.control().space.0, l.bells().rx_space);
    }
}

/// A receive returns: what it consumed reaches the producer (see
/// [`Consumer::publish_quiet`]).
#[inline]
pub(crate) fn settle<M: Memory, L: Link + ?Sized>(c: &mut Consumer<'_, M>, l: &L) {
    if c.publish_quiet() {
        notify(l, &c.control().space.0, l.bells().rx_space);
    }
}

/// The next record: `None` when there is none yet, `Some(None)` when the
/// producer closed after its last record.
#[inline]
pub(crate) fn next_record<M: Memory, L: Link + ?Sized>(
    c: &mut Consumer<'_, M>,
    st: &mut RecvState,
    l: &L,
) -> io::Result<Option<Option<Record>>> {
    match c.peek() {
        Ok(Some(r)) => Ok(Some(Some(r))),
        Ok(None) if !c.peer_closed() => {
            // Caught up: before anyone waits, the producer sees it all.
            if c.publish() {
                notify(l, &c.control().space.0, l.bells().rx_space);
            }
            Ok(None)
        }
        // Closed: whatever it published before closing is visible now.
        Ok(None) => match c.peek() {
            Ok(Some(r)) => Ok(Some(Some(r))),
            Ok(None) => Ok(Some(None)),
            Err(e) => Err(st.fail(io::ErrorKind::InvalidData, e.0)),
        },
        Err(e) => Err(st.fail(io::ErrorKind::InvalidData, e.0)),
    }
}

/// Reads a record's total-length prefix (a `FIRST` record's).
fn announced<M: Memory>(c: &Consumer<'_, M>, r: &Record) -> u64 {
    let mut t = [0u8; TOTAL_LEN];
    c.memory().read(r.offset, &mut t);
    u64::from_le_bytes(t)
}

/// Checks record `r` (the next of the message being received) against the
/// message: a `FIRST` record starts a message of the length it announces
/// (refused at once over the limit), a lone record is a whole message, and
/// pieces must add up to what was announced. Anything else is a corrupt ring.
/// Returns where the record's message bytes are (offset and length); counts
/// them as taken.
#[inline]
fn check<M: Memory>(
    c: &Consumer<'_, M>,
    st: &mut RecvState,
    r: &Record,
) -> io::Result<(usize, usize)> {
    let bad = |st: &mut RecvState, why: &str| {
        Err(st.fail(io::ErrorKind::InvalidData, format!("{}: {why}", st.label())))
    };
    let mut skip = 0;
    if !st.is_mid() {
        if r.first {
            let total = announced(c, r);
            if total <= (r.len - TOTAL_LEN) as u64 {
                return bad(st, "a message of several records announces fewer bytes than its first record holds");
            }
            st.start(Some(total))?;
            skip = TOTAL_LEN;
        } else if r.more {
            return bad(
                st,
                "a message of several records does not announce its length",
            );
        } else {
            st.start(Some(r.len as u64))?;
        }
    } else if r.first {
        return bad(st, "a new message began inside another one");
    }
    let len = r.len - skip;
    let total = st.total().unwrap_or(0);
    let have = st.got() + len as u64;
    if have > total || (!r.more && have != total) {
        return bad(
            st,
            "the records of a message do not add up to the length it announced",
        );
    }
    st.took(len);
    Ok((r.offset + skip, len))
}

/// Appends record `r` (the next of the message being received) to `out` and
/// consumes it, after [`check`]ing it.
#[inline]
pub(crate) fn take<M: Memory, L: Link + ?Sized>(
    c: &mut Consumer<'_, M>,
    st: &mut RecvState,
    l: &L,
    r: Record,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let (at, len) = check(c, st, &r)?;
    c.memory().append_to(at, len, out);
    release(c, l, r);
    Ok(())
}

/// Reads as much of the current (or next) message as fits into `out`,
/// waiting per `wait` until `out` is full or the message complete (a wait
/// that runs out after some bytes were delivered returns those). What does
/// not fit stays for the next call, which continues the same message; the
/// result says how much of it is left. `Ok(None)`: the producer closed after
/// its last message.
pub(crate) fn recv_slice<M: Memory, L: Link + ?Sized>(
    c: &mut Consumer<'_, M>,
    st: &mut RecvState,
    l: &L,
    out: &mut [u8],
    wait: Wait,
) -> io::Result<Option<Received>> {
    st.check()?;
    let mut wait = wait;
    let mut n = st.take_stash(out);
    let left = |st: &RecvState| st.stashed() as u64 + st.total().map_or(0, |t| t - st.got());
    while (n < out.len() || !st.is_mid()) && !(st.is_mid() && left(st) == 0) {
        let ctl = c.control();
        let next = wait_on(l, &mut wait, &ctl.data.0, l.bells().rx_data, || {
            next_record(c, st, l)
        });
        let r = match next {
            Ok(Some(r)) => r,
            Ok(None) if st.is_mid() => {
                let got = st.got();
                let e = st.end_of_stream(Some(got)).err();
                match (n, e) {
                    (0, Some(e)) => return Err(e),
                    _ => break,
                }
            }
            Ok(None) => return st.end_of_stream(Some(0)).map(|_| None),
            Err(e)
                if n > 0
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                break
            }
            Err(e) => return Err(e),
        };
        let (at, len) = check(c, st, &r)?;
        let k = len.min(out.len() - n);
        c.memory().read(at, &mut out[n..n + k]);
        n += k;
        if k < len {
            let mut rest = Vec::with_capacity(len - k);
            c.memory().append_to(at + k, len - k, &mut rest);
            st.stash(&rest);
        }
        release(c, l, r);
        if !r.more {
            break;
        }
    }
    let remaining = left(st);
    if remaining == 0 && !st.is_poisoned() {
        st.finish();
    }
    settle(c, l);
    Ok(Some(Received { len: n, remaining }))
}

/// What a receive that did not have to wait found.
pub(crate) enum Step {
    Message,
    End,
}

/// Takes into `out` what has arrived: `None` when the message is not
/// complete yet (the caller waits), otherwise a whole message or the end.
#[inline]
pub(crate) fn step<M: Memory, L: Link + ?Sized>(
    c: &mut Consumer<'_, M>,
    st: &mut RecvState,
    l: &L,
    out: &mut Vec<u8>,
    wait: &mut Wait,
) -> io::Result<Option<Step>> {
    let mut records = 0u32;
    loop {
        let r = match next_record(c, st, l)? {
            None => return Ok(None),
            // Closed: the end, or an error inside a message.
            Some(None) => {
                return st
                    .end_of_stream(Some(out.len() as u64))
                    .map(|_| Some(Step::End))
            }
            Some(Some(r)) => r,
        };
        take(c, st, l, r, out)?;
        if !r.more {
            st.finish();
            return Ok(Some(Step::Message));
        }
        records += 1;
        if records.is_multiple_of(RECORDS_PER_DEADLINE_CHECK)
            && matches!(wait, Wait::After(_) | Wait::Until(_))
            && wait.anchor().is_expired()
        {
            return Err(wait.expired_error());
        }
    }
}

/// The first attempt of every [`recv`], made before any of the receive
/// machinery is set up: with nothing in progress, a message that is one
/// record and already in the ring goes straight into `out`. `None`: nothing
/// was consumed, take the general path (which also reports anything wrong
/// with the ring, and waits).
#[inline]
fn recv_ready<M: Memory, L: Link + ?Sized>(
    c: &mut Consumer<'_, M>,
    st: &RecvState,
    l: &L,
    out: &mut Vec<u8>,
) -> Option<usize> {
    let r = whole_record(c, st)?;
    out.clear();
    c.memory().append_to(r.offset, r.len, out);
    release(c, l, r);
    settle(c, l);
    Some(r.len)
}

/// With nothing in progress, the next record if it is already in the ring
/// and a whole message (within the size limit): what the first attempt of a
/// receive takes directly. `None`: take the general path (nothing was
/// consumed; it also reports anything wrong with the ring, and waits).
#[inline]
pub(crate) fn whole_record<M: Memory>(c: &mut Consumer<'_, M>, st: &RecvState) -> Option<Record> {
    if !st.is_idle() {
        return None;
    }
    let r = c.peek().ok()??;
    (!r.more && r.len as u64 <= u64::from(st.max())).then_some(r)
}

/// Receives one whole message into `out` (replacing its contents), waiting
/// per `wait`. `Ok(None)`: the producer closed after its last message. After
/// an error the part that arrived is kept for the next call.
#[inline]
pub(crate) fn recv<M: Memory, L: Link + ?Sized>(
    c: &mut Consumer<'_, M>,
    st: &mut RecvState,
    l: &L,
    out: &mut Vec<u8>,
    wait: Wait,
) -> io::Result<Option<usize>> {
    if let Some(n) = recv_ready(c, st, l, out) {
        return Ok(Some(n));
    }
    if recv_start(st, out)? {
        return Ok(Some(out.len()));
    }
    let ctl = c.control();
    // The wait loop and the step's own deadline check (for a producer that
    // never lets it wait) each anchor their copy of the wait.
    let (mut outer, mut inner) = (wait, wait);
    let r = wait_on(l, &mut outer, &ctl.data.0, l.bells().rx_data, || {
        step(c, st, l, out, &mut inner)
    });
    recv_done(c, st, l, out, r)
}

/// The first step of [`recv`] (and of its async form): `out` gets back what
/// an interrupted receive kept. `Ok(true)`: that is the whole message.
pub(crate) fn recv_start(st: &mut RecvState, out: &mut Vec<u8>) -> io::Result<bool> {
    st.begin(out)?;
    if st.is_mid() && st.total() == Some(st.got()) {
        // A `recv_slice` took the whole message off the ring; its stashed
        // rest, now in `out`, completes it.
        st.finish();
        return Ok(true);
    }
    Ok(false)
}

/// The last step of [`recv`]: what the wait for [`step`] came to.
pub(crate) fn recv_done<M: Memory, L: Link + ?Sized>(
    c: &mut Consumer<'_, M>,
    st: &mut RecvState,
    l: &L,
    out: &mut Vec<u8>,
    r: io::Result<Step>,
) -> io::Result<Option<usize>> {
    match r {
        Ok(Step::Message) => {
            settle(c, l);
            Ok(Some(out.len()))
        }
        Ok(Step::End) => Ok(None),
        Err(e) => {
            recv_interrupted(c, st, l, out);
            Err(e)
        }
    }
}

/// A receive stops before its message is complete (an error, or a dropped
/// future): the part in `out` is kept for the next one, and what it
/// consumed reaches the producer.
pub(crate) fn recv_interrupted<M: Memory, L: Link + ?Sized>(
    c: &mut Consumer<'_, M>,
    st: &mut RecvState,
    l: &L,
    out: &mut Vec<u8>,
) {
    st.interrupt(out);
    settle(c, l);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::channel::ring::Control;
    use std::cell::Cell;

    /// A link whose peer never goes and never spins.
    struct Quiet;

    impl Link for Quiet {
        fn sleep(&self, _bell: usize, _word: &AtomicU32, _seen: u32, _timeout: Duration) {}
        fn wake(&self, _bell: usize, _word: &AtomicU32) {}
        fn peer_gone(&self) -> bool {
            false
        }
        fn spin(&self) -> Duration {
            Duration::ZERO
        }
        fn bells(&self) -> Bells {
            Bells::SERVER
        }
    }

    /// Plain heap memory for single-threaded tests.
    struct Heap(std::cell::RefCell<Vec<u8>>);

    impl Memory for &Heap {
        fn len(&self) -> usize {
            self.0.borrow().len()
        }
        fn read(&self, offset: usize, dst: &mut [u8]) {
            dst.copy_from_slice(&self.0.borrow()[offset..offset + dst.len()]);
        }
        fn write(&self, offset: usize, src: &[u8]) {
            self.0.borrow_mut()[offset..offset + src.len()].copy_from_slice(src);
        }
        fn load_header(&self, offset: usize) -> u64 {
            let mut w = [0u8; 8];
            self.read(offset, &mut w);
            u64::from_ne_bytes(w)
        }
        fn store_header(&self, offset: usize, word: u64) {
            self.write(offset, &word.to_ne_bytes());
        }
    }

    /// Review: a message of several records stopped part-way (its rest kept
    /// by the sending state, as a cancelled async send leaves it), then a
    /// send that would take the one-record fast path: the kept rest goes
    /// first, so the consumer gets the first message whole, then the second.
    #[test]
    fn a_kept_tail_goes_before_a_message_that_could_take_the_fast_path() {
        let ctl = Control::new();
        let heap = Heap(std::cell::RefCell::new(vec![0; 4096]));
        let mut p = Producer::new(&ctl, &heap);
        let mut c = Consumer::new(&ctl, &heap);
        let mut st = SendState::new("t");
        let big: Vec<u8> = (0..6000u32).map(|i| i as u8).collect();
        let mut out = Outgoing::raw(&big);
        let e = st
            .send_ready(
                &mut RingSink {
                    p: &mut p,
                    l: &Quiet,
                },
                &mut out,
            )
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(out.sent() > 0 && out.sent() < big.len());
        assert!(st.keep_rest(&out), "a part-way message keeps its rest");
        // The consumer takes what is there (part of `big`), freeing room.
        let mut rs = RecvState::new("t", 1 << 20);
        let mut got = Vec::new();
        let e = recv(&mut c, &mut rs, &Quiet, &mut got, Wait::Never).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // Room for a small message now: the fast path must not take it
        // before the rest of `big`.
        send(&mut p, &mut st, &Quiet, b"small", Wait::Block).unwrap();
        assert_eq!(
            recv(&mut c, &mut rs, &Quiet, &mut got, Wait::Never).unwrap(),
            Some(big.len())
        );
        assert!(got == big, "the first message arrived damaged");
        assert_eq!(
            recv(&mut c, &mut rs, &Quiet, &mut got, Wait::Never).unwrap(),
            Some(5)
        );
        assert_eq!(got, b"small");
    }

    /// A wake-up object a hostile peer keeps signalled (it writes to the
    /// eventfd, or sets the event, in a loop): every look finds it rung.
    struct Flooded;

    impl Doze for Flooded {
        fn poll_doze(&self, _cx: &mut Context<'_>) -> Poll<()> {
            Poll::Ready(())
        }
    }

    /// Review: a peer that rings our bell without ever publishing anything
    /// keeps one poll of an async wait looping (woke, attempt, arm, the bell
    /// is rung again, ...) without returning: the task never yields, so a
    /// `tokio::time::timeout` around it never fires and, on a
    /// current-thread runtime, nothing else runs. A poll must return
    /// `Pending` (waking itself) after a bounded number of rounds. The
    /// attempt fails after 100 000 rounds so that the bug ends the test
    /// instead of hanging it.
    #[test]
    fn a_flooded_bell_cannot_keep_one_poll_looping() {
        let ctl = Control::new();
        let mut park = Parked::new(&ctl.data.0);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let rounds = Cell::new(0u32);
        let r = poll_wait(&Quiet, &Flooded, &mut park, &mut cx, || {
            rounds.set(rounds.get() + 1);
            if rounds.get() > 100_000 {
                return Err(io::Error::other("still looping"));
            }
            Ok(None::<()>)
        });
        assert!(
            r.is_pending(),
            "one poll made {} attempts and returned {r:?}",
            rounds.get()
        );
    }
}

#[cfg(all(test, loom))]
#[allow(unsafe_code)]
mod loom_tests {
    use super::*;
    use crate::channel::ring::loom_tests::Cells;
    use crate::channel::ring::Control;
    use loom::sync::Arc;

    /// Sleeps until the sequence word changes, with no timeout: a lost
    /// wake-up never ends (loom reports it), where the OS sleeper would hide
    /// it behind its 50 ms peer check.
    struct Sleeper;

    impl Link for Sleeper {
        fn sleep(&self, _bell: usize, word: &AtomicU32, seen: u32, _timeout: Duration) {
            while word.load(atomic::Ordering::Acquire) == seen {
                loom::thread::yield_now();
            }
        }
        fn wake(&self, _bell: usize, _word: &AtomicU32) {}
        fn peer_gone(&self) -> bool {
            false
        }
        fn spin(&self) -> Duration {
            Duration::ZERO
        }
        fn bells(&self) -> Bells {
            Bells {
                rx_data: 0,
                rx_space: 1,
                tx_data: 0,
                tx_space: 1,
            }
        }
    }

    fn model(msgs: Vec<Vec<u8>>, close_early: bool) {
        loom::model(move || {
            let ctl = Arc::new(Control::new());
            let mem = Arc::new(Cells::new(64));
            let (c2, m2, sent) = (ctl.clone(), mem.clone(), msgs.clone());
            let t = loom::thread::spawn(move || {
                let mut p = Producer::new(&c2, &*m2);
                let mut st = SendState::new("loom");
                for m in &sent {
                    let r = send(&mut p, &mut st, &Sleeper, m, Wait::Block);
                    if let Err(e) = r {
                        // Only when the consumer left early.
                        assert!(close_early, "{e}");
                        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
                        return;
                    }
                }
                close_producer(&p, &Sleeper);
            });
            let mut c = Consumer::new(&ctl, &*mem);
            let mut st = RecvState::new("loom", 1 << 20);
            let mut out = Vec::new();
            let take = if close_early { 1 } else { msgs.len() };
            for want in msgs.iter().take(take) {
                let got = recv(&mut c, &mut st, &Sleeper, &mut out, Wait::Block).unwrap();
                assert_eq!(got, Some(want.len()));
                assert_eq!(&out, want);
            }
            if close_early {
                // The producer sleeping for room must wake and see us gone.
                close_consumer(&c, &Sleeper);
            } else {
                // The close wakes us, after every message.
                assert_eq!(
                    recv(&mut c, &mut st, &Sleeper, &mut out, Wait::Block).unwrap(),
                    None
                );
            }
            t.join().unwrap();
        });
    }

    /// Messages of one and of several records (a 64-byte ring carries at most
    /// 8 payload bytes per record) through the production send and receive
    /// paths: both sides sleep (no spinning), the producer for room and the
    /// consumer for data, with lazy position publication and wrap-around;
    /// then the producer's close wakes the sleeping consumer.
    #[test]
    fn messages_flow_and_the_close_wakes_the_consumer() {
        model(
            vec![vec![1, 2, 3], (0..20).collect(), vec![], vec![9; 12]],
            false,
        );
    }

    /// A message written in place that needs almost the whole ring: its
    /// padding is published on its own, the sleeping consumer is woken to
    /// consume it, and the producer sleeping for room is woken in turn.
    #[test]
    fn a_record_of_almost_the_whole_ring_waits_for_its_padding_to_be_consumed() {
        loom::model(|| {
            let ctl = Arc::new(Control::new());
            let mem = Arc::new(Cells::new(64));
            let (c2, m2) = (ctl.clone(), mem.clone());
            let t = loom::thread::spawn(move || {
                let mut p = Producer::new(&c2, &*m2);
                let mut st = SendState::new("loom");
                let small = [1u8; 8];
                send(&mut p, &mut st, &Sleeper, &small, Wait::Block).unwrap();
                let r = reserve(&mut p, &Sleeper, 48, &mut Wait::Block).unwrap();
                p.fill(&r, &[&[2u8; 48]]);
                commit(&mut p, &Sleeper, r);
            });
            let mut c = Consumer::new(&ctl, &*mem);
            let mut st = RecvState::new("loom", 1 << 20);
            let mut out = Vec::new();
            recv(&mut c, &mut st, &Sleeper, &mut out, Wait::Block).unwrap();
            assert_eq!(out, [1u8; 8]);
            recv(&mut c, &mut st, &Sleeper, &mut out, Wait::Block).unwrap();
            assert_eq!(out, [2u8; 48]);
            t.join().unwrap();
        });
    }

    /// Review: a receive that returns publishes its position with
    /// `publish_quiet` (no fence); when the consumer then finds the ring
    /// empty, `publish` sees nothing new to publish and skips the fence and
    /// the look at the producer's waiting flag. A producer that armed its
    /// sleep in between, reading the old position, is never woken. The
    /// blocking producer hides this behind its 50 ms re-check; an async
    /// producer (a reactor sleeper, modelled here by a sleeper with no
    /// timeout) has none and sleeps forever. A 128-byte ring, an empty
    /// message (8 bytes: less than the eighth of the ring that `release`
    /// publishes at once), then a record that needs the whole ring.
    #[test]
    fn a_quietly_published_release_still_wakes_a_producer_waiting_for_room() {
        loom::model(|| {
            let ctl = Arc::new(Control::new());
            let mem = Arc::new(Cells::new(128));
            let (c2, m2) = (ctl.clone(), mem.clone());
            let t = loom::thread::spawn(move || {
                let mut p = Producer::new(&c2, &*m2);
                let mut st = SendState::new("loom");
                send(&mut p, &mut st, &Sleeper, &[], Wait::Block).unwrap();
                let r = reserve(&mut p, &Sleeper, 112, &mut Wait::Block).unwrap();
                p.fill(&r, &[&[2u8; 112]]);
                commit(&mut p, &Sleeper, r);
            });
            let mut c = Consumer::new(&ctl, &*mem);
            let mut st = RecvState::new("loom", 1 << 20);
            let mut out = Vec::new();
            recv(&mut c, &mut st, &Sleeper, &mut out, Wait::Block).unwrap();
            assert!(out.is_empty());
            recv(&mut c, &mut st, &Sleeper, &mut out, Wait::Block).unwrap();
            assert_eq!(out, [2u8; 112]);
            t.join().unwrap();
        });
    }

    // The rest of the finding above: a consumer that published quietly and
    // then stops receiving until the producer makes progress elsewhere
    // leaves a producer that read the older position asleep until it looks
    // again. Both sleepers look again periodically — the blocking one after
    // each PEER_CHECK slice, the async one through its `Doze`'s
    // `sys::Recheck` timer (unit-tested there) — so it costs at most one
    // period. loom cannot model that: its stale loads may repeat without
    // end, where hardware makes the store visible within nanoseconds.

    /// The consumer closes while the producer sleeps for room: the producer
    /// wakes and fails with `BrokenPipe` instead of sleeping forever.
    #[test]
    fn the_consumers_close_wakes_a_producer_waiting_for_room() {
        model(vec![vec![1; 8], vec![2; 40]], true);
    }

    /// Sleepers of both kinds: a blocking one waits on the bell's sequence
    /// word (the futex), a reactor one on a wake-up counter of its own (the
    /// eventfd, which only ever counts up until its sleeper reads it to
    /// zero). A waker rings each the way the handshake told it: bumps the
    /// word, and adds to the counter of a reactor sleeper.
    struct Mixed {
        /// Per bell (0: data, the consumer's; 1: space, the producer's):
        /// whether its sleeper is a reactor one.
        reactor: [bool; 2],
        counters: Arc<[AtomicU32; 2]>,
    }

    impl Link for Mixed {
        fn sleep(&self, _bell: usize, word: &AtomicU32, seen: u32, _timeout: Duration) {
            while word.load(atomic::Ordering::Acquire) == seen {
                loom::thread::yield_now();
            }
        }
        fn wake(&self, bell: usize, _word: &AtomicU32) {
            if self.reactor[bell] {
                self.counters[bell].fetch_add(1, atomic::Ordering::SeqCst);
            }
        }
        fn peer_gone(&self) -> bool {
            false
        }
        fn spin(&self) -> Duration {
            Duration::ZERO
        }
        fn bells(&self) -> Bells {
            Sleeper.bells()
        }
    }

    /// A reactor sleeper's wake-up counter: ready once rung, read to zero.
    struct Counter<'a>(&'a AtomicU32);

    impl Doze for Counter<'_> {
        fn poll_doze(&self, _cx: &mut Context<'_>) -> Poll<()> {
            if self.0.swap(0, atomic::Ordering::SeqCst) > 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    /// The reactor: polls `f` until it is ready, waiting between polls
    /// until the counter is rung (a lost wake-up never ends).
    fn block_on<T>(counter: &AtomicU32, mut f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        loop {
            if let Poll::Ready(v) = f(&mut cx) {
                return v;
            }
            while counter.load(atomic::Ordering::SeqCst) == 0 {
                loom::thread::yield_now();
            }
        }
    }

    /// The async receive of `RxEnd::poll_recv` (`channel/poll.rs`), driven
    /// to the end; `cancel_first` drops a first attempt after one poll, as
    /// a cancelled future does (its `Parked` takes the flag down, its
    /// receive keeps what it took).
    fn recv_async(
        c: &mut Consumer<'_, &Cells>,
        st: &mut RecvState,
        l: &Mixed,
        out: &mut Vec<u8>,
        cancel_first: bool,
    ) -> io::Result<Option<usize>> {
        let bell = &c.control().data.0;
        if cancel_first {
            if recv_start(st, out)? {
                return Ok(Some(out.len()));
            }
            let mut park = Parked::new(bell);
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let first = poll_wait(l, &Counter(&l.counters[0]), &mut park, &mut cx, || {
                step(c, st, l, out, &mut Wait::Block)
            });
            drop(park);
            match first {
                Poll::Ready(r) => return recv_done(c, st, l, out, r),
                Poll::Pending => recv_interrupted(c, st, l, out),
            }
        }
        if recv_start(st, out)? {
            return Ok(Some(out.len()));
        }
        let mut park = Parked::new(bell);
        let r = block_on(&l.counters[0], |cx| {
            poll_wait(l, &Counter(&l.counters[0]), &mut park, cx, || {
                step(c, st, l, out, &mut Wait::Block)
            })
        });
        recv_done(c, st, l, out, r)
    }

    /// The async send of `TxEnd::poll_send`, driven to the end.
    fn send_async<'r>(
        p: &mut Producer<'r, &'r Cells>,
        st: &mut SendState,
        l: &Mixed,
        msg: &[u8],
    ) -> io::Result<()> {
        let bell = &p.control().space.0;
        let mut out = Outgoing::raw(msg);
        let mut park = Parked::new(bell);
        block_on(&l.counters[1], |cx| {
            poll_wait(l, &Counter(&l.counters[1]), &mut park, cx, || {
                match st.send_ready(&mut MixedSink { p: &mut *p, l }, &mut out) {
                    Ok(()) => Ok(Some(())),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                    Err(e) => Err(e),
                }
            })
        })
    }

    struct MixedSink<'a, 'r> {
        p: &'a mut Producer<'r, &'r Cells>,
        l: &'a Mixed,
    }

    impl Sink for MixedSink<'_, '_> {
        fn write(&mut self, out: &Outgoing<'_>, wait: &mut Wait) -> io::Result<usize> {
            push_next(self.p, self.l, out, wait)
        }
        fn abort(&mut self) {
            close_producer(self.p, self.l);
        }
    }

    /// A message of one record and one of three (a 64-byte ring), then the
    /// close, between a consumer and a producer of the given kinds; the
    /// blocking ones run the blocking paths (`recv`, `SendState::send`),
    /// the reactor ones the async paths.
    fn mixed(consumer_reactor: bool, producer_reactor: bool) {
        loom::model(move || {
            let msgs: Vec<Vec<u8>> = vec![vec![1, 2, 3], (0..20).collect()];
            let counters = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
            let link = |counters: &Arc<[AtomicU32; 2]>| Mixed {
                reactor: [consumer_reactor, producer_reactor],
                counters: counters.clone(),
            };
            let ctl = Arc::new(Control::new());
            let mem = Arc::new(Cells::new(64));
            let (c2, m2, sent, l2) = (ctl.clone(), mem.clone(), msgs.clone(), link(&counters));
            let t = loom::thread::spawn(move || {
                let mut p = Producer::new(&c2, &*m2);
                let mut st = SendState::new("loom");
                for m in &sent {
                    if producer_reactor {
                        send_async(&mut p, &mut st, &l2, m).unwrap();
                    } else {
                        let mut sink = MixedSink { p: &mut p, l: &l2 };
                        st.send(&mut sink, &mut Outgoing::raw(m), Wait::Block)
                            .unwrap();
                    }
                }
                close_producer(&p, &l2);
            });
            let l = link(&counters);
            let mut c = Consumer::new(&ctl, &*mem);
            let mut st = RecvState::new("loom", 1 << 20);
            let mut out = Vec::new();
            for (i, want) in msgs.iter().enumerate() {
                let got = if consumer_reactor {
                    recv_async(&mut c, &mut st, &l, &mut out, i == 0).unwrap()
                } else {
                    recv(&mut c, &mut st, &l, &mut out, Wait::Block).unwrap()
                };
                assert_eq!(got, Some(want.len()));
                assert_eq!(&out, want);
            }
            let end = if consumer_reactor {
                recv_async(&mut c, &mut st, &l, &mut out, false)
            } else {
                recv(&mut c, &mut st, &l, &mut out, Wait::Block)
            };
            assert_eq!(end.unwrap(), None);
            t.join().unwrap();
        });
    }

    /// An async (reactor) consumer woken by a blocking producer, including
    /// after a cancelled wait.
    #[test]
    fn a_blocking_producer_wakes_a_reactor_consumer() {
        mixed(true, false);
    }

    /// An async producer waiting for room, woken by a blocking consumer; and
    /// the blocking consumer woken by it.
    #[test]
    fn a_blocking_consumer_wakes_a_reactor_producer() {
        mixed(false, true);
    }

    /// Both ends async.
    #[test]
    fn reactor_ends_wake_each_other() {
        mixed(true, true);
    }
}
