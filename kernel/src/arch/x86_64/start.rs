//! The entry point and the boot sequence, and what ends the VM (faults, fatal errors, panics).

use core::arch::global_asm;
use core::fmt::Write;
use core::mem::size_of;

use isolation::paging::{fault, PageFlags};
use kernel_abi::{BootInfo, CrashRecord, IsolationMode, RegionKind, Stream};

use super::idt::TrapFrame;
use super::registers::{Cr0, Cr0Flags, Cr2, Cr4, Cr4Flags};
use super::sync::CpuLocal;
use super::{console, gdt, idt, machine, memory, pkru, syscall};

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
    stack_size = const core::mem::size_of::<syscall::KernelStack>(),
    main = sym kernel_main,
);

/// What the kernel keeps of the boot info and of its own decisions.
pub struct BootState {
    /// The boot info where the VMM put it, outside the free range: nothing writes it after boot (the app
    /// cannot reach the physical map in `ring3` and `mpk`).
    pub info: &'static BootInfo,
    pub mode: IsolationMode,
    pub smap: bool,
    /// The TSC when the kernel started: the monotonic clock's zero.
    pub tsc_at_boot: u64,
}

static BOOT: CpuLocal<Option<BootState>> = CpuLocal::new(None);

/// The boot state (read-only after boot).
pub fn boot_state() -> &'static BootState {
    // SAFETY: written once during boot, only read afterwards.
    match unsafe { BOOT.get() } {
        Some(state) => state,
        None => fatal("boot state used before boot"),
    }
}

extern "C" fn kernel_main(boot_info: *const BootInfo) -> ! {
    let tsc_at_boot = super::registers::rdtsc();
    // SAFETY: the VMM passes the virtual address of the boot info inside the physical map, mapped for the
    // whole run and never written again. (Viewed in place, not copied: a copy costs milliseconds where
    // kernel code is emulated.)
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(boot_info.cast(), size_of::<BootInfo>()) };
    let Some(info) = BootInfo::from_guest_bytes(bytes) else {
        fatal("boot info is misplaced or has a wrong magic or version: the VMM and kernel do not match");
    };
    let Some(mode) = info.isolation_mode() else { fatal("boot info names an unknown isolation mode") };
    let app_at_cpl3 = mode == IsolationMode::Ring3;

    // SAFETY: boot runs alone, once, in this order: descriptor tables, then the entries that use them.
    unsafe {
        gdt::init(syscall::syscall_stack_top());
        idt::init();
        syscall::init(app_at_cpl3);
        pkru::init(mode == IsolationMode::Mpk);
    }
    mask_legacy_pic();
    let smap = setup_control_registers(mode);
    // SAFETY: boot runs alone; the free range comes from the validated boot info.
    unsafe {
        memory::init(
            info.physmap_base,
            info.memory_size,
            info.page_table_root,
            info.free_phys_start,
            info.free_phys_end,
        )
    };
    // SAFETY: boot runs alone.
    unsafe { *BOOT.get() = Some(BootState { info, mode, smap, tsc_at_boot }) };

    protect_kernel(boot_state());
    let start = machine::start_process(boot_state());
    enter_app(start.entry, start.stack_pointer, mode)
}

/// Puts the kernel's own memory out of the app's reach before the app runs: the boot trampoline is
/// unmapped (boot-only code); in `mpk` mode every kernel region becomes a user page tagged with its
/// protection key, except the structures the CPU reads or writes implicitly (descriptor tables, IST
/// stacks, entry scratch), which stay supervisor pages; the descriptor tables become read-only.
fn protect_kernel(state: &BootState) {
    // SAFETY: boot runs alone.
    let memory = unsafe { memory::memory() };
    for region in state.info.regions() {
        let Some(kind) = RegionKind::from_u32(region.kind) else { continue };
        let result = if kind == RegionKind::BootTrampoline {
            memory.unmap_keep_frames(region.virt_start, region.size)
        } else if kind.is_kernel() && isolation::pkeys::is_user_page(kind, state.mode) {
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
    let [tables, rest @ ..] = gdt::supervisor_ranges();
    let supervisor_only = if state.mode == IsolationMode::Mpk { rest.as_slice() } else { &[] };
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

/// The 8259 PIC may still deliver IRQ0 on vector 8 (SeaBIOS leaves it so): mask everything.
fn mask_legacy_pic() {
    // SAFETY: writing the PIC mask registers only stops legacy interrupts.
    unsafe {
        x86_64::instructions::port::Port::<u8>::new(0x21).write(0xff);
        x86_64::instructions::port::Port::<u8>::new(0xa1).write(0xff);
    }
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

/// Runs `f` with SMAP lifted (EFLAGS.AC set via POPFQ: STAC/CLAC stop the VM on the nested KVM here).
pub fn with_app_access<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: BOOT is written once at boot before any app access.
    let smap = unsafe { BOOT.get() }.as_ref().is_some_and(|state| state.smap);
    if !smap {
        return f();
    }
    // SAFETY: only EFLAGS.AC changes.
    unsafe { core::arch::asm!("pushfq", "or dword ptr [rsp], {ac}", "popfq", ac = const 1 << 18) };
    let result = f();
    // SAFETY: only EFLAGS.AC changes.
    unsafe { core::arch::asm!("pushfq", "and dword ptr [rsp], {not_ac}", "popfq", not_ac = const !(1u32 << 18)) };
    result
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
                ss = in(reg) u64::from(gdt::USER_DATA_SELECTOR),
                rsp = in(reg) stack_pointer,
                cs = in(reg) u64::from(gdt::USER_CODE_SELECTOR),
                rip = in(reg) entry,
                options(noreturn)
            )
        }
    }
    // SAFETY: entry and stack are mapped app pages; `enter_app_cpl0` never returns.
    unsafe { syscall::enter_app_cpl0(stack_pointer, entry) }
}

/// Called for every exception with the saved registers. Returns only when the app may continue.
pub fn handle_exception(frame: &mut TrapFrame) {
    let fault_address = if frame.vector == 14 { Cr2::read_raw() } else { 0 };
    if frame.vector == 14 && machine::handle_page_fault(frame, fault_address) {
        return;
    }
    crash_on_exception(frame, fault_address)
}

/// An exception the app does not survive. Out of line, so the syscall and demand-paging paths above stay
/// short where kernel code is emulated.
#[cold]
#[inline(never)]
fn crash_on_exception(frame: &TrapFrame, fault_address: u64) -> ! {
    // A CPL3 app that jumps into kernel text faults there too; only CPL0 execution is the kernel's.
    let in_kernel = !frame.is_user_mode() && machine::in_kernel_text(frame.rip);
    let mut pkey = 0;
    if frame.vector == 14 && frame.error_code & fault::PROTECTION_KEY != 0 {
        // SAFETY: exceptions do not nest with other kernel code that holds the memory state.
        if let Some((_, flags)) = unsafe { memory::memory() }.translate(fault_address) {
            pkey = u64::from(flags.pkey);
        }
    }
    let record = frame.crash_record(fault_address, pkey, in_kernel);
    crash(&record)
}

/// Reports the crash and stops the VM.
pub fn crash(record: &CrashRecord) -> ! {
    console::write(Stream::Crash, &record.to_bytes());
    console::stop()
}

/// A kernel invariant failed: report it and stop the VM.
pub fn fatal(message: &str) -> ! {
    let _ = writeln!(console::Log, "kernel: fatal: {message}");
    crash(&CrashRecord { vector: kernel_abi::CRASH_KERNEL_PANIC, in_kernel: 1, ..CrashRecord::default() })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = writeln!(console::Log, "kernel: panic: {info}");
    crash(&CrashRecord { vector: kernel_abi::CRASH_KERNEL_PANIC, in_kernel: 1, ..CrashRecord::default() })
}
