//! The checks behind secure-run's fuzz targets, one module per target. `fuzz_targets/*.rs` only hand
//! libFuzzer's input to `<module>::run`; the main workspace's `vmm/tests/fuzz_regressions.rs` includes
//! these same modules by path and replays `regressions/<target>/*` through them, so each crash found stays
//! fixed under a plain `cargo test` (no nightly needed).
pub mod console;
pub mod elf_loader;
pub mod input;
pub mod inspection;
pub mod pvh;
pub mod syscall_args;
