//! The PC timer hardware the kernel programs for its timer interrupt and the KVM backend emulates
//! (QEMU has the real chips): channel 0 of the i8254 PIT and the two 8259 interrupt controllers.

/// The PIT's input clock.
pub const PIT_HZ: u64 = 1_193_182;

pub const PIC1_COMMAND: u16 = 0x20;
pub const PIC1_DATA: u16 = 0x21;
pub const PIC2_COMMAND: u16 = 0xa0;
pub const PIC2_DATA: u16 = 0xa1;
pub const PIT_CHANNEL0: u16 = 0x40;
pub const PIT_COMMAND: u16 = 0x43;
