//! The ChaCha20 streams drawn from the kernel seed (`BootInfo::seed`). The VMM computes some of them
//! ahead, the kernel continues others: both must mean the same stream by the same number.

/// The kernel's random stream: getrandom and `/dev/urandom` (its first bytes come in `BootInfo::random`).
pub const KERNEL_STREAM: u64 = 0;
/// The process layout: stack, brk and mmap bases (`isolation::layout::plan_guest_process`).
pub const LAYOUT_STREAM: u64 = 1;
/// The 16 bytes AT_RANDOM points at.
pub const AT_RANDOM_STREAM: u64 = 2;
/// The first of the streams of programs `execve` starts: the n-th exec of the run draws its layout and
/// its AT_RANDOM bytes from stream `EXEC_STREAMS + n`.
pub const EXEC_STREAMS: u64 = 3;
