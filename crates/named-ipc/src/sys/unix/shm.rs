//! Shared memory on Unix: POSIX `shm_open` objects (`/NAME`), sealed memfds
//! (Linux) for unnamed segments, and `mmap` of regular files.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use rustix::fs::{Mode, RawMode};
use rustix::mm::{MapFlags, MsyncFlags, ProtFlags};
use rustix::shm::OFlags;

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

fn c_name(os_name: &str) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(os_name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

/// `mode` as the OS's `mode_t` (16 bits on macOS and FreeBSD).
fn mode(mode: u32) -> Mode {
    Mode::from_raw_mode(mode as RawMode)
}

fn shm_open(os_name: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    let c = c_name(os_name)?;
    // shm_open sets FD_CLOEXEC on the new descriptor (POSIX).
    Ok(rustix::io::retry_on_intr(|| {
        rustix::shm::open(&c, flags, mode)
    })?)
}

pub(crate) fn unlink(os_name: &str) -> io::Result<()> {
    let c = c_name(os_name)?;
    Ok(rustix::shm::unlink(&c)?)
}

fn fd_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(rustix::fs::fstat(fd)?.st_size as u64)
}

fn truncate(fd: BorrowedFd<'_>, size: u64) -> io::Result<()> {
    if i64::try_from(size).is_err() {
        return Err(too_big(size));
    }
    Ok(rustix::io::retry_on_intr(|| {
        rustix::fs::ftruncate(fd, size)
    })?)
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
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn mmap(fd: BorrowedFd<'_>, len: u64, access: Protection) -> io::Result<NonNull<u8>> {
    let len = usize::try_from(len).map_err(|_| too_big(len))?;
    let (prot, flags) = match access {
        Protection::ReadOnly => (ProtFlags::READ, MapFlags::SHARED),
        Protection::ReadWrite => (ProtFlags::READ | ProtFlags::WRITE, MapFlags::SHARED),
        Protection::CopyOnWrite => (ProtFlags::READ | ProtFlags::WRITE, MapFlags::PRIVATE),
    };
    // SAFETY: a fresh mapping at an address the kernel chooses (null hint),
    // so no existing memory is replaced; fd is open.
    let p = unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) }?;
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))
}

fn open_flags(access: Protection) -> OFlags {
    match access {
        Protection::ReadWrite => OFlags::RDWR,
        Protection::ReadOnly | Protection::CopyOnWrite => OFlags::RDONLY,
    }
}

impl Mapping {
    fn new(fd: OwnedFd, len: u64, access: Protection, backing: Backing) -> io::Result<Mapping> {
        let ptr = mmap(fd.as_fd(), len, access)?;
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
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL,
            self::mode(mode),
        )?;
        let init = (|| {
            // The umask may have removed bits we were asked for.
            rustix::fs::fchmod(&fd, self::mode(mode))?;
            truncate(fd.as_fd(), size)?;
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
        let fd = shm_open(os_name, open_flags(access), Mode::empty())?;
        let size = wait_for_size(fd.as_fd())?;
        Mapping::new(fd, size, access, Backing::Resizable)
    }

    /// An unnamed segment. Linux: a memfd sealed against shrinking and growing,
    /// so no holder can pull memory from under another. Elsewhere: a POSIX shm
    /// object unlinked at once.
    pub(crate) fn anonymous(size: u64) -> io::Result<Mapping> {
        #[cfg(linux_like)]
        {
            use rustix::fs::{MemfdFlags, SealFlags};
            let fd = rustix::fs::memfd_create(
                c"named-ipc",
                MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
            )?;
            truncate(fd.as_fd(), size)?;
            rustix::fs::fcntl_add_seals(
                &fd,
                SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
            )?;
            Mapping::new(fd, size, Protection::ReadWrite, Backing::Sealed)
        }
        #[cfg(not(linux_like))]
        {
            let os_name = format!("/nipc-anon-{}-{:x}", std::process::id(), random_u64());
            let fd = shm_open(
                &os_name,
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL,
                Mode::RUSR | Mode::WUSR,
            )?;
            let _ = unlink(&os_name);
            truncate(fd.as_fd(), size)?;
            Mapping::new(fd, size, Protection::ReadWrite, Backing::Resizable)
        }
    }

    /// Maps a regular file (the spec's `hFile` case).
    pub(crate) fn map_file(file: &File, access: Protection) -> io::Result<Mapping> {
        let size = fd_size(file.as_fd())?;
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
            self.child_fd = Some(rustix::io::dup(&self.fd)?);
        }
        let fd = self.child_fd.as_ref().map(AsRawFd::as_raw_fd).unwrap_or(-1);
        Ok(format!("fd:{fd}"))
    }

    /// Maps the segment a parent described with `child_token`. The token's
    /// descriptor stays the caller's: it is only duplicated, never adopted, so
    /// neither a failure here nor dropping the mapping closes it.
    pub(crate) fn from_token(token: &str, access: Protection) -> io::Result<Mapping> {
        let fd = RawFd::try_from(crate::sys::parse_token(token, "fd")?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "descriptor out of range"))?;
        let not_open = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("descriptor {fd} from token {token:?} is not open in this process"),
            )
        };
        if fd < 0 {
            return Err(not_open());
        }
        // SAFETY: F_DUPFD_CLOEXEC reads the descriptor table entry of `fd`
        // (failing with EBADF if it is not open) and makes a new descriptor,
        // not inherited by our own children; `fd` itself is left alone.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if dup < 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EBADF) {
                not_open()
            } else {
                e
            });
        }
        // SAFETY: dup is a fresh descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(dup) };
        let size = fd_size(owned.as_fd())?;
        if size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("descriptor {fd} from token {token:?} is not a segment (it is empty)"),
            ));
        }
        let backing = backing_of(owned.as_fd());
        Mapping::new(owned, size, access, backing)
    }

    /// Maps a whole segment received as a descriptor (the channel handshake):
    /// exactly `expected_len` bytes, the length the handshake announced.
    ///
    /// The descriptor comes from the peer, so it is checked before it is
    /// mapped. Linux: it must be a memfd sealed against shrinking and growing
    /// (`F_SEAL_SHRINK | F_SEAL_GROW`), so its size is fixed for good, and that
    /// size must be `expected_len`. Elsewhere there are no seals: the size is
    /// checked once, here. On macOS a POSIX shm object cannot be resized once
    /// it has a size (`ftruncate` fails), so that check holds. On FreeBSD the
    /// server (the only other holder of the unlinked object) could still
    /// shrink it later, and a client touching the lost pages would get
    /// `SIGBUS`: a server we chose to connect to can crash us there, which is
    /// the residual risk.
    ///
    /// # Errors
    /// `InvalidData` for a descriptor that is not a segment, not sealed
    /// (Linux), or of another size; OS errors.
    pub(crate) fn from_fd(fd: OwnedFd, expected_len: u64) -> io::Result<Mapping> {
        let refuse = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let st = rustix::fs::fstat(&fd)?;
        #[cfg(linux_like)]
        let backing = {
            use rustix::fs::SealFlags;
            let need = SealFlags::SHRINK | SealFlags::GROW;
            match rustix::fs::fcntl_get_seals(&fd) {
                Ok(seals) if seals.contains(need) => Backing::Sealed,
                Ok(_) => {
                    return Err(refuse(
                        "the server's segment is not sealed against resizing \
                         (F_SEAL_SHRINK | F_SEAL_GROW), so its size could change under us; \
                         refusing it (is the server a named-ipc channel server?)"
                            .into(),
                    ))
                }
                Err(e) => {
                    return Err(refuse(format!(
                        "the server's segment is not sealed against resizing: it is \
                         not a sealable memfd ({}); refusing it",
                        io::Error::from(e)
                    )))
                }
            }
        };
        #[cfg(not(linux_like))]
        let backing = {
            use rustix::fs::FileType;
            // macOS reports no file type for shm objects; FreeBSD a regular file.
            match super::file_type(&st) {
                FileType::RegularFile | FileType::Unknown => Backing::Resizable,
                other => {
                    return Err(refuse(format!(
                        "the server sent a {other:?} descriptor instead of a shared \
                         memory segment; refusing it"
                    )))
                }
            }
        };
        let size = st.st_size as u64;
        if size != expected_len {
            return Err(refuse(format!(
                "the server's segment is {size} bytes but its handshake says \
                 {expected_len}; refusing it"
            )));
        }
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
            Backing::Resizable => fd_size(self.fd.as_fd()),
        }
    }

    /// Writes dirty pages of a file-backed mapping to the file.
    pub(crate) fn flush(&self) -> io::Result<()> {
        // SAFETY: ptr/len are our mapping, alive while self is.
        Ok(unsafe { rustix::mm::msync(self.ptr.as_ptr().cast(), self.len, MsyncFlags::SYNC) }?)
    }
}

/// Sealed against shrinking (a Linux memfd we made), or resizable.
fn backing_of(fd: BorrowedFd<'_>) -> Backing {
    #[cfg(linux_like)]
    {
        use rustix::fs::SealFlags;
        if let Ok(seals) = rustix::fs::fcntl_get_seals(fd) {
            if seals.contains(SealFlags::SHRINK) {
                return Backing::Sealed;
            }
        }
    }
    let _ = fd;
    Backing::Resizable
}

fn wait_for_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
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
    let fd = shm_open(os_name, OFlags::RDONLY, Mode::empty())?;
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
    let fd = shm_open(os_name, OFlags::RDONLY, Mode::empty())?;
    fd_size(fd.as_fd())
}
