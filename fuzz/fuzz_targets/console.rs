//! Fuzz target `console`: see `secure_run_fuzz::console` (fuzz/src/console.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| secure_run_fuzz::console::run(data));
