//! Syscall tests: pipes.

use super::*;

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
