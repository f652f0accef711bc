//! Syscall tests: process identity, limits, futex, getrandom, the initial stack.

use super::*;

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
