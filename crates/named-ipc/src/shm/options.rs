//! [`Protection`] and [`SegmentOptions`]: how a segment is mapped, and the
//! builder that creates or opens one.

use std::io;

use super::ShmSegment;
use crate::error::{Error, ErrorKind, Result};
use crate::registry::{self, Kind};
use crate::security::Security;
use crate::sys;

/// How a segment is mapped: its page protection (`flProtect`: `PAGE_*` and
/// `FILE_MAP_*` on Windows, `PROT_*` and `MAP_*` on Unix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Protection {
    /// Read only (`PAGE_READONLY`, `FILE_MAP_READ`; `PROT_READ`).
    ReadOnly,
    /// Read and write, shared with every other process (`PAGE_READWRITE`;
    /// `MAP_SHARED`).
    #[default]
    ReadWrite,
    /// Copy-on-write: this process may write, and its writes stay private
    /// (`PAGE_WRITECOPY`, `FILE_MAP_COPY`; `MAP_PRIVATE`).
    CopyOnWrite,
}

/// Options for creating or opening segments. Create-only settings
/// (`security`, `remove_on_drop`) are ignored by `open`.
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    access: Protection,
    security: Security,
    remove_on_drop: bool,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions::new()
    }
}

impl SegmentOptions {
    /// Read-write access, owner-only security, removed when its creator drops it.
    pub fn new() -> SegmentOptions {
        SegmentOptions {
            access: Protection::ReadWrite,
            security: Security::OwnerOnly,
            remove_on_drop: true,
        }
    }

    /// Protection for `open` (and for the segment `open_or_create` finds).
    pub fn protection(&mut self, protection: Protection) -> &mut Self {
        self.access = protection;
        self
    }

    /// Who may open a segment we create (default: only this user; Unix mode
    /// 0600, Windows owner-only DACL). `LocalUsers`: mode 0666 / any
    /// authenticated user.
    pub fn security(&mut self, security: Security) -> &mut Self {
        self.security = security;
        self
    }

    /// Unix: whether the creator's drop unlinks the name (default `true`).
    /// With `false` the segment outlives its creator until `remove` or
    /// `nipc shm rm`. Windows cannot keep a mapping without a handle, so there
    /// it lasts as long as some process holds it either way.
    pub fn remove_on_drop(&mut self, remove: bool) -> &mut Self {
        self.remove_on_drop = remove;
        self
    }

    /// Creates segment `name` of `size` bytes (zero-filled); fails if it exists.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`], [`ErrorKind::InvalidName`],
    /// [`ErrorKind::InvalidInput`] (size 0, or too large to map),
    /// [`ErrorKind::PermissionDenied`] (e.g. `Global\` without
    /// `SeCreateGlobalPrivilege`).
    pub fn create(&self, name: &str, size: u64) -> Result<ShmSegment> {
        self.create_inner(name, size, true)
    }

    /// Opens segment `name`, mapping the size the OS reports.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`], [`ErrorKind::PermissionDenied`],
    /// [`ErrorKind::InvalidName`].
    pub fn open(&self, name: &str) -> Result<ShmSegment> {
        let os_name = sys::shm::resolve(name, "shared memory")?;
        let map = sys::shm::Mapping::open(&os_name, self.access).map_err(|e| {
            Error::from_io(
                e,
                name,
                &format!("cannot open shared memory {name:?} ({os_name})"),
                "does it exist, and may this user open it with this access?",
            )
        })?;
        Ok(ShmSegment::wrap(
            map,
            Some((name, os_name)),
            self.access,
            None,
            false,
        ))
    }

    /// Opens segment `name`, or creates it with `size` bytes if it does not
    /// exist. An existing segment keeps its own size.
    ///
    /// # Errors
    /// As for [`create`](Self::create) and [`open`](Self::open).
    pub fn open_or_create(&self, name: &str, size: u64) -> Result<ShmSegment> {
        if self.access != Protection::ReadWrite {
            // Creating needs write access; open read-only segments with `open`.
            return match self.open(name) {
                Err(e) if e.kind() == ErrorKind::NotFound => self.create_inner(name, size, true),
                other => other,
            };
        }
        self.create_inner(name, size, false)
    }

    fn create_inner(&self, name: &str, size: u64, exclusive: bool) -> Result<ShmSegment> {
        let os_name = sys::shm::resolve(name, "shared memory")?;
        let what = format!("cannot create shared memory {name:?} ({os_name})");
        check_size(name, size, &what)?;
        // The name lock first, so that nobody sees the object without its
        // owner record (see `registry`).
        let creation = registry::begin(&os_name).map_err(|e| Error::from_io(e, name, &what, ""))?;
        let (map, created) = sys::shm::create(&os_name, size, &self.security, exclusive).map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::AlreadyExists {
                "it already exists; open it, remove it (`nipc shm rm`), or choose another name"
            } else if os_name.starts_with("Global\\") && e.kind() == io::ErrorKind::PermissionDenied {
                "creating Global\\ objects needs SeCreateGlobalPrivilege (a service or an administrator); use a Local\\ name"
            } else {
                ""
            };
            Error::from_io(e, name, &what, hint)
        })?;
        let owner = if created {
            let id = map.identity();
            match creation.commit(Kind::Segment, size, id) {
                Ok(o) => Some(o),
                Err(e) => {
                    creation.abandon(Kind::Segment, &os_name, id);
                    return Err(Error::from_io(e, name, &what, ""));
                }
            }
        } else {
            None
        };
        drop(creation);
        Ok(ShmSegment::wrap(
            map,
            Some((name, os_name)),
            Protection::ReadWrite,
            owner,
            self.remove_on_drop,
        ))
    }
}

pub(super) fn check_size(name: &str, size: u64, what: &str) -> Result<()> {
    if size == 0 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            name,
            format!("{what}: size 0 is not allowed; give the number of bytes it should hold"),
        ));
    }
    if usize::try_from(size).is_err() || size > i64::MAX as u64 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            name,
            format!("{what}: {size} bytes cannot be mapped in this process's address space"),
        ));
    }
    Ok(())
}
