//! Processes: fork, exit, zombies and wait, process groups and sessions, and signals between processes.
//!
//! One VM runs any number of processes. Each has its own address space (the machine's
//! [`crate::machine::SpaceId`]: its own page tables, the kernel mapped the same in every one, app memory
//! shared copy-on-write after fork), its own VMAs, descriptor slots, working directory, signal actions,
//! pending signals, timers and limits; open file descriptions, pipes, the file system and the random
//! stream are the kernel's, shared by all, as on Linux.
//!
//! The syscall layer always works on "the running process": [`Process`]'s per-process fields hold the
//! state of the process whose pid is [`Process::pid`], and every other live process keeps its state in its
//! table entry (`Local`). A switch (`Process::switch_process`) swaps the two sets of fields and the
//! machine's address space, so each syscall handler stays what it was for one process. Threads of every
//! process share one run queue (`crate::sched`); each knows its process.
//!
//! The first process (pid 1) is the run: when it ends, the run ends with its status and every other
//! process with it. Another process that ends becomes a zombie until its parent reaps it with wait4 or
//! waitid (or at once, when the parent ignores SIGCHLD); its children go to pid 1. At most
//! [`MAX_PROCESSES`] exist at once: a fork past that fails with EAGAIN, as with Linux's RLIMIT_NPROC.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;

use isolation::layout::ProcessLayout;
use kernel_abi::signal::SIGKILL;

use crate::errno::Errno;
use crate::fd::FdSlot;
use crate::fs::NodeId;
use crate::machine::{Machine, SpaceId};
use crate::mm::{VmaKind, VmaList};
use crate::process::{Process, RLIMIT_COUNT};
use crate::signal::info::SigInfo;
use crate::signal::queue::Pending;
use crate::signal::Actions;
use crate::syscall::{int_arg, Stop, SysResult, Wait, Waker};
use crate::thread::{Run, Thread};
use crate::timer::Timers;
use crate::user;

/// `SIG_IGN` as a handler value.
const SIG_IGN: u64 = 1;

/// Most processes alive at once (zombies included).
pub const MAX_PROCESSES: usize = 256;

/// The first process: the run's own.
pub const FIRST_PID: i32 = 1;

pub use linux_raw_sys::general::{
    __WALL, __WCLONE, __WNOTHREAD, CLD_DUMPED, CLD_EXITED, CLD_KILLED, P_ALL, P_PGID, P_PID, WEXITED, WNOHANG, WNOWAIT,
    WSTOPPED, WUNTRACED,
};
use linux_raw_sys::general::{SIGCHLD, WCONTINUED};

/// A process's per-process state while another process runs (see the module doc).
#[derive(Debug)]
pub(crate) struct Local {
    pub vmas: VmaList,
    pub fd_slots: Vec<Option<FdSlot>>,
    pub cwd: NodeId,
    pub umask: u32,
    pub rlimits: [(u64, u64); RLIMIT_COUNT],
    pub brk: u64,
    pub actions: Actions,
    pub pending: Pending,
    pub timers: Timers,
    pub layout: ProcessLayout,
    pub leader_status: Option<i32>,
    /// What `/proc/self/exe` names for it.
    pub exe_path: Vec<u8>,
}

/// How a process ended, as wait4's status word encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Killed { signal: u32, core: bool },
}

impl Ending {
    /// The status word (`WIFEXITED`/`WIFSIGNALED` and their values).
    pub fn status_word(self) -> i32 {
        match self {
            Self::Exited(code) => (code & 0xff) << 8,
            Self::Killed { signal, core } => (signal & 0x7f) as i32 | if core { 0x80 } else { 0 },
        }
    }

    /// waitid's `si_code` and `si_status`.
    fn child_code(self) -> (i32, i32) {
        match self {
            Self::Exited(code) => (CLD_EXITED as i32, code & 0xff),
            Self::Killed { signal, core: false } => (CLD_KILLED as i32, signal as i32),
            Self::Killed { signal, core: true } => (CLD_DUMPED as i32, signal as i32),
        }
    }
}

/// Where a process stands.
#[derive(Debug)]
pub(crate) enum State {
    /// Its state is in [`Process`]'s fields (it is the running process).
    Loaded,
    /// Alive, its state kept here while another process runs.
    Stashed(Box<Local>),
    /// Ended, not yet reaped.
    Zombie(Ending),
}

/// An entry of the process table.
#[derive(Debug)]
pub(crate) struct Entry {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub space: SpaceId,
    /// The signal the parent gets when this process ends (SIGCHLD, or what clone asked for; 0: none).
    pub exit_signal: u32,
    pub state: State,
}

/// The process table: empty until the first fork (the first process alone needs none).
#[derive(Debug, Default)]
pub struct Table {
    pub(crate) entries: Vec<Entry>,
}

/// What a fork asks for (from clone or clone3).
pub(crate) struct ForkArgs {
    pub exit_signal: u32,
    /// The child's stack pointer (0: the parent's).
    pub stack: u64,
    pub parent_tid: Option<u64>,
    pub child_tid: Option<u64>,
    pub clear_child_tid: Option<u64>,
    pub tls: Option<u64>,
    /// vfork: the child runs first.
    pub vfork: bool,
}

/// Which children a wait is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Any,
    Pid(i32),
    Group(i32),
}

impl Process {
    /// The running process's id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// What `/proc/self/exe` names for the running process.
    pub(crate) fn exe_path(&self) -> Vec<u8> {
        self.fs.resolve(crate::fs::ROOT, b"/proc/self/exe", false).ok().and_then(|id| self.fs.node(id)).map_or_else(
            Vec::new,
            |node| match &node.kind {
                crate::fs::NodeKind::Symlink(target) => target.clone(),
                _ => Vec::new(),
            },
        )
    }

    /// Whether more than one process has ever existed (the table exists).
    pub(crate) fn multiprocess(&self) -> bool {
        !self.procs.entries.is_empty()
    }

    fn entry_index(&self, pid: i32) -> Option<usize> {
        self.procs.entries.iter().position(|entry| entry.pid == pid)
    }

    fn entry(&self, pid: i32) -> Option<&Entry> {
        self.procs.entries.iter().find(|entry| entry.pid == pid)
    }

    /// The running process's entry, made with the table on the first fork.
    fn own_entry<M: Machine>(&mut self, m: &mut M) -> &mut Entry {
        if self.procs.entries.is_empty() {
            self.procs.entries.push(Entry {
                pid: self.pid,
                ppid: 0,
                pgid: self.pid,
                sid: self.pid,
                space: m.current_space(),
                exit_signal: 0,
                state: State::Loaded,
            });
        }
        let index = self.entry_index(self.pid).unwrap_or(0);
        &mut self.procs.entries[index]
    }

    /// (parent, process group, session) of the running process.
    pub(crate) fn family(&self) -> (i32, i32, i32) {
        self.entry(self.pid).map_or((0, self.pid, self.pid), |entry| (entry.ppid, entry.pgid, entry.sid))
    }

    /// Whether `pid` is a live (not zombie) process.
    fn alive(&self, pid: i32) -> bool {
        match self.entry(pid) {
            Some(entry) => !matches!(entry.state, State::Zombie(_)),
            None => pid == self.pid,
        }
    }

    /// Moves the running process's state out of the fields (leaving empty ones).
    fn take_local(&mut self) -> Local {
        Local {
            vmas: core::mem::take(&mut self.vmas),
            fd_slots: self.fds.take_slots(),
            cwd: self.cwd,
            umask: self.umask,
            rlimits: self.rlimits,
            brk: self.brk,
            actions: core::mem::take(&mut self.actions),
            pending: core::mem::take(&mut self.pending),
            timers: core::mem::take(&mut self.timers),
            layout: self.layout,
            leader_status: self.sched.leader_status.take(),
            exe_path: self.fs.replace_exe_path(Vec::new()),
        }
    }

    fn put_local(&mut self, local: Local) {
        self.vmas = local.vmas;
        self.fds.put_slots(local.fd_slots);
        self.cwd = local.cwd;
        self.umask = local.umask;
        self.rlimits = local.rlimits;
        self.brk = local.brk;
        self.actions = local.actions;
        self.pending = local.pending;
        self.timers = local.timers;
        self.layout = local.layout;
        self.sched.leader_status = local.leader_status;
        self.fs.replace_exe_path(local.exe_path);
    }

    /// Makes `pid` the process the fields hold, without touching the machine (for work that does not
    /// reach app memory: a signal sent). The running process is stashed, or its leftovers dropped if it has
    /// ended.
    pub(crate) fn load_fields(&mut self, pid: i32) {
        if pid == self.pid {
            return;
        }
        let Some(to) = self.entry_index(pid) else { return };
        let State::Stashed(_) = self.procs.entries[to].state else { return };
        let local = self.take_local();
        if let Some(from) = self.entry_index(self.pid) {
            if matches!(self.procs.entries[from].state, State::Loaded) {
                self.procs.entries[from].state = State::Stashed(Box::new(local));
            }
        }
        if let State::Stashed(local) = core::mem::replace(&mut self.procs.entries[to].state, State::Loaded) {
            self.put_local(*local);
        }
        self.pid = pid;
    }

    /// Makes `pid` the running process: its fields and its address space.
    pub(crate) fn switch_process<M: Machine>(&mut self, m: &mut M, pid: i32) {
        if pid == self.pid {
            return;
        }
        self.load_fields(pid);
        if self.pid == pid {
            if let Some(entry) = self.entry(pid) {
                m.switch_space(entry.space);
            }
        }
    }

    /// fork, vfork, and clone or clone3 without CLONE_VM: a new process with a copy-on-write copy of
    /// the running one's memory, its descriptors (sharing their descriptions), working directory, signal
    /// actions, mask and limits; no pending signals or timers. The child starts from the parent's context
    /// at the return from the call, with RAX 0.
    pub(crate) fn fork<M: Machine>(&mut self, m: &mut M, args: ForkArgs) -> SysResult {
        if self.procs.entries.len() >= MAX_PROCESSES {
            if !self.procs_limit_reported {
                self.procs_limit_reported = true;
                m.console(
                    kernel_abi::Stream::Log,
                    b"secure-run kernel: fork refused: the process limit (256 processes, zombies included) is reached\n",
                );
            }
            return Err(Errno::EAGAIN.into());
        }
        if let Some(addr) = args.parent_tid {
            user::check_write(&self.vmas, addr, 4)?;
        }
        if let Some(addr) = args.child_tid {
            user::check_write(&self.vmas, addr, 4)?;
        }
        let child = self.new_tid()?;
        let (_, pgid, sid) = self.family();
        let parent_space = self.own_entry(m).space;
        let space = m.fork_space(&self.vmas, &self.reserved).map_err(|_| Errno::ENOMEM)?;
        // The child's copy of the parent's state.
        let fd_slots = self.fds.fork_slots();
        self.fs.acquire(self.cwd);
        let local = Local {
            vmas: self.vmas.clone(),
            fd_slots,
            cwd: self.cwd,
            umask: self.umask,
            rlimits: self.rlimits,
            brk: self.brk,
            actions: self.actions.clone(),
            pending: Pending::default(),
            timers: Timers::default(),
            layout: self.layout,
            leader_status: None,
            exe_path: self.exe_path(),
        };
        self.procs.entries.push(Entry {
            pid: child,
            ppid: self.pid,
            pgid,
            sid,
            space,
            exit_signal: args.exit_signal,
            state: State::Stashed(Box::new(local)),
        });
        if let Some(addr) = args.child_tid {
            // The child's own memory: its copy of the word.
            m.switch_space(space);
            let written = user::write_i32(&self.vmas, m, addr, child);
            m.switch_space(parent_space);
            written?;
        }
        if let Some(addr) = args.parent_tid {
            user::write_i32(&self.vmas, m, addr, child)?;
        }
        let parent = self.thread();
        let mut thread = Thread::new(child);
        thread.pid = child;
        thread.mask = parent.mask;
        thread.altstack = parent.altstack;
        thread.clear_child_tid = args.clear_child_tid.unwrap_or(0);
        thread.run = Run::Spawned { stack: args.stack, tls: args.tls };
        self.threads.push(thread);
        self.sched.resched = true;
        if args.vfork {
            self.sched.yielded = true;
        }
        Ok(i64::from(child))
    }

    /// A fresh id for a thread or process (they share one number space, as on Linux).
    pub(crate) fn new_tid(&mut self) -> Result<i32, Errno> {
        if self.sched.next_tid == 0 {
            self.sched.next_tid = self.threads.iter().map(|t| t.tid).max().unwrap_or(0) + 1;
        }
        let tid = self.sched.next_tid;
        self.sched.next_tid = tid.checked_add(1).ok_or(Errno::EAGAIN)?;
        Ok(tid)
    }

    /// The running process ends as `ending`. The first process's end is the run's: Err with how the run
    /// ends. Any other releases its memory, descriptors and directory, becomes a zombie (reaped at once
    /// if its parent ignores SIGCHLD), hands its children to pid 1, signals and wakes its parent, and the
    /// next thread is picked to run (Ok: the return to the app switches to it).
    pub(crate) fn exit_process<M: Machine>(&mut self, m: &mut M, ending: Ending) -> Result<(), Stop> {
        if self.pid == FIRST_PID || !self.multiprocess() {
            return Err(match ending {
                Ending::Exited(code) => Stop::Exit(code),
                Ending::Killed { signal, .. } => Stop::Killed(signal as i32),
            });
        }
        let pid = self.pid;
        for thread in self.threads.iter_mut().filter(|thread| thread.pid == pid) {
            thread.run = Run::Exited;
        }
        // Descriptors first (pipe ends close: readers see EOF), then memory.
        for file in self.fds.close_all() {
            self.release_file(file);
        }
        let vmas = core::mem::take(&mut self.vmas);
        let mut nodes = Vec::new();
        for vma in vmas.iter() {
            m.unmap(vma.start, vma.end - vma.start);
            if let VmaKind::SharedFile { node, .. } = vma.kind {
                nodes.push(node);
            }
        }
        self.release_unmapped_shared(m, &nodes);
        self.fs.release(self.cwd);
        self.timers = Timers::default();
        let Some(index) = self.entry_index(pid) else { return Err(Stop::Killed(SIGKILL)) };
        let (ppid, space, exit_signal) = {
            let entry = &self.procs.entries[index];
            (entry.ppid, entry.space, entry.exit_signal)
        };
        for entry in &mut self.procs.entries {
            if entry.ppid == pid {
                entry.ppid = FIRST_PID;
            }
        }
        let parent = if self.alive(ppid) { ppid } else { FIRST_PID };
        self.procs.entries[index].state = State::Zombie(ending);
        // Leave the dead process: its parent's state is the one to work on next (the signal, the wake).
        if let Some(to) = self.entry_index(parent) {
            if let State::Stashed(local) = core::mem::replace(&mut self.procs.entries[to].state, State::Loaded) {
                let _dead = self.take_local();
                self.put_local(*local);
            }
            self.pid = parent;
            m.switch_space(self.procs.entries[to].space);
        }
        m.destroy_space(space, &self.reserved);
        // SIGCHLD's default action is to ignore it too; only an explicit SIG_IGN or SA_NOCLDWAIT reaps.
        let action = self.actions.get(SIGCHLD);
        let auto_reap = action.handler == SIG_IGN || action.has(linux_raw_sys::general::SA_NOCLDWAIT);
        if auto_reap {
            self.procs.entries.retain(|entry| entry.pid != pid);
        } else if exit_signal != 0 {
            let (code, status) = ending.child_code();
            let _ = self.send_to_loaded(SigInfo::child(exit_signal, code, pid, status));
        }
        self.wake_child_waiters(m, parent);
        if self.io_waiters() {
            // Pipe ends it held are closed: readers see EOF, writers EPIPE.
            self.recheck_io_waits(m);
        }
        let next = self.pick_next(m)?;
        self.sched.switch_to = Some(next);
        self.sched.resched = true;
        Ok(())
    }

    /// Runs the wait4/waitid calls of `parent`'s threads again (a child of it ended); `parent` is loaded.
    fn wake_child_waiters<M: Machine>(&mut self, m: &mut M, parent: i32) {
        let running = self.current;
        for i in 0..self.threads.len() {
            let waiting = matches!(self.threads[i].wait(), Some(wait) if wait.waker == Waker::Child);
            if !waiting || self.threads[i].pid != parent {
                continue;
            }
            self.current = i;
            if let Some(restart) = self.thread().restart {
                let outcome = self.dispatch(m, restart.nr, &restart.args);
                if !matches!(outcome, Err(Stop::Block(_))) {
                    self.threads[i].run = Run::Woken(outcome);
                }
            }
        }
        self.current = running;
    }

    /// Whether a process other than the running one maps `node` shared.
    pub(crate) fn node_mapped_elsewhere(&self, node: NodeId) -> bool {
        self.procs.entries.iter().any(|entry| match &entry.state {
            State::Stashed(local) => local
                .vmas
                .iter()
                .any(|vma| matches!(vma.kind, VmaKind::SharedFile { node: other, .. } if other == node)),
            _ => false,
        })
    }

    /// The slots of every stashed process (the fd invariant counts their references too).
    pub(crate) fn stashed_fd_slots(&self) -> impl Iterator<Item = FdSlot> + '_ {
        self.procs
            .entries
            .iter()
            .flat_map(|entry| match &entry.state {
                State::Stashed(local) => local.fd_slots.as_slice(),
                _ => &[],
            })
            .filter_map(|slot| *slot)
    }

    /// The working directories of stashed processes (node references).
    pub(crate) fn stashed_cwds(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.procs.entries.iter().filter_map(|entry| match &entry.state {
            State::Stashed(local) => Some(local.cwd),
            _ => None,
        })
    }

    fn which(&self, raw: i32) -> Which {
        match raw {
            -1 => Which::Any,
            0 => Which::Group(self.family().1),
            pid if pid > 0 => Which::Pid(pid),
            group => Which::Group(group.wrapping_neg()),
        }
    }

    /// The running process's children that `which` names: (index, ended?).
    fn children(&self, which: Which) -> impl Iterator<Item = (usize, Option<Ending>)> + '_ {
        let pid = self.pid;
        self.procs.entries.iter().enumerate().filter_map(move |(i, entry)| {
            let named = match which {
                Which::Any => true,
                Which::Pid(p) => entry.pid == p,
                Which::Group(g) => entry.pgid == g,
            };
            (entry.ppid == pid && entry.pid != pid && named).then_some((
                i,
                match entry.state {
                    State::Zombie(ending) => Some(ending),
                    _ => None,
                },
            ))
        })
    }

    /// Finds an ended child for a wait: Ok(Some((pid, ending))), Ok(None) if children live but none
    /// ended, ECHILD if there is none. Reaps it unless `keep`.
    fn reap(&mut self, which: Which, keep: bool) -> Result<Option<(i32, Ending)>, Errno> {
        let mut any = false;
        let mut found = None;
        for (i, ending) in self.children(which) {
            any = true;
            if let Some(ending) = ending {
                found = Some((i, ending));
                break;
            }
        }
        let Some((i, ending)) = found else { return if any { Ok(None) } else { Err(Errno::ECHILD) } };
        let pid = self.procs.entries[i].pid;
        if !keep {
            self.procs.entries.remove(i);
        }
        Ok(Some((pid, ending)))
    }

    fn child_wait(&self) -> Stop {
        Stop::Block(Wait::until(None, Errno::ERESTARTSYS, "wait for a child").woken_by(Waker::Child))
    }

    pub(crate) fn sys_wait4<M: Machine>(
        &mut self,
        m: &mut M,
        pid: u64,
        status: u64,
        options: u64,
        rusage: u64,
    ) -> SysResult {
        let options = options as u32;
        if options & !(WNOHANG | WUNTRACED | WCONTINUED | __WALL | __WCLONE | __WNOTHREAD) != 0 {
            return Err(Errno::EINVAL.into());
        }
        let which = self.which(int_arg(pid));
        if status != 0 {
            user::check_write(&self.vmas, status, 4)?;
        }
        if rusage != 0 {
            user::check_write(&self.vmas, rusage, 144)?;
        }
        match self.reap(which, false)? {
            Some((child, ending)) => {
                if status != 0 {
                    user::write_i32(&self.vmas, m, status, ending.status_word())?;
                }
                if rusage != 0 {
                    user::write(&self.vmas, m, rusage, &[0u8; 144])?;
                }
                Ok(i64::from(child))
            }
            None if options & WNOHANG != 0 => Ok(0),
            None => Err(self.child_wait()),
        }
    }

    pub(crate) fn sys_waitid<M: Machine>(
        &mut self,
        m: &mut M,
        idtype: u64,
        id: u64,
        infop: u64,
        options: u64,
    ) -> SysResult {
        let options = options as u32;
        if options & !(WNOHANG | WEXITED | WSTOPPED | WCONTINUED | WNOWAIT | __WALL | __WCLONE | __WNOTHREAD) != 0
            || options & (WEXITED | WSTOPPED | WCONTINUED) == 0
        {
            return Err(Errno::EINVAL.into());
        }
        let id = int_arg(id);
        let which = match idtype as u32 {
            P_ALL => Which::Any,
            P_PID if id > 0 => Which::Pid(id),
            P_PGID if id >= 0 => Which::Group(if id == 0 { self.family().1 } else { id }),
            _ => return Err(Errno::EINVAL.into()),
        };
        if infop != 0 {
            user::check_write(&self.vmas, infop, crate::signal::info::SIGINFO_SIZE as u64)?;
        }
        if options & WEXITED == 0 {
            // Stopped and continued children do not exist here (no job control stops).
            return if options & WNOHANG != 0 { Ok(0) } else { Err(self.child_wait()) };
        }
        match self.reap(which, options & WNOWAIT != 0)? {
            Some((child, ending)) => {
                if infop != 0 {
                    let (code, status) = ending.child_code();
                    user::write(&self.vmas, m, infop, SigInfo::child(SIGCHLD, code, child, status).bytes())?;
                }
                Ok(0)
            }
            None if options & WNOHANG != 0 => {
                if infop != 0 {
                    user::write(&self.vmas, m, infop, &[0u8; crate::signal::info::SIGINFO_SIZE])?;
                }
                Ok(0)
            }
            None => Err(self.child_wait()),
        }
    }

    pub(crate) fn sys_getppid(&mut self) -> SysResult {
        Ok(i64::from(self.family().0))
    }

    /// getpgid, getsid (and getpgrp: 0).
    pub(crate) fn sys_getpgid(&mut self, pid: u64, session: bool) -> SysResult {
        let pid = match int_arg(pid) {
            0 => self.pid,
            pid => pid,
        };
        let (pgid, sid) = match self.entry(pid) {
            Some(entry) if !matches!(entry.state, State::Zombie(_)) || pid == self.pid => (entry.pgid, entry.sid),
            None if pid == self.pid => (self.pid, self.pid),
            _ => return Err(Errno::ESRCH.into()),
        };
        Ok(i64::from(if session { sid } else { pgid }))
    }

    pub(crate) fn sys_setpgid<M: Machine>(&mut self, m: &mut M, pid: u64, pgid: u64) -> SysResult {
        let (pid, pgid) = (int_arg(pid), int_arg(pgid));
        if pgid < 0 {
            return Err(Errno::EINVAL.into());
        }
        if !self.multiprocess() {
            // The one process leads its group and session: it may "move" to the group it has.
            let me = |id: i32| id == 0 || id == self.pid;
            return match (me(pid), me(pgid)) {
                (true, true) => Ok(0),
                (true, false) => Err(Errno::EPERM.into()),
                _ => Err(Errno::ESRCH.into()),
            };
        }
        let pid = if pid == 0 { self.pid } else { pid };
        let pgid = if pgid == 0 { pid } else { pgid };
        let me = self.pid;
        let (_, _, my_sid) = self.family();
        self.own_entry(m);
        let Some(index) = self.entry_index(pid) else { return Err(Errno::ESRCH.into()) };
        let target = &self.procs.entries[index];
        if pid != me && target.ppid != me {
            return Err(Errno::ESRCH.into());
        }
        if target.sid != my_sid || target.pid == target.sid {
            return Err(Errno::EPERM.into());
        }
        let group_exists = pgid == pid || self.procs.entries.iter().any(|e| e.pgid == pgid && e.sid == my_sid);
        if !group_exists {
            return Err(Errno::EPERM.into());
        }
        self.procs.entries[index].pgid = pgid;
        Ok(0)
    }

    pub(crate) fn sys_setsid<M: Machine>(&mut self, m: &mut M) -> SysResult {
        let pid = self.pid;
        let leads_group = self.multiprocess() && self.procs.entries.iter().any(|e| e.pgid == pid);
        if !self.multiprocess() || leads_group {
            // The first process leads its own group already.
            return Err(Errno::EPERM.into());
        }
        let entry = self.own_entry(m);
        entry.pgid = pid;
        entry.sid = pid;
        Ok(i64::from(pid))
    }

    /// The processes `kill(pid, ...)` names (Linux's rules; -1: every process).
    pub(crate) fn kill_targets(&self, raw: i32) -> Vec<i32> {
        let live = |entry: &&Entry| !matches!(entry.state, State::Zombie(_));
        if !self.multiprocess() {
            return match raw {
                -1 | 0 => alloc::vec![self.pid],
                pid if pid == self.pid || -pid == self.pid => alloc::vec![self.pid],
                _ => Vec::new(),
            };
        }
        match self.which(raw) {
            Which::Any => self.procs.entries.iter().filter(live).map(|e| e.pid).collect(),
            Which::Pid(pid) => self.procs.entries.iter().filter(live).filter(|e| e.pid == pid).map(|e| e.pid).collect(),
            Which::Group(group) => {
                self.procs.entries.iter().filter(live).filter(|e| e.pgid == group).map(|e| e.pid).collect()
            }
        }
    }

    /// Queues `info` for process `pid` (live), running or not.
    pub(crate) fn signal_process(&mut self, pid: i32, info: SigInfo) -> Result<(), Errno> {
        let running = self.pid;
        if pid == running {
            return self.send_signal(info, crate::signal::deliver::Target::Process);
        }
        self.load_fields(pid);
        let sent = self.send_to_loaded(info);
        self.load_fields(running);
        // The scheduler finds the thread that takes it.
        self.sched.resched = true;
        sent
    }

    /// Queues `info` for the loaded process, whose first live thread stands for it (its mask decides
    /// "blocked", as when the process sends itself a signal).
    fn send_to_loaded(&mut self, info: SigInfo) -> Result<(), Errno> {
        let current = self.current;
        let pid = self.pid;
        if let Some(i) = self.threads.iter().position(|t| t.pid == pid && t.run != Run::Exited) {
            self.current = i;
        }
        let sent = self.send_signal(info, crate::signal::deliver::Target::Process);
        self.current = current;
        sent
    }
}
