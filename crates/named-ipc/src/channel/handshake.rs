//! The channel handshake, run once per connection over the rendezvous pipe.
//!
//! The client speaks first: the [`ClientHello`] (see [`super::header`]: the
//! largest message it accepts, the ring size it asks for, and — an async
//! client on Unix — the wake-up descriptors of the bells it sleeps on). The
//! server answers with the [`Hello`] and the segment (Unix: its descriptor
//! over `SCM_RIGHTS`, and an async server's wake-up descriptors; Windows:
//! handles for the client to duplicate). Both then map the segment and
//! validate its header.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use super::flow::{invalid, Bells};
use super::header::{self, ClientHello, Hello, Layout, MIN_CAPACITY};
use super::options::ChannelOptions;
use super::raw::Raw;
use super::ring::{Consumer, Control, Memory, Producer};
use super::rx::RxEnd;
use super::tx::TxEnd;
use super::wait::Inner;
use super::ShmStream;
use crate::pipe::PipeStream;
use crate::sys::{self, Wait};

/// How long `accept` and `connect` wait for the other side's handshake.
pub(crate) const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

/// The server side of the handshake on a freshly accepted pipe.
pub(crate) fn server(pipe: PipeStream, opts: &ChannelOptions) -> io::Result<ShmStream> {
    // The client speaks first: its magic, version, largest message, ring
    // size and (an async client on Unix) wake-up descriptors.
    let (hi, peer_wakers) = sys::channel::recv_request(pipe.sys(), Wait::timeout(Some(HANDSHAKE)))
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client left during the handshake",
            ),
            _ => e,
        })?;
    let hi = ClientHello::decode(&hi).map_err(invalid)?;
    let capacity = match hi.capacity {
        0 => opts.capacity,
        n => (n.clamp(MIN_CAPACITY, opts.max_capacity.max(opts.capacity) as u64) as usize)
            .next_power_of_two(),
    };
    let layout = Layout::new(capacity);
    let map = sys::shm::Mapping::anonymous(layout.total as u64)?;
    // SAFETY: the mapping is ours, fresh and `map.len()` bytes long; it lives
    // until the end of this function (and then in the stream's `Inner`).
    let raw = unsafe { Raw::new(map.ptr(), map.len()) };
    raw.write(0, &layout.encode());
    let own = sys::channel::Wakers::new(opts.reactor)?;
    let hello = Hello {
        max_message: opts.max_message,
        capacity: layout.capacity as u64,
        segment_len: layout.total as u64,
        server_pid: std::process::id(),
        wakers: own.count(),
        handles: Vec::new(),
    };
    let os = sys::channel::send_hello(
        pipe.sys(),
        hello,
        &map,
        own,
        peer_wakers,
        hi.wakers,
        Bells::SERVER,
        Wait::timeout(Some(HANDSHAKE)),
    )?;
    // Server: receives on ring 0, sends on ring 1.
    assemble(
        pipe,
        map,
        layout,
        os,
        Bells::SERVER,
        [0, 1],
        opts,
        hi.max_message,
    )
}

/// The client side of the handshake on a freshly connected pipe.
pub(crate) fn client(
    pipe: PipeStream,
    opts: &ChannelOptions,
    deadline: Instant,
) -> io::Result<ShmStream> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the connect timeout ran out before the handshake",
        ));
    }
    let own = sys::channel::Wakers::new(opts.reactor)?;
    let hi = ClientHello {
        max_message: opts.max_message,
        capacity: if opts.capacity_asked {
            opts.capacity as u64
        } else {
            0
        },
        wakers: own.count(),
    };
    pipe.set_write_timeout(Some(left))?;
    sys::channel::send_request(pipe.sys(), &hi.encode(), &own, Wait::Until(deadline))?;
    pipe.set_write_timeout(None)?;
    let wait = Wait::Until(deadline);
    let (bytes, attachment) = sys::channel::recv_hello(pipe.sys(), wait)?;
    let hello = Hello::decode(&bytes).map_err(invalid)?;
    let (map, os) = sys::channel::attach(pipe.sys(), attachment, &hello, own, Bells::CLIENT, wait)?;
    let mut h = [0u8; header::HEADER_LEN];
    if map.len() < h.len() {
        return Err(invalid("the channel segment is too small"));
    }
    // SAFETY: the mapping is `map.len()` bytes long and lives until the end of
    // this function (and then in the stream's `Inner`).
    unsafe { Raw::new(map.ptr(), map.len()) }.read(0, &mut h);
    let layout = Layout::decode(&h, map.len()).map_err(invalid)?;
    if layout.capacity as u64 != hello.capacity {
        return Err(invalid(
            "the handshake and the segment disagree on the ring size",
        ));
    }
    // Client: sends on ring 0, receives on ring 1.
    assemble(
        pipe,
        map,
        layout,
        os,
        Bells::CLIENT,
        [1, 0],
        opts,
        hello.max_message,
    )
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    pipe: PipeStream,
    map: sys::shm::Mapping,
    layout: Layout,
    os: sys::channel::OsLink,
    bells: Bells,
    [rx_ring, tx_ring]: [usize; 2],
    opts: &ChannelOptions,
    peer_max: u32,
) -> io::Result<ShmStream> {
    let base = map.ptr();
    let control = |i: usize| -> &'static Control {
        // SAFETY: the layout was validated against the mapping's length; the
        // control block is 64-aligned (page-aligned mapping + 64-aligned
        // offset) and made of atomics, valid for any bit pattern. The
        // mapping lives in `Inner`, which every holder of these references
        // (TxEnd, RxEnd) keeps alive through an Arc declared after them.
        unsafe { &*(base.add(layout.rings[i]) as *const Control) }
    };
    let data = |i: usize| {
        // SAFETY: data(i) + capacity <= total <= mapping length (validated),
        // and the mapping lives in `Inner`, which outlives every Raw.
        unsafe { Raw::new(base.add(layout.data(i)), layout.capacity) }
    };
    let inner = Arc::new(Inner {
        os,
        bells,
        spin: opts.spin,
        peer_max,
        max_message: opts.max_message,
        name: pipe.name().to_owned(),
        pipe,
        _map: map,
    });
    let tx = TxEnd::new(
        Producer::new(control(tx_ring), data(tx_ring)),
        Arc::clone(&inner),
    );
    let rx = RxEnd::new(
        Consumer::new(control(rx_ring), data(rx_ring)),
        Arc::clone(&inner),
    );
    Ok(ShmStream::from_parts(tx, rx, inner))
}
