#![no_main]
//! See `dragoman::fuzzing::framing` for what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dragoman::fuzzing::framing(data));
