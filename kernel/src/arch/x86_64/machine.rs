//! The arch machine: the [`kernel::Machine`] the syscall layer (`kernel::Process`) runs against, owning
//! guest-physical memory, and demand paging.
//!
//! App memory is backed on demand from the syscall layer's VMA list (the one record of what the app has
//! mapped): a page inside a VMA that has no frame yet gets a fresh zeroed one when the app first touches
//! it (with the pages around it, see [`FAULT_AROUND`]), or when a kernel copy is about to touch it. On a
//! nested KVM every kernel instruction is emulated, so mapping an 8 MiB stack eagerly would cost more than
//! the whole run; a small fresh range ([`BACK_AT_MAP`]) is backed at once instead: the app touches it
//! right away (a small brk or mmap is malloc's), and entering the kernel for the fault costs more there than
//! mapping a few pages. Larger ranges wait for their first touch.
//! A SysV attachment of the `--afl` coverage map is mapped on first touch too, with the map's own frames
//! (borrowed, never freed; [`kernel::mm::Backing`]) and a smaller window ([`SHARED_FAULT_AROUND`]):
//! AFL++'s default map is 8 MiB, of which an execution touches a page or two, and `shmat` runs in every
//! execution.
//! The kernel's own copies back the pages they touch before copying, so kernel code never takes a
//! demand-paging fault: exception handlers never nest on their IST stack (the nested-KVM syscall path
//! runs inside the #PF handler), and the fault handler only reads the process while the app runs.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use core::mem::size_of;
use isolation::paging::{fault, PageFlags, PhysMemory, PAGE_SIZE};
use kernel::mm::vma::{Backing, VmaList};
use kernel::{FpuState, MapError, Process, SharedId};

use kernel_abi::{RingDescriptor, RingHeader, Stream, PERM_EXEC, PERM_WRITE, RING_SLOTS};

use super::guard::CodeGuards;
use super::halt::fatal;
use super::mm::physical::PhysicalMemory;
use super::mm::user;
use super::sync::CpuLocal;
use super::{console, registers, tables, timer};

/// Bytes backed per demand fault (an aligned window around the faulting page).
const FAULT_AROUND: u64 = 64 * PAGE_SIZE;
/// Bytes of a shared object mapped per demand fault: the aligned window of the object's pages around the
/// faulting one. Mapping a borrowed frame costs more than a fresh one (two table walks), and instrumented
/// code writes a map's first pages (the edge ids a program has), so the window is the map's first 64 KiB
/// (AFL++'s classic map size) on the first fault.
const SHARED_FAULT_AROUND: u64 = 16 * PAGE_SIZE;
/// The largest fresh range backed when it is mapped. Mapping costs about 30 emulated instructions a page
/// on a nested KVM, a fault's entry and exit alone about 150: beyond a few pages, the pages the app never
/// touches would cost more than the fault saved.
const BACK_AT_MAP: u64 = 8 * PAGE_SIZE;
/// Fault-around and backing at map time stop while memory is this low, so speculation never takes the
/// last frames.
const RESERVED_FRAMES: u64 = 1 << 20;

/// The process: the syscall layer's state.
static PROCESS: CpuLocal<Option<Process>> = CpuLocal::new(None);
/// The machine the process runs on.
static MACHINE: CpuLocal<Option<ArchMachine>> = CpuLocal::new(None);

/// The process and its machine, for an entry from the app.
///
/// # Safety
/// One entry at a time (see `CpuLocal`), after boot built both; the references must not outlive the
/// entry.
pub unsafe fn process_and_machine() -> (&'static mut Process, &'static mut ArchMachine) {
    // SAFETY: the caller upholds exclusivity.
    match unsafe { (PROCESS.get().as_mut(), MACHINE.get().as_mut()) } {
        (Some(process), Some(machine)) => (process, machine),
        _ => fatal("an entry from the app before the process exists"),
    }
}

/// Where boot builds the process (in place: a copy of it costs real time where kernel code is emulated)
/// and the machine.
///
/// # Safety
/// Boot only, once, before any entry from the app.
pub unsafe fn slots() -> (&'static mut Option<Process>, &'static mut Option<ArchMachine>) {
    // SAFETY: boot runs alone.
    unsafe { (PROCESS.get(), MACHINE.get()) }
}

/// The most a timer count is stretched to let the app run (see [`ArchMachine::arm_timer`]).
pub const MAX_TIMER_OVERHEAD_NS: u64 = 10_000_000;

/// The hardware side of [`kernel::Machine`]: guest-physical memory and what the kernel knows of the CPU
/// and the clocks.
pub struct ArchMachine {
    pub memory: PhysicalMemory,
    pub tsc_at_boot: u64,
    pub tsc_khz: u64,
    pub boot_unix_ns: u64,
    pub fsgsbase: bool,
    /// The kernel's text regions `(start, size)`: where a fault is the kernel's own.
    pub kernel_text: Vec<(u64, u64)>,
    /// The frames of each shared memory object, by page; [`SharedId::AFL_MAP`]'s are the VMM's (the
    /// `--afl` coverage map), registered at boot and never freed.
    pub shared: BTreeMap<SharedId, Vec<u64>>,
    /// The app runs at CPL3 (`ring3`), else at CPL0.
    pub app_cpl3: bool,
    /// The number of the syscall running now (its result replaces it in the saved RAX).
    pub syscall_number: u64,
    /// When the timer interrupt is armed to fire (monotonic ns), if it is.
    pub timer_armed_until: Option<u64>,
    /// Set by a timer interrupt: when its count ended, so that the next count gives the app at least as
    /// long to run as the interrupt took (see [`ArchMachine::arm_timer`]).
    pub timer_expired_at: Option<u64>,
    /// No count ends before this (monotonic ns): the app's share after the last timer interrupt.
    pub timer_not_before: u64,
    /// The console ring, where the VMM gave one: output by reference (`kernel_abi::console`).
    pub console_ring: Option<ConsoleRing>,
    /// The `--afl` input region, where the VMM gave one.
    pub afl_input: Option<AflInput>,
    /// The frame holding the address-space switch (see [`ArchMachine::load_root`]), made on the first
    /// switch.
    pub space_switch: Option<u64>,
    /// The current address space's guarded code (`mpk` mode, [`super::guard`]).
    pub guards: CodeGuards,
    /// The other address spaces' guarded code, by page-table root.
    pub other_guards: BTreeMap<u64, CodeGuards>,
    /// The CPU has RTM (XBEGIN), which the step gate must see through.
    pub rtm: bool,
}

/// The `--afl` input region (`kernel_abi::afl`), validated by boot: where the VMM writes each execution's
/// input.
pub struct AflInput {
    /// The region's start (its length header) in the physical map.
    pub header: u64,
    /// The most input bytes the region holds.
    pub capacity: u64,
}

impl AflInput {
    /// This execution's input: as many bytes as the header says (at most the region's), after it.
    fn bytes(&self) -> &'static [u8] {
        // SAFETY: the header is an aligned u64 at the start of the region, which lies in guest memory,
        // mapped by the physical map for the whole run (boot checked both). Volatile: the VMM wrote it
        // after the snapshot.
        let len = unsafe { core::ptr::read_volatile(self.header as *const u64) }.min(self.capacity);
        // SAFETY: the bytes lie inside the region (the length is clamped to it), which nothing writes while
        // the VM runs: the kernel never does, and the VMM only between executions, before it restores the
        // snapshot, which was taken before this slice existed.
        unsafe {
            core::slice::from_raw_parts((self.header + kernel_abi::afl::INPUT_HEADER as u64) as *const u8, len as usize)
        }
    }
}

/// The console ring's state: its page and the flush being filled.
pub struct ConsoleRing {
    /// Guest-physical address of the ring's page (reached through the physical map).
    pub phys: u64,
    /// The last flush's sequence number.
    pub seq: u64,
    /// Descriptors filled for the next flush.
    pub count: usize,
}

impl ArchMachine {
    /// Sends `[virt, virt + len)` (mapped memory: the app's, backed, or the kernel's) to the console as
    /// `stream`, through the ring if there is one: a descriptor per page piece, one doorbell per flush.
    /// Without a ring the bytes go out through the port (`port(virt, len)` sends that part of the range).
    /// So do the bytes from the first page outside RAM on (the `--afl` coverage map, which KVM gives a
    /// memory slot of its own, where the VMM's ring reader does not look), after what the ring holds.
    fn console_by_reference(&mut self, stream: Stream, virt: u64, len: usize, port: impl FnOnce(u64, usize)) {
        if self.console_ring.is_none() || len == 0 {
            return port(virt, len);
        }
        // The syscall layer sends at most a chunk (64 KiB) at a time, so the pieces fit a small array; a
        // longer buffer (a kernel one) fills the ring in several rounds.
        const PIECES: usize = (kernel::syscall::CHUNK / PAGE_SIZE as usize) + 2;
        let mut pieces = [(0u64, 0u32); PIECES];
        let mut at = virt;
        let end = virt + len as u64;
        while at < end {
            let mut used = 0;
            while at < end && used < PIECES {
                let in_page = (PAGE_SIZE - at % PAGE_SIZE).min(end - at);
                // App buffers were backed by the caller and kernel buffers are always mapped.
                let Some((phys, _)) = self.memory.translate(at) else {
                    fatal("console: a mapped buffer does not translate")
                };
                if phys + in_page > self.memory.memory_size() {
                    for &(phys, n) in &pieces[..used] {
                        self.ring_push(RingDescriptor { phys, len: n, stream: stream as u32 });
                    }
                    self.ring_flush();
                    return port(at, (end - at) as usize);
                }
                pieces[used] = (phys, in_page as u32);
                used += 1;
                at += in_page;
            }
            for &(phys, n) in &pieces[..used] {
                self.ring_push(RingDescriptor { phys, len: n, stream: stream as u32 });
            }
        }
        self.ring_flush();
    }

    fn ring_push(&mut self, descriptor: RingDescriptor) {
        let full = self.console_ring.as_ref().is_some_and(|ring| ring.count >= RING_SLOTS);
        if full {
            self.ring_flush();
        }
        let Some(ring) = &mut self.console_ring else { return };
        let at = ring.phys + size_of::<RingHeader>() as u64 + (ring.count * size_of::<RingDescriptor>()) as u64;
        ring.count += 1;
        // Two plain stores (a byte copy is a string instruction, emulated per iteration on some hosts).
        let bytes = descriptor.to_bytes();
        let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or_default());
        self.memory.write_u64(at, word(0));
        self.memory.write_u64(at + 8, word(8));
    }

    /// Rings the doorbell for the descriptors filled so far and waits for the VMM's acknowledgment (on KVM
    /// the exit is synchronous; QEMU's VMM acknowledges from another process).
    fn ring_flush(&mut self) {
        let Some(ring) = &mut self.console_ring else { return };
        if ring.count == 0 {
            return;
        }
        ring.seq += 1;
        let (phys, seq, count) = (ring.phys, ring.seq, ring.count);
        ring.count = 0;
        // The VMM owns `acked`: only `seq` and `count` (with the reserved word) are the kernel's.
        self.memory.write_u64(phys + core::mem::offset_of!(RingHeader, seq) as u64, seq);
        self.memory.write_u64(phys + core::mem::offset_of!(RingHeader, count) as u64, count as u64);
        console::ring_doorbell();
        let acked_at = phys + core::mem::offset_of!(RingHeader, acked) as u64;
        while self.memory.read_u64(acked_at) != seq {
            core::hint::spin_loop();
        }
    }
}

fn page_flags(perms: u32) -> PageFlags {
    PageFlags {
        writable: perms & PERM_WRITE != 0,
        executable: perms & PERM_EXEC != 0,
        user: true,
        pkey: 0,
        global: false,
    }
}

/// The address-space switch's code, `mov cr3, rdi; ret` (0F 22 DF C3), each byte XORed with
/// [`SPACE_SWITCH_MASK`]: the kernel's own text must never hold those bytes, not even inside an immediate
/// (`run::tests::embedded_kernel_has_privileged_instructions_only_at_listed_sites` scans it).
const SPACE_SWITCH_MASKED: [u8; 4] =
    [0x0f ^ SPACE_SWITCH_MASK, 0x22 ^ SPACE_SWITCH_MASK, 0xdf ^ SPACE_SWITCH_MASK, 0xc3 ^ SPACE_SWITCH_MASK];
const SPACE_SWITCH_MASK: u8 = 0x5a;

impl ArchMachine {
    /// Loads the page tables at `root` into CR3. No runtime kernel text holds a CR3 write (an app at CPL0
    /// could jump to one with a root of its own making): the write lives in a frame of its own, reached
    /// through the physical map, whose 2 MiB page is executable only for the call (in the trees before and
    /// after the switch, with interrupts off and no app code running) and non-executable otherwise.
    fn load_root(&mut self, root: u64) {
        let old = self.memory.root();
        let frame = match self.space_switch {
            Some(frame) => frame,
            None => {
                let frame =
                    self.memory.alloc_frame().unwrap_or_else(|| fatal("no memory for the address-space switch"));
                // Unmasked at run time: the compiler cannot fold the mask into the stored bytes.
                let mask = core::hint::black_box(SPACE_SWITCH_MASK);
                self.memory.write_phys(frame, &SPACE_SWITCH_MASKED.map(|byte| byte ^ mask));
                self.space_switch = Some(frame);
                frame
            }
        };
        let code = self.memory.physmap_base() + frame;
        let region = code & !(isolation::paging::HUGE_PAGE_SIZE - 1);
        let executable = |memory: &mut PhysicalMemory, tree: u64, on: bool| {
            memory.set_root(tree);
            let changed = memory
                .update_flags(region, isolation::paging::HUGE_PAGE_SIZE, |flags| PageFlags { executable: on, ..flags });
            if changed.is_err() {
                fatal("the physical map is not in 2 MiB pages");
            }
        };
        executable(&mut self.memory, old, true);
        executable(&mut self.memory, root, true);
        // SAFETY: `code` is the switch's frame (written above, never changed), executable now in both trees;
        // `root` is a complete tree that maps the kernel as the current one does (the boot tree or a copy of
        // it, `fork_tree`), so execution goes on at the `ret` in the new tree. It clobbers nothing else.
        unsafe { core::arch::asm!("call {code}", code = in(reg) code, in("rdi") root) };
        executable(&mut self.memory, old, false);
        executable(&mut self.memory, root, false);
        self.memory.set_root(root);
    }

    /// Backs a page of on-demand app memory if the fault (`error_code`, at `address`, by code at `rip`) is
    /// a first touch the range allows. Returns false for every other fault (which then ends the app).
    pub fn demand_fault(&mut self, vmas: &VmaList, error_code: u64, rip: u64, address: u64) -> bool {
        if error_code & (fault::RESERVED | fault::PROTECTION_KEY) != 0 {
            return false;
        }
        if error_code & fault::PRESENT != 0 {
            // A write to a page a fork shares copy-on-write.
            let writable = vmas.find(address).is_some_and(|vma| vma.perms & PERM_WRITE != 0);
            if error_code & fault::WRITE == 0 || !writable || self.in_kernel_text(rip) {
                return false;
            }
            return match self.memory.break_copy_on_write(address & !(PAGE_SIZE - 1), true) {
                Ok(()) => true,
                Err(isolation::paging::PagingError::OutOfMemory) => out_of_memory(),
                Err(_) => false,
            };
        }
        if self.in_kernel_text(rip) {
            // Kernel copies back their pages first (see the module doc): a fault here is a kernel bug.
            return false;
        }
        let Some(vma) = vmas.find(address) else { return false };
        let allowed = if error_code & fault::FETCH != 0 {
            vma.perms & PERM_EXEC != 0
        } else if error_code & fault::WRITE != 0 {
            vma.perms & PERM_WRITE != 0
        } else {
            vma.perms != 0
        };
        if !allowed {
            return false;
        }
        let flags = page_flags(vma.perms);
        let memory = &mut self.memory;
        // Fault-around: back the not-yet-backed pages of the aligned window around the fault that lie in the
        // same range too. A fault costs far more than a page (on a nested KVM the whole handler is emulated),
        // and touching memory sequentially is the common case.
        let faulting_page = address & !(PAGE_SIZE - 1);
        let result = match vma.backing(faulting_page) {
            Backing::Fresh => {
                let (window_start, window_end) = if memory.free_bytes() > RESERVED_FRAMES {
                    let window = address & !(FAULT_AROUND - 1);
                    (window.max(vma.start), (window + FAULT_AROUND).min(vma.end))
                } else {
                    (faulting_page, faulting_page + PAGE_SIZE)
                };
                memory.map_missing(window_start, window_end - window_start, flags)
            }
            Backing::Shared { id, page } => {
                // The window is aligned in the object's pages (an attachment starts at any page).
                let window = faulting_page.saturating_sub(page % (SHARED_FAULT_AROUND / PAGE_SIZE) * PAGE_SIZE);
                let start = window.max(vma.start);
                let end = window.saturating_add(SHARED_FAULT_AROUND).min(vma.end);
                let first_page = page - (faulting_page - start) / PAGE_SIZE;
                map_missing_shared(memory, &self.shared, (start, end), flags, id, first_page)
            }
            // Mapped whole when created: no frame here is a kernel bug, and resuming would fault forever.
            Backing::Mapped => return false,
        };
        if let Ok(mapped) = result {
            if mapped > 0 {
                let window = vma.start.max(faulting_page.saturating_sub(SHARED_FAULT_AROUND.max(FAULT_AROUND)));
                self.restrict_guarded(window, vma.end.min(faulting_page + SHARED_FAULT_AROUND.max(FAULT_AROUND)));
            }
        }
        match result {
            // The faulting page had no frame, so at least it gets one. If nothing was mapped, the page is
            // mapped but inaccessible (PROT_NONE) although its VMA allows the access (a kernel bug): resuming
            // would fault forever, so the app crashes instead.
            Ok(mapped) => mapped > 0,
            Err(isolation::paging::PagingError::OutOfMemory) => out_of_memory(),
            Err(_) => false,
        }
    }

    /// The code and stack selectors the app runs with.
    pub fn app_selectors(&self) -> (u16, u16) {
        if self.app_cpl3 {
            (tables::USER_CODE_SELECTOR, tables::USER_DATA_SELECTOR)
        } else {
            (tables::KERNEL_CODE_SELECTOR, tables::KERNEL_DATA_SELECTOR)
        }
    }

    /// Arms the timer interrupt for the process's next timer (before the app resumes); masks it when none
    /// is running. The PIT counts at most about 55 ms: a later deadline takes several interrupts.
    ///
    /// Forward progress: after a timer interrupt, the next count never ends sooner than that interrupt
    /// took (from its count's end to this re-arming: delivery and handling), at most
    /// [`MAX_TIMER_OVERHEAD_NS`]. Where interrupts are slow (a hypervisor that emulates the kernel, or a
    /// host that delays the injection) a short interval timer would otherwise expire again before the
    /// app ran one instruction; the app keeps at least half of the CPU, and its timers fire late by at
    /// most that overhead, as they do on an overloaded Linux.
    #[inline]
    pub fn arm_timer(&mut self, process: &Process) {
        // Nothing armed, nothing just fired, no timer running: the common case, kept short.
        if self.timer_armed_until.is_none() && self.timer_expired_at.is_none() && !process.timers_armed() {
            return;
        }
        self.rearm_timer(process);
    }

    #[inline(never)]
    fn rearm_timer(&mut self, process: &Process) {
        if let Some(expired) = self.timer_expired_at.take() {
            let now = kernel::Machine::monotonic_ns(self);
            let overhead = now.saturating_sub(expired).min(MAX_TIMER_OVERHEAD_NS);
            self.timer_not_before = now.saturating_add(overhead);
        }
        let Some(deadline) = process.next_timer_deadline(self) else {
            if self.timer_armed_until.take().is_some() {
                timer::disarm();
            }
            return;
        };
        let deadline = deadline.max(self.timer_not_before);
        if self.timer_armed_until.is_some_and(|armed| armed <= deadline) {
            return; // an interrupt comes first anyway
        }
        let now = kernel::Machine::monotonic_ns(self);
        let ticks = timer::ticks_for(deadline.saturating_sub(now));
        timer::arm(ticks);
        self.timer_armed_until = Some(now.saturating_add(timer::ns_for(ticks)));
    }

    /// The timer interrupt came: nothing is armed any more.
    pub fn timer_fired(&mut self) {
        self.timer_expired_at = self.timer_armed_until.take();
    }

    /// The si_code of a floating-point exception (#MF: x87, `simd`: #XM), from the unmasked exception
    /// flags that are set (Linux's `fpu__exception_code`).
    pub fn fpu_exception_code(&mut self, simd: bool) -> u32 {
        use kernel::signal::info::{FPE_FLTDIV, FPE_FLTINV, FPE_FLTOVF, FPE_FLTRES, FPE_FLTUND};
        let mut fpu = kernel::FpuState::default();
        kernel::Machine::save_fpu(self, &mut fpu);
        let state = fpu.0;
        let word = |at: usize| u32::from(u16::from_le_bytes([state[at], state[at + 1]]));
        let raised = if simd {
            let mxcsr = u32::from_le_bytes(state[24..28].try_into().unwrap_or_default());
            mxcsr & !(mxcsr >> 7) & 0x3f
        } else {
            word(2) & !word(0) & 0x3f // status word & ~control word
        };
        if raised & 0x01 != 0 {
            FPE_FLTINV
        } else if raised & 0x04 != 0 {
            FPE_FLTDIV
        } else if raised & 0x08 != 0 {
            FPE_FLTOVF
        } else if raised & 0x12 != 0 {
            FPE_FLTUND
        } else if raised & 0x20 != 0 {
            FPE_FLTRES
        } else {
            0
        }
    }

    /// Whether `rip` is in the kernel's text.
    pub fn in_kernel_text(&self, rip: u64) -> bool {
        self.kernel_text.iter().any(|&(start, size)| rip.wrapping_sub(start) < size)
    }

    /// Backs every not-yet-backed page of `[addr, addr + len)` from the VMA list. A page in no VMA is a fault.
    /// For a kernel write (`write`), pages a fork shares copy-on-write get their own frames first.
    fn back_range(&mut self, vmas: &VmaList, addr: u64, len: u64, write: bool) -> Result<(), kernel::Fault> {
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len).ok_or(kernel::Fault { addr })?;
        let mut page = addr & !(PAGE_SIZE - 1);
        while page < end {
            let memory = &mut self.memory;
            if !memory.is_mapped(page) {
                let vma = vmas.find(page).ok_or(kernel::Fault { addr: page.max(addr) })?;
                // Back the rest of this range's part of the copy in one pass.
                let until = end.min(vma.end).next_multiple_of(PAGE_SIZE);
                let flags = page_flags(vma.perms);
                let backed = match vma.backing(page) {
                    Backing::Fresh => memory.map_missing(page, until - page, flags),
                    Backing::Shared { id, page: first_page } => {
                        map_missing_shared(memory, &self.shared, (page, until), flags, id, first_page)
                    }
                    Backing::Mapped => Err(isolation::paging::PagingError::NotMapped),
                };
                backed.map_err(|_| kernel::Fault { addr: page.max(addr) })?;
                self.restrict_guarded(page, until);
                page = until;
                continue;
            }
            page += PAGE_SIZE;
        }
        if write && self.memory.forked() {
            let mut page = addr & !(PAGE_SIZE - 1);
            while page < end {
                if self.memory.copy_on_write_frame(page).is_some() {
                    let writable = vmas.find(page).is_some_and(|vma| vma.perms & PERM_WRITE != 0);
                    match self.memory.break_copy_on_write(page, writable) {
                        Ok(()) => {}
                        Err(isolation::paging::PagingError::OutOfMemory) => out_of_memory(),
                        Err(_) => return Err(kernel::Fault { addr: page.max(addr) }),
                    }
                }
                page += PAGE_SIZE;
            }
        }
        Ok(())
    }

    fn tsc_to_ns(&self, cycles: u64) -> u64 {
        (u128::from(cycles) * 1_000_000 / u128::from(self.tsc_khz)) as u64
    }
}

impl kernel::Machine for ArchMachine {
    fn afl_snapshot(&mut self) -> &'static [u8] {
        let Some(input) = &self.afl_input else { fatal("the --afl snapshot point without an input region") };
        // The VMM restores the VM to just after this write for every execution, with that execution's input
        // in the region; what follows is short.
        console::snapshot_point();
        input.bytes()
    }

    fn read_user(&mut self, vmas: &VmaList, addr: u64, buf: &mut [u8]) -> Result<(), kernel::Fault> {
        self.back_range(vmas, addr, buf.len() as u64, false)?;
        // SAFETY: the syscall layer checked the range against the app's mappings and every page of it is
        // backed now.
        unsafe { user::copy_from_app(addr, buf) };
        Ok(())
    }

    fn write_user(&mut self, vmas: &VmaList, addr: u64, data: &[u8]) -> Result<(), kernel::Fault> {
        self.back_range(vmas, addr, data.len() as u64, true)?;
        // SAFETY: as for `read_user`; the layer writes only ranges it mapped writable.
        unsafe { user::copy_to_app(addr, data) };
        Ok(())
    }

    fn map_anonymous(&mut self, addr: u64, len: u64, perms: u32) -> Result<(), MapError> {
        let memory = &mut self.memory;
        // Inaccessible or large ranges are backed on first touch (see the module doc).
        if perms == 0 || len > BACK_AT_MAP || memory.free_bytes() <= RESERVED_FRAMES {
            return Ok(());
        }
        match memory.map_missing(addr, len, page_flags(perms)) {
            Ok(_) => {
                self.restrict_guarded(addr, addr + len);
                Ok(())
            }
            Err(error) => {
                // Leave the range unmapped, as the layer expects after a failure.
                if memory.unmap(addr, len).is_err() {
                    fatal("could not undo a partial mapping");
                }
                Err(match error {
                    isolation::paging::PagingError::OutOfMemory => MapError::OutOfMemory,
                    _ => MapError::Invalid,
                })
            }
        }
    }

    fn protect(&mut self, addr: u64, len: u64, perms: u32) -> Result<(), MapError> {
        let memory = &mut self.memory;
        // Pages without a frame yet need nothing: they are backed from the VMA list, which the layer has
        // changed already. PROT_NONE keeps the frames (and contents) but makes the pages fault.
        let result = if perms == 0 {
            memory.make_inaccessible(addr, len)
        } else {
            let flags = page_flags(perms);
            memory.update_present_flags(addr, len, |_| flags)
        };
        self.restrict_guarded(addr, addr + len);
        result.map_err(|_| MapError::Invalid)
    }

    fn unmap(&mut self, addr: u64, len: u64) {
        self.forget_guards(addr, addr + len);
        if self.memory.unmap(addr, len).is_err() {
            fatal("the syscall layer unmapped a range the page tables cannot");
        }
    }

    fn shared_grow(&mut self, id: SharedId, pages: u64) -> Result<(), MapError> {
        let memory = &mut self.memory;
        let frames = self.shared.entry(id).or_default();
        while (frames.len() as u64) < pages {
            let frame = memory.alloc_frame().ok_or(MapError::OutOfMemory)?;
            frames.try_reserve(1).map_err(|_| MapError::OutOfMemory)?;
            frames.push(frame);
        }
        Ok(())
    }

    fn shared_read(&mut self, id: SharedId, offset: u64, buf: &mut [u8]) {
        let memory = &mut self.memory;
        let frames = self.shared.get(&id).map_or(&[][..], Vec::as_slice);
        for_each_frame_piece(frames, offset, buf.len(), |phys, range| memory.read_phys(phys, &mut buf[range]));
    }

    fn shared_write(&mut self, id: SharedId, offset: u64, data: &[u8]) {
        let memory = &mut self.memory;
        let frames = self.shared.get(&id).map_or(&[][..], Vec::as_slice);
        for_each_frame_piece(frames, offset, data.len(), |phys, range| memory.write_phys(phys, &data[range]));
    }

    fn map_shared(&mut self, addr: u64, len: u64, perms: u32, id: SharedId, first_page: u64) -> Result<(), MapError> {
        let frames = self.shared.get(&id).map_or(&[][..], Vec::as_slice);
        let first = usize::try_from(first_page).map_err(|_| MapError::Invalid)?;
        let count = usize::try_from(len / PAGE_SIZE).map_err(|_| MapError::Invalid)?;
        let Some(frames) = frames.get(first..).and_then(|rest| rest.get(..count)) else {
            return Err(MapError::Invalid);
        };
        match self.memory.map_borrowed(addr, frames, page_flags(perms)) {
            Ok(()) => {
                self.restrict_guarded(addr, addr + len);
                Ok(())
            }
            Err(isolation::paging::PagingError::OutOfMemory) => Err(MapError::OutOfMemory),
            Err(_) => Err(MapError::Invalid),
        }
    }

    fn map_shared_on_touch(
        &mut self,
        _addr: u64,
        len: u64,
        _perms: u32,
        id: SharedId,
        first_page: u64,
    ) -> Result<(), MapError> {
        // Backed from the VMA list on first touch (`demand_fault`, `back_range`); the object must have the
        // pages then.
        let pages = self.shared.get(&id).map_or(0, |frames| frames.len() as u64);
        match first_page.checked_add(len / PAGE_SIZE) {
            Some(end) if end <= pages => Ok(()),
            _ => Err(MapError::Invalid),
        }
    }

    fn guard_code(&mut self, vmas: &VmaList, start: u64, end: u64, found: &[isolation::scan::Finding]) {
        self.record_guards(vmas, start, end, found);
    }

    fn shared_destroy(&mut self, id: SharedId) {
        if id == SharedId::AFL_MAP {
            fatal("the syscall layer destroyed the coverage map, whose frames are the VMM's");
        }
        let memory = &mut self.memory;
        for frame in self.shared.remove(&id).unwrap_or_default() {
            memory.free_frame(frame);
        }
    }

    fn current_space(&self) -> kernel::SpaceId {
        kernel::SpaceId(self.memory.root())
    }

    fn fork_space(&mut self, vmas: &VmaList, kernel: &[(u64, u64)]) -> Result<kernel::SpaceId, MapError> {
        let ranges = vmas.iter().map(|vma| (vma.start, vma.end - vma.start));
        match self.memory.fork_tree(ranges, kernel) {
            Ok(root) => {
                // The copy maps the same pages with the same flags: the active ones too.
                if !self.guards.found_is_empty() {
                    self.other_guards.insert(root, self.guards.clone());
                }
                Ok(kernel::SpaceId(root))
            }
            Err(isolation::paging::PagingError::OutOfMemory) => Err(MapError::OutOfMemory),
            Err(_) => Err(MapError::Invalid),
        }
    }

    fn switch_space(&mut self, space: kernel::SpaceId) {
        let current = self.memory.root();
        if space.0 != current {
            self.load_root(space.0);
            self.stash_guards(current, space.0);
        }
    }

    fn destroy_space(&mut self, space: kernel::SpaceId, kernel: &[(u64, u64)]) {
        self.other_guards.remove(&space.0);
        self.memory.free_tree(space.0, kernel);
    }

    fn console(&mut self, stream: Stream, data: &[u8]) {
        let base = data.as_ptr() as u64;
        self.console_by_reference(stream, base, data.len(), |from, len| {
            let rest = data.get((from - base) as usize..).unwrap_or_default();
            console::write(stream, &rest[..len.min(rest.len())]);
        });
    }

    fn console_from_user(
        &mut self,
        vmas: &VmaList,
        stream: Stream,
        addr: u64,
        len: usize,
    ) -> Result<(), kernel::Fault> {
        self.back_range(vmas, addr, len as u64, false)?;
        self.console_by_reference(stream, addr, len, |from, len| {
            // SAFETY: as for `read_user` (the range is part of backed app memory).
            unsafe { user::console_from_app(stream, from, len) }
        });
        Ok(())
    }

    fn save_fpu(&mut self, state: &mut FpuState) {
        // SAFETY: FXSAVE64 writes exactly the 512-byte area, 16-byte aligned by `FpuState`'s type; the kernel
        // uses no x87/SSE itself, so the state is the app's. (FXSAVE runs where the nested KVM emulates CPL0
        // code.)
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) state.0.as_mut_ptr(), options(nostack, preserves_flags)) };
    }

    fn restore_fpu(&mut self, state: &FpuState) {
        // SAFETY: FXRSTOR64 reads the aligned area; its MXCSR was made valid by the caller (reserved bits
        // would raise #GP here), and FXRSTOR loads no protection-key or privileged state.
        unsafe {
            core::arch::asm!("fxrstor64 [{}]", in(reg) state.0.as_ptr(), options(nostack, preserves_flags, readonly))
        };
    }

    fn monotonic_ns(&mut self) -> u64 {
        self.tsc_to_ns(registers::rdtsc().wrapping_sub(self.tsc_at_boot))
    }

    fn realtime_ns(&mut self) -> u64 {
        self.boot_unix_ns.saturating_add(self.monotonic_ns())
    }

    fn set_fs_base(&mut self, value: u64) {
        if value >= isolation::paging::LOWER_HALF_END {
            return; // a non-canonical base would fault on the next FS access; the layer validated it
        }
        registers::write_fs_base(value, self.fsgsbase);
    }

    fn fs_base(&mut self) -> u64 {
        registers::read_fs_base(self.fsgsbase)
    }

    fn read_page(&mut self, page: u64, buf: &mut [u8; 4096]) -> bool {
        // Through the frame, not the app's address: an inaccessible (PROT_NONE) page is read too.
        match self.memory.translate(page) {
            Some((frame, _)) => {
                self.memory.read_frame(frame & !(PAGE_SIZE - 1), buf);
                true
            }
            None => false,
        }
    }
}

/// Maps the pages of `[start, end)` (page-aligned) that have no frame yet to the frames of shared object
/// `id`'s pages from `first_page` (the one mapped at `start`) on, borrowed: unmapping them never frees the
/// frames. Returns how many pages it mapped; `NotMapped` if the object lacks one of those pages.
fn map_missing_shared(
    memory: &mut PhysicalMemory,
    shared: &BTreeMap<SharedId, Vec<u64>>,
    (start, end): (u64, u64),
    flags: PageFlags,
    id: SharedId,
    first_page: u64,
) -> Result<u64, isolation::paging::PagingError> {
    let count = usize::try_from(end.saturating_sub(start) / PAGE_SIZE).ok();
    let first = usize::try_from(first_page).ok();
    let frames = shared
        .get(&id)
        .zip(first.zip(count))
        .and_then(|(frames, (first, count))| frames.get(first..)?.get(..count))
        .ok_or(isolation::paging::PagingError::NotMapped)?;
    let mut mapped = 0;
    let mut at = start;
    while at < end {
        if memory.is_mapped(at) {
            at += PAGE_SIZE;
            continue;
        }
        // A run of pages without frames, mapped in one call.
        let run = at;
        while at < end && !memory.is_mapped(at) {
            at += PAGE_SIZE;
        }
        let (from, to) = (((run - start) / PAGE_SIZE) as usize, ((at - start) / PAGE_SIZE) as usize);
        memory.map_borrowed(run, &frames[from..to], flags)?;
        mapped += (to - from) as u64;
    }
    Ok(mapped)
}

/// Calls `piece(phys, range)` for each part of `[offset, offset + len)` of an object made of `frames` that
/// lies in one frame: `range` indexes the caller's buffer. Bytes past the object's frames are skipped (the
/// syscall layer never asks for them).
fn for_each_frame_piece(frames: &[u64], offset: u64, len: usize, mut piece: impl FnMut(u64, core::ops::Range<usize>)) {
    let mut done = 0;
    while done < len {
        let at = offset + done as u64;
        let within = (at % PAGE_SIZE) as usize;
        let n = (PAGE_SIZE as usize - within).min(len - done);
        let Some(&frame) = usize::try_from(at / PAGE_SIZE).ok().and_then(|page| frames.get(page)) else { return };
        piece(frame + within as u64, done..done + n);
        done += n;
    }
}

/// Guest memory ran out where a page must be backed: the run ends (the app cannot go on).
#[cold]
fn out_of_memory() -> ! {
    let _ = core::fmt::Write::write_str(&mut console::Log, "secure-run kernel: out of memory; use a larger --memory\n");
    console::exit(128 + kernel_abi::signal::SIGKILL)
}
