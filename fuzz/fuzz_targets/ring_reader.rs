//! Fuzzes the shared-memory ring's consumer, over arbitrary ring bytes and positions a hostile peer could leave: no panic, no out-of-bounds access.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    named_ipc::fuzz_support::ring_reader(data);
});
