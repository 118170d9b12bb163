//! How user-facing names map to OS objects.
//!
//! | you write | Windows | Linux / macOS |
//! |---|---|---|
//! | pipe `NAME` | `\\.\pipe\NAME` | `$XDG_RUNTIME_DIR/named-ipc/NAME`, else `/tmp/named-ipc-<uid>/NAME` |
//! | pipe `\\.\pipe\NAME` | as is | same as `NAME` |
//! | pipe `/abs/path.sock` | invalid | that socket path |
//!
//! Shared memory, mutexes and events share one namespace per OS, as they do on
//! Windows:
//!
//! | you write | Windows | Linux / macOS |
//! |---|---|---|
//! | `NAME` | `Local\NAME` (this session) | POSIX shm `/NAME` |
//! | `Local\NAME` | as is | `/NAME` |
//! | `Global\NAME` | as is (needs `SeCreateGlobalPrivilege` to create) | `/NAME` |
//! | `/NAME` | invalid | as is |
//!
//! A plain `NAME` must be non-empty and may not contain `/`, `\` or NUL, nor be
//! `.` or `..`. Windows compares pipe names case-insensitively; Unix paths are
//! case-sensitive, so stick to one spelling. Names that do not fit the OS limit
//! (the whole `\\.\pipe\…` string: 256 UTF-16 units; a socket path: 107 bytes on
//! Linux, 103 on macOS) are rejected with [`ErrorKind::InvalidName`]; nothing is
//! shortened behind your back.

use crate::error::{Error, ErrorKind, Result};

/// The Windows prefix of local pipe names; accepted on every OS.
pub(crate) const PIPE_PREFIX: &str = r"\\.\pipe\";

/// Windows kernel-object namespace prefixes; accepted (and dropped) on Unix.
pub(crate) const LOCAL_PREFIX: &str = r"Local\";
pub(crate) const GLOBAL_PREFIX: &str = r"Global\";

/// Splits a shared-memory / mutex / event name into its namespace prefix
/// (`Local\` or `Global\`, any case; `None` when absent) and the bare name,
/// checking the parts every OS shares. A leading `/` (POSIX style) is returned
/// as part of neither: the bare name is what follows it.
pub(crate) fn object_parts<'a>(
    name: &'a str,
    kind: &str,
) -> Result<(Option<&'static str>, &'a str)> {
    if name.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!("{kind} name is empty; give a name such as \"my-app-state\""),
        ));
    }
    if name.contains('\0') {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!("{kind} name {name:?} contains a NUL character"),
        ));
    }
    let (prefix, bare) = if let Some(rest) = strip_prefix_ignore_case(name, LOCAL_PREFIX) {
        (Some(LOCAL_PREFIX), rest)
    } else if let Some(rest) = strip_prefix_ignore_case(name, GLOBAL_PREFIX) {
        (Some(GLOBAL_PREFIX), rest)
    } else if let Some(rest) = name.strip_prefix('/') {
        (None, rest)
    } else {
        (None, name)
    };
    if bare.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!("{kind} name {name:?} has nothing after its prefix"),
        ));
    }
    check_plain(name, bare, kind)?;
    Ok((prefix, bare))
}

/// Checks the parts of a name that every OS shares and strips a leading
/// `\\.\pipe\` (any case). Returns the bare name, or the path if `allow_path` and
/// the name is an absolute path.
pub(crate) fn pipe_base_name<'a>(name: &'a str, kind: &str) -> Result<&'a str> {
    if name.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!("{kind} name is empty; give a name such as \"my-app\""),
        ));
    }
    if name.contains('\0') {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!("{kind} name {name:?} contains a NUL character"),
        ));
    }
    let bare = strip_prefix_ignore_case(name, PIPE_PREFIX).unwrap_or(name);
    if bare.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!("{kind} name {name:?} has nothing after the \\\\.\\pipe\\ prefix"),
        ));
    }
    Ok(bare)
}

/// Validates a plain (non-path) name component.
pub(crate) fn check_plain(name: &str, bare: &str, kind: &str) -> Result<()> {
    if bare == "." || bare == ".." {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!("{kind} name {name:?} is not allowed"),
        ));
    }
    if let Some(c) = bare.chars().find(|c| *c == '/' || *c == '\\') {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!(
                "{kind} name {name:?} contains {c:?}; plain names may not contain '/' or '\\' \
                 (on Unix, give an absolute path to choose the socket file yourself)"
            ),
        ));
    }
    Ok(())
}

pub(crate) fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// The OS-level name of a pipe: `\\.\pipe\NAME` on Windows, the socket path on
/// Unix. This is what `nipc pipe path NAME` prints.
///
/// # Errors
/// [`ErrorKind::InvalidName`] when the name breaks the rules in the
/// [module docs](self).
///
/// # Examples
/// ```
/// let path = named_ipc::name::pipe_os_name("jobs").unwrap();
/// assert!(path.ends_with("jobs"));
/// ```
pub fn pipe_os_name(name: &str) -> Result<String> {
    crate::sys::pipe::resolve(name).map(|a| a.display())
}

/// The OS-level name of a shared-memory segment, mutex or event:
/// `Local\NAME` / `Global\NAME` on Windows, `/NAME` on Unix. This is what
/// `nipc shm path NAME` prints.
///
/// # Errors
/// [`ErrorKind::InvalidName`] when the name breaks the rules in the
/// [module docs](self).
///
/// # Examples
/// ```
/// let n = named_ipc::name::object_os_name("ShareMemory").unwrap();
/// assert!(n == "/ShareMemory" || n == r"Local\ShareMemory");
/// ```
pub fn object_os_name(name: &str) -> Result<String> {
    crate::sys::shm::resolve(name, "shared memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_split_prefixes() {
        assert_eq!(object_parts("abc", "x").unwrap(), (None, "abc"));
        assert_eq!(object_parts("/abc", "x").unwrap(), (None, "abc"));
        assert_eq!(
            object_parts(r"local\abc", "x").unwrap(),
            (Some(LOCAL_PREFIX), "abc")
        );
        assert_eq!(
            object_parts(r"Global\abc", "x").unwrap(),
            (Some(GLOBAL_PREFIX), "abc")
        );
        for bad in ["", "/", r"Local\", "a/b", r"Global\a\b", ".", "a\0"] {
            assert_eq!(
                object_parts(bad, "x").unwrap_err().kind(),
                ErrorKind::InvalidName,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn prefix_is_stripped_case_insensitively() {
        assert_eq!(pipe_base_name(r"\\.\PIPE\abc", "pipe").unwrap(), "abc");
        assert_eq!(pipe_base_name("abc", "pipe").unwrap(), "abc");
        assert_eq!(
            pipe_base_name("", "pipe").unwrap_err().kind(),
            ErrorKind::InvalidName
        );
        assert_eq!(
            pipe_base_name(r"\\.\pipe\", "pipe").unwrap_err().kind(),
            ErrorKind::InvalidName
        );
        assert_eq!(
            pipe_base_name("a\0b", "pipe").unwrap_err().kind(),
            ErrorKind::InvalidName
        );
    }

    #[test]
    fn plain_names_reject_separators() {
        assert!(check_plain("x", "ok-name.v2", "pipe").is_ok());
        for bad in ["a/b", r"a\b", ".", ".."] {
            let e = check_plain(bad, bad, "pipe").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidName, "{bad}");
        }
    }

    #[test]
    fn os_name_of_plain_name_ends_with_it() {
        let s = pipe_os_name("named-ipc-doc").unwrap();
        assert!(s.ends_with("named-ipc-doc"), "{s}");
        assert!(pipe_os_name("").is_err());
    }
}
