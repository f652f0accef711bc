//! x86-64: [`layout`] (fixed guest-physical addresses), [`gdt`] (the boot GDT and the segment registers
//! it implies), [`regs`] (control registers, EFER and general registers at kernel entry).

pub mod gdt;
pub mod layout;
pub mod regs;
