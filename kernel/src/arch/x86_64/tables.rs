//! The descriptor tables (GDT, TSS, IDT), the stacks the CPU switches to on its own (IST), the entry
//! scratch page, and the stub that ends the VM when a PKRU gate's check fails.
//!
//! These structures are read (GDT, IDT, TSS) or written (IST stacks, the entry scratch area) by the CPU
//! implicitly, also while the app's PKRU is in force. Protection keys apply to implicit supervisor
//! accesses of user pages, so in `mpk` mode everything here lives on supervisor pages (U=0): the one
//! deliberate exception to "every mapping is a user page". The tables page is made read-only once
//! loaded; what the stacks and the scratch area hold is treated as untrusted by the entries.

use core::mem::{offset_of, size_of};

use kernel_abi::gdt::{KERNEL_CODE, KERNEL_DATA, USER_CODE, USER_DATA};
pub use kernel_abi::gdt::{
    KERNEL_CODE_SELECTOR, KERNEL_DATA_SELECTOR, TSS_SELECTOR, USER_CODE_SELECTOR, USER_DATA_SELECTOR,
};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

use super::frame::TrapFrame;
use super::pkru::GateData;
use super::sync::CpuLocal;

/// Number of IDT entries: the 32 exception vectors and the 16 of the 8259 PICs (the timer, see `timer`;
/// the other lines stay masked). An `int n` beyond the limit raises #GP, which is reported.
pub const IDT_ENTRIES: usize = 48;

/// IST slots (1-based in the IDT): general faults, double fault, NMI, machine check.
pub const IST_GENERAL: u8 = 1;
pub const IST_DOUBLE_FAULT: u8 = 2;
pub const IST_NMI: u8 = 3;
pub const IST_MACHINE_CHECK: u8 = 4;
const IST_COUNT: usize = 4;
/// Large enough for the syscall path that runs on it (the nested-KVM SYSCALL quirk, see
/// `trap::syscall`).
const IST_STACK_SIZE: usize = 64 * 1024;

/// One 16-byte IDT gate descriptor.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IdtEntry([u64; 2]);

impl IdtEntry {
    pub const MISSING: Self = Self([0; 2]);

    /// A present 64-bit interrupt gate (IF cleared on entry), DPL 0, on the given IST slot.
    fn interrupt_gate(handler: u64, ist: u8) -> Self {
        let low = (handler & 0xffff)
            | (u64::from(KERNEL_CODE_SELECTOR) << 16)
            | (u64::from(ist) << 32)
            | (0x8e << 40)
            | (((handler >> 16) & 0xffff) << 48);
        Self([low, handler >> 32])
    }
}

/// The descriptor tables, one page, read-only after boot.
#[repr(C, align(4096))]
pub struct SupervisorTables {
    pub gdt: [u64; 8],
    pub tss: TaskStateSegment,
    pub idt: [IdtEntry; IDT_ENTRIES],
    /// Read by the entries while the app's PKRU may be in force (see `pkru`).
    pub gate: GateData,
}
const _: () = assert!(size_of::<SupervisorTables>() == 4096);

/// Offset of `GateData::mpk_enabled` from the start of the tables page, for the entry assembly.
pub const MPK_FLAG_OFFSET: usize = offset_of!(SupervisorTables, gate) + offset_of!(GateData, mpk_enabled);
const VIOLATION_FRAME_OFFSET: usize = offset_of!(SupervisorTables, gate) + offset_of!(GateData, violation_frame);

/// Writable supervisor memory: where entries park registers before they may touch kernel memory, and
/// the frame a return to the app with a whole new context (a signal handler, a restored signal frame)
/// leaves from: the exit path reads it after switching to the app's PKRU.
#[repr(C, align(4096))]
pub struct EntryScratch {
    pub user_rsp: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub exit_frame: TrapFrame,
    _pad: [u64; 508 - size_of::<TrapFrame>() / 8],
}
const _: () = assert!(size_of::<EntryScratch>() == 4096);

/// Offset of `EntryScratch::exit_frame`, for the entry assembly.
pub const EXIT_FRAME_OFFSET: usize = offset_of!(EntryScratch, exit_frame);

#[repr(C, align(4096))]
pub struct IstStacks([[u8; IST_STACK_SIZE]; IST_COUNT]);

pub static TABLES: CpuLocal<SupervisorTables> = CpuLocal::new(SupervisorTables {
    gdt: [0; 8],
    tss: TaskStateSegment::new(),
    idt: [IdtEntry::MISSING; IDT_ENTRIES],
    gate: GateData::new(),
});
pub static SCRATCH: CpuLocal<EntryScratch> = CpuLocal::new(EntryScratch {
    user_rsp: 0,
    rax: 0,
    rcx: 0,
    rdx: 0,
    exit_frame: TrapFrame::ZERO,
    _pad: [0; 508 - size_of::<TrapFrame>() / 8],
});
pub static IST_STACKS: CpuLocal<IstStacks> = CpuLocal::new(IstStacks([[0; IST_STACK_SIZE]; IST_COUNT]));

/// The supervisor-only ranges (start, size): the tables page, the scratch page and the IST stacks.
pub fn supervisor_ranges() -> [(u64, u64); 3] {
    [
        (TABLES.as_ptr() as u64, size_of::<SupervisorTables>() as u64),
        (SCRATCH.as_ptr() as u64, size_of::<EntryScratch>() as u64),
        (IST_STACKS.as_ptr() as u64, size_of::<IstStacks>() as u64),
    ]
}

/// Fills the GDT, TSS and IDT, loads them, and reloads every segment register. `exception_stubs` is the
/// 1024-byte-aligned block of the entry stubs, 16 bytes each, one per IDT entry.
///
/// # Safety
/// Boot only, once, before any entry can happen; `exception_stubs` must be those stubs.
#[inline(never)]
#[link_section = ".secure_run_boot_text"]
pub unsafe fn init(kernel_stack_top: u64, exception_stubs: u64, mpk: bool) {
    // SAFETY: boot runs alone; no other reference to TABLES or IST_STACKS exists.
    let (tables, stacks) = unsafe { (TABLES.get(), IST_STACKS.get()) };
    tables.gate.mpk_enabled = u64::from(mpk);
    let mut ist = [VirtAddr::zero(); 7];
    for (slot, stack) in ist.iter_mut().zip(stacks.0.iter()) {
        // Top of each stack, 16-byte aligned (the size is a multiple of 16).
        *slot = VirtAddr::new(stack.as_ptr() as u64 + IST_STACK_SIZE as u64);
    }
    tables.tss.interrupt_stack_table = ist;
    // Ring-3 entries through an interrupt gate switch to RSP0.
    tables.tss.privilege_stack_table[0] = VirtAddr::new(kernel_stack_top);
    tables.tss.iomap_base = size_of::<TaskStateSegment>() as u16; // no I/O bitmap: CPL3 port I/O faults

    let tss_base = &tables.tss as *const TaskStateSegment as u64;
    let tss_limit = (size_of::<TaskStateSegment>() - 1) as u64;
    let tss_low = (tss_limit & 0xffff)
        | ((tss_base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, 64-bit TSS (available)
        | (((tss_limit >> 16) & 0xf) << 48)
        | (((tss_base >> 24) & 0xff) << 56);
    tables.gdt = [0, KERNEL_CODE, KERNEL_DATA, USER_DATA, USER_CODE, tss_low, tss_base >> 32, 0];

    // The stubs lie in one 1024-byte-aligned block, so their gates differ only in the offset's low 16 bits:
    // each gate is the first one plus its stub's offset (a few instructions per vector where boot code is
    // emulated, instead of assembling every field).
    if !exception_stubs.is_multiple_of(1024) {
        super::halt::fatal("exception stubs not 1024-byte aligned");
    }
    let first = IdtEntry::interrupt_gate(exception_stubs, IST_GENERAL);
    for (vector, entry) in tables.idt.iter_mut().enumerate() {
        *entry = IdtEntry([first.0[0] + 16 * vector as u64, first.0[1]]);
    }
    for (vector, ist) in [(2, IST_NMI), (8, IST_DOUBLE_FAULT), (18, IST_MACHINE_CHECK)] {
        tables.idt[vector] = IdtEntry::interrupt_gate(exception_stubs + 16 * vector as u64, ist);
    }

    let gdt_pointer = x86_64::structures::DescriptorTablePointer {
        limit: (size_of::<[u64; 8]>() - 1) as u16,
        base: VirtAddr::new(tables.gdt.as_ptr() as u64),
    };
    let idt_pointer = x86_64::structures::DescriptorTablePointer {
        limit: (size_of::<[IdtEntry; IDT_ENTRIES]>() - 1) as u16,
        base: VirtAddr::new(tables.idt.as_ptr() as u64),
    };
    // SAFETY: the GDT above is valid and static; the selectors used below index its descriptors; the
    // far return reloads CS with the 64-bit kernel code segment the CPU already runs in; every IDT entry
    // points at a stub. The privileged instructions are written out here so they stay in the boot-only
    // section.
    unsafe {
        core::arch::asm!("lgdt [{}]", in(reg) &gdt_pointer, options(readonly, nostack, preserves_flags));
        core::arch::asm!(
            "push {code}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "mov ss, {data:x}",
            "mov fs, {data:x}",
            "mov gs, {data:x}",
            code = in(reg) u64::from(KERNEL_CODE_SELECTOR),
            data = in(reg) u64::from(KERNEL_DATA_SELECTOR),
            tmp = lateout(reg) _,
        );
        core::arch::asm!("ltr {0:x}", in(reg) TSS_SELECTOR, options(nostack, preserves_flags));
        core::arch::asm!("lidt [{}]", in(reg) &idt_pointer, options(readonly, nostack, preserves_flags));
    }
}

core::arch::global_asm!(
    ".pushsection .text.secure_run_gate, \"ax\"",
    ".global secure_run_gate_violation",
    "secure_run_gate_violation:",
    // Only supervisor memory is used: the prepared frame and the ports. PKRU may be anything here.
    "lea rsi, [rip + {tables} + {frame}]",
    "mov ecx, {frame_len}",
    "mov dx, {console}",
    "cld",
    "rep outsb",
    "mov dx, {exit}",
    "xor eax, eax",
    "out dx, eax",
    "2:",
    "hlt",
    "jmp 2b",
    ".popsection",
    tables = sym TABLES,
    frame = const VIOLATION_FRAME_OFFSET,
    frame_len = const kernel_abi::GATE_VIOLATION_FRAME.len(),
    console = const kernel_abi::CONSOLE_PORT,
    exit = const kernel_abi::EXIT_PORT,
);

unsafe extern "C" {
    /// Reports a gate violation (a checked privileged instruction reached with forged registers) and
    /// stops the VM. Jumped to, never called.
    #[link_name = "secure_run_gate_violation"]
    pub fn gate_violation() -> !;
}
