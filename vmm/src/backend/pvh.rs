//! The PVH boot ELF that hands a [`MemoryImage`] to QEMU, and the 32-bit trampoline inside it.
//!
//! QEMU's `-kernel` loads each PT_LOAD at its `p_paddr` and, because of the Xen
//! `XEN_ELFNOTE_PHYS32_ENTRY` note, enters [`TRAMPOLINE_ADDR`] in 32-bit protected mode with paging off
//! (EBX = `hvm_start_info`, which we ignore). The trampoline turns that into exactly the state the KVM
//! backend sets directly ([`crate::arch::x86_64::regs`]): long mode, the entry CR0, CR4 and EFER,
//! CR3 = the image's page-table root, CS and DS/ES/SS/FS/GS from the boot GDT
//! ([`crate::arch::x86_64::gdt`], which the trampoline page holds), RDI = the boot-info address, and
//! jumps to the kernel's entry. The page tables map the trampoline page identity (virtual = physical) and
//! executable, so the code keeps running when paging comes on.
//!
//! File layout: ELF header, program headers, the note, zero padding up to [`DATA_START`], then segment
//! data. Keeping image bytes out of the first 8 KiB matters: QEMU looks there for a Linux setup header
//! and a multiboot header *before* it considers PVH, so image bytes there could change how it boots.

use goblin::elf::header::ET_EXEC;
use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE};
use goblin::elf64::header::SIZEOF_EHDR;
use goblin::elf64::program_header::SIZEOF_PHDR;
use goblin::elf64::section_header::SIZEOF_SHDR;

use crate::arch::x86_64::gdt::{self, BOOT_GDT_LIMIT, CODE_SELECTOR, DATA_SELECTOR};
use crate::arch::x86_64::layout::{
    BOOT_GDT_ADDR, BOOT_GDT_OFFSET, PAGE_TABLE_ROOT_LIMIT, TRAMPOLINE_ADDR, TRAMPOLINE_SIZE,
};
use crate::arch::x86_64::regs::{EFER_MSR, ENTRY_CR0, ENTRY_CR4, ENTRY_EFER_SET};
use crate::elf::write::{self, ElfWriter};
use crate::image::{Chunk, MemoryImage, VcpuEntry};

/// The local APIC's registers (the architectural default base).
const LOCAL_APIC_BASE: u32 = 0xfee0_0000;

/// Where segment data starts in the file (QEMU scans the first 8 KiB for other boot protocols).
pub const DATA_START: u64 = 0x2000;
const PAGE: u64 = 0x1000;

/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit physical entry point of a PVH kernel.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

// The trampoline. It lives in a read-only section of the host binary; `trampoline_page` copies it out,
// patches the three parameter quadwords and adds the boot GDT at BOOT_GDT_OFFSET. Absolute addresses in the 32-bit part are computed by the
// assembler as TRAMPOLINE_ADDR + (label - start), so the bytes are only correct at TRAMPOLINE_ADDR.
core::arch::global_asm!(
    ".pushsection .rodata.secure_run_pvh,\"a\"",
    ".balign 16",
    ".globl secure_run_pvh_start",
    ".hidden secure_run_pvh_start",
    ".globl secure_run_pvh_cr3",
    ".hidden secure_run_pvh_cr3",
    ".globl secure_run_pvh_rip",
    ".hidden secure_run_pvh_rip",
    ".globl secure_run_pvh_rdi",
    ".hidden secure_run_pvh_rdi",
    ".globl secure_run_pvh_end",
    ".hidden secure_run_pvh_end",
    "secure_run_pvh_start:",
    ".code32",
    "cli",
    "cld",
    "lgdt [secure_run_pvh_gdt_pointer_abs]",
    // An empty IDT: until the kernel loads its own, any exception is a triple fault (as on KVM).
    "lidt [secure_run_pvh_idt_pointer_abs]",
    // Let the local APIC pass the 8259 PIC's interrupt through (LINT0 as ExtINT, the APIC enabled with
    // spurious vector 0x2f), as PC firmware leaves it and qboot (QEMU microvm) does not: the kernel's
    // timer interrupt comes from the PIC. Physical addresses: paging is still off.
    "mov dword ptr [{apic} + 0xf0], 0x12f",
    "mov dword ptr [{apic} + 0x350], 0x700",
    "mov eax, {cr4}",
    "mov cr4, eax",
    // CR3 < 4 GiB (checked by the VMM), so its low half is all of it.
    "mov eax, [secure_run_pvh_cr3_abs]",
    "mov cr3, eax",
    "mov ecx, {efer_msr}",
    "rdmsr",
    "or eax, {efer_set}",
    "wrmsr",
    // Paging on: the CPU is now in compatibility mode, running from the identity-mapped page.
    "mov eax, {cr0}",
    "mov cr0, eax",
    // jmp far CODE_SELECTOR:long_mode — `EA ptr16:32`, spelled out because LLVM's Intel-syntax parser
    // has no form for an absolute far jump.
    ".byte 0xea",
    ".long {base} + (secure_run_pvh_long_mode - secure_run_pvh_start)",
    ".word {code_selector}",
    ".code64",
    "secure_run_pvh_long_mode:",
    "mov eax, {data_selector}",
    "mov ds, ax",
    "mov es, ax",
    "mov ss, ax",
    "mov fs, ax",
    "mov gs, ax",
    // Local labels, so the assembler resolves these RIP-relative offsets itself.
    "mov rdi, [rip + .Lsecure_run_pvh_rdi]",
    "mov rax, [rip + .Lsecure_run_pvh_rip]",
    "jmp rax",
    "secure_run_pvh_gdt_pointer:",
    ".word {gdt_limit}",
    ".long {gdt_address}",
    "secure_run_pvh_idt_pointer:",
    ".word 0",
    ".long 0",
    ".balign 8",
    "secure_run_pvh_cr3: .quad 0",
    "secure_run_pvh_rip:",
    ".Lsecure_run_pvh_rip: .quad 0",
    "secure_run_pvh_rdi:",
    ".Lsecure_run_pvh_rdi: .quad 0",
    "secure_run_pvh_end:",
    // Absolute (guest-physical) addresses for the 32-bit code, which runs before paging.
    ".set secure_run_pvh_gdt_pointer_abs, {base} + (secure_run_pvh_gdt_pointer - secure_run_pvh_start)",
    ".set secure_run_pvh_idt_pointer_abs, {base} + (secure_run_pvh_idt_pointer - secure_run_pvh_start)",
    ".set secure_run_pvh_cr3_abs, {base} + (secure_run_pvh_cr3 - secure_run_pvh_start)",
    ".popsection",
    base = const TRAMPOLINE_ADDR,
    apic = const LOCAL_APIC_BASE,
    cr0 = const ENTRY_CR0,
    cr4 = const ENTRY_CR4,
    efer_msr = const EFER_MSR,
    efer_set = const ENTRY_EFER_SET,
    code_selector = const CODE_SELECTOR,
    data_selector = const DATA_SELECTOR,
    gdt_limit = const BOOT_GDT_LIMIT,
    gdt_address = const BOOT_GDT_ADDR,
);

extern "C" {
    static secure_run_pvh_start: u8;
    static secure_run_pvh_cr3: u8;
    static secure_run_pvh_rip: u8;
    static secure_run_pvh_rdi: u8;
    static secure_run_pvh_end: u8;
}

/// The assembled trampoline and the offsets of its parts.
struct Template {
    bytes: &'static [u8],
    cr3: usize,
    rip: usize,
    rdi: usize,
}

fn template() -> Template {
    let start = &raw const secure_run_pvh_start as usize;
    let end = &raw const secure_run_pvh_end as usize;
    let offset = |symbol: *const u8| symbol as usize - start;
    // SAFETY: `secure_run_pvh_start` and `secure_run_pvh_end` bracket the bytes the `global_asm!` above
    // emits into one allocated, read-only section of this binary, in that order; the bytes are never
    // written, live for the whole program, and `u8` has no invalid values.
    let bytes = unsafe { std::slice::from_raw_parts(&raw const secure_run_pvh_start, end - start) };
    Template {
        bytes,
        cr3: offset(&raw const secure_run_pvh_cr3),
        rip: offset(&raw const secure_run_pvh_rip),
        rdi: offset(&raw const secure_run_pvh_rdi),
    }
}

/// The trampoline page for `entry`: code and parameters, the boot GDT at [`BOOT_GDT_OFFSET`], zero
/// padded to [`TRAMPOLINE_SIZE`]. The KVM backend writes the same page, so both backends start the
/// kernel with the same memory and GDT.
pub fn trampoline_page(entry: &VcpuEntry) -> Vec<u8> {
    let template = template();
    let mut page = vec![0u8; TRAMPOLINE_SIZE as usize];
    page[..template.bytes.len()].copy_from_slice(template.bytes);
    for (offset, value) in [(template.cr3, entry.page_table_root), (template.rip, entry.rip), (template.rdi, entry.rdi)]
    {
        page[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    }
    let table = gdt::boot_gdt_bytes();
    let at = BOOT_GDT_OFFSET as usize;
    page[at..at + table.len()].copy_from_slice(&table);
    page
}

/// Why no boot ELF could be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PvhError {
    #[error("the page-table root {0:#x} is not below 4 GiB, which the 32-bit PVH entry needs")]
    PageTableRootAbove4G(u64),
    #[error("the memory image has too many separate chunks ({0}) for one ELF file")]
    TooManySegments(usize),
    #[error("a chunk at {0:#x} overflows the address space")]
    ChunkOverflow(u64),
    #[error("cannot write the PVH boot ELF: {0}")]
    Write(String),
}

/// One PT_LOAD to write.
struct Segment<'a> {
    guest_phys: u64,
    parts: Vec<&'a [u8]>,
    memory_size: u64,
}

impl Segment<'_> {
    fn file_size(&self) -> u64 {
        self.parts.iter().map(|part| part.len() as u64).sum()
    }
}

/// Chunks sorted by address, adjacent ones merged into one segment.
fn segments<'a>(trampoline: &'a [u8], chunks: &'a [Chunk]) -> Result<Vec<Segment<'a>>, PvhError> {
    let mut sorted: Vec<&Chunk> = chunks.iter().filter(|chunk| !chunk.bytes.is_empty()).collect();
    sorted.sort_by_key(|chunk| chunk.guest_phys);
    let mut out =
        vec![Segment { guest_phys: TRAMPOLINE_ADDR, parts: vec![trampoline], memory_size: trampoline.len() as u64 }];
    for chunk in sorted {
        let len = chunk.bytes.len() as u64;
        chunk.guest_phys.checked_add(len).ok_or(PvhError::ChunkOverflow(chunk.guest_phys))?;
        match out.last_mut() {
            Some(last) if last.guest_phys + last.memory_size == chunk.guest_phys => {
                last.parts.push(&chunk.bytes);
                last.memory_size += len;
            }
            _ => out.push(Segment { guest_phys: chunk.guest_phys, parts: vec![&chunk.bytes], memory_size: len }),
        }
    }
    Ok(out)
}

/// The note: namesz, descsz, type, "Xen\0", then the entry as a 64-bit value. The entry is a 32-bit
/// address, but QEMU's reader of 64-bit ELF notes loads a native-width word, so the desc is 8 bytes (as
/// Linux's x86-64 PVH note is); Xen reads numeric notes of any width.
fn xen_note() -> Vec<u8> {
    let mut note = Vec::with_capacity(24);
    note.extend(4u32.to_le_bytes());
    note.extend(8u32.to_le_bytes());
    note.extend(XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
    note.extend(b"Xen\0");
    note.extend(TRAMPOLINE_ADDR.to_le_bytes());
    note
}

fn align_up(value: u64, align: u64) -> u64 {
    value.div_ceil(align) * align
}

/// The PVH boot ELF for `image`, entering the kernel at `entry` through the trampoline.
/// Callers validate the image first (chunks inside RAM, not overlapping the trampoline page).
pub fn build_boot_elf(image: &MemoryImage, entry: &VcpuEntry) -> Result<Vec<u8>, PvhError> {
    if entry.page_table_root >= PAGE_TABLE_ROOT_LIMIT {
        return Err(PvhError::PageTableRootAbove4G(entry.page_table_root));
    }
    let trampoline = trampoline_page(entry);
    let segments = segments(&trampoline, &image.chunks)?;
    let phnum = u16::try_from(segments.len() + 1).map_err(|_| PvhError::TooManySegments(image.chunks.len()))?;
    let note = xen_note();
    let note_offset = (SIZEOF_EHDR + SIZEOF_PHDR * usize::from(phnum)) as u64;
    let note_size = note.len() as u64;
    let mut data_offset = align_up(note_offset + note_size, PAGE).max(DATA_START);

    let mut elf = ElfWriter::new(ET_EXEC, TRAMPOLINE_ADDR);
    // As linkers write it, although there are no section headers.
    elf.header.e_shentsize = SIZEOF_SHDR as u16;
    elf.program_header(write::segment(PT_NOTE, PF_R, note_offset, 0, note_size, note_size, 4))
        .contents(note_offset, note);
    // Each segment's data at an offset congruent to its address modulo the page size.
    for segment in &segments {
        let offset = align_up(data_offset, PAGE) + segment.guest_phys % PAGE;
        let size = segment.file_size();
        elf.program_header(write::segment(PT_LOAD, PF_R | PF_W | PF_X, offset, segment.guest_phys, size, size, PAGE));
        let mut at = offset;
        for part in &segment.parts {
            elf.contents(at, *part);
            at += part.len() as u64;
        }
        data_offset = offset + size;
    }
    elf.write().map_err(|error| PvhError::Write(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::header::EM_X86_64;
    use goblin::elf::Elf;

    const ENTRY: VcpuEntry =
        VcpuEntry { rip: 0xffff_8000_1234_5678, rdi: 0xdead_beef_0000, page_table_root: 0x30_0000 };

    #[test]
    fn trampoline_fits_its_page_and_carries_the_parameters() {
        let template = template();
        assert!(template.bytes.len() < 256, "trampoline is {} bytes", template.bytes.len());
        assert!(template.bytes.len() as u64 <= BOOT_GDT_OFFSET, "the trampoline's code runs into the GDT");
        let page = trampoline_page(&ENTRY);
        assert_eq!(page.len(), TRAMPOLINE_SIZE as usize);
        let quad = |offset: usize| u64::from_le_bytes(page[offset..offset + 8].try_into().unwrap());
        assert_eq!(quad(template.cr3), ENTRY.page_table_root);
        assert_eq!(quad(template.rip), ENTRY.rip);
        assert_eq!(quad(template.rdi), ENTRY.rdi);
        let table = BOOT_GDT_OFFSET as usize;
        assert_eq!([quad(table), quad(table + 8), quad(table + 16)], gdt::BOOT_GDT);
        // It starts with CLI; CLD; LGDT [abs32], whose operand is the GDT pointer: limit, then the base.
        assert_eq!(&page[..5], &[0xfa, 0xfc, 0x0f, 0x01, 0x15]);
        let lgdt_operand = u32::from_le_bytes(page[5..9].try_into().unwrap());
        let pointer = (u64::from(lgdt_operand) - TRAMPOLINE_ADDR) as usize;
        assert!(pointer + 6 <= template.bytes.len(), "the GDT pointer is in the trampoline's code");
        assert_eq!(u16::from_le_bytes([page[pointer], page[pointer + 1]]), BOOT_GDT_LIMIT);
        let base = u32::from_le_bytes(page[pointer + 2..pointer + 6].try_into().unwrap());
        assert_eq!(u64::from(base), BOOT_GDT_ADDR);
    }

    #[test]
    fn boot_elf_parses_back_with_segments_and_note() {
        let image = MemoryImage {
            memory_size: 64 << 20,
            chunks: vec![
                Chunk { guest_phys: 0x20_0000, bytes: vec![1; 100].into() },
                Chunk { guest_phys: 0x20_0064, bytes: vec![2; 50].into() }, // adjacent: merged
                Chunk { guest_phys: 0x40_0123, bytes: vec![3; 5000].into() },
                Chunk { guest_phys: 0x30_0000, bytes: vec![].into() }, // empty: dropped
            ],
            console_ring: 0,
            afl: None,
        };
        let file = build_boot_elf(&image, &ENTRY).unwrap();
        let elf = Elf::parse(&file).unwrap();
        assert!(elf.is_64);
        assert_eq!(elf.header.e_machine, EM_X86_64);
        assert_eq!(elf.entry, TRAMPOLINE_ADDR);
        let loads: Vec<_> = elf.program_headers.iter().filter(|ph| ph.p_type == PT_LOAD).collect();
        let summary: Vec<(u64, u64)> = loads.iter().map(|ph| (ph.p_paddr, ph.p_filesz)).collect();
        assert_eq!(summary, [(TRAMPOLINE_ADDR, TRAMPOLINE_SIZE), (0x20_0000, 150), (0x40_0123, 5000)]);
        for ph in &loads {
            assert_eq!(ph.p_vaddr, ph.p_paddr);
            assert_eq!(ph.p_offset % PAGE, ph.p_vaddr % PAGE);
            assert!(ph.p_offset >= DATA_START);
        }
        let bytes_at =
            |ph: &goblin::elf::ProgramHeader| &file[ph.p_offset as usize..(ph.p_offset + ph.p_filesz) as usize];
        assert_eq!(bytes_at(loads[0]), trampoline_page(&ENTRY).as_slice());
        assert_eq!(bytes_at(loads[1]), [vec![1; 100], vec![2; 50]].concat().as_slice());
        assert_eq!(bytes_at(loads[2]), vec![3; 5000].as_slice());

        let notes: Vec<_> = elf.iter_note_headers(&file).unwrap().map(|note| note.unwrap()).collect();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].name, "Xen");
        assert_eq!(notes[0].n_type, XEN_ELFNOTE_PHYS32_ENTRY);
        assert_eq!(notes[0].desc, TRAMPOLINE_ADDR.to_le_bytes());
        // Nothing but headers in the first 8 KiB: no multiboot magic, no Linux "HdrS".
        assert!(file[..DATA_START as usize].windows(4).all(|w| w != 0x1bad_b002u32.to_le_bytes() && w != b"HdrS"));
    }

    #[test]
    fn refuses_a_page_table_root_above_4g() {
        let entry = VcpuEntry { page_table_root: 1 << 32, ..ENTRY };
        assert_eq!(build_boot_elf(&MemoryImage::default(), &entry), Err(PvhError::PageTableRootAbove4G(1 << 32)));
    }
}
