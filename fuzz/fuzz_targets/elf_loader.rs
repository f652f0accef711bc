//! Fuzz target `elf_loader`: see `secure_run_fuzz::elf_loader` (fuzz/src/elf_loader.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| secure_run_fuzz::elf_loader::run(data));
