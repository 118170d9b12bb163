//! The header of the small shared-memory objects behind Unix named mutexes and
//! events (Windows uses native kernel objects and needs none).
//!
//! ```text
//! offset  size  field
//!      0     8  magic: "NIPC-MTX" or "NIPC-EVT"
//!      8     4  version: 2 (native endian; the object never leaves the machine)
//!     12     4  state: 0 empty, 1 initialising, 2 ready (atomic; written last,
//!               with Release, by the creator)
//!     16    16  ABI name: ASCII "<cpu>-<C library>" ("x86_64-gnu",
//!               "aarch64-musl"), NUL-padded; "u32-event-count" for events, whose
//!               body is plain 32-bit words that any process can share
//!     32     4  body size: bytes of the object after the header (for a mutex,
//!               `sizeof(pthread_mutex_t)` of the creator's C library)
//!     36     2  body alignment (`alignof`)
//!     38     1  pointer width of the creator in bytes (8 for 64-bit; 0 when
//!               the body does not depend on it)
//!     39     1  byte order: 1 little-endian, 2 big-endian
//!     40     8  reserved, 0
//!     48     …  the object (pthread mutex, or event words)
//! ```
//!
//! Version 1 (a 16-byte header without the ABI fields, events without a
//! generation word) is refused with `VersionMismatch`. A `pthread_mutex_t`
//! is an opaque structure whose size and layout belong to one C library on
//! one CPU with one pointer width: a 32-bit process, or a musl one, must not
//! lock a 64-bit glibc process's mutex. The opener compares every ABI field
//! with its own and answers a difference with `VersionMismatch`.
//!
//! Another process controls these bytes, so an opener validates them before use
//! and answers anything unexpected with [`ErrorKind::VersionMismatch`] or
//! [`ErrorKind::InvalidInput`] — never a panic or undefined behaviour.
//!
//! [`ErrorKind::VersionMismatch`]: crate::ErrorKind::VersionMismatch
//! [`ErrorKind::InvalidInput`]: crate::ErrorKind::InvalidInput
#![cfg_attr(windows, allow(dead_code))]

/// Size of the header in bytes (a multiple of 16, so the body is aligned for
/// anything).
pub(crate) const HEADER_LEN: usize = 48;
/// Bytes an opener needs to read magic, version and state (all versions).
pub(crate) const PREFIX_LEN: usize = 16;
pub(crate) const MUTEX_MAGIC: [u8; 8] = *b"NIPC-MTX";
pub(crate) const EVENT_MAGIC: [u8; 8] = *b"NIPC-EVT";
pub(crate) const VERSION: u32 = 2;

pub(crate) const STATE_EMPTY: u32 = 0;
pub(crate) const STATE_INIT: u32 = 1;
pub(crate) const STATE_READY: u32 = 2;

/// Offset of the ABI fields, and their encoded size.
pub(crate) const ABI_OFFSET: usize = 16;
pub(crate) const ABI_LEN: usize = 24;

/// The binary interface the body was laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Abi {
    /// ASCII, NUL-padded.
    pub(crate) name: [u8; 16],
    pub(crate) body_size: u32,
    pub(crate) body_align: u16,
    pub(crate) pointer_width: u8,
    /// 1 little-endian, 2 big-endian.
    pub(crate) byte_order: u8,
}

impl Abi {
    /// An ABI called `name` (cut to 16 bytes) with this process's pointer
    /// width and byte order when `native`, or 0 and this byte order when the
    /// body does not depend on them.
    pub(crate) fn new(name: &str, body_size: usize, body_align: usize, native: bool) -> Abi {
        let mut n = [0u8; 16];
        let len = name.len().min(16);
        n[..len].copy_from_slice(&name.as_bytes()[..len]);
        Abi {
            name: n,
            body_size: u32::try_from(body_size).unwrap_or(u32::MAX),
            body_align: u16::try_from(body_align).unwrap_or(u16::MAX),
            pointer_width: if native {
                std::mem::size_of::<usize>() as u8
            } else {
                0
            },
            byte_order: if cfg!(target_endian = "little") { 1 } else { 2 },
        }
    }

    pub(crate) fn to_bytes(self) -> [u8; ABI_LEN] {
        let mut b = [0u8; ABI_LEN];
        b[..16].copy_from_slice(&self.name);
        b[16..20].copy_from_slice(&self.body_size.to_ne_bytes());
        b[20..22].copy_from_slice(&self.body_align.to_ne_bytes());
        b[22] = self.pointer_width;
        b[23] = self.byte_order;
        b
    }

    pub(crate) fn from_bytes(b: [u8; ABI_LEN]) -> Abi {
        let mut name = [0u8; 16];
        name.copy_from_slice(&b[..16]);
        Abi {
            name,
            body_size: u32::from_ne_bytes([b[16], b[17], b[18], b[19]]),
            body_align: u16::from_ne_bytes([b[20], b[21]]),
            pointer_width: b[22],
            byte_order: b[23],
        }
    }

    /// For messages: `x86_64-gnu, 64-bit, 40-byte body aligned to 8`.
    fn describe(&self) -> String {
        let end = self.name.iter().position(|&c| c == 0).unwrap_or(16);
        let name: String = self.name[..end]
            .iter()
            .map(|&c| if c.is_ascii_graphic() { c as char } else { '?' })
            .collect();
        let width = match self.pointer_width {
            0 => String::new(),
            w => format!(", {}-bit", u32::from(w) * 8),
        };
        let order = match self.byte_order {
            1 => "",
            2 => ", big-endian",
            _ => ", unknown byte order",
        };
        format!(
            "{name}{width}{order}, {}-byte body aligned to {}",
            self.body_size, self.body_align
        )
    }
}

/// A header as read from shared memory: every field another process wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raw {
    /// The object's size in bytes.
    pub(crate) len: usize,
    /// The state word, loaded with Acquire.
    pub(crate) state: u32,
    /// Read after the state (meaningful once it is ready).
    pub(crate) magic: [u8; 8],
    pub(crate) version: u32,
    /// `None` when the object is too small to hold the ABI fields.
    pub(crate) abi: Option<Abi>,
}

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
    /// Our magic, another version or another ABI.
    Version,
}

/// Judges a header: `want` is the magic of the kind we open, `abi` this
/// process's ABI for it. Total: any input gives a verdict, never a panic.
pub(crate) fn judge(raw: &Raw, want: [u8; 8], abi: &Abi) -> Verdict {
    let what = if want == MUTEX_MAGIC {
        "mutex"
    } else {
        "event"
    };
    let needed = HEADER_LEN.saturating_add(abi.body_size as usize);
    let too_small = || {
        Verdict::Wrong(
            WrongKind::NotOurs,
            format!(
                "it is {} bytes, too small for a named-ipc {what} ({needed} bytes); it is some \
                 other shared-memory object",
                raw.len
            ),
        )
    };
    if raw.len < PREFIX_LEN {
        return too_small();
    }
    match raw.state {
        STATE_EMPTY | STATE_INIT => return Verdict::NotYet,
        STATE_READY => {}
        other => {
            return Verdict::Wrong(
                WrongKind::NotOurs,
                format!("its state word is {other}, so it is not a named-ipc {what}"),
            )
        }
    }
    if raw.magic != want {
        let other = if raw.magic == MUTEX_MAGIC {
            "a named-ipc mutex"
        } else if raw.magic == EVENT_MAGIC {
            "a named-ipc event"
        } else {
            "some other shared-memory object"
        };
        return Verdict::Wrong(WrongKind::NotOurs, format!("it is {other}, not a {what}"));
    }
    if raw.version != VERSION {
        return Verdict::Wrong(
            WrongKind::Version,
            format!(
                "it was made by named-ipc layout version {}; this build speaks version {VERSION}: \
                 use the same named-ipc version in every process, or remove it (`nipc shm rm`) \
                 once no process uses it",
                raw.version
            ),
        );
    }
    if raw.len < needed {
        return too_small();
    }
    let Some(theirs) = raw.abi else {
        return too_small();
    };
    if theirs != *abi {
        return Verdict::Wrong(
            WrongKind::Version,
            format!(
                "it was made for another binary interface ({}) than this process's ({}); a \
                 process-shared {what} can only be shared by programs built for the same CPU, \
                 C library and pointer width: build both for the same target",
                theirs.describe(),
                abi.describe()
            ),
        );
    }
    Verdict::Ready
}

/// A header from arbitrary bytes, for the fuzz target and property tests:
/// bytes 0..8 magic, 8..12 length, 12..16 state, 16..20 version, 20..44 ABI,
/// byte 44 chooses what we open.
#[cfg(any(test, feature = "fuzzing"))]
fn raw_from(data: &[u8]) -> Option<(Raw, [u8; 8])> {
    let word = |i: usize| Some(u32::from_le_bytes(data.get(i..i + 4)?.try_into().ok()?));
    let magic: [u8; 8] = data.get(..8)?.try_into().ok()?;
    let abi: [u8; ABI_LEN] = data.get(20..20 + ABI_LEN)?.try_into().ok()?;
    let len = word(8)? as usize;
    let want = if data.get(44)? % 2 == 0 {
        MUTEX_MAGIC
    } else {
        EVENT_MAGIC
    };
    Some((
        Raw {
            len,
            state: word(12)?,
            magic,
            version: word(16)?,
            abi: (len >= HEADER_LEN).then(|| Abi::from_bytes(abi)),
        },
        want,
    ))
}

/// The ABI the fuzz target and property tests open with.
#[cfg(any(test, feature = "fuzzing"))]
fn test_abi() -> Abi {
    Abi::new("x86_64-gnu", 40, 8, true)
}

#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz(data: &[u8]) {
    let Some((raw, want)) = raw_from(data) else {
        return;
    };
    let abi = test_abi();
    if judge(&raw, want, &abi) == Verdict::Ready {
        assert!(raw.magic == want && raw.version == VERSION && raw.state == STATE_READY);
        assert!(raw.abi == Some(abi) && raw.len >= HEADER_LEN + 40);
    }
    let _ = Abi::from_bytes(Abi::from_bytes([0xff; ABI_LEN]).to_bytes()).describe();
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn raw(len: usize, state: u32, magic: [u8; 8], version: u32, abi: Abi) -> Raw {
        Raw {
            len,
            state,
            magic,
            version,
            abi: (len >= HEADER_LEN).then_some(abi),
        }
    }

    #[test]
    fn verdicts() {
        let abi = test_abi();
        let ok = |r: Raw| judge(&r, MUTEX_MAGIC, &abi);
        assert_eq!(
            ok(raw(88, STATE_READY, MUTEX_MAGIC, VERSION, abi)),
            Verdict::Ready
        );
        assert_eq!(ok(raw(88, STATE_INIT, [0; 8], 0, abi)), Verdict::NotYet);
        assert!(matches!(
            ok(raw(88, STATE_READY, EVENT_MAGIC, VERSION, abi)),
            Verdict::Wrong(WrongKind::NotOurs, m) if m.contains("named-ipc event")
        ));
        assert!(matches!(
            ok(raw(88, STATE_READY, MUTEX_MAGIC, 7, abi)),
            Verdict::Wrong(WrongKind::Version, _)
        ));
        assert!(matches!(
            ok(raw(10, STATE_READY, MUTEX_MAGIC, VERSION, abi)),
            Verdict::Wrong(WrongKind::NotOurs, m) if m.contains("too small")
        ));
    }

    /// A version-1 object (16-byte header, 56 bytes in all) is another
    /// version, not "too small".
    #[test]
    fn a_version_1_object_is_a_version_mismatch() {
        let abi = test_abi();
        let v = judge(
            &raw(56, STATE_READY, MUTEX_MAGIC, 1, abi),
            MUTEX_MAGIC,
            &abi,
        );
        assert!(
            matches!(&v, Verdict::Wrong(WrongKind::Version, m) if m.contains("version 1")),
            "{v:?}"
        );
    }

    /// Every ABI field matters: another C library, pointer width, body size,
    /// alignment or byte order is a version mismatch that names both sides.
    #[test]
    fn another_abi_is_a_version_mismatch() {
        let mine = test_abi();
        let others = [
            Abi::new("x86_64-musl", 40, 8, true),
            Abi::new("i686-gnu", 24, 4, true),
            Abi {
                pointer_width: 4,
                ..mine
            },
            Abi {
                body_size: 48,
                ..mine
            },
            Abi {
                body_align: 4,
                ..mine
            },
            Abi {
                byte_order: 2,
                ..mine
            },
        ];
        for theirs in others {
            let v = judge(
                &raw(200, STATE_READY, MUTEX_MAGIC, VERSION, theirs),
                MUTEX_MAGIC,
                &mine,
            );
            match v {
                Verdict::Wrong(WrongKind::Version, m) => {
                    assert!(m.contains(&theirs.describe()), "{m}");
                    assert!(m.contains("x86_64-gnu, 64-bit, 40-byte body"), "{m}");
                    assert!(m.contains("build both for the same target"), "{m}");
                }
                other => panic!("{theirs:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn abi_fields_round_trip_through_bytes() {
        let a = Abi::new("aarch64-bionic", 40, 8, true);
        assert_eq!(Abi::from_bytes(a.to_bytes()), a);
        let long = Abi::new("a-very-long-architecture-name", 4, 4, false);
        assert_eq!(&long.name, b"a-very-long-arch");
        assert_eq!(long.pointer_width, 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Arbitrary bytes never panic and are Ready only when every field matches.
        #[test]
        fn arbitrary_headers_are_judged_without_panics(
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let abi = test_abi();
            if let Some((raw, want)) = raw_from(&data) {
                let v = judge(&raw, want, &abi);
                let valid = raw.len >= HEADER_LEN + 40
                    && raw.state == STATE_READY
                    && raw.magic == want
                    && raw.version == VERSION
                    && raw.abi == Some(abi);
                prop_assert_eq!(v == Verdict::Ready, valid);
            }
        }

        /// Headers that differ from a valid one in a single ABI field.
        #[test]
        fn any_single_abi_difference_is_refused(
            field in 0usize..5,
            value in any::<u32>(),
        ) {
            let mine = test_abi();
            let mut theirs = mine;
            match field {
                0 => theirs.name[(value % 16) as usize] ^= (value >> 8) as u8 | 1,
                1 => theirs.body_size = value,
                2 => theirs.body_align = value as u16,
                3 => theirs.pointer_width = value as u8,
                _ => theirs.byte_order = value as u8,
            }
            let v = judge(&raw(usize::MAX, STATE_READY, MUTEX_MAGIC, VERSION, theirs), MUTEX_MAGIC, &mine);
            prop_assert_eq!(v == Verdict::Ready, theirs == mine);
        }
    }
}
