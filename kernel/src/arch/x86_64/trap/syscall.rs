//! SYSCALL entries, one per privilege arrangement, and the MSRs that route SYSCALL to them.
//!
//! SYSCALL leaves RSP on the app's stack, so each entry first parks it in the supervisor scratch page
//! and switches to the kernel's syscall stack before it pushes anything: a CPL0 app's red zone below
//! RSP is never written. The app's caller-saved registers are saved in a [`SyscallFrame`], the syscall
//! runs, and the frame (with RAX = the result) is restored.
//!
//! - `syscall_entry_cpl0` (`none` and `mpk`): the app runs at CPL0, so the return is POPFQ + STI + JMP
//!   RCX rather than SYSRET (which always returns to CPL3). In `mpk` mode the PKRU gates switch keys on the
//!   way in and out. The app's arithmetic flags are restored exactly in `none` mode; in `mpk` mode the
//!   exit gate's compare clobbers them, which the x86-64 Linux syscall ABI allows ("cc" is clobbered).
//! - `syscall_entry_ring3`: classic SYSCALL/SYSRET from and to CPL3.

use core::arch::global_asm;

use kernel::SyscallResult;

use crate::arch::x86_64::frame::{SyscallFrame, TrapFrame};
use crate::arch::x86_64::halt::fatal;
use crate::arch::x86_64::registers::{MSR_FMASK, MSR_LSTAR, MSR_STAR};
use crate::arch::x86_64::sync::CpuLocal;
use crate::arch::x86_64::tables::{KERNEL_CODE_SELECTOR, KERNEL_DATA_SELECTOR, MPK_FLAG_OFFSET, SCRATCH, TABLES};
use crate::arch::x86_64::{console, machine, pkru, tables};

const SYSCALL_STACK_SIZE: usize = 128 * 1024;

#[repr(C, align(4096))]
pub struct KernelStack(pub [u8; SYSCALL_STACK_SIZE]);

/// The stack syscalls run on (kernel data: keyed in `mpk` mode).
pub static SYSCALL_STACK: CpuLocal<KernelStack> = CpuLocal::new(KernelStack([0; SYSCALL_STACK_SIZE]));

pub fn syscall_stack_top() -> u64 {
    SYSCALL_STACK.as_ptr() as u64 + SYSCALL_STACK_SIZE as u64
}

/// Saves the rest of a [`SyscallFrame`] (the entry has pushed the app's RSP), calls the dispatcher and
/// restores the registers; RCX and R11 then hold the return address and the RFLAGS to resume with.
///
/// When the dispatcher says the return has work to do (a signal to deliver, a frame to restore), the
/// slow path pushes the callee-saved registers too (the Rust code restored the app's values into them),
/// so the whole context is on the stack, calls [`syscall_return_work`], and leaves through
/// `exception_return` from the exit frame it wrote: the app resumes with IRETQ there, whatever mode.
macro_rules! save_frame {
    () => {
        concat!(
            "push r11\n",
            "push rcx\n",
            "push rax\n",
            "push r9\n",
            "push r8\n",
            "push r10\n",
            "push rdx\n",
            "push rsi\n",
            "push rdi\n",
            "mov rdi, rsp\n",
            "cld\n",
            "call {dispatch}\n",
            "test eax, eax\n",
            "jnz syscall_slow_path\n",
            "pop rdi\n",
            "pop rsi\n",
            "pop rdx\n",
            "pop r10\n",
            "pop r8\n",
            "pop r9\n",
            "pop rax\n",
            "pop rcx\n",
            "pop r11\n",
        )
    };
}

global_asm!(
    ".pushsection .text.secure_run_syscall, \"ax\"",
    ".global syscall_entry_cpl0",
    "syscall_entry_cpl0:",
    // SYSCALL cleared IF; a jump here from a CPL0 app might not have (see also the gate).
    "cli",
    "mov [rip + {scratch}], rsp",
    crate::pkru_syscall_gate_enter!(),
    "lea rsp, [rip + {stack} + {stack_size}]",
    "push qword ptr [rip + {scratch}]", // the app's RSP
    save_frame!(),
    // RFLAGS without IF until the last instruction: an interrupt must not arrive on the way out (still on
    // the kernel's stack, or between the exit gate and the app). STI's one-instruction shadow makes the
    // app's first instruction the first an interrupt can arrive before; the app always resumes with IF
    // on, as on Linux.
    "push r11",
    "and qword ptr [rsp], {not_if}",
    "popfq",
    "pop rsp",
    crate::pkru_syscall_gate_leave!(),
    "sti",
    "jmp rcx",
    "",
    ".global syscall_entry_ring3",
    "syscall_entry_ring3:",
    "mov [rip + {scratch}], rsp",
    "lea rsp, [rip + {stack} + {stack_size}]",
    "push qword ptr [rip + {scratch}]", // the app's RSP
    save_frame!(),
    "pop rsp",
    "sysretq",
    "",
    // The #PF entry (the IDT's vector-14 stub jumps here; the CPU pushed the error code). On the nested
    // KVM of some cloud hosts (docs/design.md), SYSCALL from ring 3 jumps to LSTAR without leaving CPL3, so the
    // first instruction fetch at the (supervisor) entry page faults in user mode. That fault, and only
    // that one (in `ring3` mode, a user-mode instruction fetch at exactly LSTAR), is taken as the syscall
    // it was: RCX and R11 hold what SYSCALL put there, and the syscall runs here, on the #PF's IST stack,
    // without the general exception path (every instruction of this path is emulated on that KVM). On
    // correct hardware SYSCALL never faults this way; an app that jumps to LSTAR itself only gets the
    // syscall it could have made with SYSCALL. Every other #PF goes on to the common exception entry.
    ".global page_fault_entry",
    "page_fault_entry:",
    // In `mpk` mode a CPL0 app could jump here with a forged frame: no shortcut, the common entry's
    // checks apply. (LSTAR is `syscall_entry_ring3` only in `ring3` mode, and no other mode runs CPL3.)
    "test byte ptr [rip + {tables} + {mpk_flag}], 1",
    "jnz 2f",
    "push rax",
    // [rsp + 8]: error code, [rsp + 16]: RIP, [rsp + 24]: CS.
    "test byte ptr [rsp + 8], {fetch}",
    "jz 1f",
    "mov eax, [rsp + 24]",
    "and eax, 3",
    "cmp eax, 3",
    "jne 1f",
    "lea rax, [rip + syscall_entry_ring3]",
    "cmp rax, [rsp + 16]",
    "jne 1f",
    "mov rax, cr2",
    "cmp rax, [rsp + 16]",
    "jne 1f",
    "pop rax",
    // [rsp]: error code, then the IRET frame (+8 RIP, +16 CS, +24 RFLAGS, +32 RSP, +40 SS).
    "push qword ptr [rsp + 32]", // the app's RSP
    save_frame!(),
    // Drop the frame's RSP and the error code; resume as SYSRET would: at RCX, with the RFLAGS the
    // dispatcher left in R11.
    "add rsp, 16",
    "mov [rsp], rcx",
    "mov [rsp + 16], r11",
    "iretq",
    "1:",
    "pop rax",
    "2:",
    "push 14",
    "jmp isr_common",
    "",
    // The first entry into a CPL0 app: RDI = its stack pointer, RSI = its entry point.
    ".global enter_app_cpl0",
    "enter_app_cpl0:",
    "mov rsp, rdi",
    "mov rcx, rsi",
    "xor eax, eax", "xor ebx, ebx", "xor edx, edx", "xor esi, esi", "xor edi, edi", "xor ebp, ebp",
    "xor r8d, r8d", "xor r9d, r9d", "xor r10d, r10d", "xor r11d, r11d",
    "xor r12d, r12d", "xor r13d, r13d", "xor r14d, r14d", "xor r15d, r15d",
    "push 0x2",
    "popfq",
    crate::pkru_syscall_gate_leave!(),
    "sti",
    "jmp rcx",
    "",
    // The slow path of every SYSCALL entry (see `save_frame!`), with the SyscallFrame at RSP.
    ".global syscall_slow_path",
    "syscall_slow_path:",
    "push r15",
    "push r14",
    "push r13",
    "push r12",
    "push rbp",
    "push rbx",
    "mov rdi, rsp",
    "call {return_work}",
    "lea rsp, [rip + {scratch} + {exit_frame}]",
    "jmp exception_return",
    ".popsection",
    scratch = sym SCRATCH,
    tables = sym TABLES,
    stack = sym SYSCALL_STACK,
    stack_size = const SYSCALL_STACK_SIZE,
    dispatch = sym syscall_dispatch,
    not_if = const !0x200i64,
    return_work = sym syscall_return_work,
    exit_frame = const tables::EXIT_FRAME_OFFSET,
    fetch = const isolation::paging::fault::FETCH,
    mpk_flag = const MPK_FLAG_OFFSET,
    pkru_kernel = const pkru::PKRU_KERNEL,
    pkru_app = const pkru::PKRU_APP,
    violation = sym tables::gate_violation,
);

unsafe extern "C" {
    static syscall_entry_cpl0: u8;
    static syscall_entry_ring3: u8;
    /// Jumps to a CPL0 app at `entry` with its stack at `stack_pointer` and every register zero.
    pub fn enter_app_cpl0(stack_pointer: u64, entry: u64) -> !;
}

/// The address SYSCALL jumps to in this mode.
pub fn entry_address(app_at_cpl3: bool) -> u64 {
    if app_at_cpl3 {
        core::ptr::addr_of!(syscall_entry_ring3) as u64
    } else {
        core::ptr::addr_of!(syscall_entry_cpl0) as u64
    }
}

/// RFLAGS bits cleared on SYSCALL: TF, IF, DF, AC, NT (and IOPL).
const FMASK: u64 = (1 << 8) | (1 << 9) | (1 << 10) | (1 << 18) | (1 << 14) | (3 << 12);

/// Routes SYSCALL to the entry for this mode.
///
/// # Safety
/// Boot only, after the GDT is loaded (STAR names its selectors).
#[inline(never)]
#[link_section = ".secure_run_boot_text"]
pub unsafe fn init(app_at_cpl3: bool) {
    let star = (u64::from(KERNEL_DATA_SELECTOR) << 48) | (u64::from(KERNEL_CODE_SELECTOR) << 32);
    let efer = crate::arch::x86_64::registers::read_msr(MSR_EFER) | EFER_SCE;
    // SAFETY: EFER.SCE enables SYSCALL; STAR holds the GDT's selectors, LSTAR a valid entry, FMASK a
    // mask of RFLAGS bits.
    unsafe {
        boot_write_msr(MSR_EFER, efer);
        boot_write_msr(MSR_STAR, star);
        boot_write_msr(MSR_LSTAR, entry_address(app_at_cpl3));
        boot_write_msr(MSR_FMASK, FMASK);
    }
}

const MSR_EFER: u32 = 0xc000_0080;
const EFER_SCE: u64 = 1;

/// WRMSR, inlined into the boot-only code that calls it.
///
/// # Safety
/// Boot only; the value must be valid for the MSR.
#[inline(always)]
unsafe fn boot_write_msr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the value is valid.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack))
    };
}

/// Called by the entries with the app's saved registers; writes the result into `frame.rax`. Returns
/// nonzero when the return to the app has work to do with its whole context: the entry then saves the
/// rest of the registers and calls [`syscall_return_work`] (the slow path, see the entries).
extern "C" fn syscall_dispatch(frame: &mut SyscallFrame) -> u64 {
    frame.rflags = super::app_rflags(frame.rflags);
    check_return_address(frame.rip);
    // SAFETY: one syscall at a time; nothing else holds the process or the machine during it.
    let (process, machine) = unsafe { machine::process_and_machine() };
    let number = frame.number();
    machine.syscall_number = number;
    match process.syscall(machine, number, &frame.args, frame.rsp) {
        SyscallResult::Return(value) => frame.rax = value as u64,
        SyscallResult::Exit(status) => console::exit(status),
        SyscallResult::Killed(signal) => super::killed(signal as u32),
    }
    // POPFQ on the CPL0 return would load TF in kernel code: with TF set (the step gate's, or the app's
    // own) the return takes IRETQ, which sets it together with the jump back.
    let work = process.has_return_work()
        || machine.stepping()
        || (frame.rflags & crate::arch::x86_64::guard::RFLAGS_TF != 0 && !machine.app_cpl3);
    if !work {
        machine.arm_timer(process);
    }
    u64::from(work)
}

fn check_return_address(rip: u64) {
    if rip >= isolation::paging::LOWER_HALF_END {
        // SYSRET to a non-canonical address would fault in the kernel with the app's stack.
        fatal("syscall return address outside the lower half");
    }
}

/// A syscall's registers with the callee-saved ones the slow path pushed below them.
#[repr(C)]
pub struct FullSyscallFrame {
    pub rbx: u64,
    pub rbp: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub frame: SyscallFrame,
}

/// The slow path's Rust side: the return work with the app's whole context, which goes into the
/// scratch page's exit frame; the entry then leaves through `exception_return` (IRETQ from that frame).
extern "C" fn syscall_return_work(full: &FullSyscallFrame) {
    // SAFETY: as in `syscall_dispatch`, which has returned.
    let (process, machine) = unsafe { machine::process_and_machine() };
    let f = &full.frame;
    let [rdi, rsi, rdx, r10, r8, r9] = f.args;
    // SAFETY: the scratch page is written only by entries, one at a time; the exit path reads it next.
    let exit = unsafe { &mut tables::SCRATCH.get().exit_frame };
    *exit = TrapFrame {
        rax: f.rax,
        rbx: full.rbx,
        rcx: f.rip, // SYSCALL's clobbers, as the app would see them after SYSRET
        rdx,
        rsi,
        rdi,
        rbp: full.rbp,
        rsp: f.rsp,
        r8,
        r9,
        r10,
        r11: f.rflags,
        r12: full.r12,
        r13: full.r13,
        r14: full.r14,
        r15: full.r15,
        rip: f.rip,
        rflags: f.rflags,
        ..TrapFrame::ZERO
    };
    super::store_context(machine, exit, &super::context_of(exit));
    let number = machine.syscall_number;
    super::return_to_app(process, machine, exit, Some(number));
}
