//! Findings of the review of ec70e9d..main: each test here fails against the
//! code it was written for (see the `REVIEW:` line on each) and passes once
//! the defect it names is fixed.

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use common::*;
use named_ipc::channel::{ChannelOptions, ShmStream};

/// A server and a client in this process, on a small ring.
fn local_pair(capacity: usize) -> (ShmStream, ShmStream) {
    let name = unique("review");
    let l = ChannelOptions::new()
        .capacity(capacity)
        .bind(&name)
        .unwrap();
    let c = std::thread::spawn(move || ShmStream::connect_timeout(&name, STEP).unwrap());
    let s = l.accept_timeout(STEP).unwrap();
    (s, c.join().unwrap())
}

/// How long a send that should complete at once may wait for room before the
/// test calls it stuck. Not a performance bound: the room is already free.
const ROOM_IS_FREE: Duration = Duration::from_secs(10);

// REVIEW: fails today: a consumer that read less than an eighth of the ring and then stops reading never publishes its position, so a producer waiting for room that is already free waits forever (channel/ring.rs Consumer::release, flow.rs release).
/// The ring's docs promise the consumer's position reaches the producer
/// "before a producer waiting for room could be left waiting on space that
/// was already freed". A consumer that takes one message out of a full ring
/// and then does something else (say, sends a large reply) has freed room;
/// a producer waiting for exactly that room must get it. Today the position
/// is published only after an eighth of the ring, or when the consumer
/// finds the ring empty, so the producer waits until its timeout (or, with
/// no timeout, forever: both sides deadlock if the consumer's next step is a
/// send that needs the producer to read).
#[test]
fn a_producer_waiting_for_room_sees_room_the_consumer_freed() {
    with_watchdog("room freed", || {
        let (s, c) = local_pair(4096);
        // Fill the server -> client ring with 16-byte records (8 + 8).
        let mut sent = 0u32;
        while s.try_send(&sent.to_le_bytes().repeat(2)).is_ok() {
            sent += 1;
        }
        assert!(sent > 8, "only {sent} messages fit in a 4 KiB ring");
        // The client takes one message: 16 bytes of the ring are free.
        assert_eq!(
            c.recv_timeout(STEP).unwrap().unwrap(),
            0u32.to_le_bytes().repeat(2)
        );
        // A message of the same size fits in the room just freed.
        let r = s.send_timeout(&[0xAA; 8], ROOM_IS_FREE);
        assert!(
            r.is_ok(),
            "a send waited {ROOM_IS_FREE:?} for room the consumer had already freed: {r:?}"
        );
        // Everything arrives, in order.
        for i in 1..sent {
            assert_eq!(
                c.recv_timeout(STEP).unwrap().unwrap(),
                i.to_le_bytes().repeat(2)
            );
        }
        assert_eq!(c.recv_timeout(STEP).unwrap().unwrap(), [0xAA; 8]);
    })
}

// REVIEW: fails today: the channel handshake reads the client's hello with the pipe's 16 MiB limit, so each of 64 concurrent handshakes can make the server buffer 16 MiB for what is a 16-byte message (channel/options.rs bind, handshake.rs server).
/// The client's hello is 16 bytes. A "client" that announces and sends a
/// hello of megabytes must be refused at its header, not buffered: with 64
/// handshakes at once, each could pin 16 MiB of the server's memory.
#[test]
fn a_huge_channel_hello_is_refused_at_its_header() {
    with_watchdog("huge hello", || {
        let name = unique("review-hello");
        let l = ChannelOptions::new().capacity(4096).bind(&name).unwrap();
        let accepting = std::thread::spawn(move || {
            // No client succeeds; this only runs the handshakes.
            let _ = l.accept_timeout(Duration::from_secs(20));
        });
        let c = named_ipc::pipe::PipeStream::connect_timeout(&name, STEP).unwrap();
        c.set_write_timeout(Some(STEP)).unwrap();
        let r = c.send(&vec![0u8; 8 << 20]);
        accepting.join().unwrap();
        assert!(
            r.is_err(),
            "the server read an 8 MiB hello to the end instead of refusing it"
        );
    })
}
