//! The entry point and the boot sequence: descriptor tables and entries, control registers, memory,
//! the kernel's own protection, the process, and the jump into the app. With `--afl`
//! (`kernel_abi::afl`) the snapshot point lies just before that jump (what follows it runs once per
//! execution), or, with `FLAG_AFL_SNAPSHOT_AFTER_STARTUP`, at the app's first system call that could
//! observe its input (`kernel::afl`).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::arch::global_asm;
use core::fmt::Write;
use core::mem::size_of;

use isolation::layout::{ProcessLayout, Span};
use isolation::paging::PageFlags;
use kernel::{Inspection, Process, ProcessConfig, Segment, SharedId, ShmSegment};
use kernel_abi::afl::INPUT_HEADER;
use kernel_abi::{
    BootInfo, IsolationMode, RegionKind, FLAG_AFL_SNAPSHOT_AFTER_STARTUP, FLAG_STRICT_INSPECTION, FLAG_TRACE_SYSCALLS,
};

use super::halt::fatal;
use super::machine::{self, ArchMachine};
use super::mm::physical::{self, PhysicalMemory};
use super::mm::user;
use super::registers::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use super::trap::{exception, syscall};
use super::{console, tables, timer};

global_asm!(
    ".pushsection .text.secure_run_start, \"ax\"",
    ".global _start",
    "_start:",
    // The VMM enters here in 64-bit mode with RDI = the boot info. Boot runs on the syscall stack,
    // which is free until the app makes its first syscall.
    "lea rsp, [rip + {stack} + {stack_size}]",
    "xor ebp, ebp",
    "call {main}",
    "ud2",
    ".popsection",
    stack = sym syscall::SYSCALL_STACK,
    stack_size = const size_of::<syscall::KernelStack>(),
    main = sym kernel_main,
);

extern "C" fn kernel_main(boot_info: *const BootInfo) -> ! {
    let tsc_at_boot = super::registers::rdtsc();
    // SAFETY: the VMM passes the virtual address of the boot info inside the physical map, mapped for the
    // whole run and never written again. (Viewed in place, not copied: a copy costs milliseconds where
    // kernel code is emulated.)
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(boot_info.cast(), size_of::<BootInfo>()) };
    let Some(info) = BootInfo::from_guest_bytes(bytes) else {
        fatal("boot info is misplaced or has a wrong magic or version: the VMM and kernel do not match");
    };
    // First: every frame from here on, a fatal error's included, carries the run's key. The boot info
    // itself lies in the physical map (protection key 3 in `mpk`, supervisor pages in `ring3`), which the
    // app cannot read, and below the memory the kernel hands out, so its copy needs no wiping.
    // SAFETY: boot, before the app's first instruction.
    unsafe { console::set_key(&info.console_key) };
    let Some(mode) = info.isolation_mode() else { fatal("boot info names an unknown isolation mode") };
    let app_at_cpl3 = mode == IsolationMode::Ring3;

    // SAFETY: boot runs alone, once, in this order: descriptor tables, then the entries that use them.
    unsafe {
        tables::init(syscall::syscall_stack_top(), exception::stubs(), mode == IsolationMode::Mpk);
        syscall::init(app_at_cpl3);
    }
    timer::init();
    user::set_smap(setup_control_registers(mode));
    // SAFETY: boot runs alone; the free range comes from the validated boot info.
    let mut memory = unsafe {
        physical::init(
            info.physmap_base,
            info.memory_size,
            info.page_table_root,
            info.free_phys_start,
            info.free_phys_end,
        )
    };
    protect_kernel(&mut memory, info, mode);
    let (process, machine) = start_process(memory, info, mode, tsc_at_boot);
    if machine.afl_input.is_some() {
        if info.flags & FLAG_AFL_SNAPSHOT_AFTER_STARTUP != 0 {
            // At the app's first system call that could observe its input (`kernel::afl`).
            process.defer_afl_snapshot();
        } else {
            // The snapshot point: all of boot is above; what follows runs once per execution.
            process.take_afl_snapshot(machine);
        }
    }
    enter_app(info.app_entry, info.stack_pointer, mode)
}

/// Puts the kernel's own memory out of the app's reach before the app runs: the boot trampoline is
/// unmapped (boot-only code); in `mpk` mode every kernel region becomes a user page tagged with its
/// protection key, except the structures the CPU reads or writes implicitly (descriptor tables, IST
/// stacks, entry scratch), which stay supervisor pages; the descriptor tables become read-only.
fn protect_kernel(memory: &mut PhysicalMemory, info: &BootInfo, mode: IsolationMode) {
    for region in info.regions() {
        let Some(kind) = RegionKind::from_u32(region.kind) else { continue };
        let result = if kind == RegionKind::BootTrampoline {
            memory.unmap_keep_frames(region.virt_start, region.size)
        } else if kind.is_kernel() && isolation::pkeys::is_user_page(kind, mode) {
            // The VMM maps kernel memory as supervisor pages; the policy says which become keyed user pages.
            let pkey = isolation::pkeys::pkey_for(kind);
            memory.update_flags(region.virt_start, region.size, |flags| PageFlags { user: true, pkey, ..flags })
        } else {
            Ok(())
        };
        if result.is_err() {
            fatal("cannot protect a kernel region named in the boot info");
        }
    }
    let (boot_start, boot_end) = boot_text();
    if memory.unmap_keep_frames(boot_start, boot_end - boot_start).is_err() {
        fatal("cannot unmap the boot-only code");
    }
    // The VMM maps all kernel memory as supervisor pages; only `mpk` made them user pages above, and
    // must give the CPU-accessed structures back. The descriptor tables become read-only in every mode.
    let [tables, rest @ ..] = tables::supervisor_ranges();
    let supervisor_only = if mode == IsolationMode::Mpk { rest.as_slice() } else { &[] };
    for &(start, size) in supervisor_only {
        if memory.update_flags(start, size, |flags| PageFlags { user: false, pkey: 0, ..flags }).is_err() {
            fatal("cannot make the IST stacks and entry scratch supervisor pages");
        }
    }
    let read_only = |flags| PageFlags { user: false, pkey: 0, writable: false, ..flags };
    if memory.update_flags(tables.0, tables.1, read_only).is_err() {
        fatal("cannot make the descriptor tables read-only");
    }
}

unsafe extern "C" {
    static __boot_text_start: u8;
    static __boot_text_end: u8;
}

/// The boot-only code section `[start, end)` (page-aligned by the linker script `boot-text.ld`).
fn boot_text() -> (u64, u64) {
    (core::ptr::addr_of!(__boot_text_start) as u64, core::ptr::addr_of!(__boot_text_end) as u64)
}

/// CR0/CR4 for the app (SSE usable, write protection on) and the isolation mode. Returns whether SMAP is
/// on. CR4.OSXSAVE stays clear: XSAVE, XRSTOR and XSETBV raise #UD, so no XCR0 (and no PKRU state
/// component) can ever be enabled.
#[inline(never)]
#[link_section = ".secure_run_boot_text"]
fn setup_control_registers(mode: IsolationMode) -> bool {
    let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
    let has_smep = leaf7.ebx & (1 << 7) != 0;
    let has_smap = leaf7.ebx & (1 << 20) != 0;
    let has_umip = leaf7.ecx & (1 << 2) != 0;
    let has_pku = leaf7.ecx & (1 << 3) != 0;
    if mode == IsolationMode::Mpk && !has_pku {
        fatal("isolation mode mpk needs protection keys, but this CPU offers none");
    }
    let mut cr4 = Cr4::read();
    cr4.remove(Cr4Flags::OSXSAVE);
    cr4.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
    if leaf7.ebx & 1 != 0 {
        // RDFSBASE/WRFSBASE: the kernel sets the app's TLS pointer without WRMSR.
        cr4.insert(Cr4Flags::FSGSBASE);
    }
    let mut smap = false;
    if mode == IsolationMode::Ring3 {
        if has_smep {
            cr4.insert(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
        }
        if has_smap {
            cr4.insert(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
            smap = true;
        }
        if has_umip {
            cr4.insert(Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION);
        }
    }
    if mode == IsolationMode::Mpk {
        cr4.insert(Cr4Flags::PROTECTION_KEY_USER);
    }
    let mut cr0 = Cr0::read();
    cr0.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR | Cr0Flags::WRITE_PROTECT);
    cr0.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
    // SAFETY: these bits only enable SSE for the app, write protection and the protections above; the
    // kernel itself uses no SSE and touches app memory only through `with_app_access`.
    unsafe {
        core::arch::asm!("mov cr0, {}", in(reg) cr0.bits(), options(nostack, preserves_flags));
        core::arch::asm!("mov cr4, {}", in(reg) cr4.bits(), options(nostack, preserves_flags));
    }
    smap
}

/// Starts the app: every register zero (RDX = 0: no exit handler for a static program), RSP at the
/// initial stack, at CPL3 through IRETQ in `ring3` mode, else by a jump through the PKRU gate.
fn enter_app(entry: u64, stack_pointer: u64, mode: IsolationMode) -> ! {
    if mode == IsolationMode::Ring3 {
        // SAFETY: the selectors are the GDT's user segments; entry and stack are mapped user pages.
        unsafe {
            core::arch::asm!(
                "push {ss}",
                "push {rsp}",
                "push 0x202",
                "push {cs}",
                "push {rip}",
                "xor eax, eax", "xor ebx, ebx", "xor ecx, ecx", "xor edx, edx", "xor esi, esi", "xor edi, edi",
                "xor ebp, ebp", "xor r8d, r8d", "xor r9d, r9d", "xor r10d, r10d", "xor r11d, r11d",
                "xor r12d, r12d", "xor r13d, r13d", "xor r14d, r14d", "xor r15d, r15d",
                "iretq",
                ss = in(reg) u64::from(tables::USER_DATA_SELECTOR),
                rsp = in(reg) stack_pointer,
                cs = in(reg) u64::from(tables::USER_CODE_SELECTOR),
                rip = in(reg) entry,
                options(noreturn)
            )
        }
    }
    // SAFETY: entry and stack are mapped app pages; `enter_app_cpl0` never returns.
    unsafe { syscall::enter_app_cpl0(stack_pointer, entry) }
}

/// The console ring the VMM placed (a page of the image, below the memory the kernel allocates from),
/// if any; anything else is a broken boot info.
fn console_ring(info: &BootInfo) -> Option<machine::ConsoleRing> {
    let phys = info.console_ring;
    if phys == 0 {
        return None;
    }
    let inside = phys.is_multiple_of(isolation::paging::PAGE_SIZE)
        && phys.checked_add(kernel_abi::RING_SIZE as u64).is_some_and(|end| end <= info.free_phys_start);
    if !inside {
        fatal("boot info: the console ring is not a page of the image");
    }
    Some(machine::ConsoleRing { phys, seq: 0, count: 0 })
}

/// Bytes of guest-physical memory as a `'static` slice through the physical map.
fn phys_slice(memory: &PhysicalMemory, phys_start: u64, size: u64) -> &'static [u8] {
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

/// The `--afl` input region, if the VMM gave one: a page-aligned part of the image (below the memory the
/// kernel allocates from) larger than its header; anything else is a broken boot info.
fn afl_input(info: &BootInfo) -> Option<machine::AflInput> {
    let region = info.afl_input;
    if region.size == 0 {
        return None;
    }
    let inside = region.phys_start.is_multiple_of(isolation::paging::PAGE_SIZE)
        && region.size > INPUT_HEADER as u64
        && region
            .phys_start
            .checked_add(region.size)
            .is_some_and(|end| end <= info.free_phys_start && end <= info.memory_size);
    if !inside {
        fatal("boot info: the fuzzing input region is not a page-aligned part of the image larger than its header");
    }
    Some(machine::AflInput {
        header: info.physmap_base + region.phys_start,
        capacity: region.size - INPUT_HEADER as u64,
    })
}

/// Page-table entries hold physical addresses below this (x86-64's architectural limit).
const PHYSICAL_ADDRESS_LIMIT: u64 = 1 << 52;

/// The `--afl` coverage map, if the VMM gave one: the SysV segment `shmat` attaches, and its frames.
/// Page-aligned; either above RAM (on KVM, the host's shared memory in a memory slot of its own) or a
/// part of the image that holds nothing else the boot info names (on QEMU). The VMM is trusted: this
/// catches a misplaced map, not every overlap (page tables below the root are not listed).
fn afl_map(info: &'static BootInfo) -> Option<(ShmSegment, Vec<u64>)> {
    let map = info.afl_map;
    if map.size == 0 {
        return None;
    }
    let Some(segment) = ShmSegment::new(info.afl_shm_id, map.size) else {
        fatal("boot info: the coverage map is not whole pages, or its shm id is negative or too large");
    };
    let start = map.phys_start;
    let Some(end) = start
        .checked_add(map.size)
        .filter(|&end| start.is_multiple_of(isolation::paging::PAGE_SIZE) && end <= PHYSICAL_ADDRESS_LIMIT)
    else {
        fatal("boot info: the coverage map is unaligned or lies beyond physical addresses");
    };
    let overlaps =
        |other_start: u64, size: u64| size > 0 && other_start < end && start < other_start.saturating_add(size);
    let boot_info_phys = (info as *const BootInfo as u64).wrapping_sub(info.physmap_base);
    let blobs = [info.exe_path, info.stdin, info.files, info.random, info.afl_input, info.afl_input_path];
    let in_ram_alone = end <= info.free_phys_start
        && !overlaps(boot_info_phys, size_of::<BootInfo>() as u64)
        && !overlaps(info.page_table_root, isolation::paging::PAGE_SIZE)
        && (info.console_ring == 0 || !overlaps(info.console_ring, kernel_abi::RING_SIZE as u64))
        && !blobs.iter().any(|blob| overlaps(blob.phys_start, blob.size))
        && !info
            .regions()
            .iter()
            .any(|region| region.kind != RegionKind::PhysMap as u32 && overlaps(region.phys_start, region.size));
    if start < info.memory_size && !in_ram_alone {
        fatal("boot info: the coverage map overlaps RAM the image uses for something else");
    }
    let frames =
        (0..map.size / isolation::paging::PAGE_SIZE).map(|page| start + page * isolation::paging::PAGE_SIZE).collect();
    Some((segment, frames))
}

/// Builds the process and its machine from the boot info, and maps the process's initial stack. With an
/// `--afl` input region, creates the input file the boot info names. Returns the process and the machine,
/// which live in their static slots (not in the boot info, whatever the lint infers from the signature).
#[allow(clippy::mut_from_ref)]
fn start_process(
    memory: PhysicalMemory,
    info: &'static BootInfo,
    mode: IsolationMode,
    tsc_at_boot: u64,
) -> (&'static mut Process, &'static mut ArchMachine) {
    let afl_input = afl_input(info);
    let fuzzing = afl_input.is_some();
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
    config.exe_path = phys_slice(&memory, info.exe_path.phys_start, info.exe_path.size).to_vec();
    config.random_prefix = phys_slice(&memory, info.random.phys_start, info.random.size);
    config.stdin = phys_slice(&memory, info.stdin.phys_start, info.stdin.size);
    config.files = phys_slice(&memory, info.files.phys_start, info.files.size);
    config.trace = info.flags & FLAG_TRACE_SYSCALLS != 0;
    config.aslr = info.flags & kernel_abi::FLAG_ASLR != 0;
    config.enforce_wx = mode == IsolationMode::Mpk;
    config.inspection = match (mode, info.flags & FLAG_STRICT_INSPECTION != 0) {
        (IsolationMode::Mpk, false) => Inspection::Default,
        (IsolationMode::Mpk, true) => Inspection::Strict,
        _ => Inspection::Off,
    };
    config.memory_size = info.memory_size;
    config.boot_realtime_ns = info.boot_unix_ns;
    let mut shared = BTreeMap::new();
    if let Some((segment, frames)) = afl_map(info) {
        config.afl_map = Some(segment);
        shared.insert(SharedId::AFL_MAP, frames);
    }
    let input_path = phys_slice(&memory, info.afl_input_path.phys_start, info.afl_input_path.size);
    if !fuzzing && !input_path.is_empty() {
        fatal("boot info: a fuzzing input path without an input region");
    }
    let features = core::arch::x86_64::__cpuid(1);
    let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
    let kernel_text = info
        .regions()
        .iter()
        .filter(|region| region.kind == RegionKind::KernelText as u32)
        .map(|region| (region.virt_start, region.size))
        .collect();
    let machine = ArchMachine {
        memory,
        tsc_at_boot,
        tsc_khz: if info.tsc_khz == 0 { 1_000_000 } else { info.tsc_khz },
        boot_unix_ns: info.boot_unix_ns,
        fsgsbase: leaf7.ebx & 1 != 0,
        kernel_text,
        shared,
        app_cpl3: mode == IsolationMode::Ring3,
        syscall_number: 0,
        timer_armed_until: None,
        timer_expired_at: None,
        timer_not_before: 0,
        console_ring: console_ring(info),
        afl_input,
        space_switch: None,
        guards: Default::default(),
        other_guards: Default::default(),
        rtm: leaf7.ebx & (1 << 11) != 0,
    };
    // Built in its static (`Process::init`): a copy costs real time where kernel code is emulated.
    // SAFETY: boot runs alone; nothing else holds the process or the machine yet.
    let (process, machine_slot) = unsafe { machine::slots() };
    let machine = machine_slot.insert(machine);
    let Ok(process) = Process::init(process, &config) else {
        fatal("the boot info's regions and process layout do not form a valid process")
    };
    // AT_HWCAP: CPUID.1:EDX, as Linux reports it; the VMM left its slot in the initial stack for us.
    let hwcap = u64::from(features.edx);
    if process.adopt_stack(machine, info.stack_pointer, info.hwcap_slot, hwcap).is_err() {
        fatal("the boot info's initial stack lies outside the stack span");
    }
    process.guard_image(machine);
    if !input_path.is_empty() {
        if let Err(errno) = process.create_afl_input_file(input_path, info.boot_unix_ns) {
            let _ = writeln!(console::Log, "kernel: --afl input file: {}", errno.name().unwrap_or("?"));
            fatal("boot info: the fuzzing input's path is not absolute or cannot be created");
        }
    }
    (process, machine)
}
