//! Syscall tests: close, dup, fcntl, ioctl.

use super::*;

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
    assert_eq!(h.call(FCNTL, &[11, u64::from(crate::syscall::fcntl::F_GETFD), 0]), 1);
    assert_eq!(h.call(FCNTL, &[11, u64::from(crate::syscall::fcntl::F_SETFD), 0]), 0);
    assert_eq!(h.call(FCNTL, &[11, u64::from(crate::syscall::fcntl::F_GETFD), 0]), 0);
    assert_eq!(h.call(FCNTL, &[1, u64::from(crate::syscall::fcntl::F_DUPFD), 20]), 20);
    assert_eq!(h.call(FCNTL, &[1, u64::from(crate::syscall::fcntl::F_DUPFD_CLOEXEC), 0]), 4);
    assert_eq!(h.call(FCNTL, &[1, u64::from(crate::syscall::fcntl::F_GETFL), 0]), i64::from(O_WRONLY));
    assert_eq!(h.call(FCNTL, &[1, u64::from(crate::syscall::fcntl::F_SETFL), u64::from(O_NONBLOCK | O_RDWR)]), 0);
    assert_eq!(
        h.call(FCNTL, &[3, u64::from(crate::syscall::fcntl::F_GETFL), 0]),
        i64::from(O_WRONLY | O_NONBLOCK),
        "shared description"
    );
    assert_eq!(h.err(FCNTL, &[1, 9999, 0]), Errno::EINVAL);
    assert_eq!(h.err(FCNTL, &[99, u64::from(crate::syscall::fcntl::F_GETFD), 0]), Errno::EBADF);
    assert_eq!(h.err(IOCTL, &[1, u64::from(crate::syscall::fcntl::TCGETS), 0]), Errno::ENOTTY);
    let ws = h.buf(8);
    assert_eq!(h.err(IOCTL, &[1, u64::from(crate::syscall::fcntl::TIOCGWINSZ), ws]), Errno::ENOTTY);
    assert_eq!(h.err(IOCTL, &[99, u64::from(crate::syscall::fcntl::TCGETS), 0]), Errno::EBADF);
    // RLIMIT_NOFILE bounds the table.
    let lim = h.put(&[4u64.to_le_bytes(), 4u64.to_le_bytes()].concat());
    assert_eq!(h.call(PRLIMIT64, &[0, 7, lim, 0]), 0);
    assert_eq!(h.err(DUP, &[1]), Errno::EMFILE);
}
