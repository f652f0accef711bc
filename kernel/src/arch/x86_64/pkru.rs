//! The only code that writes PKRU: ERIM-style checked gates, spliced into the entry assembly.
//!
//! Every WRPKRU is immediately followed by a compare of EAX with the constant it must hold; on a
//! mismatch (someone jumped to the WRPKRU with forged registers) the gate jumps to
//! `tables::gate_violation`, which reports the attempt and stops the VM without touching keyed memory.
//! The gates run only when `GateData::mpk_enabled` is set (CR4.PKE is on); in the other modes
//! RDPKRU/WRPKRU would be #UD.
//!
//! The entry scratch area and `GateData` live on supervisor pages (see `tables`), so the gates can use
//! them before PKRU allows kernel memory. The macros take their operands (`tables`, `mpk_flag`,
//! `scratch`, `pkru_kernel`, `pkru_app`, `violation`) from the `global_asm!` that splices them in.

use kernel_abi::GATE_VIOLATION_FRAME;

pub use isolation::pkeys::{PKRU_APP, PKRU_KERNEL};

/// Gate state read with the app's PKRU in force, on the read-only supervisor tables page.
#[repr(C)]
pub struct GateData {
    pub mpk_enabled: u64,
    /// The console frame reporting a gate violation, sent by `tables::gate_violation` as is. It carries
    /// no console key: with the PKRU a forger chose in force, the key (kernel data) is out of reach, and a
    /// copy here, on a supervisor page a CPL0 app can read, would give the key away.
    pub violation_frame: [u8; GATE_VIOLATION_FRAME.len()],
}

impl GateData {
    /// Gates off, the violation frame complete: it is built at compile time, into the tables' initial data.
    pub const fn new() -> Self {
        Self { mpk_enabled: 0, violation_frame: GATE_VIOLATION_FRAME }
    }
}

/// The checked write itself: PKRU = the operand named `$value` (`"pkru_kernel"` or `"pkru_app"`), then
/// the compare that catches a jump to the WRPKRU with another EAX. Clobbers EAX, ECX, EDX.
#[macro_export]
macro_rules! pkru_checked_write {
    ($value:literal) => {
        concat!(
            "mov eax, {",
            $value,
            "}\n",
            "xor ecx, ecx\n",
            "xor edx, edx\n",
            "wrpkru\n",
            "cmp eax, {",
            $value,
            "}\n",
            "jne {violation}\n",
        )
    };
}

/// A gate around [`pkru_checked_write!`] that runs only in `mpk` mode; `$park` keeps RAX, RCX and RDX
/// in the scratch page across it (the SYSCALL gates, where they hold the app's values or the result).
#[macro_export]
macro_rules! pkru_gate {
    ($value:literal) => {
        concat!(
            "test byte ptr [rip + {tables} + {mpk_flag}], 1\n",
            "jz 71f\n",
            $crate::pkru_checked_write!($value),
            "71:\n",
        )
    };
    ($value:literal, park $(, $after_check:literal)?) => {
        concat!(
            "test byte ptr [rip + {tables} + {mpk_flag}], 1\n",
            "jz 71f\n",
            "mov [rip + {scratch} + 8], rax\n",
            "mov [rip + {scratch} + 16], rcx\n",
            "mov [rip + {scratch} + 24], rdx\n",
            $crate::pkru_checked_write!($value),
            $($after_check,)?
            "mov rax, [rip + {scratch} + 8]\n",
            "mov rcx, [rip + {scratch} + 16]\n",
            "mov rdx, [rip + {scratch} + 24]\n",
            "71:\n",
        )
    };
}

/// Exception entry, after the trap frame is saved (RAX, RCX, RDX are free): switch to the kernel's PKRU.
#[macro_export]
macro_rules! pkru_gate_enter {
    () => {
        $crate::pkru_gate!("pkru_kernel")
    };
}

/// Exception exit: back to the app's PKRU. An exception handler only ever returns to the app: kernel
/// code never takes a fault it survives (its copies back their pages first, see `machine`), so there is
/// no kernel PKRU to restore — and a gate that could load the kernel's value before an IRETQ from a
/// frame on the stack would hand a CPL0 app that jumps to it every key.
#[macro_export]
macro_rules! pkru_gate_leave {
    () => {
        $crate::pkru_gate!("pkru_app")
    };
}

/// SYSCALL entry (CPL0 modes): RAX, RCX and RDX hold the app's syscall number, return address and third
/// argument, so they are parked in the scratch page around the WRPKRU. A CPL0 app may jump here instead
/// of executing SYSCALL (which clears IF through FMASK): the CLI after the check keeps interrupts out of
/// the kernel.
#[macro_export]
macro_rules! pkru_syscall_gate_enter {
    () => {
        $crate::pkru_gate!("pkru_kernel", park, "cli\n")
    };
}

/// SYSCALL exit (CPL0 modes), after RSP is back on the app stack: switch to the app's PKRU keeping RAX
/// (the result), RCX (the return address) and RDX.
#[macro_export]
macro_rules! pkru_syscall_gate_leave {
    () => {
        $crate::pkru_gate!("pkru_app", park)
    };
}
