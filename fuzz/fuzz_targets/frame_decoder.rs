//! Fuzzes the u32-LE frame decoder with bytes another process could send.
//!
//! Input: byte 0 picks the size limit (255: 4 GiB − 1, the largest the wire
//! carries; 254: 1 GiB; else byte × 16), byte 1 the chunk size the stream is
//! cut into, the rest is the stream. Checked: no panic; no frame over the limit;
//! frames account for no more bytes than were pushed; errors are the documented
//! kinds and permanent; and re-encoding the frames decoded reproduces the prefix
//! of the input they came from.
#![no_main]

use std::io;

use libfuzzer_sys::fuzz_target;
use named_ipc::pipe::FrameDecoder;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max = match data[0] {
        255 => u32::MAX,
        254 => 1 << 30,
        m => u32::from(m) * 16,
    };
    let cut = usize::from(data[1]).max(1);
    let stream = &data[2..];
    let mut d = FrameDecoder::new(max);
    let mut encoded = Vec::new();
    let mut failed = None;
    'outer: for chunk in stream.chunks(cut) {
        d.push(chunk);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.len() <= max as usize);
                    encoded.extend_from_slice(&(f.len() as u32).to_le_bytes());
                    encoded.extend_from_slice(&f);
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e.kind());
                    break 'outer;
                }
            }
        }
    }
    assert!(encoded.len() <= stream.len());
    assert_eq!(&stream[..encoded.len()], &encoded[..]);
    if failed.is_none() {
        d.finish();
        if let Err(e) = d.next_frame() {
            failed = Some(e.kind());
        }
    }
    if let Some(kind) = failed {
        assert!(matches!(kind, io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof));
        assert_eq!(d.next_frame().unwrap_err().kind(), kind);
    }
});
