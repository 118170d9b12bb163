//! Property tests of the frame decoder: the parser of bytes another process
//! controls. Valid streams round-trip however they are split; arbitrary bytes
//! never panic, never yield a frame over the limit, and fail permanently.

use std::io::{self, Cursor};

use named_ipc::pipe::{FrameDecoder, Framed};
use proptest::prelude::*;

fn encode(msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Framed::new(Vec::new());
    for m in msgs {
        w.send(m).unwrap();
    }
    w.into_inner()
}

/// Splits `bytes` into chunks whose sizes cycle through `cuts` (each >= 1).
fn chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut k = 0;
    while i < bytes.len() {
        let n = cuts[k % cuts.len()].min(bytes.len() - i);
        out.push(&bytes[i..i + n]);
        i += n;
        k += 1;
    }
    out
}

fn messages() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 0..16),
            1 => prop::collection::vec(any::<u8>(), 0..3000),
        ],
        0..20,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn valid_streams_round_trip_however_split(
        msgs in messages(),
        cuts in prop::collection::vec(1usize..64, 1..8),
    ) {
        let bytes = encode(&msgs);
        let mut d = FrameDecoder::new(4096);
        let mut got = Vec::new();
        for c in chunks(&bytes, &cuts) {
            d.push(c);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        d.finish();
        prop_assert_eq!(d.next_frame().unwrap(), None);
        prop_assert!(d.is_idle());
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn partial_reads_reassemble_every_message(
        msgs in messages(),
        bufsizes in prop::collection::vec(1usize..50, 1..6),
    ) {
        let mut f = Framed::new(Cursor::new(encode(&msgs)));
        let mut got = Vec::new();
        let mut cur = Vec::new();
        let mut k = 0;
        loop {
            let mut buf = vec![0u8; bufsizes[k % bufsizes.len()]];
            k += 1;
            match f.recv_slice(&mut buf).unwrap() {
                None => break,
                Some(r) => {
                    cur.extend_from_slice(&buf[..r.len]);
                    if r.is_complete() {
                        got.push(std::mem::take(&mut cur));
                    }
                }
            }
            prop_assert!(k < 100_000, "no progress");
        }
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_exceed_the_limit(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        max in 0u32..300,
        cut in 1usize..40,
    ) {
        let mut d = FrameDecoder::new(max);
        let mut consumed = 0usize;
        let mut failed = None;
        for c in bytes.chunks(cut) {
            d.push(c);
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => {
                        prop_assert!(f.len() <= max as usize);
                        consumed += 4 + f.len();
                    }
                    Ok(None) => break,
                    Err(e) => {
                        failed = Some(e.kind());
                        break;
                    }
                }
            }
            if failed.is_some() {
                break;
            }
        }
        prop_assert!(consumed <= bytes.len());
        if failed.is_none() {
            d.finish();
            match d.next_frame() {
                Ok(None) => prop_assert_eq!(consumed, bytes.len()),
                Ok(Some(_)) => prop_assert!(false, "a frame appeared only after finish"),
                Err(e) => failed = Some(e.kind()),
            }
        }
        if let Some(kind) = failed {
            prop_assert!(
                kind == io::ErrorKind::InvalidData || kind == io::ErrorKind::UnexpectedEof,
                "unexpected error kind {:?}", kind
            );
            // Poisoned: the same error again, whatever comes next.
            d.push(&[0, 0, 0, 0]);
            prop_assert_eq!(d.next_frame().unwrap_err().kind(), kind);
        }
    }
}
