//! Unix backend: pipes are `SOCK_STREAM` Unix domain sockets.
#![allow(unsafe_code)]

pub(crate) mod pipe;

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::ErrorKind;

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
