#![no_main]
//! See `dragoman::fuzzing::proxy_header` for what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dragoman::fuzzing::proxy_header(data));
