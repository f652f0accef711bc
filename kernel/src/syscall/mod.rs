//! The syscall layer: decodes a syscall's number and arguments, checks them, and runs it against the
//! process state. One module per family; this one owns the dispatcher and the result types.
//!
//! Blocking in a single-threaded guest: nothing can ever wake a wait that has no timeout (an empty pipe
//! with writers, a futex whose value matches, poll with no ready fd and no timeout). Those waits are
//! reported as a deadlock on [`kernel_abi::Stream::Log`] and end the app as if killed by SIGKILL (status
//! 137), instead of hanging until the VMM's timeout. With `O_NONBLOCK` the app gets EAGAIN as on Linux.
#![forbid(unsafe_code)]

pub mod fs;
pub mod io;
pub mod mem;
pub mod proc;
pub mod signal;
pub mod table;
pub mod time;

#[cfg(test)]
mod tests;

pub use table::{nr, SYSCALLS};

use crate::errno::Errno;
use crate::machine::Machine;
use crate::process::Kernel;

/// Open flags (x86-64).
pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const O_ACCMODE: u32 = 3;
pub const O_CREAT: u32 = 0o100;
pub const O_EXCL: u32 = 0o200;
pub const O_NOCTTY: u32 = 0o400;
pub const O_TRUNC: u32 = 0o1000;
pub const O_APPEND: u32 = 0o2000;
pub const O_NONBLOCK: u32 = 0o4000;
pub const O_DSYNC: u32 = 0o10000;
pub const O_ASYNC: u32 = 0o20000;
pub const O_DIRECT: u32 = 0o40000;
pub const O_LARGEFILE: u32 = 0o100000;
pub const O_DIRECTORY: u32 = 0o200000;
pub const O_NOFOLLOW: u32 = 0o400000;
pub const O_NOATIME: u32 = 0o1000000;
pub const O_CLOEXEC: u32 = 0o2000000;
pub const O_SYNC: u32 = 0o4010000;
pub const O_PATH: u32 = 0o10000000;
pub const O_TMPFILE: u32 = 0o20000000;

/// `AT_*` values for the `*at` syscalls.
pub const AT_FDCWD: i32 = -100;
pub const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
pub const AT_REMOVEDIR: u64 = 0x200;
pub const AT_EACCESS: u64 = 0x200;
pub const AT_NO_AUTOMOUNT: u64 = 0x800;
pub const AT_EMPTY_PATH: u64 = 0x1000;
pub const AT_STATX_SYNC_TYPE: u64 = 0x6000;

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

impl Kernel {
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

    fn dispatch<M: Machine>(&mut self, m: &mut M, number: u64, a: &[u64; 6]) -> SysResult {
        use nr::*;
        match number {
            READ => self.sys_read(m, a[0], a[1], a[2]),
            WRITE => self.sys_write(m, a[0], a[1], a[2]),
            OPEN => self.sys_openat(m, AT_FDCWD as u64, a[0], a[1], a[2]),
            CLOSE => self.sys_close(a[0]),
            STAT => self.sys_newfstatat(m, AT_FDCWD as u64, a[0], a[1], 0),
            FSTAT => self.sys_fstat(m, a[0], a[1]),
            LSTAT => self.sys_newfstatat(m, AT_FDCWD as u64, a[0], a[1], AT_SYMLINK_NOFOLLOW),
            POLL => self.sys_poll(m, a[0], a[1], a[2]),
            LSEEK => self.sys_lseek(a[0], a[1], a[2]),
            MMAP => self.sys_mmap(m, a[0], a[1], a[2], a[3], a[4], a[5]),
            MPROTECT => self.sys_mprotect(m, a[0], a[1], a[2]),
            MUNMAP => self.sys_munmap(m, a[0], a[1]),
            BRK => self.sys_brk(m, a[0]),
            RT_SIGACTION => self.sys_rt_sigaction(m, a[0], a[1], a[2], a[3]),
            RT_SIGPROCMASK => self.sys_rt_sigprocmask(m, a[0], a[1], a[2], a[3]),
            IOCTL => self.sys_ioctl(m, a[0], a[1], a[2]),
            PREAD64 => self.sys_pread(m, a[0], a[1], a[2], a[3]),
            PWRITE64 => self.sys_pwrite(m, a[0], a[1], a[2], a[3]),
            READV => self.sys_readv(m, a[0], a[1], a[2]),
            WRITEV => self.sys_writev(m, a[0], a[1], a[2]),
            ACCESS => self.sys_faccessat(m, AT_FDCWD as u64, a[0], a[1], 0),
            PIPE => self.sys_pipe2(m, a[0], 0),
            SELECT => self.sys_select(m, a[0], a[1], a[2], a[3], a[4], false),
            SCHED_YIELD => Ok(0),
            MREMAP => self.sys_mremap(m, a[0], a[1], a[2], a[3], a[4]),
            MSYNC => self.sys_msync(m, a[0], a[1], a[2]),
            MADVISE => self.sys_madvise(m, a[0], a[1], a[2]),
            DUP => self.sys_dup(a[0]),
            DUP2 => self.sys_dup2(a[0], a[1]),
            NANOSLEEP => self.sys_nanosleep(m, a[0], a[1]),
            GETPID | GETTID | GETPGRP | GETPGID | GETSID => self.sys_getpid(number, a[0]),
            EXIT | EXIT_GROUP => Err(Stop::Exit(int_arg(a[0]) & 0xff)),
            KILL => self.sys_kill(m, a[0], a[1]),
            UNAME => self.sys_uname(m, a[0]),
            FCNTL => self.sys_fcntl(m, a[0], a[1], a[2]),
            FSYNC | FDATASYNC => self.fds.get(crate::fd::fd_arg(a[0])).map(|_| 0).map_err(Stop::from),
            TRUNCATE => self.sys_truncate(m, a[0], a[1]),
            FTRUNCATE => self.sys_ftruncate(m, a[0], a[1]),
            GETCWD => self.sys_getcwd(m, a[0], a[1]),
            CHDIR => self.sys_chdir(m, a[0]),
            FCHDIR => self.sys_fchdir(a[0]),
            RENAME => self.sys_renameat2(m, AT_FDCWD as u64, a[0], AT_FDCWD as u64, a[1], 0),
            MKDIR => self.sys_mkdirat(m, AT_FDCWD as u64, a[0], a[1]),
            RMDIR => self.sys_unlinkat(m, AT_FDCWD as u64, a[0], AT_REMOVEDIR),
            CREAT => self.sys_openat(m, AT_FDCWD as u64, a[0], u64::from(O_CREAT | O_WRONLY | O_TRUNC), a[1]),
            UNLINK => self.sys_unlinkat(m, AT_FDCWD as u64, a[0], 0),
            SYMLINK => self.sys_symlinkat(m, a[0], AT_FDCWD as u64, a[1]),
            READLINK => self.sys_readlinkat(m, AT_FDCWD as u64, a[0], a[1], a[2]),
            UMASK => {
                let old = self.umask;
                self.umask = (a[0] as u32) & 0o777;
                Ok(i64::from(old))
            }
            GETTIMEOFDAY => self.sys_gettimeofday(m, a[0], a[1]),
            GETRLIMIT => self.sys_prlimit64(m, 0, a[0], 0, a[1]),
            SYSINFO => self.sys_sysinfo(m, a[0]),
            GETUID | GETGID | GETEUID | GETEGID | GETPPID => Ok(0),
            GETRESUID | GETRESGID => self.sys_getresid(m, [a[0], a[1], a[2]]),
            SETPGID => self.sys_setpgid(a[0], a[1]),
            SIGALTSTACK => self.sys_sigaltstack(m, a[0], a[1]),
            ARCH_PRCTL => self.sys_arch_prctl(m, a[0], a[1]),
            SETRLIMIT => self.sys_prlimit64(m, 0, a[0], a[1], 0),
            TIME => self.sys_time(m, a[0]),
            TKILL => self.sys_tgkill(m, 1, a[0], a[1]),
            FUTEX => self.sys_futex(m, a[0], a[1], a[2], a[3]),
            SCHED_SETAFFINITY => self.sys_sched_setaffinity(m, a[0], a[1], a[2]),
            SCHED_GETAFFINITY => self.sys_sched_getaffinity(m, a[0], a[1], a[2]),
            GETDENTS64 => self.sys_getdents64(m, a[0], a[1], a[2]),
            SET_TID_ADDRESS => {
                self.tid_address = a[0];
                Ok(1)
            }
            CLOCK_GETTIME => self.sys_clock_gettime(m, a[0], a[1]),
            CLOCK_GETRES => self.sys_clock_getres(m, a[0], a[1]),
            CLOCK_NANOSLEEP => self.sys_clock_nanosleep(m, a[0], a[1], a[2], a[3]),
            TGKILL => self.sys_tgkill(m, a[0], a[1], a[2]),
            OPENAT => self.sys_openat(m, a[0], a[1], a[2], a[3]),
            MKDIRAT => self.sys_mkdirat(m, a[0], a[1], a[2]),
            NEWFSTATAT => self.sys_newfstatat(m, a[0], a[1], a[2], a[3]),
            UNLINKAT => self.sys_unlinkat(m, a[0], a[1], a[2]),
            RENAMEAT => self.sys_renameat2(m, a[0], a[1], a[2], a[3], 0),
            SYMLINKAT => self.sys_symlinkat(m, a[0], a[1], a[2]),
            READLINKAT => self.sys_readlinkat(m, a[0], a[1], a[2], a[3]),
            FACCESSAT => self.sys_faccessat(m, a[0], a[1], a[2], 0),
            PSELECT6 => self.sys_select(m, a[0], a[1], a[2], a[3], a[4], true),
            PPOLL => self.sys_ppoll(m, a[0], a[1], a[2], a[4]),
            SET_ROBUST_LIST => {
                if a[1] != 24 {
                    return Err(Errno::EINVAL.into());
                }
                self.robust_list = (a[0], a[1]);
                Ok(0)
            }
            DUP3 => self.sys_dup3(a[0], a[1], a[2]),
            PIPE2 => self.sys_pipe2(m, a[0], a[1]),
            PRLIMIT64 => self.sys_prlimit64(m, a[0], a[1], a[2], a[3]),
            RENAMEAT2 => self.sys_renameat2(m, a[0], a[1], a[2], a[3], a[4]),
            GETRANDOM => self.sys_getrandom(m, a[0], a[1], a[2]),
            STATX => self.sys_statx(m, a[0], a[1], a[2], a[3], a[4]),
            FACCESSAT2 => self.sys_faccessat(m, a[0], a[1], a[2], a[3]),
            UTIMENSAT => self.sys_utimensat(m, a[0], a[1], a[2], a[3]),
            _ => Err(Errno::ENOSYS.into()),
        }
    }
}
