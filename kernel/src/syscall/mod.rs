//! The syscall layer: decodes a syscall's number and arguments, checks them, and runs it against the
//! process state. One module per family; this one owns the dispatcher and the result types.
//!
//! Blocking in a single-threaded guest: nothing can ever wake a wait that has no timeout (an empty pipe
//! with writers, a futex whose value matches, poll with no ready fd and no timeout). Those waits are
//! reported as a deadlock on [`kernel_abi::Stream::Log`] and end the app as if killed by SIGKILL (status
//! 137), instead of hanging until the VMM's timeout. With `O_NONBLOCK` the app gets EAGAIN as on Linux.
#![forbid(unsafe_code)]

pub mod fcntl;
pub mod fs;
pub mod mem;
pub mod pipe;
pub mod poll;
pub mod proc;
pub mod rw;
pub mod signal;
pub mod table;
pub mod time;

#[cfg(test)]
mod tests;

pub use table::{nr, SYSCALLS};

use crate::errno::Errno;
use crate::machine::Machine;
use crate::process::Process;

pub use linux_raw_sys::general::{
    AT_EACCESS, AT_EMPTY_PATH, AT_FDCWD, AT_NO_AUTOMOUNT, AT_REMOVEDIR, AT_STATX_SYNC_TYPE, AT_SYMLINK_NOFOLLOW,
    FASYNC as O_ASYNC, O_ACCMODE, O_APPEND, O_CLOEXEC, O_CREAT, O_DIRECT, O_DIRECTORY, O_DSYNC, O_EXCL, O_LARGEFILE,
    O_NOATIME, O_NOCTTY, O_NOFOLLOW, O_NONBLOCK, O_PATH, O_RDONLY, O_RDWR, O_SYNC, O_TMPFILE, O_TRUNC, O_WRONLY,
};

/// Largest single read or write (Linux `MAX_RW_COUNT`).
pub const MAX_RW_COUNT: u64 = 0x7fff_f000;
/// Bytes moved between app memory and kernel objects per step.
pub const CHUNK: usize = 64 * 1024;

/// What the hardware side does after a syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallResult {
    /// Resume the app with this value in RAX (`-errno` on failure).
    Return(i64),
    /// The app exited with this status (0-255).
    Exit(i32),
    /// The app was killed by this signal (exit status 128 + signal).
    Killed(i32),
}

/// How a handler ends when it does not return a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    Errno(Errno),
    Exit(i32),
    Killed(i32),
}

impl From<Errno> for Stop {
    fn from(errno: Errno) -> Self {
        Stop::Errno(errno)
    }
}

pub(crate) type SysResult = Result<i64, Stop>;

/// A count as a syscall return value.
pub(crate) fn count(n: usize) -> SysResult {
    i64::try_from(n).map_err(|_| Stop::Errno(Errno::EOVERFLOW))
}

/// The low 32 bits as a C `int`.
pub(crate) fn int_arg(raw: u64) -> i32 {
    raw as u32 as i32
}

impl Process {
    /// Runs syscall `nr` with its six raw argument registers (read where they are: the entry's saved
    /// frame, not a copy).
    pub fn syscall<M: Machine>(&mut self, m: &mut M, nr: u64, args: &[u64; 6]) -> SyscallResult {
        let result = match self.dispatch(m, nr, args) {
            Ok(value) => SyscallResult::Return(value),
            Err(Stop::Errno(errno)) => SyscallResult::Return(errno.to_return()),
            Err(Stop::Exit(status)) => SyscallResult::Exit(status),
            Err(Stop::Killed(signal)) => SyscallResult::Killed(signal),
        };
        if self.trace {
            crate::trace::emit(self, m, nr, args, result);
        }
        result
    }

    /// Reports a wait nothing can end and kills the app (see the module docs).
    pub(crate) fn deadlock<M: Machine>(&mut self, m: &mut M, what: &str) -> Stop {
        let mut line = alloc::string::String::from("secure-run kernel: deadlock: ");
        line.push_str(what);
        line.push_str(" would block forever (single-threaded guest); killing the app with SIGKILL\n");
        m.console(kernel_abi::Stream::Log, line.as_bytes());
        Stop::Killed(kernel_abi::signal::SIGKILL)
    }
}
