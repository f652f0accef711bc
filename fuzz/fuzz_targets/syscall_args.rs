//! Fuzz target `syscall_args`: see `secure_run_fuzz::syscall_args` (fuzz/src/syscall_args.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| secure_run_fuzz::syscall_args::run(data));
