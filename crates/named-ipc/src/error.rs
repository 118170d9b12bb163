//! The crate's error type for operations on named objects.
//!
//! Stream I/O (`Read`, `Write`, `send`, `recv`) returns [`std::io::Result`], like
//! `std::net`. Creating, opening and naming objects returns [`Result`], whose
//! [`Error`] says what failed, on which name, and what to do about it. An
//! [`Error`] converts into an [`io::Error`] without losing its message, so `?` works
//! in functions that return `io::Result`.

use std::fmt;
use std::io;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is. Match on this, not on the message.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named object does not exist (no server listening, no such segment).
    NotFound,
    /// The name is already taken by a live object.
    AlreadyExists,
    /// The OS refused access (permissions, DACL, missing privilege).
    PermissionDenied,
    /// The name cannot be used on this OS (empty, bad characters, too long).
    InvalidName,
    /// An argument or option is out of range or contradictory.
    InvalidInput,
    /// Every instance of the pipe is busy.
    Busy,
    /// A deadline passed.
    TimedOut,
    /// The peer closed the connection or exited.
    Disconnected,
    /// Shared memory written by another program or another version has a layout we
    /// do not understand.
    VersionMismatch,
    /// The OS or this build cannot do it.
    Unsupported,
    /// Any other OS error; see [`Error::source`](std::error::Error::source).
    Io,
}

impl ErrorKind {
    fn io_kind(self) -> io::ErrorKind {
        match self {
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
            ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::InvalidName | ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
            ErrorKind::Busy => io::ErrorKind::WouldBlock,
            ErrorKind::TimedOut => io::ErrorKind::TimedOut,
            ErrorKind::Disconnected => io::ErrorKind::BrokenPipe,
            ErrorKind::VersionMismatch => io::ErrorKind::InvalidData,
            ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            ErrorKind::Io => io::ErrorKind::Other,
        }
    }

    /// Classifies an OS error.
    pub(crate) fn of_io(e: &io::Error) -> ErrorKind {
        if let Some(k) = crate::sys::classify_os_error(e) {
            return k;
        }
        match e.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::AlreadyExists | io::ErrorKind::AddrInUse => ErrorKind::AlreadyExists,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            io::ErrorKind::TimedOut => ErrorKind::TimedOut,
            io::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
            io::ErrorKind::Unsupported => ErrorKind::Unsupported,
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof => ErrorKind::Disconnected,
            io::ErrorKind::ConnectionRefused => ErrorKind::NotFound,
            _ => ErrorKind::Io,
        }
    }
}

/// An error from creating, opening or naming an IPC object.
///
/// Its message names the object and suggests a fix, for example
/// `cannot create pipe "jobs" (/run/user/1000/named-ipc/jobs): another server is
/// already listening on it; stop it or choose another name`.
pub struct Error {
    kind: ErrorKind,
    name: String,
    message: String,
    source: Option<io::Error>,
}

impl Error {
    /// Builds an error. `message` is a full sentence without a trailing period.
    pub(crate) fn new(kind: ErrorKind, name: &str, message: impl Into<String>) -> Error {
        Error {
            kind,
            name: name.to_owned(),
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the OS error that caused this one.
    pub(crate) fn with_source(mut self, source: io::Error) -> Error {
        self.source = Some(source);
        self
    }

    /// Wraps an OS error, classifying it, with `what` describing the operation
    /// (e.g. `cannot open shared memory "x"`) and `hint` what to do (may be empty).
    pub(crate) fn from_io(e: io::Error, name: &str, what: &str, hint: &str) -> Error {
        let kind = ErrorKind::of_io(&e);
        let mut message = format!("{what}: {e}");
        if !hint.is_empty() {
            message.push_str("; ");
            message.push_str(hint);
        }
        Error::new(kind, name, message).with_source(e)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The name of the object the failure is about, as the caller gave it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS error code, if an OS call failed.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.as_ref().and_then(io::Error::raw_os_error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.kind.io_kind(), e)
    }
}

/// Returns the crate [`Error`] inside an [`io::Error`] made by `From<Error>`, if any.
pub fn downcast_io(e: &io::Error) -> Option<&Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_object_and_converts_to_io() {
        let e = Error::from_io(
            io::Error::from(io::ErrorKind::NotFound),
            "jobs",
            "cannot connect to pipe \"jobs\"",
            "is the server running?",
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.name(), "jobs");
        let text = e.to_string();
        assert!(
            text.starts_with("cannot connect to pipe \"jobs\": "),
            "{text}"
        );
        assert!(text.ends_with("; is the server running?"), "{text}");
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        assert_eq!(downcast_io(&io).unwrap().name(), "jobs");
        assert!(io.to_string().contains("is the server running?"));
    }
}
