//! Fuzz target `inspection`: see `secure_run_fuzz::inspection` (fuzz/src/inspection.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| secure_run_fuzz::inspection::run(data));
