//! A client checks who runs the server it reached: by default the same user as
//! itself (what the owner-only default security implies), so a pipe another
//! user created first does not receive our clients.

mod common;

use common::*;
use named_ipc::channel::ChannelOptions;
use named_ipc::pipe::{ConnectOptions, PipeStream, ServerIdentity, UserId};
use named_ipc::ErrorKind;

/// A user this test does not run as: SYSTEM on Windows, the next uid on Unix.
fn someone_else() -> UserId {
    let me = UserId::current().unwrap();
    #[cfg(windows)]
    let other: UserId = "S-1-5-18".parse().unwrap();
    #[cfg(unix)]
    let other = {
        use named_ipc::os::unix::UserIdExt;
        UserId::from_uid(me.uid() + 1)
    };
    assert_ne!(other, me);
    other
}

fn echo_once(c: &PipeStream) {
    c.set_read_timeout(Some(STEP)).unwrap();
    c.send(b"who").unwrap();
    assert_eq!(c.recv().unwrap().unwrap(), b"who");
}

#[test]
fn the_server_must_run_as_the_expected_user() {
    let name = unique("ident");
    let mut srv = Peer::spawn(&["echo", &name, "message", "255", "1000000"]);
    srv.expect("READY");
    let me = UserId::current().unwrap();
    let connect = |id: ServerIdentity| {
        ConnectOptions::new()
            .timeout(STEP)
            .server_identity(id)
            .connect(&name)
    };

    // Our own server: the default, Any and User(me) all accept it.
    echo_once(&PipeStream::connect_timeout(&name, STEP).unwrap());
    echo_once(&connect(ServerIdentity::Any).unwrap());
    echo_once(&connect(ServerIdentity::User(me.clone())).unwrap());

    // Expecting someone else: refused, naming the pipe and both users.
    let other = someone_else();
    let e = connect(ServerIdentity::User(other.clone())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let text = e.to_string();
    for needle in [name.clone(), other.to_string(), me.to_string()] {
        assert!(text.contains(&needle), "{needle:?} missing from: {text}");
    }
    assert!(text.contains("ServerIdentity::Any"), "{text}");
    // The refused client sent nothing: the server still echoes for others.
    echo_once(&PipeStream::connect_timeout(&name, STEP).unwrap());

    // The channel's connect checks the rendezvous pipe the same way.
    let chan = unique("ident-chan");
    let mut srv = Peer::spawn(&["chan-echo", &chan, "4096"]);
    srv.expect("READY");
    let e = ChannelOptions::new()
        .timeout(STEP)
        .server_identity(ServerIdentity::User(other))
        .connect(&chan)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let c = ChannelOptions::new().timeout(STEP).connect(&chan).unwrap();
    c.send(b"ok").unwrap();
    assert_eq!(c.recv().unwrap().unwrap(), b"ok");
}

#[test]
fn users_parse_from_their_os_form() {
    let me = UserId::current().unwrap();
    assert_eq!(me.to_string().parse::<UserId>().unwrap(), me);
    let e = "nobody at all".parse::<UserId>().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    #[cfg(unix)]
    {
        use named_ipc::os::unix::UserIdExt;
        assert_eq!("1000".parse::<UserId>().unwrap().uid(), 1000);
        assert_eq!("uid 1000".parse::<UserId>().unwrap().uid(), 1000);
    }
    #[cfg(windows)]
    {
        use named_ipc::os::windows::UserIdExt;
        // Parsed and written back the way Windows writes SIDs.
        assert_eq!("s-1-5-18".parse::<UserId>().unwrap().sid(), "S-1-5-18");
    }
}

/// A server running as another uid (`nobody`) on a socket open to everyone:
/// refused by default, naming the pipe and the user found. Needs root, to
/// start the server as a second uid.
#[cfg(unix)]
#[cfg_attr(
    not(tests_as_root),
    ignore = "needs root, to run the server as a second uid (CI runs as root)"
)]
#[test]
fn a_server_of_another_uid_is_refused_by_default() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(unique("other-uid"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = dir.join("s.sock").to_str().unwrap().to_owned();
    let mut srv = Peer::spawn(&["echo-as", "65534", &path]);
    srv.expect("READY");

    let e = PipeStream::connect_timeout(&path, STEP).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let text = e.to_string();
    assert!(text.contains(&path), "{text}");
    assert!(text.contains("uid 65534"), "{text}");

    // Accepted when asked for: any server, or that user.
    let any = ConnectOptions::new()
        .server_identity(ServerIdentity::Any)
        .connect(&path)
        .unwrap();
    echo_once(&any);
    let nobody = "65534".parse().unwrap();
    let named = ConnectOptions::new()
        .server_identity(ServerIdentity::User(nobody))
        .connect(&path)
        .unwrap();
    echo_once(&named);

    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}
