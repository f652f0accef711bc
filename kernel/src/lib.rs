//! The secure-run guest kernel.
//!
//! Built for `x86_64-unknown-none` as a static PIE that the VMM relocates and places. Modules that need
//! the hardware live under `arch`; everything else (syscall decoding, the file system, the fd table, the
//! address-space model) is plain `no_std + alloc` code that also builds and is tested on the host.
#![no_std]

extern crate alloc;
