//! `pvh`: arbitrary small memory images through the QEMU backend's boot-ELF writer
//! (`vmm::backend::pvh::build_boot_elf`), then read back with goblin.
//!
//! Checked: nothing panics and the output stays proportional to the input; when it builds, the file is
//! an x86-64 ELF whose PT_LOAD segments are page-congruent, inside the file, and hold exactly the
//! trampoline page and the chunks' bytes at their physical addresses.

use goblin::elf::program_header::PT_LOAD;
use goblin::elf::Elf;
use vmm::arch::x86_64::layout::TRAMPOLINE_ADDR;
use vmm::backend::pvh::{build_boot_elf, trampoline_page, PvhError};
use vmm::image::{Chunk, MemoryImage, VcpuEntry};

use super::input::Reader;

const PAGE: u64 = 4096;
const MAX_CHUNKS: usize = 16;

/// One fuzz input: the entry registers, then chunks (address selector, length, bytes).
pub fn run(data: &[u8]) {
    let mut input = Reader::new(data);
    let entry = VcpuEntry { rip: input.u64(), rdi: input.u64(), page_table_root: u64::from(input.u32()) };
    let mut chunks = Vec::new();
    let mut previous_end = 0x20_0000u64;
    while !input.is_empty() && chunks.len() < MAX_CHUNKS {
        let selector = input.u8();
        let guest_phys = match selector % 4 {
            // Right after the previous chunk (merged into one segment).
            0 => previous_end,
            // A little further on.
            1 => previous_end.saturating_add(u64::from(input.u16())),
            // Anywhere (overlaps, and ends past the address space, included).
            2 => input.u64(),
            _ => u64::from(input.u32()),
        };
        let len = usize::from(input.u8()) * usize::from(selector / 4 % 8 + 1);
        let bytes = input.bytes(len).to_vec();
        previous_end = guest_phys.saturating_add(bytes.len() as u64);
        chunks.push(Chunk { guest_phys, bytes: bytes.into() });
    }
    let image = MemoryImage { memory_size: 64 << 20, chunks, console_ring: 0, afl: None };
    let file = match build_boot_elf(&image, &entry) {
        Ok(file) => file,
        Err(PvhError::ChunkOverflow(_)) => {
            assert!(image.chunks.iter().any(|c| c.guest_phys.checked_add(c.bytes.len() as u64).is_none()));
            return;
        }
        Err(error) => {
            assert!(matches!(error, PvhError::PageTableRootAbove4G(_)), "{error}");
            return;
        }
    };
    let total: usize = image.chunks.iter().map(|chunk| chunk.bytes.len()).sum();
    // Headers up to DATA_START (2 pages), then per segment (the trampoline's and at most one per chunk) a
    // page-aligned start plus the address's offset in its page, then the bytes.
    let bound = 2 * PAGE as usize + (image.chunks.len() + 1) * 2 * PAGE as usize + PAGE as usize + total;
    assert!(file.len() <= bound, "{} bytes of boot ELF for {total} bytes of chunks", file.len());

    let elf = Elf::parse(&file).expect("the boot ELF parses");
    assert_eq!(elf.entry, TRAMPOLINE_ADDR);
    let loads: Vec<_> = elf.program_headers.iter().filter(|ph| ph.p_type == PT_LOAD).collect();
    for ph in &loads {
        assert_eq!(ph.p_offset % PAGE, ph.p_paddr % PAGE, "segment not page-congruent: {ph:?}");
        assert!(ph.p_offset + ph.p_filesz <= file.len() as u64, "segment past the end of the file: {ph:?}");
    }
    let segment_bytes =
        |ph: &goblin::elf::ProgramHeader| &file[ph.p_offset as usize..(ph.p_offset + ph.p_filesz) as usize];
    // The trampoline page comes first (chunks right after it are merged into its segment).
    let trampoline = trampoline_page(&entry);
    let first = loads.first().expect("the trampoline segment");
    assert_eq!(first.p_paddr, TRAMPOLINE_ADDR);
    assert_eq!(segment_bytes(first).get(..trampoline.len()), Some(&trampoline[..]), "trampoline page differs");
    // Every chunk's bytes are in the segment that starts at or before it and covers it.
    for chunk in image.chunks.iter().filter(|chunk| !chunk.bytes.is_empty()) {
        let found = loads.iter().any(|ph| {
            chunk.guest_phys >= ph.p_paddr
                && chunk.guest_phys + chunk.bytes.len() as u64 <= ph.p_paddr + ph.p_filesz
                && {
                    let at = (chunk.guest_phys - ph.p_paddr) as usize;
                    segment_bytes(ph)[at..at + chunk.bytes.len()] == chunk.bytes[..]
                }
        });
        assert!(found, "chunk at {:#x} ({} bytes) not in the boot ELF", chunk.guest_phys, chunk.bytes.len());
    }
}
