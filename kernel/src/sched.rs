//! The scheduler: the process's threads on one vCPU.
//!
//! The kernel never sleeps inside a syscall. A syscall that must wait parks its thread
//! (`Run::Blocked`, its number and arguments in the thread's restart block) and the kernel returns to
//! another thread; a parked call ends when its wait does: a futex wake hands it its result, a deadline or
//! a signal ends it as the call's wait says, and a wait on a pipe or poll runs the call again after other
//! threads' syscalls (the call finds out whether it can go on). So every kernel entry runs to its end on
//! the one kernel stack, with interrupts off, before any other thread runs: no thread ever has kernel state
//! another could see or race, and a syscall reads each app buffer once, in the same entry that validates it.
//!
//! Switches happen on the way back to the app ([`Process::return_to_app`], with the whole context):
//! when the running thread blocks or exits, yields, sends work to another thread (a signal, a wake), or
//! its time slice ends at a timer interrupt while another thread can run. The next thread is the first
//! runnable one after the running one, round robin. When no thread can run, the kernel idles until the
//! earliest deadline or timer; when nothing at all can end any wait, the run ends with a deadlock report
//! naming every thread's wait.
//!
//! More vCPUs (docs/design.md, "Threads") would need a run queue per vCPU, a lock around the process
//! state, and per-vCPU kernel stacks and scratch pages; this module's interface (park, wake, pick, switch)
//! stays.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt::Write;

use crate::errno::Errno;
use crate::machine::Machine;
use crate::process::Process;
use crate::signal::deliver::Resume;
use crate::signal::frame::UserContext;
use crate::signal::SigSet;
use crate::syscall::{time, Stop, SysResult, SyscallResult, Wait, Waker};
use crate::thread::{Restart, Run, Thread};
use crate::user;

/// How long a thread runs while another could before the timer interrupt switches (Linux's CFS gives
/// a few milliseconds; a switch here costs an emulated kernel entry on some hosts, so a little more).
pub const TIME_SLICE_NS: u64 = 10_000_000;

/// Most threads a process may have (Linux's default `threads-max` is far larger; a unikernel runs one
/// program).
pub const MAX_THREADS: usize = 1024;

/// The scheduler's part of the process state.
#[derive(Clone, Debug, Default)]
pub struct Scheduler {
    /// The return to the app must run [`Process::schedule`] (a thread blocked, exited, yielded or was
    /// made; another got a signal or a wake).
    pub(crate) resched: bool,
    /// The thread to switch to, when [`Process::block`] has already picked it.
    pub(crate) switch_to: Option<usize>,
    /// When the running thread's time slice ends (monotonic ns).
    pub(crate) slice_end: u64,
    /// The running thread yielded (sched_yield): the next runnable thread runs now.
    pub(crate) yielded: bool,
    /// The tid the next thread gets.
    pub(crate) next_tid: i32,
    /// The exit status of the first thread (the thread group leader), once it has exited: the process's
    /// status when its last thread exits, as on Linux.
    pub(crate) leader_status: Option<i32>,
}

impl Process {
    /// The index of the running process's thread `tid`.
    pub(crate) fn thread_index(&self, tid: i32) -> Option<usize> {
        self.threads.iter().position(|thread| thread.tid == tid && thread.pid == self.pid && thread.run != Run::Exited)
    }

    /// The running process's threads that have not exited.
    pub(crate) fn live_threads(&self) -> usize {
        self.threads.iter().filter(|thread| thread.pid == self.pid && thread.run != Run::Exited).count()
    }

    /// Makes thread `i` the current one, and its process the running one (see `crate::processes`).
    fn enter_thread<M: Machine>(&mut self, m: &mut M, i: usize) {
        self.current = i;
        let pid = self.threads[i].pid;
        if pid != self.pid {
            self.switch_process(m, pid);
        }
    }

    /// Whether a thread other than the running one can run.
    pub(crate) fn others_runnable(&self) -> bool {
        self.threads.iter().enumerate().any(|(i, thread)| i != self.current && thread.runnable())
    }

    /// The earliest deadline of a blocked thread.
    fn earliest_wait_deadline(&self) -> Option<u64> {
        self.threads.iter().filter_map(|thread| thread.wait().and_then(|wait| wait.deadline)).min()
    }

    /// When the timer interrupt must come for the scheduler: the end of the slice while another thread
    /// can run, and the earliest deadline of a blocked thread.
    pub(crate) fn sched_deadline(&self) -> Option<u64> {
        if self.threads.len() < 2 {
            return None;
        }
        let slice = self.others_runnable().then_some(self.sched.slice_end);
        match (slice, self.earliest_wait_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The first runnable thread after the running one, round robin (the running one last).
    fn next_runnable(&self) -> Option<usize> {
        let n = self.threads.len();
        (1..=n).map(|k| (self.current + k) % n).find(|&i| self.threads[i].runnable())
    }

    /// The timer interrupt came at `now`: a switch is due when the slice is over and another thread can
    /// run, or when a blocked thread's deadline has passed or a signal may end its wait.
    pub(crate) fn sched_tick(&mut self, now: u64) {
        if self.threads.len() < 2 {
            return;
        }
        let slice_over = now >= self.sched.slice_end && self.others_runnable();
        let deadline_passed = self.earliest_wait_deadline().is_some_and(|deadline| now >= deadline);
        let signal_waiting = !self.pending.set().is_empty() && self.threads.iter().any(|t| t.wait().is_some());
        if slice_over || deadline_passed || signal_waiting {
            self.sched.resched = true;
        }
    }

    /// A thread other than the running one has new work (a signal, a wake): the return to the app looks.
    pub(crate) fn poke(&mut self) {
        if self.threads.len() > 1 {
            self.sched.resched = true;
        }
    }

    /// Parks the running thread in `wait` (its syscall `nr` with `args`) and picks the thread to run.
    /// Some: this thread's wait ended before another could run, with this outcome; None: another thread
    /// runs next (the return to the app switches to it).
    pub(crate) fn block<M: Machine>(&mut self, m: &mut M, nr: u64, args: &[u64; 6], wait: Wait) -> Option<SysResult> {
        let thread = self.thread_mut();
        thread.restart = Some(Restart { nr, args: *args, deadline: wait.deadline });
        thread.run = Run::Blocked(wait);
        let next = match self.pick_next(m) {
            Ok(next) => next,
            Err(stop) => return Some(Err(stop)),
        };
        if next == self.current {
            return Some(self.take_outcome());
        }
        self.sched.switch_to = Some(next);
        self.sched.resched = true;
        None
    }

    /// The running thread's outcome, now that it is woken (it runs again).
    fn take_outcome(&mut self) -> SysResult {
        match core::mem::replace(&mut self.thread_mut().run, Run::Ready) {
            Run::Woken(outcome) => outcome,
            _ => Err(Stop::Errno(Errno::EINTR)), // not reached: only a woken thread is runnable with a call
        }
    }

    /// The thread to run next, round robin after the running one (which comes last): ends the waits that
    /// can end, and idles until a deadline or timer when no thread can run. Err: nothing can ever run
    /// again (a deadlock, reported).
    pub(crate) fn pick_next<M: Machine>(&mut self, m: &mut M) -> Result<usize, Stop> {
        loop {
            let now = m.monotonic_ns();
            self.expire_timers(now);
            self.end_waits(m, now);
            if let Some(next) = self.next_runnable() {
                return Ok(next);
            }
            let timer = self.timers.next_deadline(now, self.cpu_ns(now), false);
            let until = match (self.earliest_wait_deadline(), timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(until) => until,
                    None => return Err(self.deadlock(m)),
                },
            };
            m.idle_until(until);
            self.idle_ns = self.idle_ns.saturating_add(m.monotonic_ns().saturating_sub(now));
        }
    }

    /// Ends every wait that can end at `now`: signals the thread takes (each process-directed signal
    /// ends one thread's wait), deadlines, and calls on pipes and poll that can now go on.
    fn end_waits<M: Machine>(&mut self, m: &mut M, now: u64) {
        let (running, running_pid) = (self.current, self.pid);
        let mut claimed = SigSet::EMPTY;
        for i in 0..self.threads.len() {
            let Some(&wait) = self.threads[i].wait() else { continue };
            if self.threads[i].pid != self.pid {
                claimed = SigSet::EMPTY; // process-directed signals are claimed per process
            }
            self.enter_thread(m, i);
            let ready = self.pending_signals().minus(claimed);
            let outcome = if ready.0 & wait.wake_on.0 != 0 {
                Some(self.rerun_with(m))
            } else if self.signal_interrupts_except(claimed) {
                claimed = claimed.union(self.pending.set().minus(self.thread().mask));
                if let (Some(rem), Some(deadline)) = (wait.remaining_to, wait.deadline) {
                    // Best effort, as on Linux: a bad `rem` does not change the result.
                    let _ = user::write(&self.vmas, m, rem, &time::timespec(deadline.saturating_sub(now)));
                }
                Some(Err(Stop::Errno(wait.interrupted)))
            } else if wait.deadline.is_some_and(|deadline| now >= deadline) {
                match wait.waker {
                    Waker::Futex { .. } | Waker::FutexPi { .. } => Some(Err(Stop::Errno(Errno::ETIMEDOUT))),
                    Waker::Nothing | Waker::Io | Waker::Child => Some(self.rerun_with(m)),
                }
            } else if wait.waker == Waker::Io {
                Some(self.rerun_with(m))
            } else {
                None
            };
            if let Some(outcome) = outcome {
                self.threads[i].run = match outcome {
                    Err(Stop::Block(again)) => Run::Blocked(again),
                    done => Run::Woken(done),
                };
            }
        }
        self.switch_process(m, running_pid);
        self.current = running;
    }

    /// Runs the blocked call of the thread at `self.current` again.
    fn rerun_with<M: Machine>(&mut self, m: &mut M) -> SysResult {
        match self.thread().restart {
            Some(restart) => self.dispatch(m, restart.nr, &restart.args),
            None => Err(Stop::Errno(Errno::EINTR)),
        }
    }

    /// After a syscall of the running thread: the other threads' pipe and poll waits run again, and a
    /// switch is due if one of them can go on.
    pub(crate) fn recheck_io_waits<M: Machine>(&mut self, m: &mut M) {
        let (running, running_pid) = (self.current, self.pid);
        for i in 0..self.threads.len() {
            if i == running || !matches!(self.threads[i].wait(), Some(wait) if wait.waker == Waker::Io) {
                continue;
            }
            self.enter_thread(m, i);
            let outcome = self.rerun_with(m);
            if !matches!(outcome, Err(Stop::Block(_))) {
                self.threads[i].run = Run::Woken(outcome);
                self.sched.resched = true;
            }
        }
        self.switch_process(m, running_pid);
        self.current = running;
    }

    /// Whether another thread waits on a pipe or poll (the running thread's syscalls may end that wait).
    pub(crate) fn io_waiters(&self) -> bool {
        self.threads.len() > 1 && self.threads.iter().any(|t| matches!(t.wait(), Some(w) if w.waker == Waker::Io))
    }

    /// Wakes up to `count` threads waiting on the futex at `addr` with a bitset that meets `bitset`
    /// (FUTEX_WAKE and its kin); returns how many.
    pub(crate) fn futex_wake(&mut self, addr: u64, bitset: u32, count: u32) -> u32 {
        let mut woken = 0;
        let n = self.threads.len();
        for i in (1..=n).map(|k| (self.current + k) % n) {
            if woken >= count {
                break;
            }
            let pid = self.pid;
            let thread = &mut self.threads[i];
            // Futex words are private to their process's address space.
            if thread.pid == pid
                && matches!(thread.wait(), Some(Wait { waker: Waker::Futex { addr: a, bitset: b }, .. }) if *a == addr && b & bitset != 0)
            {
                thread.run = Run::Woken(Ok(0));
                woken += 1;
            }
        }
        if woken > 0 {
            self.poke();
        }
        woken
    }

    /// Moves up to `count` waiters of the futex at `from` to the futex at `to` (FUTEX_REQUEUE).
    pub(crate) fn futex_requeue(&mut self, from: u64, to: u64, count: u32) -> u32 {
        let mut moved = 0;
        let pid = self.pid;
        for thread in self.threads.iter_mut().filter(|thread| thread.pid == pid) {
            if moved >= count {
                break;
            }
            if let Run::Blocked(wait) = &mut thread.run {
                if let Waker::Futex { addr, .. } = &mut wait.waker {
                    if *addr == from {
                        *addr = to;
                        moved += 1;
                    }
                }
            }
        }
        moved
    }

    /// The threads waiting for the PI futex at `addr`, in the order they came (their index and tid).
    pub(crate) fn pi_waiters(&self, addr: u64) -> impl Iterator<Item = (usize, i32)> + '_ {
        let pid = self.pid;
        self.threads.iter().enumerate().filter_map(move |(i, thread)| match thread.wait() {
            Some(Wait { waker: Waker::FutexPi { addr: a }, .. }) if *a == addr && thread.pid == pid => {
                Some((i, thread.tid))
            }
            _ => None,
        })
    }

    /// A new thread, started from the running thread's context when clone returns (see [`Run::Spawned`]).
    pub(crate) fn spawn(&mut self, stack: u64, tls: Option<u64>) -> Result<i32, Errno> {
        if self.live_threads() >= MAX_THREADS {
            return Err(Errno::EAGAIN);
        }
        let tid = self.new_tid()?;
        let parent = self.thread();
        let mut thread = Thread::new(tid);
        thread.pid = self.pid;
        thread.mask = parent.mask;
        thread.run = Run::Spawned { stack, tls };
        self.threads.push(thread);
        self.sched.resched = true;
        Ok(tid)
    }

    /// The running thread ends (`exit`), as `status`; the last thread's exit ends the process. Clears
    /// and wakes its `clear_child_tid` word and releases its robust futexes, as Linux does.
    pub(crate) fn exit_thread<M: Machine>(&mut self, m: &mut M, status: i32) -> SysResult {
        self.release_robust_futexes(m);
        let tid_word = self.thread().clear_child_tid;
        if tid_word != 0 && user::write(&self.vmas, m, tid_word, &0u32.to_le_bytes()).is_ok() {
            self.futex_wake(tid_word, u32::MAX, 1);
        }
        if self.thread().tid == self.pid {
            self.sched.leader_status = Some(status);
        }
        if self.live_threads() == 1 {
            return Err(Stop::Exit(self.sched.leader_status.unwrap_or(status)));
        }
        self.thread_mut().run = Run::Exited;
        let next = self.pick_next(m)?;
        self.sched.switch_to = Some(next);
        self.sched.resched = true;
        Ok(0)
    }

    /// The return to the app's scheduling work, with the running thread's whole context `ctx`: starts
    /// threads clone made, switches to the next thread if one is due (saving this one's context, loading
    /// the other's), and completes the next thread's blocked syscall if its wait ended (`syscall` then
    /// names it, for the signal code's restart handling). Err: the process ends.
    pub(crate) fn schedule<M: Machine>(
        &mut self,
        m: &mut M,
        ctx: &mut UserContext,
        syscall: &mut Option<u64>,
    ) -> Result<(), Resume> {
        self.sched.resched = false;
        self.start_spawned(m, ctx);
        let next = match self.sched.switch_to.take() {
            Some(next) => next,
            None if self.thread().run == Run::Ready => {
                // The running thread could go on: it does, unless it yielded or its slice is over and
                // another can run (whose waits end here first).
                let now = m.monotonic_ns();
                self.expire_timers(now);
                self.end_waits(m, now);
                let yielded = core::mem::take(&mut self.sched.yielded);
                // The waits that could end have ended (above): no second pass through `pick_next`.
                match self.next_runnable() {
                    Some(next) if yielded || now >= self.sched.slice_end => next,
                    _ => self.current,
                }
            }
            None => self.pick_next(m).map_err(resume_for)?,
        };
        if next != self.current {
            let running = self.current;
            let thread = &mut self.threads[running];
            if thread.run != Run::Exited {
                let saved = thread.saved.get_or_insert_with(Box::default);
                saved.ctx = *ctx;
                saved.fs_base = m.fs_base();
                m.save_fpu(&mut saved.fpu);
            }
            self.enter_thread(m, next);
            if let Some(saved) = &self.threads[next].saved {
                *ctx = saved.ctx;
                m.set_fs_base(saved.fs_base);
                m.restore_fpu(&saved.fpu);
            }
            *syscall = None;
            self.sched.slice_end = m.monotonic_ns().saturating_add(TIME_SLICE_NS);
            self.remove_exited();
        }
        if matches!(self.thread().run, Run::Woken(_)) {
            let outcome = self.take_outcome();
            let Some(restart) = self.thread().restart else { return Ok(()) };
            match self.complete_syscall(m, restart.nr, &restart.args, outcome) {
                SyscallResult::Return(value) => {
                    ctx.rax = value as u64;
                    *syscall = Some(restart.nr);
                }
                SyscallResult::Exit(status) => return Err(Resume::Exit(status)),
                SyscallResult::Killed(signal) => return Err(Resume::Killed { signal: signal as u32, core: false }),
            }
        }
        Ok(())
    }

    /// Gives threads clone made their start context: the parent's, returning 0, on their own stack and TLS.
    fn start_spawned<M: Machine>(&mut self, m: &mut M, ctx: &UserContext) {
        if !self.threads.iter().any(|thread| matches!(thread.run, Run::Spawned { .. })) {
            return;
        }
        let fs_base = m.fs_base();
        let now = m.monotonic_ns();
        if self.sched.slice_end < now {
            // The parent's slice starts now: it goes on first, as on Linux.
            self.sched.slice_end = now.saturating_add(TIME_SLICE_NS);
        }
        for thread in &mut self.threads {
            let Run::Spawned { stack, tls } = thread.run else { continue };
            let saved = thread.saved.get_or_insert_with(Box::default);
            saved.ctx = UserContext { rax: 0, rsp: if stack == 0 { ctx.rsp } else { stack }, ..*ctx };
            saved.fs_base = tls.unwrap_or(fs_base);
            m.save_fpu(&mut saved.fpu);
            thread.run = Run::Ready;
        }
    }

    /// Drops exited threads (none is the running one), keeping `current` on the running thread.
    fn remove_exited(&mut self) {
        if !self.threads.iter().any(|thread| thread.run == Run::Exited) {
            return;
        }
        let running = self.threads[self.current].tid;
        self.threads.retain(|thread| thread.run != Run::Exited);
        self.current = self.threads.iter().position(|thread| thread.tid == running).unwrap_or(0);
    }

    /// Reports that no thread can ever run again and kills the app (see `crate::syscall`'s module docs).
    pub(crate) fn deadlock<M: Machine>(&mut self, m: &mut M) -> Stop {
        let mut line = String::from("secure-run kernel: deadlock: ");
        let waiting: alloc::vec::Vec<(i32, &str)> =
            self.threads.iter().filter_map(|t| t.wait().map(|wait| (t.tid, wait.what))).collect();
        match waiting.as_slice() {
            [(_, what)] if self.threads.len() == 1 => {
                let _ = write!(line, "{what} would block forever (one thread, no timer armed)");
            }
            _ => {
                line.push_str("every thread waits and nothing can wake one (");
                for (k, (tid, what)) in waiting.iter().enumerate() {
                    let _ = write!(line, "{}tid {tid}: {what}", if k == 0 { "" } else { "; " });
                }
                line.push_str(", no timer armed)");
            }
        }
        line.push_str("; killing the app with SIGKILL\n");
        m.console(kernel_abi::Stream::Log, line.as_bytes());
        Stop::Killed(kernel_abi::signal::SIGKILL)
    }
}

/// How the process ends when the scheduler stops.
pub(crate) fn resume_for(stop: Stop) -> Resume {
    match stop {
        Stop::Exit(status) => Resume::Exit(status),
        Stop::Killed(signal) => Resume::Killed { signal: signal as u32, core: false },
        Stop::Errno(_) | Stop::Block(_) => Resume::Killed { signal: kernel_abi::signal::SIGKILL as u32, core: false },
    }
}
