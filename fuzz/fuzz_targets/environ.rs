#![no_main]
//! See `dragoman::fuzzing::environ` for what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dragoman::fuzzing::environ(data));
