//! A message channel over shared memory: the fast path for when a pipe's
//! kernel round trip per message is too slow. Same message API as
//! [`PipeStream`].
//!
//! A server binds a name ([`ShmListener::bind`]); clients connect
//! ([`ShmStream::connect`]). The rendezvous is a named pipe; each connection then
//! gets its own pair of single-producer, single-consumer rings in an **unnamed**
//! shared segment (Linux: a sealed memfd passed over the socket; Windows: a
//! section duplicated into the client process the pipe authenticated), so there
//! is no global name to squat or leak.
//!
//! - Messages of 0 bytes up to the maximum (default 16 MiB) keep their
//!   boundaries; messages larger than a ring record are streamed through it in
//!   pieces and reassembled.
//! - Zero copy: [`send_with`](ShmStream::send_with) writes a message straight
//!   into the ring, [`recv_with`](ShmStream::recv_with) reads it in place.
//! - [`ShmStream`] takes `&self` everywhere (a lock serialises each
//!   direction); [`ShmStream::split`] gives an owned [`ShmSender`] and
//!   [`ShmReceiver`] that take no lock at all — the fastest path.
//! - Waiting spins for a configurable budget ([`ChannelOptions::spin`]), then
//!   sleeps (futex on Linux, `__ulock` on macOS, events on Windows): an idle
//!   channel burns no CPU.
//! - A peer that dies (even `SIGKILL`/`TerminateProcess`) is noticed within
//!   about 50 ms by a blocked `send`/`recv`, which then fails with
//!   `BrokenPipe` ("peer gone"); an orderly close reads as `Ok(None)`.
//! - Everything read from shared memory (ring positions, record headers, the
//!   segment header) is validated: a corrupt or hostile peer gets the channel
//!   an `InvalidData` error, never an out-of-bounds access or a panic.
//!   ([`recv_with`](ShmStream::recv_with)'s in-place slice and
//!   [`send_with`](ShmStream::send_with)'s buffer are the exception to
//!   "never trust": a peer writing into them concurrently would race with you.)
//!
//! # Examples
//! ```no_run
//! use named_ipc::channel::{ShmListener, ShmStream};
//! use std::time::Duration;
//!
//! // Server
//! let listener = ShmListener::bind("fast-lane")?;
//! let conn = listener.accept()?;
//! while let Some(msg) = conn.recv()? {
//!     conn.send(&msg)?;
//! }
//!
//! // Client
//! let conn = ShmStream::connect_timeout("fast-lane", Duration::from_secs(5))?;
//! conn.send(b"ping")?;
//! assert_eq!(conn.recv()?.as_deref(), Some(&b"ping"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![allow(unsafe_code)]

mod atomic;
pub(crate) mod header;
mod ring;

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use self::header::{Hello, Layout, MAX_CAPACITY, MIN_CAPACITY};
use self::ring::{prepare_sleep, Bell, Consumer, Control, Memory, Producer, Record};
use crate::error::{Error, ErrorKind, Result};
use crate::pipe::framing::DEFAULT_MAX_MESSAGE;
use crate::pipe::{
    ConnectOptions, ListenerOptions, PipeListener, PipeMode, PipeStream, ServerIdentity, Timing,
    UserId,
};
use crate::sys::{self, Wait};

/// How often a sleeper looks whether its peer is still alive.
const PEER_CHECK: Duration = Duration::from_millis(50);

/// How long `accept` and `connect` wait for the other side's handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

const CLIENT_MAGIC: [u8; 8] = *b"NIPC-CL1";

/// Options for channel servers and clients.
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    capacity: usize,
    max_message: u32,
    spin: Duration,
    timeout: Option<Duration>,
    server_identity: ServerIdentity,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions::new()
    }
}

impl ChannelOptions {
    /// 256 KiB per direction, 16 MiB largest message, 20 µs of spinning
    /// before sleeping, no connect timeout, a server running as this user.
    pub fn new() -> ChannelOptions {
        ChannelOptions {
            capacity: 256 * 1024,
            max_message: DEFAULT_MAX_MESSAGE,
            spin: Duration::from_micros(20),
            timeout: None,
            server_identity: ServerIdentity::SameUser,
        }
    }

    /// Ring size per direction, rounded up to a power of two in 4 KiB..=1 GiB.
    /// Set by the server (a client takes the server's). Records carry up to a
    /// quarter of it; larger messages are streamed in pieces.
    pub fn capacity(&mut self, bytes: usize) -> &mut Self {
        self.capacity = bytes
            .clamp(MIN_CAPACITY as usize, MAX_CAPACITY as usize)
            .next_power_of_two();
        self
    }

    /// Largest message this end accepts (default 16 MiB, at most 4 GiB − 1).
    /// The peer learns it in the handshake and refuses to send larger ones.
    pub fn max_message_size(&mut self, max: u32) -> &mut Self {
        self.max_message = max;
        self
    }

    /// How long a `send`/`recv` that must wait spins before it sleeps. Zero:
    /// sleep at once (lowest CPU, a kernel wake-up per message); longer: lower
    /// latency while the peer keeps up, at the cost of a busy core while
    /// waiting. Default 20 µs.
    pub fn spin(&mut self, spin: Duration) -> &mut Self {
        self.spin = spin;
        self
    }

    /// How long `connect` waits for the server to appear (default: not at all).
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// Which server `connect` accepts (default: one running as this user), as
    /// for [`ConnectOptions::server_identity`]; checked on the rendezvous pipe
    /// before the handshake.
    pub fn server_identity(&mut self, identity: ServerIdentity) -> &mut Self {
        self.server_identity = identity;
        self
    }

    /// Creates a channel server.
    ///
    /// # Errors
    /// As for [`ListenerOptions::create`].
    pub fn bind(&self, name: &str) -> Result<ShmListener> {
        let pipe = ListenerOptions::new()
            .mode(PipeMode::Message)
            .create(name)?;
        Ok(ShmListener {
            pipe,
            opts: self.clone(),
        })
    }

    /// Connects to a channel server.
    ///
    /// # Errors
    /// As for [`ConnectOptions::connect`] (including
    /// [`ErrorKind::PermissionDenied`] for a server that runs as another user
    /// than [`server_identity`](Self::server_identity) expects);
    /// [`ErrorKind::VersionMismatch`] or [`ErrorKind::InvalidInput`] if the
    /// server's handshake is not acceptable, including (Windows) handles the
    /// server named that are not its section and events.
    pub fn connect(&self, name: &str) -> Result<ShmStream> {
        let mut o = ConnectOptions::new();
        o.mode(PipeMode::Message)
            .server_identity(self.server_identity.clone());
        if let Some(t) = self.timeout {
            o.timeout(t);
        }
        let pipe = o.connect(name)?;
        ShmStream::client(pipe, self).map_err(|e| handshake_error(e, name))
    }
}

fn handshake_error(e: io::Error, name: &str) -> Error {
    let kind = match e.kind() {
        io::ErrorKind::InvalidData => ErrorKind::VersionMismatch,
        _ => ErrorKind::of_io(&e),
    };
    Error::new(
        kind,
        name,
        format!("channel handshake on {name:?} failed: {e}"),
    )
    .with_source(e)
}

/// A channel server: accepts clients, each with its own shared rings.
pub struct ShmListener {
    pipe: PipeListener,
    opts: ChannelOptions,
}

impl fmt::Debug for ShmListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmListener")
            .field("name", &self.pipe.name())
            .field("capacity", &self.opts.capacity)
            .finish_non_exhaustive()
    }
}

impl ShmListener {
    /// Creates a channel server with default [`ChannelOptions`].
    ///
    /// # Errors
    /// As for [`ChannelOptions::bind`].
    pub fn bind(name: &str) -> Result<ShmListener> {
        ChannelOptions::new().bind(name)
    }

    /// The name clients connect to.
    pub fn name(&self) -> &str {
        self.pipe.name()
    }

    /// Waits for a client and sets up its channel. On Windows it returns once
    /// the client has taken the channel's handles (it says so), at most 10 s
    /// after the client connected.
    ///
    /// # Errors
    /// OS errors; `InvalidData` if the client's handshake is not a named-ipc
    /// channel's, `UnexpectedEof` if it left during the handshake (e.g. it
    /// refused this server), `TimedOut` if it stalled: that client is
    /// dropped; call `accept` again.
    pub fn accept(&self) -> io::Result<ShmStream> {
        let pipe = self.pipe.accept()?;
        ShmStream::server(pipe, &self.opts)
    }

    /// Like [`accept`](Self::accept), giving up with `TimedOut` after `timeout`.
    ///
    /// # Errors
    /// As for [`accept`](Self::accept).
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<ShmStream> {
        let pipe = self.pipe.accept_timeout(timeout)?;
        ShmStream::server(pipe, &self.opts)
    }
}

/// The shared memory of a ring, as raw pointers into the segment.
#[derive(Clone, Copy)]
struct Raw {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: Raw points into a mapping owned by the ShmStream that owns the Raw;
// which thread touches it does not matter.
unsafe impl Send for Raw {}

impl Memory for Raw {
    fn len(&self) -> usize {
        self.len
    }

    fn read(&self, offset: usize, dst: &mut [u8]) {
        assert!(offset <= self.len && dst.len() <= self.len - offset);
        // SAFETY: in bounds (checked above) of a live mapping; the bytes may be
        // written by the peer, and we only copy them out.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(offset), dst.as_mut_ptr(), dst.len()) };
    }

    fn write(&self, offset: usize, src: &[u8]) {
        assert!(offset <= self.len && src.len() <= self.len - offset);
        // SAFETY: in bounds (checked above) of a live, writable mapping.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(offset), src.len()) };
    }
}

impl Raw {
    /// Appends `len` bytes from `offset` to `out`, copying straight into its
    /// spare capacity (no zero-filling first).
    fn append_to(&self, offset: usize, len: usize, out: &mut Vec<u8>) {
        assert!(offset <= self.len && len <= self.len - offset);
        out.reserve(len);
        let at = out.len();
        // SAFETY: the source is in bounds (checked above) of a live mapping;
        // the destination is spare capacity of `out`, reserved just above,
        // which the copy initialises before `set_len` exposes it.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.add(offset), out.as_mut_ptr().add(at), len);
            out.set_len(at + len);
        }
    }

    /// `len` bytes at `offset` as a slice.
    ///
    /// # Safety
    /// The range must be in bounds and no one may write it while the slice lives.
    unsafe fn slice(&self, offset: usize, len: usize) -> &[u8] {
        // SAFETY: per the caller.
        unsafe { std::slice::from_raw_parts(self.ptr.add(offset), len) }
    }

    /// # Safety
    /// As for `slice`, and no one may read it either.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice_mut(&self, offset: usize, len: usize) -> &mut [u8] {
        // SAFETY: per the caller.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset), len) }
    }
}

/// Which bells a side sleeps on and rings.
#[derive(Debug, Clone, Copy)]
struct Bells {
    /// The bell our receiver sleeps on (data of our rx ring).
    rx_data: usize,
    /// The bell we ring after freeing rx space.
    rx_space: usize,
    /// The bell we ring after publishing tx data.
    tx_data: usize,
    /// The bell our sender sleeps on (space of our tx ring).
    tx_space: usize,
}

/// What both directions of one channel end share. Dropped last: the rings
/// point into `_map`, and `pipe` is how the peer notices us leave.
struct Inner {
    signals: sys::channel::Signals,
    bells: Bells,
    spin: Duration,
    /// The most the peer accepts.
    peer_max: u32,
    max_message: u32,
    name: String,
    pipe: PipeStream,
    _map: sys::shm::Mapping,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn peer_gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "peer gone: the other process ended without closing the channel",
    )
}

impl Inner {
    /// Runs `attempt` until it yields, spinning first and then sleeping on
    /// `bell`, watching the peer and the deadline.
    fn wait_on<T>(
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

    fn ring(&self, bell: &Bell, index: usize) {
        bell.bump();
        self.signals.ring(index, &bell.seq);
    }

    fn check_len(&self, len: usize) -> io::Result<()> {
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

/// The sending direction of a channel end.
struct TxEnd {
    p: Producer<'static, Raw>,
    /// The unsent tail of a large message whose send ran out of time after its
    /// first piece went out.
    pending: Vec<u8>,
    inner: Arc<Inner>,
}

impl Drop for TxEnd {
    fn drop(&mut self) {
        if self.p.close() {
            self.inner
                .ring(&self.p.control().data.0, self.inner.bells.tx_data);
        }
    }
}

impl TxEnd {
    /// Pushes one record, waiting for room.
    fn push(&mut self, chunk: &[u8], more: bool, wait: Wait) -> io::Result<()> {
        let TxEnd { p, inner, .. } = self;
        let bell = &p.control().space.0;
        let wake = inner.wait_on(wait, bell, inner.bells.tx_space, || {
            if p.peer_closed() {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the peer closed the channel",
                ));
            }
            p.push(chunk, more).map_err(|c| invalid(c.0))
        })?;
        if wake {
            inner.ring(&p.control().data.0, inner.bells.tx_data);
        }
        Ok(())
    }

    /// Pushes `msg` as records of at most a chunk each (`MORE` on all but the
    /// last). Returns how many bytes went out, and the error that stopped it.
    fn push_pieces(&mut self, msg: &[u8], wait: Wait) -> (usize, io::Result<()>) {
        let max = self.p.max_chunk();
        let mut sent = 0;
        loop {
            let n = (msg.len() - sent).min(max);
            let more = sent + n < msg.len();
            if let Err(e) = self.push(&msg[sent..sent + n], more, wait) {
                return (sent, Err(e));
            }
            sent += n;
            if !more {
                return (sent, Ok(()));
            }
        }
    }

    /// Sends what an earlier timed-out large send left.
    fn drain(&mut self, wait: Wait) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut pending = std::mem::take(&mut self.pending);
        let (sent, r) = self.push_pieces(&pending, wait);
        if r.is_err() {
            pending.drain(..sent);
            self.pending = pending;
        }
        r
    }

    fn send(&mut self, msg: &[u8], wait: Wait) -> io::Result<()> {
        self.inner.check_len(msg.len())?;
        self.drain(wait)?;
        match self.push_pieces(msg, wait) {
            (sent, Err(e))
                if sent > 0
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                // Part of the message is out: it is accepted, and the rest goes
                // before the next message (or on `flush`).
                self.pending.extend_from_slice(&msg[sent..]);
                Ok(())
            }
            (_, r) => r,
        }
    }

    fn send_with<R>(
        &mut self,
        len: usize,
        wait: Wait,
        fill: impl FnOnce(&mut [u8]) -> R,
    ) -> io::Result<R> {
        self.inner.check_len(len)?;
        if len > self.p.max_chunk() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "send_with can write at most {} bytes in place; use send for larger messages",
                    self.p.max_chunk()
                ),
            ));
        }
        self.drain(wait)?;
        let TxEnd { p, inner, .. } = self;
        let bell = &p.control().space.0;
        let r = inner.wait_on(wait, bell, inner.bells.tx_space, || {
            if p.peer_closed() {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the peer closed the channel",
                ));
            }
            p.reserve(len).map_err(|c| invalid(c.0))
        })?;
        // SAFETY: the reservation lies inside the ring (the producer computed
        // it from validated positions), and the consumer does not read it
        // before we commit.
        let buf = unsafe { p.memory().slice_mut(r.offset, len) };
        let out = fill(buf);
        if p.commit(r, false) {
            inner.ring(&p.control().data.0, inner.bells.tx_data);
        }
        Ok(out)
    }
}

/// The receiving direction of a channel end.
struct RxEnd {
    st: RxState,
    inner: Arc<Inner>,
}

/// What the receiving direction keeps between calls.
struct RxState {
    c: Consumer<'static, Raw>,
    /// Bytes of a message whose receive was interrupted mid-way.
    stash: Vec<u8>,
    /// Inside a multi-record message.
    mid: bool,
    poison: Option<(io::ErrorKind, String)>,
    scratch: Vec<u8>,
}

impl Drop for RxEnd {
    fn drop(&mut self) {
        if self.st.c.close() {
            self.inner
                .ring(&self.st.c.control().space.0, self.inner.bells.rx_space);
        }
    }
}

/// Outcome of one receive step.
enum Step {
    Message,
    End,
}

impl RxState {
    fn check_poison(&self) -> io::Result<()> {
        match &self.poison {
            Some((k, m)) => Err(io::Error::new(*k, m.clone())),
            None => Ok(()),
        }
    }

    fn poison(&mut self, kind: io::ErrorKind, msg: String) -> io::Error {
        self.poison = Some((kind, msg.clone()));
        io::Error::new(kind, msg)
    }

    fn release(&mut self, inner: &Inner, r: Record) {
        if self.c.release(r) {
            inner.ring(&self.c.control().space.0, inner.bells.rx_space);
        }
    }

    fn too_big(&mut self, inner: &Inner) -> io::Error {
        let msg = format!(
            "incoming message on channel {:?} exceeds the limit of {} bytes",
            inner.name, inner.max_message
        );
        self.poison(io::ErrorKind::InvalidData, msg)
    }

    /// The next record, seeing a close through: `Some(None)` is the end.
    fn next_record(&mut self, inner: &Inner) -> io::Result<Option<Option<Record>>> {
        match self.c.peek() {
            Ok(Some(r)) => Ok(Some(Some(r))),
            Ok(None) if !self.c.peer_closed() => {
                // Caught up: before anyone waits, the producer sees it all.
                if self.c.publish() {
                    inner.ring(&self.c.control().space.0, inner.bells.rx_space);
                }
                Ok(None)
            }
            // Closed: whatever it published before closing is visible now.
            Ok(None) => match self.c.peek() {
                Ok(Some(r)) => Ok(Some(Some(r))),
                Ok(None) if self.mid => {
                    let msg = format!(
                        "the peer closed channel {:?} in the middle of a message",
                        inner.name
                    );
                    Err(self.poison(io::ErrorKind::UnexpectedEof, msg))
                }
                Ok(None) => Ok(Some(None)),
                Err(c) => Err(self.poison(io::ErrorKind::InvalidData, c.0)),
            },
            Err(c) => Err(self.poison(io::ErrorKind::InvalidData, c.0)),
        }
    }

    /// Receives into `out` what has arrived; `None`: nothing yet.
    fn step(&mut self, inner: &Inner, out: &mut Vec<u8>) -> io::Result<Option<Step>> {
        loop {
            let r = match self.next_record(inner)? {
                None => return Ok(None),
                Some(None) => return Ok(Some(Step::End)),
                Some(Some(r)) => r,
            };
            if out.len() + r.len > inner.max_message as usize {
                return Err(self.too_big(inner));
            }
            self.c.memory().append_to(r.offset, r.len, out);
            self.release(inner, r);
            self.mid = r.more;
            if !r.more {
                return Ok(Some(Step::Message));
            }
        }
    }
}

impl RxEnd {
    fn recv_vec(&mut self, wait: Wait) -> io::Result<Option<Vec<u8>>> {
        let mut v = Vec::new();
        Ok(self.recv(&mut v, wait)?.map(|_| v))
    }

    fn recv(&mut self, out: &mut Vec<u8>, wait: Wait) -> io::Result<Option<usize>> {
        let RxEnd { st, inner } = self;
        st.check_poison()?;
        out.clear();
        if !st.stash.is_empty() {
            std::mem::swap(out, &mut st.stash);
        }
        let bell = &st.c.control().data.0;
        let r = inner.wait_on(wait, bell, inner.bells.rx_data, || st.step(inner, out));
        match r {
            Ok(Step::Message) => Ok(Some(out.len())),
            Ok(Step::End) => Ok(None),
            Err(e) => {
                if st.mid && st.poison.is_none() {
                    // Keep the part that arrived for the next call.
                    std::mem::swap(out, &mut st.stash);
                    out.clear();
                }
                Err(e)
            }
        }
    }

    fn recv_with<R>(&mut self, wait: Wait, f: impl FnOnce(&[u8]) -> R) -> io::Result<Option<R>> {
        {
            let RxEnd { st, inner } = self;
            st.check_poison()?;
            if st.stash.is_empty() && !st.mid {
                let bell = &st.c.control().data.0;
                let first =
                    inner.wait_on(wait, bell, inner.bells.rx_data, || st.next_record(inner))?;
                let Some(r) = first else { return Ok(None) };
                if !r.more {
                    if r.len > inner.max_message as usize {
                        return Err(st.too_big(inner));
                    }
                    // SAFETY: the record was validated to lie inside the ring,
                    // and the producer does not reuse it until we release it.
                    let bytes = unsafe { st.c.memory().slice(r.offset, r.len) };
                    let out = f(bytes);
                    st.release(inner, r);
                    return Ok(Some(out));
                }
            }
        }
        let mut scratch = std::mem::take(&mut self.st.scratch);
        let got = self.recv(&mut scratch, wait);
        let out = match got {
            Ok(Some(_)) => Ok(Some(f(&scratch))),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        self.st.scratch = scratch;
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One end of a shared-memory channel. Every method takes `&self`: sends from
/// several threads are serialised by a lock, as are receives. For the fastest
/// path, [`split`](Self::split) it into lock-free halves.
pub struct ShmStream {
    tx: Mutex<TxEnd>,
    rx: Mutex<RxEnd>,
    timing: Timing,
    inner: Arc<Inner>,
}

impl fmt::Debug for ShmStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmStream")
            .field("name", &self.inner.name)
            .field("max_message", &self.inner.max_message)
            .finish_non_exhaustive()
    }
}

impl ShmStream {
    /// Connects with default [`ChannelOptions`]; fails at once if no server.
    ///
    /// # Errors
    /// As for [`ChannelOptions::connect`].
    pub fn connect(name: &str) -> Result<ShmStream> {
        ChannelOptions::new().connect(name)
    }

    /// Connects, waiting up to `timeout` for the server to appear.
    ///
    /// # Errors
    /// As for [`ChannelOptions::connect`].
    pub fn connect_timeout(name: &str, timeout: Duration) -> Result<ShmStream> {
        ChannelOptions::new().timeout(timeout).connect(name)
    }

    fn server(pipe: PipeStream, opts: &ChannelOptions) -> io::Result<ShmStream> {
        // The client speaks first: its magic, version and largest message.
        pipe.set_read_timeout(Some(HANDSHAKE))?;
        let hi = pipe.recv()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client left during the handshake",
            )
        })?;
        pipe.set_read_timeout(None)?;
        if hi.len() != 16 || hi[..8] != CLIENT_MAGIC || hi[8..12] != header::VERSION.to_le_bytes() {
            return Err(invalid(
                "the client is not a named-ipc channel client of this version",
            ));
        }
        let peer_max = u32::from_le_bytes([hi[12], hi[13], hi[14], hi[15]]);
        let layout = Layout::new(opts.capacity);
        let map = sys::shm::Mapping::anonymous(layout.total as u64)?;
        let raw = Raw {
            ptr: map.ptr(),
            len: map.len(),
        };
        raw.write(0, &layout.encode());
        let hello = Hello {
            max_message: opts.max_message,
            capacity: layout.capacity as u64,
            segment_len: layout.total as u64,
            server_pid: std::process::id(),
            handles: Vec::new(),
        };
        let signals =
            sys::channel::send_hello(pipe.sys(), hello, &map, Wait::timeout(Some(HANDSHAKE)))?;
        let bells = Bells {
            rx_data: 0,
            rx_space: 1,
            tx_data: 2,
            tx_space: 3,
        };
        // Server: receives on ring 0, sends on ring 1.
        ShmStream::assemble(pipe, map, layout, signals, bells, [0, 1], opts, peer_max)
    }

    fn client(pipe: PipeStream, opts: &ChannelOptions) -> io::Result<ShmStream> {
        let mut hi = CLIENT_MAGIC.to_vec();
        hi.extend_from_slice(&header::VERSION.to_le_bytes());
        hi.extend_from_slice(&opts.max_message.to_le_bytes());
        pipe.send(&hi)?;
        let wait = Wait::timeout(Some(HANDSHAKE));
        let (bytes, attachment) = sys::channel::recv_hello(pipe.sys(), wait)?;
        let hello = Hello::decode(&bytes).map_err(invalid)?;
        let (map, signals) = sys::channel::attach(pipe.sys(), attachment, &hello, wait)?;
        let mut h = [0u8; header::HEADER_LEN];
        if map.len() < h.len() {
            return Err(invalid("the channel segment is too small"));
        }
        Raw {
            ptr: map.ptr(),
            len: map.len(),
        }
        .read(0, &mut h);
        let layout = Layout::decode(&h, map.len()).map_err(invalid)?;
        if layout.capacity as u64 != hello.capacity {
            return Err(invalid(
                "the handshake and the segment disagree on the ring size",
            ));
        }
        let bells = Bells {
            rx_data: 2,
            rx_space: 3,
            tx_data: 0,
            tx_space: 1,
        };
        // Client: sends on ring 0, receives on ring 1.
        ShmStream::assemble(
            pipe,
            map,
            layout,
            signals,
            bells,
            [1, 0],
            opts,
            hello.max_message,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        pipe: PipeStream,
        map: sys::shm::Mapping,
        layout: Layout,
        signals: sys::channel::Signals,
        bells: Bells,
        [rx_ring, tx_ring]: [usize; 2],
        opts: &ChannelOptions,
        peer_max: u32,
    ) -> io::Result<ShmStream> {
        let base = map.ptr();
        let control = |i: usize| -> &'static Control {
            // SAFETY: the layout was validated against the mapping's length; the
            // control block is 64-aligned (page-aligned mapping + 64-aligned
            // offset) and made of atomics, valid for any bit pattern. The
            // mapping lives in `Inner`, which every holder of these references
            // (TxEnd, RxEnd) keeps alive through an Arc declared after them.
            unsafe { &*(base.add(layout.rings[i]) as *const Control) }
        };
        let data = |i: usize| Raw {
            // SAFETY: data(i) + capacity <= total <= mapping length (validated).
            ptr: unsafe { base.add(layout.data(i)) },
            len: layout.capacity,
        };
        let inner = Arc::new(Inner {
            signals,
            bells,
            spin: opts.spin,
            peer_max,
            max_message: opts.max_message,
            name: pipe.name().to_owned(),
            pipe,
            _map: map,
        });
        Ok(ShmStream {
            tx: Mutex::new(TxEnd {
                p: Producer::new(control(tx_ring), data(tx_ring)),
                pending: Vec::new(),
                inner: Arc::clone(&inner),
            }),
            rx: Mutex::new(RxEnd {
                st: RxState {
                    c: Consumer::new(control(rx_ring), data(rx_ring)),
                    stash: Vec::new(),
                    mid: false,
                    poison: None,
                    scratch: Vec::new(),
                },
                inner: Arc::clone(&inner),
            }),
            timing: Timing::new(false),
            inner,
        })
    }

    /// Splits into an owned sending half and an owned receiving half, each
    /// usable from its own thread without any lock: the fastest way to use a
    /// channel. Timeouts and nonblocking mode carry over.
    pub fn split(self) -> (ShmSender, ShmReceiver) {
        let tx = self.tx.into_inner().unwrap_or_else(|p| p.into_inner());
        let rx = self.rx.into_inner().unwrap_or_else(|p| p.into_inner());
        let t = |r: Option<Duration>, w: Option<Duration>| {
            let timing = Timing::new(self.timing.is_nonblocking());
            let _ = timing.set_read(r);
            let _ = timing.set_write(w);
            timing
        };
        let (r, w) = (self.timing.read_timeout(), self.timing.write_timeout());
        (
            ShmSender {
                tx,
                timing: t(r, w),
            },
            ShmReceiver {
                rx,
                timing: t(r, w),
            },
        )
    }

    /// The name the channel was bound or connected with.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The largest message the peer accepts.
    pub fn peer_max_message(&self) -> u32 {
        self.inner.peer_max
    }

    /// Bytes a single [`send_with`](Self::send_with) can write in place.
    pub fn max_in_place(&self) -> usize {
        lock(&self.tx).p.max_chunk()
    }

    /// The peer's process id.
    ///
    /// # Errors
    /// As for [`PipeStream::peer_pid`].
    pub fn peer_pid(&self) -> io::Result<u32> {
        self.inner.pipe.peer_pid()
    }

    /// The user the peer runs as.
    ///
    /// # Errors
    /// As for [`PipeStream::peer_user`].
    pub fn peer_user(&self) -> io::Result<UserId> {
        self.inner.pipe.peer_user()
    }

    /// Sets how long `recv` may wait (`None`: forever).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timing.set_read(timeout)
    }

    /// Sets how long `send` may wait for room (`None`: forever).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timing.set_write(timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.timing.read_timeout()
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.timing.write_timeout()
    }

    /// In nonblocking mode every call that would wait returns `WouldBlock`.
    pub fn set_nonblocking(&self, nonblocking: bool) {
        self.timing.set_nonblocking(nonblocking);
    }

    /// Sends `msg` as one message (0 bytes up to the peer's maximum).
    ///
    /// # Errors
    /// `BrokenPipe` when the peer closed or died; `InvalidInput` for a message
    /// over the peer's maximum; `WouldBlock`/`TimedOut` in nonblocking mode or
    /// after the write timeout (nothing was sent); `InvalidData` if the peer
    /// corrupted the ring.
    pub fn send(&self, msg: &[u8]) -> io::Result<()> {
        lock(&self.tx).send(msg, self.timing.write_wait())
    }

    /// Sends without waiting: `WouldBlock` if the ring has no room now.
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn try_send(&self, msg: &[u8]) -> io::Result<()> {
        lock(&self.tx).send(msg, Wait::Never)
    }

    /// Sends, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> io::Result<()> {
        lock(&self.tx).send(msg, Wait::timeout(Some(timeout)))
    }

    /// Writes a `len`-byte message directly into the ring: `fill` gets the
    /// message's bytes (zeroed or stale — write all of them) and its return
    /// value is returned. `len` may be at most [`max_in_place`](Self::max_in_place).
    ///
    /// # Errors
    /// `InvalidInput` for `len` over `max_in_place` or the peer's maximum;
    /// otherwise as for [`send`](Self::send).
    pub fn send_with<R>(&self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> io::Result<R> {
        lock(&self.tx).send_with(len, self.timing.write_wait(), fill)
    }

    /// Sends anything an earlier timed-out large `send` left behind.
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn flush(&self) -> io::Result<()> {
        lock(&self.tx).drain(self.timing.write_wait())
    }

    /// Receives one whole message; `Ok(None)` when the peer closed the channel.
    ///
    /// # Errors
    /// `BrokenPipe` ("peer gone") when the peer process ended without closing;
    /// `InvalidData` for a message over the limit or a corrupt ring (permanent);
    /// `WouldBlock`/`TimedOut` in nonblocking mode or after the read timeout
    /// (nothing is lost; call again).
    pub fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        lock(&self.rx).recv_vec(self.timing.read_wait())
    }

    /// Like [`recv`](Self::recv), into `buf` (replacing its contents).
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn recv_into(&self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        lock(&self.rx).recv(buf, self.timing.read_wait())
    }

    /// Receives without waiting: `WouldBlock` if no whole message is there.
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn try_recv(&self) -> io::Result<Option<Vec<u8>>> {
        lock(&self.rx).recv_vec(Wait::Never)
    }

    /// Receives, waiting at most `timeout`.
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        lock(&self.rx).recv_vec(Wait::timeout(Some(timeout)))
    }

    /// Receives one message and hands it to `f` in place, without copying it
    /// out of the ring when it fits in one record (messages up to
    /// [`max_in_place`](Self::max_in_place) bytes); larger ones are assembled
    /// first. `Ok(None)` when the peer closed the channel.
    ///
    /// The slice points into memory shared with the peer, which the protocol
    /// keeps it from touching until `f` returns; a hostile peer could still
    /// write into it, so use [`recv`](Self::recv) with peers you do not trust.
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    pub fn recv_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> io::Result<Option<R>> {
        lock(&self.rx).recv_with(self.timing.read_wait(), f)
    }
}

/// The sending half of a split [`ShmStream`]: `&mut self`, no lock.
pub struct ShmSender {
    tx: TxEnd,
    timing: Timing,
}

impl fmt::Debug for ShmSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmSender")
            .field("name", &self.tx.inner.name)
            .finish_non_exhaustive()
    }
}

impl ShmSender {
    /// See [`ShmStream::send`].
    ///
    /// # Errors
    /// As for [`ShmStream::send`].
    pub fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.tx.send(msg, self.timing.write_wait())
    }

    /// See [`ShmStream::try_send`].
    ///
    /// # Errors
    /// As for [`ShmStream::send`].
    pub fn try_send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.tx.send(msg, Wait::Never)
    }

    /// See [`ShmStream::send_timeout`].
    ///
    /// # Errors
    /// As for [`ShmStream::send`].
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> io::Result<()> {
        self.tx.send(msg, Wait::timeout(Some(timeout)))
    }

    /// See [`ShmStream::send_with`].
    ///
    /// # Errors
    /// As for [`ShmStream::send_with`].
    pub fn send_with<R>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> io::Result<R> {
        self.tx.send_with(len, self.timing.write_wait(), fill)
    }

    /// See [`ShmStream::flush`].
    ///
    /// # Errors
    /// As for [`ShmStream::send`].
    pub fn flush(&mut self) -> io::Result<()> {
        self.tx.drain(self.timing.write_wait())
    }

    /// Sets how long `send` may wait for room (`None`: forever).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timing.set_write(timeout)
    }

    /// In nonblocking mode a `send` that would wait returns `WouldBlock`.
    pub fn set_nonblocking(&self, nonblocking: bool) {
        self.timing.set_nonblocking(nonblocking);
    }

    /// Bytes a single [`send_with`](Self::send_with) can write in place.
    pub fn max_in_place(&self) -> usize {
        self.tx.p.max_chunk()
    }
}

/// The receiving half of a split [`ShmStream`]: `&mut self`, no lock.
pub struct ShmReceiver {
    rx: RxEnd,
    timing: Timing,
}

impl fmt::Debug for ShmReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmReceiver")
            .field("name", &self.rx.inner.name)
            .finish_non_exhaustive()
    }
}

impl ShmReceiver {
    /// See [`ShmStream::recv`].
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.rx.recv_vec(self.timing.read_wait())
    }

    /// See [`ShmStream::recv_into`].
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        self.rx.recv(buf, self.timing.read_wait())
    }

    /// See [`ShmStream::try_recv`].
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub fn try_recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.rx.recv_vec(Wait::Never)
    }

    /// See [`ShmStream::recv_timeout`].
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        self.rx.recv_vec(Wait::timeout(Some(timeout)))
    }

    /// See [`ShmStream::recv_with`].
    ///
    /// # Errors
    /// As for [`ShmStream::recv`].
    pub fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> io::Result<Option<R>> {
        self.rx.recv_with(self.timing.read_wait(), f)
    }

    /// Sets how long `recv` may wait (`None`: forever).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timing.set_read(timeout)
    }

    /// In nonblocking mode a `recv` that would wait returns `WouldBlock`.
    pub fn set_nonblocking(&self, nonblocking: bool) {
        self.timing.set_nonblocking(nonblocking);
    }
}

#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_header(data: &[u8]) {
    let _ = Hello::decode(data);
    let mut h = [0u8; header::HEADER_LEN];
    for (d, s) in h.iter_mut().zip(data) {
        *d = *s;
    }
    let mapped = data.len().saturating_mul(1 << 16);
    if let Ok(l) = Layout::decode(&h, mapped) {
        assert!(l.total <= mapped && l.data(1) + l.capacity == l.total);
    }
}

#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_ring(data: &[u8]) {
    use self::atomic::Ordering;
    if data.len() < 16 {
        return;
    }
    let tail = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
    let cap = 64usize << (data[8] % 4);
    let mut bytes: Vec<u8> = data[16..].iter().copied().cycle().take(cap).collect();
    bytes.resize(cap, 0);
    let ctl = Box::new(ring::Control::new());
    // Small tails exercise real records; large ones the position checks.
    let tail = if data[9] % 2 == 0 {
        tail % (2 * cap as u64)
    } else {
        tail
    };
    ctl.tail.0.store(tail, Ordering::SeqCst);
    let raw = Raw {
        ptr: bytes.as_mut_ptr(),
        len: cap,
    };
    let mut c = Consumer::new(&ctl, raw);
    let mut out = Vec::new();
    for _ in 0..64 {
        match c.peek() {
            Ok(Some(r)) => {
                assert!(r.offset + r.len <= cap);
                raw.append_to(r.offset, r.len, &mut out);
                c.release(r);
            }
            Ok(None) | Err(_) => break,
        }
    }
}
