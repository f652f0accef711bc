//! The harness shared by all integration tests.
//!
//! - [`guests`]: builds the programs in `tests/guests/` once per run.
//! - [`run`]: runs secure-run or a guest natively, with a hard timeout, and asserts on the result.
//! - [`fixtures`]: files to mount into guests.
//! - the macros below: one test body, one `#[test]` per (backend, isolation) mode.
//!
//! Malformed copies of a guest are made with `vmm::elf::write::ElfWriter`, the ELF writer the VMM's own
//! tests use.

pub mod fixtures;
pub mod guests;
pub mod run;

pub use fixtures::{data_dir, GUEST_DATA};
pub use guests::{guest, Toolchain, C_VARIANTS};
pub use run::{
    assert_no_panic, assert_output, assert_same_as_native, assert_status, assert_stderr_contains, guarded_instructions,
    run, run_native, Mode, RunResult, SecureRun,
};

/// One test body, one `#[test]` per mode:
///
/// ```ignore
/// tests_in_modes!([qemu_none, kvm_none] fn hello(mode) { ... });
/// ```
/// makes the module `hello` with the tests `hello::qemu_none` and `hello::kvm_none`; `mode` is the
/// [`Mode`] of each. Mode names are `BACKEND_ISOLATION` (see [`Mode::named`]).
macro_rules! tests_in_modes {
    ([$($mode:ident),+ $(,)?] fn $name:ident($arg:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn test_body($arg: $crate::common::Mode) $body

            $(
                #[test]
                fn $mode() {
                    test_body($crate::common::Mode::named(stringify!($mode)));
                }
            )+
        }
    };
}

/// The modes of the boot tests (`boot.rs`): both backends, every isolation mode.
macro_rules! boot_test {
    (fn $name:ident($arg:ident) $body:block) => {
        tests_in_modes!([qemu_none, kvm_none, qemu_mpk_aslr, qemu_ring3, kvm_ring3] fn $name($arg) $body);
    };
}

/// The modes of the Linux ABI tests (C, Rust and busybox guests). The one place to change them.
macro_rules! abi_test {
    (fn $name:ident($arg:ident) $body:block) => {
        tests_in_modes!([qemu_none, qemu_mpk_aslr, qemu_ring3, kvm_ring3_aslr] fn $name($arg) $body);
    };
}
