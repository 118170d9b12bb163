//! Inter-process communication through named OS objects — named pipes, named
//! shared memory, named mutexes and events — with one API on Windows, Linux and
//! macOS.
//!
//! - [`pipe`]: a server creates a pipe by name ([`pipe::PipeListener`]), clients
//!   connect ([`pipe::PipeStream`]); message mode keeps boundaries, byte mode is a
//!   stream, [`pipe::Framed`] adds a u32-LE size prefix to any stream.
//! - [`shm`]: named shared memory ([`shm::ShmSegment`]) with no hidden header,
//!   safe copying access, atomics, and file-backed or unnamed segments.
//! - [`channel`]: a message channel over shared memory ([`channel::ShmListener`],
//!   [`channel::ShmStream`]), rendezvous by pipe, for when a pipe is too slow.
//! - [`sync`]: [`sync::NamedMutex`] (told when its holder died) and
//!   [`sync::NamedEvent`] (auto- and manual-reset), across processes.
//! - [`tokio`] (feature `tokio`): async pipes on the tokio runtime, with a
//!   written cancellation contract.
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
// loom is a dev-dependency (kept out of users' dependency graphs), so a
// `--cfg loom` build exists only as the library's unit tests.
#[cfg(all(loom, not(test)))]
compile_error!("`--cfg loom` builds only the library's unit tests: run ci/loom.sh");
/// Under `--cfg loom` only the ring protocol is built, for model checking
/// (`ci/loom.sh`).
#[cfg(loom)]
mod channel {
    mod atomic;
    mod flow;
    mod ring;
}
mod error;
pub mod name;
pub mod os;
pub mod pipe;
mod proto;
mod registry;
pub mod security;
pub mod shm;
pub mod sync;
mod sys;
#[cfg(all(feature = "tokio", not(loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
#[cfg(not(loom))]
mod traits_check;

pub use error::{downcast_io, Error, ErrorKind, Result};

/// Locks `m`, also when a panic elsewhere poisoned it: every value this crate
/// guards with a mutex is left consistent by each critical section, so a
/// panicking holder leaves nothing half-done to protect against.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Raw primitives for the baselines of `nipc bench` (feature `bench-support`).
/// Not part of the API: no stability promise.
#[cfg(feature = "bench-support")]
#[doc(hidden)]
pub mod bench_support {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    /// Whether this OS has a cross-process wait on a shared word (a futex).
    pub const HAS_FUTEX: bool = cfg!(unix);

    /// Sleeps while `*word == expected` (futex wait), at most `timeout`. A
    /// 1 ms sleep where there is no futex.
    pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        crate::sys::bench_wait(word, expected, timeout)
    }

    /// Wakes every sleeper on `word`.
    pub fn futex_wake(word: &AtomicU32) {
        crate::sys::bench_wake(word)
    }

    /// The CPUs the calling thread may run on (Windows: this process), in
    /// increasing order; `None` where the OS has no affinity API (macOS, the
    /// BSDs).
    pub fn allowed_cpus() -> std::io::Result<Option<Vec<usize>>> {
        crate::sys::affinity::allowed_cpus()
    }

    /// Restricts the calling thread (Windows: this whole process) and the
    /// threads and processes it starts afterwards to `cpus`:
    /// `sched_setaffinity` on Linux and Android, `SetProcessAffinityMask` and
    /// `SetThreadAffinityMask` on Windows. Returns `Ok(false)` and does nothing
    /// where the OS has no affinity API (macOS, the BSDs).
    pub fn set_affinity(cpus: &[usize]) -> std::io::Result<bool> {
        crate::sys::affinity::set_affinity(cpus)
    }
}
pub use security::Security;

/// Entry points for the fuzz targets (feature `fuzzing`): each feeds bytes
/// another process could control to a parser. Not part of the API.
#[cfg(all(feature = "fuzzing", not(loom)))]
#[doc(hidden)]
pub mod fuzz_support {
    /// The frame decoder driven by scatter reads (the socket path), with
    /// limits up to 4 GiB − 1.
    pub fn frame_reader(data: &[u8]) {
        crate::proto::frame::fuzz(data)
    }

    /// The channel's handshake message and segment header.
    pub fn channel_header(data: &[u8]) {
        crate::channel::fuzz_header(data)
    }

    /// A ring consumer over arbitrary ring bytes: the first 16 bytes give the
    /// producer's position and a capacity choice, the rest is the data area.
    pub fn ring_reader(data: &[u8]) {
        crate::channel::fuzz_ring(data)
    }

    /// Owner records and the Unix sync-object header.
    pub fn records(data: &[u8]) {
        crate::registry::fuzz(data);
        crate::sync::header::fuzz(data);
    }
}
