//! Unix backend: pipes are `SOCK_STREAM` Unix domain sockets.
#![allow(unsafe_code)]

#[cfg(not(loom))]
pub(crate) mod channel;
pub(crate) mod futex;
pub(crate) mod pipe;
pub(crate) mod shm;
pub(crate) mod sync;

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// Unix errors whose `io::ErrorKind` is too vague for us.
pub(crate) fn classify_os_error(e: &io::Error) -> Option<ErrorKind> {
    match e.raw_os_error() {
        Some(libc::ENAMETOOLONG) => Some(ErrorKind::InvalidName),
        _ => None,
    }
}

/// A user: the numeric uid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct UserRepr(pub(crate) u32);

impl UserRepr {
    pub(crate) fn current() -> io::Result<UserRepr> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        Ok(UserRepr(unsafe { libc::geteuid() }))
    }
}

impl std::fmt::Display for UserRepr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uid {}", self.0)
    }
}

/// Turns a `-1` return into the thread's `errno`.
pub(crate) fn cvt<T: Default + PartialOrd>(r: T) -> io::Result<T> {
    if r < T::default() {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Like [`cvt`], retrying on `EINTR`.
pub(crate) fn cvt_r<T: Default + PartialOrd>(mut f: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

pub(crate) fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// The per-user directory for pipe sockets and named-ipc bookkeeping:
/// `$XDG_RUNTIME_DIR/named-ipc`, or `/tmp/named-ipc-<uid>`.
pub(crate) fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if Path::new(&d).is_absolute() => Path::new(&d).join("named-ipc"),
        _ => {
            // SAFETY: geteuid cannot fail.
            let uid = unsafe { libc::geteuid() };
            PathBuf::from(format!("/tmp/named-ipc-{uid}"))
        }
    }
}

/// Creates our per-user directory (0700) or checks that an existing one is ours
/// and private, so nobody else can plant or read sockets in it.
pub(crate) fn ensure_private_dir(name: &str, dir: &Path) -> Result<()> {
    let c = cstr(dir).map_err(|e| Error::from_io(e, name, "bad directory", ""))?;
    // SAFETY: c is a valid NUL-terminated path.
    let r = unsafe { libc::mkdir(c.as_ptr(), 0o700) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(Error::from_io(
                e,
                name,
                &format!("cannot create the pipe directory {}", dir.display()),
                "check that its parent exists and is writable",
            ));
        }
    }
    let st = lstat(dir)
        .map_err(|e| Error::from_io(e, name, &format!("cannot inspect {}", dir.display()), ""))?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            name,
            format!("{} is not a directory; remove it", dir.display()),
        ));
    }
    if st.st_uid != me {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            name,
            format!(
                "the pipe directory {} belongs to uid {}, not to you (uid {me}); \
                 remove it, or set XDG_RUNTIME_DIR",
                dir.display(),
                st.st_uid
            ),
        ));
    }
    if st.st_mode & 0o077 != 0 {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            name,
            format!(
                "the pipe directory {} has mode {:o}, open to other users; run chmod 700 on it",
                dir.display(),
                st.st_mode & 0o777
            ),
        ));
    }
    Ok(())
}

pub(crate) fn lstat(path: &Path) -> io::Result<libc::stat> {
    let c = cstr(path)?;
    // SAFETY: all-zero is a valid `stat`; lstat fills it in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated; st is a valid out-pointer.
    cvt(unsafe { libc::lstat(c.as_ptr(), &mut st) })?;
    Ok(st)
}

// `dev_t` and `ino_t` are u64 on Linux but not everywhere (macOS: i32 dev_t).
#[allow(clippy::unnecessary_cast)]
fn stat_id(st: &libc::stat) -> crate::sys::ObjectId {
    crate::sys::ObjectId {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
    }
}

/// The identity of an open file or object (`fstat`). `None` when the OS
/// reports no inode for it (macOS POSIX shm objects: `st_ino` is 0).
pub(crate) fn fd_id(fd: &impl AsRawFd) -> io::Result<Option<crate::sys::ObjectId>> {
    // SAFETY: all-zero is a valid `stat`; fstat fills it in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open; st is a valid out-pointer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok((st.st_ino != 0).then(|| stat_id(&st)))
}

/// Opens (creating it if needed) a lock file of the owner registry. `None`
/// would mean "being deleted, try again" (a Windows-only state).
pub(crate) fn open_lock_file(path: &Path) -> io::Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(Some)
}

/// Whether `path` still names the file `f` is open on (it may have been
/// removed, or removed and created again, since `f` was opened).
pub(crate) fn same_file(f: &std::fs::File, path: &Path) -> io::Result<bool> {
    let st = match lstat(path) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(fd_id(f)? == Some(stat_id(&st)))
}

/// The directory of owner records (see `crate::registry`), created private.
pub(crate) fn registry_dir() -> io::Result<PathBuf> {
    let base = runtime_dir();
    ensure_private_dir("named-ipc registry", &base)?;
    let dir = base.join("objects");
    ensure_private_dir("named-ipc registry", &dir)?;
    Ok(dir)
}

/// Security to Unix permission bits.
pub(crate) fn mode_for(security: &crate::security::Security) -> u32 {
    match security {
        crate::security::Security::LocalUsers => 0o666,
        _ => 0o600,
    }
}

#[cfg(feature = "bench-support")]
pub(crate) fn bench_wait(
    word: &std::sync::atomic::AtomicU32,
    expected: u32,
    timeout: Option<std::time::Duration>,
) {
    futex::wait(word, expected, timeout)
}

#[cfg(feature = "bench-support")]
pub(crate) fn bench_wake(word: &std::sync::atomic::AtomicU32) {
    futex::wake(word, u32::MAX)
}
