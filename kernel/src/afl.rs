//! `secure-run --afl` (`kernel_abi::afl`): the fuzzing input, shown to the app as its stdin or as a file,
//! and the snapshot point.
//!
//! The hardware side creates the file at boot ([`Process::create_afl_input_file`]), before the snapshot
//! point. [`Process::take_afl_snapshot`] is the snapshot point: the machine's [`Machine::afl_snapshot`],
//! then the input attached ([`Process::attach_afl_input`]). What follows it runs once per execution,
//! where kernel code may be emulated, so attaching only swaps a slice; the input's bytes are referenced
//! where the VMM wrote them, never copied. The snapshot point is just before the app's first instruction
//! (boot calls [`Process::take_afl_snapshot`]), or, with `kernel_abi::FLAG_AFL_SNAPSHOT_AFTER_STARTUP`
//! ([`Process::defer_afl_snapshot`]), at the app's first system call that could observe its input
//! ([`may_precede_snapshot`]): the C library's start-up before it (about a dozen calls, each about a
//! millisecond where kernel code is emulated) then runs once, not in every execution. (The coverage map
//! is the SysV segment of [`crate::syscall::shm`].)
#![forbid(unsafe_code)]

use crate::errno::Errno;
use crate::machine::Machine;
use crate::process::Process;
use crate::syscall::nr;

/// `rseq` (x86-64), which the kernel does not implement (ENOSYS), but glibc's start-up tries.
const RSEQ: u64 = 334;
const MAP_ANONYMOUS: u64 = linux_raw_sys::general::MAP_ANONYMOUS as u64;

/// Whether syscall `number` with arguments `args` may run before a deferred snapshot point
/// ([`Process::defer_afl_snapshot`]): a call the C library's or AFL++'s runtime start-up makes that
/// cannot observe the input (neither stdin nor the input file: no fd but an anonymous mmap's ignored one,
/// no path but readlink's, whose target is no file's contents; shmat attaches only the coverage map). Anything else, a file mapping, an exit,
/// a clone and any call this list does not know, takes the snapshot first.
pub fn may_precede_snapshot(number: u64, args: &[u64; 6]) -> bool {
    match number {
        nr::MMAP => args[3] & MAP_ANONYMOUS != 0,
        nr::BRK
        | nr::ARCH_PRCTL
        | nr::SET_TID_ADDRESS
        | nr::SET_ROBUST_LIST
        | RSEQ
        | nr::PRLIMIT64
        | nr::READLINK
        | nr::READLINKAT
        | nr::GETRANDOM
        | nr::MPROTECT
        | nr::MUNMAP
        | nr::MREMAP
        | nr::MADVISE
        | nr::RT_SIGACTION
        | nr::RT_SIGPROCMASK
        | nr::SIGALTSTACK
        | nr::UNAME
        | nr::GETPID
        | nr::GETTID
        | nr::GETPPID
        | nr::GETUID
        | nr::GETEUID
        | nr::GETGID
        | nr::GETEGID
        | nr::CLOCK_GETTIME
        | nr::CLOCK_GETRES
        | nr::GETTIMEOFDAY
        | nr::TIME
        | nr::SCHED_GETAFFINITY
        | nr::FUTEX
        // AFL++'s runtime attaches the coverage map in a constructor; the map is not the input.
        | nr::SHMAT => true,
        _ => false,
    }
}

/// The input file's permissions: a regular file the app may also write (see
/// [`Process::create_afl_input_file`]).
const INPUT_FILE_MODE: u32 = 0o644;

impl Process {
    /// Creates the file at the absolute `path` (and the directories missing on the way, mode 0755) that
    /// shows each execution's input: a regular file, mode 0644, empty until [`Process::attach_afl_input`].
    /// A write or truncate makes the app a copy of its own, as for a `--mount` file; the next execution
    /// starts from the snapshot again, without it. Fails as creating the file would (EEXIST, ENOTDIR,
    /// EROFS in a read-only directory, ENAMETOOLONG, EINVAL for a relative path).
    pub fn create_afl_input_file(&mut self, path: &[u8], now_ns: u64) -> Result<(), Errno> {
        self.afl_input_file = Some(self.fs.create_static_file(path, &[], INPUT_FILE_MODE, now_ns)?);
        Ok(())
    }

    /// `kernel_abi::FLAG_AFL_SNAPSHOT_AFTER_STARTUP`: instead of boot taking the snapshot, the app's first
    /// system call that could observe its input ([`may_precede_snapshot`]) takes it
    /// ([`Process::take_afl_snapshot`]), before it runs. Only the first thread can make that call: a
    /// clone takes the snapshot first.
    pub fn defer_afl_snapshot(&mut self) {
        self.afl_snapshot_pending = true;
    }

    /// Whether the snapshot waits for a system call ([`Process::defer_afl_snapshot`]).
    pub fn afl_snapshot_pending(&self) -> bool {
        self.afl_snapshot_pending
    }

    /// The snapshot point (`kernel_abi::afl`): [`Machine::afl_snapshot`], then its input attached
    /// ([`Process::attach_afl_input`]). Everything after the machine's snapshot runs once per execution.
    #[cold]
    pub fn take_afl_snapshot<M: Machine>(&mut self, m: &mut M) {
        // Cleared before the snapshot: the state every execution starts from has it cleared.
        self.afl_snapshot_pending = false;
        let input = m.afl_snapshot();
        self.attach_afl_input(input);
    }

    /// This execution's input: the bytes of the file [`Process::create_afl_input_file`] made, or, without
    /// one, what fd 0 reads (from its start, then EOF).
    pub fn attach_afl_input(&mut self, input: &'static [u8]) {
        match self.afl_input_file {
            Some(file) => self.fs.set_static_data(file, input),
            None => self.stdin = input,
        }
    }
}
