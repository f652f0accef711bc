//! The secure-run VMM: loads a static Linux ELF, plans the layout, builds the memory image, and runs it
//! on KVM or QEMU.
//!
//! - [`run`]: one run end to end; [`policy`]: the backend choice and the `mpk` inspection;
//!   [`report`]: crash reports, `--print-layout` and the `--report` JSON;
//! - [`elf`]: validation of untrusted app ELFs and of the guest kernel, and the one ELF writer;
//! - [`loader`]: the guest's initial memory (page tables, initial stack, boot info) as an
//!   [`image::MemoryImage`]; [`arch`]: the fixed guest-physical layout, boot GDT and entry registers;
//! - [`backend`]: the two ways to run it (KVM, QEMU TCG); [`exit`]: what a VM exit does;
//!   [`devices`]: the debug console;
//! - [`mount`]: host directories packed for the guest file system; [`host`]: the host's TSC frequency.
pub mod afl;
pub mod arch;
pub mod backend;
pub mod devices;
pub mod elf;
pub mod exit;
pub mod host;
pub mod image;
pub mod loader;
pub mod mount;
pub mod policy;
pub mod report;
pub mod run;
