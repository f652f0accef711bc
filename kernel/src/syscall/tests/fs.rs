//! Syscall tests: paths, directories, stat and access.

use super::*;

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
    let flags = u64::from(crate::syscall::fs::RENAME_NOREPLACE);
    assert_eq!(h.err(RENAMEAT2, &[AT, a, AT, new, flags]), Errno::EEXIST);
    assert_eq!(h.call(RENAMEAT2, &[AT, a, AT, new, u64::from(crate::syscall::fs::RENAME_EXCHANGE)]), 0);
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
