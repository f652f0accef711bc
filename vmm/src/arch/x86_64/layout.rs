//! The fixed guest-physical layout: the addresses the VMM, the PVH trampoline and the kernel agree on
//! before anything is allocated. Everything the loader places (`crate::loader`) comes after
//! [`IMAGE_START`], one page-aligned allocation after the other.
//!
//! ```text
//!  0 .. LOW_MEMORY_END (1 MiB)        never used: the PC machine's legacy holes (VGA, BIOS ROM)
//!  TRAMPOLINE_ADDR (1 MiB), 4 KiB     the PVH boot trampoline page, identity mapped; the kernel unmaps it
//!                                     before the app starts
//!    + 0                                the trampoline's code and parameters (QEMU runs it)
//!    + BOOT_GDT_OFFSET                  the boot GDT (gdt.rs): GDTR points here on both backends
//!  IMAGE_START (1 MiB + 4 KiB) ..     the loader's allocations, in this order: boot info, the app's path,
//!                                     kernel image, app image, stdin, packed files, random prefix, the
//!                                     app's initial stack, page tables
//!  .. memory_size                     free: the kernel's heap and the app's memory
//!  PAGE_TABLE_ROOT_LIMIT (4 GiB)      the page-table root lies below (the 32-bit trampoline loads CR3)
//!  MAX_MEMORY_SIZE (3 GiB)            the most guest RAM: QEMU's machines keep RAM contiguous only below
//!                                     the 32-bit PCI hole
//! ```
//!
//! Physical placement is independent of the virtual layout, which `isolation::layout` plans (with or
//! without ASLR); only the trampoline page is mapped at its physical address.

/// Guest-physical memory below this is never used: it holds legacy holes on the PC machine (VGA, BIOS
/// ROM at 0xa0000..0x100000).
pub const LOW_MEMORY_END: u64 = 0x10_0000;
/// Guest-physical (and identity-mapped virtual) address of the PVH boot trampoline page, the boot
/// ELF's entry point.
pub const TRAMPOLINE_ADDR: u64 = LOW_MEMORY_END;
/// Size of the trampoline area (code, parameters and the boot GDT).
pub const TRAMPOLINE_SIZE: u64 = 0x1000;
/// Where in the trampoline page the boot GDT lies, after the trampoline's code.
pub const BOOT_GDT_OFFSET: u64 = 0x200;
/// Guest-physical address of the boot GDT.
pub const BOOT_GDT_ADDR: u64 = TRAMPOLINE_ADDR + BOOT_GDT_OFFSET;
/// The first address the loader allocates; every chunk of a memory image lies at or above it.
pub const IMAGE_START: u64 = TRAMPOLINE_ADDR + TRAMPOLINE_SIZE;
/// The page-table root must lie below this: the trampoline loads CR3 from 32-bit code.
pub const PAGE_TABLE_ROOT_LIMIT: u64 = 1 << 32;
/// The most guest RAM (`--memory`): RAM stays contiguous below the 32-bit PCI hole on QEMU's machines.
pub const MAX_MEMORY_SIZE: u64 = 3 << 30;

const _: () = assert!(BOOT_GDT_OFFSET + 24 <= TRAMPOLINE_SIZE);
const _: () = assert!(MAX_MEMORY_SIZE <= PAGE_TABLE_ROOT_LIMIT);
