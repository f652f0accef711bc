//! Control registers and model-specific registers the kernel touches, with typed values.
//! Reads are safe; writes are `unsafe fn` because they change how all code runs.

pub use x86_64::registers::control::{Cr0, Cr0Flags, Cr2, Cr4, Cr4Flags};

use x86_64::registers::model_specific::Msr;

/// SYSCALL target selectors (STAR), target RIP (LSTAR), RFLAGS mask (FMASK), FS base.
pub const MSR_STAR: u32 = 0xc000_0081;
pub const MSR_LSTAR: u32 = 0xc000_0082;
pub const MSR_FMASK: u32 = 0xc000_0084;
pub const MSR_FS_BASE: u32 = 0xc000_0100;
/// IA32_DEBUGCTL (Intel) / DebugCtl (AMD): bit 1, BTF, turns single-stepping into stepping on branches.
pub const MSR_DEBUGCTL: u32 = 0x1d9;

/// Reads a model-specific register.
pub fn read_msr(msr: u32) -> u64 {
    // SAFETY: reading the MSRs named above has no side effects; they exist on every x86-64 CPU.
    unsafe { Msr::new(msr).read() }
}

/// Sets the FS base the app sees (its TLS pointer): WRFSBASE where CR4.FSGSBASE is on, which can change
/// nothing else; otherwise WRMSR, followed by a check that halts the VM unless ECX named FS_BASE (so a
/// jump to this WRMSR with forged registers cannot write another MSR and continue).
pub fn write_fs_base(value: u64, fsgsbase: bool) {
    if fsgsbase {
        // SAFETY: WRFSBASE only changes the FS base; the caller passes a canonical address.
        unsafe { core::arch::asm!("wrfsbase {}", in(reg) value, options(nostack, preserves_flags)) };
        return;
    }
    // SAFETY: writes MSR_FS_BASE, checked right after; a canonical value cannot fault.
    unsafe {
        core::arch::asm!(
            "wrmsr",
            "cmp ecx, {fs_base}",
            "jne {violation}",
            fs_base = const MSR_FS_BASE,
            violation = sym super::tables::gate_violation,
            in("ecx") MSR_FS_BASE,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
            options(nostack)
        )
    };
}

/// Clears IA32_DEBUGCTL, so that RFLAGS.TF traps after every instruction again: a CPL0 app can reach
/// some WRMSR in kernel text with registers of its choosing and set BTF, which would make it trap on
/// branches only. The step gate calls this whenever it begins stepping (`guard.rs`).
pub fn clear_debugctl() {
    // SAFETY: writing 0 to DEBUGCTL is valid on every x86-64 CPU and only turns off branch tracing and
    // branch single-stepping, which the kernel never uses.
    unsafe { Msr::new(MSR_DEBUGCTL).write(0) }
}

/// The FS base the app sees.
pub fn read_fs_base(fsgsbase: bool) -> u64 {
    if fsgsbase {
        let value: u64;
        // SAFETY: RDFSBASE only reads the FS base (CR4.FSGSBASE is on).
        unsafe { core::arch::asm!("rdfsbase {}", out(reg) value, options(nostack, preserves_flags)) };
        value
    } else {
        read_msr(MSR_FS_BASE)
    }
}

/// Drops the cached translation of the page holding `virt`. INVLPG, unlike a CR3 reload, cannot be
/// turned against the kernel by a jump with forged registers.
pub fn invalidate_page(virt: u64) {
    // SAFETY: INVLPG only drops a TLB entry.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) virt, options(nostack, preserves_flags)) };
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the counter (CR4.TSD is never set).
    unsafe { core::arch::x86_64::_rdtsc() }
}
