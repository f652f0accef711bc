//! The segment descriptors and selectors both sides use: the VMM's boot GDT (the PVH trampoline's, which
//! KVM's GDTR points at too) and the kernel's own GDT hold the same kernel descriptors at the same
//! selectors, and the KVM backend derives the vCPU's segment registers from these descriptors rather than
//! restating their fields.
//!
//! Every descriptor has its accessed bit preset, so loading a selector never writes the (read-only) GDT.

/// 64-bit kernel code segment: base 0, limit 4 GiB, present, DPL 0, execute/read, accessed, L = 1.
pub const KERNEL_CODE: u64 = 0x00af_9b00_0000_ffff;
/// Flat kernel data segment: present, DPL 0, read/write, accessed, D/B = 1.
pub const KERNEL_DATA: u64 = 0x00cf_9300_0000_ffff;
/// Flat user data segment (DPL 3).
pub const USER_DATA: u64 = 0x00cf_f300_0000_ffff;
/// 64-bit user code segment (DPL 3, L = 1).
pub const USER_CODE: u64 = 0x00af_fb00_0000_ffff;

pub const KERNEL_CODE_SELECTOR: u16 = 0x08;
pub const KERNEL_DATA_SELECTOR: u16 = 0x10;
/// SYSRET derives the user selectors from STAR\[63:48\] = [`KERNEL_DATA_SELECTOR`]: SS = +8, CS = +16.
pub const USER_DATA_SELECTOR: u16 = 0x18 | 3;
pub const USER_CODE_SELECTOR: u16 = 0x20 | 3;
/// The kernel's TSS (a 16-byte system descriptor in entries 5 and 6).
pub const TSS_SELECTOR: u16 = 0x28;

/// The fields of a code or data segment descriptor, as a hypervisor's segment-register state spells
/// them (KVM's `kvm_segment`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentFields {
    pub base: u32,
    /// In bytes (the granularity already applied).
    pub limit: u32,
    /// Type bits 0-3 (accessed, read/write, conforming/expand-down, code).
    pub type_: u8,
    /// Code/data (1) rather than system (0).
    pub s: bool,
    pub dpl: u8,
    pub present: bool,
    pub avl: bool,
    /// 64-bit code.
    pub l: bool,
    /// Default operation size 32 bits.
    pub db: bool,
    /// Limit in 4 KiB units.
    pub g: bool,
}

impl SegmentFields {
    /// Decodes a code or data descriptor.
    pub const fn of(descriptor: u64) -> Self {
        let g = descriptor & (1 << 55) != 0;
        let raw_limit = ((descriptor & 0xffff) | ((descriptor >> 32) & 0xf_0000)) as u32;
        let limit = if g { (raw_limit << 12) | 0xfff } else { raw_limit };
        Self {
            base: (((descriptor >> 16) & 0xff_ffff) | ((descriptor >> 32) & 0xff00_0000)) as u32,
            limit,
            type_: ((descriptor >> 40) & 0xf) as u8,
            s: descriptor & (1 << 44) != 0,
            dpl: ((descriptor >> 45) & 3) as u8,
            present: descriptor & (1 << 47) != 0,
            avl: descriptor & (1 << 52) != 0,
            l: descriptor & (1 << 53) != 0,
            db: descriptor & (1 << 54) != 0,
            g,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_decode_as_flat_segments() {
        let code = SegmentFields::of(KERNEL_CODE);
        assert_eq!((code.base, code.limit, code.type_, code.dpl), (0, 0xffff_ffff, 0xb, 0));
        assert!(code.present && code.s && code.l && !code.db && code.g);
        let data = SegmentFields::of(KERNEL_DATA);
        assert_eq!((data.type_, data.dpl), (0x3, 0));
        assert!(data.db && !data.l);
        assert_eq!(SegmentFields::of(USER_CODE), SegmentFields { dpl: 3, ..code });
        assert_eq!(SegmentFields::of(USER_DATA), SegmentFields { dpl: 3, ..data });
    }

    #[test]
    fn user_selectors_are_what_sysret_derives() {
        assert_eq!(USER_DATA_SELECTOR, (KERNEL_DATA_SELECTOR + 8) | 3);
        assert_eq!(USER_CODE_SELECTOR, (KERNEL_DATA_SELECTOR + 16) | 3);
        assert_eq!(usize::from(KERNEL_CODE_SELECTOR / 8), 1);
    }
}
