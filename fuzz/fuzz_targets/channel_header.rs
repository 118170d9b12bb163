//! Fuzzes the channel's handshake message and shared segment header: no panic, no out-of-bounds access.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    named_ipc::fuzz_support::channel_header(data);
});
