#![no_main]
//! See `dragoman::fuzzing::uwsgi_packet` for what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dragoman::fuzzing::uwsgi_packet(data));
