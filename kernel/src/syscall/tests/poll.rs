//! Syscall tests: poll and select.

use super::*;

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
    assert_eq!(h.read(bad + 6, 2), (crate::syscall::poll::POLLNVAL as u16).to_le_bytes());
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
