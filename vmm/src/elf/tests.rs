//! The validation's tests: a valid file of each kind, then one `test_bad_*` per [`ElfError`] variant, each
//! built as a small malformed file with [`ElfWriter`] (goblin's header structs, the fields set to what
//! the case needs), then real binaries from the system's compilers, then properties over mutated files.

use super::write::{load, segment, ElfWriter};
use super::*;
use exec::elf::{read_u64, DT_RELR, DT_RELRSZ};
use goblin::elf::dynamic::DT_FLAGS_1;
use goblin::elf::dynamic::{DT_JMPREL, DT_NEEDED, DT_PLTRELSZ, DT_REL, DT_RELA, DT_RELAENT, DT_RELASZ, DT_RELSZ};
use goblin::elf::header::{EI_CLASS, EI_DATA, ELFDATA2MSB, ET_DYN, ET_EXEC};
use goblin::elf::header::{ELFCLASS32, EM_AARCH64, ET_CORE, ET_REL};
use goblin::elf::program_header::PT_TLS;
use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_DYNAMIC, PT_INTERP, PT_LOAD, PT_PHDR};
use goblin::elf::reloc::R_X86_64_64;
use goblin::elf::reloc::{R_X86_64_NONE, R_X86_64_RELATIVE};
use goblin::elf64::program_header::ProgramHeader;
use isolation::layout::{AppPlacement, Span};
use isolation::paging::PAGE_SIZE;
use kernel_abi::{PERM_EXEC, PERM_READ, PERM_WRITE};
use proptest::prelude::*;
use std::path::Path;
use std::process::Command;

/// The whole loaded kernel image, `span.size` bytes, from [`load_kernel_segments`].
pub(crate) fn load_image(kernel: &KernelElf, file: &[u8], base: u64) -> Result<Vec<u8>, ElfError> {
    let mut image = vec![0u8; kernel.span.size as usize];
    for piece in load_kernel_segments(kernel, &Bytes::copy_from_slice(file), base)? {
        let at = piece.offset as usize;
        image[at..at + piece.bytes.len()].copy_from_slice(&piece.bytes);
    }
    Ok(image)
}

const TEXT: ProgramHeader = load(PF_R | PF_X, 0, 0x40_0000, 0x200, 0x200);
const DATA: ProgramHeader = load(PF_R | PF_W, 0x200, 0x40_1200, 0x100, 0x1000);

/// `header` at `vaddr` (and `p_paddr`).
const fn at(header: ProgramHeader, vaddr: u64) -> ProgramHeader {
    ProgramHeader { p_vaddr: vaddr, p_paddr: vaddr, ..header }
}

/// A minimal little-endian x86-64 ELF: header, `phdrs` at offset 64, zeros up to `len`.
fn elf(e_type: u16, entry: u64, phdrs: &[ProgramHeader], len: u64) -> ElfWriter<'static> {
    let mut elf = ElfWriter::new(e_type, entry);
    for header in phdrs {
        elf.program_header(*header);
    }
    elf.min_len(len);
    elf
}

fn build(e_type: u16, entry: u64, phdrs: &[ProgramHeader], len: u64) -> Vec<u8> {
    written(&elf(e_type, entry, phdrs, len))
}

fn written(elf: &ElfWriter<'_>) -> Vec<u8> {
    elf.write().expect("the test ELF is written")
}

/// A valid ET_EXEC: text (with the headers) at 0x400000, data + bss at 0x401200.
fn exec_elf() -> ElfWriter<'static> {
    elf(ET_EXEC, 0x40_0100, &[TEXT, DATA], 0x300)
}

pub(crate) fn exec() -> Vec<u8> {
    written(&exec_elf())
}

/// A valid static PIE: like [`exec`] at link base 0, plus a PT_DYNAMIC without DT_NEEDED.
fn pie_elf() -> ElfWriter<'static> {
    let dynamic = segment(PT_DYNAMIC, PF_R | PF_W, 0x200, 0x1200, 0x20, 0x20, 8);
    let mut elf = elf(ET_DYN, 0x100, &[at(TEXT, 0), at(DATA, 0x1200), dynamic], 0x300);
    elf.words(0x200, &[DT_FLAGS_1]); // then DT_NULL
    elf
}

fn pie() -> Vec<u8> {
    written(&pie_elf())
}

/// File offsets of the kernel fixture's dynamic section (virtual 0x1200) and RELA table (0x1280).
const KERNEL_DYNAMIC: u64 = 0x200;
const KERNEL_RELA: u64 = 0x280;
/// The kernel's dynamic section: where its RELA table is (0x1280), its size and its entry size.
const KERNEL_DYNAMIC_ENTRIES: [(u64, u64); 3] = [(DT_RELA, 0x1280), (DT_RELASZ, 48), (DT_RELAENT, 24)];
/// Its relocations (offset, info, addend): two RELATIVE ones of the words at 0x1300 and 0x1308.
const KERNEL_RELOCATIONS: [(u64, u64, u64); 2] =
    [(0x1300, R_X86_64_RELATIVE as u64, 0x100), (0x1308, R_X86_64_RELATIVE as u64, 0x1400)];

/// A kernel: static PIE whose dynamic section (at 0x1200) holds `dynamic` and whose RELA table (at 0x1280)
/// holds `relocations`.
fn kernel_elf_with(dynamic: &[(u64, u64)], relocations: &[(u64, u64, u64)]) -> ElfWriter<'static> {
    let data = load(PF_R | PF_W, 0x200, 0x1200, 0x200, 0x400);
    let dynamic_segment = segment(PT_DYNAMIC, PF_R | PF_W, 0x200, 0x1200, 0x80, 0x80, 8);
    let mut elf = elf(ET_DYN, 0x100, &[at(TEXT, 0), data, dynamic_segment], 0x400);
    let entries: Vec<u64> = dynamic.iter().flat_map(|&(tag, value)| [tag, value]).collect();
    let relas: Vec<u64> = relocations.iter().flat_map(|&(offset, info, addend)| [offset, info, addend]).collect();
    elf.words(KERNEL_DYNAMIC, &entries).words(KERNEL_RELA, &relas);
    elf
}

/// A valid kernel: [`kernel_elf_with`] the usual dynamic section and relocations.
fn kernel_elf() -> ElfWriter<'static> {
    kernel_elf_with(&KERNEL_DYNAMIC_ENTRIES, &KERNEL_RELOCATIONS)
}

fn kernel() -> Vec<u8> {
    written(&kernel_elf())
}

/// The kernel fixture with its dynamic entries changed by `change`.
fn kernel_with_dynamic(change: impl FnOnce(&mut [(u64, u64); 3])) -> Vec<u8> {
    let mut dynamic = KERNEL_DYNAMIC_ENTRIES;
    change(&mut dynamic);
    written(&kernel_elf_with(&dynamic, &KERNEL_RELOCATIONS))
}

/// The kernel fixture with its relocations changed by `change`.
fn kernel_with_relocations(change: impl FnOnce(&mut [(u64, u64, u64); 2])) -> Vec<u8> {
    let mut relocations = KERNEL_RELOCATIONS;
    change(&mut relocations);
    written(&kernel_elf_with(&KERNEL_DYNAMIC_ENTRIES, &relocations))
}

/// The error parsing [`exec`] with `change` made to it.
fn exec_err(change: impl FnOnce(&mut ElfWriter<'static>)) -> ElfError {
    let mut elf = exec_elf();
    change(&mut elf);
    app_err(&written(&elf))
}

fn app_err(b: &[u8]) -> ElfError {
    match parse_app(b) {
        Ok(app) => panic!("accepted: {app:?}"),
        Err(e) => e,
    }
}
fn kernel_err(b: &[u8]) -> ElfError {
    match parse_kernel(b) {
        Ok(kernel) => panic!("accepted: {kernel:?}"),
        Err(e) => e,
    }
}

#[test]
fn test_valid_exec() {
    let app = parse_app(&exec()).unwrap();
    assert_eq!(app.kind, AppKind::Exec);
    assert_eq!(app.entry, 0x40_0100);
    assert_eq!(app.span, Span::new(0x40_0000, 0x3000));
    assert_eq!(app.placement(), AppPlacement::Fixed(Span::new(0x40_0000, 0x3000)));
    assert_eq!(app.phdr_vaddr, 0x40_0040);
    assert_eq!((app.phnum, app.phent, app.align), (2, 56, 0x1000));
    assert_eq!(app.segments.len(), 2);
    assert_eq!(app.segments[0].perms, PERM_READ | PERM_EXEC);
    assert_eq!(app.segments[1].perms, PERM_READ | PERM_WRITE);
    assert_eq!(app.segment_bytes(&app.segments[1], &exec()).len(), 0x100);
    assert_eq!(app.runtime_address(app.entry, app.span.start), Some(app.entry));
}

#[test]
fn test_valid_static_pie() {
    let app = parse_app(&pie()).unwrap();
    assert_eq!(app.kind, AppKind::StaticPie);
    assert_eq!(app.placement(), AppPlacement::Relocatable { size: 0x3000, align: 0x1000 });
    assert_eq!(app.phdr_vaddr, 0x40);
    assert_eq!(app.runtime_address(app.entry, 0x5555_0000_0000), Some(0x5555_0000_0100));
}

#[test]
fn test_segments_sorted_and_empty_load_skipped() {
    let empty = load(PF_R, 0, 0x50_0000, 0, 0);
    let app = parse_app(&build(ET_EXEC, 0x40_0100, &[DATA, empty, TEXT], 0x300)).unwrap();
    assert_eq!(app.segments.iter().map(|s| s.vaddr).collect::<Vec<_>>(), [0x40_0000, 0x40_1200]);
}

#[test]
fn test_segments_may_share_a_boundary_page() {
    let data = ProgramHeader { p_offset: 0x200, ..at(DATA, 0x40_0200) };
    assert!(parse_app(&build(ET_EXEC, 0x40_0100, &[TEXT, data], 0x300)).is_ok());
}

#[test]
fn test_bss_only_segment_offset_past_file_end() {
    let bss = ProgramHeader { p_offset: 0x5000, p_filesz: 0, ..at(DATA, 0x40_5000) };
    let app = parse_app(&build(ET_EXEC, 0x40_0100, &[TEXT, DATA, bss], 0x300)).unwrap();
    assert!(app.segment_bytes(&app.segments[2], &exec()).is_empty());
}

#[test]
fn test_pt_phdr_is_used() {
    let phdr = segment(PT_PHDR, PF_R, 64, 0x40_0040, 168, 168, 8);
    let app = parse_app(&build(ET_EXEC, 0x40_0100, &[phdr, TEXT, DATA], 0x300)).unwrap();
    assert_eq!((app.phdr_vaddr, app.phnum), (0x40_0040, 3));
}

#[test]
fn test_bad_magic() {
    assert_eq!(exec_err(|elf| elf.header.e_ident[0] = 0x7e), ElfError::BadMagic);
    assert!(app_err(b"#!/bin/sh\n").to_string().contains("not an ELF file"));
    assert_eq!(app_err(&[]), ElfError::BadMagic);
}

#[test]
fn test_bad_too_short() {
    let e = app_err(&exec()[..63]);
    assert_eq!(e, ElfError::TooShort { len: 63 });
    assert!(e.to_string().contains("not an ELF file"));
}

#[test]
fn test_bad_class32() {
    let mut elf = exec_elf();
    elf.header.e_ident[EI_CLASS] = ELFCLASS32;
    let b = written(&elf);
    assert_eq!(app_err(&b), ElfError::Class32);
    assert!(app_err(&b).to_string().contains("32-bit ELF"));
}

#[test]
fn test_bad_class() {
    assert_eq!(exec_err(|elf| elf.header.e_ident[EI_CLASS] = 3), ElfError::BadClass(3));
}

#[test]
fn test_bad_big_endian() {
    // The header is written in the byte order EI_DATA names: patch the flag alone, after writing.
    let mut b = exec();
    b[EI_DATA] = ELFDATA2MSB;
    assert_eq!(app_err(&b), ElfError::BigEndian);
}

#[test]
fn test_bad_data_encoding() {
    let mut b = exec();
    b[EI_DATA] = 0;
    assert_eq!(app_err(&b), ElfError::BadDataEncoding(0));
}

#[test]
fn test_bad_machine() {
    let e = exec_err(|elf| elf.header.e_machine = EM_AARCH64);
    assert!(matches!(e, ElfError::WrongMachine { machine: EM_AARCH64, .. }));
    assert!(e.to_string().contains("not an x86-64 program"), "{e}");
}

#[test]
fn test_bad_type() {
    for e_type in [ET_REL, ET_CORE, 0] {
        let e = exec_err(|elf| elf.header.e_type = e_type);
        assert!(matches!(e, ElfError::NotExecutable { .. }));
        assert!(e.to_string().contains("not an executable"), "{e}");
    }
}

#[test]
fn test_bad_interpreter() {
    let interp = segment(PT_INTERP, PF_R, 0x2e0, 0x40_02e0, 0x1c, 0x1c, 1);
    let mut elf = elf(ET_EXEC, 0x40_0100, &[interp, TEXT, DATA], 0x300);
    elf.contents(0x2e0, &b"/lib64/ld-linux-x86-64.so.2"[..]);
    let e = app_err(&written(&elf));
    assert_eq!(e, ElfError::Interpreter { interpreter: "/lib64/ld-linux-x86-64.so.2".into() });
    let message = e.to_string();
    assert!(message.contains("dynamically linked") && message.contains("gcc -static"), "{message}");
    // Also when the interpreter path itself is out of the file.
    elf.program_headers[0].p_offset = u64::MAX;
    assert!(matches!(app_err(&written(&elf)), ElfError::Interpreter { .. }));
}

#[test]
fn test_bad_needs_libraries() {
    let mut elf = pie_elf();
    elf.words(0x210, &[DT_NEEDED, 1]);
    let b = written(&elf);
    let e = app_err(&b);
    assert_eq!(e, ElfError::NeedsLibraries);
    assert!(e.to_string().contains("dynamically linked"));
    assert_eq!(kernel_err(&b), ElfError::NeedsLibraries);
}

#[test]
fn test_bad_truncated_program_headers() {
    let b = exec();
    let e = app_err(&b[..64 + 56]);
    assert!(matches!(e, ElfError::TruncatedProgramHeaders { offset: 64, size: 112, file_len: 120 }));
    assert!(e.to_string().contains("truncated"));
    let mut elf = exec_elf();
    elf.header.e_phoff = u64::MAX - 10;
    assert!(matches!(app_err(&written(&elf)), ElfError::TruncatedProgramHeaders { .. }));
}

#[test]
fn test_bad_truncated_segment() {
    let b = exec();
    let e = app_err(&b[..0x2ff]);
    assert!(matches!(e, ElfError::TruncatedSegment { index: 1, offset: 0x200, size: 0x100, file_len: 0x2ff }));
    assert!(e.to_string().contains("truncated"));
}

#[test]
fn test_bad_truncated_dynamic() {
    let mut elf = pie_elf();
    elf.program_headers[2].p_filesz = 0x1000;
    assert!(matches!(app_err(&written(&elf)), ElfError::TruncatedSegment { index: 2, .. }));
}

#[test]
fn test_bad_program_header_size() {
    let e = exec_err(|elf| elf.header.e_phentsize = 32);
    assert_eq!(e, ElfError::BadProgramHeaderSize(32));
    assert!(e.to_string().contains("inconsistent"));
}

#[test]
fn test_bad_too_many_program_headers() {
    let e = exec_err(|elf| elf.header.e_phnum = 0xffff);
    assert_eq!(e, ElfError::TooManyProgramHeaders(0xffff));
    assert!(e.to_string().contains("inconsistent"));
    let e = exec_err(|elf| elf.header.e_phnum = MAX_PROGRAM_HEADERS + 1);
    assert_eq!(e, ElfError::TooManyProgramHeaders(MAX_PROGRAM_HEADERS + 1));
}

#[test]
fn test_bad_file_size_exceeds_memory_size() {
    let e = exec_err(|elf| elf.program_headers[1].p_memsz = 0x80);
    assert_eq!(e, ElfError::FileSizeExceedsMemorySize { index: 1, file_size: 0x100, mem_size: 0x80 });
    assert!(e.to_string().contains("inconsistent"));
}

#[test]
fn test_bad_file_range_overflow() {
    let e = exec_err(|elf| elf.program_headers[1].p_offset = u64::MAX - 0x10);
    assert!(matches!(e, ElfError::FileRangeOverflow { index: 1, .. }));
    assert!(e.to_string().contains("inconsistent"));
}

#[test]
fn test_bad_address_overflow() {
    let mut elf = exec_elf();
    let data = &mut elf.program_headers[1];
    (data.p_vaddr, data.p_offset, data.p_filesz) = (u64::MAX - 0xfff, 0x1000, 0);
    let e = app_err(&written(&elf));
    assert!(matches!(e, ElfError::AddressOverflow { index: 1, .. }), "{e:?}");
    assert!(e.to_string().contains("inconsistent"));
}

#[test]
fn test_bad_non_canonical() {
    let e = exec_err(|elf| elf.program_headers[1].p_vaddr = LOWER_HALF_END - 0x800 + 0x200);
    assert_eq!(e, ElfError::NonCanonical { index: 1, end: LOWER_HALF_END - 0x600 + 0x1000 });
    assert!(e.to_string().contains("inconsistent"));
}

#[test]
fn test_bad_below_lowest_address() {
    let e = app_err(&build(ET_EXEC, 0x1100, &[at(TEXT, 0x1000), at(DATA, 0x2200)], 0x300));
    assert_eq!(e, ElfError::BelowLowestAddress { index: 0, vaddr: 0x1000 });
    // A static PIE linked at 0 is fine: it is relocated.
    assert!(parse_app(&pie()).is_ok());
}

#[test]
fn test_bad_alignment() {
    let e = exec_err(|elf| elf.program_headers[1].p_align = 0x1800);
    assert_eq!(e, ElfError::BadAlignment { index: 1, align: 0x1800 });
    assert!(e.to_string().contains("inconsistent"));
}

#[test]
fn test_bad_alignment_too_large() {
    assert_eq!(
        exec_err(|elf| elf.program_headers[1].p_align = 1 << 40),
        ElfError::AlignmentTooLarge { index: 1, align: 1 << 40 }
    );
}

#[test]
fn test_bad_misaligned() {
    let mut elf = exec_elf();
    elf.program_headers[1].p_vaddr = 0x40_1300;
    let e = app_err(&written(&elf));
    assert_eq!(e, ElfError::Misaligned { index: 1, vaddr: 0x40_1300, offset: 0x200, align: 0x1000 });
    assert!(e.to_string().contains("inconsistent"));
    // p_align 0 or 1 means no constraint.
    elf.program_headers[1].p_align = 1;
    assert!(parse_app(&written(&elf)).is_ok());
}

#[test]
fn test_bad_overlap() {
    let data = ProgramHeader { p_offset: 0x100, p_filesz: 0x100, p_memsz: 0x100, ..at(DATA, 0x40_0100) };
    let e = app_err(&build(ET_EXEC, 0x40_0020, &[TEXT, data], 0x300));
    assert_eq!(e, ElfError::Overlap { first: 0, second: 1 });
    assert!(e.to_string().contains("inconsistent"));
}

#[test]
fn test_bad_no_loadable_segment() {
    let tls = ProgramHeader { p_type: PT_TLS, ..DATA };
    let e = app_err(&build(ET_EXEC, 0x40_0100, &[tls], 0x300));
    assert_eq!(e, ElfError::NoLoadableSegment);
    assert!(e.to_string().contains("inconsistent"));
    assert_eq!(app_err(&build(ET_EXEC, 0x40_0100, &[], 0x300)), ElfError::NoLoadableSegment);
}

#[test]
fn test_bad_entry() {
    for entry in [0, 0x40_1200, 0x40_0200, u64::MAX] {
        let e = exec_err(|elf| elf.header.e_entry = entry);
        assert_eq!(e, ElfError::EntryNotExecutable { entry });
        assert!(e.to_string().contains("inconsistent"));
    }
}

#[test]
fn test_bad_program_headers_not_loaded() {
    let mut elf = exec_elf();
    let text = &mut elf.program_headers[0];
    (text.p_offset, text.p_vaddr, text.p_filesz) = (0x1000, 0x40_1000, 0);
    elf.header.e_entry = 0x40_1000;
    elf.min_len(0x1000);
    assert_eq!(app_err(&written(&elf)), ElfError::ProgramHeadersNotLoaded);
    // A PT_PHDR pointing outside every segment.
    let phdr = segment(PT_PHDR, PF_R, 64, 0x90_0000, 168, 168, 8);
    let e = app_err(&build(ET_EXEC, 0x40_0100, &[phdr, TEXT, DATA], 0x300));
    assert_eq!(e, ElfError::ProgramHeadersNotLoaded);
    assert!(e.to_string().contains("inconsistent"));
}

#[test]
fn test_bad_span_too_large() {
    let e = app_err(&build(ET_EXEC, 0x40_0100, &[TEXT, at(DATA, 0x7000_0000_0200)], 0x300));
    assert!(matches!(e, ElfError::SpanTooLarge { max: MAX_APP_SPAN, .. }));
}

#[test]
fn test_kernel_relocations() {
    let b = kernel();
    let kernel = parse_kernel(&b).unwrap();
    assert_eq!(
        kernel.relocations,
        [Relocation { offset: 0x1300, addend: 0x100 }, Relocation { offset: 0x1308, addend: 0x1400 }]
    );
    assert_eq!(kernel.span, Span::new(0, 0x2000));
    let base = 0x7e00_0000_0000;
    assert_eq!(kernel.entry_address(base), Some(base + 0x100));
    let image = load_image(&kernel, &b, base).unwrap();
    assert_eq!(image.len(), 0x2000);
    assert_eq!(image[..0x200], b[..0x200]);
    assert_eq!(image[0x1200..0x1300], b[0x200..0x300]);
    assert_eq!(read_u64(&image, 0x1300), base + 0x100);
    assert_eq!(read_u64(&image, 0x1308), base + 0x1400);
    assert!(image[0x1400..].iter().all(|&byte| byte == 0));
}

#[test]
fn test_kernel_segments_leave_out_the_bss_and_copy_only_relocated_ones() {
    let file = Bytes::from(kernel());
    let pieces = load_kernel_segments(&parse_kernel(&file).unwrap(), &file, 0x7e00_0000_0000).unwrap();
    let spans: Vec<_> = pieces.iter().map(|piece| (piece.offset, piece.bytes.len())).collect();
    // The data segment's file bytes end at 0x1400; its bss and the rest of the span stay zero.
    assert_eq!(spans, [(0, 0x200), (0x1200, 0x200)]);
    // The text has no relocations: it is the file's own buffer. The data is a patched copy.
    assert_eq!(pieces[0].bytes.as_ptr(), file.as_ptr());
    assert!(!file.as_ptr_range().contains(&pieces[1].bytes.as_ptr()));
    // A relocation may target the bss: the piece reaches its last byte.
    let mut elf = kernel_elf();
    elf.program_headers[1].p_filesz = 0x100;
    let file = Bytes::from(written(&elf));
    let pieces = load_kernel_segments(&parse_kernel(&file).unwrap(), &file, 0x7e00_0000_0000).unwrap();
    assert_eq!(pieces[1].offset, 0x1200);
    assert_eq!(pieces[1].bytes.len(), 0x110);
    assert_ne!(read_u64(&pieces[1].bytes, 0x108), 0);
}

#[test]
fn test_kernel_without_dynamic_section() {
    let kernel = parse_kernel(&build(ET_DYN, 0x100, &[at(TEXT, 0)], 0x200)).unwrap();
    assert!(kernel.relocations.is_empty());
}

#[test]
fn test_bad_kernel_not_pie() {
    let e = kernel_err(&exec());
    assert_eq!(e, ElfError::KernelNotPie { kind: "EXEC" });
}

#[test]
fn test_bad_kernel_interpreter() {
    let interp = segment(PT_INTERP, PF_R, 0x2e0, 0x2e0, 4, 4, 1);
    assert!(matches!(kernel_err(&build(ET_DYN, 0x100, &[interp, at(TEXT, 0)], 0x300)), ElfError::Interpreter { .. }));
}

#[test]
fn test_bad_kernel_unsupported_relocation() {
    let e = kernel_err(&kernel_with_relocations(|relocations| relocations[1].1 = u64::from(R_X86_64_64) | (1 << 32)));
    assert_eq!(e, ElfError::UnsupportedRelocation { index: 1, r_type: R_X86_64_64, name: "X86_64_64" });
    assert!(e.to_string().contains("X86_64_64"));
}

#[test]
fn test_kernel_none_relocation_skipped() {
    let b = kernel_with_relocations(|relocations| relocations[0].1 = u64::from(R_X86_64_NONE));
    assert_eq!(parse_kernel(&b).unwrap().relocations.len(), 1);
}

#[test]
fn test_bad_kernel_relocation_out_of_image() {
    for offset in [0x15fc, 0x1100, 0x1_0000, u64::MAX - 3] {
        let b = kernel_with_relocations(|relocations| relocations[0].0 = offset);
        assert_eq!(kernel_err(&b), ElfError::RelocationOutOfImage { index: 0, offset });
    }
}

#[test]
fn test_bad_kernel_relocation_format() {
    for (tag, format) in [(DT_REL, "REL"), (DT_RELSZ, "REL"), (DT_RELR, "RELR"), (DT_RELRSZ, "RELR")] {
        let dynamic = [KERNEL_DYNAMIC_ENTRIES.as_slice(), &[(tag, 0)]].concat();
        let b = written(&kernel_elf_with(&dynamic, &KERNEL_RELOCATIONS));
        assert_eq!(kernel_err(&b), ElfError::UnsupportedRelocationFormat(format));
    }
    // PLT relocations in REL format.
    let dynamic = [KERNEL_DYNAMIC_ENTRIES.as_slice(), &[(DT_JMPREL, 0x1280), (DT_PLTRELSZ, 24)]].concat();
    let b = written(&kernel_elf_with(&dynamic, &KERNEL_RELOCATIONS));
    assert_eq!(kernel_err(&b), ElfError::UnsupportedRelocationFormat("REL"));
}

#[test]
fn test_bad_kernel_missing_dynamic_entry() {
    let b = kernel_with_dynamic(|dynamic| dynamic[1].0 = DT_FLAGS_1); // instead of DT_RELASZ
    assert_eq!(kernel_err(&b), ElfError::MissingDynamicEntry("DT_RELASZ"));
}

#[test]
fn test_bad_kernel_relocation_entry_size() {
    let b = kernel_with_dynamic(|dynamic| dynamic[2].1 = 16);
    assert_eq!(kernel_err(&b), ElfError::BadRelocationEntrySize(16));
}

#[test]
fn test_bad_kernel_relocation_table_size() {
    let b = kernel_with_dynamic(|dynamic| dynamic[1].1 = 47);
    assert_eq!(kernel_err(&b), ElfError::BadRelocationTableSize(47));
}

#[test]
fn test_bad_kernel_relocation_table_not_loaded() {
    // Past the file-backed part of the data segment (in its bss), and wrapping around.
    for (vaddr, size) in [(0x1380, 0x120), (0x1400, 24), (u64::MAX - 23, 48)] {
        let b = kernel_with_dynamic(|dynamic| (dynamic[0].1, dynamic[1].1) = (vaddr, size));
        assert_eq!(kernel_err(&b), ElfError::RelocationTableNotLoaded { vaddr, size });
    }
}

#[test]
fn test_bad_kernel_span_too_large() {
    let mut elf = kernel_elf();
    elf.program_headers[1].p_memsz = MAX_KERNEL_SPAN;
    assert!(matches!(kernel_err(&written(&elf)), ElfError::SpanTooLarge { max: MAX_KERNEL_SPAN, .. }));
}

#[test]
fn test_bad_kernel_base() {
    let b = kernel();
    let kernel = parse_kernel(&b).unwrap();
    assert_eq!(load_image(&kernel, &b, 0x1234), Err(ElfError::BaseMisaligned { base: 0x1234, align: 0x1000 }));
    let base = LOWER_HALF_END - 0x1000;
    assert_eq!(load_image(&kernel, &b, base), Err(ElfError::BaseOutOfRange { base, size: 0x2000 }));
    assert_eq!(load_image(&kernel, &b, !0xfff_u64), Err(ElfError::BaseOutOfRange { base: !0xfff_u64, size: 0x2000 }));
}

#[test]
fn test_bad_kernel_relocation_overflow() {
    let b = kernel_with_relocations(|relocations| relocations[0].2 = (-0x2000i64) as u64);
    let kernel = parse_kernel(&b).unwrap();
    assert_eq!(load_image(&kernel, &b, 0x1000), Err(ElfError::RelocationOverflow { offset: 0x1300, base: 0x1000 }));
    assert!(load_image(&kernel, &b, 0x2000).is_ok());
}

#[test]
fn test_bad_kernel_file_mismatch() {
    let b = kernel();
    let kernel = parse_kernel(&b).unwrap();
    assert_eq!(load_image(&kernel, &b[..0x300], 0), Err(ElfError::FileMismatch));
    let app = parse_app(&exec()).unwrap();
    assert!(app.segment_bytes(&app.segments[1], &[]).is_empty());
}

// Real binaries, compiled now with the system toolchain.

fn compile(compiler: &str, flags: &[&str], source: &str, dir: &Path, name: &str) -> Vec<u8> {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let out = dir.join(name);
    let status = Command::new(compiler).args(flags).arg("-o").arg(&out).arg(&c).status().unwrap();
    assert!(status.success(), "{compiler} {flags:?} failed");
    std::fs::read(out).unwrap()
}

const HELLO: &str =
    "#include <stdio.h>\nint counter = 3;\nint main(void) { printf(\"hi %d\\n\", counter); return 0; }\n";

/// Checks a parsed real binary against goblin's full (trusted-input) parse.
fn check_real(bytes: &[u8], kind: AppKind) {
    let app = parse_app(bytes).unwrap();
    let elf = goblin::elf::Elf::parse(bytes).unwrap();
    assert_eq!(app.kind, kind);
    assert!(app.segments.iter().any(|s| s.perms & PERM_EXEC != 0 && s.vaddr <= app.entry && app.entry < s.end()));
    let loads: Vec<_> = elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD).map(|p| p.p_vaddr).collect();
    assert_eq!(app.segments.iter().map(|s| s.vaddr).collect::<Vec<_>>(), loads);
    let expected_phdr = match elf.program_headers.iter().find(|p| p.p_type == PT_PHDR) {
        Some(phdr) => phdr.p_vaddr,
        None => {
            let first = elf.program_headers.iter().find(|p| p.p_type == PT_LOAD && p.p_offset == 0).unwrap();
            first.p_vaddr + elf.header.e_phoff
        }
    };
    assert_eq!(app.phdr_vaddr, expected_phdr);
    assert_eq!(app.phnum, elf.program_headers.len() as u64);
    for segment in &app.segments {
        assert_eq!(app.segment_bytes(segment, bytes).len() as u64, segment.file_size);
    }
}

#[test]
fn test_real_gcc_binaries() {
    let dir = tempfile::tempdir().unwrap();
    check_real(&compile("gcc", &["-static", "-O2"], HELLO, dir.path(), "static"), AppKind::Exec);
    check_real(&compile("gcc", &["-static-pie", "-O2"], HELLO, dir.path(), "static_pie"), AppKind::StaticPie);
    let dynamic = compile("gcc", &["-O2"], HELLO, dir.path(), "dynamic");
    let e = app_err(&dynamic);
    assert!(matches!(e, ElfError::Interpreter { .. }), "{e:?}");
    let object = compile("gcc", &["-c"], HELLO, dir.path(), "object");
    assert_eq!(app_err(&object), ElfError::NotExecutable { kind: "REL" });
}

#[test]
fn test_real_musl_binaries() {
    if !Path::new("/usr/bin/musl-gcc").exists() {
        println!("note: /usr/bin/musl-gcc not found, musl binaries not checked");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    check_real(&compile("musl-gcc", &["-static", "-O2"], HELLO, dir.path(), "musl_static"), AppKind::Exec);
}

#[test]
fn test_real_kernel_like_static_pie() {
    let dir = tempfile::tempdir().unwrap();
    let source = "static int a, b;\nint *table[] = { &a, &b };\nvoid _start(void) { for (;;) {} }\n";
    let flags = ["-static-pie", "-nostdlib", "-fPIE", "-O2"];
    let bytes = compile("gcc", &flags, source, dir.path(), "kernel");
    let kernel = parse_kernel(&bytes).unwrap();
    assert_eq!(kernel.relocations.len(), 2);
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let table = elf.syms.iter().find(|s| elf.strtab.get_at(s.st_name) == Some("table")).unwrap();
    let base = 0x7e00_0000_0000;
    let image = load_image(&kernel, &bytes, base).unwrap();
    for (i, relocation) in kernel.relocations.iter().enumerate() {
        assert!(relocation.offset == table.st_value || relocation.offset == table.st_value + 8, "{i}");
        let value = read_u64(&image, (relocation.offset - kernel.span.start) as usize);
        assert_eq!(value, base + relocation.addend as u64);
    }
    // glibc's static PIE resolves IFUNCs with IRELATIVE relocations: not for the kernel.
    let glibc = compile("gcc", &["-static-pie", "-O2"], HELLO, dir.path(), "glibc");
    let e = kernel_err(&glibc);
    assert!(matches!(e, ElfError::UnsupportedRelocation { name: "X86_64_IRELATIVE", .. }), "{e:?}");
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)]) -> Vec<u8> {
    let len = bytes.len();
    for &(at, value) in edits {
        bytes[at % len] = value;
    }
    bytes
}

fn exercise(bytes: &[u8]) {
    let _ = parse_app(bytes);
    if let Ok(kernel) = parse_kernel(bytes) {
        let _ = load_image(&kernel, bytes, 0x7e00_0000_0000);
    }
}

proptest! {
    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        exercise(&bytes);
    }

    #[test]
    fn prop_mutated_headers_never_panic(
        edits in proptest::collection::vec((0usize..0x400, any::<u8>()), 1..8),
        words in proptest::collection::vec((0usize..0x400, any::<u64>()), 0..3),
    ) {
        for base in [exec(), pie(), kernel()] {
            let mut bytes = mutate(base, &edits);
            for &(at, value) in &words {
                let at = at.min(bytes.len() - 8);
                bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
            }
            exercise(&bytes);
        }
    }

    #[test]
    fn prop_mutated_headers_keep_invariants(edits in proptest::collection::vec((0usize..0x200, any::<u8>()), 1..4)) {
        if let Ok(app) = parse_app(&mutate(exec(), &edits)) {
            prop_assert!(app.span.start % PAGE_SIZE == 0 && app.span.size % PAGE_SIZE == 0);
            prop_assert!(app.span.end() <= LOWER_HALF_END && app.span.size <= MAX_APP_SPAN);
            prop_assert!(app.segments.windows(2).all(|w| w[0].end() <= w[1].vaddr));
            prop_assert!(app.segments.iter().all(|s| s.vaddr >= app.span.start && s.end() <= app.span.end()));
        }
    }
}
