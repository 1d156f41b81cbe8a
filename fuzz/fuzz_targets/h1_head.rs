#![no_main]
//! See `dragoman::fuzzing::h1_head` for what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dragoman::fuzzing::h1_head(data));
