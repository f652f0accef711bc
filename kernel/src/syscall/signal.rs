//! Signal syscalls: actions, masks, sending, waiting for signals, the alternate stack, `rt_sigreturn`
//! and `restart_syscall`. Delivery itself happens on the way back to the app (`crate::signal::deliver`).
//!
//! The process is pid 1, its first thread tid 1: `kill(0 | 1 | -1, …)` reaches the process, `tgkill(1,
//! tid, …)` and `tkill(tid, …)` one of its threads; other pids and tids do not exist (ESRCH).

use super::{int_arg, Stop, SysResult, Wait};
use crate::errno::Errno;
use crate::machine::Machine;
use crate::process::Process;
use crate::signal::deliver::Target;
use crate::signal::info::{SigInfo, SIGINFO_SIZE, SI_TKILL, SI_USER};
use crate::signal::{
    is_signal, AltStack, Disposition, SigAction, SigSet, SIGACTION_SIZE, SIG_BLOCK, SIG_SETMASK, SIG_UNBLOCK,
    SS_AUTODISARM, SS_DISABLE, SS_ONSTACK,
};
use crate::user;

pub use linux_raw_sys::general::MINSIGSTKSZ;

/// The only `sigset_t` size the kernel takes (64 signals).
const SIGSET_SIZE: u64 = 8;

/// A signal-number argument: 0 (check only) or 1..=64.
fn signal_arg(raw: u64) -> Result<u32, Errno> {
    let signal = int_arg(raw);
    match u32::try_from(signal) {
        Ok(signal) if signal == 0 || is_signal(signal) => Ok(signal),
        _ => Err(Errno::EINVAL),
    }
}

impl Process {
    /// Sends `signal` (0: only check that the target exists) as `info`.
    fn send_checked(&mut self, signal: u32, info: SigInfo, target: Target) -> SysResult {
        if signal != 0 {
            self.send_signal(info, target)?;
        }
        Ok(0)
    }

    fn own_thread(&self, tid: i32) -> Result<(), Errno> {
        if self.threads.iter().any(|thread| thread.tid == tid && thread.pid == self.pid) {
            Ok(())
        } else {
            Err(Errno::ESRCH)
        }
    }

    pub(crate) fn sys_kill(&mut self, pid: u64, signal: u64) -> SysResult {
        let signal = signal_arg(signal)?;
        let targets = self.kill_targets(int_arg(pid));
        if targets.is_empty() {
            return Err(Errno::ESRCH.into());
        }
        if signal == 0 {
            return Ok(0);
        }
        let me = self.pid;
        let mut result = Ok(0);
        for target in targets {
            let info = SigInfo::sent(signal, SI_USER as i32, me);
            let sent = if target == me {
                self.send_checked(signal, info, Target::Process)
            } else {
                self.signal_process(target, info).map(|()| 0).map_err(Stop::from)
            };
            if sent.is_err() {
                result = sent;
            }
        }
        result
    }

    pub(crate) fn sys_tgkill(&mut self, tgid: u64, tid: u64, signal: u64) -> SysResult {
        let (tgid, tid) = (int_arg(tgid), int_arg(tid));
        if tgid <= 0 || tid <= 0 {
            return Err(Errno::EINVAL.into());
        }
        let signal = signal_arg(signal)?;
        if tgid != self.pid {
            return Err(Errno::ESRCH.into());
        }
        self.tkill(tid, signal)
    }

    pub(crate) fn sys_tkill(&mut self, tid: u64, signal: u64) -> SysResult {
        let tid = int_arg(tid);
        if tid <= 0 {
            return Err(Errno::EINVAL.into());
        }
        let signal = signal_arg(signal)?;
        self.tkill(tid, signal)
    }

    fn tkill(&mut self, tid: i32, signal: u32) -> SysResult {
        self.own_thread(tid)?;
        self.send_checked(signal, SigInfo::sent(signal, SI_TKILL, self.pid), Target::Thread(tid))
    }

    /// Reads a `siginfo_t` the app queues: EPERM for a code that claims the kernel or tkill sent it.
    fn queued_info<M: Machine>(&self, m: &mut M, signal: u32, info: u64) -> Result<SigInfo, Errno> {
        let raw: [u8; SIGINFO_SIZE] = user::read_array(&self.vmas, m, info)?;
        if !SigInfo::queued_code_allowed(&raw) {
            return Err(Errno::EPERM);
        }
        Ok(SigInfo::from_user(signal, raw))
    }

    pub(crate) fn sys_rt_sigqueueinfo<M: Machine>(
        &mut self,
        m: &mut M,
        tgid: u64,
        signal: u64,
        info: u64,
    ) -> SysResult {
        let signal = signal_arg(signal)?;
        let info = self.queued_info(m, signal, info)?;
        if !matches!(int_arg(tgid), 1) {
            return Err(Errno::ESRCH.into());
        }
        self.send_checked(signal, info, Target::Process)
    }

    pub(crate) fn sys_rt_tgsigqueueinfo<M: Machine>(
        &mut self,
        m: &mut M,
        tgid: u64,
        tid: u64,
        signal: u64,
        info: u64,
    ) -> SysResult {
        let (tgid, tid) = (int_arg(tgid), int_arg(tid));
        if tgid <= 0 || tid <= 0 {
            return Err(Errno::EINVAL.into());
        }
        let signal = signal_arg(signal)?;
        let info = self.queued_info(m, signal, info)?;
        if tgid != self.pid {
            return Err(Errno::ESRCH.into());
        }
        self.own_thread(tid)?;
        self.send_checked(signal, info, Target::Thread(tid))
    }

    pub(crate) fn sys_rt_sigaction<M: Machine>(
        &mut self,
        m: &mut M,
        signal: u64,
        act: u64,
        old: u64,
        sigsetsize: u64,
    ) -> SysResult {
        let signal = int_arg(signal) as u32;
        if sigsetsize != SIGSET_SIZE || !is_signal(signal) {
            return Err(Errno::EINVAL.into());
        }
        let new = if act != 0 {
            if SigSet::UNBLOCKABLE.contains(signal) {
                return Err(Errno::EINVAL.into());
            }
            Some(SigAction::from_bytes(&user::read_array::<M, SIGACTION_SIZE>(&self.vmas, m, act)?))
        } else {
            None
        };
        if old != 0 {
            user::write(&self.vmas, m, old, &self.actions.get(signal).to_bytes())?;
        }
        if let Some(action) = new {
            self.actions.set(signal, action);
            if self.actions.disposition(signal) == Disposition::Ignore {
                // POSIX: setting SIG_IGN discards the pending instances, blocked or not.
                self.pending.discard(signal);
                for thread in &mut self.threads {
                    thread.pending.discard(signal);
                }
            }
        }
        Ok(0)
    }

    /// Reads a `sigset_t` argument (exactly 8 bytes).
    fn sigset_arg<M: Machine>(&self, m: &mut M, set: u64, sigsetsize: u64) -> Result<SigSet, Errno> {
        if sigsetsize != SIGSET_SIZE {
            return Err(Errno::EINVAL);
        }
        Ok(SigSet(user::read_u64(&self.vmas, m, set)?))
    }

    pub(crate) fn sys_rt_sigprocmask<M: Machine>(
        &mut self,
        m: &mut M,
        how: u64,
        set: u64,
        old: u64,
        sigsetsize: u64,
    ) -> SysResult {
        if sigsetsize != SIGSET_SIZE {
            return Err(Errno::EINVAL.into());
        }
        let current = self.thread().mask;
        let new = if set != 0 {
            let value = self.sigset_arg(m, set, sigsetsize)?;
            Some(match how as u32 {
                SIG_BLOCK => current.union(value),
                SIG_UNBLOCK => current.minus(value),
                SIG_SETMASK => value,
                _ => return Err(Errno::EINVAL.into()),
            })
        } else {
            None
        };
        if old != 0 {
            user::write_u64(&self.vmas, m, old, current.0)?;
        }
        if let Some(mask) = new {
            // Signals it unblocks are delivered on the way back to the app.
            self.thread_mut().mask = mask.as_mask();
        }
        Ok(0)
    }

    pub(crate) fn sys_rt_sigpending<M: Machine>(&mut self, m: &mut M, set: u64, sigsetsize: u64) -> SysResult {
        if sigsetsize > SIGSET_SIZE {
            return Err(Errno::EINVAL.into());
        }
        let blocked_pending = SigSet(self.pending_signals().0 & self.thread().mask.0);
        let bytes = blocked_pending.0.to_le_bytes();
        user::write(&self.vmas, m, set, &bytes[..sigsetsize as usize])?;
        Ok(0)
    }

    /// rt_sigsuspend: waits with `mask` in force until a signal's handler runs (or the signal kills);
    /// the handler's frame restores the old mask.
    pub(crate) fn sys_rt_sigsuspend<M: Machine>(&mut self, m: &mut M, mask: u64, sigsetsize: u64) -> SysResult {
        let thread = self.thread();
        if thread.saved_mask.is_none() {
            let new = self.sigset_arg(m, mask, sigsetsize)?.as_mask();
            let thread = self.thread_mut();
            thread.saved_mask = Some(thread.mask);
            thread.mask = new;
        }
        Err(Stop::Block(Wait::until(None, Errno::ERESTARTNOHAND, "rt_sigsuspend with no signal to come")))
    }

    pub(crate) fn sys_pause(&mut self) -> SysResult {
        Err(Stop::Block(Wait::until(None, Errno::ERESTARTNOHAND, "pause with no signal to come")))
    }

    /// rt_sigtimedwait: takes a pending signal of `set` (blocked ones too: that is the point), waiting for
    /// one up to the timeout.
    pub(crate) fn sys_rt_sigtimedwait<M: Machine>(
        &mut self,
        m: &mut M,
        set: u64,
        info: u64,
        timeout: u64,
        sigsetsize: u64,
    ) -> SysResult {
        let wanted = self.sigset_arg(m, set, sigsetsize)?.as_mask();
        let timeout_ns = if timeout == 0 { None } else { Some(self.read_timespec_ns(m, timeout)?) };
        let deadline = self.deadline_for(m, super::nr::RT_SIGTIMEDWAIT, timeout_ns);
        let own = self.thread().pending.set().0 & wanted.0;
        let shared = self.pending.set().0 & wanted.0;
        let taken = match (SigSet(own).first(), SigSet(shared).first()) {
            (Some(signal), _) => self.thread_mut().pending.take(signal),
            (None, Some(signal)) => self.pending.take(signal),
            (None, None) => None,
        };
        if let Some(taken) = taken {
            if info != 0 {
                user::write(&self.vmas, m, info, taken.bytes())?;
            }
            return Ok(i64::from(taken.signo()));
        }
        if Self::passed(m, deadline) || timeout_ns == Some(0) {
            return Err(Errno::EAGAIN.into());
        }
        Err(Stop::Block(Wait {
            deadline,
            wake_on: wanted,
            interrupted: Errno::EINTR,
            remaining_to: None,
            waker: super::Waker::Nothing,
            what: "rt_sigtimedwait with no signal to come",
        }))
    }

    /// Sets the alternate stack from `(sp, flags, size)`; `current_sp` is where the app runs (EPERM while
    /// it runs on the alternate stack).
    pub(crate) fn set_altstack(&mut self, (sp, flags, size): (u64, u32, u64), current_sp: u64) -> Result<(), Errno> {
        let thread = self.thread_mut();
        if thread.altstack.contains(current_sp) {
            return Err(Errno::EPERM);
        }
        if flags & !(SS_DISABLE | SS_AUTODISARM | SS_ONSTACK) != 0 {
            return Err(Errno::EINVAL);
        }
        thread.altstack = if flags & SS_DISABLE != 0 {
            AltStack::default()
        } else if size < u64::from(MINSIGSTKSZ) {
            return Err(Errno::ENOMEM);
        } else {
            AltStack { sp, flags: flags & SS_AUTODISARM, size }
        };
        Ok(())
    }

    pub(crate) fn sys_sigaltstack<M: Machine>(&mut self, m: &mut M, new: u64, old: u64) -> SysResult {
        let requested =
            if new != 0 { Some(AltStack::from_bytes(&user::read_array::<M, 24>(&self.vmas, m, new)?)) } else { None };
        if old != 0 {
            let stack = self.thread().altstack;
            let flags = stack.flags_at(self.user_sp) | (stack.flags & SS_AUTODISARM);
            user::write(&self.vmas, m, old, &stack.to_bytes(flags))?;
        }
        if let Some(requested) = requested {
            self.set_altstack(requested, self.user_sp)?;
        }
        Ok(0)
    }

    /// rt_sigreturn: the frame is restored on the way back to the app, where the whole context is at hand.
    pub(crate) fn sys_rt_sigreturn(&mut self) -> SysResult {
        self.thread_mut().sigreturn = true;
        Ok(0)
    }

    /// restart_syscall: continues the call a signal without a handler interrupted (with its deadline).
    pub(crate) fn sys_restart_syscall<M: Machine>(&mut self, m: &mut M) -> SysResult {
        match self.thread().restart {
            Some(restart) if restart.nr != super::nr::RESTART_SYSCALL => self.dispatch(m, restart.nr, &restart.args),
            _ => Err(Errno::EINTR.into()),
        }
    }
}
