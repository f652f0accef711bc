//! Syscall semantics and errno paths, run against [`ModelMachine`]: the harness here, the tests by
//! syscall family beside it.

use alloc::vec;
use alloc::vec::Vec;

use isolation::layout::{ProcessLayout, Span};
use kernel_abi::{PERM_EXEC, PERM_READ, PERM_WRITE};
use proptest::prelude::*;

use super::nr::*;
use super::*;
use crate::model::ModelMachine;
use crate::process::{ProcessConfig, Segment};
use crate::Inspection;
use crate::{Resume, UserContext};

pub(crate) const TEXT: u64 = 0x40_0000;
pub(crate) const SCRATCH: u64 = 0x60_0000;
pub(crate) const SCRATCH_LEN: u64 = 0x10_0000;
pub(crate) const KERNEL_ADDR: u64 = 0x7e00_0000_1000;
const BRK_START: u64 = 0x100_0000;
const MMAP_START: u64 = 0x7000_0000_0000;
const MMAP_LEN: u64 = 1 << 30;

pub(crate) struct Harness {
    pub k: Process,
    pub m: ModelMachine,
    next: u64,
    /// The app's registers as the arch side would hand them over on the way back to it: after every
    /// syscall with return work ([`Process::has_return_work`]), [`Process::return_to_app`] runs on them, as
    /// the arch side does, so signal frames land in the model's memory.
    pub ctx: UserContext,
}

/// Where the harness's app "runs": an address in its text, its stack pointer in scratch memory.
pub(crate) const APP_RIP: u64 = TEXT + 0x100;
pub(crate) const APP_SP: u64 = SCRATCH + SCRATCH_LEN - 0x1000;

fn layout() -> ProcessLayout {
    ProcessLayout {
        stack: Span::new(0x7fff_0000_0000, 1 << 20),
        brk: Span::new(BRK_START, 16 << 20),
        mmap: Span::new(MMAP_START, MMAP_LEN),
        entropy: Default::default(),
    }
}

pub(crate) fn archive() -> &'static [u8] {
    use kernel_abi::archive::{encode_entry, encode_header, EntryKind};
    let mut out = Vec::new();
    encode_header(&mut |d| out.extend_from_slice(d));
    encode_entry(&mut |d| out.extend_from_slice(d), EntryKind::Directory, 0o755, true, b"/data", b"").unwrap();
    encode_entry(
        &mut |d| out.extend_from_slice(d),
        EntryKind::File,
        0o644,
        true,
        b"/data/hello.txt",
        b"hello, world\n",
    )
    .unwrap();
    encode_entry(&mut |d| out.extend_from_slice(d), EntryKind::File, 0o755, false, b"/work/w.txt", b"writable")
        .unwrap();
    out.leak()
}

impl Harness {
    pub fn with(configure: impl FnOnce(&mut ProcessConfig)) -> Self {
        let mut config = ProcessConfig::new([7; 32], layout());
        config.segments = vec![
            Segment { start: TEXT, len: 0x1000, perms: PERM_READ | PERM_EXEC },
            Segment { start: SCRATCH, len: SCRATCH_LEN, perms: PERM_READ | PERM_WRITE },
        ];
        config.reserved = vec![Span::new(0x7e00_0000_0000, 1 << 30)];
        config.exe_path = b"/app".to_vec();
        config.stdin = b"input line\n";
        config.files = archive();
        configure(&mut config);
        let mut m = ModelMachine::new();
        for segment in &config.segments {
            m.premap(segment.start, segment.len, segment.perms);
        }
        let k = Process::new(&config).unwrap();
        let ctx = UserContext { rip: APP_RIP, rsp: APP_SP, rflags: 0x202, ..UserContext::default() };
        Self { k, m, next: SCRATCH, ctx }
    }

    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn result(&mut self, nr: u64, args: &[u64]) -> SyscallResult {
        let mut full = [0u64; 6];
        full[..args.len()].copy_from_slice(args);
        let mut result = self.k.syscall(&mut self.m, nr, &full, self.ctx.rsp);
        if let SyscallResult::Return(value) = result {
            self.ctx.rax = value as u64;
            if self.k.has_return_work() {
                match self.k.return_to_app(&mut self.m, &mut self.ctx, Some(nr)) {
                    Resume::App => result = SyscallResult::Return(self.ctx.rax as i64),
                    Resume::Killed { signal, .. } => result = SyscallResult::Killed(signal as i32),
                    Resume::Exit(status) => result = SyscallResult::Exit(status),
                }
            }
        }
        self.k.check_invariants().unwrap();
        assert_eq!(self.m.violations, 0, "machine violation after syscall {nr}");
        result
    }

    pub fn call(&mut self, nr: u64, args: &[u64]) -> i64 {
        match self.result(nr, args) {
            SyscallResult::Return(v) => v,
            other => panic!("syscall {nr} did not return: {other:?}"),
        }
    }

    pub fn err(&mut self, nr: u64, args: &[u64]) -> Errno {
        let v = self.call(nr, args);
        assert!(v < 0, "syscall {nr} succeeded with {v}");
        Errno(-v as i32)
    }

    /// Copies bytes into scratch memory; returns their address.
    pub fn put(&mut self, bytes: &[u8]) -> u64 {
        let addr = self.next;
        self.m.poke(addr, bytes).unwrap();
        self.next = (addr + bytes.len() as u64 + 16) & !7;
        addr
    }

    pub fn cstr(&mut self, s: &str) -> u64 {
        let mut bytes = s.as_bytes().to_vec();
        bytes.push(0);
        self.put(&bytes)
    }

    pub fn buf(&mut self, len: usize) -> u64 {
        self.put(&vec![0u8; len])
    }

    pub fn read(&mut self, addr: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        self.m.peek(addr, &mut out).unwrap();
        out
    }

    pub fn u64_at(&mut self, addr: u64) -> u64 {
        u64::from_le_bytes(self.read(addr, 8).try_into().unwrap())
    }

    pub fn open(&mut self, path: &str, flags: u32, mode: u64) -> i64 {
        let p = self.cstr(path);
        self.call(OPENAT, &[AT_FDCWD as u64, p, u64::from(flags), mode])
    }
}

pub(crate) const AT: u64 = AT_FDCWD as u64;

/// Reads `len` bytes of `fd` at `offset` with pread.
pub(crate) fn pread_bytes(h: &mut Harness, fd: u64, len: usize, offset: u64) -> Vec<u8> {
    let buf = h.buf(len);
    let n = h.call(PREAD64, &[fd, buf, len as u64, offset]);
    assert!(n >= 0, "pread failed: {n}");
    h.read(buf, n as usize)
}

mod afl;
mod epoll;
mod fcntl;
mod fs;
mod mem;
mod pipe;
mod poll;
mod proc;
mod processes;
mod random;
mod rw;
mod shm;
mod signal;
mod table;
mod thread;
mod time;
