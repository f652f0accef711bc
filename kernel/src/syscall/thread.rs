//! Threads: clone and clone3 (threads; forks go to `crate::processes`), exit, gettid, set_tid_address, the robust list, sched_yield,
//! affinity, and futex. Threads are scheduled by `crate::sched`; the kernel is never preempted, so each
//! futex operation's read-compare-write of the app's word is atomic with respect to every thread.

use super::{int_arg, nr, Stop, SysResult, Wait, Waker};
use crate::errno::Errno;
use crate::machine::Machine;
use crate::process::Process;
use crate::user;

pub use linux_raw_sys::general::{
    CLONE_ARGS_SIZE_VER0, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID, CLONE_DETACHED, CLONE_FILES, CLONE_FS,
    CLONE_PARENT_SETTID, CLONE_SETTLS, CLONE_SIGHAND, CLONE_SYSVSEM, CLONE_THREAD, CLONE_VFORK, CLONE_VM, CSIGNAL,
    FUTEX_BITSET_MATCH_ANY, FUTEX_CLOCK_REALTIME, FUTEX_CMP_REQUEUE, FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_OP_ADD,
    FUTEX_OP_ANDN, FUTEX_OP_CMP_EQ, FUTEX_OP_CMP_GE, FUTEX_OP_CMP_GT, FUTEX_OP_CMP_LE, FUTEX_OP_CMP_LT,
    FUTEX_OP_CMP_NE, FUTEX_OP_OPARG_SHIFT, FUTEX_OP_OR, FUTEX_OP_SET, FUTEX_OP_XOR, FUTEX_OWNER_DIED,
    FUTEX_PRIVATE_FLAG, FUTEX_REQUEUE, FUTEX_TID_MASK, FUTEX_TRYLOCK_PI, FUTEX_UNLOCK_PI, FUTEX_WAIT, FUTEX_WAITERS,
    FUTEX_WAIT_BITSET, FUTEX_WAKE, FUTEX_WAKE_BITSET, FUTEX_WAKE_OP, ROBUST_LIST_LIMIT,
};

/// The flags a thread needs (glibc, musl, Rust std and Go all pass them).
const THREAD_FLAGS: u64 = (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD) as u64;
/// The flags a thread may add.
const THREAD_OPTIONS: u64 =
    (CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | CLONE_DETACHED)
        as u64;
/// The flags a fork may add (besides its exit signal).
const FORK_OPTIONS: u64 = (CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_VFORK
    | CLONE_SYSVSEM
    | CLONE_DETACHED) as u64;
/// `struct robust_list_head`: `list.next`, `futex_offset`, `list_op_pending`.
const ROBUST_LIST_HEAD_SIZE: u64 = 24;

/// What clone and clone3 ask for.
struct CloneArgs {
    flags: u64,
    /// The child's stack pointer (0: the parent's).
    stack: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
}

impl CloneArgs {
    /// The FS base the child starts with (CLONE_SETTLS), if one was asked for; EPERM for a non-canonical
    /// one (it would fault at the switch), EINVAL for a stack pointer outside the lower half.
    fn checked_tls_and_stack(&self) -> Result<Option<u64>, Errno> {
        let tls = if self.flags & u64::from(CLONE_SETTLS) != 0 {
            if self.tls >= isolation::paging::LOWER_HALF_END {
                return Err(Errno::EPERM);
            }
            Some(self.tls)
        } else {
            None
        };
        if self.stack >= isolation::paging::LOWER_HALF_END {
            return Err(Errno::EINVAL);
        }
        Ok(tls)
    }
}

impl Process {
    /// clone(flags, stack, parent_tid, child_tid, tls): the x86-64 argument order.
    pub(crate) fn sys_clone<M: Machine>(&mut self, m: &mut M, a: &[u64; 6]) -> SysResult {
        let args = CloneArgs { flags: a[0], stack: a[1], parent_tid: a[2], child_tid: a[3], tls: a[4] };
        self.clone_thread(m, args)
    }

    /// clone3(args, size): `struct clone_args`, of at least its first version's 64 bytes; a larger
    /// struct from a newer libc is accepted when what this kernel does not know of it is zero.
    pub(crate) fn sys_clone3<M: Machine>(&mut self, m: &mut M, addr: u64, size: u64) -> SysResult {
        const KNOWN: usize = 88; // up to set_tid_size (version 1); cgroup (version 2) must be zero
        if size < u64::from(CLONE_ARGS_SIZE_VER0) {
            return Err(Errno::EINVAL.into());
        }
        if size > 4096 {
            return Err(Errno::E2BIG.into());
        }
        let mut raw = alloc::vec![0u8; size as usize];
        user::read(&self.vmas, m, addr, &mut raw)?;
        if raw.get(KNOWN..).is_some_and(|rest| rest.iter().any(|&b| b != 0)) {
            return Err(Errno::E2BIG.into());
        }
        let field =
            |i: usize| raw.get(i * 8..i * 8 + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
        let (flags, pidfd, child_tid, parent_tid, exit_signal) = (field(0), field(1), field(2), field(3), field(4));
        let (stack, stack_size, tls, set_tid, set_tid_size) = (field(5), field(6), field(7), field(8), field(9));
        let _ = pidfd; // only with CLONE_PIDFD, which is refused below
        if exit_signal & !u64::from(CSIGNAL) != 0 || set_tid != 0 || set_tid_size != 0 {
            return Err(Errno::EINVAL.into());
        }
        if (stack == 0) != (stack_size == 0) {
            return Err(Errno::EINVAL.into());
        }
        let top = if stack == 0 { 0 } else { stack.checked_add(stack_size).ok_or(Errno::EINVAL)? };
        self.clone_thread(m, CloneArgs { flags: flags | exit_signal, stack: top, parent_tid, child_tid, tls })
    }

    fn clone_thread<M: Machine>(&mut self, m: &mut M, args: CloneArgs) -> SysResult {
        let flags = args.flags & !u64::from(CSIGNAL);
        if flags & THREAD_FLAGS != THREAD_FLAGS {
            // Linux's own consistency rules first, then what a unikernel of one process cannot do.
            let has = |flag: u32| flags & u64::from(flag) != 0;
            if (has(CLONE_THREAD) && !has(CLONE_SIGHAND)) || (has(CLONE_SIGHAND) && !has(CLONE_VM)) {
                return Err(Errno::EINVAL.into());
            }
            if has(CLONE_THREAD) || has(CLONE_SIGHAND) || (has(CLONE_VM) && !has(CLONE_VFORK)) {
                // Threads sharing memory without the rest of a thread's flags (Linux allows some).
                return Err(Errno::ENOSYS.into());
            }
            if flags & !(FORK_OPTIONS | u64::from(CLONE_VM)) != 0 {
                // CLONE_FS and CLONE_FILES between processes, namespaces, ptrace, pidfds: not here.
                return Err(Errno::EINVAL.into());
            }
            return self.fork_with(m, args);
        }
        if flags & !(THREAD_FLAGS | THREAD_OPTIONS) != 0 {
            return Err(Errno::EINVAL.into());
        }
        let has = |flag: u32| flags & u64::from(flag) != 0;
        let tls = args.checked_tls_and_stack()?;
        // Every write the call makes is checked before the thread exists: a bad pointer fails the call.
        if has(CLONE_PARENT_SETTID) {
            user::check_write(&self.vmas, args.parent_tid, 4)?;
        }
        if has(CLONE_CHILD_SETTID) {
            user::check_write(&self.vmas, args.child_tid, 4)?;
        }
        let tid = self.spawn(args.stack, tls)?;
        if has(CLONE_PARENT_SETTID) {
            user::write_i32(&self.vmas, m, args.parent_tid, tid)?;
        }
        if has(CLONE_CHILD_SETTID) {
            user::write_i32(&self.vmas, m, args.child_tid, tid)?;
        }
        if has(CLONE_CHILD_CLEARTID) {
            if let Some(child) = self.threads.last_mut() {
                child.clear_child_tid = args.child_tid;
            }
        }
        Ok(i64::from(tid))
    }

    /// A fork from clone or clone3 (see [`Process::fork`]). CLONE_VM with CLONE_VFORK (glibc's
    /// posix_spawn, vfork) gets a copy of the memory too, not the parent's own: the child runs first, and
    /// what it writes before exec stays its own.
    fn fork_with<M: Machine>(&mut self, m: &mut M, args: CloneArgs) -> SysResult {
        let flags = args.flags;
        let has = |flag: u32| flags & u64::from(flag) != 0;
        let tls = args.checked_tls_and_stack()?;
        self.fork(
            m,
            crate::processes::ForkArgs {
                exit_signal: (flags & u64::from(CSIGNAL)) as u32,
                stack: args.stack,
                parent_tid: has(CLONE_PARENT_SETTID).then_some(args.parent_tid),
                child_tid: has(CLONE_CHILD_SETTID).then_some(args.child_tid),
                clear_child_tid: has(CLONE_CHILD_CLEARTID).then_some(args.child_tid),
                tls,
                vfork: has(CLONE_VFORK),
            },
        )
    }

    /// fork() and vfork(): clone with SIGCHLD (and CLONE_VFORK).
    pub(crate) fn sys_fork<M: Machine>(&mut self, m: &mut M, vfork: bool) -> SysResult {
        let mut flags = u64::from(linux_raw_sys::general::SIGCHLD);
        if vfork {
            flags |= u64::from(CLONE_VFORK | CLONE_VM);
        }
        self.clone_thread(m, CloneArgs { flags, stack: 0, parent_tid: 0, child_tid: 0, tls: 0 })
    }

    /// exit: ends the calling thread (the process, if it is the last).
    pub(crate) fn sys_exit<M: Machine>(&mut self, m: &mut M, status: u64) -> SysResult {
        self.exit_thread(m, int_arg(status) & 0xff)
    }

    pub(crate) fn sys_gettid(&mut self) -> SysResult {
        Ok(i64::from(self.thread().tid))
    }

    pub(crate) fn sys_sched_yield(&mut self) -> SysResult {
        if self.threads.len() > 1 {
            self.sched.yielded = true;
            self.poke();
        }
        Ok(0)
    }

    pub(crate) fn sys_set_tid_address(&mut self, address: u64) -> SysResult {
        let thread = self.thread_mut();
        thread.clear_child_tid = address;
        Ok(i64::from(thread.tid))
    }

    pub(crate) fn sys_set_robust_list(&mut self, head: u64, len: u64) -> SysResult {
        if len != ROBUST_LIST_HEAD_SIZE {
            return Err(Errno::EINVAL.into());
        }
        self.thread_mut().robust_list = (head, len);
        Ok(0)
    }

    pub(crate) fn sys_get_robust_list<M: Machine>(&mut self, m: &mut M, pid: u64, head: u64, len: u64) -> SysResult {
        let index = self.thread_arg(pid)?;
        let (list, size) = self.threads[index].robust_list;
        user::write_u64(&self.vmas, m, head, list)?;
        user::write_u64(&self.vmas, m, len, if list == 0 { ROBUST_LIST_HEAD_SIZE } else { size })?;
        Ok(0)
    }

    /// A pid/tid argument naming a thread of the process (0: the caller; the process's pid names its
    /// first thread, as on Linux).
    fn thread_arg(&self, pid: u64) -> Result<usize, Errno> {
        match int_arg(pid) {
            0 => Ok(self.current),
            tid if tid > 0 => self.thread_index(tid).ok_or(Errno::ESRCH),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The CPU mask: one vCPU.
    pub(crate) fn sys_sched_getaffinity<M: Machine>(&mut self, m: &mut M, pid: u64, len: u64, mask: u64) -> SysResult {
        self.thread_arg(pid).map_err(|_| Errno::ESRCH)?;
        let len = u64::from(len as u32);
        if len < 8 || len % 8 != 0 {
            return Err(Errno::EINVAL.into());
        }
        user::write(&self.vmas, m, mask, &1u64.to_le_bytes())?;
        Ok(8)
    }

    pub(crate) fn sys_sched_setaffinity<M: Machine>(&mut self, m: &mut M, pid: u64, len: u64, mask: u64) -> SysResult {
        self.thread_arg(pid).map_err(|_| Errno::ESRCH)?;
        if u64::from(len as u32) < 8 {
            return Err(Errno::EINVAL.into());
        }
        let cpus = user::read_u64(&self.vmas, m, mask)?;
        if cpus & 1 == 0 {
            return Err(Errno::EINVAL.into());
        }
        Ok(0)
    }

    /// futex(uaddr, op, val, timeout or val2, uaddr2, val3).
    pub(crate) fn sys_futex<M: Machine>(&mut self, m: &mut M, a: &[u64; 6]) -> SysResult {
        let (uaddr, op, value) = (a[0], a[1] as u32, a[2] as u32);
        let (timeout, uaddr2, value3) = (a[3], a[4], a[5] as u32);
        let command = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
        let realtime = op & FUTEX_CLOCK_REALTIME != 0;
        if realtime && !matches!(command, FUTEX_WAIT | FUTEX_WAIT_BITSET | FUTEX_LOCK_PI2) {
            return Err(Errno::ENOSYS.into());
        }
        if !uaddr.is_multiple_of(4) {
            return Err(Errno::EINVAL.into());
        }
        // The count arguments are ints; Linux treats a negative one as "all".
        let count = |raw: u64| u32::try_from(int_arg(raw)).unwrap_or(u32::MAX);
        match command {
            FUTEX_WAIT => self.futex_wait(m, uaddr, value, timeout, FUTEX_BITSET_MATCH_ANY, TimeoutKind::Relative),
            FUTEX_WAIT_BITSET => {
                let clock = if realtime { TimeoutKind::Realtime } else { TimeoutKind::Monotonic };
                self.futex_wait(m, uaddr, value, timeout, value3, clock)
            }
            FUTEX_WAKE | FUTEX_WAKE_BITSET => {
                let bitset = if command == FUTEX_WAKE { FUTEX_BITSET_MATCH_ANY } else { value3 };
                if bitset == 0 {
                    return Err(Errno::EINVAL.into());
                }
                user::check_read(&self.vmas, uaddr, 4)?;
                Ok(i64::from(self.futex_wake(uaddr, bitset, count(a[2]))))
            }
            FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
                if !uaddr2.is_multiple_of(4) {
                    return Err(Errno::EINVAL.into());
                }
                user::check_read(&self.vmas, uaddr2, 4)?;
                let current = user::read_u32(&self.vmas, m, uaddr)?;
                if command == FUTEX_CMP_REQUEUE && current != value3 {
                    return Err(Errno::EAGAIN.into());
                }
                let woken = self.futex_wake(uaddr, FUTEX_BITSET_MATCH_ANY, count(a[2]));
                let moved = if uaddr2 == uaddr { 0 } else { self.futex_requeue(uaddr, uaddr2, count(timeout)) };
                Ok(i64::from(if command == FUTEX_CMP_REQUEUE { woken + moved } else { woken }))
            }
            FUTEX_WAKE_OP => self.futex_wake_op(m, uaddr, count(a[2]), count(timeout), uaddr2, value3),
            FUTEX_LOCK_PI | FUTEX_LOCK_PI2 => {
                let clock =
                    if command == FUTEX_LOCK_PI || realtime { TimeoutKind::Realtime } else { TimeoutKind::Monotonic };
                self.futex_lock_pi(m, uaddr, timeout, clock, false)
            }
            FUTEX_TRYLOCK_PI => self.futex_lock_pi(m, uaddr, 0, TimeoutKind::Realtime, true),
            FUTEX_UNLOCK_PI => self.futex_unlock_pi(m, uaddr),
            _ => Err(Errno::ENOSYS.into()),
        }
    }

    /// The deadline of a futex wait: from a timespec at `timeout` (0: none) read as `kind` says.
    fn futex_deadline<M: Machine>(&self, m: &mut M, timeout: u64, kind: TimeoutKind) -> Result<Option<u64>, Errno> {
        if timeout == 0 {
            return Ok(None);
        }
        let ns = self.read_timespec_ns(m, timeout)?;
        Ok(Some(match kind {
            TimeoutKind::Relative => m.monotonic_ns().saturating_add(ns),
            TimeoutKind::Realtime => {
                let now = m.realtime_ns();
                m.monotonic_ns().saturating_add(ns.saturating_sub(now))
            }
            TimeoutKind::Monotonic => ns,
        }))
    }

    fn futex_wait<M: Machine>(
        &mut self,
        m: &mut M,
        uaddr: u64,
        value: u32,
        timeout: u64,
        bitset: u32,
        kind: TimeoutKind,
    ) -> SysResult {
        if bitset == 0 {
            return Err(Errno::EINVAL.into());
        }
        if user::read_u32(&self.vmas, m, uaddr)? != value {
            return Err(Errno::EAGAIN.into());
        }
        // Through restart_syscall (after a handler) the wait keeps its first deadline.
        let deadline = match self.thread().restart {
            Some(restart) if restart.nr == nr::FUTEX => restart.deadline,
            _ => self.futex_deadline(m, timeout, kind)?,
        };
        if Self::passed(m, deadline) {
            return Err(Errno::ETIMEDOUT.into());
        }
        // Linux restarts a timed futex wait through restart_syscall and an untimed one transparently.
        let interrupted = if deadline.is_some() { Errno::ERESTART_RESTARTBLOCK } else { Errno::ERESTARTSYS };
        let wait = Wait::until(deadline, interrupted, "futex wait");
        Err(Stop::Block(wait.woken_by(Waker::Futex { addr: uaddr, bitset })))
    }

    /// FUTEX_WAKE_OP: changes the word at `uaddr2` by the encoded operation, wakes up to `wake` waiters
    /// of `uaddr`, and up to `wake2` of `uaddr2` if the word's old value passes the encoded comparison.
    fn futex_wake_op<M: Machine>(
        &mut self,
        m: &mut M,
        uaddr: u64,
        wake: u32,
        wake2: u32,
        uaddr2: u64,
        encoded: u32,
    ) -> SysResult {
        if !uaddr2.is_multiple_of(4) {
            return Err(Errno::EINVAL.into());
        }
        let sign_extend_12 = |v: u32| ((v << 20) as i32) >> 20;
        let mut oparg = sign_extend_12((encoded >> 12) & 0xfff);
        let cmparg = sign_extend_12(encoded & 0xfff);
        if encoded & (FUTEX_OP_OPARG_SHIFT << 28) != 0 {
            oparg = 1i32.wrapping_shl((oparg & 31) as u32);
        }
        let old = user::read_u32(&self.vmas, m, uaddr2)? as i32;
        let new = match (encoded >> 28) & 7 {
            FUTEX_OP_SET => oparg,
            FUTEX_OP_ADD => old.wrapping_add(oparg),
            FUTEX_OP_OR => old | oparg,
            FUTEX_OP_ANDN => old & !oparg,
            FUTEX_OP_XOR => old ^ oparg,
            _ => return Err(Errno::ENOSYS.into()),
        };
        let passes = match (encoded >> 24) & 15 {
            FUTEX_OP_CMP_EQ => old == cmparg,
            FUTEX_OP_CMP_NE => old != cmparg,
            FUTEX_OP_CMP_LT => old < cmparg,
            FUTEX_OP_CMP_LE => old <= cmparg,
            FUTEX_OP_CMP_GT => old > cmparg,
            FUTEX_OP_CMP_GE => old >= cmparg,
            _ => return Err(Errno::ENOSYS.into()),
        };
        user::write_i32(&self.vmas, m, uaddr2, new)?;
        let mut woken = self.futex_wake(uaddr, FUTEX_BITSET_MATCH_ANY, wake);
        if passes {
            woken += self.futex_wake(uaddr2, FUTEX_BITSET_MATCH_ANY, wake2);
        }
        Ok(i64::from(woken))
    }

    /// FUTEX_LOCK_PI(2) and FUTEX_TRYLOCK_PI: the word holds the owner's tid. A free lock becomes the
    /// caller's; a held one gets FUTEX_WAITERS and the caller waits until the owner's FUTEX_UNLOCK_PI
    /// hands it over (priority inheritance itself has no meaning on one vCPU without priorities).
    fn futex_lock_pi<M: Machine>(
        &mut self,
        m: &mut M,
        uaddr: u64,
        timeout: u64,
        kind: TimeoutKind,
        try_only: bool,
    ) -> SysResult {
        let tid = self.thread().tid as u32;
        let word = user::read_u32(&self.vmas, m, uaddr)?;
        let owner = word & FUTEX_TID_MASK;
        if owner == 0 {
            let waiters = if self.pi_waiters(uaddr).next().is_some() { FUTEX_WAITERS } else { 0 };
            user::write(&self.vmas, m, uaddr, &(tid | waiters | (word & FUTEX_OWNER_DIED)).to_le_bytes())?;
            return Ok(0);
        }
        if owner == tid {
            return Err(Errno::EDEADLK.into());
        }
        if try_only {
            return Err(Errno::EAGAIN.into());
        }
        if self.thread_index(owner as i32).is_none() {
            return Err(Errno::ESRCH.into()); // the owner exited without releasing it (and no robust list)
        }
        let deadline = self.futex_deadline(m, timeout, kind)?;
        if Self::passed(m, deadline) {
            return Err(Errno::ETIMEDOUT.into());
        }
        user::write(&self.vmas, m, uaddr, &(word | FUTEX_WAITERS).to_le_bytes())?;
        let wait = Wait::until(deadline, Errno::ERESTARTNOINTR, "FUTEX_LOCK_PI");
        Err(Stop::Block(wait.woken_by(Waker::FutexPi { addr: uaddr })))
    }

    /// FUTEX_UNLOCK_PI: the owner hands the lock to its first waiter (or frees it).
    fn futex_unlock_pi<M: Machine>(&mut self, m: &mut M, uaddr: u64) -> SysResult {
        let tid = self.thread().tid as u32;
        let word = user::read_u32(&self.vmas, m, uaddr)?;
        if word & FUTEX_TID_MASK != tid {
            return Err(Errno::EPERM.into());
        }
        self.hand_pi_futex(m, uaddr, 0)?;
        Ok(0)
    }

    /// Gives the PI futex at `uaddr` to its first waiter (woken with the lock), or frees it; `flags` are
    /// kept in the new word (FUTEX_OWNER_DIED when a dead owner's robust list releases it).
    fn hand_pi_futex<M: Machine>(&mut self, m: &mut M, uaddr: u64, flags: u32) -> Result<(), Errno> {
        let (first, more) = {
            let mut waiters = self.pi_waiters(uaddr);
            (waiters.next(), waiters.next().is_some())
        };
        let word = match first {
            Some((_, tid)) => tid as u32 | flags | if more { FUTEX_WAITERS } else { 0 },
            None => flags,
        };
        user::write(&self.vmas, m, uaddr, &word.to_le_bytes())?;
        if let Some((index, _)) = first {
            self.threads[index].run = crate::thread::Run::Woken(Ok(0));
            self.poke();
        }
        Ok(())
    }

    /// The exiting thread's robust futexes (those it holds on its `set_robust_list` list, and the one it
    /// was about to take or release) get FUTEX_OWNER_DIED and a waiter woken, as Linux's
    /// `exit_robust_list` does. A list the app broke is followed as far as it reads, at most
    /// `ROBUST_LIST_LIMIT` entries.
    pub(crate) fn release_robust_futexes<M: Machine>(&mut self, m: &mut M) {
        let (head, _) = self.thread().robust_list;
        if head == 0 {
            return;
        }
        let read = |p: &Self, m: &mut M, addr: u64| user::read_u64(&p.vmas, m, addr).ok();
        let (Some(mut entry), Some(offset), Some(pending)) =
            (read(self, m, head), read(self, m, head + 8), read(self, m, head + 16))
        else {
            return;
        };
        let mut entries = alloc::vec::Vec::new();
        for _ in 0..ROBUST_LIST_LIMIT {
            if entry == head || entry == 0 {
                break;
            }
            let Some(next) = read(self, m, entry & !1) else { break };
            if entry != pending {
                entries.push(entry);
            }
            entry = next;
        }
        if pending != 0 {
            entries.push(pending);
        }
        for entry in entries {
            let uaddr = (entry & !1).wrapping_add(offset);
            self.release_dead_owners_futex(m, uaddr, entry & 1 != 0);
        }
    }

    fn release_dead_owners_futex<M: Machine>(&mut self, m: &mut M, uaddr: u64, pi: bool) {
        let tid = self.thread().tid as u32;
        if !uaddr.is_multiple_of(4) {
            return;
        }
        let Ok(word) = user::read_u32(&self.vmas, m, uaddr) else { return };
        if word & FUTEX_TID_MASK != tid {
            return;
        }
        if pi {
            let _ = self.hand_pi_futex(m, uaddr, FUTEX_OWNER_DIED);
            return;
        }
        let new = (word & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
        if user::write(&self.vmas, m, uaddr, &new.to_le_bytes()).is_ok() && word & FUTEX_WAITERS != 0 {
            self.futex_wake(uaddr, FUTEX_BITSET_MATCH_ANY, 1);
        }
    }
}

/// How a futex timeout is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimeoutKind {
    /// A duration (FUTEX_WAIT).
    Relative,
    /// An absolute CLOCK_MONOTONIC time.
    Monotonic,
    /// An absolute CLOCK_REALTIME time.
    Realtime,
}
