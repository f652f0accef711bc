//! The secure-run VMM: loads a static Linux ELF, plans the layout, builds the memory image, and runs it
//! on KVM or QEMU.
//!
//! - [`elf`]: validation of untrusted app ELFs and of the guest kernel;
//! - [`loader`]: the guest's initial memory (layout, page tables, boot info) as a [`image::MemoryImage`];
//! - [`backend`]: the two ways to run it (KVM, QEMU TCG) and [`exit`], the guest-facing port protocol;
//! - [`mount`]: host directories packed for the guest file system; [`host`]: the host's TSC frequency;
//! - [`run`]: one run end to end; [`report`]: crash reports.
pub mod arch;
pub mod backend;
pub mod devices;
pub mod elf;
pub mod exit;
pub mod host;
pub mod image;
pub mod loader;
pub mod mount;
pub mod report;
pub mod run;
