//! SYSCALL entries, one per privilege arrangement, and the MSRs that route SYSCALL to them.
//!
//! SYSCALL leaves RSP on the app's stack, so each entry first parks it in the supervisor scratch page
//! and switches to the kernel's syscall stack before it pushes anything: a CPL0 app's red zone below
//! RSP is never written. The app's registers are saved in a [`SyscallFrame`], the syscall runs, and the
//! frame (with RAX = the result) is restored.
//!
//! - `syscall_entry_cpl0` (`none` and `mpk`): the app runs at CPL0, so the return is POPFQ + JMP RCX
//!   rather than SYSRET (which always returns to CPL3). In `mpk` mode the PKRU gates switch keys on the
//!   way in and out. The app's arithmetic flags are restored exactly in `none` mode; in `mpk` mode the
//!   exit gate's compare clobbers them, which the x86-64 Linux syscall ABI allows ("cc" is clobbered).
//! - `syscall_entry_ring3`: classic SYSCALL/SYSRET from and to CPL3.

use core::arch::global_asm;
use core::mem::size_of;

use super::gdt::{KERNEL_CODE_SELECTOR, KERNEL_DATA_SELECTOR, SCRATCH, TABLES};
use super::registers::{MSR_FMASK, MSR_LSTAR, MSR_STAR};
use super::sync::CpuLocal;

/// The app's registers at SYSCALL, in stack order (lowest address first).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SyscallFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r9: u64,
    pub r8: u64,
    pub r10: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// The syscall number on entry, the result on exit.
    pub rax: u64,
    /// Where the app continues (RCX at SYSCALL).
    pub rip: u64,
    /// The app's RFLAGS (R11 at SYSCALL).
    pub rflags: u64,
    pub rsp: u64,
}
const _: () = assert!(size_of::<SyscallFrame>() == 16 * 8);

impl SyscallFrame {
    pub fn number(&self) -> u64 {
        self.rax
    }
    pub fn args(&self) -> [u64; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9]
    }
}

const SYSCALL_STACK_SIZE: usize = 128 * 1024;

#[repr(C, align(4096))]
pub struct KernelStack(pub [u8; SYSCALL_STACK_SIZE]);

/// The stack syscalls run on (kernel data: keyed in `mpk` mode).
pub static SYSCALL_STACK: CpuLocal<KernelStack> = CpuLocal::new(KernelStack([0; SYSCALL_STACK_SIZE]));

pub fn syscall_stack_top() -> u64 {
    SYSCALL_STACK.as_ptr() as u64 + SYSCALL_STACK_SIZE as u64
}

macro_rules! save_frame {
    () => {
        concat!(
            "push qword ptr [rip + {scratch}]\n", // the app's RSP
            "push r11\n",
            "push rcx\n",
            "push rax\n",
            "push rdi\n",
            "push rsi\n",
            "push rdx\n",
            "push r10\n",
            "push r8\n",
            "push r9\n",
            "push rbx\n",
            "push rbp\n",
            "push r12\n",
            "push r13\n",
            "push r14\n",
            "push r15\n",
            "mov rdi, rsp\n",
            "cld\n",
            "call {dispatch}\n",
            "pop r15\n",
            "pop r14\n",
            "pop r13\n",
            "pop r12\n",
            "pop rbp\n",
            "pop rbx\n",
            "pop r9\n",
            "pop r8\n",
            "pop r10\n",
            "pop rdx\n",
            "pop rsi\n",
            "pop rdi\n",
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
    "mov [rip + {scratch}], rsp",
    crate::pkru_syscall_gate_enter!(),
    "lea rsp, [rip + {stack} + {stack_size}]",
    save_frame!(),
    "push r11",
    "popfq",
    "pop rsp",
    crate::pkru_syscall_gate_leave!(),
    "jmp rcx",
    "",
    ".global syscall_entry_ring3",
    "syscall_entry_ring3:",
    "mov [rip + {scratch}], rsp",
    "lea rsp, [rip + {stack} + {stack_size}]",
    save_frame!(),
    "pop rsp",
    "sysretq",
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
    "jmp rcx",
    ".popsection",
    scratch = sym SCRATCH,
    tables = sym TABLES,
    stack = sym SYSCALL_STACK,
    stack_size = const SYSCALL_STACK_SIZE,
    dispatch = sym syscall_dispatch,
    mpk_flag = const super::pkru::MPK_FLAG_OFFSET,
    pkru_kernel = const super::pkru::PKRU_KERNEL,
    pkru_app = const super::pkru::PKRU_APP,
    violation = sym super::pkru::gate_violation,
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
    let efer = super::registers::read_msr(MSR_EFER) | EFER_SCE;
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

/// Called by the entries with the app's saved registers; writes the result into `frame.rax`.
extern "C" fn syscall_dispatch(frame: &mut SyscallFrame) {
    super::machine::handle_syscall(frame);
}
