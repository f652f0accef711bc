//! Syscall tests: exit and signals.

use super::*;

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
