//! The contract between the secure-run VMM and its guest kernel.
//!
//! Everything that crosses the VM boundary is defined here, once, by subject:
//! - [`boot_info`]: the versioned [`BootInfo`] the VMM writes into guest memory, with the regions and
//!   isolation mode it describes;
//! - [`console`]: the I/O ports the kernel talks through and the framing of the console channel;
//! - [`crash`]: the [`CrashRecord`] the kernel sends when the app faults;
//! - [`exit`]: secure-run's exit codes and the signals behind them;
//! - [`gdt`]: the segment descriptors and selectors of both sides' GDTs;
//! - [`seed`]: which random stream of the kernel seed is which;
//! - [`timer`]: the PC timer ports (PIT, 8259) behind the kernel's timer interrupt;
//! - [`archive`]: the packed `--mount` files;
//! - [`afl`]: the input region, snapshot point and coverage map of `secure-run --afl`.
//!
//! The raw structs derive zerocopy's traits: the VMM writes them as bytes and the kernel views bytes as
//! them, with no field-by-field encoding on either side. The kernel trusts the boot info only after
//! checking [`BootInfo::magic`] and [`BootInfo::version`]; the VMM trusts nothing the guest sends.
#![no_std]
#![forbid(unsafe_code)]

pub mod afl;
pub mod archive;
pub mod boot_info;
pub mod console;
pub mod crash;
pub mod exit;
pub mod gdt;
pub mod seed;
pub mod timer;

pub use boot_info::*;
pub use console::*;
pub use crash::*;
pub use exit::*;
