//! Shared memory on Unix: POSIX `shm_open` objects (`/NAME`), sealed memfds
//! (Linux) for unnamed segments, and `mmap` of regular files.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use super::{cvt, cvt_r};
use crate::error::{Error, ErrorKind, Result};
use crate::name;
use crate::shm::Protection;
use crate::sys::{Backoff, ObjectId, Wait};

/// Longest POSIX shm name, leading `/` included.
#[cfg(apple)]
const MAX_NAME: usize = 31;
#[cfg(not(apple))]
const MAX_NAME: usize = 255;

/// Unix names outlive their users, so they can (and must) be removed.
pub(crate) const REMOVABLE: bool = true;

/// Creates `/NAME` (or, unless `exclusive`, opens it if it exists). Returns the
/// mapping and whether we created it.
pub(crate) fn create(
    os_name: &str,
    size: u64,
    security: &crate::security::Security,
    exclusive: bool,
) -> io::Result<(Mapping, bool)> {
    match Mapping::create(os_name, size, super::mode_for(security)) {
        Ok(m) => Ok((m, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !exclusive => {
            Ok((Mapping::open(os_name, Protection::ReadWrite)?, false))
        }
        Err(e) => Err(e),
    }
}

/// `NAME`, `/NAME`, `Local\NAME`, `Global\NAME` → `/NAME`.
pub(crate) fn resolve(name: &str, kind: &str) -> Result<String> {
    let (_, bare) = name::object_parts(name, kind)?;
    let os = format!("/{bare}");
    if os.len() > MAX_NAME {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!(
                "{kind} name {name:?} is too long: {os} is {} bytes and this OS allows {MAX_NAME}; \
                 use a shorter name",
                os.len()
            ),
        ));
    }
    Ok(os)
}

fn c_name(os_name: &str) -> io::Result<CString> {
    CString::new(os_name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

/// macOS declares `shm_open` variadic, so the mode travels promoted to
/// `c_uint`; elsewhere it is a `mode_t`.
#[cfg(apple)]
fn mode_arg(mode: libc::mode_t) -> libc::c_uint {
    libc::c_uint::from(mode)
}

#[cfg(not(apple))]
fn mode_arg(mode: libc::mode_t) -> libc::mode_t {
    mode
}

fn shm_open(os_name: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let c = c_name(os_name)?;
    // SAFETY: c is NUL-terminated; shm_open returns a new descriptor or -1.
    let fd =
        cvt_r(|| unsafe { libc::shm_open(c.as_ptr(), flags | libc::O_CLOEXEC, mode_arg(mode)) })?;
    // SAFETY: fd is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn unlink(os_name: &str) -> io::Result<()> {
    let c = c_name(os_name)?;
    // SAFETY: c is NUL-terminated.
    cvt(unsafe { libc::shm_unlink(c.as_ptr()) }).map(drop)
}

fn fd_size(fd: RawFd) -> io::Result<u64> {
    // SAFETY: all-zero is a valid stat; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open; st is a valid out-pointer.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st.st_size as u64)
}

fn truncate(fd: RawFd, size: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(size).map_err(|_| too_big(size))?;
    // SAFETY: fd is an open, writable object.
    cvt_r(|| unsafe { libc::ftruncate(fd, len) }).map(drop)
}

fn too_big(size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{size} bytes cannot be mapped in this process's address space"),
    )
}

/// How the mapping relates to its object, which decides whether its size can
/// change under us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backing {
    /// A named object or a file: another process may truncate it, so accesses
    /// check the current size first.
    Resizable,
    /// A sealed memfd: its size cannot change (Linux only).
    #[cfg_attr(not(linux_like), allow(dead_code))]
    Sealed,
}

/// A mapped view and the descriptor of its object.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
    backing: Backing,
    /// A non-close-on-exec duplicate handed to children by `child_token`.
    child_fd: Option<OwnedFd>,
}

// SAFETY: a Mapping is a raw pointer to shared memory that every user accesses
// through volatile-free copies or atomics, plus owned descriptors; moving it or
// sharing references across threads is as safe as within one thread.
unsafe impl Send for Mapping {}
// SAFETY: see above.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; nobody borrows the
        // memory past the Mapping's lifetime (borrows are tied to it).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn mmap(fd: RawFd, len: u64, access: Protection) -> io::Result<NonNull<u8>> {
    let len = usize::try_from(len).map_err(|_| too_big(len))?;
    let (prot, flags) = match access {
        Protection::ReadOnly => (libc::PROT_READ, libc::MAP_SHARED),
        Protection::ReadWrite => (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED),
        Protection::CopyOnWrite => (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE),
    };
    // SAFETY: a fresh mapping chosen by the kernel; fd is open.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))
}

fn open_flags(access: Protection) -> libc::c_int {
    match access {
        Protection::ReadWrite => libc::O_RDWR,
        Protection::ReadOnly | Protection::CopyOnWrite => libc::O_RDONLY,
    }
}

impl Mapping {
    fn new(fd: OwnedFd, len: u64, access: Protection, backing: Backing) -> io::Result<Mapping> {
        let ptr = mmap(fd.as_raw_fd(), len, access)?;
        Ok(Mapping {
            ptr,
            len: len as usize,
            fd,
            backing,
            child_fd: None,
        })
    }

    /// Creates `/NAME` exclusively with `mode` permissions and `size` bytes.
    pub(crate) fn create(os_name: &str, size: u64, mode: u32) -> io::Result<Mapping> {
        let fd = shm_open(
            os_name,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            mode as libc::mode_t,
        )?;
        let init = (|| {
            // The umask may have removed bits we were asked for.
            // SAFETY: fd is open.
            cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })?;
            truncate(fd.as_raw_fd(), size)?;
            Mapping::new(fd, size, Protection::ReadWrite, Backing::Resizable)
        })();
        if init.is_err() {
            let _ = unlink(os_name);
        }
        init
    }

    /// Opens an existing `/NAME`, mapping the size the OS reports. A size of 0
    /// (a creator between `shm_open` and `ftruncate`) is waited out briefly.
    pub(crate) fn open(os_name: &str, access: Protection) -> io::Result<Mapping> {
        let fd = shm_open(os_name, open_flags(access), 0)?;
        let size = wait_for_size(fd.as_raw_fd())?;
        Mapping::new(fd, size, access, Backing::Resizable)
    }

    /// An unnamed segment. Linux: a memfd sealed against shrinking and growing,
    /// so no holder can pull memory from under another. Elsewhere: a POSIX shm
    /// object unlinked at once.
    pub(crate) fn anonymous(size: u64) -> io::Result<Mapping> {
        #[cfg(linux_like)]
        {
            // SAFETY: the name is a NUL-terminated literal.
            let raw = cvt(unsafe {
                libc::memfd_create(
                    c"named-ipc".as_ptr(),
                    libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
                )
            })?;
            // SAFETY: raw is fresh and owned by nobody else.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            truncate(fd.as_raw_fd(), size)?;
            let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
            // SAFETY: fd is a memfd created with MFD_ALLOW_SEALING.
            cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
            Mapping::new(fd, size, Protection::ReadWrite, Backing::Sealed)
        }
        #[cfg(not(linux_like))]
        {
            let os_name = format!("/nipc-anon-{}-{:x}", std::process::id(), random_u64());
            let fd = shm_open(&os_name, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o600)?;
            let _ = unlink(&os_name);
            truncate(fd.as_raw_fd(), size)?;
            Mapping::new(fd, size, Protection::ReadWrite, Backing::Resizable)
        }
    }

    /// Maps a regular file (the spec's `hFile` case).
    pub(crate) fn map_file(file: &File, access: Protection) -> io::Result<Mapping> {
        let size = fd_size(file.as_raw_fd())?;
        if size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the file is empty, and an empty file cannot be mapped (Windows: ERROR_FILE_INVALID)",
            ));
        }
        let fd = file.try_clone()?.into();
        Mapping::new(fd, size, access, Backing::Resizable)
    }

    /// A string a child process passes to `from_token` to map this segment:
    /// the number of an inheritable duplicate descriptor.
    pub(crate) fn child_token(&mut self) -> io::Result<String> {
        if self.child_fd.is_none() {
            // dup() clears FD_CLOEXEC on the copy, so children inherit it.
            // SAFETY: duplicating our own open descriptor.
            let raw = cvt(unsafe { libc::dup(self.fd.as_raw_fd()) })?;
            // SAFETY: raw is fresh and owned by nobody else.
            self.child_fd = Some(unsafe { OwnedFd::from_raw_fd(raw) });
        }
        let fd = self.child_fd.as_ref().map(AsRawFd::as_raw_fd).unwrap_or(-1);
        Ok(format!("fd:{fd}"))
    }

    /// Maps the segment a parent described with `child_token`.
    pub(crate) fn from_token(token: &str, access: Protection) -> io::Result<Mapping> {
        let fd = RawFd::try_from(crate::sys::parse_token(token, "fd")?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "descriptor out of range"))?;
        // Check that it is an open descriptor before taking ownership of it.
        // SAFETY: F_GETFD only reads the descriptor's flags.
        if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("descriptor {fd} from token {token:?} is not open in this process"),
            ));
        }
        // SAFETY: the parent gave us this inherited descriptor for our exclusive use.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: owned is open; keep it from leaking into our own children.
        cvt(unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
        let size = fd_size(owned.as_raw_fd())?;
        if size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the inherited segment is empty",
            ));
        }
        let backing = backing_of(owned.as_raw_fd());
        Mapping::new(owned, size, access, backing)
    }

    /// Maps a whole segment received as a descriptor (the channel handshake).
    pub(crate) fn from_fd(fd: OwnedFd) -> io::Result<Mapping> {
        // SAFETY: fd is ours; keep it from leaking into children.
        cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
        let size = fd_size(fd.as_raw_fd())?;
        if size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the received segment is empty",
            ));
        }
        let backing = backing_of(fd.as_raw_fd());
        Mapping::new(fd, size, Protection::ReadWrite, backing)
    }

    /// The identity of the object mapped (`None` where the OS does not tell).
    pub(crate) fn identity(&self) -> Option<ObjectId> {
        super::fd_id(&self.fd).ok().flatten()
    }

    /// The segment's descriptor.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The object's current size, if another process could have changed it.
    pub(crate) fn current_len(&self) -> io::Result<u64> {
        match self.backing {
            Backing::Sealed => Ok(self.len as u64),
            Backing::Resizable => fd_size(self.fd.as_raw_fd()),
        }
    }

    /// Writes dirty pages of a file-backed mapping to the file.
    pub(crate) fn flush(&self) -> io::Result<()> {
        // SAFETY: ptr/len are our mapping.
        cvt(unsafe { libc::msync(self.ptr.as_ptr().cast(), self.len, libc::MS_SYNC) }).map(drop)
    }
}

/// Sealed against shrinking (a Linux memfd we made), or resizable.
fn backing_of(fd: RawFd) -> Backing {
    #[cfg(linux_like)]
    {
        // SAFETY: F_GET_SEALS only reads the descriptor's seals.
        let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
        if seals >= 0 && seals & libc::F_SEAL_SHRINK != 0 {
            return Backing::Sealed;
        }
    }
    let _ = fd;
    Backing::Resizable
}

fn wait_for_size(fd: RawFd) -> io::Result<u64> {
    let wait = Wait::timeout(Some(std::time::Duration::from_secs(1)));
    let mut backoff = Backoff::new();
    loop {
        let size = fd_size(fd)?;
        if size > 0 {
            return Ok(size);
        }
        if !backoff.sleep(wait) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the segment has size 0 (its creator never set a size)",
            ));
        }
    }
}

#[cfg(not(linux_like))]
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// POSIX shm objects visible to this user (Linux: `/dev/shm`), with sizes.
pub(crate) fn list_objects() -> io::Result<Vec<(String, u64)>> {
    let dir = std::path::Path::new("/dev/shm");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for ent in std::fs::read_dir(dir)? {
        let ent = ent?;
        let Ok(meta) = ent.metadata() else { continue };
        if meta.is_file() {
            out.push((
                format!("/{}", ent.file_name().to_string_lossy()),
                meta.len(),
            ));
        }
    }
    Ok(out)
}

/// The identity of the object now at `os_name` (`NotFound` if there is none;
/// `None` if this OS does not tell, as on macOS).
pub(crate) fn identity(os_name: &str) -> io::Result<Option<ObjectId>> {
    let fd = shm_open(os_name, libc::O_RDONLY, 0)?;
    super::fd_id(&fd)
}

/// A live process that has the object `id` mapped or open, if this OS lets us
/// see it. Linux: every process of this user, through `/proc/PID/maps` and
/// `/proc/PID/fd` (other users' processes cannot be inspected and are not
/// seen). Elsewhere: always `None` (nothing can be seen).
pub(crate) fn user_of(id: ObjectId) -> io::Result<Option<u32>> {
    #[cfg(linux_like)]
    {
        proc_user_of(id)
    }
    #[cfg(not(linux_like))]
    {
        let _ = id;
        Ok(None)
    }
}

#[cfg(linux_like)]
fn proc_user_of(id: ObjectId) -> io::Result<Option<u32>> {
    use std::os::unix::fs::MetadataExt;
    // Linux's encoding of dev_t (see <sys/sysmacros.h>).
    let major = ((id.dev >> 8) & 0xfff) | ((id.dev >> 32) & !0xfff);
    let minor = (id.dev & 0xff) | ((id.dev >> 12) & !0xff);
    let dev = format!("{major:02x}:{minor:02x}");
    let ino = id.ino.to_string();
    for ent in std::fs::read_dir("/proc")? {
        let Ok(ent) = ent else { continue };
        let Some(pid) = ent.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let dir = ent.path();
        // A process we may not inspect, or that just ended, is skipped.
        if let Ok(maps) = std::fs::read_to_string(dir.join("maps")) {
            let mapped = maps.lines().any(|l| {
                let mut f = l.split_ascii_whitespace().skip(3);
                f.next() == Some(dev.as_str()) && f.next() == Some(ino.as_str())
            });
            if mapped {
                return Ok(Some(pid));
            }
        }
        if let Ok(fds) = std::fs::read_dir(dir.join("fd")) {
            for fd in fds.flatten() {
                if let Ok(m) = std::fs::metadata(fd.path()) {
                    if m.dev() == id.dev && m.ino() == id.ino {
                        return Ok(Some(pid));
                    }
                }
            }
        }
    }
    Ok(None)
}

/// The size of the object `os_name`, without mapping it.
pub(crate) fn object_size(os_name: &str) -> io::Result<u64> {
    let fd = shm_open(os_name, libc::O_RDONLY, 0)?;
    fd_size(fd.as_raw_fd())
}
