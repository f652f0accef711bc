//! Signals, recorded but never delivered to handlers (the hardware side builds no signal frames).
//!
//! A signal the app sends itself (kill, tkill, tgkill) takes its default action when its disposition is
//! SIG_DFL: terminate (the app ends as `Killed(signal)`, status 128 + signal) or, for SIGCHLD, SIGCONT,
//! SIGURG, SIGWINCH and the stop signals, nothing. A blocked signal stays pending until the mask unblocks
//! it — which is how `abort()` (raise with all signals blocked, then unblock) ends with status 134.
//! A signal whose disposition is SIG_IGN or a handler is discarded: handlers cannot run here.

use alloc::vec::Vec;

use super::{int_arg, Stop, SysResult};
use crate::errno::Errno;
use crate::machine::Machine;
use crate::process::Process;
use crate::user;

pub const SIGKILL: i32 = 9;
pub const SIGPIPE: i32 = 13;
pub const SIGSTOP: i32 = 19;
/// Highest signal number.
pub const NSIG: i32 = 64;
pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;
pub const SIG_BLOCK: u64 = 0;
pub const SIG_UNBLOCK: u64 = 1;
pub const SIG_SETMASK: u64 = 2;
pub const SS_ONSTACK: u32 = 1;
pub const SS_DISABLE: u32 = 2;
pub const SS_AUTODISARM: u32 = 1 << 31;
pub const MINSIGSTKSZ: u64 = 2048;
/// `struct sigaction` as the kernel sees it: handler, flags, restorer, mask.
pub const SIGACTION_SIZE: usize = 32;

/// Recorded signal state.
#[derive(Clone, Debug)]
pub struct SignalState {
    /// Raw `struct sigaction` of the signals whose action was ever set; the others are all zero
    /// (SIG_DFL). Sparse: a 64-entry table made the process state 2 KiB larger, and moving it at boot
    /// cost milliseconds where kernel code is emulated.
    actions: Vec<(i32, [u8; SIGACTION_SIZE])>,
    pub mask: u64,
    pub pending: u64,
    /// `stack_t`: sp, flags, size.
    pub altstack: (u64, u32, u64),
}

impl Default for SignalState {
    fn default() -> Self {
        Self { actions: Vec::new(), mask: 0, pending: 0, altstack: (0, SS_DISABLE, 0) }
    }
}

fn bit(signal: i32) -> u64 {
    1u64 << (signal - 1)
}

/// Signals that cannot be blocked, caught or ignored.
const UNBLOCKABLE: u64 = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));

/// Signals whose default action is not to terminate (ignore, or stop/continue, which we ignore).
fn default_ignored(signal: i32) -> bool {
    matches!(signal, 17 | 18 | 19 | 20 | 21 | 22 | 23 | 28)
}

impl SignalState {
    /// The raw `struct sigaction` of `signal` (all zero until set).
    fn action(&self, signal: i32) -> [u8; SIGACTION_SIZE] {
        self.actions.iter().find(|(s, _)| *s == signal).map_or([0; SIGACTION_SIZE], |(_, action)| *action)
    }

    fn set_action(&mut self, signal: i32, action: [u8; SIGACTION_SIZE]) {
        match self.actions.iter_mut().find(|(s, _)| *s == signal) {
            Some((_, slot)) => *slot = action,
            None => self.actions.push((signal, action)),
        }
    }

    pub fn handler(&self, signal: i32) -> u64 {
        let action = self.action(signal);
        u64::from_le_bytes(action[..8].try_into().unwrap_or_default())
    }

    /// True when `signal` arriving now would kill the app (default action, not blocked).
    pub fn default_kills(&self, signal: i32) -> bool {
        self.handler(signal) == SIG_DFL && self.mask & bit(signal) == 0 && !default_ignored(signal)
    }
}

impl Process {
    /// Raises `signal` in the app (1..=64).
    fn raise(&mut self, signal: i32) -> Result<(), Stop> {
        if signal == 0 {
            return Ok(());
        }
        if self.signals.mask & bit(signal) != 0 {
            self.signals.pending |= bit(signal);
            return Ok(());
        }
        self.deliver(signal)
    }

    fn deliver(&mut self, signal: i32) -> Result<(), Stop> {
        if self.signals.handler(signal) == SIG_DFL && !default_ignored(signal) {
            return Err(Stop::Killed(signal));
        }
        Ok(())
    }

    /// Delivers pending signals the mask no longer blocks.
    fn deliver_unblocked(&mut self) -> Result<(), Stop> {
        let ready = self.signals.pending & !self.signals.mask;
        self.signals.pending &= !ready;
        for signal in 1..=NSIG {
            if ready & bit(signal) != 0 {
                self.deliver(signal)?;
            }
        }
        Ok(())
    }

    fn signal_arg(raw: u64) -> Result<i32, Errno> {
        let signal = int_arg(raw);
        if (0..=NSIG).contains(&signal) {
            Ok(signal)
        } else {
            Err(Errno::EINVAL)
        }
    }

    pub(crate) fn sys_kill<M: Machine>(&mut self, m: &mut M, pid: u64, signal: u64) -> SysResult {
        let _ = m;
        let signal = Self::signal_arg(signal)?;
        match int_arg(pid) {
            -1..=1 => {
                self.raise(signal)?;
                Ok(0)
            }
            _ => Err(Errno::ESRCH.into()),
        }
    }

    pub(crate) fn sys_tgkill<M: Machine>(&mut self, m: &mut M, tgid: u64, tid: u64, signal: u64) -> SysResult {
        let _ = m;
        let (tgid, tid) = (int_arg(tgid), int_arg(tid));
        if tgid <= 0 || tid <= 0 {
            return Err(Errno::EINVAL.into());
        }
        let signal = Self::signal_arg(signal)?;
        if tgid != 1 || tid != 1 {
            return Err(Errno::ESRCH.into());
        }
        self.raise(signal)?;
        Ok(0)
    }

    pub(crate) fn sys_rt_sigaction<M: Machine>(
        &mut self,
        m: &mut M,
        signal: u64,
        act: u64,
        old: u64,
        sigsetsize: u64,
    ) -> SysResult {
        let signal = int_arg(signal);
        if sigsetsize != 8 || !(1..=NSIG).contains(&signal) {
            return Err(Errno::EINVAL.into());
        }
        let new = if act != 0 {
            if bit(signal) & UNBLOCKABLE != 0 {
                return Err(Errno::EINVAL.into());
            }
            Some(user::read_array::<M, SIGACTION_SIZE>(&self.vmas, m, act)?)
        } else {
            None
        };
        if old != 0 {
            let current = self.signals.action(signal);
            user::write(&self.vmas, m, old, &current)?;
        }
        if let Some(new) = new {
            self.signals.set_action(signal, new);
            if self.signals.handler(signal) == SIG_IGN {
                self.signals.pending &= !bit(signal);
            }
        }
        Ok(0)
    }

    pub(crate) fn sys_rt_sigprocmask<M: Machine>(
        &mut self,
        m: &mut M,
        how: u64,
        set: u64,
        old: u64,
        sigsetsize: u64,
    ) -> SysResult {
        if sigsetsize != 8 {
            return Err(Errno::EINVAL.into());
        }
        let new = if set != 0 {
            let value = user::read_u64(&self.vmas, m, set)?;
            Some(match how {
                SIG_BLOCK => self.signals.mask | value,
                SIG_UNBLOCK => self.signals.mask & !value,
                SIG_SETMASK => value,
                _ => return Err(Errno::EINVAL.into()),
            })
        } else {
            None
        };
        if old != 0 {
            user::write_u64(&self.vmas, m, old, self.signals.mask)?;
        }
        if let Some(mask) = new {
            self.signals.mask = mask & !UNBLOCKABLE;
            self.deliver_unblocked()?;
        }
        Ok(0)
    }

    pub(crate) fn sys_sigaltstack<M: Machine>(&mut self, m: &mut M, new: u64, old: u64) -> SysResult {
        let parsed = if new != 0 {
            let raw = user::read_array::<M, 24>(&self.vmas, m, new)?;
            let sp = u64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
            let flags = u32::from_le_bytes(raw[8..12].try_into().unwrap_or_default());
            let size = u64::from_le_bytes(raw[16..].try_into().unwrap_or_default());
            if flags & !(SS_DISABLE | SS_AUTODISARM | SS_ONSTACK) != 0 {
                return Err(Errno::EINVAL.into());
            }
            if flags & SS_DISABLE == 0 && size < MINSIGSTKSZ {
                return Err(Errno::ENOMEM.into());
            }
            Some(if flags & SS_DISABLE != 0 { (0, SS_DISABLE, 0) } else { (sp, flags & SS_AUTODISARM, size) })
        } else {
            None
        };
        if old != 0 {
            let (sp, flags, size) = self.signals.altstack;
            let mut raw = [0u8; 24];
            raw[..8].copy_from_slice(&sp.to_le_bytes());
            raw[8..12].copy_from_slice(&flags.to_le_bytes());
            raw[16..].copy_from_slice(&size.to_le_bytes());
            user::write(&self.vmas, m, old, &raw)?;
        }
        if let Some(stack) = parsed {
            self.signals.altstack = stack;
        }
        Ok(0)
    }
}
