//! Inter-process communication through named OS objects — named pipes, named
//! shared memory, named mutexes and events — with one API on Windows, Linux and
//! macOS.
//!
//! - [`pipe`]: a server creates a pipe by name ([`pipe::PipeListener`]), clients
//!   connect ([`pipe::PipeStream`]); message mode keeps boundaries, byte mode is a
//!   stream, [`pipe::Framed`] adds the spec's u32-LE size prefix to any stream.
//! - [`shm`]: named shared memory ([`shm::ShmSegment`]) with no hidden header,
//!   safe copying access, atomics, and file-backed or unnamed segments.
//! - [`channel`]: a message channel over shared memory ([`channel::ShmListener`],
//!   [`channel::ShmStream`]), rendezvous by pipe, for when a pipe is too slow.
//! - [`sync`]: [`sync::NamedMutex`] (told when its holder died) and
//!   [`sync::NamedEvent`] (auto- and manual-reset), across processes.
//! - [`name`]: how names map to OS objects (`\\.\pipe\NAME`, socket paths,
//!   `Local\NAME`, `/NAME`).
//!
//! Windows uses the native Win32 objects, so plain Win32 programs that use the
//! same names interoperate. Unix uses Unix domain sockets with a documented wire
//! format (see [`pipe::framing`]).
//!
//! Errors: stream I/O returns [`std::io::Result`]; creating, opening and naming
//! returns [`Result`] with an [`Error`] that names the object and suggests a fix.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

#[cfg(not(loom))]
pub mod channel;
/// Under `--cfg loom` only the ring protocol is built, for model checking
/// (`ci/loom.sh`).
#[cfg(loom)]
mod channel {
    mod atomic;
    mod ring;
}
mod error;
pub mod name;
pub mod os;
pub mod pipe;
pub mod shm;
pub mod sync;
mod sys;

pub use error::{downcast_io, Error, ErrorKind, Result};
pub use pipe::Security;
