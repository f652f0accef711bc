//! Generating and delivering signals: queueing one for the process or a thread, running what is due when
//! the kernel returns to the app ([`Process::return_to_app`]: handler frames, restarted syscalls,
//! `rt_sigreturn`), and CPU exceptions turned into signals ([`Process::fault`]).
//!
//! Isolation: frames are written and read through the same checked copies as syscall buffers; what
//! `rt_sigreturn` takes from the app is the general registers, RIP (canonical, lower half) and the
//! arithmetic RFLAGS bits; never segments, privileged flags (IOPL, IF, NT, VM) or PKRU, and the FPU state
//! goes through FXRSTOR only after its MXCSR is made valid.
#![forbid(unsafe_code)]

use super::frame::{self, FrameContents, TrapInfo, UserContext, FRAME_SIZE, RED_ZONE};
use super::info::SigInfo;
use super::{Disposition, SigAction, SigSet, SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_RESTART, SA_RESTORER};
use super::{SIGSEGV, SS_AUTODISARM};
use crate::errno::Errno;
use crate::machine::{FpuState, Machine};
use crate::process::Process;
use crate::signal::queue::QueueError;
use crate::syscall::nr;
use crate::user;

/// Who a signal is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Any thread that does not block it (kill, timers, SIGEV_SIGNAL).
    Process,
    /// This thread (tkill, tgkill, faults, SIGPIPE).
    Thread(i32),
}

/// How the process goes on after the kernel's work on the way back to the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// The app continues with the (possibly changed) context.
    App,
    /// A signal's default action ends the process (status 128 + signal).
    Killed { signal: u32, core: bool },
    /// The process ended with this exit status (its last thread exited while the return switched threads).
    Exit(i32),
}

/// RFLAGS a handler starts with cleared: DF (the ABI wants it clear at calls), TF, RF.
const HANDLER_CLEARED_RFLAGS: u64 = (1 << 10) | (1 << 8) | (1 << 16);
/// The FXSAVE image of a freshly initialised FPU (FCW 0x37f, MXCSR 0x1f80): what a handler starts with.
fn initial_fpu_state() -> FpuState {
    let mut state = FpuState::default();
    state.0[0..2].copy_from_slice(&0x37fu16.to_le_bytes());
    state.0[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    state
}

impl Process {
    /// Queues `info` for `target`. A signal the process ignores (and that is not blocked) is discarded
    /// as it arrives, as Linux does. EAGAIN when a real-time queue is full.
    pub(crate) fn send_signal(&mut self, info: SigInfo, target: Target) -> Result<(), Errno> {
        let signal = info.signo();
        let index = match target {
            Target::Process => self.current,
            Target::Thread(tid) => self.thread_index(tid).ok_or(Errno::ESRCH)?,
        };
        let blocked = self.threads[index].mask.contains(signal);
        if !blocked && self.actions.disposition(signal) == Disposition::Ignore {
            return Ok(());
        }
        let queue = match target {
            Target::Process => &mut self.pending,
            Target::Thread(_) => &mut self.threads[index].pending,
        };
        match queue.push(info) {
            Ok(_) => {}
            Err(QueueError::Full) => return Err(Errno::EAGAIN),
        }
        // Another thread's signal, or one the running thread blocks: the scheduler finds who takes it.
        if index != self.current || blocked {
            self.poke();
        }
        Ok(())
    }

    /// The signals pending for the current thread: its own and the process's.
    pub(crate) fn pending_signals(&self) -> SigSet {
        self.thread().pending.set().union(self.pending.set())
    }

    /// The pending signals the current thread does not block.
    fn ready_signals(&self) -> SigSet {
        self.pending_signals().minus(self.thread().mask)
    }

    /// The next signal the current thread can take, and whether it is in the thread's own queue (taken
    /// from there first) rather than the process's.
    fn next_deliverable(&self) -> Option<(u32, bool)> {
        let signal = self.ready_signals().first()?;
        Some((signal, self.thread().pending.set().contains(signal)))
    }

    /// Whether the return to the app has work to do (a switch, a signal to take, a frame to restore). Cheap: the arch
    /// side asks after every syscall.
    pub fn has_return_work(&self) -> bool {
        self.thread().sigreturn || self.sched.resched || !self.ready_signals().is_empty()
    }

    /// Whether a pending signal would interrupt a wait now (one the thread does not block and does not
    /// ignore), leaving out the signals in `taken` (another thread's wait ends for them).
    pub(crate) fn signal_interrupts_except(&self, taken: SigSet) -> bool {
        let mut ready = self.ready_signals().minus(taken);
        while let Some(signal) = ready.first() {
            if self.actions.disposition(signal) != Disposition::Ignore {
                return true;
            }
            ready.remove(signal);
        }
        false
    }

    fn take_signal(&mut self, signal: u32, own: bool) -> Option<SigInfo> {
        let info = if own { self.thread_mut().pending.take(signal) } else { self.pending.take(signal) }?;
        if info.code() == super::info::SI_TIMER {
            self.timer_signal_delivered(&info);
        }
        Some(info)
    }

    /// The kernel's work on the way back to the app, with the app's whole context: a switch to another
    /// thread if one is due ([`crate::sched`]), `rt_sigreturn`, then
    /// every deliverable signal (a frame per handler, innermost last, as Linux stacks them), and the
    /// result of an interrupted syscall (`syscall`: its number, when the app is coming back from one)
    /// turned into EINTR or a restart.
    pub fn return_to_app<M: Machine>(&mut self, m: &mut M, ctx: &mut UserContext, syscall: Option<u64>) -> Resume {
        let mut syscall = syscall;
        loop {
            let resume = self.return_to_app_once(m, ctx, syscall);
            let ending = match resume {
                Resume::App => return resume,
                _ if self.pid == crate::processes::FIRST_PID => return resume,
                Resume::Exit(code) => crate::processes::Ending::Exited(code),
                Resume::Killed { signal, core } => crate::processes::Ending::Killed { signal, core },
            };
            // Another process ended: the next thread runs (the loop's next pass switches to it).
            if let Err(stop) = self.exit_process(m, ending) {
                return crate::sched::resume_for(stop);
            }
            syscall = None;
        }
    }

    /// One pass of [`Process::return_to_app`].
    fn return_to_app_once<M: Machine>(&mut self, m: &mut M, ctx: &mut UserContext, syscall: Option<u64>) -> Resume {
        let mut syscall = syscall;
        if let Some((entry, sp)) = self.thread_mut().exec_start.take() {
            // execve started a program: its first instruction, on its stack, every other register zero.
            *ctx = UserContext { rip: entry, rsp: sp, rflags: 0x202, ..UserContext::default() };
            m.set_fs_base(0);
            m.restore_fpu(&initial_fpu_state());
            syscall = None;
        }
        if self.sched.resched {
            if let Err(end) = self.schedule(m, ctx, &mut syscall) {
                return end;
            }
        }
        if core::mem::take(&mut self.thread_mut().sigreturn) {
            syscall = None;
            if self.sigreturn(m, ctx).is_err() {
                if let Resume::Killed { signal, core } = self.force_sigsegv(m, ctx) {
                    return Resume::Killed { signal, core };
                }
            }
        }
        // Every signal at most once per return (a real-time queue cannot keep this loop going).
        for _ in 0..crate::signal::queue::MAX_QUEUED {
            let Some((signal, own)) = self.next_deliverable() else { break };
            let Some(info) = self.take_signal(signal, own) else { break };
            match self.actions.disposition(signal) {
                Disposition::Ignore => continue,
                Disposition::Kill { core } => {
                    self.trace_killed(m, signal);
                    return Resume::Killed { signal, core };
                }
                Disposition::Handle(action) => {
                    if let Some(number) = syscall.take() {
                        Self::restart_for_handler(ctx, number, action);
                    }
                    if self.push_frame(m, ctx, &info, action, TrapInfo::default()).is_err() {
                        if let Resume::Killed { signal, core } = self.force_sigsegv(m, ctx) {
                            return Resume::Killed { signal, core };
                        }
                    }
                }
            }
        }
        if let Some(number) = syscall {
            self.restart_without_handler(ctx, number);
        }
        Resume::App
    }

    /// An interrupted syscall's result when a handler is about to run (signal(7)).
    fn restart_for_handler(ctx: &mut UserContext, number: u64, action: SigAction) {
        let errno = Errno(-(ctx.rax as i64) as i32);
        if !errno.is_restart() {
            return;
        }
        let restart = errno == Errno::ERESTARTNOINTR || (errno == Errno::ERESTARTSYS && action.has(SA_RESTART));
        if restart {
            ctx.rax = number;
            ctx.rip = ctx.rip.wrapping_sub(2); // back onto the SYSCALL instruction (0F 05)
        } else {
            ctx.rax = Errno::EINTR.to_return() as u64;
        }
    }

    /// An interrupted syscall whose signal ran no handler: it continues (`restart_syscall` resumes a
    /// timed wait where it was).
    fn restart_without_handler(&mut self, ctx: &mut UserContext, number: u64) {
        let errno = Errno(-(ctx.rax as i64) as i32);
        if !errno.is_restart() {
            return;
        }
        ctx.rax = if errno == Errno::ERESTART_RESTARTBLOCK { nr::RESTART_SYSCALL } else { number };
        ctx.rip = ctx.rip.wrapping_sub(2);
    }

    /// Builds a handler's frame on the app's stack (or its alternate stack) and points the context at the
    /// handler. Err when the frame cannot be written (the stack is full or unmapped): SIGSEGV follows.
    fn push_frame<M: Machine>(
        &mut self,
        m: &mut M,
        ctx: &mut UserContext,
        info: &SigInfo,
        action: SigAction,
        trap: TrapInfo,
    ) -> Result<(), Errno> {
        if !action.has(SA_RESTORER) {
            // x86-64 has no kernel-provided return trampoline: every C library sets SA_RESTORER.
            return Err(Errno::EFAULT);
        }
        let signal = info.signo();
        let altstack = self.thread().altstack;
        let switch_stack = action.has(SA_ONSTACK) && altstack.enabled() && !altstack.contains(ctx.rsp);
        let top = if switch_stack { altstack.sp.wrapping_add(altstack.size) } else { ctx.rsp.wrapping_sub(RED_ZONE) };
        let layout = frame::layout(top).ok_or(Errno::EFAULT)?;
        let on_altstack = switch_stack || altstack.contains(ctx.rsp);
        if on_altstack && !altstack.contains(layout.frame + 1) {
            return Err(Errno::EFAULT); // it would overflow the alternate stack
        }
        let mut fpu = FpuState::default();
        m.save_fpu(&mut fpu);
        let stack_flags = altstack.flags_at(ctx.rsp) | (altstack.flags & SS_AUTODISARM);
        let mask = self.thread_mut().saved_mask.take().unwrap_or(self.thread().mask);
        let bytes = frame::encode(&FrameContents {
            context: ctx,
            trap,
            mask,
            stack: altstack.to_bytes(stack_flags),
            info,
            restorer: action.restorer,
            fpstate: layout.fpstate,
        });
        user::write(&self.vmas, m, layout.fpstate, &fpu.0)?;
        user::write(&self.vmas, m, layout.frame, &bytes)?;
        self.trace_line(m, format_args!("--- {} {} ---", super::name(signal), info.trace()));
        *ctx = UserContext {
            rip: action.handler,
            rsp: layout.frame,
            rdi: u64::from(signal),
            rsi: layout.frame + frame::INFO_OFFSET,
            rdx: layout.frame + frame::UCONTEXT_OFFSET,
            rax: 0,
            rflags: ctx.rflags & !HANDLER_CLEARED_RFLAGS,
            ..*ctx
        };
        m.restore_fpu(&initial_fpu_state());
        let thread = self.thread_mut();
        let mut blocked = thread.mask.union(action.mask);
        if !action.has(SA_NODEFER) {
            blocked.insert(signal);
        }
        thread.mask = blocked.as_mask();
        if switch_stack && altstack.flags & SS_AUTODISARM != 0 {
            thread.altstack = super::AltStack::default();
        }
        if action.has(SA_RESETHAND) {
            self.actions.set(signal, SigAction::default());
        }
        Ok(())
    }

    /// `rt_sigreturn`, done with the whole context: restores what the frame below the app's stack pointer
    /// saved. Err for a frame that cannot be read or names a non-canonical RIP.
    fn sigreturn<M: Machine>(&mut self, m: &mut M, ctx: &mut UserContext) -> Result<(), Errno> {
        let frame_at = ctx.rsp.wrapping_sub(8);
        let raw: [u8; FRAME_SIZE] = user::read_array(&self.vmas, m, frame_at)?;
        let decoded = frame::decode(&raw);
        let mut restored = decoded.context;
        if restored.rip >= isolation::paging::LOWER_HALF_END {
            return Err(Errno::EFAULT);
        }
        restored.rflags = (0x202 & !frame::SIGRETURN_RFLAGS) | (restored.rflags & frame::SIGRETURN_RFLAGS);
        if decoded.fpstate == 0 {
            m.restore_fpu(&initial_fpu_state());
        } else {
            if !decoded.fpstate.is_multiple_of(16) {
                return Err(Errno::EFAULT);
            }
            let mut state = FpuState::default();
            user::read(&self.vmas, m, decoded.fpstate, &mut state.0)?;
            let mut current = FpuState::default();
            m.save_fpu(&mut current);
            frame::sanitize_fpu_state(&mut state.0, &current.0);
            m.restore_fpu(&state);
        }
        self.thread_mut().mask = decoded.mask.as_mask();
        // Linux ignores every error but EFAULT here (a handler on the alternate stack cannot change it).
        let _ = self.set_altstack(decoded.stack, restored.rsp);
        *ctx = restored;
        self.trace_line(m, format_args!("rt_sigreturn({{mask={}}}) = {}", decoded.mask.trace(), restored.rax as i64));
        Ok(())
    }

    /// A handler could not be set up, or a frame could not be restored: SIGSEGV, which kills unless a
    /// handler for it can run (Linux's `force_sigsegv`).
    fn force_sigsegv<M: Machine>(&mut self, m: &mut M, ctx: &mut UserContext) -> Resume {
        let info = SigInfo::kernel(SIGSEGV);
        match self.fault(m, ctx, info, TrapInfo::default()) {
            Ok(()) => Resume::App,
            Err(resume) => resume,
        }
    }

    /// A CPU exception in the app raised `info`'s signal: its handler runs now (on the faulting context),
    /// unless the signal is blocked or ignored, which, as on Linux, kills (a fault cannot be ignored
    /// without looping on the faulting instruction). Err: how the process ends.
    pub fn fault<M: Machine>(
        &mut self,
        m: &mut M,
        ctx: &mut UserContext,
        info: SigInfo,
        trap: TrapInfo,
    ) -> Result<(), Resume> {
        let Err(Resume::Killed { signal, core }) = self.fault_signal(m, ctx, info, trap) else { return Ok(()) };
        if self.pid == crate::processes::FIRST_PID {
            return Err(Resume::Killed { signal, core });
        }
        // Another process: it alone ends, as on Linux; the log names it and the fault.
        let line = alloc::format!(
            "secure-run kernel: process {} was killed by {} (fault at {:#x}, rip {:#x})\n",
            self.pid,
            super::name(signal),
            info.addr(),
            ctx.rip
        );
        m.console(kernel_abi::Stream::Log, line.as_bytes());
        self.exit_process(m, crate::processes::Ending::Killed { signal, core }).map_err(crate::sched::resume_for)
    }

    /// [`Process::fault`]'s signal: a handler's frame, or how the process ends.
    fn fault_signal<M: Machine>(
        &mut self,
        m: &mut M,
        ctx: &mut UserContext,
        info: SigInfo,
        trap: TrapInfo,
    ) -> Result<(), Resume> {
        let signal = info.signo();
        let killed = Resume::Killed { signal, core: true };
        if self.thread().mask.contains(signal) {
            self.trace_killed(m, signal);
            return Err(killed);
        }
        match self.actions.disposition(signal) {
            Disposition::Handle(action) => {
                if self.push_frame(m, ctx, &info, action, trap).is_ok() {
                    return Ok(());
                }
                // Cannot set up the handler: the signal's default action, as for an ignored fault.
                self.actions.set(signal, SigAction::default());
                self.trace_killed(m, signal);
                Err(if signal == SIGSEGV { killed } else { Resume::Killed { signal: SIGSEGV, core: true } })
            }
            Disposition::Ignore | Disposition::Kill { .. } => {
                self.trace_killed(m, signal);
                Err(killed)
            }
        }
    }

    fn trace_killed<M: Machine>(&self, m: &mut M, signal: u32) {
        self.trace_line(m, format_args!("+++ killed by {} +++", super::name(signal)));
    }
}
