//! A ring's data area as raw memory: every access is a copy through a raw
//! pointer, never a reference, because the peer process can write these
//! bytes at any time.

use std::marker::PhantomData;

use super::atomic::{AtomicU64, Ordering};
use super::ring::Memory;

/// The shared memory of a ring, as a raw pointer into the segment.
#[derive(Clone, Copy)]
pub(crate) struct Raw {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: Raw points into a mapping owned by the channel end that owns the
// Raw (kept alive by its `Inner`); which thread copies through it does not
// matter.
unsafe impl Send for Raw {}

impl Raw {
    /// # Safety
    /// `ptr..ptr + len` must stay mapped, readable and writable for as long as
    /// this value (or a copy) is used.
    #[inline]
    pub(crate) unsafe fn new(ptr: *mut u8, len: usize) -> Raw {
        Raw { ptr, len }
    }

    #[inline]
    fn check(&self, offset: usize, len: usize) {
        assert!(
            offset <= self.len && len <= self.len - offset,
            "ring access out of bounds"
        );
    }

    /// The 8-byte word at `offset`, as an atomic: the ring's record headers,
    /// which the peer writes concurrently (atomics may be).
    #[inline]
    fn word(&self, offset: usize) -> &AtomicU64 {
        self.check(offset, 8);
        let p = self.ptr.wrapping_add(offset);
        assert!(
            (p as usize).is_multiple_of(8),
            "ring header word not 8-aligned"
        );
        // SAFETY: in bounds (checked above) of a live mapping and 8-aligned
        // (checked above; the data area and record offsets are multiples of
        // 8); an atomic is the one type whose bytes another process may
        // write while we hold a reference.
        unsafe { &*p.cast::<AtomicU64>() }
    }

    /// A read view of `len` bytes at `offset`.
    #[inline]
    pub(crate) fn view(&self, offset: usize, len: usize) -> InPlace<'_> {
        self.check(offset, len);
        // SAFETY: in bounds (checked above) of a live mapping.
        InPlace::raw(unsafe { self.ptr.add(offset) }, len)
    }

    /// A write view of `len` bytes at `offset`.
    #[inline]
    pub(crate) fn view_mut(&self, offset: usize, len: usize) -> InPlaceMut<'_> {
        self.check(offset, len);
        InPlaceMut {
            // SAFETY: in bounds (checked above) of a live, writable mapping.
            ptr: unsafe { self.ptr.add(offset) },
            len,
            _life: PhantomData,
        }
    }
}

impl Memory for Raw {
    #[inline]
    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn read(&self, offset: usize, dst: &mut [u8]) {
        self.check(offset, dst.len());
        // SAFETY: in bounds (checked above) of a live mapping; the bytes may be
        // written by the peer, and we only copy them out.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(offset), dst.as_mut_ptr(), dst.len()) };
    }

    #[inline]
    fn write(&self, offset: usize, src: &[u8]) {
        self.check(offset, src.len());
        // SAFETY: in bounds (checked above) of a live, writable mapping.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(offset), src.len()) };
    }

    #[inline]
    fn load_header(&self, offset: usize) -> u64 {
        self.word(offset).load(Ordering::Acquire)
    }

    #[inline]
    fn store_header(&self, offset: usize, word: u64) {
        self.word(offset).store(word, Ordering::Release);
    }

    /// Appends `len` bytes from `offset` to `out`, copying straight into its
    /// spare capacity (no zero-filling first).
    fn append_to(&self, offset: usize, len: usize, out: &mut Vec<u8>) {
        self.check(offset, len);
        out.reserve(len);
        let at = out.len();
        // SAFETY: the source is in bounds (checked above) of a live mapping
        // and is only copied, never referenced; the destination is spare
        // capacity of `out`, reserved just above, which the copy initialises
        // before `set_len` exposes it.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.add(offset), out.as_mut_ptr().add(at), len);
            out.set_len(at + len);
        }
    }
}

/// A received message, read in place ([`ShmStream::recv_with`]).
///
/// When the message sits in the ring, these bytes are memory the peer
/// process can write. A named-ipc peer never does (it does not reuse a record
/// before you release it), but a buggy or hostile one could, so the bytes are
/// never handed out as a `&[u8]`, whose contents Rust assumes cannot change:
/// you read them with copies ([`read_at`](Self::read_at),
/// [`copy_to_slice`](Self::copy_to_slice), [`to_vec`](Self::to_vec)), which at
/// worst return garbage from such a peer — validate what you read, as any
/// input. If you trust the peer, [`as_slice`](Self::as_slice) gives the slice,
/// as an `unsafe` promise.
///
/// [`ShmStream::recv_with`]: crate::channel::ShmStream::recv_with
pub struct InPlace<'a> {
    ptr: *const u8,
    len: usize,
    _life: PhantomData<&'a [u8]>,
}

impl std::fmt::Debug for InPlace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InPlace").field("len", &self.len).finish()
    }
}

impl<'a> InPlace<'a> {
    fn raw(ptr: *const u8, len: usize) -> InPlace<'a> {
        InPlace {
            ptr,
            len,
            _life: PhantomData,
        }
    }

    /// A view of private memory (a message assembled from several records).
    pub(crate) fn of(bytes: &'a [u8]) -> InPlace<'a> {
        InPlace::raw(bytes.as_ptr(), bytes.len())
    }

    /// The message's length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `dst.len()` bytes starting at `offset` into `dst`; `false` (and
    /// nothing copied) if that range is not inside the message.
    #[inline]
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> bool {
        if offset > self.len || dst.len() > self.len - offset {
            return false;
        }
        // SAFETY: in bounds of the view, which covers live memory for 'a; a
        // copy never forms a reference to bytes the peer may change.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(offset), dst.as_mut_ptr(), dst.len()) };
        true
    }

    /// Copies the whole message into `dst`.
    ///
    /// # Panics
    /// If `dst.len()` differs from [`len`](Self::len), like
    /// `<[u8]>::copy_from_slice`.
    #[inline]
    pub fn copy_to_slice(&self, dst: &mut [u8]) {
        assert_eq!(
            dst.len(),
            self.len,
            "destination and message lengths differ"
        );
        self.read_at(0, dst);
    }

    /// The byte at `index`, if inside the message.
    #[inline]
    pub fn get(&self, index: usize) -> Option<u8> {
        let mut b = [0u8];
        self.read_at(index, &mut b).then_some(b[0])
    }

    /// A copy of the message.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        // SAFETY: the view covers `len` live bytes; the destination is the
        // spare capacity just reserved, initialised by the copy before
        // `set_len` exposes it.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr, v.as_mut_ptr(), self.len);
            v.set_len(self.len);
        }
        v
    }

    /// The message as a slice, without copying.
    ///
    /// # Safety
    /// No process may write these bytes while the slice lives. A named-ipc
    /// peer never does; a peer that breaks the channel protocol could, so use
    /// this only when you trust the peer's code.
    #[inline]
    pub unsafe fn as_slice(&self) -> &'a [u8] {
        // SAFETY: the view covers `len` live bytes for 'a; the caller
        // promises that nothing writes them meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Room for a message being written in place ([`ShmStream::send_with`]):
/// write it with [`write_at`](Self::write_at) or
/// [`copy_from_slice`](Self::copy_from_slice). Bytes you do not write are
/// sent as they are (zero or stale). As with [`InPlace`], the memory is shared
/// with the peer, so it is never a safe `&mut [u8]`;
/// [`as_mut_slice`](Self::as_mut_slice) gives one as an `unsafe` promise.
///
/// [`ShmStream::send_with`]: crate::channel::ShmStream::send_with
pub struct InPlaceMut<'a> {
    ptr: *mut u8,
    len: usize,
    _life: PhantomData<&'a mut [u8]>,
}

impl std::fmt::Debug for InPlaceMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InPlaceMut")
            .field("len", &self.len)
            .finish()
    }
}

impl InPlaceMut<'_> {
    /// The message's length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `src` into the message at `offset`; `false` (and nothing
    /// written) if it does not fit.
    #[inline]
    pub fn write_at(&mut self, offset: usize, src: &[u8]) -> bool {
        if offset > self.len || src.len() > self.len - offset {
            return false;
        }
        // SAFETY: the destination is in bounds of the view (offset +
        // src.len() <= len, checked above), which covers live, writable
        // memory; the source is a separate slice.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(offset), src.len()) };
        true
    }

    /// Writes the whole message.
    ///
    /// # Panics
    /// If `src.len()` differs from [`len`](Self::len).
    #[inline]
    pub fn copy_from_slice(&mut self, src: &[u8]) {
        assert_eq!(src.len(), self.len, "source and message lengths differ");
        self.write_at(0, src);
    }

    /// Sets every byte of the message to `byte`.
    #[inline]
    pub fn fill(&mut self, byte: u8) {
        // SAFETY: the view covers `len` live, writable bytes.
        unsafe { std::ptr::write_bytes(self.ptr, byte, self.len) };
    }

    /// The message as a mutable slice, without copying.
    ///
    /// # Safety
    /// No other process may read or write these bytes while the slice lives.
    /// A named-ipc peer does not touch a record before it is sent; a peer that
    /// breaks the channel protocol could, so use this only when you trust the
    /// peer's code.
    #[inline]
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the view covers `len` live, writable bytes; the caller
        // promises exclusive access meanwhile.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::Raw;

    const SIZE: usize = 512;

    /// Runs `write` on a fresh view of `len` bytes at `offset` in a buffer
    /// of `0xee`, and returns the buffer's bytes afterwards.
    fn after(offset: usize, len: usize, write: impl FnOnce(&mut super::InPlaceMut<'_>)) -> Vec<u8> {
        let mut backing = vec![0u64; SIZE / 8]; // 8-aligned, like ring records
        let base = backing.as_mut_ptr().cast::<u8>();
        // SAFETY: `backing` is SIZE live bytes, alive until the end of this
        // function, and no reference to them exists meanwhile.
        unsafe { std::ptr::write_bytes(base, 0xee, SIZE) };
        // SAFETY: as above.
        let raw = unsafe { Raw::new(base, SIZE) };
        write(&mut raw.view_mut(offset, len));
        // SAFETY: as above; the view is gone.
        let got = unsafe { std::slice::from_raw_parts(base, SIZE) }.to_vec();
        drop(backing);
        got
    }

    /// The view's writers put every byte where it belongs, refuse a write
    /// too long for the view whole, and touch nothing outside the view — for
    /// every position of the view against a cache line, every start and
    /// every length (up to the view's end and beyond it).
    #[test]
    fn view_writes_land_exactly_and_only_inside_the_view() {
        for offset in (8..=136).step_by(8) {
            for len in [0usize, 1, 7, 8, 55, 56, 57, 63, 64, 65, 120, 128, 200] {
                let src: Vec<u8> = (0..len + 9).map(|i| (i * 7 + 3) as u8).collect();
                for at in 0..=len + 1 {
                    for n in 0..=(len + 2).saturating_sub(at) {
                        let fits = at <= len && n <= len - at;
                        let got = after(offset, len, |v| {
                            assert_eq!(
                                v.write_at(at, &src[..n]),
                                fits,
                                "write_at({at}, {n} B) of {len}"
                            );
                        });
                        let mut want = vec![0xeeu8; SIZE];
                        if fits {
                            want[offset + at..offset + at + n].copy_from_slice(&src[..n]);
                        }
                        assert_eq!(got, want, "write_at({at}, {n} B) of {len} at {offset}");
                    }
                }
                let got = after(offset, len, |v| v.fill(0x11));
                let mut want = vec![0xeeu8; SIZE];
                want[offset..offset + len].fill(0x11);
                assert_eq!(got, want, "fill of {len} at {offset}");
                let got = after(offset, len, |v| v.copy_from_slice(&src[..len]));
                let mut want = vec![0xeeu8; SIZE];
                want[offset..offset + len].copy_from_slice(&src[..len]);
                assert_eq!(got, want, "copy_from_slice of {len} at {offset}");
            }
        }
    }
}
