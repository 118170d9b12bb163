//! Unix-only settings.

use crate::pipe::{ListenerOptions, UserId};

/// Unix settings of [`ListenerOptions`].
pub trait ListenerOptionsExt: super::sealed::Sealed {
    /// Permission bits of the socket file (default 0600; 0666 with
    /// [`Security::LocalUsers`](crate::security::Security::LocalUsers)). Anything
    /// beyond 0600 needs an absolute-path pipe name, outside the private
    /// per-user directory. Set with `chmod` between `bind` and `listen`, so no
    /// client can connect before it applies.
    fn socket_mode(&mut self, mode: u32) -> &mut Self;
}

impl ListenerOptionsExt for ListenerOptions {
    fn socket_mode(&mut self, mode: u32) -> &mut Self {
        self.unix_mode = Some(mode);
        self
    }
}

/// Unix view of a [`UserId`].
pub trait UserIdExt: super::sealed::Sealed {
    /// The numeric user id.
    fn uid(&self) -> u32;

    /// The user with numeric id `uid` (for
    /// [`ServerIdentity::User`](crate::pipe::ServerIdentity::User)).
    fn from_uid(uid: u32) -> Self
    where
        Self: Sized;
}

#[cfg(unix)]
impl UserIdExt for UserId {
    fn uid(&self) -> u32 {
        self.0 .0
    }

    fn from_uid(uid: u32) -> UserId {
        UserId(crate::sys::UserRepr(uid))
    }
}
