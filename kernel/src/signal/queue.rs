//! Pending signals, with Linux's queueing rules: a standard signal (1-31) is pending at most once
//! (another of it while pending is merged away); real-time signals (32-64) queue every instance, in
//! arrival order, up to a limit. Delivery takes synchronous signals first, then the lowest number.

use alloc::collections::VecDeque;

use super::info::SigInfo;
use super::{SigSet, SIGRTMIN};

/// Most queued signals per queue (Linux's RLIMIT_SIGPENDING default is in the thousands).
pub const MAX_QUEUED: usize = 1024;

/// One queue of pending signals (a thread's, or the process's).
#[derive(Clone, Debug, Default)]
pub struct Pending {
    set: SigSet,
    infos: VecDeque<SigInfo>,
}

/// Why a signal was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The queue is full (real-time signals only; sigqueue returns EAGAIN).
    Full,
}

impl Pending {
    pub fn set(&self) -> SigSet {
        self.set
    }

    /// Queues `info`. A standard signal already pending is merged: `Ok(false)`.
    pub fn push(&mut self, info: SigInfo) -> Result<bool, QueueError> {
        let signal = info.signo();
        if signal < SIGRTMIN && self.set.contains(signal) {
            return Ok(false);
        }
        if self.infos.len() >= MAX_QUEUED {
            return Err(QueueError::Full);
        }
        self.infos.try_reserve(1).map_err(|_| QueueError::Full)?;
        self.infos.push_back(info);
        self.set.insert(signal);
        Ok(true)
    }

    /// Takes the oldest instance of `signal`.
    pub fn take(&mut self, signal: u32) -> Option<SigInfo> {
        let index = self.infos.iter().position(|info| info.signo() == signal)?;
        let info = self.infos.remove(index)?;
        if !self.infos.iter().any(|info| info.signo() == signal) {
            self.set.remove(signal);
        }
        Some(info)
    }

    /// The queued instance of `signal` that `matches` accepts (a timer's, whose overrun is updated).
    pub fn find_timer_signal(&mut self, signal: u32, matches: impl Fn(&SigInfo) -> bool) -> Option<&mut SigInfo> {
        self.infos.iter_mut().find(|info| info.signo() == signal && matches(info))
    }

    /// Drops every instance of `signal` (its disposition became "ignore").
    pub fn discard(&mut self, signal: u32) {
        self.remove_where(signal, |_| true);
    }

    /// Drops the instances of `signal` that `matches` accepts (a deleted timer's).
    pub fn remove_where(&mut self, signal: u32, matches: impl Fn(&SigInfo) -> bool) {
        self.infos.retain(|info| info.signo() != signal || !matches(info));
        if !self.infos.iter().any(|info| info.signo() == signal) {
            self.set.remove(signal);
        }
    }

    /// The signal to deliver next among those not in `blocked`.
    pub fn next(&self, blocked: SigSet) -> Option<u32> {
        self.set.minus(blocked).first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::info::{SigInfo, SI_QUEUE, SI_USER};
    use crate::signal::{SIGSEGV, SIGUSR1};

    fn queued(signal: u32, value: u8) -> SigInfo {
        let mut raw = [0u8; 128];
        raw[8..12].copy_from_slice(&(SI_QUEUE as u32).to_le_bytes());
        raw[24] = value;
        SigInfo::from_user(signal, raw)
    }

    #[test]
    fn standard_signals_merge_and_realtime_signals_queue_in_order() {
        let mut pending = Pending::default();
        assert_eq!(pending.push(SigInfo::sent(SIGUSR1, SI_USER as i32, 1)), Ok(true));
        assert_eq!(pending.push(SigInfo::sent(SIGUSR1, SI_USER as i32, 1)), Ok(false));
        for value in [1, 2, 3] {
            assert_eq!(pending.push(queued(SIGRTMIN + 1, value)), Ok(true));
        }
        pending.push(queued(SIGRTMIN, 9)).unwrap();
        assert_eq!(pending.next(SigSet::EMPTY), Some(SIGUSR1));
        assert!(pending.take(SIGUSR1).is_some());
        assert_eq!(pending.take(SIGUSR1), None);
        assert_eq!(pending.next(SigSet::EMPTY), Some(SIGRTMIN), "lowest number first");
        pending.take(SIGRTMIN);
        let order: alloc::vec::Vec<u8> =
            core::iter::from_fn(|| pending.take(SIGRTMIN + 1)).map(|info| info.bytes()[24]).collect();
        assert_eq!(order, [1, 2, 3], "same signal: arrival order");
        assert!(pending.set().is_empty());
    }

    #[test]
    fn blocked_signals_wait_and_faults_go_first() {
        let mut pending = Pending::default();
        pending.push(SigInfo::sent(SIGUSR1, SI_USER as i32, 1)).unwrap();
        pending.push(SigInfo::kernel(SIGSEGV)).unwrap();
        assert_eq!(pending.next(SigSet::EMPTY), Some(SIGSEGV));
        assert_eq!(pending.next(SigSet::of(SIGSEGV)), Some(SIGUSR1));
        assert_eq!(pending.next(SigSet::of(SIGSEGV).union(SigSet::of(SIGUSR1))), None);
        pending.discard(SIGUSR1);
        assert_eq!(pending.next(SigSet::EMPTY), Some(SIGSEGV));
    }

    #[test]
    fn remove_where_drops_only_the_matching_instances() {
        let mut pending = Pending::default();
        for value in [1, 2, 1] {
            pending.push(queued(SIGRTMIN, value)).unwrap();
        }
        pending.remove_where(SIGRTMIN, |info| info.bytes()[24] == 1);
        assert_eq!(pending.take(SIGRTMIN).map(|info| info.bytes()[24]), Some(2));
        assert!(pending.set().is_empty());
        pending.push(queued(SIGRTMIN, 1)).unwrap();
        pending.remove_where(SIGRTMIN, |info| info.bytes()[24] == 2);
        assert!(pending.set().contains(SIGRTMIN), "a non-matching instance stays pending");
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut pending = Pending::default();
        for _ in 0..MAX_QUEUED {
            pending.push(queued(SIGRTMIN, 0)).unwrap();
        }
        assert_eq!(pending.push(queued(SIGRTMIN, 0)), Err(QueueError::Full));
    }
}
