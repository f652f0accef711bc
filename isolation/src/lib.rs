//! Isolation policy shared by the secure-run VMM and its guest kernel.
//!
//! Everything here is pure (no I/O, no hardware access, no `unsafe`) so that the same code decides the
//! layout in the VMM, enforces it in the kernel, and is property-tested on the host:
//! - [`guard`]: the decoding behind the `mpk` kernel's single-stepping of guarded code;
//! - [`layout`]: where the kernel, the app and the kernel's physical map go (randomized with `--aslr`);
//! - [`paging`]: x86-64 4-level page tables over any [`paging::PhysMemory`];
//! - [`pkeys`]: which protection key tags each region, the kernel's and the app's PKRU values;
//! - [`scan`]: the scanner of executable bytes for WRPKRU, XRSTOR and privileged instructions;
//! - [`wx`]: the W^X rule for app mappings.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod guard;
pub mod layout;
pub mod paging;
pub mod pkeys;
pub mod scan;
pub mod wx;
