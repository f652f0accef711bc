//! The process the kernel runs: its configuration, all its state, and the boot-time setup of its stack.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use isolation::layout::{ProcessLayout, Span};
use kernel_abi::{Stream, PERM_READ, PERM_WRITE};

use crate::fd::{FdTable, FileKind, OpenFile};
use crate::fs::archive::LoadError;
use crate::fs::{FileSystem, NodeId, ROOT};
use crate::inspect::Inspection;
use crate::machine::Machine;
use crate::mm::{page_align_up, SharedFiles, Vma, VmaKind, VmaList, PAGE_SIZE};
use crate::pipe::Pipes;
use crate::random::RandomStream;
use crate::signal::queue::Pending;
use crate::signal::Actions;
use crate::syscall::shm::ShmSegment;
use crate::syscall::{O_RDONLY, O_WRONLY};
use crate::thread::Thread;
use crate::timer::Timers;

/// A range the VMM mapped for the app (a PT_LOAD segment), recorded as a VMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub start: u64,
    pub len: u64,
    /// `kernel_abi::PERM_*`.
    pub perms: u32,
}

/// What `uname` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uname {
    pub sysname: &'static [u8],
    pub nodename: &'static [u8],
    pub release: &'static [u8],
    pub version: &'static [u8],
    pub machine: &'static [u8],
    pub domainname: &'static [u8],
}

/// The system `uname` describes to the app.
pub const UNAME: Uname = Uname {
    sysname: b"Linux",
    nodename: b"secure-run",
    release: b"6.1.0-secure-run",
    version: b"#1 SMP secure-run",
    machine: b"x86_64",
    domainname: b"(none)",
};

/// Everything the kernel needs to know to run the app's syscalls.
#[derive(Clone, Debug)]
pub struct ProcessConfig {
    /// Keys the random stream behind getrandom and /dev/urandom.
    pub seed: [u8; 32],
    /// The stream's first bytes, computed ahead by the VMM (see [`crate::random`]).
    pub random_prefix: &'static [u8],
    /// Stack, brk and mmap spans (from `isolation::layout::plan_process_layout`).
    pub layout: ProcessLayout,
    /// The app's mapped segments.
    pub segments: Vec<Segment>,
    /// Ranges the app may never map (kernel image, physical map, boot structures): mmap refuses them.
    pub reserved: Vec<Span>,
    /// What `readlink("/proc/self/exe")` returns.
    pub exe_path: Vec<u8>,
    /// Captured standard input (fd 0), referenced, not copied.
    pub stdin: &'static [u8],
    /// The packed `--mount` files (`kernel_abi::archive`), referenced until written.
    pub files: &'static [u8],
    /// Emit one strace-like line per syscall on [`Stream::Log`].
    pub trace: bool,
    /// Programs `execve` starts get random bases (`--aslr`).
    pub aslr: bool,
    /// Refuse writable+executable mappings (on in `mpk` mode).
    pub enforce_wx: bool,
    /// How code that becomes executable at run time is inspected (on in `mpk` mode).
    pub inspection: Inspection,
    /// Guest memory size (sysinfo's totalram).
    pub memory_size: u64,
    /// Most bytes of file data the app may create in the file system.
    pub fs_capacity: u64,
    /// The SysV shared-memory segment the VMM provides (`--afl`'s coverage map), if any.
    pub afl_map: Option<ShmSegment>,
    /// Wall-clock time at boot, for file timestamps of the initial tree.
    pub boot_realtime_ns: u64,
}

impl ProcessConfig {
    /// A configuration with defaults for everything but the seed and layout.
    pub fn new(seed: [u8; 32], layout: ProcessLayout) -> Self {
        Self {
            seed,
            random_prefix: &[],
            layout,
            segments: Vec::new(),
            reserved: Vec::new(),
            exe_path: Vec::new(),
            stdin: &[],
            files: &[],
            trace: false,
            aslr: false,
            enforce_wx: true,
            inspection: Inspection::Default,
            memory_size: 256 << 20,
            fs_capacity: 64 << 20,
            afl_map: None,
            boot_realtime_ns: 0,
        }
    }
}

/// Why [`Process::new`] refused the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A segment is empty, wraps, overlaps another or a reserved range.
    BadSegment {
        start: u64,
    },
    /// A layout span is unaligned, leaves the lower half, or overlaps another span, a segment or a
    /// reserved range.
    BadLayout,
    Files(LoadError),
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadSegment { start } => write!(f, "app segment at {start:#x} is empty, wraps or overlaps"),
            Self::BadLayout => write!(f, "process layout spans are unaligned or overlap the app or kernel"),
            Self::Files(e) => write!(f, "{e}"),
        }
    }
}

/// Why [`Process::adopt_stack`] refused the initial stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackError {
    /// The stack pointer or the AT_HWCAP slot lies outside the stack span, or is misaligned.
    OutsideStack,
    /// The machine could not record the stack or write the slot.
    Machine,
}

/// Resource limits, indexed by `RLIMIT_*`.
pub const RLIMIT_COUNT: usize = linux_raw_sys::general::RLIM_NLIMITS as usize;
pub const RLIMIT_STACK: usize = linux_raw_sys::general::RLIMIT_STACK as usize;
pub const RLIMIT_CORE: usize = linux_raw_sys::general::RLIMIT_CORE as usize;
pub const RLIMIT_NOFILE: usize = linux_raw_sys::general::RLIMIT_NOFILE as usize;
/// `RLIM_INFINITY` as the 64-bit `struct rlimit` holds it (all bits set).
pub const RLIM_INFINITY: u64 = u64::MAX;

/// The kernel's state the syscalls read and change: the running process's own (its VMAs, descriptor
/// slots, signal actions, ...; the others' wait in [`crate::processes`]) and what every process shares (open
/// file descriptions, pipes, the file system, the threads).
pub struct Process {
    pub(crate) vmas: VmaList,
    /// The shared memory objects of files mapped `MAP_SHARED`.
    pub(crate) shared_files: SharedFiles,
    pub(crate) fds: FdTable,
    pub(crate) fs: FileSystem,
    pub(crate) pipes: Pipes,
    pub(crate) epolls: crate::slots::Slots<crate::epoll::Epoll>,
    pub(crate) eventfds: crate::slots::Slots<crate::epoll::EventFd>,
    pub(crate) rng: RandomStream,
    pub(crate) cwd: NodeId,
    pub(crate) umask: u32,
    pub(crate) rlimits: [(u64, u64); RLIMIT_COUNT],
    pub(crate) brk: u64,
    /// The process's threads and which of them runs (see [`crate::sched`]).
    pub(crate) threads: alloc::vec::Vec<Thread>,
    pub(crate) current: usize,
    pub(crate) sched: crate::sched::Scheduler,
    pub(crate) actions: Actions,
    /// Signals sent to the process as a whole.
    pub(crate) pending: Pending,
    pub(crate) timers: Timers,
    /// Nanoseconds spent waiting in the kernel: what CPU time leaves out.
    pub(crate) idle_ns: u64,
    /// The app's stack pointer at the syscall running now.
    pub(crate) user_sp: u64,
    pub(crate) stdin: &'static [u8],
    /// The file that shows the `--afl` input, if it is not stdin (see [`crate::afl`]).
    pub(crate) afl_input_file: Option<NodeId>,
    /// The `--afl` snapshot waits for the app's first system call that could observe its input
    /// ([`Process::defer_afl_snapshot`]).
    pub(crate) afl_snapshot_pending: bool,
    pub(crate) afl_map: Option<ShmSegment>,
    pub(crate) trace: bool,
    pub(crate) enforce_wx: bool,
    pub(crate) inspection: Inspection,
    pub(crate) layout: ProcessLayout,
    pub(crate) reserved: Vec<(u64, u64)>,
    pub(crate) memory_size: u64,
    /// The running process's id, and every process ([`crate::processes`]).
    pub(crate) pid: i32,
    pub(crate) procs: crate::processes::Table,
    /// The process limit was reported once already.
    pub(crate) procs_limit_reported: bool,
    /// The kernel seed (layouts of programs `execve` starts derive from it) and whether they are random.
    pub(crate) seed: [u8; 32],
    pub(crate) aslr: bool,
    /// AT_HWCAP (CPUID.1:EDX), as the first program got it.
    pub(crate) hwcap: u64,
    /// How many programs `execve` has started (each gets its own layout draws).
    pub(crate) execs: u64,
}

fn aligned_span(span: &Span) -> bool {
    span.size > 0
        && span.start.is_multiple_of(PAGE_SIZE)
        && span.size.is_multiple_of(PAGE_SIZE)
        && span.start.checked_add(span.size).is_some()
}

impl Process {
    /// Builds the process state (see [`Process::init`]); for tests and the fuzzer, which keep it anywhere.
    pub fn new(config: &ProcessConfig) -> Result<Self, ConfigError> {
        let mut slot = None;
        Self::init(&mut slot, config)?;
        Ok(slot.expect("Process::init fills the slot when it succeeds"))
    }

    /// Builds the process state into `slot`: VMAs for the app's segments, the file system with the mounted
    /// files, fds 0-2. The stack joins later, through [`Process::adopt_stack`]. Written where it stays rather
    /// than returned: the state is most of a KiB, and where kernel code is emulated each copy of it costs
    /// about a millisecond.
    pub fn init<'a>(slot: &'a mut Option<Self>, config: &ProcessConfig) -> Result<&'a mut Self, ConfigError> {
        // The kernel's regions mostly touch or overlap the previous one (text, data, bss): coalesced, the
        // checks below and every mmap compare against a handful of ranges.
        let mut reserved: Vec<(u64, u64)> = Vec::with_capacity(config.reserved.len());
        for span in &config.reserved {
            match reserved.last_mut() {
                Some(last) if last.0 <= span.start && span.start <= last.1 => last.1 = last.1.max(span.end()),
                _ => reserved.push((span.start, span.end())),
            }
        }
        let mut vmas = VmaList::new();
        // The page holding the previous segment's last byte, and that segment's permissions.
        let mut previous: Option<(u64, u32)> = None;
        for segment in &config.segments {
            let bad = ConfigError::BadSegment { start: segment.start };
            let mut start = segment.start & !(PAGE_SIZE - 1);
            let end = segment.start.checked_add(segment.len).and_then(page_align_up).ok_or(bad)?;
            if segment.len == 0 || reserved.iter().any(|&(s, e)| s < end && start < e) {
                return Err(bad);
            }
            let perms = segment.perms & (PERM_READ | PERM_WRITE | kernel_abi::PERM_EXEC);
            // PT_LOAD segments come in ascending order (ELF); one may start in the page where the
            // previous one ends (text end / data start), which then gets both segments' permissions.
            if let Some((last_page, last_perms)) = previous {
                if start < last_page {
                    return Err(bad);
                }
                if start == last_page {
                    vmas.protect(start, start + PAGE_SIZE, last_perms | perms).map_err(|_| bad)?;
                    start += PAGE_SIZE;
                }
            }
            if start < end {
                vmas.insert(Vma { start, end, perms, kind: VmaKind::Image }).map_err(|_| bad)?;
            }
            previous = Some((end - PAGE_SIZE, perms));
        }
        // The VMM planned these spans; they must still form a valid address space.
        let layout = config.layout;
        let spans = layout.spans();
        for (i, span) in spans.iter().enumerate() {
            if !aligned_span(span) || span.end() > isolation::paging::LOWER_HALF_END {
                return Err(ConfigError::BadLayout);
            }
            let overlaps_other = spans[..i].iter().any(|other| span.conflicts(other, 0));
            let overlaps_reserved = reserved.iter().any(|&(s, e)| s < span.end() && span.start < e);
            if overlaps_other || overlaps_reserved || !vmas.is_free(span.start, span.end()) {
                return Err(ConfigError::BadLayout);
            }
        }
        let mut fs = FileSystem::new(config.files, &config.exe_path, config.fs_capacity, config.boot_realtime_ns);
        fs.load_archive(config.boot_realtime_ns).map_err(ConfigError::Files)?;
        fs.acquire(ROOT);
        let fds = FdTable::with_files([
            OpenFile { kind: FileKind::Stdin, flags: O_RDONLY, offset: 0 },
            OpenFile { kind: FileKind::Console(Stream::Stdout), flags: O_WRONLY, offset: 0 },
            OpenFile { kind: FileKind::Console(Stream::Stderr), flags: O_WRONLY, offset: 0 },
        ]);
        let mut rlimits = [(RLIM_INFINITY, RLIM_INFINITY); RLIMIT_COUNT];
        rlimits[RLIMIT_STACK] = (layout.stack.size, layout.stack.size);
        rlimits[RLIMIT_CORE] = (0, RLIM_INFINITY);
        rlimits[RLIMIT_NOFILE] = (1024, crate::fd::MAX_FDS as u64);
        Ok(slot.insert(Self {
            vmas,
            shared_files: SharedFiles::default(),
            fds,
            fs,
            pipes: Pipes::default(),
            epolls: Default::default(),
            eventfds: Default::default(),
            rng: RandomStream::new(config.seed, config.random_prefix),
            cwd: ROOT,
            umask: 0o022,
            rlimits,
            brk: layout.brk.start,
            threads: alloc::vec![Thread::new(crate::processes::FIRST_PID)],
            current: 0,
            sched: crate::sched::Scheduler::default(),
            actions: Actions::default(),
            pending: Pending::default(),
            timers: Timers::default(),
            idle_ns: 0,
            user_sp: 0,
            stdin: config.stdin,
            afl_input_file: None,
            afl_snapshot_pending: false,
            afl_map: config.afl_map,
            trace: config.trace,
            enforce_wx: config.enforce_wx,
            inspection: config.inspection,
            layout,
            reserved,
            memory_size: config.memory_size,
            pid: crate::processes::FIRST_PID,
            procs: crate::processes::Table::default(),
            procs_limit_reported: false,
            seed: config.seed,
            aslr: config.aslr,
            hwcap: 0,
            execs: 0,
        }))
    }

    /// Takes on the stack span, whose top holds the initial stack the VMM wrote (argc, argv, envp, auxv)
    /// in pages it mapped from the stack pointer's page up: records the span as a read-write VMA, maps the
    /// pages below those on demand, and writes `hwcap` into the AT_HWCAP slot. The stack pointer and the
    /// slot must lie in the span.
    pub fn adopt_stack<M: Machine>(
        &mut self,
        m: &mut M,
        stack_pointer: u64,
        hwcap_slot: u64,
        hwcap: u64,
    ) -> Result<(), StackError> {
        let stack = self.layout.stack;
        let inside =
            |addr: u64, len: u64| addr >= stack.start && addr.checked_add(len).is_some_and(|end| end <= stack.end());
        if !stack_pointer.is_multiple_of(16)
            || !inside(stack_pointer, 8)
            || !hwcap_slot.is_multiple_of(8)
            || !inside(hwcap_slot, 8)
        {
            return Err(StackError::OutsideStack);
        }
        let prepared = stack_pointer & !(PAGE_SIZE - 1);
        if prepared > stack.start {
            m.map_anonymous(stack.start, prepared - stack.start, PERM_READ | PERM_WRITE)
                .map_err(|_| StackError::Machine)?;
        }
        self.vmas
            .insert(Vma { start: stack.start, end: stack.end(), perms: PERM_READ | PERM_WRITE, kind: VmaKind::Stack })
            .map_err(|_| StackError::Machine)?;
        self.hwcap = hwcap;
        m.write_user(&self.vmas, hwcap_slot, &hwcap.to_le_bytes()).map_err(|_| StackError::Machine)
    }

    /// Checks every internal invariant (VMAs sorted and disjoint, fd reference counts, file-system tree and
    /// node references). For tests and the fuzzer.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        self.vmas.check_invariants()?;
        self.fds.check_invariants_with(self.stashed_fd_slots())?;
        self.fs.check_invariants()?;
        self.check_shared_invariants()?;
        let mut node_refs: alloc::collections::BTreeMap<NodeId, u32> = alloc::collections::BTreeMap::new();
        for cwd in core::iter::once(self.cwd).chain(self.stashed_cwds()) {
            *node_refs.entry(cwd).or_default() += 1;
        }
        // The file system's own reference to the run's program.
        if let Some(program) = self.fs.program() {
            *node_refs.entry(program).or_default() += 1;
        }
        for (node, _) in self.shared_files.iter() {
            *node_refs.entry(node).or_default() += 1;
        }
        let mut pipe_ends: alloc::collections::BTreeMap<usize, (u32, u32)> = alloc::collections::BTreeMap::new();
        let (mut epolls, mut eventfds) = (alloc::vec::Vec::new(), alloc::vec::Vec::new());
        for file in self.fds.descriptions() {
            match file.kind {
                FileKind::Node(id) => *node_refs.entry(id).or_default() += 1,
                FileKind::PipeRead(id) => pipe_ends.entry(id).or_default().0 += 1,
                FileKind::PipeWrite(id) => pipe_ends.entry(id).or_default().1 += 1,
                FileKind::Epoll(id) => epolls.push(id),
                FileKind::EventFd(id) => eventfds.push(id),
                FileKind::Socket { rx, tx, shut } => {
                    if shut & 1 == 0 {
                        pipe_ends.entry(rx).or_default().0 += 1;
                    }
                    if shut & 2 == 0 {
                        pipe_ends.entry(tx).or_default().1 += 1;
                    }
                }
                _ => {}
            }
        }
        for (id, refs) in node_refs {
            if self.fs.node(id).map(|n| n.refs) != Some(refs) {
                return Err("kernel: node reference count does not match open descriptions");
            }
        }
        epolls.sort_unstable();
        eventfds.sort_unstable();
        // Each epoll instance and eventfd belongs to exactly one open description.
        if !epolls.iter().copied().eq(self.epolls.ids()) || !eventfds.iter().copied().eq(self.eventfds.ids()) {
            return Err("kernel: epoll or eventfd objects do not match open descriptions");
        }
        for (id, pipe) in self.pipes.iter() {
            if pipe_ends.get(&id).copied().unwrap_or_default() != (pipe.readers, pipe.writers) {
                return Err("kernel: pipe end counts do not match open descriptions");
            }
        }
        if self.brk < self.layout.brk.start || self.brk > self.layout.brk.end() {
            return Err("kernel: brk outside its span");
        }
        Ok(())
    }

    /// The VMAs (for tests, the fuzzer and crash reports).
    pub fn vmas(&self) -> &VmaList {
        &self.vmas
    }

    /// The thread running now.
    pub(crate) fn thread(&self) -> &Thread {
        &self.threads[self.current]
    }

    pub(crate) fn thread_mut(&mut self) -> &mut Thread {
        &mut self.threads[self.current]
    }

    /// The current program break.
    pub fn brk(&self) -> u64 {
        self.brk
    }
}
