//! Control registers and model-specific registers the kernel touches, with typed values.
//! Reads are safe; writes are `unsafe fn` because they change how all code runs.

pub use x86_64::registers::control::{Cr0, Cr0Flags, Cr2, Cr4, Cr4Flags};
pub use x86_64::registers::model_specific::{Efer, EferFlags};

use x86_64::registers::model_specific::Msr;

/// SYSCALL target selectors (STAR), target RIP (LSTAR), RFLAGS mask (FMASK), FS base.
pub const MSR_STAR: u32 = 0xc000_0081;
pub const MSR_LSTAR: u32 = 0xc000_0082;
pub const MSR_FMASK: u32 = 0xc000_0084;
pub const MSR_FS_BASE: u32 = 0xc000_0100;

/// Reads a model-specific register.
pub fn read_msr(msr: u32) -> u64 {
    // SAFETY: reading the MSRs named above has no side effects; they exist on every x86-64 CPU.
    unsafe { Msr::new(msr).read() }
}

/// Writes a model-specific register.
///
/// # Safety
/// The value must be valid for the register and must not break the kernel's invariants (entry points,
/// segment selectors).
pub unsafe fn write_msr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the value is valid for this MSR.
    unsafe { Msr::new(msr).write(value) }
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the counter (CR4.TSD is never set).
    unsafe { core::arch::x86_64::_rdtsc() }
}
