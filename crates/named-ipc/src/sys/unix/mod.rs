//! Unix backend: pipes are `SOCK_STREAM` Unix domain sockets.
//!
//! System calls go through rustix's typed wrappers. `unsafe` is allowed only
//! in the modules that still need it: mappings (`shm`), pthread mutexes
//! (`sync`), macOS `__ulock` (`futex`), and in `pipe` the calls rustix has no
//! safe form for; each says why.

#[cfg(feature = "bench-support")]
pub(crate) mod affinity;
// `unsafe` only to register descriptors with tokio's reactor.
#[cfg(not(loom))]
#[allow(unsafe_code)]
pub(crate) mod channel;
pub(crate) mod flag;
#[allow(unsafe_code)]
pub(crate) mod futex;
pub(crate) mod pipe;
#[allow(unsafe_code)]
pub(crate) mod shm;
#[allow(unsafe_code)]
pub(crate) mod sync;

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, Stat};

use crate::error::{Error, ErrorKind, Result};

/// Unix errors whose `io::ErrorKind` is too vague for us.
pub(crate) fn classify_os_error(e: &io::Error) -> Option<ErrorKind> {
    match e.raw_os_error() {
        Some(code) if code == rustix::io::Errno::NAMETOOLONG.raw_os_error() => {
            Some(ErrorKind::InvalidName)
        }
        _ => None,
    }
}

/// A user: the numeric uid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct UserRepr(pub(crate) u32);

impl UserRepr {
    pub(crate) fn current() -> io::Result<UserRepr> {
        Ok(UserRepr(euid()))
    }

    /// `1000` or `uid 1000`.
    pub(crate) fn parse(s: &str) -> io::Result<UserRepr> {
        let n = s.strip_prefix("uid ").unwrap_or(s);
        n.parse().map(UserRepr).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "expected a numeric uid, such as 1000",
            )
        })
    }
}

impl std::fmt::Display for UserRepr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uid {}", self.0)
    }
}

/// Our effective uid.
fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The file type and permission bits of `st` as one `u32`.
// A no-op on Linux; widens on macOS and FreeBSD (mode_t is u16 there).
#[allow(clippy::unnecessary_cast)]
pub(crate) fn mode_of(st: &Stat) -> u32 {
    st.st_mode as u32
}

/// `d` as a `Timespec`, saturating at the largest one.
pub(crate) fn timespec(d: std::time::Duration) -> rustix::event::Timespec {
    rustix::event::Timespec::try_from(d).unwrap_or(rustix::event::Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    })
}

/// The file type of `st`.
pub(crate) fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// The per-user directory for pipe sockets and named-ipc bookkeeping:
/// `$XDG_RUNTIME_DIR/named-ipc`, or `/tmp/named-ipc-<uid>`.
pub(crate) fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if Path::new(&d).is_absolute() => Path::new(&d).join("named-ipc"),
        _ => PathBuf::from(format!("/tmp/named-ipc-{}", euid())),
    }
}

/// Creates our per-user directory (0700) or checks that an existing one is ours
/// and private, so nobody else can plant or read sockets in it.
pub(crate) fn ensure_private_dir(name: &str, dir: &Path) -> Result<()> {
    if let Err(e) = rustix::fs::mkdir(dir, Mode::RWXU) {
        let e = io::Error::from(e);
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(Error::from_io(
                e,
                name,
                &format!("cannot create the named-ipc directory {}", dir.display()),
                "check that its parent exists and is writable",
            ));
        }
    }
    let st = lstat(dir)
        .map_err(|e| Error::from_io(e, name, &format!("cannot inspect {}", dir.display()), ""))?;
    let me = euid();
    if file_type(&st) != FileType::Directory {
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
                "the named-ipc directory {} belongs to uid {}, not to you (uid {me}); \
                 remove it, or set XDG_RUNTIME_DIR",
                dir.display(),
                st.st_uid
            ),
        ));
    }
    let mode = mode_of(&st);
    if mode & 0o077 != 0 {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            name,
            format!(
                "the named-ipc directory {} has mode {:o}, open to other users; run chmod 700 on it",
                dir.display(),
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

pub(crate) fn lstat(path: &Path) -> io::Result<Stat> {
    Ok(rustix::fs::lstat(path)?)
}

// `dev_t` and `ino_t` are u64 on Linux but not everywhere (macOS: i32 dev_t).
#[allow(clippy::unnecessary_cast)]
fn stat_id(st: &Stat) -> crate::sys::ObjectId {
    crate::sys::ObjectId {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
    }
}

/// The identity of an open file or object (`fstat`). `None` when the OS
/// reports no inode for it (macOS POSIX shm objects: `st_ino` is 0).
pub(crate) fn fd_id(fd: &impl AsFd) -> io::Result<Option<crate::sys::ObjectId>> {
    let st = rustix::fs::fstat(fd)?;
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
