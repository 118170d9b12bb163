//! The channel's shared segment layout and its handshake message. Both come
//! from the other process, so both are validated field by field; anything off
//! is an error with a reason, never a panic.
//!
//! # Segment
//! ```text
//! offset               size  what
//! 0                      64  header: magic "NIPC-CH1", u32 version (4), u32 0,
//!                            u64 capacity (per ring), u64 ring 0 offset,
//!                            u64 ring 1 offset, u64 total length (native endian)
//! 64                    320  ring 0 control block (client -> server)
//! 384              capacity  ring 0 data
//! 384+capacity          320  ring 1 control block (server -> client)
//! 704+capacity     capacity  ring 1 data
//! ```
//!
//! # Handshake
//! Right after a client connects to the rendezvous pipe it sends one message,
//! the [`ClientHello`] (28 bytes, little-endian):
//! ```text
//! 0   8  magic "NIPC-CL1"
//! 8   4  version (4)
//! 12  4  largest message the client accepts
//! 16  8  ring size it asks for (0: the server's choice)
//! 24  4  wake-up descriptors attached (0, or 2 from an async client on Unix)
//! ```
//! The server answers with one message, the [`Hello`] (little-endian), the
//! segment itself passed out of band (Unix: its descriptor, with
//! `SCM_RIGHTS`; Windows: see below):
//! ```text
//! 0   8  magic "NIPC-HS1"
//! 8   4  version (4)
//! 12  4  max message size
//! 16  8  capacity per ring
//! 24  8  segment length
//! 32  4  server pid
//! 36  4  number of handles (0 on Unix, 5 on Windows)
//! 40  4  wake-up descriptors attached after the segment's (0, or 2 from an
//!        async server on Unix)
//! 44  4  0
//! 48  8n handle values (Windows: section, then the data and space events of
//!        ring 0 and of ring 1)
//! ```
//!
//! **Wake-up descriptors (Unix).** An end that sleeps through a reactor (the
//! async channel, `crate::tokio`) cannot sleep on a futex; it sleeps on a
//! descriptor of its own per bell it sleeps on (Linux: an eventfd; other
//! Unix: a socket pair, keeping one end) and hands the peer, with its hello,
//! the descriptor the peer signals — first for the bell its receiver sleeps
//! on (data of the ring it reads), then for the bell its sender sleeps on
//! (room in the ring it writes). A blocking end sends none and sleeps on
//! futexes. Each side thus knows, for every bell the other sleeps on, how to
//! wake it: write to the descriptor it was given, or `FUTEX_WAKE`; and it
//! does so only when the sleeper raised the bell's `waiting` flag (ring
//! protocol unchanged), so the fast path makes no system call whichever the
//! kinds. Windows needs none: every end waits on the server's events, a
//! blocking one in `WaitForMultipleObjects`, an async one through thread-pool
//! waits.
//!
//! On Windows the handle values are the server's own, valid in the server's
//! process only. The client duplicates them out of the pipe's server process
//! (never adopting a number as its own), checks their types, and answers `ok`;
//! the server waits for that answer before `accept` returns. Version 1 sent
//! values already duplicated into the client and had no answer; version 2's
//! client hello did not ask for a ring size, and its records did not announce
//! the length of a message of several records; version 3 had no wake-up
//! descriptors (its hello was 40 + 8n bytes, the client's 24), and its
//! consumer found records through the producer's published position, where
//! version 4's finds them by their headers (see [`super::ring`]).

use super::ring::CONTROL_LEN;

pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"NIPC-CH1";
pub(crate) const HELLO_MAGIC: [u8; 8] = *b"NIPC-HS1";
pub(crate) const CLIENT_MAGIC: [u8; 8] = *b"NIPC-CL1";
pub(crate) const VERSION: u32 = 4;
pub(crate) const HEADER_LEN: usize = 64;

/// Smallest and largest ring capacities accepted.
pub(crate) const MIN_CAPACITY: u64 = 4096;
pub(crate) const MAX_CAPACITY: u64 = 1 << 30;

/// Where things are in the segment, for one ring capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) capacity: usize,
    pub(crate) rings: [usize; 2],
    pub(crate) total: usize,
}

impl Layout {
    pub(crate) fn new(capacity: usize) -> Layout {
        let r0 = HEADER_LEN;
        let r1 = r0 + CONTROL_LEN + capacity;
        Layout {
            capacity,
            rings: [r0, r1],
            total: r1 + CONTROL_LEN + capacity,
        }
    }

    /// Offset of ring `i`'s data area.
    pub(crate) fn data(&self, i: usize) -> usize {
        self.rings[i] + CONTROL_LEN
    }

    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(&SEGMENT_MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_ne_bytes());
        h[16..24].copy_from_slice(&(self.capacity as u64).to_ne_bytes());
        h[24..32].copy_from_slice(&(self.rings[0] as u64).to_ne_bytes());
        h[32..40].copy_from_slice(&(self.rings[1] as u64).to_ne_bytes());
        h[40..48].copy_from_slice(&(self.total as u64).to_ne_bytes());
        h
    }

    /// Validates a header read from a segment of `mapped` bytes.
    pub(crate) fn decode(h: &[u8; HEADER_LEN], mapped: usize) -> Result<Layout, String> {
        if h[..8] != SEGMENT_MAGIC {
            return Err("the channel segment does not start with the named-ipc magic".into());
        }
        let u32_at = |i: usize| u32::from_ne_bytes(h[i..i + 4].try_into().unwrap_or_default());
        let u64_at = |i: usize| u64::from_ne_bytes(h[i..i + 8].try_into().unwrap_or_default());
        let version = u32_at(8);
        if version != VERSION {
            return Err(format!(
                "channel layout version {version}; this build speaks {VERSION}"
            ));
        }
        let cap = u64_at(16);
        if !cap.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) {
            return Err(format!(
                "ring capacity {cap} is not a power of two in {MIN_CAPACITY}..={MAX_CAPACITY}"
            ));
        }
        let want = Layout::new(cap as usize);
        let got = [u64_at(24), u64_at(32), u64_at(40)];
        if got
            != [
                want.rings[0] as u64,
                want.rings[1] as u64,
                want.total as u64,
            ]
        {
            return Err(format!("ring offsets {got:?} do not match capacity {cap}"));
        }
        if want.total > mapped {
            return Err(format!(
                "the segment is {mapped} bytes but its header describes {}",
                want.total
            ));
        }
        Ok(want)
    }
}

/// The server's handshake message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) max_message: u32,
    pub(crate) capacity: u64,
    pub(crate) segment_len: u64,
    pub(crate) server_pid: u32,
    /// Wake-up descriptors attached after the segment's (Unix).
    pub(crate) wakers: u32,
    pub(crate) handles: Vec<u64>,
}

/// At most this many handles travel in a hello.
pub(crate) const MAX_HANDLES: usize = 8;

/// How many wake-up descriptors an end that sleeps through a reactor sends:
/// one per bell it sleeps on (its receiver's and its sender's).
pub(crate) const WAKERS: u32 = 2;

/// Bytes of a [`Hello`] before its handle values.
const HELLO_LEN: usize = 48;

/// Bytes of a [`ClientHello`].
pub(crate) const CLIENT_HELLO_LEN: usize = 28;

/// The client's handshake message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientHello {
    pub(crate) max_message: u32,
    /// The ring size asked for; 0: the server's choice.
    pub(crate) capacity: u64,
    /// Wake-up descriptors attached (Unix).
    pub(crate) wakers: u32,
}

impl ClientHello {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(CLIENT_HELLO_LEN);
        v.extend_from_slice(&CLIENT_MAGIC);
        v.extend_from_slice(&VERSION.to_le_bytes());
        v.extend_from_slice(&self.max_message.to_le_bytes());
        v.extend_from_slice(&self.capacity.to_le_bytes());
        v.extend_from_slice(&self.wakers.to_le_bytes());
        v
    }

    pub(crate) fn decode(b: &[u8]) -> Result<ClientHello, String> {
        if b.len() != CLIENT_HELLO_LEN || b[..8] != CLIENT_MAGIC {
            return Err("the client is not a named-ipc channel client of this version".into());
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        let version = u32_at(8);
        if version != VERSION {
            return Err(format!(
                "the client speaks channel handshake version {version}; this build speaks \
                 {VERSION}"
            ));
        }
        let wakers = u32_at(24);
        if wakers != 0 && wakers != WAKERS {
            return Err(format!(
                "the client announces {wakers} wake-up descriptors (0 or {WAKERS} allowed)"
            ));
        }
        Ok(ClientHello {
            max_message: u32_at(12),
            capacity: u64::from_le_bytes(b[16..24].try_into().unwrap_or_default()),
            wakers,
        })
    }
}

impl Hello {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HELLO_LEN + 8 * self.handles.len());
        v.extend_from_slice(&HELLO_MAGIC);
        v.extend_from_slice(&VERSION.to_le_bytes());
        v.extend_from_slice(&self.max_message.to_le_bytes());
        v.extend_from_slice(&self.capacity.to_le_bytes());
        v.extend_from_slice(&self.segment_len.to_le_bytes());
        v.extend_from_slice(&self.server_pid.to_le_bytes());
        v.extend_from_slice(&(self.handles.len() as u32).to_le_bytes());
        v.extend_from_slice(&self.wakers.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        for h in &self.handles {
            v.extend_from_slice(&h.to_le_bytes());
        }
        v
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Hello, String> {
        if b.len() < HELLO_LEN || b[..8] != HELLO_MAGIC {
            return Err(
                "the server did not answer with a named-ipc channel handshake \
                        (is it a plain pipe server rather than a ShmListener?)"
                    .into(),
            );
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let version = u32_at(8);
        if version != VERSION {
            return Err(format!(
                "channel handshake version {version}; this build speaks {VERSION}"
            ));
        }
        let n = u32_at(36) as usize;
        if n > MAX_HANDLES || b.len() != HELLO_LEN + 8 * n {
            return Err(format!(
                "handshake of {} bytes with {n} handles is malformed",
                b.len()
            ));
        }
        let capacity = u64_at(16);
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(format!("ring capacity {capacity} is not acceptable"));
        }
        let segment_len = u64_at(24);
        if segment_len != Layout::new(capacity as usize).total as u64 {
            return Err(format!(
                "segment length {segment_len} does not match capacity {capacity}"
            ));
        }
        let wakers = u32_at(40);
        if wakers != 0 && wakers != WAKERS {
            return Err(format!(
                "the handshake announces {wakers} wake-up descriptors (0 or {WAKERS} allowed)"
            ));
        }
        if u32_at(44) != 0 {
            return Err("the handshake's reserved field is not zero".into());
        }
        Ok(Hello {
            max_message: u32_at(12),
            capacity,
            segment_len,
            server_pid: u32_at(32),
            wakers,
            handles: (0..n).map(|i| u64_at(HELLO_LEN + 8 * i)).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips() {
        let l = Layout::new(65536);
        assert_eq!(l.rings, [64, 64 + 320 + 65536]);
        assert_eq!(l.data(0) % 64, 0);
        assert_eq!(l.data(1) % 64, 0);
        assert_eq!(Layout::decode(&l.encode(), l.total), Ok(l));
        assert!(Layout::decode(&l.encode(), l.total - 1).is_err());
        let h = Hello {
            max_message: 1 << 24,
            capacity: 65536,
            segment_len: l.total as u64,
            server_pid: 42,
            wakers: 0,
            handles: vec![1, 2, 3, 4, 5],
        };
        assert_eq!(h.encode().len(), 48 + 40);
        assert_eq!(Hello::decode(&h.encode()), Ok(h.clone()));
        let h = Hello {
            wakers: 2,
            handles: Vec::new(),
            ..h
        };
        assert_eq!(h.encode().len(), 48);
        assert_eq!(Hello::decode(&h.encode()), Ok(h));
        let c = ClientHello {
            max_message: 1 << 20,
            capacity: 0,
            wakers: 2,
        };
        assert_eq!(c.encode().len(), CLIENT_HELLO_LEN);
        assert_eq!(ClientHello::decode(&c.encode()), Ok(c));
    }

    /// Version 3 hellos (no wake-up field) and bad wake-up counts are refused.
    #[test]
    fn old_versions_and_bad_wake_counts_are_refused() {
        let l = Layout::new(65536);
        let mut h = Hello {
            max_message: 1,
            capacity: 65536,
            segment_len: l.total as u64,
            server_pid: 1,
            wakers: 0,
            handles: Vec::new(),
        }
        .encode();
        h[40..44].copy_from_slice(&1u32.to_le_bytes());
        assert!(Hello::decode(&h)
            .unwrap_err()
            .contains("1 wake-up descriptors"));
        h[40..44].copy_from_slice(&0u32.to_le_bytes());
        h[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert!(Hello::decode(&h).unwrap_err().contains("version 3"));
        let mut c = ClientHello {
            max_message: 1,
            capacity: 0,
            wakers: 0,
        }
        .encode();
        c[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert!(ClientHello::decode(&c).unwrap_err().contains("version 3"));
        // A version 3 client hello is 24 bytes.
        assert!(ClientHello::decode(&c[..24]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120), mapped in any::<usize>()) {
            let _ = Hello::decode(&bytes);
            let _ = ClientHello::decode(&bytes);
            let mut h = [0u8; HEADER_LEN];
            for (d, s) in h.iter_mut().zip(&bytes) {
                *d = *s;
            }
            if let Ok(l) = Layout::decode(&h, mapped) {
                prop_assert!(l.total <= mapped);
                prop_assert!(l.data(1) + l.capacity == l.total);
            }
        }

        #[test]
        fn mutated_headers_are_caught(idx in 0usize..48, byte in any::<u8>()) {
            let l = Layout::new(8192);
            let mut h = l.encode();
            let old = h[idx];
            h[idx] = byte;
            let r = Layout::decode(&h, l.total);
            if byte != old && !(12..16).contains(&idx) && idx < 48 {
                prop_assert!(r.is_err());
            }
        }
    }
}
