//! A thread: what each thread of the process has of its own. The process has one thread today; every
//! per-thread state lives here so that more threads need no change to it.
#![forbid(unsafe_code)]

use crate::signal::queue::Pending;
use crate::signal::{AltStack, SigSet};

/// A blocked syscall's state, kept while it waits and across its re-executions (and `restart_syscall`):
/// a timeout given as a duration becomes one deadline, however often the call runs again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restart {
    pub nr: u64,
    pub args: [u64; 6],
    /// Monotonic nanoseconds.
    pub deadline: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Thread {
    pub tid: i32,
    pub mask: SigSet,
    /// Signals sent to this thread (tkill, tgkill, faults, SIGPIPE).
    pub pending: Pending,
    pub altstack: AltStack,
    /// The mask to put back after the next handler (rt_sigsuspend, ppoll and pselect6 wait with another).
    pub saved_mask: Option<SigSet>,
    pub restart: Option<Restart>,
    /// rt_sigreturn was called: the return to the app restores the frame at its stack pointer.
    pub sigreturn: bool,
    /// `set_tid_address`.
    pub clear_child_tid: u64,
    /// `set_robust_list`: head and length.
    pub robust_list: (u64, u64),
}

impl Thread {
    pub fn new(tid: i32) -> Self {
        Self {
            tid,
            mask: SigSet::EMPTY,
            pending: Pending::default(),
            altstack: AltStack::default(),
            saved_mask: None,
            restart: None,
            sigreturn: false,
            clear_child_tid: 0,
            robust_list: (0, 0),
        }
    }
}
