#![no_main]
//! See `dragoman::fuzzing::range_header` for what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dragoman::fuzzing::range_header(data));
