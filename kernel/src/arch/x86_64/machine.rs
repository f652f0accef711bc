//! The bridge between the hardware and the syscall layer (`kernel::Process`): process start, syscall
//! dispatch, demand paging, and the [`kernel::Machine`] the layer runs against.
//!
//! App memory is backed on demand from the syscall layer's VMA list (the one record of what the app has
//! mapped): a page inside a VMA that has no frame yet gets a fresh zeroed one when the app first touches
//! it (with the pages around it, see [`FAULT_AROUND`]), or when a kernel copy is about to touch it. On a
//! nested KVM every kernel instruction is emulated, so mapping an 8 MiB stack eagerly would cost more than
//! the whole run; a small fresh range ([`BACK_AT_MAP`]) is backed at once instead: the app touches it
//! right away (a small brk or mmap is malloc's), and entering the kernel for the fault costs more there than
//! mapping a few pages. Larger ranges wait for their first touch.
//! The kernel's own copies back the pages they touch before copying, so kernel code never takes a
//! demand-paging fault: exception handlers never nest on their IST stack (the nested-KVM syscall path
//! runs inside the #PF handler), and the fault handler only reads the process while the app runs.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use isolation::layout::{ProcessLayout, Span};
use isolation::paging::{fault, PageFlags, PAGE_SIZE};
use kernel::mm::vma::VmaList;
use kernel::{MapError, Process, ProcessConfig, Segment, SharedId, SyscallResult};
use kernel_abi::{IsolationMode, RegionKind, Stream, FLAG_TRACE_SYSCALLS, PERM_EXEC, PERM_WRITE};

use super::idt::TrapFrame;
use super::start::{fatal, BootState};
use super::sync::CpuLocal;
use super::syscall::SyscallFrame;
use super::{console, memory, registers};

/// Bytes backed per demand fault (an aligned window around the faulting page).
const FAULT_AROUND: u64 = 64 * PAGE_SIZE;
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

pub struct AppStart {
    pub entry: u64,
    pub stack_pointer: u64,
}

/// The hardware side of [`kernel::Machine`].
pub struct ArchMachine {
    tsc_at_boot: u64,
    tsc_khz: u64,
    boot_unix_ns: u64,
    mpk: bool,
    strict_inspection: bool,
    fsgsbase: bool,
    /// The frames of each shared memory object, by page.
    shared: BTreeMap<SharedId, Vec<u64>>,
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

/// Bytes of guest-physical memory as a `'static` slice through the physical map.
fn phys_slice(phys_start: u64, size: u64) -> &'static [u8] {
    // SAFETY: boot runs alone; the memory state is only read here.
    let memory = unsafe { memory::memory() };
    if size == 0 {
        return &[];
    }
    if phys_start.checked_add(size).is_none_or(|end| end > memory.memory_size()) {
        fatal("boot info names memory outside the guest");
    }
    // SAFETY: the range lies inside guest memory (checked above), mapped by the physical map for the whole
    // run, and the VMM's blobs are never written by the kernel.
    unsafe { core::slice::from_raw_parts((memory.physmap_base() + phys_start) as *const u8, size as usize) }
}

/// Builds the process from the boot info and maps its initial stack; returns where the app starts.
pub fn start_process(state: &BootState) -> AppStart {
    let info = state.info;
    let span = |span: kernel_abi::VirtSpan| Span::new(span.start, span.size);
    // The VMM planned the spans (and reports their entropy); `Process::new` validates them.
    let process = ProcessLayout {
        stack: span(info.stack),
        brk: span(info.brk),
        mmap: span(info.mmap),
        entropy: Default::default(),
    };
    let mut config = ProcessConfig::new(info.seed, process);
    // One allocation each (pushing into empty vectors would grow them step by step; reserving on an empty
    // one takes the longer growth path).
    config.segments = Vec::with_capacity(info.regions().len());
    config.reserved = Vec::with_capacity(info.regions().len());
    for region in info.regions() {
        let span = Span::new(region.virt_start, region.size);
        if region.kind == RegionKind::AppSegment as u32 {
            config.segments.push(Segment { start: span.start, len: span.size, perms: region.perms });
        } else {
            config.reserved.push(span);
        }
    }
    config.exe_path = phys_slice(info.exe_path.phys_start, info.exe_path.size).to_vec();
    config.random_prefix = phys_slice(info.random.phys_start, info.random.size);
    config.stdin = phys_slice(info.stdin.phys_start, info.stdin.size);
    config.files = phys_slice(info.files.phys_start, info.files.size);
    config.trace = info.flags & FLAG_TRACE_SYSCALLS != 0;
    config.enforce_wx = state.mode == IsolationMode::Mpk;
    config.memory_size = info.memory_size;
    config.boot_realtime_ns = info.boot_unix_ns;
    let features = core::arch::x86_64::__cpuid(1);
    let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
    let machine = ArchMachine {
        tsc_at_boot: state.tsc_at_boot,
        tsc_khz: if info.tsc_khz == 0 { 1_000_000 } else { info.tsc_khz },
        boot_unix_ns: info.boot_unix_ns,
        mpk: state.mode == IsolationMode::Mpk,
        strict_inspection: info.flags & kernel_abi::FLAG_STRICT_INSPECTION != 0,
        fsgsbase: leaf7.ebx & 1 != 0,
        shared: BTreeMap::new(),
    };
    // Built in its static (`Process::init`): a copy costs real time where kernel code is emulated.
    // SAFETY: boot runs alone; nothing else holds the process or the machine yet.
    let (process, machine) = unsafe { (PROCESS.get(), MACHINE.get().insert(machine)) };
    let Ok(kernel) = Process::init(process, &config) else {
        fatal("the boot info's regions and process layout do not form a valid process")
    };
    // AT_HWCAP: CPUID.1:EDX, as Linux reports it; the VMM left its slot in the initial stack for us.
    let hwcap = u64::from(features.edx);
    if kernel.adopt_stack(machine, info.stack_pointer, info.hwcap_slot, hwcap).is_err() {
        fatal("the boot info's initial stack lies outside the stack span");
    }
    AppStart { entry: info.app_entry, stack_pointer: info.stack_pointer }
}

/// RFLAGS bits an app may keep across a syscall: CF, PF, AF, ZF, SF, TF, IF, DF, OF, AC, ID (never
/// IOPL, NT, RF or VM, which SYSRET/IRETQ would otherwise load from a corrupted frame).
const USER_RFLAGS: u64 = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x4_0000 | 0x20_0000;

/// Runs one syscall for the app; the result goes back in `frame.rax`.
pub fn handle_syscall(frame: &mut SyscallFrame) {
    frame.rflags = app_rflags(frame.rflags);
    check_return_address(frame.rip);
    frame.rax = run_syscall(frame.number(), &frame.args);
}

/// The RFLAGS the app resumes with: the arithmetic and app-settable bits of `rflags`, bit 1 set.
fn app_rflags(rflags: u64) -> u64 {
    (rflags & USER_RFLAGS) | 0x2
}

fn check_return_address(rip: u64) {
    if rip >= isolation::paging::LOWER_HALF_END {
        // SYSRET to a non-canonical address would fault in the kernel with the app's stack.
        fatal("syscall return address outside the lower half");
    }
}

/// Runs syscall `number`; returns its result (RAX) unless the app ends.
fn run_syscall(number: u64, args: &[u64; 6]) -> u64 {
    // SAFETY: one syscall at a time; the page-fault handler reads PROCESS only for faults of app code.
    let (Some(kernel), Some(machine)) = (unsafe { (PROCESS.get().as_mut(), MACHINE.get().as_mut()) }) else {
        fatal("syscall before the process exists")
    };
    match kernel.syscall(machine, number, args) {
        SyscallResult::Return(value) => value as u64,
        SyscallResult::Exit(status) => console::exit(status),
        SyscallResult::Killed(signal) => {
            let _ = core::fmt::Write::write_fmt(
                &mut console::Log,
                format_args!("secure-run kernel: the app was killed by signal {signal}\n"),
            );
            console::exit(128 + signal)
        }
    }
}

/// Backs a page of on-demand app memory if the fault is a first touch the range allows. Returns false
/// for every other fault (which then ends the app).
pub fn handle_page_fault(frame: &TrapFrame, address: u64) -> bool {
    if frame.error_code & (fault::PRESENT | fault::RESERVED | fault::PROTECTION_KEY) != 0 {
        return false;
    }
    if in_kernel_text(frame.rip) {
        // Process copies back their pages first (see the module doc): a fault here is a kernel bug.
        return false;
    }
    // SAFETY: the app's own code faulted (kernel code was ruled out above), so no syscall is running and
    // nothing else borrows the process; this handler only reads it.
    let Some(kernel) = (unsafe { PROCESS.get() }).as_ref() else { return false };
    let Some(vma) = kernel.vmas().find(address) else { return false };
    let allowed = if frame.error_code & fault::FETCH != 0 {
        vma.perms & PERM_EXEC != 0
    } else if frame.error_code & fault::WRITE != 0 {
        vma.perms & PERM_WRITE != 0
    } else {
        vma.perms != 0
    };
    if !allowed {
        return false;
    }
    let flags = page_flags(vma.perms);
    // SAFETY: as above.
    let memory = unsafe { memory::memory() };
    // Fault-around: back the not-yet-backed pages of the aligned window around the fault that lie in the
    // same range too. A fault costs far more than a page (on a nested KVM the whole handler is emulated),
    // and touching memory sequentially is the common case.
    let faulting_page = address & !(PAGE_SIZE - 1);
    let (window_start, window_end) = if memory.free_bytes() > RESERVED_FRAMES {
        let window = address & !(FAULT_AROUND - 1);
        (window.max(vma.start), (window + FAULT_AROUND).min(vma.end))
    } else {
        (faulting_page, faulting_page + PAGE_SIZE)
    };
    match memory.map_missing(window_start, window_end - window_start, flags) {
        // The faulting page had no frame, so at least it gets one. If nothing was mapped, the page is
        // mapped but inaccessible (PROT_NONE) although its VMA allows the access (a kernel bug): resuming
        // would fault forever, so the app crashes instead.
        Ok(mapped) => mapped > 0,
        Err(isolation::paging::PagingError::OutOfMemory) => {
            let _ = core::fmt::Write::write_str(
                &mut console::Log,
                "secure-run kernel: out of memory; use a larger --memory\n",
            );
            console::exit(128 + kernel_abi::signal::SIGKILL)
        }
        Err(_) => false,
    }
}

pub fn in_kernel_text(rip: u64) -> bool {
    super::start::boot_state()
        .info
        .regions()
        .iter()
        .any(|region| region.kind == RegionKind::KernelText as u32 && rip.wrapping_sub(region.virt_start) < region.size)
}

/// Backs every not-yet-backed page of `[addr, addr + len)` from the VMA list. A page in no VMA is a fault.
fn back_range(vmas: &VmaList, addr: u64, len: u64) -> Result<(), kernel::Fault> {
    if len == 0 {
        return Ok(());
    }
    let end = addr.checked_add(len).ok_or(kernel::Fault { addr })?;
    // SAFETY: one machine method at a time; no other borrow of the memory state is live.
    let memory = unsafe { memory::memory() };
    let mut page = addr & !(PAGE_SIZE - 1);
    while page < end {
        if !memory.is_mapped(page) {
            let vma = vmas.find(page).ok_or(kernel::Fault { addr: page.max(addr) })?;
            // Back the rest of this range's part of the copy in one pass.
            let until = end.min(vma.end).next_multiple_of(PAGE_SIZE);
            memory.map_missing(page, until - page, page_flags(vma.perms)).map_err(|_| kernel::Fault { addr: page })?;
            page = until;
            continue;
        }
        page += PAGE_SIZE;
    }
    Ok(())
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

impl ArchMachine {
    fn tsc_to_ns(&self, cycles: u64) -> u64 {
        (u128::from(cycles) * 1_000_000 / u128::from(self.tsc_khz)) as u64
    }
}

impl kernel::Machine for ArchMachine {
    fn read_user(&mut self, vmas: &VmaList, addr: u64, buf: &mut [u8]) -> Result<(), kernel::Fault> {
        back_range(vmas, addr, buf.len() as u64)?;
        // SAFETY: the syscall layer checked the range against the app's mappings and every page of it is
        // backed now.
        unsafe { memory::copy_from_app(addr, buf) };
        Ok(())
    }

    fn write_user(&mut self, vmas: &VmaList, addr: u64, data: &[u8]) -> Result<(), kernel::Fault> {
        back_range(vmas, addr, data.len() as u64)?;
        // SAFETY: as for `read_user`; the layer writes only ranges it mapped writable.
        unsafe { memory::copy_to_app(addr, data) };
        Ok(())
    }

    fn map_anonymous(&mut self, addr: u64, len: u64, perms: u32) -> Result<(), MapError> {
        // SAFETY: no other borrow of the memory state is live.
        let memory = unsafe { memory::memory() };
        // Inaccessible or large ranges are backed on first touch (see the module doc).
        if perms == 0 || len > BACK_AT_MAP || memory.free_bytes() <= RESERVED_FRAMES {
            return Ok(());
        }
        match memory.map_missing(addr, len, page_flags(perms)) {
            Ok(_) => Ok(()),
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
        // SAFETY: no other borrow of the memory state is live.
        let memory = unsafe { memory::memory() };
        // Pages without a frame yet need nothing: they are backed from the VMA list, which the layer has
        // changed already. PROT_NONE keeps the frames (and contents) but makes the pages fault.
        let result = if perms == 0 {
            memory.make_inaccessible(addr, len)
        } else {
            let flags = page_flags(perms);
            memory.update_present_flags(addr, len, |_| flags)
        };
        result.map_err(|_| MapError::Invalid)
    }

    fn unmap(&mut self, addr: u64, len: u64) {
        // SAFETY: no other borrow of the memory state is live.
        if unsafe { memory::memory() }.unmap(addr, len).is_err() {
            fatal("the syscall layer unmapped a range the page tables cannot");
        }
    }

    fn shared_grow(&mut self, id: SharedId, pages: u64) -> Result<(), MapError> {
        // SAFETY: no other borrow of the memory state is live.
        let memory = unsafe { memory::memory() };
        let frames = self.shared.entry(id).or_default();
        while (frames.len() as u64) < pages {
            let frame = memory.alloc_frame().ok_or(MapError::OutOfMemory)?;
            frames.try_reserve(1).map_err(|_| MapError::OutOfMemory)?;
            frames.push(frame);
        }
        Ok(())
    }

    fn shared_read(&mut self, id: SharedId, offset: u64, buf: &mut [u8]) {
        // SAFETY: no other borrow of the memory state is live.
        let memory = unsafe { memory::memory() };
        let frames = self.shared.get(&id).map_or(&[][..], Vec::as_slice);
        for_each_frame_piece(frames, offset, buf.len(), |phys, range| memory.read_phys(phys, &mut buf[range]));
    }

    fn shared_write(&mut self, id: SharedId, offset: u64, data: &[u8]) {
        // SAFETY: no other borrow of the memory state is live.
        let memory = unsafe { memory::memory() };
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
        // SAFETY: no other borrow of the memory state is live.
        match unsafe { memory::memory() }.map_borrowed(addr, frames, page_flags(perms)) {
            Ok(()) => Ok(()),
            Err(isolation::paging::PagingError::OutOfMemory) => Err(MapError::OutOfMemory),
            Err(_) => Err(MapError::Invalid),
        }
    }

    fn shared_destroy(&mut self, id: SharedId) {
        // SAFETY: no other borrow of the memory state is live.
        let memory = unsafe { memory::memory() };
        for frame in self.shared.remove(&id).unwrap_or_default() {
            memory.free_frame(frame);
        }
    }

    fn console(&mut self, stream: Stream, data: &[u8]) {
        console::write(stream, data);
    }

    fn console_from_user(
        &mut self,
        vmas: &VmaList,
        stream: Stream,
        addr: u64,
        len: usize,
    ) -> Result<(), kernel::Fault> {
        back_range(vmas, addr, len as u64)?;
        // SAFETY: as for `read_user`.
        unsafe { memory::console_from_app(stream, addr, len) };
        Ok(())
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

    fn check_executable(&mut self, addr: u64, len: u64) -> Result<(), ()> {
        if !self.mpk {
            return Ok(());
        }
        // The bytes around the range too: a forbidden sequence may straddle its edges.
        let window_start = addr.saturating_sub(PAGE_SIZE);
        let window_end = addr.saturating_add(len).saturating_add(PAGE_SIZE).min(isolation::paging::LOWER_HALF_END);
        // SAFETY: no other borrow of the memory state is live.
        let memory = unsafe { memory::memory() };
        let pages = memory.mapped_pages(window_start, window_end - window_start);
        let mut scanner = isolation::scan::CodeScanner::new();
        let mut findings = Vec::new();
        let mut page = [0u8; PAGE_SIZE as usize];
        for (start, size) in pages {
            for virt in (start..start + size).step_by(PAGE_SIZE as usize) {
                // Through the frame, not the app's address: an inaccessible (PROT_NONE) page is read too.
                let Some((frame, _)) = memory.translate(virt) else { continue };
                memory.read_frame(frame, &mut page);
                scanner.feed(virt, &page, &mut findings);
            }
        }
        if let Some(finding) = isolation::scan::first_refused(&findings, self.strict_inspection) {
            let _ = core::fmt::Write::write_fmt(
                &mut console::Log,
                format_args!(
                    "secure-run kernel: refused to make {addr:#x}..{:#x} executable: {} at {:#x}\n",
                    addr + len,
                    finding.instruction,
                    finding.offset
                ),
            );
            return Err(());
        }
        Ok(())
    }
}
