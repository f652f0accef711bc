//! The memory image: everything a backend needs to start the guest, independent of the backend.
//!
//! Both backends consume the same [`MemoryImage`] and [`VcpuEntry`]: the KVM backend writes the chunks
//! into guest RAM and sets the vCPU registers directly; the QEMU backend turns the chunks into PT_LOAD
//! segments of a PVH boot ELF whose 32-bit trampoline (at [`TRAMPOLINE_ADDR`], identity mapped by the
//! page tables) reaches the same 64-bit state.

/// Guest-physical (and identity-mapped virtual) address of the PVH boot trampoline page.
pub const TRAMPOLINE_ADDR: u64 = 0x10_0000;
/// Size of the trampoline area (code, its GDT and parameters).
pub const TRAMPOLINE_SIZE: u64 = 0x1000;
/// Guest-physical memory below this is never used: it holds legacy holes on the PC machine
/// (VGA, BIOS ROM at 0xa0000..0x100000).
pub const LOW_MEMORY_END: u64 = 0x10_0000;

/// The chunks' byte buffers: cheap to clone and slice, so a chunk can share a buffer it did not copy
/// (the mapped app file, the embedded kernel). A `Vec<u8>` or a `&'static [u8]` converts `into()` one.
pub use bytes::Bytes;

/// Bytes to place at a guest-physical address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub guest_phys: u64,
    pub bytes: Bytes,
}

/// The guest's initial physical memory: RAM of `memory_size` bytes from address 0, zero except for the
/// chunks (which never overlap and all lie inside `[LOW_MEMORY_END + TRAMPOLINE_SIZE, memory_size)`).
#[derive(Clone, Debug, Default)]
pub struct MemoryImage {
    pub memory_size: u64,
    pub chunks: Vec<Chunk>,
}

/// The 64-bit state the kernel's entry point expects: long mode with paging (CR0.PG|PE|WP, CR4.PAE,
/// EFER.LME|LMA|NXE), CR3 = `page_table_root`, a flat 64-bit code segment at CPL0, interrupts off,
/// RDI = the boot info's virtual address, RIP = the kernel entry. RSP is set by the kernel itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuEntry {
    pub rip: u64,
    pub rdi: u64,
    pub page_table_root: u64,
}
