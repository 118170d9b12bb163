//! The header of the small shared-memory objects behind Unix named mutexes and
//! events (Windows uses native kernel objects and needs none).
//!
//! ```text
//! offset  size  field
//!      0     8  magic: "NIPC-MTX" or "NIPC-EVT"
//!      8     4  version: 1 (native endian; the object never leaves the machine)
//!     12     4  state: 0 empty, 1 initialising, 2 ready (atomic; written last,
//!               with Release, by the creator)
//!     16     …  the object (pthread mutex, or event words)
//! ```
//!
//! Another process controls these bytes, so an opener validates them before use
//! and answers anything unexpected with [`ErrorKind::VersionMismatch`] or
//! [`ErrorKind::InvalidInput`] — never a panic or undefined behaviour.
//!
//! [`ErrorKind::VersionMismatch`]: crate::ErrorKind::VersionMismatch
//! [`ErrorKind::InvalidInput`]: crate::ErrorKind::InvalidInput
#![cfg_attr(windows, allow(dead_code))]

/// Size of the header in bytes.
pub(crate) const HEADER_LEN: usize = 16;
pub(crate) const MUTEX_MAGIC: [u8; 8] = *b"NIPC-MTX";
pub(crate) const EVENT_MAGIC: [u8; 8] = *b"NIPC-EVT";
pub(crate) const VERSION: u32 = 1;

pub(crate) const STATE_EMPTY: u32 = 0;
pub(crate) const STATE_INIT: u32 = 1;
pub(crate) const STATE_READY: u32 = 2;

/// Verdict on a header read from shared memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Valid and initialised: safe to use.
    Ready,
    /// The creator has not finished; wait and look again.
    NotYet,
    /// Not what we expected; the message says what is wrong.
    Wrong(WrongKind, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WrongKind {
    /// Too small, or another kind of object.
    NotOurs,
    /// Our magic, another version.
    Version,
}

/// Judges a header from its parts: the object's size, the state word (loaded
/// with Acquire), and — only meaningful once the state is ready — the magic and
/// version read after that load.
pub(crate) fn judge(
    len: usize,
    state: u32,
    magic: [u8; 8],
    version: u32,
    want: [u8; 8],
    body: usize,
) -> Verdict {
    let what = if want == MUTEX_MAGIC {
        "mutex"
    } else {
        "event"
    };
    if len < HEADER_LEN + body {
        return Verdict::Wrong(
            WrongKind::NotOurs,
            format!(
                "it is {len} bytes, too small for a named-ipc {what} ({} bytes); it is some other \
                 shared-memory object",
                HEADER_LEN + body
            ),
        );
    }
    match state {
        STATE_EMPTY | STATE_INIT => return Verdict::NotYet,
        STATE_READY => {}
        other => {
            return Verdict::Wrong(
                WrongKind::NotOurs,
                format!("its state word is {other}, so it is not a named-ipc {what}"),
            )
        }
    }
    if magic != want {
        let other = if magic == MUTEX_MAGIC {
            "a named-ipc mutex"
        } else if magic == EVENT_MAGIC {
            "a named-ipc event"
        } else {
            "some other shared-memory object"
        };
        return Verdict::Wrong(WrongKind::NotOurs, format!("it is {other}, not a {what}"));
    }
    if version != VERSION {
        return Verdict::Wrong(
            WrongKind::Version,
            format!("it was made by named-ipc layout version {version}; this build speaks version {VERSION}"),
        );
    }
    Verdict::Ready
}

#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz(data: &[u8]) {
    if data.len() < 24 {
        return;
    }
    let magic: [u8; 8] = data[..8].try_into().unwrap_or_default();
    let word = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().unwrap_or_default());
    let want = if data[20] % 2 == 0 {
        MUTEX_MAGIC
    } else {
        EVENT_MAGIC
    };
    let v = judge(
        word(8) as usize,
        word(12),
        magic,
        word(16),
        want,
        usize::from(data[21]),
    );
    if v == Verdict::Ready {
        assert!(magic == want && word(16) == VERSION && word(12) == STATE_READY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn verdicts() {
        assert_eq!(
            judge(64, STATE_READY, MUTEX_MAGIC, VERSION, MUTEX_MAGIC, 40),
            Verdict::Ready
        );
        assert_eq!(
            judge(64, STATE_INIT, [0; 8], 0, MUTEX_MAGIC, 40),
            Verdict::NotYet
        );
        assert!(matches!(
            judge(64, STATE_READY, EVENT_MAGIC, VERSION, MUTEX_MAGIC, 40),
            Verdict::Wrong(WrongKind::NotOurs, m) if m.contains("named-ipc event")
        ));
        assert!(matches!(
            judge(64, STATE_READY, MUTEX_MAGIC, 7, MUTEX_MAGIC, 40),
            Verdict::Wrong(WrongKind::Version, _)
        ));
        assert!(matches!(
            judge(10, STATE_READY, MUTEX_MAGIC, VERSION, MUTEX_MAGIC, 40),
            Verdict::Wrong(WrongKind::NotOurs, m) if m.contains("too small")
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Arbitrary bytes never panic and are Ready only when every field matches.
        #[test]
        fn arbitrary_headers_are_judged_without_panics(
            len in 0usize..200,
            state in any::<u32>(),
            magic in any::<[u8; 8]>(),
            version in any::<u32>(),
            mutex in any::<bool>(),
            body in 0usize..100,
        ) {
            let want = if mutex { MUTEX_MAGIC } else { EVENT_MAGIC };
            let v = judge(len, state, magic, version, want, body);
            let valid = len >= HEADER_LEN + body && state == STATE_READY && magic == want && version == VERSION;
            prop_assert_eq!(v == Verdict::Ready, valid);
        }
    }
}
