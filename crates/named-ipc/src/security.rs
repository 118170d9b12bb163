//! Who may use a named object. One setting for pipes, shared memory and the
//! synchronisation objects, so "owner only" means the same thing everywhere.
//!
//! OS-specific refinements (a Windows SDDL string, explicit Unix mode bits) are
//! in [`os::windows`](crate::os) and [`os::unix`](crate::os) extension traits.

/// Who may open a named object: connect to a pipe, map a segment, open a
/// mutex or event.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub enum Security {
    /// Only the creating user (and, on Windows, SYSTEM). Windows: a protected DACL
    /// granting the owner's SID and SYSTEM full control. Unix: mode 0600 (pipe
    /// sockets also sit in a 0700 per-user directory).
    #[default]
    OwnerOnly,
    /// Every local user may open it (pipes: connect, but not create instances).
    /// Windows: adds read/write for Authenticated Users. Unix: mode 0666; for a
    /// pipe this needs an absolute-path name outside the private per-user
    /// directory.
    LocalUsers,
}
