//! Syscall tests: exit, signals (sending, masks, delivery frames, sigreturn, restarts, waits) and timers.

use super::*;
use crate::signal::frame::{FRAME_SIZE, INFO_OFFSET, UCONTEXT_OFFSET};
use crate::signal::{SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_RESTART, SA_RESTORER, SA_SIGINFO};
use crate::{SigInfo, TrapInfo};

const HANDLER: u64 = TEXT + 0x800;
const RESTORER: u64 = TEXT + 0x900;
const SIGUSR1: u64 = 10;
const SIGSEGV: u64 = 11;
const SIGALRM: u64 = 14;
const SIGRTMIN: u64 = 32;

impl Harness {
    /// Installs a handler for `signal` with `flags` (SA_RESTORER added, as every C library does).
    fn handle(&mut self, signal: u64, flags: u32, mask: u64) {
        let flags = u64::from(flags | SA_RESTORER);
        let act = self
            .put(&[HANDLER.to_le_bytes(), flags.to_le_bytes(), RESTORER.to_le_bytes(), mask.to_le_bytes()].concat());
        assert_eq!(self.call(RT_SIGACTION, &[signal, act, 0, 8]), 0);
    }

    /// Plays the handler's return: `ret` to the restorer, which calls rt_sigreturn.
    fn return_from_handler(&mut self) -> i64 {
        assert_eq!(self.u64_at(self.ctx.rsp), RESTORER, "the frame starts with the restorer");
        self.ctx.rsp += 8;
        self.ctx.rip = RESTORER + 7;
        self.call(RT_SIGRETURN, &[])
    }

    fn mask(&mut self) -> u64 {
        let old = self.buf(8);
        assert_eq!(self.call(RT_SIGPROCMASK, &[0, 0, old, 8]), 0);
        self.u64_at(old)
    }
}

#[test]
fn exit_and_default_actions() {
    let mut h = Harness::new();
    assert_eq!(h.result(EXIT_GROUP, &[3]), SyscallResult::Exit(3));
    assert_eq!(h.result(EXIT, &[0x1ff]), SyscallResult::Exit(0xff));
    assert_eq!(h.result(KILL, &[1, 6]), SyscallResult::Killed(6));
    assert_eq!(h.result(KILL, &[1, 15]), SyscallResult::Killed(15));
    assert_eq!(h.call(KILL, &[1, 0]), 0);
    assert_eq!(h.call(KILL, &[1, 17]), 0, "SIGCHLD is ignored by default");
    assert_eq!(h.call(KILL, &[0, 28]), 0, "SIGWINCH too, to the process group");
    assert_eq!(h.err(KILL, &[2, 6]), Errno::ESRCH);
    assert_eq!(h.err(KILL, &[1, 65]), Errno::EINVAL);
    assert_eq!(h.err(TGKILL, &[1, 2, 6]), Errno::ESRCH);
    assert_eq!(h.err(TGKILL, &[1, 0, 6]), Errno::EINVAL);
    assert_eq!(h.err(TKILL, &[7, 6]), Errno::ESRCH);
    // abort(): block everything, raise, unblock: killed by SIGABRT when the mask opens.
    let all = h.put(&u64::MAX.to_le_bytes());
    let old = h.buf(8);
    assert_eq!(h.call(RT_SIGPROCMASK, &[0, all, old, 8]), 0);
    assert_eq!(h.mask(), !((1 << 8) | (1 << 18)), "SIGKILL and SIGSTOP stay unblocked");
    assert_eq!(h.call(TKILL, &[1, 6]), 0);
    let pending = h.buf(8);
    assert_eq!(h.call(RT_SIGPENDING, &[pending, 8]), 0);
    assert_eq!(h.u64_at(pending), 1 << 5);
    assert_eq!(h.result(RT_SIGPROCMASK, &[2, old, 0, 8]), SyscallResult::Killed(6));
    assert_eq!(h.err(RT_SIGACTION, &[9, all, 0, 8]), Errno::EINVAL, "SIGKILL cannot be caught");
    assert_eq!(h.err(RT_SIGACTION, &[10, all, 0, 4]), Errno::EINVAL);
    assert_eq!(h.err(RT_SIGPROCMASK, &[7, all, 0, 8]), Errno::EINVAL);
}

#[test]
fn a_handler_runs_on_a_linux_frame_and_sigreturn_restores_everything() {
    let mut h = Harness::new();
    h.handle(SIGUSR1, SA_SIGINFO, 1 << (SIGALRM - 1));
    h.ctx = UserContext { rbx: 0xb, r12: 0xc, r15: 0xf, rflags: 0x246 | (1 << 10), ..h.ctx };
    let before = h.ctx;
    // The syscall returns 0 into rax, then the handler is entered instead of the next instruction.
    assert_eq!(h.call(KILL, &[1, SIGUSR1]), 0);
    let frame = h.ctx.rsp;
    assert_eq!(
        (h.ctx.rip, h.ctx.rdi, h.ctx.rsi, h.ctx.rdx),
        (HANDLER, SIGUSR1, frame + INFO_OFFSET, frame + UCONTEXT_OFFSET)
    );
    assert_eq!((frame + 8) % 16, 0, "aligned as at a call");
    assert!(frame + FRAME_SIZE as u64 <= APP_SP - 128, "below the red zone");
    assert_eq!(h.ctx.rflags & (1 << 10), 0, "DF cleared for the handler");
    assert_eq!(h.read(frame + INFO_OFFSET, 4), 10u32.to_le_bytes(), "si_signo");
    assert_eq!(h.read(frame + INFO_OFFSET + 8, 4), 0u32.to_le_bytes(), "si_code SI_USER");
    let rip_in_frame = h.u64_at(frame + 8 + 40 + 16 * 8);
    assert_eq!(rip_in_frame, before.rip, "uc_mcontext.gregs[REG_RIP]");
    // While the handler runs, its signal and sa_mask are blocked.
    assert_eq!(h.mask(), (1 << (SIGUSR1 - 1)) | (1 << (SIGALRM - 1)));
    // The handler changes registers; sigreturn puts the interrupted ones back (rax: the syscall's 0).
    h.ctx.rbx = 99;
    assert_eq!(h.return_from_handler(), 0);
    assert_eq!(h.ctx, UserContext { rax: 0, ..before });
    assert_eq!(h.mask(), 0);
}

#[test]
fn a_handler_may_change_the_context_it_returns_to_but_not_privileged_state() {
    let mut h = Harness::new();
    h.handle(SIGUSR1, SA_SIGINFO, 0);
    assert_eq!(h.call(KILL, &[1, SIGUSR1]), 0);
    let frame = h.ctx.rsp;
    let greg = |index: u64| frame + 8 + 40 + index * 8;
    // The handler sets RIP and RAX, and tries IOPL 3, NT and VM in RFLAGS.
    h.m.poke(greg(16), &(TEXT + 0x40).to_le_bytes()).unwrap();
    h.m.poke(greg(13), &77u64.to_le_bytes()).unwrap();
    h.m.poke(greg(17), &(0x3000u64 | (1 << 14) | (1 << 17) | 0x1).to_le_bytes()).unwrap();
    assert_eq!(h.return_from_handler(), 77);
    assert_eq!(h.ctx.rip, TEXT + 0x40);
    assert_eq!(h.ctx.rflags, 0x203, "only CF came from the frame; IF on, no IOPL/NT/VM");
    // A non-canonical RIP (IRETQ would fault in the kernel) is refused: SIGSEGV, which kills (no handler).
    assert_eq!(h.call(KILL, &[1, SIGUSR1]), 0);
    let frame = h.ctx.rsp;
    h.m.poke(frame + 8 + 40 + 16 * 8, &(1u64 << 47).to_le_bytes()).unwrap();
    h.ctx.rsp += 8;
    assert_eq!(h.result(RT_SIGRETURN, &[]), SyscallResult::Killed(11));
}

#[test]
fn interrupted_waits_return_eintr_or_restart() {
    let mut h = Harness::new();
    // alarm during a pipe read, with SA_RESTART: the read restarts (RIP back onto the SYSCALL).
    let fds = h.buf(8);
    h.call(PIPE, &[fds]);
    let read_end = u64::from(u32::from_le_bytes(h.read(fds, 4).try_into().unwrap()));
    h.handle(SIGALRM, SA_RESTART, 0);
    assert_eq!(h.call(ALARM, &[1]), 0);
    let buf = h.buf(4);
    let before = h.ctx;
    let after_handler = h.call(READ, &[read_end, buf, 4]);
    assert_eq!(h.ctx.rip, HANDLER, "the handler runs first");
    assert!(h.m.monotonic >= 1_000_000_000, "after the alarm's second");
    let _ = after_handler;
    h.return_from_handler();
    assert_eq!((h.ctx.rip, h.ctx.rax), (before.rip - 2, READ), "restart: SYSCALL again with the number");
    // Without SA_RESTART: EINTR.
    h.handle(SIGALRM, 0, 0);
    assert_eq!(h.call(ALARM, &[1]), 0);
    h.call(READ, &[read_end, buf, 4]);
    assert_eq!(h.return_from_handler(), Errno::EINTR.to_return());
    // Nothing armed, nothing to come: deadlock, not a hang.
    assert_eq!(h.result(READ, &[read_end, buf, 4]), SyscallResult::Killed(9));
}

#[test]
fn nanosleep_interrupted_writes_the_time_left() {
    let mut h = Harness::new();
    h.handle(SIGALRM, SA_RESTART, 0);
    let req = h.put(&[5i64.to_le_bytes(), 0i64.to_le_bytes()].concat());
    let rem = h.buf(16);
    assert_eq!(h.call(ALARM, &[2]), 0);
    h.call(NANOSLEEP, &[req, rem]);
    assert_eq!(h.return_from_handler(), Errno::EINTR.to_return(), "nanosleep is never restarted for a handler");
    let left = i64::from_le_bytes(h.read(rem, 8).try_into().unwrap());
    assert!((2..=3).contains(&left), "about 3 s left: {left}");
    assert_eq!(h.call(ALARM, &[0]), 0, "the alarm went off: nothing left");
}

#[test]
fn blocked_signals_wait_pending_and_come_when_unblocked_realtime_ones_in_order() {
    let mut h = Harness::new();
    h.handle(SIGRTMIN + 2, SA_SIGINFO, 0);
    let set = h.put(&(1u64 << (SIGRTMIN + 1)).to_le_bytes());
    assert_eq!(h.call(RT_SIGPROCMASK, &[0, set, 0, 8]), 0);
    for value in [7u64, 8, 9] {
        let mut info = [0u8; 128];
        info[8..12].copy_from_slice(&(-1i32).to_le_bytes()); // SI_QUEUE
        info[24..32].copy_from_slice(&value.to_le_bytes());
        let at = h.put(&info);
        assert_eq!(h.call(RT_SIGQUEUEINFO, &[1, SIGRTMIN + 2, at]), 0);
    }
    let mut forged = [0u8; 128];
    forged[8..12].copy_from_slice(&0i32.to_le_bytes());
    let forged = h.put(&forged);
    assert_eq!(h.err(RT_SIGQUEUEINFO, &[1, SIGRTMIN + 2, forged]), Errno::EPERM, "SI_USER is the kernel's");
    // Unblocking delivers them one after the other in queue order: each handler blocks its own signal, so
    // the next instance comes when it returns.
    let none = h.put(&0u64.to_le_bytes());
    assert_eq!(h.call(RT_SIGPROCMASK, &[2, none, 0, 8]), 0);
    let mut values = Vec::new();
    for _ in 0..3 {
        assert_eq!(h.ctx.rip, HANDLER);
        values.push(h.u64_at(h.ctx.rsi + 24));
        h.return_from_handler();
    }
    assert_eq!(values, [7, 8, 9], "real-time signals queue in arrival order");
    assert_eq!(h.ctx.rip, APP_RIP);
}

#[test]
fn sigtimedwait_takes_blocked_signals_and_times_out() {
    let mut h = Harness::new();
    let set = h.put(&(1u64 << (SIGUSR1 - 1)).to_le_bytes());
    assert_eq!(h.call(RT_SIGPROCMASK, &[0, set, 0, 8]), 0);
    assert_eq!(h.call(KILL, &[1, SIGUSR1]), 0);
    let info = h.buf(128);
    assert_eq!(h.call(RT_SIGTIMEDWAIT, &[set, info, 0, 8]), SIGUSR1 as i64);
    assert_eq!(h.read(info, 4), 10u32.to_le_bytes());
    let timeout = h.put(&[0i64.to_le_bytes(), 50_000_000i64.to_le_bytes()].concat());
    let before = h.m.monotonic;
    assert_eq!(h.err(RT_SIGTIMEDWAIT, &[set, info, timeout, 8]), Errno::EAGAIN);
    assert!(h.m.monotonic >= before + 50_000_000);
    // A timer's signal ends the wait.
    let alrm = h.put(&(1u64 << (SIGALRM - 1)).to_le_bytes());
    assert_eq!(h.call(RT_SIGPROCMASK, &[0, alrm, 0, 8]), 0);
    h.call(ALARM, &[1]);
    assert_eq!(h.call(RT_SIGTIMEDWAIT, &[alrm, 0, 0, 8]), SIGALRM as i64);
}

#[test]
fn sigsuspend_waits_with_its_mask_and_the_frame_restores_the_old_one() {
    let mut h = Harness::new();
    h.handle(SIGALRM, 0, 0);
    let alrm = h.put(&(1u64 << (SIGALRM - 1)).to_le_bytes());
    assert_eq!(h.call(RT_SIGPROCMASK, &[0, alrm, 0, 8]), 0);
    let itimer = h.put(&[[0u8; 8], [0u8; 8], [0u8; 8], 100_000i64.to_le_bytes()].concat()); // 100 ms once
    assert_eq!(h.call(SETITIMER, &[0, itimer, 0]), 0);
    let empty = h.put(&0u64.to_le_bytes());
    h.call(RT_SIGSUSPEND, &[empty, 8]);
    assert_eq!(h.ctx.rip, HANDLER);
    assert_eq!(h.mask(), 1 << (SIGALRM - 1), "the handler blocks its own signal");
    assert_eq!(h.return_from_handler(), Errno::EINTR.to_return());
    assert_eq!(h.mask(), 1 << (SIGALRM - 1), "sigsuspend's old mask is back");
    assert_eq!(h.result(PAUSE, &[]), SyscallResult::Killed(9), "nothing armed: deadlock");
}

#[test]
fn resethand_nodefer_and_the_alternate_stack() {
    let mut h = Harness::new();
    let alt = h.call(MMAP, &[0, 0x4000, 3, 0x22, u64::MAX, 0]) as u64;
    let ss = h.put(&[alt.to_le_bytes(), [0; 8], 0x4000u64.to_le_bytes()].concat());
    assert_eq!(h.call(SIGALTSTACK, &[ss, 0]), 0);
    h.handle(SIGUSR1, SA_ONSTACK | SA_RESETHAND | SA_NODEFER, 0);
    assert_eq!(h.call(KILL, &[1, SIGUSR1]), 0);
    assert!(h.ctx.rsp > alt && h.ctx.rsp < alt + 0x4000, "on the alternate stack");
    assert_eq!(h.mask(), 0, "SA_NODEFER: not blocked");
    // On the alternate stack, sigaltstack reports SS_ONSTACK and refuses changes.
    let old = h.buf(24);
    assert_eq!(h.call(SIGALTSTACK, &[0, old]), 0);
    assert_eq!(h.read(old + 8, 4), 1u32.to_le_bytes(), "SS_ONSTACK");
    assert_eq!(h.err(SIGALTSTACK, &[ss, 0]), Errno::EPERM);
    let oact = h.buf(32);
    assert_eq!(h.call(RT_SIGACTION, &[SIGUSR1, 0, oact, 8]), 0);
    assert_eq!(h.u64_at(oact), 0, "SA_RESETHAND: back to SIG_DFL");
    h.return_from_handler();
    assert_eq!(h.result(KILL, &[1, SIGUSR1]), SyscallResult::Killed(10));
    let small = h.put(&[alt.to_le_bytes(), [0; 8], 100u64.to_le_bytes()].concat());
    assert_eq!(h.err(SIGALTSTACK, &[small, 0]), Errno::ENOMEM);
}

#[test]
fn faults_run_their_handler_or_kill_and_a_frame_that_does_not_fit_kills() {
    let mut h = Harness::new();
    h.handle(SIGSEGV, SA_SIGINFO, 0);
    let mut ctx = h.ctx;
    let info = SigInfo::fault(11, crate::signal::info::SEGV_MAPERR, 0xdead);
    let trap = TrapInfo { error_code: 4, trapno: 14, cr2: 0xdead };
    assert_eq!(h.k.fault(&mut h.m, &mut ctx, info, trap), Ok(()));
    assert_eq!(ctx.rip, HANDLER);
    assert_eq!(h.u64_at(ctx.rsi + 16), 0xdead, "si_addr");
    assert_eq!(h.u64_at(ctx.rsp + 8 + 40 + 22 * 8), 0xdead, "uc_mcontext.cr2");
    // A second fault inside the handler (SIGSEGV blocked there): killed.
    assert_eq!(h.k.fault(&mut h.m, &mut ctx, info, trap), Err(Resume::Killed { signal: 11, core: true }));
    // No room for the frame (stack pointer in unmapped memory): killed by SIGSEGV.
    let mut h = Harness::new();
    h.handle(SIGUSR1, 0, 0);
    h.ctx.rsp = 0x1000_0000;
    assert_eq!(h.result(KILL, &[1, SIGUSR1]), SyscallResult::Killed(11));
    // No SA_RESTORER: no way back from the handler, so no handler (Linux: SIGSEGV).
    let mut h = Harness::new();
    let act = h.put(&[HANDLER.to_le_bytes(), [0; 8], [0; 8], [0; 8]].concat());
    assert_eq!(h.call(RT_SIGACTION, &[SIGUSR1, act, 0, 8]), 0);
    assert_eq!(h.result(KILL, &[1, SIGUSR1]), SyscallResult::Killed(11));
}

#[test]
fn sigpipe_kills_by_default_and_epipe_when_ignored() {
    let mut h = Harness::new();
    let fds = h.buf(8);
    h.call(PIPE, &[fds]);
    let (read_end, write_end) = (u64::from(h.read(fds, 1)[0]), u64::from(h.read(fds + 4, 1)[0]));
    h.call(CLOSE, &[read_end]);
    let data = h.put(b"x");
    assert_eq!(h.result(WRITE, &[write_end, data, 1]), SyscallResult::Killed(13));
    let ignore = h.put(&[1u64.to_le_bytes(), [0; 8], [0; 8], [0; 8]].concat());
    assert_eq!(h.call(RT_SIGACTION, &[13, ignore, 0, 8]), 0);
    assert_eq!(h.err(WRITE, &[write_end, data, 1]), Errno::EPIPE);
}

#[test]
fn interval_and_posix_timers() {
    let mut h = Harness::new();
    // setitimer/getitimer round trip.
    let value = h.put(&[[0u8; 8], 500_000i64.to_le_bytes(), 2i64.to_le_bytes(), [0u8; 8]].concat());
    let old = h.buf(32);
    assert_eq!(h.call(SETITIMER, &[0, value, old]), 0);
    assert_eq!(h.call(GETITIMER, &[0, old]), 0);
    assert_eq!(h.u64_at(old + 8), 500_000, "interval 0.5 s");
    assert!(h.u64_at(old + 16) <= 2, "value about 2 s");
    assert_eq!(h.err(SETITIMER, &[3, value, 0]), Errno::EINVAL);
    assert_eq!(h.call(ALARM, &[0]), 2, "alarm reports the seconds left");
    // A POSIX timer with SIGEV_SIGNAL to SIGRTMIN and a value; periodic: overruns while blocked.
    h.handle(SIGRTMIN, SA_SIGINFO, 0);
    let mut event = [0u8; 64];
    event[..8].copy_from_slice(&0x1234u64.to_le_bytes());
    event[8..12].copy_from_slice(&(SIGRTMIN as u32).to_le_bytes());
    let event = h.put(&event);
    let id = h.buf(4);
    assert_eq!(h.call(TIMER_CREATE, &[1, event, id]), 0);
    let id = u64::from(h.read(id, 1)[0]);
    let block = h.put(&(1u64 << (SIGRTMIN - 1)).to_le_bytes());
    assert_eq!(h.call(RT_SIGPROCMASK, &[0, block, 0, 8]), 0);
    let spec = h.put(
        &[0i64.to_le_bytes(), 10_000_000i64.to_le_bytes(), 0i64.to_le_bytes(), 10_000_000i64.to_le_bytes()].concat(),
    );
    assert_eq!(h.call(TIMER_SETTIME, &[id, 0, spec, 0]), 0);
    let req = h.put(&[0i64.to_le_bytes(), 55_000_000i64.to_le_bytes()].concat());
    assert_eq!(h.call(NANOSLEEP, &[req, 0]), 0, "blocked: the sleep is not interrupted");
    assert_eq!(h.call(RT_SIGPROCMASK, &[1, block, 0, 8]), 0);
    assert_eq!(h.ctx.rip, HANDLER);
    assert_eq!(h.u64_at(h.ctx.rsi + 24), 0x1234, "si_value");
    let overrun = i32::from_le_bytes(h.read(h.ctx.rsi + 20, 4).try_into().unwrap());
    assert!(overrun >= 3, "fired five times, delivered once: {overrun} overruns");
    assert_eq!(h.call(TIMER_GETOVERRUN, &[id]), i64::from(overrun));
    let cur = h.buf(32);
    assert_eq!(h.call(TIMER_GETTIME, &[id, cur]), 0);
    assert_eq!(h.u64_at(cur + 8), 10_000_000, "interval");
    assert_eq!(h.call(TIMER_DELETE, &[id]), 0);
    assert_eq!(h.err(TIMER_DELETE, &[id]), Errno::EINVAL);
}

#[test]
fn the_trace_shows_deliveries_sigreturns_and_deaths_as_strace_does() {
    let mut h = Harness::with(|c| c.trace = true);
    h.handle(SIGUSR1, SA_SIGINFO, 0);
    assert_eq!(h.call(KILL, &[1, SIGUSR1]), 0);
    assert_eq!(h.return_from_handler(), 0);
    assert_eq!(h.result(TGKILL, &[1, 1, 15]), SyscallResult::Killed(15));
    let log = alloc::string::String::from_utf8(h.m.log.clone()).unwrap();
    let lines: Vec<&str> = log.lines().filter(|line| !line.starts_with("rt_sigaction")).collect();
    assert_eq!(
        lines,
        [
            "kill(1, SIGUSR1) = 0",
            "--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER, si_pid=1, si_uid=0} ---",
            "rt_sigreturn({mask=[]}) = 0",
            "tgkill(1, 1, SIGTERM) = 0",
            "+++ killed by SIGTERM +++",
        ]
    );
    assert!(log.starts_with("rt_sigaction(SIGUSR1, "), "{log}");
}
