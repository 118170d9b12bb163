//! Unix: owner-only sockets in a private directory, admitting other users only on
//! request, and never stealing a name another program is using.
#![cfg(unix)]

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use common::*;
use named_ipc::os::unix::ListenerOptionsExt;
use named_ipc::pipe::{list, ListenerOptions, PipeListener};
use named_ipc::ErrorKind;
use named_ipc::Security;

fn mode(p: &str) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn temp_sock(tag: &str) -> String {
    std::env::temp_dir()
        .join(format!("{}.sock", unique(tag)))
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn sockets_are_owner_only_in_a_private_directory() {
    let name = unique("perm");
    let l = PipeListener::bind(&name).unwrap();
    let path = l.os_name();
    assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());
    assert_eq!(mode(&path), 0o600, "{path}");
    let dir = Path::new(&path).parent().unwrap();
    assert_eq!(mode(dir.to_str().unwrap()), 0o700, "{}", dir.display());
    drop(l);
    assert!(!Path::new(&path).exists(), "socket left behind");
    assert!(
        !Path::new(&format!("{path}.lock")).exists(),
        "lock file left behind"
    );
}

#[test]
fn admitting_other_users_needs_a_path_outside_the_private_directory() {
    let e = ListenerOptions::new()
        .security(Security::LocalUsers)
        .create(&unique("everyone"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("absolute path"), "{e}");

    let path = temp_sock("everyone");
    let l = ListenerOptions::new()
        .security(Security::LocalUsers)
        .create(&path)
        .unwrap();
    assert_eq!(mode(&path), 0o666);
    drop(l);

    let path = temp_sock("group");
    let _l = ListenerOptions::new()
        .socket_mode(0o660)
        .create(&path)
        .unwrap();
    assert_eq!(mode(&path), 0o660);
}

#[test]
fn a_socket_another_program_listens_on_is_not_taken_over() {
    let path = temp_sock("foreign");
    let foreign = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let e = PipeListener::bind(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert!(
        e.to_string().contains("another program is listening"),
        "{e}"
    );
    drop(foreign);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_path_that_is_not_a_socket_is_left_alone() {
    let path = temp_sock("file");
    std::fs::write(&path, b"data").unwrap();
    let e = PipeListener::bind(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert!(e.to_string().contains("not a socket"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_crashed_servers_socket_is_listed_stale_and_reclaimed() {
    let name = unique("stale");
    let mut srv = Peer::spawn(&["bind", &name]);
    srv.expect("BOUND");
    let entry = |alive| {
        list()
            .unwrap()
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| (p.alive, p.server_pid))
            .unwrap_or_else(|| panic!("{name} not listed ({alive})"))
    };
    assert_eq!(entry("live"), (Some(true), Some(srv.pid())));
    srv.kill();
    // SIGKILL leaves the socket and the lock file behind, but not the lock.
    let path = named_ipc::name::pipe_os_name(&name).unwrap();
    assert!(Path::new(&path).exists());
    assert_eq!(entry("stale").0, Some(false));
    let l = PipeListener::bind(&name).expect("reclaim the dead server's name");
    assert_eq!(entry("reclaimed"), (Some(true), Some(std::process::id())));
    drop(l);
}
