//! The sans-I/O core: the state machines every transport drives, with no
//! system call inside.
//!
//! - [`recv::RecvState`]: resumable receive. The part of a message that an
//!   interrupted receive (timeout, `WouldBlock`, a cancelled future) already
//!   took off the transport is kept and handed back by the next call; a
//!   message over the limit or a transport that ends inside a message poisons
//!   the receiver (every later call fails the same way).
//! - [`frame::Decoder`]: the u32-LE length-prefixed frame parser on top of
//!   it, which tells its driver where to read next (header bytes, straight
//!   into the caller's buffer, read-ahead) and never reserves memory for a
//!   length the peer declared before those bytes arrive.
//! - [`send::SendState`] and [`send::Outgoing`]: how far a message got on its
//!   way out, and the one policy for a send whose time ran out part-way: a
//!   send that returns `Ok` handed the whole message over; one that gives up
//!   before the first byte left is a clean error; one that gives up after is
//!   granted [`send::SEND_GRACE`] to finish and otherwise poisons the sending
//!   side, which its transport then closes so the peer sees the end.
//!
//! The Unix pipe (frames over a socket), `Framed`/`FrameDecoder`, the
//! shared-memory channel (records in a ring) and the Windows pipe (native
//! messages) all drive these, blocking or not; an async driver polls the same
//! state machines.

pub(crate) mod frame;
pub(crate) mod recv;
pub(crate) mod send;
