//! The register frames the entries save: [`TrapFrame`] (exceptions) and [`SyscallFrame`] (SYSCALL).

use core::mem::size_of;

use kernel_abi::CrashRecord;

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
    pub const ZERO: Self = Self {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        r11: 0,
        r10: 0,
        r9: 0,
        r8: 0,
        rbp: 0,
        rdi: 0,
        rsi: 0,
        rdx: 0,
        rcx: 0,
        rbx: 0,
        rax: 0,
        vector: 0,
        error_code: 0,
        rip: 0,
        cs: 0,
        rflags: 0,
        rsp: 0,
        ss: 0,
    };

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

/// The app's registers at SYSCALL that the kernel reads or must restore, in stack order (lowest address
/// first). The callee-saved registers (RBX, RBP, R12-R15) are not saved: the Rust code the entry calls
/// preserves them by the C ABI, so the app gets its own values back without the entry touching them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SyscallFrame {
    /// The arguments in ABI order: RDI, RSI, RDX, R10, R8, R9 (laid out so the dispatcher reads them in
    /// place).
    pub args: [u64; 6],
    /// The syscall number on entry, the result on exit.
    pub rax: u64,
    /// Where the app continues (RCX at SYSCALL).
    pub rip: u64,
    /// The app's RFLAGS (R11 at SYSCALL).
    pub rflags: u64,
    pub rsp: u64,
}
// 80 bytes: the SYSCALL entries push it at the top of a 4 KiB-aligned stack, and the #PF entry below the
// CPU's 48-byte exception frame on a 16-byte-aligned IST stack, so RSP is 16-byte aligned at their CALL.
const _: () = assert!(size_of::<SyscallFrame>() == 10 * 8);

impl SyscallFrame {
    pub fn number(&self) -> u64 {
        self.rax
    }
}
