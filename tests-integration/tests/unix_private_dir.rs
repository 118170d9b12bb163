//! Unix: the per-user directory must be a private directory we own; anything
//! else is refused with a fix in the message. One test in its own process,
//! because it changes XDG_RUNTIME_DIR.
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use named_ipc::pipe::PipeListener;
use named_ipc::ErrorKind;

#[test]
fn an_unsafe_pipe_directory_is_refused_with_a_fix() {
    let runtime = std::env::temp_dir().join(unique("xdg"));
    std::fs::create_dir(&runtime).unwrap();
    std::env::set_var("XDG_RUNTIME_DIR", &runtime);
    let dir = runtime.join("named-ipc");
    let name = unique("dir");
    assert_eq!(
        named_ipc::name::pipe_os_name(&name).unwrap(),
        dir.join(&name).to_str().unwrap(),
        "plain names live in $XDG_RUNTIME_DIR/named-ipc"
    );

    // Open to others: refused, with the chmod to run.
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = PipeListener::bind(&name).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(e.to_string().contains("chmod 700"), "{e}");

    // Someone else's: refused (only checkable when we may chown, i.e. as root).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    if std::os::unix::fs::chown(&dir, Some(54321), None).is_ok() {
        let e = PipeListener::bind(&name).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("belongs to uid 54321"), "{e}");
        std::os::unix::fs::chown(&dir, Some(effective_uid()), None).unwrap();
    }

    // A symlink planted in its place: refused.
    std::fs::remove_dir(&dir).unwrap();
    let elsewhere = runtime.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
    let e = PipeListener::bind(&name).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(e.to_string().contains("not a directory"), "{e}");

    // Our own private directory: fine.
    std::fs::remove_file(&dir).unwrap();
    let l = PipeListener::bind(&name).unwrap();
    assert!(l.os_name().starts_with(dir.to_str().unwrap()));
    drop(l);
    std::fs::remove_dir_all(&runtime).unwrap();
}

/// The effective uid, read off a file we just created.
fn effective_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let probe = std::env::temp_dir().join(unique("uid"));
    std::fs::write(&probe, b"").unwrap();
    let uid = std::fs::metadata(&probe).unwrap().uid();
    std::fs::remove_file(&probe).unwrap();
    uid
}
