//! Named shared memory across real processes: bytes, access modes, sizes over
//! 4 GiB, files, unnamed segments for children, lifetimes, owners and gc.

mod common;

use std::io::Write;
use std::sync::atomic::Ordering;

use common::*;
use named_ipc::shm::{self, OwnerState, Protection, ShmSegment};
use named_ipc::ErrorKind;

/// Sends one command to a peer serving `shm_commands` and returns its answer.
fn ask(p: &mut Peer, cmd: &str) -> String {
    writeln!(p.stdin(), "{cmd}").unwrap();
    p.stdin().flush().unwrap();
    p.line()
}

#[test]
fn a_segment_created_in_one_process_is_read_and_written_in_another() {
    let name = unique("seg");
    let mut owner = Peer::spawn(&["shm-create", &name, "4096", "Shine"]);
    owner.expect("READY");
    let seg = ShmSegment::open(&name, Protection::ReadWrite).unwrap();
    assert_eq!(seg.len(), 4096);
    assert!(!seg.is_owner());
    let mut buf = [0u8; 5];
    seg.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"Shine");
    seg.write_at(100, b"from the test").unwrap();
    assert_eq!(ask(&mut owner, "read 100 13"), "DATA from the test");
    assert_eq!(ask(&mut owner, "write 200 from the owner"), "OK");
    let mut buf = [0u8; 14];
    seg.read_at(200, &mut buf).unwrap();
    assert_eq!(&buf, b"from the owner");
    // Bounds are checked, with the size in the message.
    let e = seg.read_at(4090, &mut [0u8; 7]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("4096 bytes"), "{e}");
    assert!(seg.write_at(u64::MAX, b"x").is_err());
}

#[test]
fn access_modes_are_enforced() {
    let name = unique("access");
    let mut owner = Peer::spawn(&["shm-create", &name, "4096", "original"]);
    owner.expect("READY");

    let ro = ShmSegment::open(&name, Protection::ReadOnly).unwrap();
    assert_eq!(ro.protection(), Protection::ReadOnly);
    let e = ro.write_at(0, b"x").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(
        ro.atomic_u32(0).is_err(),
        "atomics could store through a read-only view"
    );

    // Copy-on-write: our writes stay ours.
    let cow = ShmSegment::open(&name, Protection::CopyOnWrite).unwrap();
    cow.write_at(0, b"PRIVATE!").unwrap();
    let mut buf = [0u8; 8];
    cow.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"PRIVATE!");
    assert_eq!(ask(&mut owner, "read 0 8"), "DATA original");
    ro.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"original");
}

#[test]
fn create_open_and_sizes_report_clear_errors() {
    let name = unique("exists");
    let seg = ShmSegment::create(&name, 100).unwrap();
    assert!(seg.is_owner());
    let e = ShmSegment::create(&name, 100).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert!(e.to_string().contains(&name), "{e}");
    // open_or_create finds the existing one, with its own size.
    let again = ShmSegment::open_or_create(&name, 999).unwrap();
    if cfg!(windows) {
        // Windows may report an opened section's size rounded up to a page.
        assert!(again.len() == 100 || again.len() == 4096, "{}", again.len());
    } else {
        assert_eq!(again.len(), 100);
    }
    assert!(!again.is_owner());

    let missing = unique("missing");
    let e = ShmSegment::open(&missing, Protection::ReadOnly).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains(&missing), "{e}");

    let e = ShmSegment::create(&unique("zero"), 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("size 0"), "{e}");
    for bad in ["", "a/b", "a\\b", &"x".repeat(300)] {
        assert_eq!(
            ShmSegment::create(bad, 10).unwrap_err().kind(),
            ErrorKind::InvalidName,
            "{bad:?}"
        );
    }
}

#[test]
fn segments_larger_than_4_gib_work_across_processes() {
    let name = unique("huge");
    let size: u64 = 5 << 30;
    let far: u64 = (9 << 30) / 2; // 4.5 GiB
    let seg = ShmSegment::create(&name, size).unwrap();
    assert_eq!(seg.len() as u64, size);
    seg.write_at(far, b"beyond 4 GiB").unwrap();
    seg.write_at(size - 4, b"end!").unwrap();
    let mut other = Peer::spawn(&["shm-open", &name, "ro"]);
    assert_eq!(other.line(), format!("READY {size}"));
    assert_eq!(
        ask(&mut other, &format!("read {far} 12")),
        "DATA beyond 4 GiB"
    );
    assert_eq!(
        ask(&mut other, &format!("read {} 4", size - 4)),
        "DATA end!"
    );
}

#[test]
fn a_file_can_back_a_mapping_shared_by_processes() {
    let path = std::env::temp_dir().join(unique("file"));
    std::fs::write(&path, vec![b'.'; 8192]).unwrap();
    let seg = ShmSegment::map_file(&path, Protection::ReadWrite).unwrap();
    assert_eq!(seg.len(), 8192);
    let mut other = Peer::spawn(&["shm-file", path.to_str().unwrap(), "rw"]);
    assert_eq!(other.line(), "READY 8192");
    seg.write_at(10, b"shared via file").unwrap();
    assert_eq!(ask(&mut other, "read 10 15"), "DATA shared via file");
    assert_eq!(ask(&mut other, "write 4000 peer"), "OK");
    let mut buf = [0u8; 4];
    seg.read_at(4000, &mut buf).unwrap();
    assert_eq!(&buf, b"peer");
    seg.flush().unwrap();
    drop(other);
    drop(seg);
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(&on_disk[10..25], b"shared via file");
    assert_eq!(&on_disk[4000..4004], b"peer");

    let empty = std::env::temp_dir().join(unique("empty"));
    std::fs::write(&empty, b"").unwrap();
    let e = ShmSegment::map_file(&empty, Protection::ReadOnly).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("empty"), "{e}");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&empty);
}

#[test]
fn an_unnamed_segment_reaches_a_child_through_its_token() {
    let mut seg = ShmSegment::anonymous(65536).unwrap();
    assert_eq!(seg.name(), None);
    seg.write_at(0, b"for the child").unwrap();
    let token = seg.child_token().unwrap();
    let mut child = Peer::spawn(&["shm-token", &token]);
    assert_eq!(child.line(), "READY 65536");
    assert_eq!(ask(&mut child, "read 0 13"), "DATA for the child");
    assert_eq!(ask(&mut child, "write 1000 from the child"), "OK");
    let mut buf = [0u8; 14];
    seg.read_at(1000, &mut buf).unwrap();
    assert_eq!(&buf, b"from the child");
    assert!(ShmSegment::from_child_token("nonsense", Protection::ReadOnly).is_err());
}

/// A token names a descriptor/handle the caller keeps: mapping borrows and
/// duplicates it, so it stays open (and usable again) whatever happens, and
/// one that is not a segment is refused without being closed.
#[cfg(unix)]
#[test]
#[allow(unsafe_code)]
fn a_child_token_is_borrowed_never_adopted() {
    let is_open = |fd: i32| {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
    };
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let e =
        ShmSegment::from_child_token(&format!("fd:{}", fds[0]), Protection::ReadWrite).unwrap_err();
    assert!(
        is_open(fds[0]),
        "a refused token's descriptor was closed ({e})"
    );
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    // SAFETY: closing the pipe we made; nothing else owns these numbers.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }

    let mut seg = ShmSegment::anonymous(4096).unwrap();
    seg.write_at(0, b"twice").unwrap();
    let token = seg.child_token().unwrap();
    let fd: i32 = token.strip_prefix("fd:").unwrap().parse().unwrap();
    for _ in 0..2 {
        let mapped = ShmSegment::from_child_token(&token, Protection::ReadOnly).unwrap();
        let mut buf = [0u8; 5];
        mapped.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"twice");
        drop(mapped);
        assert!(
            is_open(fd),
            "dropping the mapping closed the token's descriptor"
        );
    }
}

/// As above, for a Windows handle.
#[cfg(windows)]
#[test]
#[allow(unsafe_code)]
fn a_child_token_is_borrowed_never_adopted() {
    use windows_sys::Win32::Foundation::{CloseHandle, GetHandleInformation, HANDLE};
    use windows_sys::Win32::System::Threading::CreateEventW;
    let is_open = |h: HANDLE| {
        let mut flags = 0u32;
        // SAFETY: only queries the handle table.
        unsafe { GetHandleInformation(h, &mut flags) != 0 }
    };
    // SAFETY: an unnamed event, closed below.
    let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
    assert!(!event.is_null());
    let e =
        ShmSegment::from_child_token(&format!("handle:{}", event as usize), Protection::ReadWrite)
            .unwrap_err();
    assert!(is_open(event), "a refused token's handle was closed ({e})");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    // SAFETY: our event.
    unsafe { CloseHandle(event) };

    let mut seg = ShmSegment::anonymous(4096).unwrap();
    seg.write_at(0, b"twice").unwrap();
    let token = seg.child_token().unwrap();
    let h: usize = token.strip_prefix("handle:").unwrap().parse().unwrap();
    for _ in 0..2 {
        let mapped = ShmSegment::from_child_token(&token, Protection::ReadOnly).unwrap();
        let mut buf = [0u8; 5];
        mapped.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"twice");
        drop(mapped);
        assert!(
            is_open(h as HANDLE),
            "dropping the mapping closed the token's handle"
        );
    }
}

#[test]
fn atomics_are_shared_between_processes() {
    let name = unique("atomic");
    let seg = ShmSegment::create(&name, 64).unwrap();
    let counter = seg.atomic_u32(8).unwrap();
    let mut a = Peer::spawn(&["shm-open", &name, "rw"]);
    let mut b = Peer::spawn(&["shm-open", &name, "rw"]);
    a.expect("READY");
    b.expect("READY");
    writeln!(a.stdin(), "add 8 20000").unwrap();
    writeln!(b.stdin(), "add 8 20000").unwrap();
    a.stdin().flush().unwrap();
    b.stdin().flush().unwrap();
    for _ in 0..20000 {
        counter.fetch_add(1, Ordering::SeqCst);
    }
    assert_eq!(a.line(), "OK");
    assert_eq!(b.line(), "OK");
    assert_eq!(counter.load(Ordering::SeqCst), 60000);
    assert!(seg.atomic_u32(6).is_err(), "misaligned");
    assert!(seg.atomic_u64(64).is_err(), "out of bounds");
    assert!(seg.atomic_u64(56).is_ok());
}

#[test]
fn the_creator_owns_the_name() {
    let name = unique("life");
    let seg = ShmSegment::create(&name, 100).unwrap();
    let entry = shm::list()
        .unwrap()
        .into_iter()
        .find(|e| e.os_name.ends_with(&name))
        .expect("listed");
    assert_eq!(entry.owner, OwnerState::Alive);
    assert_eq!(entry.owner_pid, Some(std::process::id()));
    assert_eq!(entry.kind.as_deref(), Some("segment"));
    drop(seg);
    // Unix: the name is removed; Windows: the last handle closed.
    assert_eq!(
        ShmSegment::open(&name, Protection::ReadOnly)
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert!(!shm::list()
        .unwrap()
        .iter()
        .any(|e| e.os_name.ends_with(&name)));
}

#[cfg(unix)]
#[test]
fn gc_removes_what_dead_owners_left_and_nothing_else() {
    use std::os::unix::fs::PermissionsExt;

    // Crashed owner: its segment stays, listed as dead, and gc removes it.
    let crashed = unique("crashed");
    let mut owner = Peer::spawn(&["shm-create", &crashed, "4096", "x"]);
    owner.expect("READY");
    owner.kill();
    let find = |n: &str| {
        shm::list()
            .unwrap()
            .into_iter()
            .find(|e| e.os_name.ends_with(n))
    };
    assert_eq!(find(&crashed).expect("listed").owner, OwnerState::Dead);

    // Kept on purpose: survives gc.
    let kept = unique("kept");
    let mut k = Peer::spawn(&["shm-keep", &kept, "4096"]);
    k.expect("DONE");
    k.wait_ok();
    assert_eq!(find(&kept).expect("listed").owner, OwnerState::Kept);

    // Not ours (made with plain shm_open semantics): never touched.
    let foreign = unique("foreign");
    let foreign_path = format!("/dev/shm/{foreign}");
    let linux = std::path::Path::new("/dev/shm").is_dir();
    if linux {
        std::fs::write(&foreign_path, b"not named-ipc").unwrap();
        assert_eq!(find(&foreign).expect("listed").owner, OwnerState::Unknown);
    }

    // A live owner: untouched.
    let live = ShmSegment::create(&unique("live"), 10).unwrap();

    let removed = shm::gc().unwrap();
    assert!(removed.iter().any(|r| r.ends_with(&crashed)), "{removed:?}");
    assert!(find(&crashed).is_none());
    assert_eq!(
        ShmSegment::open(&crashed, Protection::ReadOnly)
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert!(ShmSegment::open(&kept, Protection::ReadOnly).is_ok());
    assert!(ShmSegment::open(live.name().unwrap(), Protection::ReadOnly).is_ok());
    if linux {
        assert_eq!(std::fs::read(&foreign_path).unwrap(), b"not named-ipc");
        std::fs::remove_file(&foreign_path).unwrap();
        // Owner-only by default.
        let p = format!("/dev/shm/{}", live.name().unwrap());
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    ShmSegment::remove(&kept).unwrap();
    assert!(find(&kept).is_none());
}

#[cfg(unix)]
#[test]
fn local_users_opens_the_segment_to_everyone() {
    use std::os::unix::fs::PermissionsExt;
    let name = unique("everyone");
    let _seg = named_ipc::shm::SegmentOptions::new()
        .security(named_ipc::Security::LocalUsers)
        .create(&name, 10)
        .unwrap();
    if std::path::Path::new("/dev/shm").is_dir() {
        let mode = std::fs::metadata(format!("/dev/shm/{name}"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o666);
    }
}

#[cfg(windows)]
#[test]
fn windows_segments_die_with_their_last_handle_and_cannot_be_removed() {
    let name = unique("winlife");
    let mut owner = Peer::spawn(&["shm-create", &name, "4096", "alive"]);
    owner.expect("READY");
    let seg = ShmSegment::open(&name, Protection::ReadOnly).unwrap();
    let e = ShmSegment::remove(&name).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    owner.kill();
    // We still hold it: it lives on.
    let again = ShmSegment::open(&name, Protection::ReadOnly).unwrap();
    let mut buf = [0u8; 5];
    again.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"alive");
    drop(again);
    drop(seg);
    assert_eq!(
        ShmSegment::open(&name, Protection::ReadOnly)
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}
