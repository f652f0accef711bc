//! The syscall layer: decodes a syscall's number and arguments, checks them, and runs it against the
//! process state. One module per family; this one owns the dispatcher and the result types.
//!
//! Blocking: a syscall that must wait returns `Stop::Block` with what it waits for (`Wait`); its thread
//! parks and the scheduler ([`crate::sched`]) runs another thread, or idles until the deadline or the next
//! timer. The wait ends by a futex wake (the call returns 0), by its deadline, by a signal, or, for pipes
//! and poll, when the call runs again with the same arguments and finds its condition (a timeout becomes
//! one deadline, kept in the thread's [`crate::thread::Restart`] across re-executions). A deliverable
//! signal makes the call return EINTR or one of the restart codes, which the return to the app turns into
//! EINTR or a restart (signal(7)). When no thread can run and nothing can end any wait (no deadline, no
//! timer armed), the kernel reports a deadlock on [`kernel_abi::Stream::Log`] naming each thread's wait and
//! ends the app as if killed by SIGKILL (status 137), instead of hanging until the VMM's timeout. With
//! `O_NONBLOCK` the app gets EAGAIN as on Linux.
#![forbid(unsafe_code)]

pub mod epoll;
pub mod fcntl;
pub mod fs;
pub mod mem;
pub mod pipe;
pub mod poll;
pub mod proc;
pub mod rw;
pub mod shm;
pub mod signal;
pub mod socket;
pub mod table;
pub mod thread;
pub mod time;

#[cfg(test)]
mod tests;

pub use table::{nr, SYSCALLS};

use crate::errno::Errno;
use crate::machine::Machine;
use crate::process::Process;
use crate::signal::SigSet;

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
    /// The call must wait; it runs again when the wait ends (see the module doc).
    Block(Wait),
}

/// What a blocked syscall waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Wait {
    /// When the wait ends by itself (monotonic ns); the call runs again then and sees the deadline passed.
    pub deadline: Option<u64>,
    /// Signals that end the wait even while blocked (rt_sigtimedwait's set): the call runs again.
    pub wake_on: SigSet,
    /// What the call returns when a deliverable signal ends the wait: EINTR or a restart code.
    pub interrupted: Errno,
    /// Where to write the time left when a signal ends the wait (nanosleep's `rem`).
    pub remaining_to: Option<u64>,
    /// What else ends the wait.
    pub waker: Waker,
    /// What waits, for the deadlock report.
    pub what: &'static str,
}

/// What, besides its deadline and signals, ends a wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Waker {
    /// Nothing else (sleeps, sigsuspend, sigtimedwait).
    Nothing,
    /// Another thread's syscall may have made the call able to go on (a pipe, poll): it runs again after
    /// other threads' syscalls, and finds out.
    Io,
    /// A futex wake on `addr` whose bitset meets `bitset`; the call then returns 0.
    Futex { addr: u64, bitset: u32 },
    /// The PI futex at `addr` handed to this thread by its owner's FUTEX_UNLOCK_PI; the call returns 0.
    FutexPi { addr: u64 },
    /// A child of the process ended (wait4, waitid): the call runs again (`crate::processes`).
    Child,
}

impl Wait {
    /// A wait until `deadline` (or forever) that a signal interrupts with `interrupted`.
    pub(crate) const fn until(deadline: Option<u64>, interrupted: Errno, what: &'static str) -> Self {
        Self { deadline, wake_on: SigSet::EMPTY, interrupted, remaining_to: None, waker: Waker::Nothing, what }
    }

    /// The same wait, also ended by `waker`.
    pub(crate) const fn woken_by(self, waker: Waker) -> Self {
        Self { waker, ..self }
    }
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
    /// frame, not a copy). `user_sp` is the app's stack pointer at the call (sigaltstack asks whether the
    /// app runs on its alternate stack).
    pub fn syscall<M: Machine>(&mut self, m: &mut M, nr: u64, args: &[u64; 6], user_sp: u64) -> SyscallResult {
        self.user_sp = user_sp;
        if self.afl_snapshot_pending && !crate::afl::may_precede_snapshot(nr, args) {
            self.take_afl_snapshot(m);
        }
        let outcome = self.dispatch(m, nr, args);
        // The common case, kept short (on an emulating hypervisor every kernel instruction costs a
        // microsecond): a value or an error, and no restart block, temporary mask or trace line to see to.
        let value = match outcome {
            Ok(value) => value,
            Err(Stop::Errno(errno)) => errno.to_return(),
            Err(_) => return self.finish_syscall(m, nr, args, outcome),
        };
        let thread = self.thread();
        if !self.trace && thread.restart.is_none() && thread.saved_mask.is_none() && self.threads.len() == 1 {
            return SyscallResult::Return(value);
        }
        self.finish_syscall(m, nr, args, outcome)
    }

    /// The rest of [`Process::syscall`]: a wait (the thread parks, see [`crate::sched`]), then
    /// [`Process::complete_syscall`].
    #[inline(never)]
    fn finish_syscall<M: Machine>(&mut self, m: &mut M, nr: u64, args: &[u64; 6], outcome: SysResult) -> SyscallResult {
        let outcome = match outcome {
            Err(Stop::Block(wait)) => match self.block(m, nr, args, wait) {
                Some(outcome) => outcome,
                // Another thread runs next; this call's result comes when its wait ends (the value here is
                // never seen: the switch saves this context and the completion writes RAX).
                None => return SyscallResult::Return(0),
            },
            outcome => outcome,
        };
        self.complete_syscall(m, nr, args, outcome)
    }

    /// A syscall's end, when it returns to the app (now, or after its thread's wait): the restart block,
    /// the temporary mask, the trace line; and the other threads' waits the call may have ended.
    pub(crate) fn complete_syscall<M: Machine>(
        &mut self,
        m: &mut M,
        nr: u64,
        args: &[u64; 6],
        outcome: SysResult,
    ) -> SyscallResult {
        let result = match outcome {
            Ok(value) => SyscallResult::Return(value),
            Err(Stop::Errno(errno)) => SyscallResult::Return(errno.to_return()),
            Err(Stop::Exit(status)) => SyscallResult::Exit(status),
            Err(Stop::Killed(signal)) => SyscallResult::Killed(signal),
            Err(Stop::Block(_)) => SyscallResult::Return(Errno::EINTR.to_return()), // handled by the caller
        };
        let interrupted = matches!(result, SyscallResult::Return(v) if v == Errno::EINTR.to_return() || Errno(-v as i32).is_restart());
        let thread = self.thread_mut();
        if result != SyscallResult::Return(Errno::ERESTART_RESTARTBLOCK.to_return()) {
            thread.restart = None;
        }
        if !interrupted {
            // A temporary mask (sigsuspend, ppoll, pselect6) that no handler's frame took over.
            if let Some(mask) = thread.saved_mask.take() {
                thread.mask = mask;
            }
        }
        if self.trace && nr != nr::RT_SIGRETURN {
            crate::trace::emit(self, m, nr, args, result);
        }
        // A process other than the first ends alone (`crate::processes`); the first one's end is the run's.
        let ending = match result {
            SyscallResult::Exit(code) => Some(crate::processes::Ending::Exited(code)),
            SyscallResult::Killed(signal) => {
                Some(crate::processes::Ending::Killed { signal: signal as u32, core: false })
            }
            SyscallResult::Return(_) => None,
        };
        let result = match ending {
            Some(ending) if self.pid != crate::processes::FIRST_PID => match self.exit_process(m, ending) {
                // The value is never seen: the return to the app switches to another thread.
                Ok(()) => SyscallResult::Return(0),
                Err(Stop::Exit(status)) => SyscallResult::Exit(status),
                Err(_) => SyscallResult::Killed(kernel_abi::signal::SIGKILL),
            },
            _ => result,
        };
        if self.io_waiters() {
            self.recheck_io_waits(m);
        }
        result
    }

    /// The deadline of a call that may block for `timeout_ns` from now: the one it already has if it is
    /// running again after a wait (or through `restart_syscall`).
    pub(crate) fn deadline_for<M: Machine>(&self, m: &mut M, nr: u64, timeout_ns: Option<u64>) -> Option<u64> {
        match self.thread().restart {
            Some(restart) if restart.nr == nr => restart.deadline,
            _ => timeout_ns.map(|ns| m.monotonic_ns().saturating_add(ns)),
        }
    }

    /// Whether `deadline` has passed.
    pub(crate) fn passed<M: Machine>(m: &mut M, deadline: Option<u64>) -> bool {
        deadline.is_some_and(|deadline| m.monotonic_ns() >= deadline)
    }
}
