//! Syscall tests: read, write and their forms.

use super::*;

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
