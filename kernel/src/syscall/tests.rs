//! Syscall semantics and errno paths, run against [`ModelMachine`].

use alloc::vec;
use alloc::vec::Vec;

use isolation::layout::{ProcessLayout, Span};
use kernel_abi::{PERM_EXEC, PERM_READ, PERM_WRITE};
use proptest::prelude::*;

use super::nr::*;
use super::*;
use crate::model::ModelMachine;
use crate::process::{ProcessConfig, Segment};

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
}

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
        Self { k, m, next: SCRATCH }
    }

    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn result(&mut self, nr: u64, args: &[u64]) -> SyscallResult {
        let mut full = [0u64; 6];
        full[..args.len()].copy_from_slice(args);
        let result = self.k.syscall(&mut self.m, nr, &full);
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

const AT: u64 = AT_FDCWD as u64;

#[test]
fn segments_become_vmas_and_a_shared_page_gets_both_permissions() {
    let rx = PERM_READ | PERM_EXEC;
    let rw = PERM_READ | PERM_WRITE;
    let h = Harness::with(|c| {
        // Text ends and data starts in page 0x40_2000 (no gap between them), as older linkers lay them out.
        c.segments = vec![
            Segment { start: TEXT, len: 0x2800, perms: rx },
            Segment { start: TEXT + 0x2800, len: 0x1000, perms: rw },
            Segment { start: SCRATCH, len: SCRATCH_LEN, perms: rw },
        ];
    });
    let vmas: Vec<(u64, u64, u32)> = h.k.vmas().iter().map(|v| (v.start, v.end, v.perms)).collect();
    assert_eq!(
        vmas,
        [
            (TEXT, TEXT + 0x2000, rx),
            (TEXT + 0x2000, TEXT + 0x3000, rx | rw),
            (TEXT + 0x3000, TEXT + 0x4000, rw),
            (SCRATCH, SCRATCH + SCRATCH_LEN, rw),
        ]
    );
    let config = |segments: Vec<Segment>| {
        let mut config = ProcessConfig::new([7; 32], layout());
        config.segments = segments;
        config.reserved = vec![Span::new(0x7e00_0000_0000, 1 << 30)];
        config
    };
    let unordered = config(vec![
        Segment { start: SCRATCH, len: 0x1000, perms: rw },
        Segment { start: TEXT, len: 0x1000, perms: rx },
    ]);
    assert_eq!(Process::new(&unordered).err(), Some(crate::ConfigError::BadSegment { start: TEXT }));
    let in_kernel = config(vec![Segment { start: 0x7e00_0000_0000, len: 0x1000, perms: rw }]);
    assert!(matches!(Process::new(&in_kernel).err(), Some(crate::ConfigError::BadSegment { .. })));
    let empty = config(vec![Segment { start: TEXT, len: 0, perms: rw }]);
    assert!(matches!(Process::new(&empty).err(), Some(crate::ConfigError::BadSegment { .. })));
}

#[test]
fn write_to_stdout_and_stderr() {
    let mut h = Harness::new();
    let msg = h.put(b"hello\n");
    assert_eq!(h.call(WRITE, &[1, msg, 6]), 6);
    assert_eq!(h.call(WRITE, &[2, msg, 5]), 5);
    assert_eq!(h.m.stdout, b"hello\n");
    assert_eq!(h.m.stderr, b"hello");
    let iov = h.put(&[msg.to_le_bytes(), 2u64.to_le_bytes(), (msg + 2).to_le_bytes(), 4u64.to_le_bytes()].concat());
    assert_eq!(h.call(WRITEV, &[1, iov, 2]), 6);
    assert_eq!(h.m.stdout, b"hello\nhello\n");
    assert_eq!(h.err(WRITE, &[0, msg, 1]), Errno::EBADF);
    assert_eq!(h.err(WRITE, &[77, msg, 1]), Errno::EBADF);
    assert_eq!(h.err(WRITEV, &[1, iov, 5000]), Errno::EINVAL);
}

#[test]
fn pointers_are_validated_before_the_machine_is_called() {
    let mut h = Harness::new();
    for bad in [0, 0x1000, KERNEL_ADDR, u64::MAX - 2, SCRATCH + SCRATCH_LEN - 2] {
        assert_eq!(h.err(WRITE, &[1, bad, 6]), Errno::EFAULT, "{bad:#x}");
        assert_eq!(h.err(READ, &[0, bad, 6]), Errno::EFAULT, "{bad:#x}");
    }
    // Reading into read-only text is a fault; writing from it is fine.
    assert_eq!(h.err(READ, &[0, TEXT, 4]), Errno::EFAULT);
    assert_eq!(h.call(WRITE, &[1, TEXT, 4]), 4);
    // Zero-length transfers never touch memory.
    assert_eq!(h.call(WRITE, &[1, KERNEL_ADDR, 0]), 0);
    assert_eq!(h.err(OPENAT, &[AT, KERNEL_ADDR, 0, 0]), Errno::EFAULT);
    assert_eq!(h.err(UNAME, &[KERNEL_ADDR]), Errno::EFAULT);
    assert_eq!(h.err(CLOCK_GETTIME, &[1, TEXT]), Errno::EFAULT);
    // A path running into an unmapped page.
    let end = SCRATCH + SCRATCH_LEN - 3;
    h.m.poke(end, b"abc").unwrap();
    assert_eq!(h.err(OPENAT, &[AT, end, 0, 0]), Errno::EFAULT);
    let long = h.cstr(&"a".repeat(5000));
    assert_eq!(h.err(OPENAT, &[AT, long, 0, 0]), Errno::ENAMETOOLONG);
}

#[test]
fn stdin_serves_captured_bytes_then_eof() {
    let mut h = Harness::new();
    let buf = h.buf(64);
    assert_eq!(h.call(READ, &[0, buf, 5]), 5);
    assert_eq!(h.read(buf, 5), b"input");
    assert_eq!(h.call(READ, &[0, buf, 64]), 6);
    assert_eq!(h.read(buf, 6), b" line\n");
    assert_eq!(h.call(READ, &[0, buf, 64]), 0);
    assert_eq!(h.err(LSEEK, &[0, 0, 0]), Errno::ESPIPE);
}

#[test]
fn file_io_in_tmp() {
    let mut h = Harness::new();
    let fd = h.open("/tmp/f", O_CREAT | O_RDWR, 0o644) as u64;
    assert_eq!(fd, 3);
    let data = h.put(b"0123456789");
    assert_eq!(h.call(WRITE, &[fd, data, 10]), 10);
    assert_eq!(h.call(LSEEK, &[fd, 2, 0]), 2);
    let buf = h.buf(16);
    assert_eq!(h.call(READ, &[fd, buf, 3]), 3);
    assert_eq!(h.read(buf, 3), b"234");
    assert_eq!(h.call(LSEEK, &[fd, (-1i64) as u64, 1]), 4);
    assert_eq!(h.call(LSEEK, &[fd, 0, 2]), 10);
    assert_eq!(h.err(LSEEK, &[fd, (-20i64) as u64, 2]), Errno::EINVAL);
    assert_eq!(h.err(LSEEK, &[fd, 0, 7]), Errno::EINVAL);
    assert_eq!(h.call(PWRITE64, &[fd, data, 2, 20]), 2);
    assert_eq!(h.call(PREAD64, &[fd, buf, 16, 8]), 14);
    assert_eq!(h.read(buf, 14), b"89\0\0\0\0\0\0\0\0\0\0\x30\x31");
    assert_eq!(h.err(PREAD64, &[fd, buf, 1, u64::MAX]), Errno::EINVAL);
    assert_eq!(h.call(FTRUNCATE, &[fd, 4]), 0);
    assert_eq!(h.call(PREAD64, &[fd, buf, 16, 0]), 4);
    assert_eq!(h.call(CLOSE, &[fd]), 0);
    assert_eq!(h.err(CLOSE, &[fd]), Errno::EBADF);
    // O_APPEND writes at the end whatever the offset.
    let fd = h.open("/tmp/f", O_WRONLY | O_APPEND, 0) as u64;
    assert_eq!(h.call(WRITE, &[fd, data, 2]), 2);
    let st = h.buf(144);
    let path = h.cstr("/tmp/f");
    assert_eq!(h.call(STAT, &[path, st]), 0);
    assert_eq!(h.u64_at(st + 48), 6);
    // O_TRUNC
    let fd2 = h.open("/tmp/f", O_WRONLY | O_TRUNC, 0) as u64;
    assert_eq!(h.call(FSTAT, &[fd2, st]), 0);
    assert_eq!(h.u64_at(st + 48), 0);
    assert_eq!(h.call(UNLINK, &[path]), 0);
    // Still usable through the open descriptor after unlink.
    assert_eq!(h.call(WRITE, &[fd, data, 3]), 3);
    assert_eq!(h.call(FSTAT, &[fd, st]), 0);
    assert_eq!(h.u64_at(st + 16), 0, "nlink of an unlinked file");
    assert_eq!(h.call(CLOSE, &[fd]), 0);
    assert_eq!(h.call(CLOSE, &[fd2]), 0);
    assert_eq!(h.k.fs.used_bytes(), 4, "only /proc/self/exe's target remains");
}

#[test]
fn open_errors() {
    let mut h = Harness::new();
    let p = h.cstr("/tmp/x");
    assert_eq!(h.err(OPENAT, &[AT, p, 0, 0]), Errno::ENOENT);
    assert_eq!(h.call(OPENAT, &[AT, p, u64::from(O_CREAT | O_EXCL | O_WRONLY), 0o600]), 3);
    assert_eq!(h.err(OPENAT, &[AT, p, u64::from(O_CREAT | O_EXCL | O_WRONLY), 0o600]), Errno::EEXIST);
    assert_eq!(h.err(OPENAT, &[AT, p, u64::from(O_DIRECTORY), 0]), Errno::ENOTDIR);
    let under_file = h.cstr("/tmp/x/y");
    assert_eq!(h.err(OPENAT, &[AT, under_file, 0, 0]), Errno::ENOTDIR);
    let tmp = h.cstr("/tmp");
    assert_eq!(h.err(OPENAT, &[AT, tmp, u64::from(O_WRONLY), 0]), Errno::EISDIR);
    assert_eq!(h.err(OPENAT, &[AT, tmp, u64::from(O_CREAT | O_WRONLY), 0]), Errno::EISDIR);
    let empty = h.cstr("");
    assert_eq!(h.err(OPENAT, &[AT, empty, 0, 0]), Errno::ENOENT);
    assert_eq!(h.err(OPENAT, &[99, p + 1, 0, 0]), Errno::EBADF);
    assert_eq!(h.err(OPENAT, &[1, p + 1, 0, 0]), Errno::ENOTDIR);
    let dirfd = h.call(OPEN, &[tmp, u64::from(O_DIRECTORY), 0]) as u64;
    let rel = h.cstr("x");
    assert!(h.call(OPENAT, &[dirfd, rel, 0, 0]) > 0);
    // Read-only mount.
    let ro = h.cstr("/data/hello.txt");
    assert_eq!(h.err(OPENAT, &[AT, ro, u64::from(O_WRONLY), 0]), Errno::EROFS);
    let new_in_ro = h.cstr("/data/new");
    assert_eq!(h.err(OPENAT, &[AT, new_in_ro, u64::from(O_CREAT | O_WRONLY), 0o644]), Errno::EROFS);
    let fd = h.call(OPENAT, &[AT, ro, 0, 0]) as u64;
    let buf = h.buf(64);
    assert_eq!(h.call(READ, &[fd, buf, 64]), 13);
    assert_eq!(h.read(buf, 13), b"hello, world\n");
    assert_eq!(h.err(WRITE, &[fd, buf, 1]), Errno::EBADF);
    // A writable archive file is copied on first write.
    let w = h.open("/work/w.txt", O_RDWR | O_APPEND, 0) as u64;
    assert_eq!(h.call(WRITE, &[w, buf, 5]), 5);
    assert_eq!(h.call(PREAD64, &[w, buf, 64, 0]), 13);
    assert_eq!(h.read(buf, 13), b"writablehello");
}

#[test]
fn directories_and_cwd() {
    let mut h = Harness::new();
    let d = h.cstr("/tmp/d");
    assert_eq!(h.call(MKDIR, &[d, 0o755]), 0);
    assert_eq!(h.err(MKDIR, &[d, 0o755]), Errno::EEXIST);
    let root = h.cstr("/");
    assert_eq!(h.err(MKDIR, &[root, 0o755]), Errno::EEXIST);
    let missing = h.cstr("/nope/d");
    assert_eq!(h.err(MKDIR, &[missing, 0o755]), Errno::ENOENT);
    assert_eq!(h.call(CHDIR, &[d]), 0);
    let buf = h.buf(64);
    assert_eq!(h.call(GETCWD, &[buf, 64]), 7);
    assert_eq!(h.read(buf, 7), b"/tmp/d\0");
    assert_eq!(h.err(GETCWD, &[buf, 6]), Errno::ERANGE);
    let f = h.open("file", O_CREAT | O_WRONLY, 0o600);
    assert_eq!(f, 3);
    let abs = h.cstr("/tmp/d/file");
    assert_eq!(h.err(CHDIR, &[abs]), Errno::ENOTDIR);
    assert_eq!(h.err(RMDIR, &[d]), Errno::ENOTEMPTY);
    assert_eq!(h.err(RMDIR, &[abs]), Errno::ENOTDIR);
    assert_eq!(h.err(UNLINK, &[d]), Errno::EISDIR);
    let dot = h.cstr(".");
    assert_eq!(h.err(RMDIR, &[dot]), Errno::EINVAL);
    // rename file within and across directories
    let new = h.cstr("/tmp/moved");
    assert_eq!(h.call(RENAME, &[abs, new]), 0);
    assert_eq!(h.err(UNLINK, &[abs]), Errno::ENOENT);
    assert_eq!(h.call(RMDIR, &[d]), 0);
    // The cwd was removed.
    assert_eq!(h.err(GETCWD, &[buf, 64]), Errno::ENOENT);
    let tmp = h.cstr("/tmp");
    assert_eq!(h.call(CHDIR, &[tmp]), 0);
    // rename a directory into itself
    let a = h.cstr("/tmp/a");
    let ab = h.cstr("/tmp/a/b");
    assert_eq!(h.call(MKDIR, &[a, 0o755]), 0);
    assert_eq!(h.err(RENAME, &[a, ab]), Errno::EINVAL);
    assert_eq!(h.err(RENAME, &[new, a]), Errno::EISDIR);
    assert_eq!(h.err(RENAME, &[a, new]), Errno::ENOTDIR);
    let flags = u64::from(super::fs::RENAME_NOREPLACE);
    assert_eq!(h.err(RENAMEAT2, &[AT, a, AT, new, flags]), Errno::EEXIST);
    assert_eq!(h.call(RENAMEAT2, &[AT, a, AT, new, u64::from(super::fs::RENAME_EXCHANGE)]), 0);
    let st = h.buf(144);
    assert_eq!(h.call(STAT, &[a, st]), 0);
    assert_eq!(h.read(st + 24, 4), (crate::fs::node::S_IFREG | 0o600).to_le_bytes());
    assert_eq!(h.call(UNLINKAT, &[AT, new, u64::from(AT_REMOVEDIR)]), 0);
    assert_eq!(h.err(UNLINKAT, &[AT, a, 0x1]), Errno::EINVAL);
}

#[test]
fn getdents64_records() {
    let mut h = Harness::new();
    for name in ["/tmp/a", "/tmp/bbbbbbbbbb"] {
        h.open(name, O_CREAT | O_WRONLY, 0o600);
    }
    let sub = h.cstr("/tmp/sub");
    h.call(MKDIR, &[sub, 0o700]);
    let fd = h.open("/tmp", O_DIRECTORY, 0) as u64;
    let buf = h.buf(4096);
    assert_eq!(h.err(GETDENTS64, &[fd, buf, 10]), Errno::EINVAL);
    let n = h.call(GETDENTS64, &[fd, buf, 4096]) as usize;
    let raw = h.read(buf, n);
    let mut names = Vec::new();
    let mut at = 0;
    while at < n {
        let reclen = u16::from_le_bytes([raw[at + 16], raw[at + 17]]) as usize;
        assert_eq!(reclen % 8, 0);
        assert!(u64::from_le_bytes(raw[at..at + 8].try_into().unwrap()) != 0);
        let name: Vec<u8> = raw[at + 19..at + reclen].iter().take_while(|&&b| b != 0).copied().collect();
        names.push((name, raw[at + 18]));
        at += reclen;
    }
    assert_eq!(
        names,
        [
            (b".".to_vec(), 4),
            (b"..".to_vec(), 4),
            (b"a".to_vec(), 8),
            (b"bbbbbbbbbb".to_vec(), 8),
            (b"sub".to_vec(), 4)
        ]
    );
    assert_eq!(h.call(GETDENTS64, &[fd, buf, 4096]), 0);
    assert_eq!(h.call(LSEEK, &[fd, 0, 0]), 0);
    // A small buffer returns a prefix, then the rest.
    let first = h.call(GETDENTS64, &[fd, buf, 48]);
    assert_eq!(first, 48);
    assert_eq!(h.call(GETDENTS64, &[fd, buf, 4096]) as usize, n - 48);
    assert_eq!(h.err(GETDENTS64, &[1, buf, 4096]), Errno::ENOTDIR);
}

#[test]
fn stat_layout() {
    let mut h = Harness::new();
    let fd = h.open("/tmp/s", O_CREAT | O_WRONLY, 0o640) as u64;
    let data = h.put(&[1u8; 1000]);
    h.call(WRITE, &[fd, data, 1000]);
    let st = h.buf(144);
    assert_eq!(h.call(FSTAT, &[fd, st]), 0);
    let raw = h.read(st, 144);
    let word = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap());
    assert_eq!(word(16), 1, "st_nlink");
    assert_eq!(u32::from_le_bytes(raw[24..28].try_into().unwrap()), 0o100640, "st_mode");
    assert_eq!(word(48), 1000, "st_size");
    assert_eq!(word(56), 4096, "st_blksize");
    assert_eq!(word(64), 2, "st_blocks");
    assert!(word(88) > 1_600_000_000, "st_mtime seconds");
    let null = h.cstr("/dev/null");
    assert_eq!(h.call(NEWFSTATAT, &[AT, null, st, 0]), 0);
    assert_eq!(h.u64_at(st + 40), 0x103, "st_rdev of /dev/null");
    assert_eq!(h.call(FSTAT, &[0, st]), 0);
    assert_eq!(h.read(st + 24, 4), (crate::fs::node::S_IFIFO | 0o600).to_le_bytes());
    let empty = h.cstr("");
    assert_eq!(h.err(NEWFSTATAT, &[fd, empty, st, 0]), Errno::ENOENT);
    assert_eq!(h.call(NEWFSTATAT, &[fd, empty, st, u64::from(AT_EMPTY_PATH)]), 0);
    assert_eq!(h.u64_at(st + 48), 1000);
    assert_eq!(h.err(NEWFSTATAT, &[fd, empty, st, 0x4]), Errno::EINVAL);
    let stx = h.buf(256);
    let path = h.cstr("/tmp/s");
    assert_eq!(h.call(STATX, &[AT, path, 0, 0x7ff, stx]), 0);
    let raw = h.read(stx, 256);
    assert_eq!(u16::from_le_bytes(raw[28..30].try_into().unwrap()), 0o100640);
    assert_eq!(u64::from_le_bytes(raw[40..48].try_into().unwrap()), 1000);
    assert_eq!(h.err(STATX, &[AT, path, 0, 0x8000_0000, stx]), Errno::EINVAL);
}

#[test]
fn access_and_readlink() {
    let mut h = Harness::new();
    let exe = h.cstr("/proc/self/exe");
    let buf = h.buf(64);
    assert_eq!(h.call(READLINK, &[exe, buf, 64]), 4);
    assert_eq!(h.read(buf, 4), b"/app");
    assert_eq!(h.call(READLINK, &[exe, buf, 2]), 2);
    assert_eq!(h.err(READLINK, &[exe, buf, 0]), Errno::EINVAL);
    let tmp = h.cstr("/tmp");
    assert_eq!(h.err(READLINK, &[tmp, buf, 64]), Errno::EINVAL);
    assert_eq!(h.call(ACCESS, &[tmp, 7]), 0);
    let ro = h.cstr("/data/hello.txt");
    assert_eq!(h.call(ACCESS, &[ro, 4]), 0);
    assert_eq!(h.err(ACCESS, &[ro, 2]), Errno::EROFS);
    assert_eq!(h.err(ACCESS, &[ro, 1]), Errno::EACCES);
    assert_eq!(h.err(ACCESS, &[ro, 8]), Errno::EINVAL);
    let missing = h.cstr("/missing");
    assert_eq!(h.err(FACCESSAT2, &[AT, missing, 0, 0]), Errno::ENOENT);
    // symlinks
    let target = h.cstr("/data/hello.txt");
    let link = h.cstr("/tmp/link");
    assert_eq!(h.call(SYMLINK, &[target, link]), 0);
    let fd = h.call(OPEN, &[link, 0, 0]) as u64;
    assert_eq!(h.call(READ, &[fd, buf, 5]), 5);
    assert_eq!(h.err(OPEN, &[link, u64::from(O_NOFOLLOW), 0]), Errno::ELOOP);
    let loop_a = h.cstr("/tmp/la");
    let loop_b = h.cstr("/tmp/lb");
    h.call(SYMLINK, &[loop_a, loop_b]);
    h.call(SYMLINK, &[loop_b, loop_a]);
    assert_eq!(h.err(OPEN, &[loop_a, 0, 0]), Errno::ELOOP);
}

#[test]
fn dup_and_fcntl() {
    let mut h = Harness::new();
    assert_eq!(h.call(DUP, &[1]), 3);
    assert_eq!(h.call(DUP2, &[1, 10]), 10);
    assert_eq!(h.call(DUP2, &[10, 10]), 10);
    assert_eq!(h.err(DUP2, &[50, 10]), Errno::EBADF);
    assert_eq!(h.err(DUP3, &[10, 10, 0]), Errno::EINVAL);
    assert_eq!(h.err(DUP3, &[1, 11, 1]), Errno::EINVAL);
    assert_eq!(h.call(DUP3, &[1, 11, u64::from(O_CLOEXEC)]), 11);
    assert_eq!(h.call(FCNTL, &[11, u64::from(super::io::F_GETFD), 0]), 1);
    assert_eq!(h.call(FCNTL, &[11, u64::from(super::io::F_SETFD), 0]), 0);
    assert_eq!(h.call(FCNTL, &[11, u64::from(super::io::F_GETFD), 0]), 0);
    assert_eq!(h.call(FCNTL, &[1, u64::from(super::io::F_DUPFD), 20]), 20);
    assert_eq!(h.call(FCNTL, &[1, u64::from(super::io::F_DUPFD_CLOEXEC), 0]), 4);
    assert_eq!(h.call(FCNTL, &[1, u64::from(super::io::F_GETFL), 0]), i64::from(O_WRONLY));
    assert_eq!(h.call(FCNTL, &[1, u64::from(super::io::F_SETFL), u64::from(O_NONBLOCK | O_RDWR)]), 0);
    assert_eq!(
        h.call(FCNTL, &[3, u64::from(super::io::F_GETFL), 0]),
        i64::from(O_WRONLY | O_NONBLOCK),
        "shared description"
    );
    assert_eq!(h.err(FCNTL, &[1, 9999, 0]), Errno::EINVAL);
    assert_eq!(h.err(FCNTL, &[99, u64::from(super::io::F_GETFD), 0]), Errno::EBADF);
    assert_eq!(h.err(IOCTL, &[1, u64::from(super::io::TCGETS), 0]), Errno::ENOTTY);
    let ws = h.buf(8);
    assert_eq!(h.err(IOCTL, &[1, u64::from(super::io::TIOCGWINSZ), ws]), Errno::ENOTTY);
    assert_eq!(h.err(IOCTL, &[99, u64::from(super::io::TCGETS), 0]), Errno::EBADF);
    // RLIMIT_NOFILE bounds the table.
    let lim = h.put(&[4u64.to_le_bytes(), 4u64.to_le_bytes()].concat());
    assert_eq!(h.call(PRLIMIT64, &[0, 7, lim, 0]), 0);
    assert_eq!(h.err(DUP, &[1]), Errno::EMFILE);
}

#[test]
fn pipes() {
    let mut h = Harness::new();
    let fds = h.buf(8);
    assert_eq!(h.call(PIPE2, &[fds, u64::from(O_NONBLOCK)]), 0);
    let raw = h.read(fds, 8);
    let (r, w) = (
        u32::from_le_bytes(raw[..4].try_into().unwrap()) as u64,
        u32::from_le_bytes(raw[4..].try_into().unwrap()) as u64,
    );
    assert_eq!((r, w), (3, 4));
    let data = h.put(b"ping");
    let buf = h.buf(16);
    assert_eq!(h.err(READ, &[r, buf, 16]), Errno::EAGAIN);
    assert_eq!(h.call(WRITE, &[w, data, 4]), 4);
    let pfd = h.put(&[(r as i32).to_le_bytes(), [1, 0, 0, 0]].concat());
    assert_eq!(h.call(POLL, &[pfd, 1, 0]), 1);
    assert_eq!(h.read(pfd + 6, 2), [1, 0]);
    assert_eq!(h.call(READ, &[r, buf, 16]), 4);
    assert_eq!(h.read(buf, 4), b"ping");
    assert_eq!(h.err(WRITE, &[r, data, 1]), Errno::EBADF);
    assert_eq!(h.err(LSEEK, &[r, 0, 0]), Errno::ESPIPE);
    assert_eq!(h.call(CLOSE, &[w]), 0);
    assert_eq!(h.call(READ, &[r, buf, 16]), 0, "EOF once writers are gone");
    assert_eq!(h.err(PIPE2, &[fds, 0xffff]), Errno::EINVAL);
    assert_eq!(h.err(PIPE, &[TEXT]), Errno::EFAULT);
    // Blocking read of an empty pipe: deadlock.
    h.call(PIPE, &[fds]);
    let raw = h.read(fds, 8);
    let (r, w) = (
        u32::from_le_bytes(raw[..4].try_into().unwrap()) as u64,
        u32::from_le_bytes(raw[4..].try_into().unwrap()) as u64,
    );
    assert_eq!(h.result(READ, &[r, buf, 1]), SyscallResult::Killed(9));
    assert!(h.m.log.starts_with(b"secure-run kernel: deadlock"));
    // Writing with no reader: SIGPIPE, or EPIPE when ignored.
    h.call(CLOSE, &[r]);
    assert_eq!(h.result(WRITE, &[w, data, 1]), SyscallResult::Killed(13));
    let ignore = h.put(&[1u64.to_le_bytes(), [0; 8], [0; 8], [0; 8]].concat());
    assert_eq!(h.call(RT_SIGACTION, &[13, ignore, 0, 8]), 0);
    assert_eq!(h.err(WRITE, &[w, data, 1]), Errno::EPIPE);
}

#[test]
fn poll_and_select_timeouts() {
    let mut h = Harness::new();
    let fds = h.buf(8);
    h.call(PIPE, &[fds]);
    let pfd = h.put(&[3i32.to_le_bytes(), [1, 0, 0, 0]].concat());
    let before = h.m.monotonic;
    assert_eq!(h.call(POLL, &[pfd, 1, 50]), 0);
    assert!(h.m.monotonic >= before + 50_000_000);
    assert_eq!(h.result(POLL, &[pfd, 1, u64::MAX]), SyscallResult::Killed(9));
    let bad = h.put(&[77i32.to_le_bytes(), [1, 0, 0, 0]].concat());
    assert_eq!(h.call(POLL, &[bad, 1, 0]), 1);
    assert_eq!(h.read(bad + 6, 2), (super::io::POLLNVAL as u16).to_le_bytes());
    // select: stdout writable, the pipe's read end not readable.
    let readfds = h.put(&(1u64 << 3).to_le_bytes());
    let writefds = h.put(&(1u64 << 1).to_le_bytes());
    let tv = h.put(&[0u8; 16]);
    assert_eq!(h.call(SELECT, &[4, readfds, writefds, 0, tv]), 1);
    assert_eq!(h.u64_at(readfds), 0);
    assert_eq!(h.u64_at(writefds), 2);
    let badset = h.put(&(1u64 << 40).to_le_bytes());
    assert_eq!(h.err(SELECT, &[41, badset, 0, 0, tv]), Errno::EBADF);
    assert_eq!(h.err(SELECT, &[(-1i64) as u64, 0, 0, 0, tv]), Errno::EINVAL);
}

#[test]
fn brk_grows_and_shrinks() {
    let mut h = Harness::new();
    assert_eq!(h.call(BRK, &[0]) as u64, BRK_START);
    assert_eq!(h.call(BRK, &[BRK_START + 10_000]) as u64, BRK_START + 10_000);
    assert_eq!(h.m.perms_at(BRK_START + 8192), Some(PERM_READ | PERM_WRITE));
    h.m.poke(BRK_START + 9_999, &[1]).unwrap();
    assert_eq!(h.call(BRK, &[BRK_START + 100]) as u64, BRK_START + 100);
    assert_eq!(h.m.perms_at(BRK_START + 4096), None);
    assert_eq!(h.call(BRK, &[BRK_START + (1 << 30)]) as u64, BRK_START + 100, "beyond the span: unchanged");
    // A fixed mapping in the way stops brk.
    let fixed = BRK_START + 0x10_0000;
    assert_eq!(h.call(MMAP, &[fixed, 4096, 3, 0x32, u64::MAX, 0]) as u64, fixed);
    assert_eq!(h.call(BRK, &[fixed + 4096]) as u64, BRK_START + 100);
}

#[test]
fn mmap_munmap_mprotect_split_vmas() {
    let mut h = Harness::new();
    let addr = h.call(MMAP, &[0, 10 * 4096, 3, 0x22, u64::MAX, 0]) as u64;
    assert!(addr >= MMAP_START && addr + 10 * 4096 <= MMAP_START + MMAP_LEN);
    assert_eq!(h.m.perms_at(addr), Some(PERM_READ | PERM_WRITE));
    let before = h.k.vmas().len();
    assert_eq!(h.call(MUNMAP, &[addr + 4096 * 3, 4096 * 2]), 0);
    assert_eq!(h.k.vmas().len(), before + 1);
    assert_eq!(h.m.perms_at(addr + 4096 * 3), None);
    assert_eq!(h.call(MPROTECT, &[addr + 4096 * 6, 4096, 1]), 0);
    assert_eq!(h.m.perms_at(addr + 4096 * 6), Some(PERM_READ));
    assert_eq!(h.k.vmas().len(), before + 3);
    assert_eq!(h.err(MPROTECT, &[addr, 5 * 4096, 1]), Errno::ENOMEM, "hole inside");
    assert_eq!(h.err(MPROTECT, &[addr + 1, 4096, 1]), Errno::EINVAL);
    assert_eq!(h.err(MPROTECT, &[addr, 4096, 8]), Errno::EINVAL);
    // W^X
    assert_eq!(h.err(MPROTECT, &[addr, 4096, 7]), Errno::EACCES);
    assert_eq!(h.err(MMAP, &[0, 4096, 7, 0x22, u64::MAX, 0]), Errno::EACCES);
    assert_eq!(h.call(MPROTECT, &[addr, 4096, 5]), 0);
    assert_eq!(h.m.exec_checks.last(), Some(&(addr, 4096)));
    h.m.refuse_exec = true;
    assert_eq!(h.err(MPROTECT, &[addr + 4096, 4096, 5]), Errno::EACCES);
    assert_eq!(h.m.perms_at(addr + 4096), Some(PERM_READ | PERM_WRITE), "unchanged after refusal");
    assert_eq!(h.err(MMAP, &[0, 4096, 5, 0x22, u64::MAX, 0]), Errno::EACCES);
    // Invalid requests.
    assert_eq!(h.err(MMAP, &[0, 0, 3, 0x22, u64::MAX, 0]), Errno::EINVAL);
    assert_eq!(h.err(MMAP, &[0, 4096, 3, 0x20, u64::MAX, 0]), Errno::EINVAL);
    assert_eq!(h.err(MMAP, &[0, u64::MAX, 3, 0x22, u64::MAX, 0]), Errno::ENOMEM);
    assert_eq!(h.err(MMAP, &[0, 4096, 3, 0x02, 99, 0]), Errno::EBADF);
    assert_eq!(h.err(MUNMAP, &[addr + 1, 4096]), Errno::EINVAL);
    assert_eq!(h.err(MUNMAP, &[addr, 0]), Errno::EINVAL);
    // Fixed mappings: over the kernel, below the minimum, no-replace.
    assert_eq!(h.err(MMAP, &[KERNEL_ADDR & !4095, 4096, 3, 0x32, u64::MAX, 0]), Errno::ENOMEM);
    assert_eq!(h.err(MMAP, &[0x1000, 4096, 3, 0x32, u64::MAX, 0]), Errno::EPERM);
    assert_eq!(h.err(MMAP, &[addr, 4096, 3, 0x10_0022, u64::MAX, 0]), Errno::EEXIST);
    assert_eq!(h.call(MMAP, &[addr, 2 * 4096, 1, 0x32, u64::MAX, 0]) as u64, addr);
    assert_eq!(h.m.perms_at(addr), Some(PERM_READ));
    // Unmapping the kernel's range is harmless: nothing of the app is there.
    assert_eq!(h.call(MUNMAP, &[KERNEL_ADDR & !4095, 1 << 20]), 0);
    // madvise(DONTNEED) zeroes.
    let page = addr + 4096 * 8;
    h.m.poke(page, &[9; 16]).unwrap();
    assert_eq!(h.call(MADVISE, &[page, 4096, 4]), 0);
    assert_eq!(h.read(page, 16), [0; 16]);
    assert_eq!(h.err(MADVISE, &[page, 4096, 999]), Errno::EINVAL);
    assert_eq!(h.err(MADVISE, &[addr + 3 * 4096, 4096, 4]), Errno::ENOMEM);
}

#[test]
fn mremap_grows_shrinks_moves() {
    let mut h = Harness::new();
    let a = h.call(MMAP, &[0, 2 * 4096, 3, 0x22, u64::MAX, 0]) as u64;
    h.m.poke(a, b"keep me").unwrap();
    // Something right above blocks in-place growth (allocation is top-down, so map the next one first).
    let b = h.call(MMAP, &[a + 2 * 4096, 4096, 3, 0x32, u64::MAX, 0]) as u64;
    assert_eq!(b, a + 2 * 4096);
    assert_eq!(h.err(MREMAP, &[a, 2 * 4096, 4 * 4096, 0, 0]), Errno::ENOMEM);
    let moved = h.call(MREMAP, &[a, 2 * 4096, 4 * 4096, MREMAP_MAYMOVE_FLAG, 0]) as u64;
    assert_ne!(moved, a);
    assert_eq!(h.read(moved, 7), b"keep me");
    assert_eq!(h.m.perms_at(a), None);
    assert_eq!(h.m.perms_at(moved + 3 * 4096), Some(PERM_READ | PERM_WRITE));
    assert_eq!(h.call(MREMAP, &[moved, 4 * 4096, 4096, 0, 0]) as u64, moved);
    assert_eq!(h.m.perms_at(moved + 4096), None);
    assert_eq!(h.call(MREMAP, &[moved, 4096, 3 * 4096, 0, 0]) as u64, moved, "grows in place into the freed space");
    assert_eq!(h.err(MREMAP, &[moved + 1, 4096, 4096, 0, 0]), Errno::EINVAL);
    assert_eq!(h.err(MREMAP, &[moved, 4096, 0, 0, 0]), Errno::EINVAL);
    assert_eq!(h.err(MREMAP, &[0x5000_0000, 4096, 8192, 1, 0]), Errno::EFAULT);
}

const MREMAP_MAYMOVE_FLAG: u64 = 1;

#[test]
fn file_mappings_copy_contents() {
    let mut h = Harness::new();
    let fd = h.open("/data/hello.txt", O_RDONLY, 0) as u64;
    let addr = h.call(MMAP, &[0, 4096, 1, 0x02, fd, 0]) as u64;
    assert_eq!(h.read(addr, 14), b"hello, world\n\0");
    assert_eq!(h.m.perms_at(addr), Some(PERM_READ));
    // Private writable copies are fine, shared writable ones are not.
    assert!(h.call(MMAP, &[0, 4096, 3, 0x02, fd, 0]) > 0);
    assert_eq!(h.err(MMAP, &[0, 4096, 3, 0x01, fd, 0]), Errno::EACCES);
    assert_eq!(h.err(MMAP, &[0, 4096, 1, 0x02, fd, 1]), Errno::EINVAL);
    assert_eq!(h.err(MMAP, &[0, 4096, 1, 0x02, 1, 0]), Errno::ENODEV);
    let exec = h.call(MMAP, &[0, 4096, 5, 0x02, fd, 0]) as u64;
    assert_eq!(h.m.perms_at(exec), Some(PERM_READ | PERM_EXEC));
    assert_eq!(h.m.exec_checks.last(), Some(&(exec, 4096)));
}

/// Reads `len` bytes of `fd` at `offset` with pread.
fn pread_bytes(h: &mut Harness, fd: u64, len: usize, offset: u64) -> Vec<u8> {
    let buf = h.buf(len);
    let n = h.call(PREAD64, &[fd, buf, len as u64, offset]);
    assert!(n >= 0, "pread failed: {n}");
    h.read(buf, n as usize)
}

#[test]
fn shared_file_mappings_see_read_and_write() {
    let mut h = Harness::new();
    let fd = h.open("/tmp/shared", O_RDWR | O_CREAT, 0o644) as u64;
    let data = h.put(b"0123456789");
    assert_eq!(h.call(WRITE, &[fd, data, 10]), 10);
    let a = h.call(MMAP, &[0, 8192, 3, 0x01, fd, 0]) as u64;
    let b = h.call(MMAP, &[0, 4096, 1, 0x01, fd, 0]) as u64;
    assert_eq!(h.read(a, 11), b"0123456789\0");
    // A store through one mapping: seen through the other at once, by read() and pread().
    h.m.poke(a + 2, b"AB").unwrap();
    assert_eq!(h.read(b, 4), b"01AB");
    assert_eq!(pread_bytes(&mut h, fd, 16, 0), b"01AB456789");
    // write() and pwrite(): seen through both mappings.
    let more = h.put(b"xyz");
    assert_eq!(h.call(PWRITE64, &[fd, more, 3, 7]), 3);
    assert_eq!(h.read(a, 10), b"01AB456xyz");
    assert_eq!(h.read(b, 10), b"01AB456xyz");
    // Stores past the end of the file stay in the mapping, never in the file; truncate zeroes the tail.
    h.m.poke(a + 20, b"tail").unwrap();
    assert_eq!(pread_bytes(&mut h, fd, 64, 0).len(), 10);
    assert_eq!(h.call(FTRUNCATE, &[fd, 4]), 0);
    assert_eq!(h.read(a, 10), b"01AB\0\0\0\0\0\0");
    assert_eq!(h.call(FTRUNCATE, &[fd, 30]), 0);
    assert_eq!(h.read(a + 20, 4), [0; 4], "extending shows zeros, not the old stores");
    // msync: validated, and a plain flush here.
    h.m.poke(a, b"Z").unwrap();
    assert_eq!(h.call(MSYNC, &[a, 4096, 4]), 0);
    assert_eq!(h.err(MSYNC, &[a, 4096, 5]), Errno::EINVAL);
    assert_eq!(h.err(MSYNC, &[a + 1, 4096, 4]), Errno::EINVAL);
    assert_eq!(h.err(MSYNC, &[0x1000_0000, 4096, 4]), Errno::ENOMEM);
    assert_eq!(pread_bytes(&mut h, fd, 1, 0), b"Z");
    // The last unmap writes back and frees the object; the file keeps the stores.
    h.m.poke(a + 1, b"Q").unwrap();
    assert_eq!(h.call(MUNMAP, &[a, 8192]), 0);
    assert_eq!(h.k.shared_files.iter().count(), 1, "b still maps the file");
    assert_eq!(h.call(MUNMAP, &[b, 4096]), 0);
    assert_eq!(h.k.shared_files.iter().count(), 0);
    assert!(h.m.shared.is_empty());
    assert_eq!(pread_bytes(&mut h, fd, 2, 0), b"ZQ");
}

#[test]
fn shared_file_mappings_follow_mprotect_mremap_and_unlink() {
    let mut h = Harness::new();
    let fd = h.open("/tmp/shared", O_RDWR | O_CREAT, 0o644) as u64;
    assert_eq!(h.call(FTRUNCATE, &[fd, 3 * 4096]), 0);
    let a = h.call(MMAP, &[0, 4096, 3, 0x01, fd, 4096]) as u64;
    h.m.poke(a, b"page1").unwrap();
    assert_eq!(pread_bytes(&mut h, fd, 5, 4096), b"page1", "offset 4096 is the mapping's first byte");
    // Executable shared file memory is refused in mpk mode (W^X enforced), at mmap and mprotect.
    assert_eq!(h.err(MMAP, &[0, 4096, 5, 0x01, fd, 0]), Errno::EACCES);
    assert_eq!(h.err(MPROTECT, &[a, 4096, 5]), Errno::EACCES);
    assert_eq!(h.call(MPROTECT, &[a, 4096, 1]), 0);
    assert_eq!(h.m.perms_at(a), Some(PERM_READ));
    assert_eq!(h.call(MPROTECT, &[a, 4096, 3]), 0);
    // mremap grows or moves over the same file pages, no copy.
    let moved = h.call(MREMAP, &[a, 4096, 2 * 4096, MREMAP_MAYMOVE_FLAG, 0]) as u64;
    assert_eq!(h.read(moved, 5), b"page1");
    h.m.poke(moved + 4096, b"page2").unwrap();
    assert_eq!(pread_bytes(&mut h, fd, 5, 2 * 4096), b"page2");
    // A read-only open cannot get a writable shared mapping, not even through mprotect.
    let ro = h.open("/tmp/shared", O_RDONLY, 0) as u64;
    let view = h.call(MMAP, &[0, 4096, 1, 0x01, ro, 0]) as u64;
    assert_eq!(h.err(MPROTECT, &[view, 4096, 3]), Errno::EACCES);
    // Unlinked while mapped: the mapping keeps the file alive and coherent.
    let path = h.cstr("/tmp/shared");
    assert_eq!(h.call(UNLINK, &[path]), 0);
    assert_eq!(h.call(CLOSE, &[fd]), 0);
    assert_eq!(h.call(CLOSE, &[ro]), 0);
    h.m.poke(moved, b"still").unwrap();
    assert_eq!(h.call(MUNMAP, &[moved, 2 * 4096]), 0);
    assert_eq!(h.call(MUNMAP, &[view, 4096]), 0);
    assert!(h.m.shared.is_empty());
}

#[test]
fn resuid_and_resgid_are_root() {
    let mut h = Harness::new();
    let ids = h.put(&[0xff; 12]);
    assert_eq!(h.call(GETRESUID, &[ids, ids + 4, ids + 8]), 0);
    assert_eq!(h.read(ids, 12), [0; 12]);
    let ids = h.put(&[0xff; 12]);
    assert_eq!(h.call(GETRESGID, &[ids, ids + 4, ids + 8]), 0);
    assert_eq!(h.read(ids, 12), [0; 12]);
    assert_eq!(h.err(GETRESUID, &[ids, 0, ids]), Errno::EFAULT);
    assert_eq!(h.err(GETRESGID, &[KERNEL_ADDR, ids, ids]), Errno::EFAULT);
}

#[test]
fn time_and_sleep() {
    let mut h = Harness::new();
    let ts = h.buf(16);
    assert_eq!(h.call(CLOCK_GETTIME, &[1, ts]), 0);
    let first = h.u64_at(ts + 8);
    let req = h.put(&[0i64.to_le_bytes(), 5_000_000i64.to_le_bytes()].concat());
    assert_eq!(h.call(NANOSLEEP, &[req, 0]), 0);
    assert_eq!(h.call(CLOCK_GETTIME, &[1, ts]), 0);
    assert!(h.u64_at(ts + 8) >= first + 5_000_000);
    let bad = h.put(&[0i64.to_le_bytes(), 2_000_000_000i64.to_le_bytes()].concat());
    assert_eq!(h.err(NANOSLEEP, &[bad, 0]), Errno::EINVAL);
    assert_eq!(h.err(CLOCK_GETTIME, &[99, ts]), Errno::EINVAL);
    assert_eq!(h.call(CLOCK_GETRES, &[0, ts]), 0);
    assert_eq!(h.u64_at(ts + 8), 1);
    assert!(h.call(TIME, &[0]) > 1_600_000_000);
    assert_eq!(h.call(GETTIMEOFDAY, &[ts, 0]), 0);
    assert_eq!(h.call(CLOCK_NANOSLEEP, &[1, 0, req, 0]), 0);
    assert_eq!(h.err(CLOCK_NANOSLEEP, &[2, 0, req, 0]), Errno::EINVAL);
}

#[test]
fn process_identity_and_limits() {
    let mut h = Harness::new();
    assert_eq!(h.call(GETPID, &[]), 1);
    assert_eq!(h.call(GETTID, &[]), 1);
    assert_eq!(h.call(GETPPID, &[]), 0);
    assert_eq!(h.call(GETUID, &[]), 0);
    assert_eq!(h.call(SET_TID_ADDRESS, &[SCRATCH]), 1);
    assert_eq!(h.call(SET_ROBUST_LIST, &[SCRATCH, 24]), 0);
    assert_eq!(h.err(SET_ROBUST_LIST, &[SCRATCH, 25]), Errno::EINVAL);
    assert_eq!(h.err(334, &[]), Errno::ENOSYS, "rseq");
    assert_eq!(h.err(u64::MAX, &[]), Errno::ENOSYS);
    assert_eq!(h.err(100_000, &[]), Errno::ENOSYS);
    let uts = h.buf(390);
    assert_eq!(h.call(UNAME, &[uts]), 0);
    assert_eq!(&h.read(uts, 6), b"Linux\0");
    assert_eq!(&h.read(uts + 65 * 4, 7), b"x86_64\0");
    let rl = h.buf(16);
    assert_eq!(h.call(GETRLIMIT, &[3, rl]), 0);
    assert_eq!(h.u64_at(rl), 1 << 20);
    assert_eq!(h.err(GETRLIMIT, &[99, rl]), Errno::EINVAL);
    let bad = h.put(&[5u64.to_le_bytes(), 4u64.to_le_bytes()].concat());
    assert_eq!(h.err(SETRLIMIT, &[3, bad]), Errno::EINVAL);
    assert_eq!(h.err(PRLIMIT64, &[42, 3, 0, rl]), Errno::ESRCH);
    let mask = h.buf(128);
    assert_eq!(h.call(SCHED_GETAFFINITY, &[0, 128, mask]), 8);
    assert_eq!(h.u64_at(mask), 1);
    assert_eq!(h.err(SCHED_GETAFFINITY, &[0, 4, mask]), Errno::EINVAL);
    let info = h.buf(112);
    assert_eq!(h.call(SYSINFO, &[info]), 0);
    assert_eq!(h.u64_at(info + 32), 256 << 20);
    assert_eq!(h.call(ARCH_PRCTL, &[0x1002, 0x1234_5000]), 0);
    assert_eq!(h.m.fs_base, 0x1234_5000);
    let out = h.buf(8);
    assert_eq!(h.call(ARCH_PRCTL, &[0x1003, out]), 0);
    assert_eq!(h.u64_at(out), 0x1234_5000);
    assert_eq!(h.err(ARCH_PRCTL, &[0x1002, 1 << 47]), Errno::EPERM);
    assert_eq!(h.err(ARCH_PRCTL, &[0x1001, 0]), Errno::ENOSYS);
    assert_eq!(h.err(ARCH_PRCTL, &[0x9999, 0]), Errno::EINVAL);
    assert_eq!(h.call(UMASK, &[0o077]), 0o022);
    assert_eq!(h.call(UMASK, &[0o022]), 0o077);
}

#[test]
fn getrandom_is_seeded() {
    let draw = |seed: u8| {
        let mut h = Harness::with(|c| c.seed = [seed; 32]);
        let buf = h.buf(32);
        assert_eq!(h.call(GETRANDOM, &[buf, 32, 0]), 32);
        h.read(buf, 32)
    };
    assert_eq!(draw(1), draw(1));
    assert_ne!(draw(1), draw(2));
    let mut h = Harness::new();
    let buf = h.buf(8);
    assert_eq!(h.err(GETRANDOM, &[buf, 8, 0x10]), Errno::EINVAL);
    assert_eq!(h.err(GETRANDOM, &[buf, 8, 6]), Errno::EINVAL);
    assert_eq!(h.err(GETRANDOM, &[TEXT, 8, 0]), Errno::EFAULT);
    let fd = h.open("/dev/urandom", O_RDONLY, 0) as u64;
    assert_eq!(h.call(READ, &[fd, buf, 8]), 8);
    let zero = h.open("/dev/zero", O_RDWR, 0) as u64;
    assert_eq!(h.call(READ, &[zero, buf, 8]), 8);
    assert_eq!(h.read(buf, 8), [0; 8]);
    let null = h.open("/dev/null", O_RDWR, 0) as u64;
    assert_eq!(h.call(READ, &[null, buf, 8]), 0);
    assert_eq!(h.call(WRITE, &[null, buf, 8]), 8);
}

#[test]
fn futex_single_thread() {
    let mut h = Harness::new();
    let word = h.put(&5u32.to_le_bytes());
    assert_eq!(h.err(FUTEX, &[word, 128, 4, 0]), Errno::EAGAIN);
    assert_eq!(h.call(FUTEX, &[word, 129, 1, 0]), 0);
    let timeout = h.put(&[0i64.to_le_bytes(), 1000i64.to_le_bytes()].concat());
    assert_eq!(h.err(FUTEX, &[word, 128, 5, timeout]), Errno::ETIMEDOUT);
    assert_eq!(h.err(FUTEX, &[word + 1, 128, 5, 0]), Errno::EINVAL);
    assert_eq!(h.err(FUTEX, &[KERNEL_ADDR, 128, 5, 0]), Errno::EFAULT);
    assert_eq!(h.result(FUTEX, &[word, 128, 5, 0]), SyscallResult::Killed(9));
}

#[test]
fn exit_and_signals() {
    let mut h = Harness::new();
    assert_eq!(h.result(EXIT_GROUP, &[3]), SyscallResult::Exit(3));
    assert_eq!(h.result(EXIT, &[0x1ff]), SyscallResult::Exit(0xff));
    assert_eq!(h.result(KILL, &[1, 6]), SyscallResult::Killed(6));
    assert_eq!(h.call(KILL, &[1, 0]), 0);
    assert_eq!(h.call(KILL, &[1, 17]), 0, "SIGCHLD is ignored by default");
    assert_eq!(h.err(KILL, &[2, 6]), Errno::ESRCH);
    assert_eq!(h.err(KILL, &[1, 65]), Errno::EINVAL);
    assert_eq!(h.err(TGKILL, &[1, 2, 6]), Errno::ESRCH);
    // abort(): block everything, raise, unblock → killed by SIGABRT when the mask opens.
    let all = h.put(&u64::MAX.to_le_bytes());
    let old = h.buf(8);
    assert_eq!(h.call(RT_SIGPROCMASK, &[0, all, old, 8]), 0);
    assert_eq!(h.call(TKILL, &[1, 6]), 0);
    assert_eq!(h.result(RT_SIGPROCMASK, &[2, old, 0, 8]), SyscallResult::Killed(6));
    // A handler cannot run: the signal is dropped.
    let handler = h.put(&[0x40_1000u64.to_le_bytes(), [0; 8], [0; 8], [0; 8]].concat());
    assert_eq!(h.call(RT_SIGACTION, &[10, handler, 0, 8]), 0);
    assert_eq!(h.call(KILL, &[1, 10]), 0);
    let oact = h.buf(32);
    assert_eq!(h.call(RT_SIGACTION, &[10, 0, oact, 8]), 0);
    assert_eq!(h.u64_at(oact), 0x40_1000);
    assert_eq!(h.err(RT_SIGACTION, &[9, handler, 0, 8]), Errno::EINVAL);
    assert_eq!(h.err(RT_SIGACTION, &[10, handler, 0, 4]), Errno::EINVAL);
    assert_eq!(h.err(RT_SIGPROCMASK, &[7, all, 0, 8]), Errno::EINVAL);
    let ss = h.put(&[SCRATCH.to_le_bytes(), [0; 8], 100u64.to_le_bytes()].concat());
    assert_eq!(h.err(SIGALTSTACK, &[ss, 0]), Errno::ENOMEM);
    let ss = h.put(&[SCRATCH.to_le_bytes(), [0; 8], 8192u64.to_le_bytes()].concat());
    let old_ss = h.buf(24);
    assert_eq!(h.call(SIGALTSTACK, &[ss, old_ss]), 0);
    assert_eq!(h.read(old_ss + 8, 4), 2u32.to_le_bytes(), "SS_DISABLE before");
}

#[test]
fn every_table_entry_is_dispatched() {
    for entry in SYSCALLS {
        let mut h = Harness::new();
        let result = h.result(entry.nr, &[]);
        assert_ne!(result, SyscallResult::Return(-38), "{} is in the table but returns ENOSYS", entry.name);
    }
}

#[test]
fn trace_lines() {
    let mut h = Harness::with(|c| c.trace = true);
    let msg = h.put(b"hello\n");
    h.call(WRITE, &[1, msg, 6]);
    let path = h.cstr("/etc/x");
    h.call(OPENAT, &[AT, path, 0, 0]);
    h.call(332, &[AT, path, 0, 0x7ff, KERNEL_ADDR, 0]);
    h.call(999, &[1, 2, 3, 4, 5, 6]);
    let buf = h.buf(8);
    h.call(READ, &[0, buf, 5]);
    let long = h.cstr(&"y".repeat(40));
    h.call(OPENAT, &[AT, long, u64::from(O_CREAT | O_WRONLY | O_CLOEXEC), 0o644]);
    h.call(MMAP, &[0, 4096, 3, 0x22, u64::MAX, 0]);
    h.result(EXIT_GROUP, &[0]);
    let log = alloc::string::String::from_utf8(h.m.log.clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], r#"write(1, "hello\n", 6) = 6"#);
    assert_eq!(lines[1], r#"openat(AT_FDCWD, "/etc/x", O_RDONLY, 0) = -2 ENOENT"#);
    assert_eq!(lines[2], r#"statx(AT_FDCWD, "/etc/x", 0x0, 0x7ff, 0x7e0000001000) = -2 ENOENT"#);
    assert_eq!(lines[3], "syscall_999(0x1, 0x2, 0x3, 0x4, 0x5, 0x6) = -38 ENOSYS");
    assert_eq!(lines[4], r#"read(0, "input", 5) = 5"#);
    assert_eq!(
        lines[5],
        alloc::format!(r#"openat(AT_FDCWD, "{}"..., O_WRONLY|O_CREAT|O_CLOEXEC, 0644) = 3"#, "y".repeat(32))
    );
    assert!(lines[6].starts_with("mmap(NULL, 4096, 0x3, 0x22, -1, 0x0) = 0x7000"), "{}", lines[6]);
    assert_eq!(lines[7], "exit_group(0) = ? (exit 0)");
}

#[test]
fn the_vmm_stack_is_adopted_and_hwcap_filled_in() {
    let mut h = Harness::new();
    let stack = layout().stack;
    // The VMM mapped the top page and wrote the initial stack there.
    let top_page = stack.end() - 4096;
    h.m.premap(top_page, 4096, PERM_READ | PERM_WRITE);
    let (rsp, slot) = (stack.end() - 256, stack.end() - 128);
    for (rsp, slot) in [(stack.start - 16, slot), (rsp, stack.end()), (rsp + 8, slot), (rsp, slot + 4)] {
        assert_eq!(h.k.adopt_stack(&mut h.m, rsp, slot, 0xbfeb_fbff), Err(crate::StackError::OutsideStack));
    }
    h.k.adopt_stack(&mut h.m, rsp, slot, 0xbfeb_fbff).unwrap();
    assert_eq!(h.u64_at(slot), 0xbfeb_fbff);
    assert!(h.k.vmas().covers(stack.start, stack.size, PERM_READ | PERM_WRITE));
    h.k.check_invariants().unwrap();
}

/// Arguments the fuzzer picks from: pointers into scratch, text, strings, the kernel, and edge values.
fn interesting_arg() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..8,
        Just(u64::MAX),
        Just(AT_FDCWD as u64),
        Just(KERNEL_ADDR),
        Just(TEXT),
        (0u64..SCRATCH_LEN).prop_map(|o| SCRATCH + o),
        Just(SCRATCH),
        Just(SCRATCH + 0x800),
        Just(MMAP_START + MMAP_LEN - 4096),
        Just(BRK_START + 8192),
        any::<u64>(),
        (0u64..64).prop_map(|p| p * 4096),
    ]
}

fn interesting_nr() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => proptest::sample::select(SYSCALLS.iter().map(|s| s.nr).filter(|&n| n != EXIT && n != EXIT_GROUP).collect::<Vec<_>>()),
        1 => any::<u64>(),
        1 => 0u64..500,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn random_syscalls_never_panic_and_keep_invariants(
        calls in proptest::collection::vec((interesting_nr(), proptest::array::uniform6(interesting_arg())), 1..40)
    ) {
        let mut h = Harness::new();
        // Plant some paths in scratch so path arguments sometimes resolve.
        h.m.poke(SCRATCH, b"/tmp/fuzz\0").unwrap();
        h.m.poke(SCRATCH + 0x800, b"/data/hello.txt\0").unwrap();
        for (nr, args) in calls {
            let result = h.k.syscall(&mut h.m, nr, &args);
            prop_assert!(h.k.check_invariants().is_ok(), "{:?} after {nr} {args:x?}", h.k.check_invariants());
            prop_assert_eq!(h.m.violations, 0, "machine violation after {} {:x?}", nr, args);
            for vma in h.k.vmas().iter() {
                prop_assert!(vma.end <= 0x7e00_0000_0000 || vma.start >= 0x7e00_0000_0000 + (1 << 30));
            }
            if !matches!(result, SyscallResult::Return(_)) {
                break;
            }
        }
    }
}
