//! Fuzzes owner records (nipc shm ls/gc) and the header of Unix named mutexes and events: no panic, no out-of-bounds access.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    named_ipc::fuzz_support::records(data);
});
