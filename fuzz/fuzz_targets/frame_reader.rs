//! Fuzzes the frame decoder as the socket backend drives it: scatter reads
//! (header, straight into the caller's buffer, read-ahead) cut anywhere, any
//! caller buffer capacity, limits up to 4 GiB − 1. Checked: no panic; frames
//! within the limit and within what arrived; only the documented errors; and
//! the buffer grows with what arrives, never with what a header announced.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    named_ipc::fuzz_support::frame_reader(data);
});
