#![no_main]
//! See `dragoman::fuzzing::accept_encoding` for what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dragoman::fuzzing::accept_encoding(data));
