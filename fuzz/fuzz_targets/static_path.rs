#![no_main]
//! See `dragoman::fuzzing::static_path` for what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dragoman::fuzzing::static_path(data));
