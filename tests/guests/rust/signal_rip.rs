//! A Rust std program (x86_64-unknown-linux-musl, static) whose signal handlers read and change the
//! interrupted context through `ucontext`: a NULL-page read (SIGSEGV) and a `ud2` (SIGILL) must report the
//! faulting instruction's address in `uc_mcontext.gregs[REG_RIP]` (and, for the read, the trap number, the
//! error code and CR2 as Linux fills them); the handler then moves RIP past the instruction and sets RAX,
//! and the program checks it resumed there with that value. Prints relations, never addresses, so the
//! output is the same natively and under secure-run.

use std::arch::asm;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// musl's `struct sigaction` on x86-64: handler, 128-byte mask, flags, restorer.
#[repr(C)]
struct SigAction {
    handler: usize,
    mask: [u64; 16],
    flags: i32,
    restorer: usize,
}

extern "C" {
    fn sigaction(signal: i32, action: *const SigAction, old: *mut SigAction) -> i32;
}

const SIGILL: i32 = 4;
const SIGSEGV: i32 = 11;
const SA_SIGINFO: i32 = 4;
const SEGV_MAPERR: i32 = 1;
const ILL_ILLOPN: i32 = 2;
/// Where `uc_mcontext.gregs` starts in `ucontext_t` (flags, link, `stack_t`), and the registers' indices.
const GREGS: usize = 40;
const REG_RAX: usize = 13;
const REG_RIP: usize = 16;
const REG_ERR: usize = 19;
const REG_TRAPNO: usize = 20;
const REG_CR2: usize = 22;
/// The address the read faults at: in the never-mapped first page.
const NULL_READ: u64 = 0x18;
/// The value the handler leaves in RAX.
const FIXED_RAX: u64 = 0x5eed;

/// What the last handler saw, and where it should resume the program.
static SIGNO: AtomicU64 = AtomicU64::new(0);
static CODE: AtomicU64 = AtomicU64::new(0);
static ADDR: AtomicU64 = AtomicU64::new(0);
static RIP: AtomicU64 = AtomicU64::new(0);
static TRAPNO: AtomicU64 = AtomicU64::new(0);
static ERR: AtomicU64 = AtomicU64::new(0);
static CR2: AtomicU64 = AtomicU64::new(0);
static RESUME: AtomicU64 = AtomicU64::new(0);

extern "C" fn handler(signo: i32, info: *const u8, context: *mut u8) {
    // SAFETY: the kernel passes a valid siginfo_t and ucontext_t for SA_SIGINFO handlers; the offsets are
    // the x86-64 ABI's.
    unsafe {
        let code = (info.add(8) as *const i32).read();
        let addr = (info.add(16) as *const u64).read();
        let gregs = context.add(GREGS) as *mut u64;
        SIGNO.store(signo as u64, Ordering::SeqCst);
        CODE.store(code as u64, Ordering::SeqCst);
        ADDR.store(addr, Ordering::SeqCst);
        RIP.store(gregs.add(REG_RIP).read(), Ordering::SeqCst);
        TRAPNO.store(gregs.add(REG_TRAPNO).read(), Ordering::SeqCst);
        ERR.store(gregs.add(REG_ERR).read(), Ordering::SeqCst);
        CR2.store(gregs.add(REG_CR2).read(), Ordering::SeqCst);
        gregs.add(REG_RIP).write(RESUME.load(Ordering::SeqCst));
        gregs.add(REG_RAX).write(FIXED_RAX);
    }
}

fn install(signal: i32) {
    let action = SigAction { handler: handler as *const () as usize, mask: [0; 16], flags: SA_SIGINFO, restorer: 0 };
    // SAFETY: a valid action; the old one is not wanted.
    let status = unsafe { sigaction(signal, &action, std::ptr::null_mut()) };
    assert_eq!(status, 0, "sigaction({signal})");
}

/// A function that runs one faulting instruction (`$insn`, with the address `NULL_READ` in `{addr}`)
/// after setting `RESUME` to the instruction after it, and returns the instruction's address and RAX
/// afterwards.
macro_rules! faulting {
    ($name:ident, $insn:literal) => {
        fn $name() -> (u64, u64) {
            let (fault, rax): (u64, u64);
            // SAFETY: the instruction faults and touches no memory; the handler resumes at label 3 with
            // RAX set.
            unsafe {
                asm!(
                    "lea {fault}, [rip + 2f]",
                    "lea {resume}, [rip + 3f]",
                    "mov qword ptr [{slot}], {resume}",
                    "xor eax, eax",
                    concat!("2: ", $insn),
                    "3:",
                    fault = out(reg) fault,
                    resume = out(reg) _,
                    slot = in(reg) RESUME.as_ptr(),
                    addr = in(reg) NULL_READ,
                    out("rax") rax,
                );
            }
            (fault, rax)
        }
    };
}

faulting!(null_read, "mov rax, qword ptr [{addr}]");
// asm! requires every operand to be used: `ud2` names the address in a comment.
faulting!(invalid_opcode, "ud2 /* {addr} */");

fn main() {
    let mut out = std::io::stdout().lock();
    install(SIGSEGV);
    install(SIGILL);

    let (fault, rax) = null_read();
    let load = |cell: &AtomicU64| cell.load(Ordering::SeqCst);
    writeln!(out, "segv: signal {} code {}", load(&SIGNO), load(&CODE)).unwrap();
    assert_eq!(load(&SIGNO), SIGSEGV as u64);
    assert_eq!(load(&CODE), SEGV_MAPERR as u64);
    assert_eq!(load(&ADDR), NULL_READ, "si_addr is the address read");
    assert_eq!(load(&RIP), fault, "REG_RIP is the faulting instruction");
    assert_eq!(load(&TRAPNO), 14, "REG_TRAPNO is the page fault");
    // A user-mode read of a page not present: the error code has U/S set, P and W/R clear.
    assert_eq!(load(&ERR) & 0x7, 0x4, "REG_ERR is a user read of a missing page");
    assert_eq!(load(&CR2), NULL_READ, "REG_CR2 is the address read");
    assert_eq!(rax, FIXED_RAX, "the program resumed with the handler's RAX");
    writeln!(out, "segv: the handler saw the faulting rip, si_addr and cr2, and moved rip on").unwrap();

    let (fault, rax) = invalid_opcode();
    writeln!(out, "ill: signal {} code {}", load(&SIGNO), load(&CODE)).unwrap();
    assert_eq!(load(&SIGNO), SIGILL as u64);
    assert_eq!(load(&CODE), ILL_ILLOPN as u64);
    assert_eq!(load(&ADDR), fault, "si_addr of SIGILL is the instruction");
    assert_eq!(load(&RIP), fault, "REG_RIP is the ud2");
    assert_eq!(load(&TRAPNO), 6, "REG_TRAPNO is #UD");
    assert_eq!(rax, FIXED_RAX, "the program resumed with the handler's RAX");
    writeln!(out, "ill: the handler saw the faulting rip and moved rip on").unwrap();
    writeln!(out, "rust signal handlers ok").unwrap();
}
