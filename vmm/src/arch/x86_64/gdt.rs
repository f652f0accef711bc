//! The boot GDT: the table GDTR holds when the kernel is entered, on both backends. It has the kernel's
//! code and data descriptors at the kernel's selectors (`kernel_abi::gdt`), so the kernel's own GDT
//! changes nothing when it replaces this one. It lies in the trampoline page at
//! [`BOOT_GDT_ADDR`](super::layout::BOOT_GDT_ADDR); the trampoline loads it and the KVM backend points
//! GDTR at it, deriving the segment registers from the same descriptors (as Firecracker derives its
//! `kvm_segment`s from its GDT entries), so the two cannot disagree.

use kernel_abi::gdt::{self as kernel_gdt, SegmentFields};
use kvm_bindings::kvm_segment;

pub use kernel_abi::gdt::{KERNEL_CODE_SELECTOR as CODE_SELECTOR, KERNEL_DATA_SELECTOR as DATA_SELECTOR};

/// The descriptors: null, kernel code, kernel data.
pub const BOOT_GDT: [u64; 3] = [0, kernel_gdt::KERNEL_CODE, kernel_gdt::KERNEL_DATA];
/// GDTR's limit for [`BOOT_GDT`].
pub const BOOT_GDT_LIMIT: u16 = (BOOT_GDT.len() * 8 - 1) as u16;
/// The descriptor [`CODE_SELECTOR`] selects (a selector out of the table fails to compile).
pub const CODE_DESCRIPTOR: u64 = BOOT_GDT[(CODE_SELECTOR >> 3) as usize];
/// The descriptor [`DATA_SELECTOR`] selects.
pub const DATA_DESCRIPTOR: u64 = BOOT_GDT[(DATA_SELECTOR >> 3) as usize];

/// The table's bytes as they lie in guest memory.
pub fn boot_gdt_bytes() -> [u8; BOOT_GDT.len() * 8] {
    let mut bytes = [0; BOOT_GDT.len() * 8];
    for (slot, descriptor) in bytes.chunks_exact_mut(8).zip(BOOT_GDT) {
        slot.copy_from_slice(&descriptor.to_le_bytes());
    }
    bytes
}

/// CS at kernel entry: what a far jump to [`CODE_SELECTOR`] loads.
pub fn code_segment() -> kvm_segment {
    segment_register(CODE_SELECTOR, CODE_DESCRIPTOR)
}

/// DS, ES, FS, GS and SS at kernel entry: what a `mov` of [`DATA_SELECTOR`] loads.
pub fn data_segment() -> kvm_segment {
    segment_register(DATA_SELECTOR, DATA_DESCRIPTOR)
}

/// The segment-register state loading `selector` with `descriptor` gives.
fn segment_register(selector: u16, descriptor: u64) -> kvm_segment {
    let fields = SegmentFields::of(descriptor);
    kvm_segment {
        base: u64::from(fields.base),
        limit: fields.limit,
        selector,
        type_: fields.type_,
        present: u8::from(fields.present),
        dpl: fields.dpl,
        db: u8::from(fields.db),
        s: u8::from(fields.s),
        l: u8::from(fields.l),
        g: u8::from(fields.g),
        avl: u8::from(fields.avl),
        unusable: 0,
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_registers_come_from_the_gdt_descriptors() {
        let code = code_segment();
        assert_eq!((code.base, code.limit, code.selector, code.type_), (0, 0xffff_ffff, 0x8, 0xb));
        assert_eq!((code.present, code.dpl, code.s, code.l, code.db, code.g), (1, 0, 1, 1, 0, 1));
        let data = data_segment();
        assert_eq!((data.selector, data.type_, data.l, data.db), (0x10, 0x3, 0, 1));
    }

    #[test]
    fn the_table_bytes_are_the_descriptors() {
        let bytes = boot_gdt_bytes();
        assert_eq!(bytes.len(), usize::from(BOOT_GDT_LIMIT) + 1);
        assert_eq!(bytes[8..16], kernel_gdt::KERNEL_CODE.to_le_bytes());
        assert_eq!(bytes[16..], kernel_gdt::KERNEL_DATA.to_le_bytes());
    }
}
