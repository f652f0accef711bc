//! The exception and interrupt entries.
//!
//! Each of the 32 exception vectors and the 16 PIC vectors has a 16-byte stub (`isr_stubs + 16 * vector`) that pushes a zero
//! error code where the CPU pushes none, then the vector, and jumps to the common entry, which saves
//! every register into a [`TrapFrame`] on the IST stack and calls [`handle_exception`]: the timer
//! interrupt runs the process's timers; an exception of the app becomes its signal (a handler runs on
//! the faulting context) or, with no handler, the crash report that ends the run. The #PF stub
//! goes through `trap::syscall`'s `page_fault_entry` first, which takes the nested-KVM SYSCALL quirk's
//! fault as the syscall it is. Every vector runs on an IST stack: a CPL0 app's red zone below its RSP is
//! never touched.

use core::arch::global_asm;
use core::mem::size_of;

use isolation::paging::fault;

use kernel::signal::info::{BUS_ADRALN, FPE_INTDIV, ILL_ILLOPN, SEGV_ACCERR, SEGV_MAPERR, TRAP_TRACE};
use kernel::signal::{SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP};
use kernel::{Process, SigInfo, TrapInfo};

use crate::arch::x86_64::frame::TrapFrame;
use crate::arch::x86_64::halt::crash;
use crate::arch::x86_64::machine::{self, ArchMachine};
use crate::arch::x86_64::registers::Cr2;
use crate::arch::x86_64::{guard, pkru, tables, timer};

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
    // 1024-byte aligned, so the 48 stubs (768 bytes) share all address bits above the low 16: see
    // `tables::init`.
    ".balign 1024",
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
    // The PICs' vectors: the timer (0x20) and the lines that stay masked, which may still arrive spurious.
    stub_without_error_code!(32),
    stub_without_error_code!(33),
    stub_without_error_code!(34),
    stub_without_error_code!(35),
    stub_without_error_code!(36),
    stub_without_error_code!(37),
    stub_without_error_code!(38),
    stub_without_error_code!(39),
    stub_without_error_code!(40),
    stub_without_error_code!(41),
    stub_without_error_code!(42),
    stub_without_error_code!(43),
    stub_without_error_code!(44),
    stub_without_error_code!(45),
    stub_without_error_code!(46),
    stub_without_error_code!(47),
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
    // The way back to the app from a TrapFrame at RSP (also taken by a syscall whose return to the app
    // changed its whole context, from the scratch page's exit frame).
    ".global exception_return",
    "exception_return:",
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
    ist = sym tables::IST_STACKS,
    ist_size = const size_of::<tables::IstStacks>(),
    tables = sym tables::TABLES,
    mpk_flag = const tables::MPK_FLAG_OFFSET,
    pkru_kernel = const pkru::PKRU_KERNEL,
    pkru_app = const pkru::PKRU_APP,
    violation = sym tables::gate_violation,
);

unsafe extern "C" {
    static isr_stubs: u8;
}

/// The block of the 32 exception entry stubs, for the IDT.
pub fn stubs() -> u64 {
    core::ptr::addr_of!(isr_stubs) as u64
}

/// Called by the common entry with the saved registers; returns to resume, or ends the VM.
extern "C" fn exception_handler(frame: &mut TrapFrame) {
    handle_exception(frame);
}

/// Called for every exception and interrupt with the saved registers. Returns only when the app may
/// continue (with the frame as it left it: a signal handler's context, say).
fn handle_exception(frame: &mut TrapFrame) {
    let fault_address = if frame.vector == 14 { Cr2::read_raw() } else { 0 };
    // SAFETY: entries do not nest: the kernel's own copies back their pages first (see `machine`), and it
    // runs with interrupts off, so this entry is the only one running.
    let (process, machine) = unsafe { machine::process_and_machine() };
    if timer::PIC_VECTORS.contains(&(frame.vector as u8)) {
        if frame.vector == u64::from(timer::TIMER_VECTOR) {
            // Kernel code runs with interrupts off (SYSCALL clears IF, the SYSCALL gate clears it after its
            // check, every other entry is an interrupt gate): an interrupt inside kernel text means a CPL0
            // app jumped into kernel code with IF set. Resuming there would run the kernel with the app's
            // registers and PKRU; stop the VM as a gate violation instead.
            if !frame.is_user_mode() && machine.in_kernel_text(frame.rip) {
                // SAFETY: the violation path uses only supervisor memory and never returns.
                unsafe { tables::gate_violation() }
            }
            timer::end_of_interrupt();
            machine.timer_fired();
            process.timer_interrupt(machine);
            super::return_to_app(process, machine, frame, None);
        }
        // The other lines are masked: a spurious interrupt (IRQ 7 or 15) needs no end of interrupt.
        return;
    }
    if frame.vector == 1 && debug_trap(process, machine, frame) {
        return;
    }
    if frame.vector == 14 {
        if machine.guarded_fetch(process.vmas(), frame.error_code, fault_address) {
            // The app reached guarded code: the gate activates it and steps the app through it.
            super::return_to_app(process, machine, frame, None);
            return;
        }
        if machine.demand_fault(process.vmas(), frame.error_code, frame.rip, fault_address) {
            return;
        }
    }
    let in_kernel = !frame.is_user_mode() && machine.in_kernel_text(frame.rip);
    if !in_kernel {
        if let Some(info) = signal_for(process, machine, frame, fault_address) {
            // The app is the user whatever its privilege level: a page fault's code says so (U/S), as
            // Linux's does for code at CPL3, also where the app runs at CPL0 (mpk, none).
            let error_code = if frame.vector == 14 { frame.error_code | fault::USER } else { frame.error_code };
            let trap = TrapInfo { error_code, trapno: frame.vector, cr2: fault_address };
            let mut ctx = super::context_of(frame);
            if process.fault(machine, &mut ctx, info, trap).is_ok() {
                super::store_context(machine, frame, &ctx);
                super::return_to_app(process, machine, frame, None);
                return;
            }
        }
    }
    crash_on_exception(machine, frame, fault_address)
}

/// A #DB the kernel handles itself (true): a single-step trap while the step gate steps the app through
/// guarded code (the gate decides the next step), or the trap a SYSCALL with TF set raises on the entry's
/// first instruction (the syscall goes on, with TF clear and RF set so that no breakpoint the app put on
/// the entry stops it again). Any other #DB is the app's: SIGTRAP, or the end of the run in kernel code.
fn debug_trap(process: &mut Process, machine: &mut ArchMachine, frame: &mut TrapFrame) -> bool {
    let in_kernel = !frame.is_user_mode() && machine.in_kernel_text(frame.rip);
    if in_kernel {
        if frame.rip == super::syscall::entry_address(machine.app_cpl3) {
            frame.rflags = (frame.rflags & !guard::RFLAGS_TF) | guard::RFLAGS_RF;
            return true;
        }
        return false;
    }
    if !machine.stepping() {
        return false;
    }
    super::return_to_app(process, machine, frame, None);
    true
}

/// The signal an exception of the app raises, as Linux maps them (`None`: not the app's, it ends the VM).
fn signal_for(process: &Process, machine: &mut ArchMachine, frame: &TrapFrame, fault_address: u64) -> Option<SigInfo> {
    let rip = frame.rip;
    Some(match frame.vector {
        0 => SigInfo::fault(SIGFPE, FPE_INTDIV, rip),
        1 => SigInfo::fault(SIGTRAP, TRAP_TRACE, rip),
        3 => SigInfo::kernel(SIGTRAP),
        4 | 5 | 10 | 11 | 12 | 13 => SigInfo::kernel(SIGSEGV),
        6 => SigInfo::fault(SIGILL, ILL_ILLOPN, rip),
        14 => {
            if frame.error_code & fault::PROTECTION_KEY != 0 {
                let pkey = machine.memory.translate(fault_address).map_or(0, |(_, flags)| u32::from(flags.pkey));
                SigInfo::pkey_fault(fault_address, pkey)
            } else if process.vmas().find(fault_address).is_some() {
                SigInfo::fault(SIGSEGV, SEGV_ACCERR, fault_address)
            } else {
                SigInfo::fault(SIGSEGV, SEGV_MAPERR, fault_address)
            }
        }
        16 | 19 => SigInfo::fault(SIGFPE, machine.fpu_exception_code(frame.vector == 19), rip),
        17 => SigInfo::fault(SIGBUS, BUS_ADRALN, fault_address),
        _ => return None,
    })
}

/// An exception the app does not survive. Out of line, so the syscall and demand-paging paths above stay
/// short where kernel code is emulated.
#[cold]
#[inline(never)]
fn crash_on_exception(machine: &ArchMachine, frame: &TrapFrame, fault_address: u64) -> ! {
    // A CPL3 app that jumps into kernel text faults there too; only CPL0 execution is the kernel's.
    let in_kernel = !frame.is_user_mode() && machine.in_kernel_text(frame.rip);
    let mut pkey = 0;
    if frame.vector == 14 && frame.error_code & fault::PROTECTION_KEY != 0 {
        if let Some((_, flags)) = machine.memory.translate(fault_address) {
            pkey = u64::from(flags.pkey);
        }
    }
    let record = frame.crash_record(fault_address, pkey, in_kernel);
    crash(&record)
}
