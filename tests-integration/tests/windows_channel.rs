//! Windows: a channel client takes the server's section and events only by
//! duplicating them out of the pipe's server process, so a hostile server that
//! names bogus handle values (the client's own, garbage, objects of the wrong
//! type) gets the client to fail cleanly, without closing any handle the client
//! owns and without leaking any. One test in its own process, because it counts
//! this process's handles.
#![cfg(windows)]
#![allow(unsafe_code)]

mod common;

use common::*;
use named_ipc::channel::ShmStream;
use named_ipc::ErrorKind;
use windows_sys::Win32::Foundation::{CloseHandle, GetHandleInformation, HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::Threading::{
    CreateEventW, GetCurrentProcess, GetProcessHandleCount, WaitForSingleObject,
};

/// Handles open in this process.
fn handle_count() -> u32 {
    let mut n = 0u32;
    // SAFETY: our own process's pseudo-handle; n is a valid out-pointer.
    let ok = unsafe { GetProcessHandleCount(GetCurrentProcess(), &mut n) };
    assert_ne!(ok, 0, "GetProcessHandleCount failed");
    n
}

/// A handle the client owns: a manual-reset event, signalled, so that a
/// different object reusing its value would be noticed.
struct Mine(HANDLE);

impl Mine {
    fn new() -> Mine {
        // SAFETY: an unnamed manual-reset event, created signalled.
        let h = unsafe { CreateEventW(std::ptr::null(), 1, 1, std::ptr::null()) };
        assert!(!h.is_null());
        Mine(h)
    }

    fn value(&self) -> String {
        (self.0 as usize).to_string()
    }

    /// Still open, and still our signalled event.
    fn intact(&self) -> bool {
        let mut flags = 0u32;
        // SAFETY: queries only; fails if the value is not open.
        let open = unsafe { GetHandleInformation(self.0, &mut flags) } != 0;
        // SAFETY: as above; a wait with no timeout on whatever the value names.
        open && unsafe { WaitForSingleObject(self.0, 0) } == WAIT_OBJECT_0
    }
}

impl Drop for Mine {
    fn drop(&mut self) {
        // SAFETY: our event.
        unsafe { CloseHandle(self.0) };
    }
}

#[test]
fn a_hostile_channel_server_cannot_make_the_client_adopt_or_close_handles() {
    // Warm up: one real channel, so lazily created per-process handles exist
    // before counting.
    let name = unique("hostile-warm");
    let mut echo = Peer::spawn(&["chan-echo", &name, "4096"]);
    echo.expect("READY");
    {
        let c = ShmStream::connect_timeout(&name, STEP).unwrap();
        c.send(b"x").unwrap();
        assert_eq!(c.recv().unwrap().unwrap(), b"x");
    }
    drop(echo);

    let mine = Mine::new();
    let m = mine.value();
    let seg = "section:8896";
    // (what, the five slots: section then four events, what the error says,
    // what the server hears)
    let cases: Vec<(&str, Vec<&str>, &str, &str)> = vec![
        (
            // In the server's process one value cannot be both a section and
            // an event, whatever it names there.
            "the client's own handle values",
            vec![&m, &m, &m, &m, &m],
            "handle",
            "CLIENT-LEFT",
        ),
        (
            "garbage",
            vec!["305419896", "event", "event", "event", "event"],
            "handle",
            "CLIENT-LEFT",
        ),
        (
            "zero",
            vec!["0", "event", "event", "event", "event"],
            "handle",
            "CLIENT-LEFT",
        ),
        (
            "the server's own process (pseudo-handle -1)",
            vec![seg, "18446744073709551615", "event", "event", "event"],
            "handle",
            "CLIENT-LEFT",
        ),
        (
            "an event where the section belongs",
            vec!["event", "event", "event", "event", "event"],
            "handle",
            "CLIENT-LEFT",
        ),
        (
            "a mutex where an event belongs",
            vec![seg, "event", "mutex", "event", "event"],
            "handle",
            "CLIENT-LEFT",
        ),
        (
            "a section smaller than the handshake says",
            vec!["section:4096", "event", "event", "event", "event"],
            "handle",
            "CLIENT-LEFT",
        ),
        (
            // Touching reserved pages would fault: not memory to map.
            "a section of reserved, uncommitted memory",
            vec!["reserved:8896", "event", "event", "event", "event"],
            "handle",
            "CLIENT-LEFT",
        ),
        (
            // Every handle is right, the segment is not a channel's: the client
            // took the handles (said ok), then refused, closing all it took.
            "proper handles, a segment without a header",
            vec![seg, "event", "event", "event", "event"],
            "magic",
            "CLIENT-SAID ok",
        ),
    ];
    for (what, slots, needle, heard) in cases {
        let name = unique("hostile");
        let mut srv = Peer::spawn(&["chan-hostile", &name, &slots.join(",")]);
        srv.expect("READY");
        let before = handle_count();
        let e = ShmStream::connect_timeout(&name, STEP).unwrap_err();
        let after = handle_count();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::VersionMismatch | ErrorKind::PermissionDenied
            ),
            "{what}: {:?} {e}",
            e.kind()
        );
        assert!(e.to_string().contains(needle), "{what}: {e}");
        assert!(mine.intact(), "{what}: the client's own handle was closed");
        assert_eq!(before, after, "{what}: the client leaked handles ({e})");
        assert_eq!(srv.line(), heard, "{what}");
        srv.wait_ok();
    }
}
