#![no_main]
//! See `dragoman::fuzzing::framing_vs_hyper` for what must hold.
libfuzzer_sys::fuzz_target!(|data: &[u8]| dragoman::fuzzing::framing_vs_hyper(data));
