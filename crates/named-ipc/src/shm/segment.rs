//! [`ShmSegment`]: a mapped segment and its bounds-checked accessors.

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64};

use super::options::check_size;
use super::{Protection, SegmentOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::registry::{self, Kind};
use crate::sys;

/// A mapped shared-memory segment. See the [module docs](super).
pub struct ShmSegment {
    map: sys::shm::Mapping,
    name: Option<String>,
    os_name: Option<String>,
    access: Protection,
    owner: Option<registry::Owner>,
    remove_on_drop: bool,
}

impl fmt::Debug for ShmSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmSegment")
            .field("name", &self.name)
            .field("os_name", &self.os_name)
            .field("len", &self.map.len())
            .field("access", &self.access)
            .field("owner", &self.owner.is_some())
            .finish()
    }
}

impl Drop for ShmSegment {
    fn drop(&mut self) {
        if let (Some(owner), Some(os_name)) = (self.owner.take(), &self.os_name) {
            // Removes the object and its record only if they are still the
            // ones this process created (see `registry`).
            owner.finish(os_name, registry::End::on_drop(self.remove_on_drop));
        }
    }
}

impl ShmSegment {
    pub(super) fn wrap(
        map: sys::shm::Mapping,
        names: Option<(&str, String)>,
        access: Protection,
        owner: Option<registry::Owner>,
        remove_on_drop: bool,
    ) -> ShmSegment {
        let (name, os_name) = match names {
            Some((n, os)) => (Some(n.to_owned()), Some(os)),
            None => (None, None),
        };
        ShmSegment {
            map,
            name,
            os_name,
            access,
            owner,
            remove_on_drop,
        }
    }

    /// Creates segment `name` of `size` bytes; see [`SegmentOptions::create`].
    ///
    /// # Errors
    /// As for [`SegmentOptions::create`].
    #[doc(alias = "CreateFileMapping")]
    #[doc(alias = "shm_open")]
    pub fn create(name: &str, size: u64) -> Result<ShmSegment> {
        SegmentOptions::new().create(name, size)
    }

    /// Opens segment `name` with `access`; see [`SegmentOptions::open`].
    ///
    /// # Errors
    /// As for [`SegmentOptions::open`].
    #[doc(alias = "OpenFileMapping")]
    pub fn open(name: &str, access: Protection) -> Result<ShmSegment> {
        SegmentOptions::new().protection(access).open(name)
    }

    /// Opens segment `name` read-write, creating it with `size` bytes if needed.
    ///
    /// # Errors
    /// As for [`SegmentOptions::open_or_create`].
    pub fn open_or_create(name: &str, size: u64) -> Result<ShmSegment> {
        SegmentOptions::new().open_or_create(name, size)
    }

    /// An unnamed segment of `size` bytes, to hand to child processes with
    /// [`child_token`](Self::child_token). Linux: a memfd sealed against
    /// resizing; Windows: an unnamed section.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for size 0; OS errors.
    pub fn anonymous(size: u64) -> Result<ShmSegment> {
        let what = "cannot create an unnamed shared-memory segment";
        check_size("(unnamed)", size, what)?;
        let map = sys::shm::Mapping::anonymous(size)
            .map_err(|e| Error::from_io(e, "(unnamed)", what, ""))?;
        Ok(ShmSegment::wrap(
            map,
            None,
            Protection::ReadWrite,
            None,
            false,
        ))
    }

    /// Maps a file (`CreateFileMapping` over a file handle), all of it. Writes through
    /// [`Protection::ReadWrite`] reach the file (see [`flush`](Self::flush)) and
    /// every process mapping it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an empty file (as Windows'
    /// `ERROR_FILE_INVALID`); [`ErrorKind::NotFound`]; OS errors.
    pub fn map_file(path: impl AsRef<Path>, access: Protection) -> Result<ShmSegment> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let what = format!("cannot map file {shown}");
        let file = OpenOptions::new()
            .read(true)
            .write(access == Protection::ReadWrite)
            .open(path)
            .map_err(|e| Error::from_io(e, &shown, &what, ""))?;
        let map = sys::shm::Mapping::map_file(&file, access)
            .map_err(|e| Error::from_io(e, &shown, &what, ""))?;
        Ok(ShmSegment::wrap(map, None, access, None, false))
    }

    /// A token a child process passes to [`from_child_token`](Self::from_child_token)
    /// to map this segment (works for named and unnamed segments). It names an
    /// inheritable descriptor/handle, so start the child after calling this
    /// (`std::process::Command` passes inheritable handles on both OSes).
    ///
    /// # Errors
    /// OS errors of duplicating the handle.
    pub fn child_token(&mut self) -> io::Result<String> {
        self.map.child_token()
    }

    /// Maps the segment a parent process described with
    /// [`child_token`](Self::child_token).
    ///
    /// The token names a descriptor (Unix) or handle (Windows) this process
    /// inherited. It is borrowed, not adopted: this call duplicates it (`fcntl`
    /// `F_DUPFD_CLOEXEC`, `DuplicateHandle`), checks the copy and maps that, so
    /// the original stays open and stays the caller's, whether this succeeds or
    /// fails and after the segment is dropped. A child that wants it closed
    /// closes it itself; keeping it costs one descriptor and nothing else (the
    /// memory is freed when every handle and mapping is gone). A token naming
    /// something that is not a segment is refused without closing it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed token or one that names
    /// something other than a segment, [`ErrorKind::NotFound`] if the
    /// descriptor/handle is not open here.
    pub fn from_child_token(token: &str, access: Protection) -> Result<ShmSegment> {
        let map = sys::shm::Mapping::from_token(token, access).map_err(|e| {
            Error::from_io(
                e,
                token,
                "cannot map the inherited shared-memory segment",
                "",
            )
        })?;
        Ok(ShmSegment::wrap(map, None, access, None, false))
    }

    /// Removes the name `name` (Unix `shm_unlink`), without needing the creator,
    /// and its owner record. Processes that have it mapped keep their view; its
    /// creator, when it ends, leaves alone whatever is created under the name
    /// afterwards. Named mutexes and events are removed the same way.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`]; [`ErrorKind::Unsupported`] on Windows, where a
    /// mapping disappears with its last handle and cannot be removed sooner.
    pub fn remove(name: &str) -> Result<()> {
        let os_name = sys::shm::resolve(name, "shared memory")?;
        if !sys::shm::REMOVABLE {
            return Err(Error::new(
                ErrorKind::Unsupported,
                name,
                format!(
                    "cannot remove shared memory {name:?} ({os_name}): Windows deletes a mapping \
                     when the last process holding it closes it; end those processes instead"
                ),
            ));
        }
        registry::remove(&os_name, Kind::Segment).map_err(|e| {
            Error::from_io(
                e,
                name,
                &format!("cannot remove shared memory {name:?} ({os_name})"),
                "",
            )
        })
    }

    /// Size in bytes, as the OS reported it when mapped. A segment created here
    /// has exactly the size asked for; one opened by name on Windows may report
    /// its size rounded up to a whole page when the OS does not reveal the exact
    /// size (Wine; Python's `SharedMemory` documents the same).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always `false`: segments have at least one byte.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// The name it was created or opened with (`None` for unnamed segments).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The OS-level name: `Local\NAME` or `/NAME`.
    pub fn os_name(&self) -> Option<&str> {
        self.os_name.as_deref()
    }

    /// How it is mapped.
    pub fn protection(&self) -> Protection {
        self.access
    }

    /// Whether this process created it (and so owns its name).
    pub fn is_owner(&self) -> bool {
        self.owner.is_some()
    }

    /// Whether dropping the creator's segment removes its name (Unix).
    pub fn set_remove_on_drop(&mut self, remove: bool) {
        self.remove_on_drop = remove;
    }

    fn bounds(&self, offset: u64, len: usize, write: bool) -> io::Result<usize> {
        if write && self.access == Protection::ReadOnly {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("shared memory {} is mapped read-only", self.display_name()),
            ));
        }
        let mapped = self.map.len() as u64;
        let now = self.map.current_len()?.min(mapped);
        let end = offset.checked_add(len as u64);
        match end {
            Some(end) if end <= now => Ok(offset as usize),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                if now < mapped {
                    format!(
                        "{len} bytes at offset {offset} are beyond shared memory {}: another process \
                         shrank it from {mapped} to {now} bytes",
                        self.display_name()
                    )
                } else {
                    format!(
                        "{len} bytes at offset {offset} are beyond the end of shared memory {} ({mapped} bytes)",
                        self.display_name()
                    )
                },
            )),
        }
    }

    fn display_name(&self) -> String {
        match &self.name {
            Some(n) => format!("{n:?}"),
            None => "(unnamed)".to_owned(),
        }
    }

    /// Copies `buf.len()` bytes from `offset` into `buf`.
    ///
    /// # Errors
    /// `InvalidInput` if the range does not fit (including after another process
    /// shrank the object).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let at = self.bounds(offset, buf.len(), false)?;
        // SAFETY: `bounds` checked that at..at+len lies inside the mapping and
        // the object. The source may be written concurrently by another
        // process; we copy bytes out and never form a reference to them.
        #[allow(unsafe_code)]
        unsafe {
            std::ptr::copy_nonoverlapping(self.map.ptr().add(at), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }

    /// Copies `data` into the segment at `offset`.
    ///
    /// # Errors
    /// `PermissionDenied` on a read-only mapping; `InvalidInput` if the range
    /// does not fit.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let at = self.bounds(offset, data.len(), true)?;
        // SAFETY: in bounds (checked above) of a writable mapping; we write
        // through a raw pointer and never form a reference to shared bytes.
        #[allow(unsafe_code)]
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.ptr().add(at), data.len())
        };
        Ok(())
    }

    fn atomic_ptr(&self, offset: u64, size: usize) -> io::Result<*mut u8> {
        if !offset.is_multiple_of(size as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("offset {offset} is not aligned to {size} bytes"),
            ));
        }
        // Atomics can store, so they need a writable mapping.
        let at = self.bounds(offset, size, true)?;
        // SAFETY: in bounds, checked above.
        #[allow(unsafe_code)]
        Ok(unsafe { self.map.ptr().add(at) })
    }

    /// The 4 bytes at `offset` as an atomic, shared with every process that maps
    /// the segment.
    ///
    /// # Errors
    /// `InvalidInput` if `offset` is not a multiple of 4 or out of bounds;
    /// `PermissionDenied` on a read-only mapping.
    pub fn atomic_u32(&self, offset: u64) -> io::Result<&AtomicU32> {
        let p = self.atomic_ptr(offset, 4)?;
        // SAFETY: aligned (the mapping is page-aligned and offset % 4 == 0), in
        // bounds, writable, and valid while `self` is borrowed.
        #[allow(unsafe_code)]
        Ok(unsafe { &*(p as *const AtomicU32) })
    }

    /// The 8 bytes at `offset` as an atomic; see [`atomic_u32`](Self::atomic_u32).
    ///
    /// # Errors
    /// As for [`atomic_u32`](Self::atomic_u32), with 8-byte alignment.
    pub fn atomic_u64(&self, offset: u64) -> io::Result<&AtomicU64> {
        let p = self.atomic_ptr(offset, 8)?;
        // SAFETY: as for atomic_u32, with 8-byte alignment.
        #[allow(unsafe_code)]
        Ok(unsafe { &*(p as *const AtomicU64) })
    }

    /// The base address of the mapping. Using it is up to you; see
    /// [`as_slice`](Self::as_slice) for the rules.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.ptr()
    }

    /// The whole segment as a byte slice.
    ///
    /// # Safety
    /// For the lifetime of the slice no process (this one included) may write
    /// to the segment, and no process may shrink it. Otherwise use
    /// [`read_at`](Self::read_at).
    #[allow(unsafe_code)]
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is valid for len bytes; the caller promises that
        // nothing writes or shrinks it while the slice lives.
        unsafe { std::slice::from_raw_parts(self.map.ptr(), self.map.len()) }
    }

    /// The whole segment as a mutable byte slice.
    ///
    /// # Safety
    /// For the lifetime of the slice no other process may read or write the
    /// segment, and none may shrink it; the mapping must be writable.
    #[allow(unsafe_code)]
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, plus exclusive access promised by the caller.
        unsafe { std::slice::from_raw_parts_mut(self.map.ptr(), self.map.len()) }
    }

    /// Writes modified pages of a file-backed mapping to the file
    /// (`FlushViewOfFile`, `msync`).
    ///
    /// # Errors
    /// OS errors.
    pub fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }
}
