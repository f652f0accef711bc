//! The guest's devices: the debug [`console`] on `kernel_abi::CONSOLE_PORT` (QEMU's `isa-debugcon`,
//! emulated on KVM), and on KVM the [`timer`] interrupt (the part of the PIT and PIC the kernel uses;
//! QEMU has the real chips). The exit port has no state: [`crate::exit`] stops the VM when it is written.

pub mod console;
pub mod timer;
