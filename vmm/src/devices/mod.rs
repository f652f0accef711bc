//! The guest's one device: the debug [`console`] on `kernel_abi::CONSOLE_PORT` (QEMU's `isa-debugcon`,
//! emulated on KVM). The exit port has no state: [`crate::exit`] stops the VM when it is written.

pub mod console;
