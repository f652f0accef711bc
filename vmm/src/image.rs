//! The memory image: everything a backend needs to start the guest, independent of the backend.
//!
//! Both backends consume the same [`MemoryImage`] and [`VcpuEntry`]: the KVM backend writes the chunks
//! into guest RAM and sets the vCPU registers directly; the QEMU backend turns the chunks into PT_LOAD
//! segments of a PVH boot ELF whose 32-bit trampoline (at
//! [`TRAMPOLINE_ADDR`](crate::arch::x86_64::layout::TRAMPOLINE_ADDR), identity mapped by the page tables)
//! reaches the same 64-bit state. Where things lie: [`crate::arch::x86_64::layout`].

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
/// chunks, which never overlap and all lie between
/// [`IMAGE_START`](crate::arch::x86_64::layout::IMAGE_START) and `memory_size`.
#[derive(Clone, Debug, Default)]
pub struct MemoryImage {
    pub memory_size: u64,
    pub chunks: Vec<Chunk>,
    /// Guest-physical address of the console ring's page (0: the guest has none), which the backend reads
    /// flushes from (`kernel_abi::console`).
    pub console_ring: u64,
    /// `--afl`: where the input region and the coverage map lie (`kernel_abi::afl`).
    pub afl: Option<crate::loader::AflRegions>,
}

/// What varies in the 64-bit state the kernel's entry point expects (the rest is fixed:
/// [`crate::arch::x86_64::regs`]): CR3 = `page_table_root`, RDI = the boot info's virtual address,
/// RIP = the kernel entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuEntry {
    pub rip: u64,
    pub rdi: u64,
    pub page_table_root: u64,
}
