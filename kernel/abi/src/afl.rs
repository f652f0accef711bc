//! `secure-run --afl`: what the kernel and the VMM share to run one fuzzing input after another in one VM.
//!
//! - The input region ([`crate::BootInfo::afl_input`]): a little-endian `u64` length at its start, then
//!   that many bytes of input (at most the region's size less [`INPUT_HEADER`]). The VMM writes it before
//!   each execution.
//! - The snapshot point: the kernel writes one byte to [`SNAPSHOT_PORT`] just before it attaches the
//!   input: after boot, just before the app's first instruction, or with
//!   [`crate::FLAG_AFL_SNAPSHOT_AFTER_STARTUP`] later, at the app's first system call outside a short list
//!   of calls that cannot observe the input (the C library's start-up: brk, mprotect, anonymous mmap,
//!   signal actions, ...). The VMM takes its snapshot of the VM there (on KVM: registers, guest memory,
//!   device state) and, for each execution, restores it, writes the input region and resumes the vCPU
//!   after that `OUT`. What the kernel does from then on (reading the input's length, showing the input
//!   as stdin or as the file [`crate::BootInfo::afl_input_path`]) runs once per execution, so every
//!   execution starts from the same state with its own input.
//! - The coverage map ([`crate::BootInfo::afl_map`]): contiguous guest-physical frames (on KVM the host's
//!   AFL shared-memory segment itself, above RAM) that `shmat(afl_shm_id, ..)` maps into the app.

/// The port the kernel writes one byte to at the snapshot point. Only the first write of a run is the
/// kernel's: the VMM ignores any later one (an app at CPL0 can execute `OUT` too). QEMU has no device
/// there (its `isa-debug-exit` covers 0xf4-0xf7), so on QEMU the write does nothing.
pub const SNAPSHOT_PORT: u16 = 0xea;

/// Bytes before the input's data in the input region: its length, a little-endian `u64`.
pub const INPUT_HEADER: usize = 8;
