//! The vCPU state at kernel entry, the one [`VcpuEntry`] describes: long mode with paging, flat 64-bit
//! segments from the boot GDT ([`super::gdt`]), an empty IDT, interrupts off, RDI = the boot info's
//! virtual address, RIP = the kernel's entry. RSP is the kernel's own business.
//!
//! The KVM backend writes these registers with [`set_entry_sregs`] and [`entry_regs`]; the PVH
//! trampoline loads the same control-register and EFER values (its assembly takes the constants below).

use kvm_bindings::{kvm_dtable, kvm_regs, kvm_sregs};

use super::{gdt, layout};
use crate::image::VcpuEntry;

/// CR0 at kernel entry: PE | MP | ET | NE | WP | PG.
pub const ENTRY_CR0: u64 = 0x8005_0033;
/// CR4 at kernel entry: PAE.
pub const ENTRY_CR4: u64 = 0x20;
/// The EFER MSR.
pub const EFER_MSR: u32 = 0xc000_0080;
/// EFER bits the trampoline sets: LME | NXE (the CPU adds LMA when paging comes on).
pub const ENTRY_EFER_SET: u64 = (1 << 8) | (1 << 11);
/// EFER at kernel entry: LME | LMA | NXE.
pub const ENTRY_EFER: u64 = ENTRY_EFER_SET | (1 << 10);
/// RFLAGS at kernel entry: only the always-one bit 1 (interrupts off).
pub const ENTRY_RFLAGS: u64 = 0x2;

/// Sets the special registers of `sregs` (as read from the vCPU, which keeps what is not listed here)
/// to the entry state for `entry`.
pub fn set_entry_sregs(sregs: &mut kvm_sregs, entry: &VcpuEntry) {
    let data = gdt::data_segment();
    sregs.cs = gdt::code_segment();
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.gdt = kvm_dtable { base: layout::BOOT_GDT_ADDR, limit: gdt::BOOT_GDT_LIMIT, padding: [0; 3] };
    // An empty IDT, as the trampoline loads: an exception before the kernel's IDT is a triple fault.
    sregs.idt = kvm_dtable { base: 0, limit: 0, padding: [0; 3] };
    sregs.cr0 = ENTRY_CR0;
    sregs.cr3 = entry.page_table_root;
    sregs.cr4 = ENTRY_CR4;
    sregs.efer = ENTRY_EFER;
}

/// The general registers at entry: RIP, RDI and RFLAGS set, everything else zero.
pub fn entry_regs(entry: &VcpuEntry) -> kvm_regs {
    kvm_regs { rip: entry.rip, rdi: entry.rdi, rflags: ENTRY_RFLAGS, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_state_is_long_mode_on_the_boot_gdt() {
        let entry = VcpuEntry { rip: 0x7e00_0000_1000, rdi: 0x7d00_0010_1000, page_table_root: 0x30_0000 };
        let mut sregs = kvm_sregs { apic_base: 0xfee0_0900, ..Default::default() };
        set_entry_sregs(&mut sregs, &entry);
        assert_eq!((sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer), (0x8005_0033, 0x30_0000, 0x20, 0xd00));
        assert_eq!((sregs.gdt.base, sregs.gdt.limit), (layout::BOOT_GDT_ADDR, 23));
        assert_eq!((sregs.idt.base, sregs.idt.limit), (0, 0));
        assert_eq!((sregs.cs.selector, sregs.cs.l), (gdt::CODE_SELECTOR, 1));
        for segment in [sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss] {
            assert_eq!(segment, gdt::data_segment());
        }
        assert_eq!(sregs.apic_base, 0xfee0_0900, "what the entry state does not name is kept");
        let regs = entry_regs(&entry);
        assert_eq!((regs.rip, regs.rdi, regs.rflags, regs.rsp), (entry.rip, entry.rdi, 0x2, 0));
    }
}
