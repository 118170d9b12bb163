//! Shared memory on Windows: file-mapping (section) objects, as in the spec:
//! `CreateFileMappingW` / `OpenFileMappingW` / `MapViewOfFile`.

use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::ptr::NonNull;

use windows_sys::Win32::Foundation::{
    DuplicateHandle, GetLastError, DUPLICATE_SAME_ACCESS, ERROR_ALREADY_EXISTS, HANDLE,
    INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, FlushViewOfFile, MapViewOfFile, OpenFileMappingW, UnmapViewOfFile,
    VirtualQuery, FILE_MAP_COPY, FILE_MAP_READ, FILE_MAP_WRITE, MEMORY_BASIC_INFORMATION,
    MEMORY_MAPPED_VIEW_ADDRESS, PAGE_READONLY, PAGE_READWRITE, PAGE_WRITECOPY, SEC_FILE, SEC_IMAGE,
    SEC_RESERVE,
};
use windows_sys::Win32::System::Threading::GetCurrentProcess;

use super::security::SecurityDescriptor;
use super::{object_type, owned, raw, wide};
use crate::error::{Error, ErrorKind, Result};
use crate::name::{self, LOCAL_PREFIX};
use crate::shm::Protection;

/// Longest kernel object name (UTF-16 units).
const MAX_NAME: usize = 260;

/// `SECTION_QUERY`: lets NtQuerySection report the exact size.
const SECTION_QUERY: u32 = 0x0001;

#[repr(C)]
struct SectionBasicInformation {
    base_address: *mut c_void,
    allocation_attributes: u32,
    maximum_size: i64,
}

#[link(name = "ntdll")]
extern "system" {
    fn NtQuerySection(
        section: HANDLE,
        class: u32,
        info: *mut c_void,
        len: usize,
        returned: *mut usize,
    ) -> i32;
}

/// A Windows mapping lives exactly as long as its handles: nothing to remove.
pub(crate) const REMOVABLE: bool = false;

/// Creates the section (or, unless `exclusive`, opens it if it exists).
/// Returns the mapping and whether we created it.
pub(crate) fn create(
    os_name: &str,
    size: u64,
    security: &crate::security::Security,
    exclusive: bool,
) -> io::Result<(Mapping, bool)> {
    let sd = SecurityDescriptor::default_for(*security == crate::security::Security::LocalUsers)?;
    Mapping::create_section(os_name, size, &sd, exclusive)
}

/// Windows cannot remove a named mapping; see `REMOVABLE`.
pub(crate) fn unlink(_os_name: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "Windows deletes a mapping when its last handle closes",
    ))
}

/// Windows objects die with their last handle and are never removed by name,
/// so their identity is never needed.
pub(crate) fn identity(_os_name: &str) -> io::Result<Option<crate::sys::ObjectId>> {
    Ok(None)
}

/// Not needed on Windows: nothing is removed by name.
pub(crate) fn user_of(_id: crate::sys::ObjectId) -> io::Result<Option<u32>> {
    Ok(None)
}

/// Windows has no portable way to enumerate sections; only our records list.
pub(crate) fn list_objects() -> io::Result<Vec<(String, u64)>> {
    Ok(Vec::new())
}

/// `NAME` → `Local\NAME`; `Local\NAME` and `Global\NAME` as given.
pub(crate) fn resolve(name: &str, kind: &str) -> Result<String> {
    if name.starts_with('/') {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!("{kind} name {name:?} starts with '/', a POSIX form; on Windows use NAME, Local\\NAME or Global\\NAME"),
        ));
    }
    let (prefix, bare) = name::object_parts(name, kind)?;
    let os = format!("{}{bare}", prefix.unwrap_or(LOCAL_PREFIX));
    let units = os.encode_utf16().count();
    if units > MAX_NAME {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!(
                "{kind} name {name:?} is too long: {units} UTF-16 units, Windows allows {MAX_NAME}"
            ),
        ));
    }
    Ok(os)
}

/// A mapped view and its section handle.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    section: OwnedHandle,
    child: Option<OwnedHandle>,
}

// SAFETY: a Mapping is a raw pointer to shared memory that every user accesses
// through copies or atomics, plus owned handles; nothing is tied to a thread.
unsafe impl Send for Mapping {}
// SAFETY: see above.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr is the base of a view we mapped; borrows of the memory are
        // tied to the Mapping's lifetime.
        unsafe {
            UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS {
                Value: self.ptr.as_ptr().cast(),
            })
        };
    }
}

fn view_access(access: Protection) -> u32 {
    match access {
        Protection::ReadOnly => FILE_MAP_READ,
        Protection::ReadWrite => FILE_MAP_READ | FILE_MAP_WRITE,
        Protection::CopyOnWrite => FILE_MAP_COPY,
    }
}

/// `SectionBasicInformation` (NtQuerySection); needs `SECTION_QUERY`.
fn query_section(section: HANDLE) -> Option<SectionBasicInformation> {
    let mut info = SectionBasicInformation {
        base_address: std::ptr::null_mut(),
        allocation_attributes: 0,
        maximum_size: 0,
    };
    // SAFETY: info is a valid out-buffer of the size we pass.
    let status = unsafe {
        NtQuerySection(
            section,
            0,
            (&mut info as *mut SectionBasicInformation).cast(),
            std::mem::size_of::<SectionBasicInformation>(),
            std::ptr::null_mut(),
        )
    };
    (status >= 0).then_some(info)
}

/// The section's exact size (NtQuerySection), or the view's page-rounded size.
fn section_size(section: HANDLE, view: *mut c_void) -> io::Result<u64> {
    if let Some(info) = query_section(section).filter(|i| i.maximum_size > 0) {
        return Ok(info.maximum_size as u64);
    }
    // SAFETY: all-zero is a valid MEMORY_BASIC_INFORMATION.
    let mut mbi: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: view is the base of our mapped view; mbi is a valid out-pointer.
    let n = unsafe {
        VirtualQuery(
            view,
            &mut mbi,
            std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
        )
    };
    if n == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(mbi.RegionSize as u64)
}

fn map_view(
    section: OwnedHandle,
    access: Protection,
    known_len: Option<u64>,
) -> io::Result<Mapping> {
    // SAFETY: a fresh view of a section handle we own; 0 length maps it whole.
    let view = unsafe { MapViewOfFile(raw(&section), view_access(access), 0, 0, 0) };
    let ptr = NonNull::new(view.Value.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
    let len = match known_len {
        Some(l) => l,
        None => section_size(raw(&section), ptr.as_ptr().cast())?,
    };
    let len = usize::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too large"))?;
    Ok(Mapping {
        ptr,
        len,
        section,
        child: None,
    })
}

fn split(size: u64) -> (u32, u32) {
    ((size >> 32) as u32, size as u32)
}

impl Mapping {
    /// See [`identity`].
    pub(crate) fn identity(&self) -> Option<crate::sys::ObjectId> {
        None
    }

    /// Creates the section `os_name` of `size` bytes. `exclusive`: fail with
    /// `AlreadyExists` if it exists. Returns whether we created it.
    fn create_section(
        os_name: &str,
        size: u64,
        sd: &SecurityDescriptor,
        exclusive: bool,
    ) -> io::Result<(Mapping, bool)> {
        let w = wide(os_name);
        let sa = sd.attributes();
        let (hi, lo) = split(size);
        // SAFETY: w is NUL-terminated; sa points at our live descriptor.
        let h = unsafe {
            CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                &sa,
                PAGE_READWRITE,
                hi,
                lo,
                w.as_ptr(),
            )
        };
        // SAFETY: reading the last error right after the call.
        let existed = unsafe { GetLastError() } == ERROR_ALREADY_EXISTS;
        let section = owned(h, std::ptr::null_mut())?;
        if existed && exclusive {
            return Err(io::Error::from_raw_os_error(ERROR_ALREADY_EXISTS as i32));
        }
        let known = if existed { None } else { Some(size) };
        Ok((map_view(section, Protection::ReadWrite, known)?, !existed))
    }

    pub(crate) fn open(os_name: &str, access: Protection) -> io::Result<Mapping> {
        let w = wide(os_name);
        let desired = match access {
            Protection::ReadWrite => FILE_MAP_READ | FILE_MAP_WRITE,
            Protection::ReadOnly | Protection::CopyOnWrite => FILE_MAP_READ,
        };
        // SAFETY: w is NUL-terminated.
        let mut h = unsafe { OpenFileMappingW(desired | SECTION_QUERY, 0, w.as_ptr()) };
        if h.is_null() {
            // Sections made by others may not grant SECTION_QUERY.
            // SAFETY: as above.
            h = unsafe { OpenFileMappingW(desired, 0, w.as_ptr()) };
        }
        let section = owned(h, std::ptr::null_mut())?;
        map_view(section, access, None)
    }

    pub(crate) fn anonymous(size: u64) -> io::Result<Mapping> {
        let (hi, lo) = split(size);
        // SAFETY: no name, default security: a private section.
        let h = unsafe {
            CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                std::ptr::null(),
                PAGE_READWRITE,
                hi,
                lo,
                std::ptr::null(),
            )
        };
        let section = owned(h, std::ptr::null_mut())?;
        map_view(section, Protection::ReadWrite, Some(size))
    }

    pub(crate) fn map_file(file: &File, access: Protection) -> io::Result<Mapping> {
        let size = file.metadata()?.len();
        if size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the file is empty, and an empty file cannot be mapped (ERROR_FILE_INVALID)",
            ));
        }
        let protect = match access {
            Protection::ReadOnly => PAGE_READONLY,
            Protection::ReadWrite => PAGE_READWRITE,
            Protection::CopyOnWrite => PAGE_WRITECOPY,
        };
        // SAFETY: the file handle is open for the duration of the call; size 0
        // maps the whole file; no name.
        let h = unsafe {
            CreateFileMappingW(
                file.as_raw_handle() as HANDLE,
                std::ptr::null(),
                protect,
                0,
                0,
                std::ptr::null(),
            )
        };
        let section = owned(h, std::ptr::null_mut())?;
        map_view(section, access, Some(size))
    }

    pub(crate) fn child_token(&mut self) -> io::Result<String> {
        if self.child.is_none() {
            let mut dup: HANDLE = std::ptr::null_mut();
            // SAFETY: duplicating our own section handle into our own process, as
            // an inheritable handle that child processes receive.
            super::cvt(unsafe {
                DuplicateHandle(
                    GetCurrentProcess(),
                    raw(&self.section),
                    GetCurrentProcess(),
                    &mut dup,
                    0,
                    1,
                    DUPLICATE_SAME_ACCESS,
                )
            })?;
            self.child = Some(owned(dup, std::ptr::null_mut())?);
        }
        let h = self.child.as_ref().map_or(0, |h| raw(h) as usize);
        Ok(format!("handle:{h}"))
    }

    /// Maps the section a parent described with `child_token`. The token's
    /// handle stays the caller's: it is only duplicated, never adopted, so
    /// neither a failure here nor dropping the mapping closes it.
    pub(crate) fn from_token(token: &str, access: Protection) -> io::Result<Mapping> {
        let value = crate::sys::parse_token(token, "handle")?;
        // Real handle values are small positive numbers; NULL and the
        // pseudo-handles (-1 this process, -2 this thread, ...) are not sections.
        if value == 0 || value > 0x7fff_ffff {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{value} in token {token:?} is not a handle value"),
            ));
        }
        let mut dup: HANDLE = std::ptr::null_mut();
        // SAFETY: DuplicateHandle reads our handle table entry for `value`
        // (failing if it is not open) and makes a new, not inheritable handle
        // that `owned` takes below; the original is left alone.
        let ok = unsafe {
            DuplicateHandle(
                GetCurrentProcess(),
                value as usize as HANDLE,
                GetCurrentProcess(),
                &mut dup,
                0,
                0,
                DUPLICATE_SAME_ACCESS,
            )
        };
        if ok == 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("handle {value} from token {token:?} is not open in this process ({e})"),
            ));
        }
        let section = owned(dup, std::ptr::null_mut())?;
        let ty = object_type(raw(&section))?;
        if ty != "Section" {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "handle {value} from token {token:?} is not a shared-memory section \
                     (it is an object of type {ty})"
                ),
            ));
        }
        map_view(section, access, None)
    }

    /// Maps the first `len` bytes of a section another process named (the
    /// channel handshake), read-write. The section must be plain committed
    /// memory of at least `len` bytes: not reserve-only (touching it would
    /// fault), not backed by a file or an image (an I/O error would fault), so
    /// that every access to the view is safe whatever the other process does.
    /// `section` needs `SECTION_QUERY` besides the map rights.
    pub(crate) fn from_section(section: OwnedHandle, len: u64) -> io::Result<Mapping> {
        let info = query_section(raw(&section)).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "cannot query the section (NtQuerySection)",
            )
        })?;
        let refused = SEC_RESERVE | SEC_FILE | SEC_IMAGE;
        if info.allocation_attributes & refused != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the section is not plain committed memory (attributes {:#x})",
                    info.allocation_attributes
                ),
            ));
        }
        if info.maximum_size < 0 || (info.maximum_size as u64) < len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the section has {} bytes, not {len}", info.maximum_size),
            ));
        }
        let n = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "section too large"))?;
        // SAFETY: a fresh view of the first n bytes of a section handle we own.
        let view =
            unsafe { MapViewOfFile(raw(&section), view_access(Protection::ReadWrite), 0, 0, n) };
        let ptr = NonNull::new(view.Value.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Mapping {
            ptr,
            len: n,
            section,
            child: None,
        })
    }

    /// The section handle.
    pub(crate) fn section(&self) -> HANDLE {
        raw(&self.section)
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Sections never shrink while mapped.
    pub(crate) fn current_len(&self) -> io::Result<u64> {
        Ok(self.len as u64)
    }

    pub(crate) fn flush(&self) -> io::Result<()> {
        // SAFETY: our view's base and length.
        super::cvt(unsafe { FlushViewOfFile(self.ptr.as_ptr().cast(), self.len) })
    }
}

/// The size of the section `os_name`, without keeping it mapped.
pub(crate) fn object_size(os_name: &str) -> io::Result<u64> {
    Mapping::open(os_name, Protection::ReadOnly).map(|m| m.len() as u64)
}
