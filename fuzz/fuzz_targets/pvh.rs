//! Fuzz target `pvh`: see `secure_run_fuzz::pvh` (fuzz/src/pvh.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| secure_run_fuzz::pvh::run(data));
