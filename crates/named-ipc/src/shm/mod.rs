//! Named shared memory: one process creates a segment by name, others open it
//! and see the same bytes.
//!
//! # Layout
//! There is no hidden header: byte 0 of the segment is byte 0 of your data, so
//! plain programs that open the same name see the same bytes — on Windows
//! `CreateFileMapping`/`OpenFileMapping("ShareMemory")`, on Linux
//! `shm_open("/ShareMemory")` or Python's
//! `multiprocessing.shared_memory.SharedMemory("ShareMemory")`.
//!
//! # Lifetime: Windows and Unix differ
//! - **Windows**: a mapping lives while any process has a handle to it. When
//!   the last holder closes (or exits), it is gone; nothing can leak.
//! - **Unix**: a POSIX shm object lives until it is unlinked, even with nobody
//!   attached. The creator owns the name: dropping the [`ShmSegment`] it created
//!   removes the name (processes that have it mapped keep their view) unless
//!   [`keep`](ShmSegment::set_remove_on_drop) was asked for. If the creator
//!   crashes, the object stays; `nipc shm gc` (or [`gc`]) finds and removes
//!   objects whose creator died, and never touches objects named-ipc did not
//!   create. Ownership is of the *object*, not of the name: the owner record
//!   keeps the object's identity (device + inode), so after
//!   [`remove`](ShmSegment::remove) and a new creator under the same name,
//!   neither the first creator's drop nor `gc` touches the new object.
//!
//! # Access without undefined behaviour
//! Another process may write at any moment, so the safe API never hands out
//! references to the bytes: [`read_at`](ShmSegment::read_at) and
//! [`write_at`](ShmSegment::write_at) copy (bounds-checked),
//! [`atomic_u32`](ShmSegment::atomic_u32)/[`atomic_u64`](ShmSegment::atomic_u64)
//! give atomics at aligned offsets, and raw slices are `unsafe` with the rules
//! spelled out. On Unix another process can shrink a named object; the safe API
//! checks the current size before each access (a shrink racing with a copy can
//! still raise `SIGBUS`: for hostile peers use [`ShmSegment::anonymous`], whose
//! Linux memfd is sealed against resizing).
//!
//! # Synchronisation
//! Plain shared memory has none, and real use needs it: pair a
//! segment with a [`NamedMutex`](crate::sync::NamedMutex) and a
//! [`NamedEvent`](crate::sync::NamedEvent), as `nipc demo` does.
//!
//! # Examples
//! ```no_run
//! use named_ipc::shm::{Protection, ShmSegment};
//!
//! // Process A
//! let seg = ShmSegment::create("ShareMemory", 4096)?;
//! seg.write_at(0, b"Shine\0")?;
//!
//! // Process B
//! let seg = ShmSegment::open("ShareMemory", Protection::ReadOnly)?;
//! let mut buf = [0u8; 5];
//! seg.read_at(0, &mut buf)?;
//! assert_eq!(&buf, b"Shine");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod options;
mod segment;

use std::io;

pub use options::{Protection, SegmentOptions};
pub use segment::ShmSegment;

use crate::registry;
use crate::sys;

/// A named object known to this user, for `nipc shm ls`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEntry {
    /// The OS-level name (`/NAME`, `Local\NAME`).
    pub os_name: String,
    /// `segment`, `mutex` or `event` when named-ipc created it.
    pub kind: Option<String>,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// The creating process, when named-ipc created it.
    pub owner_pid: Option<u32>,
    /// What became of the owner.
    pub owner: OwnerState,
}

/// What became of the process that created a segment.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// Still running.
    Alive,
    /// Ended without removing it and without asking to keep it: `gc` removes it.
    Dead,
    /// Ended and left it in place on purpose (`remove_on_drop(false)`).
    Kept,
    /// Not created by named-ipc (or its record is gone).
    Unknown,
}

/// Lists shared-memory objects: those named-ipc created (with owners) and, on
/// Linux, every other object in `/dev/shm` (owner unknown).
///
/// # Errors
/// OS errors reading the records.
pub fn list() -> io::Result<Vec<SegmentEntry>> {
    let mut out: Vec<SegmentEntry> = registry::entries()?
        .into_iter()
        .map(|e| {
            let r = e.record;
            let size = sys::shm::object_size(&e.os_name).ok().or(r.size);
            SegmentEntry {
                owner: if e.alive {
                    OwnerState::Alive
                } else if r.kept {
                    OwnerState::Kept
                } else {
                    OwnerState::Dead
                },
                os_name: e.os_name,
                kind: r.kind.map(|k| k.as_str().to_owned()),
                size,
                owner_pid: r.pid,
            }
        })
        .collect();
    for (os_name, size) in sys::shm::list_objects()? {
        if !out.iter().any(|e| e.os_name == os_name) {
            out.push(SegmentEntry {
                os_name,
                kind: None,
                size: Some(size),
                owner_pid: None,
                owner: OwnerState::Unknown,
            });
        }
    }
    out.sort_by(|a, b| a.os_name.cmp(&b.os_name));
    Ok(out)
}

/// Removes objects named-ipc created whose creator died without removing them
/// (and stale records). Never touches objects it did not create, objects kept
/// on purpose, objects whose creator still runs, or an object that someone
/// else has since created under the same name (the record keeps the identity
/// of the object, device + inode, and gc compares it first). On Linux it also
/// leaves an object that a live process of this user still maps or holds open
/// (it is removed by a later gc, once that process is gone); other Unix
/// systems cannot tell. Returns the OS names removed. On Windows only records
/// are cleaned: the OS already freed the mappings.
///
/// # Errors
/// OS errors reading the records or removing an object.
pub fn gc() -> io::Result<Vec<String>> {
    registry::gc()
}
