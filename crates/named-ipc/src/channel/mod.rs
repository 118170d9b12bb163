//! A message channel over shared memory: the fast path for when a pipe's
//! kernel round trip per message is too slow. Same message API as
//! [`PipeStream`](crate::pipe::PipeStream).
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
//!   into the ring, [`recv_with`](ShmStream::recv_with) reads it in place,
//!   both through views ([`InPlaceMut`], [`InPlace`]) that copy rather than
//!   hand out references to memory the peer could change.
//! - A send returns `Ok` once the whole message is in the ring. One that times
//!   out (or would block) before its first record is in sent nothing; one
//!   stuck part-way through a message larger than a record gets a second more
//!   and otherwise closes the sending direction (the peer gets an error, never
//!   half a message as a whole one). `try_send` and nonblocking sends take
//!   only a message that fits in the ring's free space now.
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
//!   segment header) is read once into a local, validated, then used: a
//!   corrupt or hostile peer gets the channel an `InvalidData` error, never an
//!   out-of-bounds access or a panic. Message bytes in shared memory are only
//!   ever copied through raw pointers, never borrowed as `&[u8]`, unless you
//!   take the `unsafe` [`InPlace::as_slice`] / [`InPlaceMut::as_mut_slice`]
//!   route (a copy racing with the peer's writes yields some value for each
//!   byte; nothing derived from it is trusted unchecked).
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
pub(crate) mod flow;
pub(crate) mod handshake;
pub(crate) mod header;
mod listener;
pub(crate) mod options;
#[cfg(feature = "tokio")]
pub(crate) mod poll;
mod raw;
pub(crate) mod ring;
pub(crate) mod rx;
mod stream;
pub(crate) mod tx;
pub(crate) mod wait;

pub use listener::ShmListener;
pub use options::ChannelOptions;
pub use raw::{InPlace, InPlaceMut};
pub use stream::{ShmReceiver, ShmSender, ShmStream};

#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_header(data: &[u8]) {
    use self::header::{ClientHello, Hello, Layout};
    let _ = Hello::decode(data);
    let _ = ClientHello::decode(data);
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
    use self::raw::Raw;
    use self::ring::{Consumer, Memory};
    if data.len() <= 16 {
        return;
    }
    let cap = 64usize << (data[8] % 4);
    // u64s: the header words must be 8-aligned, as in a real segment.
    let mut words = vec![0u64; cap / 8];
    for (i, w) in words.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        for (k, x) in b.iter_mut().enumerate() {
            *x = data[16 + (i * 8 + k) % (data.len() - 16)];
        }
        *w = u64::from_ne_bytes(b);
        // Half the runs: shape headers so that records get parsed (a set
        // RECORD flag, small lengths); the other half takes the bytes as
        // they come.
        if data[9].is_multiple_of(2) {
            *w = (*w & 0x7f) | ((((*w >> 32) & 0xf) | 8) << 32);
        }
    }
    let ctl = Box::new(ring::Control::new());
    // SAFETY: `words` is `cap` bytes long, 8-aligned, and outlives every use
    // of `raw` below.
    let raw = unsafe { Raw::new(words.as_mut_ptr().cast::<u8>(), cap) };
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
