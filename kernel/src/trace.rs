//! `--trace-syscalls`: one strace-like line per syscall on [`Stream::Log`], e.g.
//! `openat(AT_FDCWD, "/etc/x", O_RDONLY) = -2 ENOENT` or `write(1, "hello\n", 6) = 6`. Strings are cut at
//! [`STRING_LIMIT`] bytes with `...`, as strace does by default. Memory is read through the same checks
//! as the syscalls; what cannot be read is shown as a pointer.
#![forbid(unsafe_code)]

use alloc::string::String;
use core::fmt::Write;

use kernel_abi::Stream;

use crate::errno::Errno;
use crate::machine::Machine;
use crate::process::Process;
use crate::syscall::table::{info, Arg, Ret};
use crate::syscall::{
    SyscallResult, AT_FDCWD, O_APPEND, O_CLOEXEC, O_CREAT, O_DIRECT, O_DIRECTORY, O_EXCL, O_LARGEFILE, O_NOATIME,
    O_NOCTTY, O_NOFOLLOW, O_NONBLOCK, O_PATH, O_TRUNC,
};
use crate::user;

/// Bytes of a string or buffer shown before `...`.
pub const STRING_LIMIT: usize = 32;

const OPEN_FLAGS: &[(u32, &str)] = &[
    (O_CREAT, "O_CREAT"),
    (O_EXCL, "O_EXCL"),
    (O_NOCTTY, "O_NOCTTY"),
    (O_TRUNC, "O_TRUNC"),
    (O_APPEND, "O_APPEND"),
    (O_NONBLOCK, "O_NONBLOCK"),
    (O_DIRECT, "O_DIRECT"),
    (O_LARGEFILE, "O_LARGEFILE"),
    (O_DIRECTORY, "O_DIRECTORY"),
    (O_NOFOLLOW, "O_NOFOLLOW"),
    (O_NOATIME, "O_NOATIME"),
    (O_CLOEXEC, "O_CLOEXEC"),
    (O_PATH, "O_PATH"),
];

fn escape_into(out: &mut String, bytes: &[u8], truncated: bool) {
    out.push('"');
    for &b in bytes {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    if truncated {
        out.push_str("...");
    }
}

fn open_flags(out: &mut String, flags: u32) {
    out.push_str(match flags & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    });
    let mut rest = flags & !3;
    for &(bit, name) in OPEN_FLAGS {
        if rest & bit != 0 {
            out.push('|');
            out.push_str(name);
            rest &= !bit;
        }
    }
    if rest != 0 {
        let _ = write!(out, "|{rest:#o}");
    }
}

impl Process {
    fn trace_buffer<M: Machine>(&self, m: &mut M, out: &mut String, addr: u64, len: u64) {
        let shown = len.min(STRING_LIMIT as u64) as usize;
        let mut buf = [0u8; STRING_LIMIT];
        match user::read(&self.vmas, m, addr, &mut buf[..shown]) {
            Ok(()) => escape_into(out, &buf[..shown], len > shown as u64),
            Err(_) => {
                let _ = write!(out, "{addr:#x}");
            }
        }
    }

    fn trace_path<M: Machine>(&self, m: &mut M, out: &mut String, addr: u64) {
        match user::read_c_string(&self.vmas, m, addr, crate::user::PATH_MAX) {
            Ok(path) => escape_into(out, &path[..path.len().min(STRING_LIMIT)], path.len() > STRING_LIMIT),
            Err(_) => {
                let _ = write!(out, "{addr:#x}");
            }
        }
    }
}

/// Formats the trace line of one syscall (without the newline).
pub fn format_line<M: Machine>(kernel: &Process, m: &mut M, nr: u64, args: &[u64; 6], result: SyscallResult) -> String {
    let mut out = String::new();
    let ret_value = match result {
        SyscallResult::Return(v) => Some(v),
        _ => None,
    };
    match info(nr) {
        Some(entry) => {
            out.push_str(entry.name);
            out.push('(');
            for (i, (kind, &value)) in entry.args.iter().zip(args).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match kind {
                    Arg::Int => {
                        let _ = write!(out, "{}", value as i64);
                    }
                    Arg::UInt => {
                        let _ = write!(out, "{value}");
                    }
                    Arg::Hex => {
                        let _ = write!(out, "{value:#x}");
                    }
                    Arg::Fd => {
                        let _ = write!(out, "{}", value as u32 as i32);
                    }
                    Arg::DirFd if value as u32 as i32 == AT_FDCWD => out.push_str("AT_FDCWD"),
                    Arg::DirFd => {
                        let _ = write!(out, "{}", value as u32 as i32);
                    }
                    Arg::Path => kernel.trace_path(m, &mut out, value),
                    Arg::InBuf(len_index) => {
                        let len = args.get(usize::from(*len_index)).copied().unwrap_or(0);
                        kernel.trace_buffer(m, &mut out, value, len);
                    }
                    Arg::OutBuf => match ret_value {
                        Some(n) if n >= 0 => kernel.trace_buffer(m, &mut out, value, n as u64),
                        _ => {
                            let _ = write!(out, "{value:#x}");
                        }
                    },
                    Arg::OpenFlags => open_flags(&mut out, value as u32),
                    Arg::Octal if value as u32 == 0 => out.push('0'),
                    Arg::Octal => {
                        let _ = write!(out, "0{:o}", value as u32);
                    }
                    Arg::Signal => match value as u32 {
                        signal @ 1..=crate::signal::NSIG => out.push_str(&crate::signal::name(signal)),
                        other => {
                            let _ = write!(out, "{}", other as i32);
                        }
                    },
                    Arg::Ptr if value == 0 => out.push_str("NULL"),
                    Arg::Ptr => {
                        let _ = write!(out, "{value:#x}");
                    }
                }
            }
            out.push(')');
            match (result, entry.ret) {
                (SyscallResult::Return(v), Ret::Hex) if v >= 0 => {
                    let _ = write!(out, " = {v:#x}");
                }
                _ => {}
            }
        }
        None => {
            let _ = write!(out, "syscall_{nr}(");
            for (i, value) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{value:#x}");
            }
            out.push(')');
        }
    }
    let ret = info(nr).map(|e| e.ret);
    let hex_ok = ret == Some(Ret::Hex);
    match result {
        // A thread's exit: the thread is gone, the process goes on.
        SyscallResult::Return(_) if ret == Some(Ret::NoReturn) => out.push_str(" = ? (thread exit)"),
        SyscallResult::Return(v) if v < 0 && v > -4096 => {
            let errno = Errno(-v as i32);
            let _ = write!(out, " = {v} {}", errno.name().unwrap_or("E?"));
        }
        SyscallResult::Return(_) if hex_ok => {}
        SyscallResult::Return(v) => {
            let _ = write!(out, " = {v}");
        }
        SyscallResult::Exit(status) => {
            let _ = write!(out, " = ? (exit {status})");
        }
        SyscallResult::Killed(signal) => {
            let _ = write!(out, " = ? (killed by signal {signal})");
        }
    }
    out
}

impl Process {
    /// Writes one line of the trace (a signal delivered, a sigreturn, a death), if tracing is on.
    pub(crate) fn trace_line<M: Machine>(&self, m: &mut M, line: core::fmt::Arguments<'_>) {
        if self.trace {
            let mut text = self.thread_prefix();
            let _ = core::fmt::Write::write_fmt(&mut text, line);
            text.push('\n');
            m.console(Stream::Log, text.as_bytes());
        }
    }

    /// Who made the call, once it is ambiguous: `[pid P] ` once a second process exists (with ` tid T`
    /// for a thread other than the process's first), `[tid N] ` while the one process has more than one
    /// thread (strace -f's `[pid N] `), else nothing.
    fn thread_prefix(&self) -> String {
        let tid = self.thread().tid;
        if self.multiprocess() {
            if tid == self.pid {
                alloc::format!("[pid {tid}] ")
            } else {
                alloc::format!("[pid {} tid {tid}] ", self.pid)
            }
        } else if self.threads.len() > 1 {
            alloc::format!("[tid {tid}] ")
        } else {
            String::new()
        }
    }
}

/// Emits the trace line of one syscall.
pub fn emit<M: Machine>(kernel: &Process, m: &mut M, nr: u64, args: &[u64; 6], result: SyscallResult) {
    let mut line = kernel.thread_prefix();
    line.push_str(&format_line(kernel, m, nr, args, result));
    line.push('\n');
    m.console(Stream::Log, line.as_bytes());
}
