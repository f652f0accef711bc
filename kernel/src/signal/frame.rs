//! The app's registers as the kernel hands them back ([`UserContext`]) and the Linux x86-64 signal
//! frame (`struct rt_sigframe`) a handler runs on: the return address (`sa_restorer`), a `ucontext`
//! (flags, link, the alternate-stack state, the saved registers as `struct sigcontext`, the mask to
//! restore) and the `siginfo`, with the FXSAVE image of the x87/SSE state 64-byte aligned above it.
//! glibc and musl read these offsets (`uc_mcontext.gregs[REG_RIP]`, `fpregs`), and their `sa_restorer`
//! calls `rt_sigreturn`, which reads the frame back ([`decode`]).

use super::info::{SigInfo, SIGINFO_SIZE};
use super::SigSet;

/// `struct rt_sigframe`: `pretcode` (8), `struct ucontext` (304), `struct siginfo` (128).
pub const FRAME_SIZE: usize = 8 + UCONTEXT_SIZE + SIGINFO_SIZE;
const UCONTEXT_SIZE: usize = 304;
/// The FXSAVE area (x87, SSE registers, MXCSR), as `uc_mcontext.fpregs` points at it.
pub const FPU_STATE_SIZE: usize = 512;
/// Bytes below the app's stack pointer the kernel leaves alone (the x86-64 ABI's red zone).
pub const RED_ZONE: u64 = 128;

// Offsets inside the frame.
const UC: usize = 8;
const UC_FLAGS: usize = UC;
const UC_STACK: usize = UC + 16;
const MCONTEXT: usize = UC + 40;
const UC_SIGMASK: usize = UC + 296;
const INFO: usize = 8 + UCONTEXT_SIZE;
/// `struct sigcontext`, in u64 slots from `MCONTEXT`.
const SC_REGS: usize = 0; // r8 .. r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags: 18 slots
const SC_SEGMENTS: usize = 18;
const SC_ERR: usize = 19;
const SC_TRAPNO: usize = 20;
const SC_OLDMASK: usize = 21;
const SC_CR2: usize = 22;
const SC_FPSTATE: usize = 23;

/// `uc_flags`: the frame saves SS, and sigreturn restores it strictly (Linux's UC_SIGCONTEXT_SS |
/// UC_STRICT_RESTORE_SS; no XSAVE state: not UC_FP_XSTATE).
pub const UC_FLAGS_VALUE: u64 = 0x2 | 0x4;

/// The app's general registers, instruction pointer, flags and stack pointer: what the kernel resumes
/// it with. The segment registers are the isolation mode's and never come from the app.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserContext {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
}

impl UserContext {
    /// The registers in `struct sigcontext` order, `eflags` last.
    fn sigcontext_order(&self) -> [u64; 18] {
        [
            self.r8,
            self.r9,
            self.r10,
            self.r11,
            self.r12,
            self.r13,
            self.r14,
            self.r15,
            self.rdi,
            self.rsi,
            self.rbp,
            self.rbx,
            self.rdx,
            self.rax,
            self.rcx,
            self.rsp,
            self.rip,
            self.rflags,
        ]
    }

    fn from_sigcontext_order(r: [u64; 18]) -> Self {
        Self {
            r8: r[0],
            r9: r[1],
            r10: r[2],
            r11: r[3],
            r12: r[4],
            r13: r[5],
            r14: r[6],
            r15: r[7],
            rdi: r[8],
            rsi: r[9],
            rbp: r[10],
            rbx: r[11],
            rdx: r[12],
            rax: r[13],
            rcx: r[14],
            rsp: r[15],
            rip: r[16],
            rflags: r[17],
        }
    }
}

/// What the CPU reported with the exception that raised the signal (zeros for other signals).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    pub error_code: u64,
    pub trapno: u64,
    pub cr2: u64,
}

/// Where a frame goes: the frame itself and, above it, the FPU state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLayout {
    pub frame: u64,
    pub fpstate: u64,
}

/// The frame's place below `top` (the app's stack pointer minus the red zone, or the alternate stack's
/// top): the FPU state 64-byte aligned below `top`, the frame below it with `(frame + 8) % 16 == 0` (as
/// at a function's entry, the return address pushed). `None` if it would wrap.
pub fn layout(top: u64) -> Option<FrameLayout> {
    let fpstate = top.checked_sub(FPU_STATE_SIZE as u64)? & !63;
    let frame = (fpstate.checked_sub(FRAME_SIZE as u64)? & !15).checked_sub(8)?;
    Some(FrameLayout { frame, fpstate })
}

/// What a frame holds, apart from the FPU state it points at.
pub struct FrameContents<'a> {
    pub context: &'a UserContext,
    pub trap: TrapInfo,
    /// The mask `rt_sigreturn` restores.
    pub mask: SigSet,
    /// `uc_stack`: the alternate stack as it was, with the flags for the interrupted code.
    pub stack: [u8; 24],
    pub info: &'a SigInfo,
    pub restorer: u64,
    pub fpstate: u64,
}

/// The frame's bytes.
pub fn encode(contents: &FrameContents<'_>) -> [u8; FRAME_SIZE] {
    let mut frame = [0u8; FRAME_SIZE];
    let mut put = |at: usize, value: u64| frame[at..at + 8].copy_from_slice(&value.to_le_bytes());
    put(0, contents.restorer);
    put(UC_FLAGS, UC_FLAGS_VALUE);
    for (slot, value) in contents.context.sigcontext_order().into_iter().enumerate() {
        put(MCONTEXT + (SC_REGS + slot) * 8, value);
    }
    put(MCONTEXT + SC_ERR * 8, contents.trap.error_code);
    put(MCONTEXT + SC_TRAPNO * 8, contents.trap.trapno);
    put(MCONTEXT + SC_OLDMASK * 8, contents.mask.0);
    put(MCONTEXT + SC_CR2 * 8, contents.trap.cr2);
    put(MCONTEXT + SC_FPSTATE * 8, contents.fpstate);
    put(UC_SIGMASK, contents.mask.0);
    frame[UC_STACK..UC_STACK + 24].copy_from_slice(&contents.stack);
    frame[INFO..INFO + SIGINFO_SIZE].copy_from_slice(contents.info.bytes());
    let _ = SC_SEGMENTS; // CS/GS/FS/SS: left zero; sigreturn never loads segments from the frame.
    frame
}

/// Offsets of `siginfo` and `ucontext` from the frame's start (RSI and RDX at the handler's entry).
pub const INFO_OFFSET: u64 = INFO as u64;
pub const UCONTEXT_OFFSET: u64 = UC as u64;

/// What `rt_sigreturn` reads back from a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub context: UserContext,
    pub mask: SigSet,
    /// `uc_stack`: sp, flags, size.
    pub stack: (u64, u32, u64),
    /// `uc_mcontext.fpregs`: where the FPU state is (0: none).
    pub fpstate: u64,
}

/// Reads a frame's bytes (whatever the app wrote into them: every value is checked by the caller).
pub fn decode(frame: &[u8; FRAME_SIZE]) -> Decoded {
    let word = |at: usize| u64::from_le_bytes(frame[at..at + 8].try_into().unwrap_or_default());
    let mut regs = [0u64; 18];
    for (slot, value) in regs.iter_mut().enumerate() {
        *value = word(MCONTEXT + (SC_REGS + slot) * 8);
    }
    let stack: [u8; 24] = frame[UC_STACK..UC_STACK + 24].try_into().unwrap_or([0; 24]);
    Decoded {
        context: UserContext::from_sigcontext_order(regs),
        mask: SigSet(word(UC_SIGMASK)),
        stack: super::AltStack::from_bytes(&stack),
        fpstate: word(MCONTEXT + SC_FPSTATE * 8),
    }
}

/// RFLAGS bits `rt_sigreturn` takes from the frame (Linux's FIX_EFLAGS: AC, OF, DF, TF, SF, ZF, AF, PF,
/// CF, RF); every other bit keeps its kernel-chosen value (IF on, IOPL 0, no NT or VM).
pub const SIGRETURN_RFLAGS: u64 =
    (1 << 18) | (1 << 11) | (1 << 10) | (1 << 8) | (1 << 7) | (1 << 6) | (1 << 4) | (1 << 2) | 1 | (1 << 16);

/// Offset of MXCSR and MXCSR_MASK in the FXSAVE area.
const MXCSR: usize = 24;
const MXCSR_MASK: usize = 28;
/// MXCSR_MASK when FXSAVE reports 0 (Intel SDM: the default mask).
const DEFAULT_MXCSR_MASK: u32 = 0xffbf;

/// Makes FPU state from the app safe for FXRSTOR: MXCSR bits outside the CPU's MXCSR_MASK (taken from
/// `current`, an FXSAVE of this CPU) would raise #GP in the kernel; they are cleared, as Linux does.
pub fn sanitize_fpu_state(state: &mut [u8; FPU_STATE_SIZE], current: &[u8; FPU_STATE_SIZE]) {
    let read =
        |bytes: &[u8; FPU_STATE_SIZE], at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default());
    let mask = match read(current, MXCSR_MASK) {
        0 => DEFAULT_MXCSR_MASK,
        mask => mask,
    };
    let mxcsr = read(state, MXCSR) & mask;
    state[MXCSR..MXCSR + 4].copy_from_slice(&mxcsr.to_le_bytes());
    state[MXCSR_MASK..MXCSR_MASK + 4].copy_from_slice(&current[MXCSR_MASK..MXCSR_MASK + 4]);
    // The bytes Linux reserves for software (464..512, `struct _fpx_sw_bytes`) mean nothing to FXRSTOR.
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::info::{SigInfo, SEGV_MAPERR};
    use crate::signal::SIGSEGV;

    #[test]
    fn the_frame_is_linux_s_size_and_aligned_like_a_call() {
        assert_eq!(FRAME_SIZE, 440);
        for top in [0x7fff_0000u64, 0x7fff_0007, 0x7fff_0fff, 0x1234_5678] {
            let layout = layout(top).unwrap();
            assert_eq!((layout.frame + 8) % 16, 0);
            assert_eq!(layout.fpstate % 64, 0);
            assert!(layout.frame + FRAME_SIZE as u64 <= layout.fpstate);
            assert!(layout.fpstate + FPU_STATE_SIZE as u64 <= top);
        }
        assert_eq!(layout(100), None);
    }

    #[test]
    fn registers_sit_where_glibc_reads_them() {
        let context =
            UserContext { rip: 0x40_1000, rsp: 0x7000, rax: 3, r8: 8, r15: 15, rflags: 0x246, ..Default::default() };
        let info = SigInfo::fault(SIGSEGV, SEGV_MAPERR, 0xbad);
        let frame = encode(&FrameContents {
            context: &context,
            trap: TrapInfo { error_code: 6, trapno: 14, cr2: 0xbad },
            mask: SigSet(0x5),
            stack: [0; 24],
            info: &info,
            restorer: 0x40_2000,
            fpstate: 0x8000,
        });
        let word = |at: usize| u64::from_le_bytes(frame[at..at + 8].try_into().unwrap());
        // glibc: REG_R8 = 0, REG_RIP = 16, REG_EFL = 17, REG_ERR = 19, REG_TRAPNO = 20, REG_CR2 = 22.
        let greg = |index: usize| word(8 + 40 + index * 8);
        assert_eq!((greg(0), greg(7), greg(13), greg(15), greg(16), greg(17)), (8, 15, 3, 0x7000, 0x40_1000, 0x246));
        assert_eq!((greg(19), greg(20), greg(22), greg(23)), (6, 14, 0xbad, 0x8000));
        assert_eq!(word(0), 0x40_2000, "pretcode");
        assert_eq!(word(8 + 296), 0x5, "uc_sigmask");
        assert_eq!(frame[INFO_OFFSET as usize], SIGSEGV as u8);
        let decoded = decode(&frame);
        assert_eq!((decoded.context, decoded.mask, decoded.fpstate), (context, SigSet(0x5), 0x8000));
    }

    #[test]
    fn fpu_state_from_the_app_cannot_set_reserved_mxcsr_bits() {
        let mut state = [0u8; FPU_STATE_SIZE];
        state[MXCSR..MXCSR + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut current = [0u8; FPU_STATE_SIZE];
        current[MXCSR_MASK..MXCSR_MASK + 4].copy_from_slice(&0xffffu32.to_le_bytes());
        sanitize_fpu_state(&mut state, &current);
        assert_eq!(u32::from_le_bytes(state[MXCSR..MXCSR + 4].try_into().unwrap()), 0xffff);
        sanitize_fpu_state(&mut state, &[0; FPU_STATE_SIZE]);
        assert_eq!(u32::from_le_bytes(state[MXCSR..MXCSR + 4].try_into().unwrap()), 0xffbf);
    }
}
