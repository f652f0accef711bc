//! The IDT and the exception entries.
//!
//! Each of the 32 exception vectors has a 16-byte stub (`isr_stubs + 16 * vector`) that pushes a zero
//! error code where the CPU pushes none, then the vector, and jumps to the common entry, which saves
//! every register into a [`TrapFrame`] on the IST stack and calls [`exception_handler`]. The #PF stub
//! goes through `syscall::page_fault_entry` first, which takes the nested-KVM SYSCALL quirk's fault as
//! the syscall it is. Every vector runs on an IST stack: a CPL0 app's red zone below its RSP is never
//! touched.

use core::arch::global_asm;
use core::mem::size_of;

use kernel_abi::CrashRecord;

use super::gdt::{self, IDT_ENTRIES, IST_DOUBLE_FAULT, IST_GENERAL, IST_MACHINE_CHECK, IST_NMI, KERNEL_CODE_SELECTOR};

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

/// Registers saved by the exception entry, in stack order (lowest address first).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
const _: () = assert!(size_of::<TrapFrame>() == 22 * 8);

impl TrapFrame {
    pub fn is_user_mode(&self) -> bool {
        self.cs & 3 == 3
    }

    pub fn crash_record(&self, fault_address: u64, pkey: u64, in_kernel: bool) -> CrashRecord {
        CrashRecord {
            vector: self.vector,
            error_code: self.error_code,
            fault_address,
            pkey,
            in_kernel: u64::from(in_kernel),
            rip: self.rip,
            rsp: self.rsp,
            rflags: self.rflags,
            rax: self.rax,
            rbx: self.rbx,
            rcx: self.rcx,
            rdx: self.rdx,
            rsi: self.rsi,
            rdi: self.rdi,
            rbp: self.rbp,
            r8: self.r8,
            r9: self.r9,
            r10: self.r10,
            r11: self.r11,
            r12: self.r12,
            r13: self.r13,
            r14: self.r14,
            r15: self.r15,
        }
    }
}

macro_rules! stub_without_error_code {
    ($vector:literal) => {
        concat!(".balign 16\n push 0\n push ", $vector, "\n jmp isr_common\n")
    };
}
macro_rules! stub_with_error_code {
    ($vector:literal) => {
        concat!(".balign 16\n push ", $vector, "\n jmp isr_common\n")
    };
}

global_asm!(
    ".pushsection .text.secure_run_isr, \"ax\"",
    // 512-byte aligned, so the 32 stubs (512 bytes) share all address bits above the low 16: see `init`.
    ".balign 512",
    ".global isr_stubs",
    "isr_stubs:",
    stub_without_error_code!(0),
    stub_without_error_code!(1),
    stub_without_error_code!(2),
    stub_without_error_code!(3),
    stub_without_error_code!(4),
    stub_without_error_code!(5),
    stub_without_error_code!(6),
    stub_without_error_code!(7),
    stub_with_error_code!(8),
    stub_without_error_code!(9),
    stub_with_error_code!(10),
    stub_with_error_code!(11),
    stub_with_error_code!(12),
    stub_with_error_code!(13),
    // #PF first checks for the nested-KVM SYSCALL quirk (`syscall::page_fault_entry`).
    ".balign 16\n jmp page_fault_entry\n",
    stub_without_error_code!(15),
    stub_without_error_code!(16),
    stub_with_error_code!(17),
    stub_without_error_code!(18),
    stub_without_error_code!(19),
    stub_without_error_code!(20),
    stub_with_error_code!(21),
    stub_without_error_code!(22),
    stub_without_error_code!(23),
    stub_without_error_code!(24),
    stub_without_error_code!(25),
    stub_without_error_code!(26),
    stub_without_error_code!(27),
    stub_without_error_code!(28),
    stub_with_error_code!(29),
    stub_with_error_code!(30),
    stub_without_error_code!(31),
    ".balign 16",
    ".global isr_common",
    "isr_common:",
    "push rax",
    "push rbx",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push rbp",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    crate::pkru_gate_enter!(),
    // Every exception arrives on an IST stack. Anything else is a jump into this entry (in `mpk` mode a
    // CPL0 app can do that, with EAX forged to pass the gate): halt rather than handle a forged frame.
    "lea rax, [rip + {ist}]",
    "cmp rsp, rax",
    "jb {violation}",
    "add rax, {ist_size}",
    "cmp rsp, rax",
    "jae {violation}",
    "mov rdi, rsp",
    "cld",
    "call {handler}",
    crate::pkru_gate_leave!(),
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rbp",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rbx",
    "pop rax",
    "add rsp, 16",
    "iretq",
    ".popsection",
    handler = sym exception_handler,
    ist = sym gdt::IST_STACKS,
    ist_size = const size_of::<gdt::IstStacks>(),
    tables = sym gdt::TABLES,
    mpk_flag = const super::pkru::MPK_FLAG_OFFSET,
    pkru_kernel = const super::pkru::PKRU_KERNEL,
    pkru_app = const super::pkru::PKRU_APP,
    violation = sym super::pkru::gate_violation,
);

unsafe extern "C" {
    static isr_stubs: u8;
}

/// Fills and loads the IDT: every exception vector, each on an IST stack.
///
/// # Safety
/// Boot only, once, after [`gdt::init`].
#[inline(never)]
#[link_section = ".secure_run_boot_text"]
pub unsafe fn init() {
    // SAFETY: boot runs alone; no other reference to TABLES exists.
    let tables = unsafe { gdt::TABLES.get() };
    let stubs = core::ptr::addr_of!(isr_stubs) as u64;
    // The stubs lie in one 512-byte block, so their gates differ only in the offset's low 16 bits: each
    // gate is the first one plus its stub's offset (a few instructions per vector where boot code is
    // emulated, instead of assembling every field).
    if !stubs.is_multiple_of(512) {
        super::start::fatal("exception stubs not 512-byte aligned");
    }
    let first = IdtEntry::interrupt_gate(stubs, IST_GENERAL);
    for (vector, entry) in tables.idt.iter_mut().enumerate() {
        *entry = IdtEntry([first.0[0] + 16 * vector as u64, first.0[1]]);
    }
    for (vector, ist) in [(2, IST_NMI), (8, IST_DOUBLE_FAULT), (18, IST_MACHINE_CHECK)] {
        tables.idt[vector] = IdtEntry::interrupt_gate(stubs + 16 * vector as u64, ist);
    }
    let pointer = x86_64::structures::DescriptorTablePointer {
        limit: (size_of::<[IdtEntry; IDT_ENTRIES]>() - 1) as u16,
        base: x86_64::VirtAddr::new(tables.idt.as_ptr() as u64),
    };
    // SAFETY: the IDT is static and every entry points at a stub above.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) };
}

/// Called by the common entry with the saved registers; returns to resume, or ends the VM.
extern "C" fn exception_handler(frame: &mut TrapFrame) {
    super::start::handle_exception(frame);
}
