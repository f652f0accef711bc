//! A thread: what each thread of the process has of its own, and where it stands with the scheduler
//! (`crate::sched`).
#![forbid(unsafe_code)]

use alloc::boxed::Box;

use crate::machine::FpuState;
use crate::signal::frame::UserContext;
use crate::signal::queue::Pending;
use crate::signal::{AltStack, SigSet};
use crate::syscall::{SysResult, Wait};

/// A blocked syscall's state, kept while it waits and across its re-executions (and `restart_syscall`):
/// a timeout given as a duration becomes one deadline, however often the call runs again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restart {
    pub nr: u64,
    pub args: [u64; 6],
    /// Monotonic nanoseconds.
    pub deadline: Option<u64>,
}

/// Where a thread stands with the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Run {
    /// Runs, or can run (its context is in [`Thread::saved`] while another thread runs).
    Ready,
    /// Waits in the syscall its [`Thread::restart`] names.
    Blocked(Wait),
    /// Its blocked syscall ended with this outcome while it waited; the call completes (result, restart,
    /// trace line) when the thread runs next.
    Woken(SysResult),
    /// Made by clone and not yet started: it starts from its parent's context at the return from clone,
    /// with RAX 0, this stack pointer (0: the parent's) and this FS base (None: the parent's).
    Spawned { stack: u64, tls: Option<u64> },
    /// Exited; gone at the next switch.
    Exited,
}

/// What the hardware holds of a thread while it runs, kept here while it does not (saved and loaded in
/// place: where kernel code is emulated, each copy of it costs real time).
#[derive(Clone, Debug, Default)]
pub(crate) struct Saved {
    pub ctx: UserContext,
    pub fs_base: u64,
    pub fpu: FpuState,
}

#[derive(Clone, Debug)]
pub struct Thread {
    pub tid: i32,
    /// The process it belongs to (`crate::processes`).
    pub pid: i32,
    pub mask: SigSet,
    /// Signals sent to this thread (tkill, tgkill, faults, SIGPIPE).
    pub pending: Pending,
    pub altstack: AltStack,
    /// The mask to put back after the next handler (rt_sigsuspend, ppoll and pselect6 wait with another).
    pub saved_mask: Option<SigSet>,
    pub restart: Option<Restart>,
    /// rt_sigreturn was called: the return to the app restores the frame at its stack pointer.
    pub sigreturn: bool,
    /// execve started a program: the return to the app starts it here, `(entry, stack pointer)`, with
    /// every other register zero and a fresh FPU.
    pub exec_start: Option<(u64, u64)>,
    /// `set_tid_address` (and CLONE_CHILD_CLEARTID): cleared and woken when the thread exits.
    pub clear_child_tid: u64,
    /// `set_robust_list`: head and length.
    pub robust_list: (u64, u64),
    pub(crate) run: Run,
    pub(crate) saved: Option<Box<Saved>>,
}

impl Thread {
    pub fn new(tid: i32) -> Self {
        Self {
            tid,
            pid: crate::processes::FIRST_PID,
            mask: SigSet::EMPTY,
            pending: Pending::default(),
            altstack: AltStack::default(),
            saved_mask: None,
            restart: None,
            sigreturn: false,
            exec_start: None,
            clear_child_tid: 0,
            robust_list: (0, 0),
            run: Run::Ready,
            saved: None,
        }
    }

    /// Whether the scheduler may run it now.
    pub(crate) fn runnable(&self) -> bool {
        matches!(self.run, Run::Ready | Run::Woken(_))
    }

    /// The wait it is blocked in.
    pub(crate) fn wait(&self) -> Option<&Wait> {
        match &self.run {
            Run::Blocked(wait) => Some(wait),
            _ => None,
        }
    }
}
