//! The entries from the app into the kernel: SYSCALL (and the #PF that is a SYSCALL on the nested KVM),
//! the exceptions and the timer interrupt, each with the Rust code that handles it; and the way back to
//! the app when the kernel has work to do there (a signal to deliver, a frame to restore).
pub mod exception;
pub mod syscall;

use kernel::{Process, Resume, UserContext};

use crate::arch::x86_64::console;
use crate::arch::x86_64::frame::TrapFrame;
use crate::arch::x86_64::machine::ArchMachine;

/// RFLAGS bits an app may keep: CF, PF, AF, ZF, SF, TF, IF, DF, OF, AC, ID (never IOPL, NT, RF or VM,
/// which SYSRET/IRETQ would otherwise load from a corrupted frame).
const USER_RFLAGS: u64 = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x4_0000 | 0x20_0000;
const RFLAGS_IF: u64 = 0x200;

/// The RFLAGS the app resumes with: the arithmetic and app-settable bits of `rflags`, bit 1 set.
pub fn app_rflags(rflags: u64) -> u64 {
    (rflags & USER_RFLAGS) | 0x2
}

/// The app's registers in a trap frame.
pub fn context_of(frame: &TrapFrame) -> UserContext {
    UserContext {
        rax: frame.rax,
        rbx: frame.rbx,
        rcx: frame.rcx,
        rdx: frame.rdx,
        rsi: frame.rsi,
        rdi: frame.rdi,
        rbp: frame.rbp,
        rsp: frame.rsp,
        r8: frame.r8,
        r9: frame.r9,
        r10: frame.r10,
        r11: frame.r11,
        r12: frame.r12,
        r13: frame.r13,
        r14: frame.r14,
        r15: frame.r15,
        rip: frame.rip,
        rflags: frame.rflags,
    }
}

/// Writes `ctx` into a trap frame the app returns from: the segments are the isolation mode's, RFLAGS
/// only the app's bits with IF on (the app always runs with interrupts on).
pub fn store_context(machine: &ArchMachine, frame: &mut TrapFrame, ctx: &UserContext) {
    let (cs, ss) = machine.app_selectors();
    // Field by field, in place (the vector and error code stay): where kernel code is emulated, a
    // struct-update copy of the whole frame costs real time.
    frame.rax = ctx.rax;
    frame.rbx = ctx.rbx;
    frame.rcx = ctx.rcx;
    frame.rdx = ctx.rdx;
    frame.rsi = ctx.rsi;
    frame.rdi = ctx.rdi;
    frame.rbp = ctx.rbp;
    frame.rsp = ctx.rsp;
    frame.r8 = ctx.r8;
    frame.r9 = ctx.r9;
    frame.r10 = ctx.r10;
    frame.r11 = ctx.r11;
    frame.r12 = ctx.r12;
    frame.r13 = ctx.r13;
    frame.r14 = ctx.r14;
    frame.r15 = ctx.r15;
    frame.rip = ctx.rip;
    frame.rflags = app_rflags(ctx.rflags) | RFLAGS_IF;
    frame.cs = u64::from(cs);
    frame.ss = u64::from(ss);
}

/// The kernel's work on the way back to the app from `frame` (a syscall's number in `syscall`), the
/// timer armed for the process's next timer, and the step gate of guarded code (`guard`). Ends the VM
/// if a signal kills the process or the gate stops it.
pub fn return_to_app(process: &mut Process, machine: &mut ArchMachine, frame: &mut TrapFrame, syscall: Option<u64>) {
    if process.has_return_work() {
        let mut ctx = context_of(frame);
        match process.return_to_app(machine, &mut ctx, syscall) {
            Resume::App => store_context(machine, frame, &ctx),
            Resume::Killed { signal, .. } => killed(signal),
            Resume::Exit(status) => console::exit(status),
        }
    }
    machine.arm_timer(process);
    if let Err((stop, address)) = machine.step_gate(process.vmas(), frame) {
        guarded_stop(frame, stop, address)
    }
}

/// The step gate stopped the app before `stop` at `address` would run: the crash that ends the run.
#[cold]
#[inline(never)]
fn guarded_stop(frame: &TrapFrame, stop: isolation::guard::Stop, address: u64) -> ! {
    let record = kernel_abi::CrashRecord {
        vector: kernel_abi::CRASH_GUARDED_INSTRUCTION,
        error_code: stop.code(),
        ..frame.crash_record(address, 0, false)
    };
    crate::arch::x86_64::halt::crash(&record)
}

/// A signal's default action ended the process.
pub fn killed(signal: u32) -> ! {
    let _ = core::fmt::Write::write_fmt(
        &mut console::Log,
        format_args!("secure-run kernel: the app was killed by signal {signal}\n"),
    );
    console::killed(signal as i32)
}
