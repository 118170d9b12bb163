//! A single-producer, single-consumer ring of variable-length records in
//! memory shared with an untrusted peer.
//!
//! # Layout (one ring)
//! ```text
//! control block, 320 bytes, each line 64-byte aligned (the ring's first bytes):
//!   line 0  reserved  (zero; layout version 2 kept the producer's position here)
//!   line 1  head      u64  bytes ever consumed by the consumer (8-aligned)
//!   line 2  data      u32 waiting, u32 seq   the consumer parks on `seq`
//!   line 3  space     u32 waiting, u32 seq   the producer parks on `seq`
//!   line 4  closed    u32 producer, u32 consumer   1 once that side closed
//! data: `capacity` bytes (a power of two, >= 64), zero when the ring is made
//! ```
//! A record is an 8-byte header (native-endian u64: low 32 bits payload length,
//! high 32 bits flags, always including `RECORD`, so a published header is
//! never zero) and the payload, padded to 8 bytes. Records never wrap: when
//! one does not fit before the end of the data area, a `PAD` record fills the
//! rest and the record starts at offset 0 (a `PAD` never starts at offset 0).
//!
//! A message of up to `capacity / 4` bytes is one record (so power-of-two
//! sizes up to a quarter of the ring are never split). A longer one is
//! streamed in pieces of `capacity / 4`: its first record has flags
//! `FIRST | MORE` and a payload that starts with the message's total length
//! (u64, little-endian), the next ones `MORE`, the last none. An empty record
//! never says `MORE`.
//!
//! # Publication: the header is the signal
//! The consumer finds records by their headers alone: the word at its
//! position is zero until the producer publishes the record there. The
//! producer keeps that true by clearing the header slot *after* each record
//! (where the next one will start) before it publishes the record: it writes
//! the payload, zeroes the next slot, then stores the header with Release;
//! the consumer loads the header with Acquire, so a non-zero header means the
//! whole record is there, and the slot after it is zero or the next record.
//! That slot must be free space, so at least 8 bytes of the ring stay free:
//! a record's payload is at most `capacity - 16` bytes (its header and the
//! next one's slot), and a ring holds at most `capacity - 8` bytes of records.
//! A record placed after padding is written (header included) before the
//! padding's header, which publishes both; padding published on its own
//! clears offset 0 first.
//!
//! The consumer reads no position of the producer's: a round trip moves the
//! record's own cache lines and nothing else.
//!
//! # Wake-ups
//! After publishing a header the producer issues a SeqCst fence, then reads
//! the consumer's `data.waiting`; if set, it bumps `data.seq` and wakes it. A
//! consumer about to sleep sets `waiting`, issues a SeqCst fence, re-reads the
//! header at its position, and sleeps only while `seq` is unchanged. By the
//! fences' total order, either the producer sees `waiting` or the consumer
//! sees the header: no lost wake-up (model-checked with loom below). The same
//! holds for `head`, `space` and a producer waiting for room.
//!
//! Inside a receive the consumer publishes `head` lazily, to stay off the
//! producer's cache lines: [`Consumer::release`] publishes at once only after
//! an eighth of the ring was consumed since the last time. The position
//! reaches the producer in full when the consumer finds the ring empty
//! ([`Consumer::publish`], with the fence, before it could sleep), and at the
//! end of every receive that returns a message ([`Consumer::publish_quiet`]:
//! a plain store, no fence), so a producer waiting for room is never left
//! waiting on room already freed by a consumer that went on to do something
//! else.
//!
//! # Trust
//! Every value read from the peer's side (`head` for the producer, record
//! headers for the consumer) is validated before use; anything impossible is
//! reported as [`Corrupt`], never an out-of-bounds access or a panic.

use std::fmt;

use super::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Record header size.
pub(crate) const HDR: usize = 8;
/// A cache line.
const LINE: usize = 64;

const FLAG_MORE: u32 = 1;
const FLAG_PAD: u32 = 2;
const FLAG_FIRST: u32 = 4;
/// Set in every published header, so that none is zero.
const FLAG_RECORD: u32 = 8;

/// Bytes of the total length at the start of a `FIRST` record's payload.
pub(crate) const TOTAL_LEN: usize = 8;

/// Bytes of the control block in front of the data area.
pub(crate) const CONTROL_LEN: usize = 5 * 64;

/// The peer broke the ring protocol; the channel cannot be used any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupt(pub(crate) String);

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn corrupt(what: impl Into<String>) -> Corrupt {
    Corrupt(what.into())
}

/// One 64-byte line of the control block.
#[repr(C, align(64))]
pub(crate) struct Line<T>(pub(crate) T);

/// A place to sleep: a "someone is sleeping here" flag and a sequence word
/// bumped by each wake-up.
#[repr(C)]
pub(crate) struct Bell {
    pub(crate) waiting: AtomicU32,
    pub(crate) seq: AtomicU32,
}

#[repr(C)]
pub(crate) struct Closed {
    pub(crate) producer: AtomicU32,
    pub(crate) consumer: AtomicU32,
}

/// The control block at the start of a ring (see the module docs).
#[repr(C)]
pub(crate) struct Control {
    /// Unused (zero); see the module docs.
    pub(crate) reserved: Line<AtomicU64>,
    pub(crate) head: Line<AtomicU64>,
    pub(crate) data: Line<Bell>,
    pub(crate) space: Line<Bell>,
    pub(crate) closed: Line<Closed>,
}

impl Control {
    #[cfg(any(loom, test, feature = "fuzzing"))]
    pub(crate) fn new() -> Control {
        let bell = || {
            Line(Bell {
                waiting: AtomicU32::new(0),
                seq: AtomicU32::new(0),
            })
        };
        Control {
            reserved: Line(AtomicU64::new(0)),
            head: Line(AtomicU64::new(0)),
            data: bell(),
            space: bell(),
            closed: Line(Closed {
                producer: AtomicU32::new(0),
                consumer: AtomicU32::new(0),
            }),
        }
    }
}

/// The data area of a ring.
pub(crate) trait Memory {
    /// Capacity in bytes.
    fn len(&self) -> usize;
    /// Copies `dst.len()` bytes from `offset`; `offset + dst.len() <= len()`.
    fn read(&self, offset: usize, dst: &mut [u8]);
    /// Copies `src` to `offset`; `offset + src.len() <= len()`.
    fn write(&self, offset: usize, src: &[u8]);
    /// The record header word at `offset` (8-aligned, `offset + 8 <=
    /// len()`), loaded with Acquire: whatever the producer wrote before it
    /// stored the word is visible.
    fn load_header(&self, offset: usize) -> u64;
    /// Stores a record header word at `offset` (8-aligned) with Release.
    fn store_header(&self, offset: usize, word: u64);
    /// Appends `len` bytes from `offset` to `out`.
    fn append_to(&self, offset: usize, len: usize, out: &mut Vec<u8>) {
        let at = out.len();
        out.resize(at + len, 0);
        self.read(offset, &mut out[at..]);
    }
}

fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

fn header(len: usize, flags: u32) -> u64 {
    len as u64 | (u64::from(flags | FLAG_RECORD) << 32)
}

/// The largest record payload a ring of `capacity` bytes carries: the ring
/// minus the record's header and the slot of the next one.
pub(crate) fn max_record(capacity: usize) -> usize {
    capacity - 2 * HDR
}

/// The piece size of a streamed message, and the largest message sent as
/// one record by a copying send.
#[inline]
pub(crate) fn chunk(capacity: usize) -> usize {
    capacity / 4
}

/// Which part of a message a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// All of it.
    Whole,
    /// The first piece of several; its payload starts with the total length.
    First,
    /// A piece between the first and the last.
    Middle,
    /// The last piece.
    Last,
}

impl Part {
    fn flags(self) -> u32 {
        match self {
            Part::Whole | Part::Last => 0,
            Part::First => FLAG_FIRST | FLAG_MORE,
            Part::Middle => FLAG_MORE,
        }
    }
}

/// Space reserved by [`Producer::reserve`] for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reservation {
    /// Where the payload goes.
    pub(crate) offset: usize,
    pub(crate) len: usize,
    /// Padding to write first (at this offset, this many bytes), if any.
    pad: Option<(usize, usize)>,
    /// Bytes the record (and padding) take.
    need: u64,
}

/// The writing end of a ring.
pub(crate) struct Producer<'a, M> {
    ctl: &'a Control,
    mem: M,
    cap: u64,
    tail: u64,
    head_seen: u64,
    /// A padding record was published on its own while the consumer slept:
    /// it must be woken to consume it (see [`take_wake`](Self::take_wake)).
    pad_wake: bool,
}

impl<'a, M: Memory> Producer<'a, M> {
    /// `mem.len()` must be a power of two of at least 64 (the caller validated it).
    pub(crate) fn new(ctl: &'a Control, mem: M) -> Producer<'a, M> {
        let cap = mem.len() as u64;
        debug_assert!(cap >= 64 && cap.is_power_of_two());
        Producer {
            ctl,
            mem,
            cap,
            tail: 0,
            head_seen: 0,
            pad_wake: false,
        }
    }

    #[inline]
    pub(crate) fn control(&self) -> &'a Control {
        self.ctl
    }

    /// The largest payload of one record: what `send_with` can write in
    /// place.
    pub(crate) fn max_record(&self) -> usize {
        max_record(self.cap as usize)
    }

    /// The piece size of a streamed message.
    pub(crate) fn chunk(&self) -> usize {
        chunk(self.cap as usize)
    }

    /// Whether a padding record published on its own must be followed by a
    /// wake-up of the consumer (cleared by this call).
    #[inline]
    pub(crate) fn take_wake(&mut self) -> bool {
        std::mem::take(&mut self.pad_wake)
    }

    /// Reserves room for a record with `len` payload bytes (and the header
    /// slot after it). `Ok(None)`: not enough room now. A record too large to
    /// follow padding in the same lap of the ring gets its padding published
    /// on its own (then [`take_wake`](Self::take_wake) says whether to wake
    /// the consumer).
    // Always inlined: its result, returned through memory, cost a
    // store-forwarding stall per in-place send (measured with perf).
    #[inline(always)]
    pub(crate) fn reserve(&mut self, len: usize) -> Result<Option<Reservation>, Corrupt> {
        debug_assert!(len <= self.max_record());
        let need = (HDR + pad8(len)) as u64;
        let slot = HDR as u64;
        let pos = self.tail & (self.cap - 1);
        let to_end = self.cap - pos;
        let (pad, start, total) = if to_end >= need {
            (None, pos, need)
        } else if to_end + need + slot <= self.cap {
            (Some((pos as usize, to_end as usize)), 0, to_end + need)
        } else {
            // Record and padding never fit together: publish the padding now
            // (offset 0, where the consumer goes next, cleared first); the
            // record starts the next lap once the consumer passed it.
            if !self.has_room(to_end + slot)? {
                return Ok(None);
            }
            self.mem.store_header(0, 0);
            self.tail += to_end;
            self.pad_wake |= self.publish(pos as usize, header(to_end as usize, FLAG_PAD));
            (None, 0, need)
        };
        if !self.has_room(total + slot)? {
            return Ok(None);
        }
        Ok(Some(Reservation {
            offset: start as usize + HDR,
            len,
            pad,
            need: total,
        }))
    }

    /// Whether `bytes` more fit now; re-reads (and validates) the consumer's
    /// position only when the last one seen leaves too little room.
    #[inline]
    fn has_room(&mut self, bytes: u64) -> Result<bool, Corrupt> {
        if self.cap - (self.tail - self.head_seen) >= bytes {
            return Ok(true);
        }
        self.has_room_now(bytes)
    }

    /// [`has_room`](Self::has_room) past the position last seen: kept out of
    /// line, so that the fast path inlines small.
    #[inline(never)]
    fn has_room_now(&mut self, bytes: u64) -> Result<bool, Corrupt> {
        let head = self.ctl.head.0.load(Ordering::Acquire);
        if head > self.tail
            || self.tail - head > self.cap
            || !head.is_multiple_of(8)
            || head < self.head_seen
        {
            return Err(corrupt(format!(
                "the consumer's position {head} is impossible (ours is {}, capacity {})",
                self.tail, self.cap
            )));
        }
        self.head_seen = head;
        Ok(self.cap - (self.tail - head) >= bytes)
    }

    /// Whether records with these payload lengths (each at most
    /// [`chunk`](Self::chunk)) would all fit now, padding included: a message
    /// that fits is sent without waiting, all or nothing.
    pub(crate) fn fits(&mut self, lens: impl Iterator<Item = usize>) -> Result<bool, Corrupt> {
        let mut pos = self.tail & (self.cap - 1);
        let mut total = 0u64;
        for len in lens {
            let need = (HDR + pad8(len)) as u64;
            if self.cap - pos < need {
                total += self.cap - pos;
                pos = 0;
            }
            total += need;
            pos = (pos + need) & (self.cap - 1);
            if total + HDR as u64 > self.cap {
                return Ok(false);
            }
        }
        self.has_room(total + HDR as u64)
    }

    /// Writes `parts` one after the other into a reservation's payload area,
    /// in order. (Writing the bytes on the header's cache line last, which
    /// the consumer polls, was tried: measured side by side, no gain on the
    /// 64 B round trip, and 128 B one way ran at 0.86x the rate of writing
    /// in order.)
    ///
    /// # Panics
    /// If the parts add up to more than the reservation (a bug here).
    #[inline]
    pub(crate) fn fill(&self, r: &Reservation, parts: &[&[u8]]) {
        let mut at = r.offset;
        let end = r.offset + r.len;
        for p in parts {
            assert!(p.len() <= end - at, "record parts exceed the reservation");
            self.mem.write(at, p);
            at += p.len();
        }
    }

    /// The memory (for zero-copy writes into a reservation).
    #[inline]
    pub(crate) fn memory(&self) -> &M {
        &self.mem
    }

    /// Publishes a filled reservation carrying `part` of a message: clears
    /// the slot after the record, then stores its header (and, after
    /// padding, the padding's header, which publishes both). Returns whether
    /// the consumer sleeps and must be woken (ring `data`).
    // Always inlined, like `reserve`: a `Reservation` passed through memory
    // to an out-of-line commit cost an in-place send a store-forwarding
    // stall (perf).
    #[inline(always)]
    pub(crate) fn commit(&mut self, r: Reservation, part: Part) -> bool {
        let at = r.offset - HDR;
        let next = (at + HDR + pad8(r.len)) & (self.cap as usize - 1);
        self.mem.store_header(next, 0);
        let word = header(r.len, part.flags());
        self.tail += r.need;
        let wake = match r.pad {
            None => self.publish(at, word),
            Some((pad_at, pad_len)) => {
                self.mem.store_header(at, word);
                self.publish(pad_at, header(pad_len, FLAG_PAD))
            }
        };
        self.touch_ahead(next);
        wake | self.take_wake()
    }

    /// After a commit: takes the cache line after the one holding the next
    /// header slot (`next`), if it is free space, by storing a zero word
    /// there, so that the next record's payload is written into a line this
    /// side already owns rather than fetched on the critical path (64 B
    /// round trip ~200 -> ~185 ns here). Zero is "no record": storing it in
    /// free space changes nothing the consumer can see.
    #[inline]
    fn touch_ahead(&self, next: usize) {
        let ahead = (next | (LINE - 1)) + 1;
        let free = self.cap - (self.tail - self.head_seen);
        if ahead < self.cap as usize && (ahead - next + HDR) as u64 <= free {
            self.mem.store_header(ahead, 0);
        }
    }

    /// Stores header `word` at `at` (publishing what precedes it), then
    /// (fence) looks for a sleeping consumer: see the module docs. Returns
    /// whether it sleeps.
    #[inline]
    fn publish(&mut self, at: usize, word: u64) -> bool {
        self.mem.store_header(at, word);
        fence(Ordering::SeqCst);
        self.ctl.data.0.waiting.load(Ordering::Relaxed) != 0
    }

    /// Reserve, copy `parts` (one record's payload, in order), commit:
    /// `Ok(None)` when full, else whether to wake.
    #[inline]
    pub(crate) fn push(&mut self, parts: &[&[u8]], part: Part) -> Result<Option<bool>, Corrupt> {
        let len = parts.iter().map(|p| p.len()).sum();
        match self.reserve(len)? {
            None => Ok(None),
            Some(r) => {
                self.fill(&r, parts);
                Ok(Some(self.commit(r, part)))
            }
        }
    }

    #[inline]
    pub(crate) fn peer_closed(&self) -> bool {
        self.ctl.closed.0.consumer.load(Ordering::Acquire) != 0
    }

    /// Marks this end closed; returns whether the consumer sleeps.
    pub(crate) fn close(&self) -> bool {
        self.ctl.closed.0.producer.store(1, Ordering::Release);
        fence(Ordering::SeqCst);
        self.ctl.data.0.waiting.load(Ordering::Relaxed) != 0
    }
}

/// A record found by [`Consumer::peek`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) offset: usize,
    pub(crate) len: usize,
    pub(crate) more: bool,
    /// The first record of several: the payload starts with the total.
    pub(crate) first: bool,
    /// Position after this record (padding before it included).
    end: u64,
}

/// The reading end of a ring.
pub(crate) struct Consumer<'a, M> {
    ctl: &'a Control,
    mem: M,
    cap: u64,
    head: u64,
    /// The last `head` made visible to the producer.
    head_published: u64,
    /// That publication was quiet (no fence, no reliable look at the
    /// producer's waiting flag): the next [`publish`](Self::publish) makes
    /// both even with nothing new to publish.
    quiet: bool,
}

impl<'a, M: Memory> Consumer<'a, M> {
    /// `mem.len()` must be a power of two of at least 64 (the caller validated it).
    pub(crate) fn new(ctl: &'a Control, mem: M) -> Consumer<'a, M> {
        let cap = mem.len() as u64;
        debug_assert!(cap >= 64 && cap.is_power_of_two());
        Consumer {
            ctl,
            mem,
            cap,
            head: 0,
            head_published: 0,
            quiet: false,
        }
    }

    pub(crate) fn control(&self) -> &'a Control {
        self.ctl
    }

    /// The memory (for reading a record in place).
    pub(crate) fn memory(&self) -> &M {
        &self.mem
    }

    /// The next record, if any. Nothing is consumed until
    /// [`release`](Self::release) (padding excepted: it is consumed at once).
    #[inline]
    pub(crate) fn peek(&mut self) -> Result<Option<Record>, Corrupt> {
        let mut at = self.head;
        loop {
            let pos = at & (self.cap - 1);
            let to_end = self.cap - pos;
            let h = self.mem.load_header(pos as usize);
            if h == 0 {
                return Ok(None);
            }
            let (len, flags) = (h as u32 as usize, (h >> 32) as u32);
            if flags & FLAG_RECORD == 0
                || flags & !(FLAG_RECORD | FLAG_MORE | FLAG_FIRST | FLAG_PAD) != 0
            {
                return Err(corrupt(format!(
                    "a record at offset {pos} has unknown flags {flags:#x}"
                )));
            }
            let flags = flags & !FLAG_RECORD;
            if flags & FLAG_PAD != 0 {
                if flags != FLAG_PAD || pos == 0 || len as u64 != to_end {
                    return Err(corrupt(format!(
                        "a padding record of {len} bytes at offset {pos} does not fill the ring to its end"
                    )));
                }
                // Padding carries nothing: consume it at once, so a producer
                // that published it on its own gets its room back. The next
                // record is at offset 0, where padding is refused: this loops
                // at most once.
                at += to_end;
                self.head = at;
                continue;
            }
            if flags & FLAG_MORE != 0 && len == 0 {
                // A producer never sends one; a stream of them would let a peer
                // keep a receiver busy without making progress.
                return Err(corrupt(format!(
                    "an empty record at offset {pos} says more of its message follows"
                )));
            }
            let first = flags & FLAG_FIRST != 0;
            if first && (flags & FLAG_MORE == 0 || len <= TOTAL_LEN) {
                return Err(corrupt(format!(
                    "the first record of a message at offset {pos} is malformed ({len} bytes, \
                     flags {flags:#x})"
                )));
            }
            let need = (HDR + pad8(len)) as u64;
            if len > max_record(self.cap as usize) || need > to_end {
                return Err(corrupt(format!(
                    "a record of {len} bytes at offset {pos} does not fit ({to_end} bytes to \
                     the end of the ring)"
                )));
            }
            return Ok(Some(Record {
                offset: pos as usize + HDR,
                len,
                more: flags & FLAG_MORE != 0,
                first,
                end: at + need,
            }));
        }
    }

    /// Copies a record's payload out. (The channel copies straight into a
    /// `Vec`'s spare capacity instead; the tests and the model use this.)
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn read(&self, r: &Record, dst: &mut [u8]) {
        debug_assert_eq!(dst.len(), r.len);
        self.mem.read(r.offset, dst);
    }

    /// Consumes `r` (and any padding before it). The new position reaches
    /// the producer at once only when an eighth of the ring was consumed since
    /// it last did; otherwise at the next [`publish`](Self::publish), which the
    /// channel calls whenever it finds the ring empty. Publishing less often keeps the two sides off
    /// each other's cache lines when the ring is full. Returns whether the
    /// producer sleeps waiting for room and must be woken (ring `space`).
    #[inline]
    pub(crate) fn release(&mut self, r: Record) -> bool {
        self.head = r.end;
        if self.head - self.head_published >= self.cap / 8 {
            return self.publish();
        }
        false
    }

    /// Makes every release visible to the producer without the fence a
    /// consumer about to sleep needs: for a receive that returns with
    /// releases not yet published, so that a producer waiting for room never
    /// waits on room already freed. Returns whether the producer said it
    /// sleeps (read without a fence: a producer going to sleep at this very
    /// moment may miss the store until this consumer next finds the ring
    /// empty — [`publish`](Self::publish) then fences and looks again — or,
    /// a blocking producer, until its periodic re-check at most 50 ms later;
    /// an async producer has no such re-check).
    #[inline]
    pub(crate) fn publish_quiet(&mut self) -> bool {
        if self.head == self.head_published {
            return false;
        }
        self.head_published = self.head;
        self.quiet = true;
        self.ctl.head.0.store(self.head, Ordering::Release);
        self.ctl.space.0.waiting.load(Ordering::Relaxed) != 0
    }

    /// Makes every release visible to the producer. Returns whether the
    /// producer sleeps and must be woken.
    ///
    /// With nothing new after a quiet publication, it still looks at the
    /// producer's flag (without a fence, which would cost a round trip's
    /// worth of store-buffer drain on every receive): a producer that armed
    /// its sleep after reading the position before the quiet one would
    /// otherwise not be woken until its periodic re-check. This consumer
    /// calls `publish` each time it finds the ring empty: while it spins,
    /// the producer's flag (stored before the producer's fence) is seen
    /// within moments; before it sleeps, the look follows the fence of its
    /// own announcement ([`prepare_sleep`]), which, against the producer's
    /// fence, guarantees that the producer saw the position or this look
    /// sees the flag.
    #[inline]
    pub(crate) fn publish(&mut self) -> bool {
        if self.head == self.head_published {
            if self.quiet && self.ctl.space.0.waiting.load(Ordering::Relaxed) != 0 {
                self.quiet = false;
                return true;
            }
            return false;
        }
        self.head_published = self.head;
        self.quiet = false;
        self.ctl.head.0.store(self.head, Ordering::Release);
        fence(Ordering::SeqCst);
        self.ctl.space.0.waiting.load(Ordering::Relaxed) != 0
    }

    pub(crate) fn peer_closed(&self) -> bool {
        self.ctl.closed.0.producer.load(Ordering::Acquire) != 0
    }

    /// Marks this end closed; returns whether the producer sleeps.
    pub(crate) fn close(&self) -> bool {
        self.ctl.closed.0.consumer.store(1, Ordering::Release);
        fence(Ordering::SeqCst);
        self.ctl.space.0.waiting.load(Ordering::Relaxed) != 0
    }
}

/// The sleeping side of the wake-up protocol: announce, re-check, then sleep
/// on the returned sequence value only if `ready` is still false.
///
/// Returns `None` if `ready` became true (no sleep needed; the flag is
/// cleared), else the sequence value to sleep on — the caller sleeps while
/// `bell.seq == value`, then calls [`Bell::done`].
pub(crate) fn prepare_sleep(bell: &Bell, mut ready: impl FnMut() -> bool) -> Option<u32> {
    bell.waiting.store(1, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    let seen = bell.seq.load(Ordering::Acquire);
    if ready() {
        bell.waiting.store(0, Ordering::Relaxed);
        return None;
    }
    Some(seen)
}

impl Bell {
    /// The waking side: makes a sleeper's `seq` differ; the caller then wakes
    /// the OS waiters on `seq`.
    pub(crate) fn bump(&self) {
        self.seq.fetch_add(1, Ordering::Release);
    }

    /// The sleeper is awake again.
    pub(crate) fn done(&self) {
        self.waiting.store(0, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Plain heap memory for single-threaded tests.
    struct Heap(RefCell<Vec<u8>>);

    impl Memory for &Heap {
        fn len(&self) -> usize {
            self.0.borrow().len()
        }
        fn read(&self, offset: usize, dst: &mut [u8]) {
            dst.copy_from_slice(&self.0.borrow()[offset..offset + dst.len()]);
        }
        fn write(&self, offset: usize, src: &[u8]) {
            self.0.borrow_mut()[offset..offset + src.len()].copy_from_slice(src);
        }
        fn load_header(&self, offset: usize) -> u64 {
            let mut w = [0u8; 8];
            self.read(offset, &mut w);
            u64::from_ne_bytes(w)
        }
        fn store_header(&self, offset: usize, word: u64) {
            self.write(offset, &word.to_ne_bytes());
        }
    }

    fn heap(len: usize) -> Heap {
        Heap(RefCell::new(vec![0; len]))
    }

    #[test]
    fn control_block_layout_is_the_documented_one() {
        assert_eq!(std::mem::size_of::<Control>(), CONTROL_LEN);
        assert_eq!(std::mem::align_of::<Control>(), 64);
        let c = Control::new();
        let base = &c as *const Control as usize;
        let off = |p: *const u8| p as usize - base;
        assert_eq!(off((&c.reserved.0 as *const AtomicU64).cast()), 0);
        assert_eq!(off((&c.head.0 as *const AtomicU64).cast()), 64);
        assert_eq!(off((&c.data.0.waiting as *const AtomicU32).cast()), 128);
        assert_eq!(off((&c.data.0.seq as *const AtomicU32).cast()), 132);
        assert_eq!(off((&c.space.0.waiting as *const AtomicU32).cast()), 192);
        assert_eq!(off((&c.closed.0.producer as *const AtomicU32).cast()), 256);
        assert_eq!(off((&c.closed.0.consumer as *const AtomicU32).cast()), 260);
    }

    fn pop(c: &mut Consumer<'_, &Heap>) -> Option<(Vec<u8>, bool)> {
        let r = c.peek().unwrap()?;
        let mut v = vec![0; r.len];
        c.read(&r, &mut v);
        c.release(r);
        Some((v, r.more))
    }

    #[test]
    fn records_wrap_with_padding_and_come_out_in_order() {
        let ctl = Control::new();
        let heap = heap(64);
        let mut p = Producer::new(&ctl, &heap);
        let mut c = Consumer::new(&ctl, &heap);
        assert_eq!(p.chunk(), 16);
        assert_eq!(p.max_record(), 48);
        let mut expect = std::collections::VecDeque::new();
        for i in 0..200u32 {
            let len = (i % 17) as usize;
            let msg: Vec<u8> = (0..len).map(|k| (i as u8).wrapping_add(k as u8)).collect();
            // An empty record never says "more" (the consumer refuses that).
            let more = i % 3 == 0 && len > 0;
            let part = if more { Part::Middle } else { Part::Whole };
            while p.push(&[&msg], part).unwrap().is_none() {
                let (got, more) = pop(&mut c).expect("full ring must have something");
                assert_eq!(Some((got, more)), expect.pop_front());
                c.publish();
            }
            expect.push_back((msg, more));
        }
        while let Some(x) = pop(&mut c) {
            assert_eq!(Some(x), expect.pop_front());
        }
        assert!(expect.is_empty());
    }

    /// Every header the producer publishes is non-zero, and the slot after
    /// the newest record is zero: the consumer stops there, whatever the
    /// ring held in an earlier lap.
    #[test]
    fn the_slot_after_the_newest_record_is_always_clear() {
        let ctl = Control::new();
        let heap = Heap(RefCell::new(vec![0xA5; 128]));
        // Stale bytes everywhere, as after many laps: only offset 0 is clear,
        // as in a fresh ring.
        (&heap).store_header(0, 0);
        let mut p = Producer::new(&ctl, &heap);
        let mut c = Consumer::new(&ctl, &heap);
        for i in 0..100usize {
            let msg = vec![0xA5; i % 40];
            if p.push(&[&msg], Part::Whole).unwrap().is_none() {
                while pop(&mut c).is_some() {}
                c.publish();
                p.push(&[&msg], Part::Whole).unwrap().unwrap();
            }
            assert_eq!(
                (&heap).load_header((p.tail & 127) as usize),
                0,
                "after message {i}"
            );
        }
        let mut n = 0;
        while pop(&mut c).is_some() {
            n += 1;
        }
        assert!(n > 0);
        assert!(c.peek().unwrap().is_none());
    }

    #[test]
    fn fits_counts_padding_the_next_slot_and_the_consumer_position() {
        let ctl = Control::new();
        let heap = heap(64);
        let mut p = Producer::new(&ctl, &heap);
        let mut c = Consumer::new(&ctl, &heap);
        // 64 bytes, 8 of which stay free for the next header slot: three
        // 16-byte records (8 header + 8 payload) fit, and one of 8 more.
        assert!(p.fits([8, 8, 8, 0].into_iter()).unwrap());
        assert!(!p.fits([8, 8, 8, 8].into_iter()).unwrap());
        p.push(&[&[1; 8]], Part::Whole).unwrap().unwrap();
        p.push(&[&[1; 8]], Part::Whole).unwrap().unwrap();
        p.push(&[&[1; 8]], Part::Whole).unwrap().unwrap();
        // 16 bytes left at the end, 8 of them the slot: one empty record.
        assert!(p.fits([0].into_iter()).unwrap());
        assert!(!p.fits([1].into_iter()).unwrap());
        pop(&mut c).unwrap();
        c.publish();
        // 32 free: a 1-byte record at 48..64 and the slot at 0.
        assert!(p.fits([1].into_iter()).unwrap());
        assert!(!p.fits([1, 1].into_iter()).unwrap());
        p.push(&[&[1; 1]], Part::Whole).unwrap().unwrap();
        pop(&mut c).unwrap();
        pop(&mut c).unwrap();
        c.publish();
        // tail at 64 (offset 0), head at 48: 48 bytes free, 40 for records.
        assert!(p.fits([8, 8].into_iter()).unwrap());
        assert!(!p.fits([8, 8, 8].into_iter()).unwrap());
    }

    /// A record too large to follow padding in the same lap: the padding is
    /// published on its own (offset 0 cleared first), the consumer consumes
    /// it (the producer gets its room back) and the record starts the next
    /// lap.
    #[test]
    fn a_record_of_almost_the_whole_ring_gets_its_padding_first() {
        let ctl = Control::new();
        let heap = heap(64);
        let mut p = Producer::new(&ctl, &heap);
        let mut c = Consumer::new(&ctl, &heap);
        p.push(&[&[1; 8]], Part::Whole).unwrap().unwrap();
        assert_eq!(pop(&mut c), Some((vec![1; 8], false)));
        c.publish();
        // 48 bytes of payload need 56 and a slot: not after 48 bytes of
        // padding, nor before the end.
        assert!(p.reserve(48).unwrap().is_none());
        assert_eq!(p.tail, 64, "padding published alone");
        // The consumer sees no record, but consumes the padding.
        assert!(c.peek().unwrap().is_none());
        c.publish();
        let r = p
            .reserve(48)
            .unwrap()
            .expect("room once the padding is consumed");
        assert_eq!(r.offset, HDR);
        p.fill(&r, &[&[7; 48]]);
        p.commit(r, Part::Whole);
        assert_eq!(pop(&mut c), Some((vec![7; 48], false)));
        assert!(c.peek().unwrap().is_none(), "the slot after it was cleared");
        c.publish();
        // Again from offset 56: padding first, then offset 0.
        assert!(p.reserve(48).unwrap().is_none());
        assert!(c.peek().unwrap().is_none());
        c.publish();
        let r = p
            .reserve(48)
            .unwrap()
            .expect("an empty ring takes 48 bytes");
        assert_eq!(r.offset, HDR);
        p.fill(&r, &[&[9; 48]]);
        p.commit(r, Part::Whole);
        assert_eq!(pop(&mut c), Some((vec![9; 48], false)));
        assert!(c.peek().unwrap().is_none(), "the slot after it was cleared");
    }

    #[test]
    fn a_record_made_of_parts_carries_them_in_order() {
        let ctl = Control::new();
        let heap = heap(256);
        let mut p = Producer::new(&ctl, &heap);
        let mut c = Consumer::new(&ctl, &heap);
        let r = p.reserve(13).unwrap().unwrap();
        p.fill(&r, &[&[1; 3], &[], &[2; 10]]);
        p.commit(r, Part::Whole);
        let mut want = vec![1; 3];
        want.extend([2; 10]);
        assert_eq!(pop(&mut c), Some((want, false)));
    }

    #[test]
    #[should_panic(expected = "record parts exceed the reservation")]
    fn parts_longer_than_their_reservation_are_a_bug_not_an_overwrite() {
        let ctl = Control::new();
        let heap = heap(256);
        let mut p = Producer::new(&ctl, &heap);
        let r = p.reserve(8).unwrap().unwrap();
        p.fill(&r, &[&[1; 8], &[2; 1]]);
    }

    #[test]
    fn impossible_headers_and_positions_are_reported() {
        let bad = |word: u64, at: usize| {
            let ctl = Control::new();
            let heap = heap(64);
            (&heap).store_header(at, word);
            let mut c = Consumer::new(&ctl, &heap);
            if at > 0 {
                // Reach `at` through a record that ends there.
                (&heap).store_header(0, header(at - HDR, 0));
                pop(&mut c).unwrap();
            }
            c.peek().unwrap_err().0
        };
        assert!(bad(header(200, 0), 0).contains("does not fit"));
        assert!(
            bad(header(56, 0), 0).contains("does not fit"),
            "no room for the slot"
        );
        assert!(bad(header(0, 0x40), 0).contains("unknown flags"));
        assert!(
            bad(7, 0).contains("unknown flags"),
            "a header without RECORD"
        );
        // An empty record that says more follows: a producer never writes
        // one, and a stream of them would make no progress.
        assert!(bad(header(0, FLAG_MORE), 0).contains("empty record"));
        assert!(bad(header(4, FLAG_FIRST | FLAG_MORE), 0).contains("malformed"));
        // Padding that does not end at the end of the ring, or that starts
        // at offset 0 (a lap of nothing, forever).
        assert!(bad(header(8, FLAG_PAD), 16).contains("padding"));
        assert!(bad(header(64, FLAG_PAD), 0).contains("padding"));
        assert!(bad(header(48, FLAG_PAD | FLAG_MORE), 16).contains("padding"));

        let ctl = Control::new();
        let heap = heap(64);
        let mut p = Producer::new(&ctl, &heap);
        ctl.head.0.store(1000, Ordering::SeqCst);
        for _ in 0..10 {
            if let Err(e) = p.push(&[&[1; 8]], Part::Whole) {
                assert!(e.0.contains("impossible"));
                return;
            }
        }
        panic!("a consumer ahead of the producer was not noticed");
    }

    /// Review: the consumer publishes quietly at the end of a receive, then
    /// finds the ring empty and publishes before it sleeps. A producer whose
    /// flag went up in between (it armed after reading the old position,
    /// which the quiet store does not prevent) must be reported then.
    #[test]
    fn publishing_before_sleep_looks_at_the_producer_after_a_quiet_publication() {
        let ctl = Control::new();
        let heap = heap(128);
        let mut p = Producer::new(&ctl, &heap);
        let mut c = Consumer::new(&ctl, &heap);
        p.push(&[], Part::Whole).unwrap().unwrap();
        let r = c.peek().unwrap().unwrap();
        assert!(!c.release(r), "8 bytes are less than an eighth of the ring");
        assert!(!c.publish_quiet(), "nobody waits yet");
        // The producer armed its sleep having read the old position.
        ctl.space.0.waiting.store(1, Ordering::SeqCst);
        assert!(c.peek().unwrap().is_none());
        assert!(
            c.publish(),
            "the consumer about to sleep must see the producer waiting"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 3000, failure_persistence: None, ..Default::default()
        })]

        /// Review: any sequence of reservations (every length up to the
        /// largest record, so every wrap: exactly at the end, one slot
        /// short, padding of 8 bytes, padding published alone), releases
        /// and publications, against a queue: nothing is overwritten before
        /// it is consumed, everything comes out in order, the slot after the
        /// newest record is clear, and an emptied ring always takes a
        /// largest record again.
        #[test]
        fn reservations_of_every_size_against_a_model(
            cap_shift in 6u32..8,
            ops in proptest::collection::vec((0u8..4, proptest::prelude::any::<u16>()), 1..120),
        ) {
            let cap = 1usize << cap_shift;
            let ctl = Control::new();
            let heap = Heap(RefCell::new(vec![0xEE; cap]));
            (&heap).store_header(0, 0);
            let mut p = Producer::new(&ctl, &heap);
            let mut c = Consumer::new(&ctl, &heap);
            let mut model = std::collections::VecDeque::new();
            let mut n = 0u8;
            for (op, x) in ops {
                match op {
                    0 | 1 => {
                        let len = x as usize % (p.max_record() + 1);
                        n = n.wrapping_add(1);
                        let msg: Vec<u8> = (0..len).map(|k| n.wrapping_add(k as u8)).collect();
                        if let Some(r) = p.reserve(len).unwrap() {
                            p.fill(&r, &[&msg]);
                            p.commit(r, Part::Whole);
                            model.push_back(msg);
                        }
                        proptest::prop_assert_eq!(
                            (&heap).load_header((p.tail & (cap as u64 - 1)) as usize), 0
                        );
                    }
                    2 => {
                        let got = pop(&mut c).map(|(v, _)| v);
                        proptest::prop_assert_eq!(got, model.pop_front());
                    }
                    _ => {
                        if x % 2 == 0 { c.publish(); } else { c.publish_quiet(); }
                    }
                }
            }
            while let Some((v, _)) = pop(&mut c) {
                proptest::prop_assert_eq!(Some(v), model.pop_front());
            }
            proptest::prop_assert!(model.is_empty());
            c.publish();
            let max = p.max_record();
            let r = match p.reserve(max).unwrap() {
                Some(r) => r,
                None => {
                    // Its padding went alone: consumed, then there is room.
                    proptest::prop_assert!(c.peek().unwrap().is_none());
                    c.publish();
                    p.reserve(max).unwrap().expect("an empty ring takes the largest record")
                }
            };
            p.fill(&r, &[&vec![7; max]]);
            p.commit(r, Part::Whole);
            proptest::prop_assert_eq!(pop(&mut c), Some((vec![7; max], false)));
        }

        /// Whatever bytes a hostile producer leaves, the consumer reports
        /// corruption or returns in-bounds records; it never panics or loops.
        #[test]
        fn arbitrary_ring_contents_never_panic(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 64),
            marks in proptest::collection::vec(0u64..16, 8),
        ) {
            let ctl = Control::new();
            let heap = Heap(RefCell::new(data));
            // Give some words a valid-looking shape, so records get parsed.
            for (i, m) in marks.iter().enumerate() {
                let word = (&heap).load_header(i * 8);
                (&heap).store_header(i * 8, (word & 0x3f) | ((m | 8) << 32));
            }
            let mut c = Consumer::new(&ctl, &heap);
            for _ in 0..20 {
                match c.peek() {
                    Ok(Some(r)) => {
                        proptest::prop_assert!(r.offset + r.len <= 64);
                        let mut v = vec![0; r.len];
                        c.read(&r, &mut v);
                        c.release(r);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}

#[cfg(all(test, loom))]
#[allow(unsafe_code)]
pub(crate) mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    /// Memory whose every byte is a loom cell: loom reports a read of bytes
    /// whose write is not ordered before it (a broken publication). Header
    /// words are loom atomics beside the bytes (the real ring keeps both in
    /// the same memory; the protocol never reads a word as bytes or the
    /// reverse at the same time).
    pub(crate) struct Cells {
        bytes: Vec<UnsafeCell<u8>>,
        words: Vec<AtomicU64>,
    }

    impl Cells {
        pub(crate) fn new(len: usize) -> Cells {
            Cells {
                bytes: (0..len).map(|_| UnsafeCell::new(0)).collect(),
                words: (0..len / 8).map(|_| AtomicU64::new(0)).collect(),
            }
        }
    }

    impl Memory for &Cells {
        fn len(&self) -> usize {
            self.bytes.len()
        }
        fn read(&self, offset: usize, dst: &mut [u8]) {
            for (i, d) in dst.iter_mut().enumerate() {
                // SAFETY: loom checks that this read is ordered after the write.
                *d = self.bytes[offset + i].with(|p| unsafe { *p });
            }
        }
        fn write(&self, offset: usize, src: &[u8]) {
            for (i, s) in src.iter().enumerate() {
                // SAFETY: loom checks that no read races with this write.
                self.bytes[offset + i].with_mut(|p| unsafe { *p = *s });
            }
        }
        fn load_header(&self, offset: usize) -> u64 {
            self.words[offset / 8].load(Ordering::Acquire)
        }
        fn store_header(&self, offset: usize, word: u64) {
            self.words[offset / 8].store(word, Ordering::Release);
        }
    }

    fn msgs() -> Vec<Vec<u8>> {
        vec![
            vec![1, 2, 3],
            vec![],
            vec![4; 24],
            vec![5, 6],
            vec![7; 17],
            vec![8; 20],
        ]
    }

    /// Producer and consumer on a 128-byte ring, busy-waiting: every message
    /// arrives intact and in order, with wrap-around and padding, and with the
    /// consumer publishing its position lazily (every 16 bytes, or when it
    /// finds the ring empty) as the channel does.
    #[test]
    fn publication_is_ordered() {
        loom::model(|| {
            let ctl = Arc::new(Control::new());
            let mem = Arc::new(Cells::new(128));
            let (c2, m2) = (ctl.clone(), mem.clone());
            let t = loom::thread::spawn(move || {
                let mut p = Producer::new(&c2, &*m2);
                for m in msgs() {
                    while p.push(&[&m], Part::Whole).unwrap().is_none() {
                        loom::thread::yield_now();
                    }
                }
            });
            let mut c = Consumer::new(&ctl, &*mem);
            for want in msgs() {
                let r = loop {
                    if let Some(r) = c.peek().unwrap() {
                        break r;
                    }
                    c.publish();
                    loom::thread::yield_now();
                };
                let mut got = vec![0; r.len];
                c.read(&r, &mut got);
                c.release(r);
                assert_eq!(got, want);
            }
            t.join().unwrap();
        });
    }
}
