//! The supported syscalls: number, name and how `--trace-syscalls` prints their arguments. The
//! dispatcher in `syscall/mod.rs` matches on the same constants, and a test checks that each entry is
//! dispatched (so docs/syscalls.md can be checked against [`SYSCALLS`]).

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

macro_rules! syscalls {
    ($($constant:ident = $nr:expr, $name:literal, [$($arg:expr),*], $ret:ident;)*) => {
        /// Syscall numbers (x86-64).
        pub mod nr {
            $(pub const $constant: u64 = $nr;)*
        }
        /// Every supported syscall, sorted by number.
        pub const SYSCALLS: &[SyscallInfo] = &[
            $(SyscallInfo { nr: $nr, name: $name, args: &[$($arg),*], ret: Ret::$ret },)*
        ];
    };
}

syscalls! {
    READ = 0, "read", [Fd, OutBuf, UInt], Int;
    WRITE = 1, "write", [Fd, InBuf(2), UInt], Int;
    OPEN = 2, "open", [Path, OpenFlags, Octal], Int;
    CLOSE = 3, "close", [Fd], Int;
    STAT = 4, "stat", [Path, Ptr], Int;
    FSTAT = 5, "fstat", [Fd, Ptr], Int;
    LSTAT = 6, "lstat", [Path, Ptr], Int;
    POLL = 7, "poll", [Ptr, UInt, Int], Int;
    LSEEK = 8, "lseek", [Fd, Int, Int], Int;
    MMAP = 9, "mmap", [Ptr, UInt, Hex, Hex, Fd, Hex], Hex;
    MPROTECT = 10, "mprotect", [Ptr, UInt, Hex], Int;
    MUNMAP = 11, "munmap", [Ptr, UInt], Int;
    BRK = 12, "brk", [Ptr], Hex;
    RT_SIGACTION = 13, "rt_sigaction", [Int, Ptr, Ptr, UInt], Int;
    RT_SIGPROCMASK = 14, "rt_sigprocmask", [Int, Ptr, Ptr, UInt], Int;
    IOCTL = 16, "ioctl", [Fd, Hex, Hex], Int;
    PREAD64 = 17, "pread64", [Fd, OutBuf, UInt, Int], Int;
    PWRITE64 = 18, "pwrite64", [Fd, InBuf(2), UInt, Int], Int;
    READV = 19, "readv", [Fd, Ptr, UInt], Int;
    WRITEV = 20, "writev", [Fd, Ptr, UInt], Int;
    ACCESS = 21, "access", [Path, Octal], Int;
    PIPE = 22, "pipe", [Ptr], Int;
    SELECT = 23, "select", [Int, Ptr, Ptr, Ptr, Ptr], Int;
    SCHED_YIELD = 24, "sched_yield", [], Int;
    MREMAP = 25, "mremap", [Ptr, UInt, UInt, Hex, Ptr], Hex;
    MSYNC = 26, "msync", [Ptr, UInt, Hex], Int;
    MADVISE = 28, "madvise", [Ptr, UInt, Int], Int;
    DUP = 32, "dup", [Fd], Int;
    DUP2 = 33, "dup2", [Fd, Fd], Int;
    NANOSLEEP = 35, "nanosleep", [Ptr, Ptr], Int;
    GETPID = 39, "getpid", [], Int;
    EXIT = 60, "exit", [Int], NoReturn;
    KILL = 62, "kill", [Int, Int], Int;
    UNAME = 63, "uname", [Ptr], Int;
    FCNTL = 72, "fcntl", [Fd, Int, Hex], Int;
    FSYNC = 74, "fsync", [Fd], Int;
    FDATASYNC = 75, "fdatasync", [Fd], Int;
    TRUNCATE = 76, "truncate", [Path, Int], Int;
    FTRUNCATE = 77, "ftruncate", [Fd, Int], Int;
    GETCWD = 79, "getcwd", [Ptr, UInt], Int;
    CHDIR = 80, "chdir", [Path], Int;
    FCHDIR = 81, "fchdir", [Fd], Int;
    RENAME = 82, "rename", [Path, Path], Int;
    MKDIR = 83, "mkdir", [Path, Octal], Int;
    RMDIR = 84, "rmdir", [Path], Int;
    CREAT = 85, "creat", [Path, Octal], Int;
    UNLINK = 87, "unlink", [Path], Int;
    SYMLINK = 88, "symlink", [Path, Path], Int;
    READLINK = 89, "readlink", [Path, OutBuf, UInt], Int;
    UMASK = 95, "umask", [Octal], Int;
    GETTIMEOFDAY = 96, "gettimeofday", [Ptr, Ptr], Int;
    GETRLIMIT = 97, "getrlimit", [Int, Ptr], Int;
    SYSINFO = 99, "sysinfo", [Ptr], Int;
    GETUID = 102, "getuid", [], Int;
    GETGID = 104, "getgid", [], Int;
    GETEUID = 107, "geteuid", [], Int;
    GETEGID = 108, "getegid", [], Int;
    SETPGID = 109, "setpgid", [Int, Int], Int;
    GETPPID = 110, "getppid", [], Int;
    GETPGRP = 111, "getpgrp", [], Int;
    GETRESUID = 118, "getresuid", [Ptr, Ptr, Ptr], Int;
    GETRESGID = 120, "getresgid", [Ptr, Ptr, Ptr], Int;
    GETPGID = 121, "getpgid", [Int], Int;
    GETSID = 124, "getsid", [Int], Int;
    SIGALTSTACK = 131, "sigaltstack", [Ptr, Ptr], Int;
    ARCH_PRCTL = 158, "arch_prctl", [Hex, Hex], Int;
    SETRLIMIT = 160, "setrlimit", [Int, Ptr], Int;
    GETTID = 186, "gettid", [], Int;
    TIME = 201, "time", [Ptr], Int;
    TKILL = 200, "tkill", [Int, Int], Int;
    FUTEX = 202, "futex", [Ptr, Int, Int, Ptr, Ptr, Int], Int;
    SCHED_SETAFFINITY = 203, "sched_setaffinity", [Int, UInt, Ptr], Int;
    SCHED_GETAFFINITY = 204, "sched_getaffinity", [Int, UInt, Ptr], Int;
    GETDENTS64 = 217, "getdents64", [Fd, Ptr, UInt], Int;
    SET_TID_ADDRESS = 218, "set_tid_address", [Ptr], Int;
    CLOCK_GETTIME = 228, "clock_gettime", [Int, Ptr], Int;
    CLOCK_GETRES = 229, "clock_getres", [Int, Ptr], Int;
    CLOCK_NANOSLEEP = 230, "clock_nanosleep", [Int, Int, Ptr, Ptr], Int;
    EXIT_GROUP = 231, "exit_group", [Int], NoReturn;
    TGKILL = 234, "tgkill", [Int, Int, Int], Int;
    OPENAT = 257, "openat", [DirFd, Path, OpenFlags, Octal], Int;
    MKDIRAT = 258, "mkdirat", [DirFd, Path, Octal], Int;
    NEWFSTATAT = 262, "newfstatat", [DirFd, Path, Ptr, Hex], Int;
    UNLINKAT = 263, "unlinkat", [DirFd, Path, Hex], Int;
    RENAMEAT = 264, "renameat", [DirFd, Path, DirFd, Path], Int;
    SYMLINKAT = 266, "symlinkat", [Path, DirFd, Path], Int;
    READLINKAT = 267, "readlinkat", [DirFd, Path, OutBuf, UInt], Int;
    FACCESSAT = 269, "faccessat", [DirFd, Path, Octal], Int;
    PSELECT6 = 270, "pselect6", [Int, Ptr, Ptr, Ptr, Ptr, Ptr], Int;
    PPOLL = 271, "ppoll", [Ptr, UInt, Ptr, Ptr, UInt], Int;
    SET_ROBUST_LIST = 273, "set_robust_list", [Ptr, UInt], Int;
    DUP3 = 292, "dup3", [Fd, Fd, Hex], Int;
    PIPE2 = 293, "pipe2", [Ptr, Hex], Int;
    PRLIMIT64 = 302, "prlimit64", [Int, Int, Ptr, Ptr], Int;
    RENAMEAT2 = 316, "renameat2", [DirFd, Path, DirFd, Path, Hex], Int;
    GETRANDOM = 318, "getrandom", [Ptr, UInt, Hex], Int;
    STATX = 332, "statx", [DirFd, Path, Hex, Hex, Ptr], Int;
    UTIMENSAT = 280, "utimensat", [DirFd, Ptr, Ptr, Hex], Int;
    FACCESSAT2 = 439, "faccessat2", [DirFd, Path, Octal, Hex], Int;
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
             every other number returns `-ENOSYS` (visible with `secure-run --trace-syscalls`). Limits of a\n\
             single-process unikernel: no `fork`/`clone`/`execve`, one thread, signal handlers are recorded but\n\
             never run (a signal's default action ends the app), a wait that nothing can end (empty pipe,\n\
             futex with no timeout) ends the app with SIGKILL instead of hanging.\n\n\
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
