#![no_main]
//! See `dragoman::fuzzing::ini_file` for what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dragoman::fuzzing::ini_file(data));
