//! The supported syscalls in one list: number, name, how `--trace-syscalls` prints their arguments, and
//! the handler that runs each (docs/syscalls.md is generated from it and checked against it).

/// How the tracer prints one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Signed decimal.
    Int,
    /// Unsigned decimal.
    UInt,
    Hex,
    /// A file descriptor (low 32 bits, signed).
    Fd,
    /// A directory fd (`AT_FDCWD` by name).
    DirFd,
    /// A NUL-terminated path, quoted.
    Path,
    /// A buffer the app passes in; its length is argument `n`.
    InBuf(u8),
    /// A buffer the kernel fills; the return value says how much.
    OutBuf,
    /// `O_*` flags by name.
    OpenFlags,
    /// Octal (modes).
    Octal,
    /// A pointer (`NULL` or hex).
    Ptr,
    /// A signal number, by name (`SIGUSR1`; 0 and out-of-range numbers in decimal).
    Signal,
}

/// How the tracer prints the return value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Int,
    Hex,
    /// Never returns (`exit`).
    NoReturn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallInfo {
    pub nr: u64,
    pub name: &'static str,
    pub args: &'static [Arg],
    pub ret: Ret,
}

use Arg::*;

use super::{int_arg, Stop, SysResult, AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, O_CREAT, O_TRUNC, O_WRONLY};
use crate::errno::Errno;
use crate::machine::Machine;
use crate::process::Process;

/// One list, two outputs: the [`SYSCALLS`] table (numbers, names, how to trace them) and the dispatcher
/// that runs each one. `|p, m, a, number|` names the process, the machine, the six argument registers
/// and the syscall number for the handler expressions.
macro_rules! syscalls {
    (|$p:ident, $m:ident, $a:ident, $number:ident| {
        $($constant:ident = $nr:expr, $name:literal, [$($arg:expr),*], $ret:ident => $handler:expr;)*
    }) => {
        /// Syscall numbers (x86-64).
        pub mod nr {
            $(pub const $constant: u64 = $nr;)*
        }
        /// Every supported syscall.
        pub const SYSCALLS: &[SyscallInfo] = &[
            $(SyscallInfo { nr: $nr, name: $name, args: &[$($arg),*], ret: Ret::$ret },)*
        ];

        impl Process {
            /// Runs syscall `number` with its argument registers `a`; unknown numbers are ENOSYS.
            pub(crate) fn dispatch<M: Machine>(&mut self, m: &mut M, number: u64, a: &[u64; 6]) -> SysResult {
                let ($p, $m, $a, $number) = (self, m, a, number);
                match $number {
                    $(nr::$constant => $handler,)*
                    _ => Err(Errno::ENOSYS.into()),
                }
            }
        }
    };
}

syscalls! {
    |p, m, a, number| {
        READ = 0, "read", [Fd, OutBuf, UInt], Int => p.sys_read(m, a[0], a[1], a[2]);
        WRITE = 1, "write", [Fd, InBuf(2), UInt], Int => p.sys_write(m, a[0], a[1], a[2]);
        OPEN = 2, "open", [Path, OpenFlags, Octal], Int => p.sys_openat(m, AT_FDCWD as u64, a[0], a[1], a[2]);
        CLOSE = 3, "close", [Fd], Int => p.sys_close(a[0]);
        STAT = 4, "stat", [Path, Ptr], Int => p.sys_newfstatat(m, AT_FDCWD as u64, a[0], a[1], 0);
        FSTAT = 5, "fstat", [Fd, Ptr], Int => p.sys_fstat(m, a[0], a[1]);
        LSTAT = 6, "lstat", [Path, Ptr], Int => p.sys_newfstatat(m, AT_FDCWD as u64, a[0], a[1], AT_SYMLINK_NOFOLLOW);
        POLL = 7, "poll", [Ptr, UInt, Int], Int => p.sys_poll(m, a[0], a[1], a[2]);
        LSEEK = 8, "lseek", [Fd, Int, Int], Int => p.sys_lseek(a[0], a[1], a[2]);
        MMAP = 9, "mmap", [Ptr, UInt, Hex, Hex, Fd, Hex], Hex => p.sys_mmap(m, a[0], a[1], a[2], a[3], a[4], a[5]);
        MPROTECT = 10, "mprotect", [Ptr, UInt, Hex], Int => p.sys_mprotect(m, a[0], a[1], a[2]);
        MUNMAP = 11, "munmap", [Ptr, UInt], Int => p.sys_munmap(m, a[0], a[1]);
        BRK = 12, "brk", [Ptr], Hex => p.sys_brk(m, a[0]);
        RT_SIGACTION = 13, "rt_sigaction", [Signal, Ptr, Ptr, UInt], Int => p.sys_rt_sigaction(m, a[0], a[1], a[2], a[3]);
        RT_SIGPROCMASK = 14, "rt_sigprocmask", [Int, Ptr, Ptr, UInt], Int => p.sys_rt_sigprocmask(m, a[0], a[1], a[2], a[3]);
        RT_SIGRETURN = 15, "rt_sigreturn", [], NoReturn => p.sys_rt_sigreturn();
        IOCTL = 16, "ioctl", [Fd, Hex, Hex], Int => p.sys_ioctl(m, a[0], a[1], a[2]);
        PREAD64 = 17, "pread64", [Fd, OutBuf, UInt, Int], Int => p.sys_pread(m, a[0], a[1], a[2], a[3]);
        PWRITE64 = 18, "pwrite64", [Fd, InBuf(2), UInt, Int], Int => p.sys_pwrite(m, a[0], a[1], a[2], a[3]);
        READV = 19, "readv", [Fd, Ptr, UInt], Int => p.sys_readv(m, a[0], a[1], a[2]);
        WRITEV = 20, "writev", [Fd, Ptr, UInt], Int => p.sys_writev(m, a[0], a[1], a[2]);
        ACCESS = 21, "access", [Path, Octal], Int => p.sys_faccessat(m, AT_FDCWD as u64, a[0], a[1] as u32, 0);
        PIPE = 22, "pipe", [Ptr], Int => p.sys_pipe2(m, a[0], 0);
        SELECT = 23, "select", [Int, Ptr, Ptr, Ptr, Ptr], Int => p.sys_select(m, a[0], a[1], a[2], a[3], a[4], None);
        SCHED_YIELD = 24, "sched_yield", [], Int => p.sys_sched_yield();
        MREMAP = 25, "mremap", [Ptr, UInt, UInt, Hex, Ptr], Hex => p.sys_mremap(m, a[0], a[1], a[2], a[3], a[4]);
        MSYNC = 26, "msync", [Ptr, UInt, Hex], Int => p.sys_msync(m, a[0], a[1], a[2]);
        MADVISE = 28, "madvise", [Ptr, UInt, Int], Int => p.sys_madvise(m, a[0], a[1], a[2]);
        SHMGET = 29, "shmget", [Hex, UInt, Octal], Int => p.sys_shmget(a[0], a[1], a[2]);
        SHMAT = 30, "shmat", [Int, Ptr, Hex], Hex => p.sys_shmat(m, a[0], a[1], a[2]);
        SHMCTL = 31, "shmctl", [Int, Int, Ptr], Int => p.sys_shmctl(m, a[0], a[1], a[2]);
        DUP = 32, "dup", [Fd], Int => p.sys_dup(a[0]);
        DUP2 = 33, "dup2", [Fd, Fd], Int => p.sys_dup2(a[0], a[1]);
        NANOSLEEP = 35, "nanosleep", [Ptr, Ptr], Int => p.sys_nanosleep(m, a[0], a[1]);
        PAUSE = 34, "pause", [], Int => p.sys_pause();
        GETITIMER = 36, "getitimer", [Int, Ptr], Int => p.sys_getitimer(m, a[0], a[1]);
        ALARM = 37, "alarm", [UInt], Int => p.sys_alarm(m, a[0]);
        SETITIMER = 38, "setitimer", [Int, Ptr, Ptr], Int => p.sys_setitimer(m, a[0], a[1], a[2]);
        GETPID = 39, "getpid", [], Int => Ok(i64::from(p.pid()));
        CLONE = 56, "clone", [Hex, Ptr, Ptr, Ptr, Ptr], Int => p.sys_clone(m, a);
        FORK = 57, "fork", [], Int => p.sys_fork(m, false);
        VFORK = 58, "vfork", [], Int => p.sys_fork(m, true);
        EXECVE = 59, "execve", [Path, Ptr, Ptr], Int => p.sys_execve(m, a[0], a[1], a[2]);
        EXIT = 60, "exit", [Int], NoReturn => p.sys_exit(m, a[0]);
        WAIT4 = 61, "wait4", [Int, Ptr, Hex, Ptr], Int => p.sys_wait4(m, a[0], a[1], a[2], a[3]);
        KILL = 62, "kill", [Int, Signal], Int => p.sys_kill(a[0], a[1]);
        SENDTO = 44, "sendto", [Fd, InBuf(2), UInt, Hex, Ptr, UInt], Int => p.sys_sendto(m, a);
        RECVFROM = 45, "recvfrom", [Fd, OutBuf, UInt, Hex, Ptr, Ptr], Int => p.sys_recvfrom(m, a);
        SENDMSG = 46, "sendmsg", [Fd, Ptr, Hex], Int => p.sys_sendmsg(m, a[0], a[1], a[2]);
        RECVMSG = 47, "recvmsg", [Fd, Ptr, Hex], Int => p.sys_recvmsg(m, a[0], a[1], a[2]);
        SHUTDOWN = 48, "shutdown", [Fd, Int], Int => p.sys_shutdown(a[0], a[1]);
        SOCKETPAIR = 53, "socketpair", [Int, Hex, Int, Ptr], Int => p.sys_socketpair(m, a[0], a[1], a[2], a[3]);
        UNAME = 63, "uname", [Ptr], Int => p.sys_uname(m, a[0]);
        SHMDT = 67, "shmdt", [Ptr], Int => p.sys_shmdt(m, a[0]);
        FCNTL = 72, "fcntl", [Fd, Int, Hex], Int => p.sys_fcntl(m, a[0], a[1], a[2]);
        FSYNC = 74, "fsync", [Fd], Int => p.fds.get(crate::fd::fd_arg(a[0])).map(|_| 0).map_err(Stop::from);
        FDATASYNC = 75, "fdatasync", [Fd], Int => p.fds.get(crate::fd::fd_arg(a[0])).map(|_| 0).map_err(Stop::from);
        TRUNCATE = 76, "truncate", [Path, Int], Int => p.sys_truncate(m, a[0], a[1]);
        FTRUNCATE = 77, "ftruncate", [Fd, Int], Int => p.sys_ftruncate(m, a[0], a[1]);
        GETCWD = 79, "getcwd", [Ptr, UInt], Int => p.sys_getcwd(m, a[0], a[1]);
        CHDIR = 80, "chdir", [Path], Int => p.sys_chdir(m, a[0]);
        FCHDIR = 81, "fchdir", [Fd], Int => p.sys_fchdir(a[0]);
        RENAME = 82, "rename", [Path, Path], Int => p.sys_renameat2(m, AT_FDCWD as u64, a[0], AT_FDCWD as u64, a[1], 0);
        MKDIR = 83, "mkdir", [Path, Octal], Int => p.sys_mkdirat(m, AT_FDCWD as u64, a[0], a[1]);
        RMDIR = 84, "rmdir", [Path], Int => p.sys_unlinkat(m, AT_FDCWD as u64, a[0], AT_REMOVEDIR);
        CREAT = 85, "creat", [Path, Octal], Int => p.sys_openat(m, AT_FDCWD as u64, a[0], u64::from(O_CREAT | O_WRONLY | O_TRUNC), a[1]);
        UNLINK = 87, "unlink", [Path], Int => p.sys_unlinkat(m, AT_FDCWD as u64, a[0], 0);
        SYMLINK = 88, "symlink", [Path, Path], Int => p.sys_symlinkat(m, a[0], AT_FDCWD as u64, a[1]);
        READLINK = 89, "readlink", [Path, OutBuf, UInt], Int => p.sys_readlinkat(m, AT_FDCWD as u64, a[0], a[1], a[2]);
        UMASK = 95, "umask", [Octal], Int => p.sys_umask(a[0]);
        GETTIMEOFDAY = 96, "gettimeofday", [Ptr, Ptr], Int => p.sys_gettimeofday(m, a[0], a[1]);
        GETRLIMIT = 97, "getrlimit", [Int, Ptr], Int => p.sys_prlimit64(m, 0, a[0], 0, a[1]);
        SYSINFO = 99, "sysinfo", [Ptr], Int => p.sys_sysinfo(m, a[0]);
        GETUID = 102, "getuid", [], Int => Ok(0);
        GETGID = 104, "getgid", [], Int => Ok(0);
        GETEUID = 107, "geteuid", [], Int => Ok(0);
        GETEGID = 108, "getegid", [], Int => Ok(0);
        SETPGID = 109, "setpgid", [Int, Int], Int => p.sys_setpgid(m, a[0], a[1]);
        GETPPID = 110, "getppid", [], Int => p.sys_getppid();
        GETPGRP = 111, "getpgrp", [], Int => p.sys_getpgid(0, false);
        SETSID = 112, "setsid", [], Int => p.sys_setsid(m);
        GETRESUID = 118, "getresuid", [Ptr, Ptr, Ptr], Int => p.sys_getresid(m, [a[0], a[1], a[2]]);
        GETRESGID = 120, "getresgid", [Ptr, Ptr, Ptr], Int => p.sys_getresid(m, [a[0], a[1], a[2]]);
        GETPGID = 121, "getpgid", [Int], Int => p.sys_getpgid(a[0], false);
        GETSID = 124, "getsid", [Int], Int => p.sys_getpgid(a[0], true);
        RT_SIGPENDING = 127, "rt_sigpending", [Ptr, UInt], Int => p.sys_rt_sigpending(m, a[0], a[1]);
        RT_SIGTIMEDWAIT = 128, "rt_sigtimedwait", [Ptr, Ptr, Ptr, UInt], Int => p.sys_rt_sigtimedwait(m, a[0], a[1], a[2], a[3]);
        RT_SIGQUEUEINFO = 129, "rt_sigqueueinfo", [Int, Signal, Ptr], Int => p.sys_rt_sigqueueinfo(m, a[0], a[1], a[2]);
        RT_SIGSUSPEND = 130, "rt_sigsuspend", [Ptr, UInt], Int => p.sys_rt_sigsuspend(m, a[0], a[1]);
        SIGALTSTACK = 131, "sigaltstack", [Ptr, Ptr], Int => p.sys_sigaltstack(m, a[0], a[1]);
        ARCH_PRCTL = 158, "arch_prctl", [Hex, Hex], Int => p.sys_arch_prctl(m, a[0], a[1]);
        SETRLIMIT = 160, "setrlimit", [Int, Ptr], Int => p.sys_prlimit64(m, 0, a[0], a[1], 0);
        GETTID = 186, "gettid", [], Int => p.sys_gettid();
        TIME = 201, "time", [Ptr], Int => p.sys_time(m, a[0]);
        TKILL = 200, "tkill", [Int, Signal], Int => p.sys_tkill(a[0], a[1]);
        FUTEX = 202, "futex", [Ptr, Int, Int, Ptr, Ptr, Int], Int => p.sys_futex(m, a);
        SCHED_SETAFFINITY = 203, "sched_setaffinity", [Int, UInt, Ptr], Int => p.sys_sched_setaffinity(m, a[0], a[1], a[2]);
        SCHED_GETAFFINITY = 204, "sched_getaffinity", [Int, UInt, Ptr], Int => p.sys_sched_getaffinity(m, a[0], a[1], a[2]);
        GETDENTS64 = 217, "getdents64", [Fd, Ptr, UInt], Int => p.sys_getdents64(m, a[0], a[1], a[2]);
        RESTART_SYSCALL = 219, "restart_syscall", [], Int => p.sys_restart_syscall(m);
        TIMER_CREATE = 222, "timer_create", [Int, Ptr, Ptr], Int => p.sys_timer_create(m, a[0], a[1], a[2]);
        TIMER_SETTIME = 223, "timer_settime", [Int, Hex, Ptr, Ptr], Int => p.sys_timer_settime(m, a[0], a[1], a[2], a[3]);
        TIMER_GETTIME = 224, "timer_gettime", [Int, Ptr], Int => p.sys_timer_gettime(m, a[0], a[1]);
        TIMER_GETOVERRUN = 225, "timer_getoverrun", [Int], Int => p.sys_timer_getoverrun(a[0]);
        TIMER_DELETE = 226, "timer_delete", [Int], Int => p.sys_timer_delete(a[0]);
        SET_TID_ADDRESS = 218, "set_tid_address", [Ptr], Int => p.sys_set_tid_address(a[0]);
        CLOCK_GETTIME = 228, "clock_gettime", [Int, Ptr], Int => p.sys_clock_gettime(m, a[0], a[1]);
        CLOCK_GETRES = 229, "clock_getres", [Int, Ptr], Int => p.sys_clock_getres(m, a[0], a[1]);
        CLOCK_NANOSLEEP = 230, "clock_nanosleep", [Int, Int, Ptr, Ptr], Int => p.sys_clock_nanosleep(m, a[0], a[1], a[2], a[3]);
        EXIT_GROUP = 231, "exit_group", [Int], NoReturn => Err(Stop::Exit(int_arg(a[0]) & 0xff));
        TGKILL = 234, "tgkill", [Int, Int, Signal], Int => p.sys_tgkill(a[0], a[1], a[2]);
        WAITID = 247, "waitid", [Int, Int, Ptr, Hex, Ptr], Int => p.sys_waitid(m, a[0], a[1], a[2], a[3]);
        OPENAT = 257, "openat", [DirFd, Path, OpenFlags, Octal], Int => p.sys_openat(m, a[0], a[1], a[2], a[3]);
        MKDIRAT = 258, "mkdirat", [DirFd, Path, Octal], Int => p.sys_mkdirat(m, a[0], a[1], a[2]);
        NEWFSTATAT = 262, "newfstatat", [DirFd, Path, Ptr, Hex], Int => p.sys_newfstatat(m, a[0], a[1], a[2], a[3] as u32);
        UNLINKAT = 263, "unlinkat", [DirFd, Path, Hex], Int => p.sys_unlinkat(m, a[0], a[1], a[2] as u32);
        RENAMEAT = 264, "renameat", [DirFd, Path, DirFd, Path], Int => p.sys_renameat2(m, a[0], a[1], a[2], a[3], 0);
        SYMLINKAT = 266, "symlinkat", [Path, DirFd, Path], Int => p.sys_symlinkat(m, a[0], a[1], a[2]);
        READLINKAT = 267, "readlinkat", [DirFd, Path, OutBuf, UInt], Int => p.sys_readlinkat(m, a[0], a[1], a[2], a[3]);
        FACCESSAT = 269, "faccessat", [DirFd, Path, Octal], Int => p.sys_faccessat(m, a[0], a[1], a[2] as u32, 0);
        PSELECT6 = 270, "pselect6", [Int, Ptr, Ptr, Ptr, Ptr, Ptr], Int => p.sys_select(m, a[0], a[1], a[2], a[3], a[4], Some(a[5]));
        PPOLL = 271, "ppoll", [Ptr, UInt, Ptr, Ptr, UInt], Int => p.sys_ppoll(m, a[0], a[1], a[2], a[3], a[4]);
        SET_ROBUST_LIST = 273, "set_robust_list", [Ptr, UInt], Int => p.sys_set_robust_list(a[0], a[1]);
        GET_ROBUST_LIST = 274, "get_robust_list", [Int, Ptr, Ptr], Int => p.sys_get_robust_list(m, a[0], a[1], a[2]);
        DUP3 = 292, "dup3", [Fd, Fd, Hex], Int => p.sys_dup3(a[0], a[1], a[2]);
        RT_TGSIGQUEUEINFO = 297, "rt_tgsigqueueinfo", [Int, Int, Signal, Ptr], Int => p.sys_rt_tgsigqueueinfo(m, a[0], a[1], a[2], a[3]);
        PIPE2 = 293, "pipe2", [Ptr, Hex], Int => p.sys_pipe2(m, a[0], a[1]);
        PRLIMIT64 = 302, "prlimit64", [Int, Int, Ptr, Ptr], Int => p.sys_prlimit64(m, a[0], a[1], a[2], a[3]);
        RENAMEAT2 = 316, "renameat2", [DirFd, Path, DirFd, Path, Hex], Int => p.sys_renameat2(m, a[0], a[1], a[2], a[3], a[4] as u32);
        EPOLL_CREATE = 213, "epoll_create", [Int], Int => p.sys_epoll_create(a[0]);
        EPOLL_WAIT = 232, "epoll_wait", [Fd, Ptr, Int, Int], Int => p.sys_epoll_wait(m, a, number);
        EPOLL_CTL = 233, "epoll_ctl", [Fd, Int, Fd, Ptr], Int => p.sys_epoll_ctl(m, a[0], a[1], a[2], a[3]);
        EPOLL_PWAIT = 281, "epoll_pwait", [Fd, Ptr, Int, Int, Ptr, UInt], Int => p.sys_epoll_wait(m, a, number);
        EVENTFD = 284, "eventfd", [UInt], Int => p.sys_eventfd2(a[0], 0);
        EVENTFD2 = 290, "eventfd2", [UInt, Hex], Int => p.sys_eventfd2(a[0], a[1]);
        EPOLL_CREATE1 = 291, "epoll_create1", [Hex], Int => p.sys_epoll_create1(a[0]);
        GETRANDOM = 318, "getrandom", [Ptr, UInt, Hex], Int => p.sys_getrandom(m, a[0], a[1], a[2]);
        STATX = 332, "statx", [DirFd, Path, Hex, Hex, Ptr], Int => p.sys_statx(m, a[0], a[1], a[2] as u32, a[3], a[4]);
        UTIMENSAT = 280, "utimensat", [DirFd, Ptr, Ptr, Hex], Int => p.sys_utimensat(m, a[0], a[1], a[2], a[3] as u32);
        CLONE3 = 435, "clone3", [Ptr, UInt], Int => p.sys_clone3(m, a[0], a[1]);
        EPOLL_PWAIT2 = 441, "epoll_pwait2", [Fd, Ptr, Int, Ptr, Ptr, UInt], Int => p.sys_epoll_wait(m, a, number);
        EXECVEAT = 322, "execveat", [DirFd, Path, Ptr, Ptr, Hex], Int => p.sys_execveat(m, a[0], a[1], a[2], a[3], a[4]);
        FACCESSAT2 = 439, "faccessat2", [DirFd, Path, Octal, Hex], Int => p.sys_faccessat(m, a[0], a[1], a[2] as u32, a[3] as u32);
    }
}

/// The entry for `nr`, if supported.
pub fn info(nr: u64) -> Option<&'static SyscallInfo> {
    SYSCALLS.iter().find(|s| s.nr == nr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_and_names_distinct() {
        for (i, a) in SYSCALLS.iter().enumerate() {
            for b in &SYSCALLS[i + 1..] {
                assert_ne!(a.nr, b.nr, "{} and {}", a.name, b.name);
                assert_ne!(a.name, b.name);
            }
            assert!(a.args.len() <= 6);
        }
        assert_eq!(info(nr::OPENAT).map(|i| i.name), Some("openat"));
        assert_eq!(info(9999), None);
    }
}

/// `docs/syscalls.md` is generated from [`SYSCALLS`] and checked against it.
#[cfg(test)]
mod docs {
    extern crate std;
    use std::string::String;

    use super::SYSCALLS;

    fn rendered() -> String {
        let mut text = String::from(
            "# Supported Linux syscalls\n\n\
             The guest kernel implements these x86-64 Linux syscalls with Linux's semantics and errno values;\n\
             every other number returns `-ENOSYS` (visible with `secure-run --trace-syscalls`). `fork`, `vfork`\n\
             and `clone`/`clone3` without `CLONE_VM` make processes (copy-on-write address spaces, at most 256,\n\
             zombies included; `kernel/src/processes.rs`), `execve`/`execveat` start static programs from the\n\
             guest's file system (`kernel/src/exec.rs`), `socketpair` makes AF_UNIX stream, datagram and\n\
             seqpacket pairs (no named sockets; `kernel/src/syscall/socket.rs`), with `CLONE_THREAD` threads\n\
             (all scheduled on one vCPU, preemptively); signals are delivered to handlers\n\
             (frames, masks, the alternate stack, EINTR and SA_RESTART as on Linux); timers (`alarm`,\n\
             `setitimer`, POSIX timers) interrupt the app through the PIT, and `ITIMER_VIRTUAL`/`ITIMER_PROF`\n\
             count the time it does not spend waiting; when every thread waits and nothing can end a wait (an\n\
             empty pipe, a futex with no timeout, and no timer armed) the app ends with SIGKILL instead of\n\
             hanging. SysV shared memory knows one segment, the `--afl` coverage map, by its id (`shmget`\n\
             creates none; semantics in `kernel/src/syscall/shm.rs`).\n\n\
             This file is generated from `kernel/src/syscall/table.rs` and checked by its tests\n\
             (`UPDATE_DOCS=1 cargo test -p kernel docs` rewrites it).\n\n\
             | number | name | arguments |\n|---:|---|---|\n",
        );
        for info in SYSCALLS {
            let args: std::vec::Vec<String> = info.args.iter().map(|arg| std::format!("{arg:?}")).collect();
            text.push_str(&std::format!("| {} | `{}` | {} |\n", info.nr, info.name, args.join(", ")));
        }
        text
    }

    #[test]
    fn docs_syscalls_md_matches_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/syscalls.md");
        let expected = rendered();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(actual == expected, "docs/syscalls.md is out of date: run `UPDATE_DOCS=1 cargo test -p kernel docs`");
    }
}
