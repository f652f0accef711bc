//! Validation and parsing of the ELF files secure-run loads: an app (untrusted, from the user, a fuzzer, or
//! an `execve` inside the guest) and the guest kernel (ours, a static PIE, validated all the same). The
//! VMM validates the first app and the kernel with it; the guest kernel validates every program `execve`
//! starts with the very same code.
//!
//! Validate first, then act: [`parse_app`] and [`parse_kernel`] check every header field, offset and size
//! with checked arithmetic before anything is copied, and return one [`ElfError`] variant per failure.
//! Nothing here panics, overflows or allocates more than the file's own size (or a small constant) on
//! hostile input.
//!
//! We deliberately do not use goblin's `Elf::parse`: it also parses section headers, symbol and string
//! tables, notes and the dynamic section, allocating vectors sized by counts the file provides, and it
//! tolerates inconsistencies we must refuse. Instead we read the fixed-size ELF header with goblin's
//! `elf64::header::Header::parse` on the first 64 bytes, check `e_phentsize`/`e_phnum` against
//! [`MAX_PROGRAM_HEADERS`], and only then let goblin's `ProgramHeader::parse` read that bounded slice.
//! The few dynamic entries and relocations we need are decoded by hand from ranges already checked to lie
//! inside the file.

use alloc::string::String;
use alloc::vec::Vec;

use goblin::container::Endian;
use goblin::elf::dynamic::{
    DT_JMPREL, DT_NEEDED, DT_NULL, DT_PLTREL, DT_PLTRELSZ, DT_REL, DT_RELA, DT_RELAENT, DT_RELASZ, DT_RELSZ,
};
use goblin::elf::header::{
    et_to_str, machine_to_str, EI_CLASS, EI_DATA, ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB, ELFMAG, EM_X86_64,
    ET_DYN, ET_EXEC,
};
use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_DYNAMIC, PT_INTERP, PT_LOAD, PT_PHDR};
use goblin::elf::reloc::{r_to_str, R_X86_64_NONE, R_X86_64_RELATIVE};
use goblin::elf64::header::{Header, SIZEOF_EHDR};
use goblin::elf64::program_header::{ProgramHeader, SIZEOF_PHDR};
use isolation::layout::{AppPlacement, Span, LOWEST_ADDRESS};
use isolation::paging::{LOWER_HALF_END, PAGE_SIZE};
use kernel_abi::{PERM_EXEC, PERM_READ, PERM_WRITE};

/// More program headers than any real static program has (gcc -static: about 10).
pub const MAX_PROGRAM_HEADERS: u16 = 64;
/// Largest app image span (virtual size from the lowest to the highest loadable byte).
pub const MAX_APP_SPAN: u64 = 4 << 30;
/// Largest kernel image span (the VMM allocates this much at most when it loads the kernel).
pub const MAX_KERNEL_SPAN: u64 = 256 << 20;
/// Largest accepted segment alignment (real binaries use 4 KiB, sometimes 2 MiB).
pub const MAX_SEGMENT_ALIGN: u64 = 1 << 30;
/// Size of one `Elf64_Dyn`.
const DYN_SIZE: usize = 16;
/// Size of one `Elf64_Rela`.
const RELA_SIZE: u64 = 24;
/// Longest interpreter path quoted in an error message.
const MAX_INTERPRETER_LEN: usize = 128;
// Not (yet) in goblin: the packed relative relocations of `-z pack-relative-relocs`.
pub const DT_RELRSZ: u64 = 35;
pub const DT_RELR: u64 = 36;

/// Why an ELF file was refused. Messages are lowercase and say what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file (it does not start with the ELF magic number)")]
    BadMagic,
    #[error("not an ELF file: {len} bytes is too short to hold an ELF header")]
    TooShort { len: usize },
    #[error("32-bit ELF: only 64-bit x86-64 programs can run (rebuild it for x86-64)")]
    Class32,
    #[error("invalid ELF class {0} (expected 2, 64-bit)")]
    BadClass(u8),
    #[error("big-endian ELF: only little-endian x86-64 programs can run")]
    BigEndian,
    #[error("invalid ELF data encoding {0} (expected 1, little-endian)")]
    BadDataEncoding(u8),
    #[error("not an x86-64 program (ELF machine {machine}, {name}): rebuild it for x86-64")]
    WrongMachine { machine: u16, name: &'static str },
    #[error("not an executable (ELF type {kind}): link it into a static program")]
    NotExecutable { kind: &'static str },
    #[error("dynamically linked (it asks for the interpreter {interpreter:?}): link it statically (gcc -static or -static-pie)")]
    Interpreter { interpreter: String },
    #[error("dynamically linked (it needs shared libraries): link it statically (gcc -static or -static-pie)")]
    NeedsLibraries,
    #[error("truncated ELF file: the program header table ({size:#x} bytes at offset {offset:#x}) extends past the end of the file ({file_len:#x} bytes)")]
    TruncatedProgramHeaders { offset: u64, size: u64, file_len: usize },
    #[error("truncated ELF file: program header {index} refers to {size:#x} bytes at offset {offset:#x}, past the end of the file ({file_len:#x} bytes)")]
    TruncatedSegment { index: usize, offset: u64, size: u64, file_len: usize },
    #[error("inconsistent ELF header: program header entry size is {0}, expected 56")]
    BadProgramHeaderSize(u16),
    #[error("inconsistent ELF header: {0} program headers, more than the {MAX_PROGRAM_HEADERS} supported")]
    TooManyProgramHeaders(u16),
    #[error("inconsistent program header {index}: file size {file_size:#x} exceeds memory size {mem_size:#x}")]
    FileSizeExceedsMemorySize { index: usize, file_size: u64, mem_size: u64 },
    #[error("inconsistent program header {index}: file offset {offset:#x} + file size {size:#x} overflows")]
    FileRangeOverflow { index: usize, offset: u64, size: u64 },
    #[error("inconsistent program header {index}: address {vaddr:#x} + memory size {size:#x} overflows")]
    AddressOverflow { index: usize, vaddr: u64, size: u64 },
    #[error("inconsistent program header {index}: the segment ends at {end:#x}, beyond the lower canonical half (0x800000000000)")]
    NonCanonical { index: usize, end: u64 },
    #[error("program header {index} maps address {vaddr:#x}, below the lowest mappable address {LOWEST_ADDRESS:#x}: link the program at a higher address")]
    BelowLowestAddress { index: usize, vaddr: u64 },
    #[error("inconsistent program header {index}: alignment {align:#x} is not a power of two")]
    BadAlignment { index: usize, align: u64 },
    #[error(
        "inconsistent program header {index}: alignment {align:#x} is larger than the {MAX_SEGMENT_ALIGN:#x} supported"
    )]
    AlignmentTooLarge { index: usize, align: u64 },
    #[error("inconsistent program header {index}: address {vaddr:#x} and file offset {offset:#x} differ modulo the alignment {align:#x}")]
    Misaligned { index: usize, vaddr: u64, offset: u64, align: u64 },
    #[error("inconsistent program headers: loadable segments {first} and {second} overlap")]
    Overlap { first: usize, second: usize },
    #[error("inconsistent ELF file: no loadable segment (PT_LOAD)")]
    NoLoadableSegment,
    #[error("inconsistent ELF header: entry point {entry:#x} is not inside an executable segment")]
    EntryNotExecutable { entry: u64 },
    #[error("inconsistent ELF file: the program header table is not inside a loadable segment")]
    ProgramHeadersNotLoaded,
    #[error("image too large: its loadable segments span {size:#x} bytes, more than the {max:#x} allowed")]
    SpanTooLarge { size: u64, max: u64 },
    #[error("the kernel is not a position-independent executable (ELF type {kind}): build it as a static PIE")]
    KernelNotPie { kind: &'static str },
    #[error("unsupported relocation table ({0}): only RELA relocations are supported")]
    UnsupportedRelocationFormat(&'static str),
    #[error("inconsistent dynamic section: {0} is missing")]
    MissingDynamicEntry(&'static str),
    #[error("inconsistent dynamic section: relocation entry size is {0}, expected 24")]
    BadRelocationEntrySize(u64),
    #[error("inconsistent dynamic section: relocation table size {0:#x} is not a multiple of 24")]
    BadRelocationTableSize(u64),
    #[error("inconsistent dynamic section: the relocation table ({size:#x} bytes at {vaddr:#x}) is not inside the file-backed part of a loadable segment")]
    RelocationTableNotLoaded { vaddr: u64, size: u64 },
    #[error("unsupported relocation type {r_type} ({name}) in entry {index}: only R_X86_64_RELATIVE is supported")]
    UnsupportedRelocation { index: usize, r_type: u32, name: &'static str },
    #[error("inconsistent relocation {index}: its target {offset:#x} is not 8 bytes inside a loadable segment")]
    RelocationOutOfImage { index: usize, offset: u64 },
    #[error("kernel base {base:#x} is not aligned to {align:#x}")]
    BaseMisaligned { base: u64, align: u64 },
    #[error("kernel base {base:#x} leaves no room for its {size:#x}-byte image in the lower canonical half")]
    BaseOutOfRange { base: u64, size: u64 },
    #[error("relocation at {offset:#x} overflows for kernel base {base:#x}")]
    RelocationOverflow { offset: u64, base: u64 },
    #[error("the file passed to load is not the one that was parsed (segment bytes out of range)")]
    FileMismatch,
}

/// How an app may be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppKind {
    /// ET_EXEC: linked at a fixed address.
    Exec,
    /// ET_DYN without PT_INTERP: a static PIE, placed anywhere.
    StaticPie,
}

/// One validated PT_LOAD segment (addresses are link-time addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    /// [`PERM_READ`] | [`PERM_WRITE`] | [`PERM_EXEC`].
    pub perms: u32,
    /// `p_align` as the file gives it (0 or a power of two).
    pub align: u64,
}

impl Segment {
    /// The first address past the segment (validated not to overflow).
    pub const fn end(&self) -> u64 {
        self.vaddr.saturating_add(self.mem_size)
    }
    /// Whether `[start, start + len)` lies inside the segment.
    pub fn contains(&self, start: u64, len: u64) -> bool {
        start >= self.vaddr && start.checked_add(len).is_some_and(|end| end <= self.end())
    }
}

/// A validated app ELF. Segments may share a page at their boundary (linkers lay out e.g. RELRO and
/// data that way with `-z noseparate-code`) but never overlap byte-wise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppElf {
    pub kind: AppKind,
    /// Link-time entry address; inside an executable segment.
    pub entry: u64,
    /// PT_LOAD segments with a non-zero memory size, sorted by address, non-overlapping.
    pub segments: Vec<Segment>,
    /// Link-time address of the program header table (for AT_PHDR).
    pub phdr_vaddr: u64,
    /// Number of program headers (AT_PHNUM).
    pub phnum: u64,
    /// Size of one program header (AT_PHENT).
    pub phent: u64,
    /// Page-aligned `[lowest segment address rounded down, highest end rounded up)`.
    pub span: Span,
    /// Largest PT_LOAD alignment, at least [`PAGE_SIZE`].
    pub align: u64,
}

impl AppElf {
    /// Where the app may go: at its link address (ET_EXEC) or anywhere suitably aligned (static PIE).
    pub fn placement(&self) -> AppPlacement {
        match self.kind {
            AppKind::Exec => AppPlacement::Fixed(self.span),
            AppKind::StaticPie => AppPlacement::Relocatable { size: self.span.size, align: self.align },
        }
    }

    /// The run-time address of link-time address `vaddr` when `span.start` is placed at `base`
    /// (for ET_EXEC, `base` is `span.start`). `None` if it would overflow.
    pub fn runtime_address(&self, vaddr: u64, base: u64) -> Option<u64> {
        base.checked_add(vaddr.checked_sub(self.span.start)?)
    }

    /// The file bytes of `segment` (`file_size` bytes). `file` must be the slice this was parsed from;
    /// for any other slice too short to hold the range, the result is empty.
    pub fn segment_bytes<'a>(&self, segment: &Segment, file: &'a [u8]) -> &'a [u8] {
        file_range(file, segment.file_offset, segment.file_size).unwrap_or(&[])
    }
}

/// One R_X86_64_RELATIVE relocation: the 8 bytes at link address `offset` become `load bias + addend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relocation {
    pub offset: u64,
    pub addend: i64,
}

/// The validated guest kernel: a static PIE with only relative relocations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelElf {
    /// Link-time entry address; inside an executable segment.
    pub entry: u64,
    /// PT_LOAD segments, sorted by address, non-overlapping.
    pub segments: Vec<Segment>,
    /// Page-aligned span of the segments at link addresses (normally starting at 0).
    pub span: Span,
    /// Largest PT_LOAD alignment, at least [`PAGE_SIZE`].
    pub align: u64,
    /// Relative relocations, each target 8 bytes inside a segment.
    pub relocations: Vec<Relocation>,
}

impl KernelElf {
    /// The run-time entry address when the image is loaded at `base`.
    pub fn entry_address(&self, base: u64) -> Option<u64> {
        base.checked_add(self.entry.checked_sub(self.span.start)?)
    }
}

/// Validates an app ELF: a static x86-64 executable (ET_EXEC) or static PIE.
pub fn parse_app(bytes: &[u8]) -> Result<AppElf, ElfError> {
    let header = parse_header(bytes)?;
    let kind = match header.e_type {
        ET_EXEC => AppKind::Exec,
        ET_DYN => AppKind::StaticPie,
        other => return Err(ElfError::NotExecutable { kind: et_to_str(other) }),
    };
    let headers = parse_program_headers(bytes, &header)?;
    refuse_dynamic_linking(bytes, &headers)?;
    let image = validate_loads(bytes, &header, &headers, MAX_APP_SPAN)?;
    if kind == AppKind::Exec {
        for (index, segment) in &image.indexed {
            if segment.vaddr < LOWEST_ADDRESS {
                return Err(ElfError::BelowLowestAddress { index: *index, vaddr: segment.vaddr });
            }
        }
    }
    let phdr_vaddr = program_header_address(bytes, &header, &headers, &image.segments)?;
    Ok(AppElf {
        kind,
        entry: header.e_entry,
        segments: image.segments,
        phdr_vaddr,
        phnum: u64::from(header.e_phnum),
        phent: u64::from(header.e_phentsize),
        span: image.span,
        align: image.align,
    })
}

/// Validates the guest kernel (a static PIE) and collects its relative relocations.
pub fn parse_kernel(bytes: &[u8]) -> Result<KernelElf, ElfError> {
    let header = parse_header(bytes)?;
    if header.e_type != ET_DYN {
        return Err(ElfError::KernelNotPie { kind: et_to_str(header.e_type) });
    }
    let headers = parse_program_headers(bytes, &header)?;
    refuse_dynamic_linking(bytes, &headers)?;
    let image = validate_loads(bytes, &header, &headers, MAX_KERNEL_SPAN)?;
    let relocations = parse_relocations(bytes, &headers, &image.segments)?;
    Ok(KernelElf { entry: header.e_entry, segments: image.segments, span: image.span, align: image.align, relocations })
}

/// `file[offset..offset + len]`, or `None` if the range overflows or leaves the file. An empty range is
/// always fine: the offset of a segment without file bytes (bss only) does not matter.
pub fn file_range(file: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    if len == 0 {
        return Some(&[]);
    }
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    file.get(start..end)
}

/// The little-endian u64 at `at` (0 past the end).
pub fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(source) = at.checked_add(8).and_then(|end| bytes.get(at..end)) {
        word.copy_from_slice(source);
    }
    u64::from_le_bytes(word)
}

/// Checks the identification bytes, then reads the fixed-size header (never more than 64 bytes).
fn parse_header(bytes: &[u8]) -> Result<Header, ElfError> {
    if !bytes.starts_with(ELFMAG) {
        return Err(ElfError::BadMagic);
    }
    let Some(header_bytes) = bytes.get(..SIZEOF_EHDR) else {
        return Err(ElfError::TooShort { len: bytes.len() });
    };
    match header_bytes[EI_CLASS] {
        ELFCLASS64 => {}
        ELFCLASS32 => return Err(ElfError::Class32),
        other => return Err(ElfError::BadClass(other)),
    }
    match header_bytes[EI_DATA] {
        ELFDATA2LSB => {}
        ELFDATA2MSB => return Err(ElfError::BigEndian),
        other => return Err(ElfError::BadDataEncoding(other)),
    }
    // Cannot fail on 64 little-endian bytes; map it anyway rather than unwrap.
    let header = Header::parse(header_bytes).map_err(|_| ElfError::TooShort { len: bytes.len() })?;
    if header.e_machine != EM_X86_64 {
        return Err(ElfError::WrongMachine { machine: header.e_machine, name: machine_to_str(header.e_machine) });
    }
    Ok(header)
}

/// Reads the program header table after bounding its entry size, count and file range.
fn parse_program_headers(bytes: &[u8], header: &Header) -> Result<Vec<ProgramHeader>, ElfError> {
    if usize::from(header.e_phentsize) != SIZEOF_PHDR {
        return Err(ElfError::BadProgramHeaderSize(header.e_phentsize));
    }
    // e_phnum == 0xffff (PN_XNUM, count in a section header) is refused here too.
    if header.e_phnum > MAX_PROGRAM_HEADERS {
        return Err(ElfError::TooManyProgramHeaders(header.e_phnum));
    }
    let count = usize::from(header.e_phnum);
    let size = (count * SIZEOF_PHDR) as u64; // at most 64 * 56
    let table = file_range(bytes, header.e_phoff, size).ok_or(ElfError::TruncatedProgramHeaders {
        offset: header.e_phoff,
        size,
        file_len: bytes.len(),
    })?;
    ProgramHeader::parse(table, 0, count, Endian::Little).map_err(|_| ElfError::TruncatedProgramHeaders {
        offset: header.e_phoff,
        size,
        file_len: bytes.len(),
    })
}

/// The file bytes a program header refers to, or a truncation error.
fn segment_file_bytes<'a>(bytes: &'a [u8], index: usize, header: &ProgramHeader) -> Result<&'a [u8], ElfError> {
    if header.p_offset.checked_add(header.p_filesz).is_none() {
        return Err(ElfError::FileRangeOverflow { index, offset: header.p_offset, size: header.p_filesz });
    }
    file_range(bytes, header.p_offset, header.p_filesz).ok_or(ElfError::TruncatedSegment {
        index,
        offset: header.p_offset,
        size: header.p_filesz,
        file_len: bytes.len(),
    })
}

/// `(tag, value)` pairs of a PT_DYNAMIC segment's file bytes, up to DT_NULL.
fn dynamic_entries(dynamic: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    dynamic
        .chunks_exact(DYN_SIZE)
        .map(|entry| (read_u64(entry, 0), read_u64(entry, 8)))
        .take_while(|&(tag, _)| tag != DT_NULL)
}

/// A PT_INTERP, or a PT_DYNAMIC with DT_NEEDED, means the program needs a dynamic loader we do not have.
/// A static PIE has a PT_DYNAMIC (for its own relocations) but neither of these.
fn refuse_dynamic_linking(bytes: &[u8], headers: &[ProgramHeader]) -> Result<(), ElfError> {
    if let Some(interp) = headers.iter().find(|h| h.p_type == PT_INTERP) {
        let path = file_range(bytes, interp.p_offset, interp.p_filesz.min(MAX_INTERPRETER_LEN as u64)).unwrap_or(&[]);
        let path = path.split(|&b| b == 0).next().unwrap_or(&[]);
        return Err(ElfError::Interpreter { interpreter: String::from_utf8_lossy(path).into_owned() });
    }
    for (index, header) in headers.iter().enumerate().filter(|(_, h)| h.p_type == PT_DYNAMIC) {
        let dynamic = segment_file_bytes(bytes, index, header)?;
        if dynamic_entries(dynamic).any(|(tag, _)| tag == DT_NEEDED) {
            return Err(ElfError::NeedsLibraries);
        }
    }
    Ok(())
}

/// The result of [`validate_loads`].
struct LoadImage {
    /// Sorted by address, with the index of their program header (for error messages).
    indexed: Vec<(usize, Segment)>,
    segments: Vec<Segment>,
    span: Span,
    align: u64,
}

/// Checks every PT_LOAD (file range, sizes, address range, alignment), that they do not overlap, that the
/// entry point is in an executable one, and that the whole span is at most `max_span` bytes.
fn validate_loads(
    bytes: &[u8],
    header: &Header,
    headers: &[ProgramHeader],
    max_span: u64,
) -> Result<LoadImage, ElfError> {
    let mut indexed = Vec::with_capacity(headers.len());
    for (index, ph) in headers.iter().enumerate().filter(|(_, h)| h.p_type == PT_LOAD) {
        segment_file_bytes(bytes, index, ph)?;
        if ph.p_filesz > ph.p_memsz {
            return Err(ElfError::FileSizeExceedsMemorySize { index, file_size: ph.p_filesz, mem_size: ph.p_memsz });
        }
        let end = ph.p_vaddr.checked_add(ph.p_memsz).ok_or(ElfError::AddressOverflow {
            index,
            vaddr: ph.p_vaddr,
            size: ph.p_memsz,
        })?;
        if end > LOWER_HALF_END {
            return Err(ElfError::NonCanonical { index, end });
        }
        if ph.p_align > 1 {
            if !ph.p_align.is_power_of_two() {
                return Err(ElfError::BadAlignment { index, align: ph.p_align });
            }
            if ph.p_align > MAX_SEGMENT_ALIGN {
                return Err(ElfError::AlignmentTooLarge { index, align: ph.p_align });
            }
            if ph.p_vaddr % ph.p_align != ph.p_offset % ph.p_align {
                return Err(ElfError::Misaligned { index, vaddr: ph.p_vaddr, offset: ph.p_offset, align: ph.p_align });
            }
        }
        // An empty PT_LOAD maps nothing (the kernel ignores it too); it was still validated above.
        if ph.p_memsz == 0 {
            continue;
        }
        let mut perms = 0;
        for (flag, perm) in [(PF_R, PERM_READ), (PF_W, PERM_WRITE), (PF_X, PERM_EXEC)] {
            if ph.p_flags & flag != 0 {
                perms |= perm;
            }
        }
        let segment = Segment {
            vaddr: ph.p_vaddr,
            mem_size: ph.p_memsz,
            file_offset: ph.p_offset,
            file_size: ph.p_filesz,
            perms,
            align: ph.p_align,
        };
        indexed.push((index, segment));
    }
    indexed.sort_by_key(|(_, segment)| segment.vaddr);
    for pair in indexed.windows(2) {
        let ((first, a), (second, b)) = (pair[0], pair[1]);
        // Byte-wise overlap only: sharing the boundary page is how real linkers lay segments out.
        if a.end() > b.vaddr {
            return Err(ElfError::Overlap { first, second });
        }
    }
    let (Some((_, first)), Some((_, last))) = (indexed.first(), indexed.last()) else {
        return Err(ElfError::NoLoadableSegment);
    };
    // end <= LOWER_HALF_END, a page multiple, so rounding up cannot overflow.
    let start = first.vaddr - first.vaddr % PAGE_SIZE;
    let end = last.end().div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let span = Span::new(start, end - start);
    if span.size > max_span {
        return Err(ElfError::SpanTooLarge { size: span.size, max: max_span });
    }
    let entry = header.e_entry;
    if !indexed.iter().any(|(_, s)| s.perms & PERM_EXEC != 0 && s.contains(entry, 1)) {
        return Err(ElfError::EntryNotExecutable { entry });
    }
    let align = indexed.iter().map(|(_, s)| s.align).fold(PAGE_SIZE, u64::max);
    let segments = indexed.iter().map(|(_, s)| *s).collect();
    Ok(LoadImage { indexed, segments, span, align })
}

/// AT_PHDR: PT_PHDR's address if present (checked to be loaded), else the address of `e_phoff` in the
/// PT_LOAD whose file range holds the whole table.
fn program_header_address(
    bytes: &[u8],
    header: &Header,
    headers: &[ProgramHeader],
    segments: &[Segment],
) -> Result<u64, ElfError> {
    let size = u64::from(header.e_phnum) * u64::from(header.e_phentsize);
    if let Some((index, phdr)) = headers.iter().enumerate().find(|(_, h)| h.p_type == PT_PHDR) {
        segment_file_bytes(bytes, index, phdr)?;
        return if segments.iter().any(|s| s.contains(phdr.p_vaddr, size)) {
            Ok(phdr.p_vaddr)
        } else {
            Err(ElfError::ProgramHeadersNotLoaded)
        };
    }
    segments
        .iter()
        .find(|s| {
            header.e_phoff >= s.file_offset
                && header.e_phoff.checked_add(size).is_some_and(|end| end <= s.file_offset + s.file_size)
        })
        .map(|s| s.vaddr + (header.e_phoff - s.file_offset))
        .ok_or(ElfError::ProgramHeadersNotLoaded)
}

/// The relocation tables named by the dynamic section, as validated file byte ranges.
fn parse_relocations(
    bytes: &[u8],
    headers: &[ProgramHeader],
    segments: &[Segment],
) -> Result<Vec<Relocation>, ElfError> {
    let mut relocations = Vec::new();
    for (index, header) in headers.iter().enumerate().filter(|(_, h)| h.p_type == PT_DYNAMIC) {
        let dynamic = segment_file_bytes(bytes, index, header)?;
        let (mut rela, mut rela_size, mut rela_entry) = (None, None, None);
        let (mut jmprel, mut jmprel_size, mut pltrel) = (None, None, None);
        for (tag, value) in dynamic_entries(dynamic) {
            match tag {
                DT_RELA => rela = Some(value),
                DT_RELASZ => rela_size = Some(value),
                DT_RELAENT => rela_entry = Some(value),
                DT_JMPREL => jmprel = Some(value),
                DT_PLTRELSZ => jmprel_size = Some(value),
                DT_PLTREL => pltrel = Some(value),
                DT_REL | DT_RELSZ => return Err(ElfError::UnsupportedRelocationFormat("REL")),
                DT_RELR | DT_RELRSZ => return Err(ElfError::UnsupportedRelocationFormat("RELR")),
                _ => {}
            }
        }
        if let Some(vaddr) = rela {
            let size = rela_size.ok_or(ElfError::MissingDynamicEntry("DT_RELASZ"))?;
            let entry = rela_entry.ok_or(ElfError::MissingDynamicEntry("DT_RELAENT"))?;
            if entry != RELA_SIZE {
                return Err(ElfError::BadRelocationEntrySize(entry));
            }
            read_rela_table(bytes, segments, vaddr, size, &mut relocations)?;
        }
        if let Some(vaddr) = jmprel {
            let size = jmprel_size.ok_or(ElfError::MissingDynamicEntry("DT_PLTRELSZ"))?;
            if pltrel != Some(DT_RELA) {
                return Err(ElfError::UnsupportedRelocationFormat("REL"));
            }
            read_rela_table(bytes, segments, vaddr, size, &mut relocations)?;
        }
    }
    Ok(relocations)
}

/// Appends the R_X86_64_RELATIVE entries of the RELA table at link address `vaddr` (`size` bytes).
fn read_rela_table(
    bytes: &[u8],
    segments: &[Segment],
    vaddr: u64,
    size: u64,
    relocations: &mut Vec<Relocation>,
) -> Result<(), ElfError> {
    if !size.is_multiple_of(RELA_SIZE) {
        return Err(ElfError::BadRelocationTableSize(size));
    }
    // The table must come from the file: translate its address through a segment's file-backed part.
    let table = segments
        .iter()
        .find(|s| vaddr >= s.vaddr && vaddr.checked_add(size).is_some_and(|end| end <= s.vaddr + s.file_size))
        .and_then(|s| file_range(bytes, s.file_offset + (vaddr - s.vaddr), size))
        .ok_or(ElfError::RelocationTableNotLoaded { vaddr, size })?;
    let first = relocations.len();
    for (position, entry) in table.chunks_exact(RELA_SIZE as usize).enumerate() {
        let index = first + position;
        let (offset, info, addend) = (read_u64(entry, 0), read_u64(entry, 8), read_u64(entry, 16) as i64);
        let r_type = (info & 0xffff_ffff) as u32;
        match r_type {
            R_X86_64_NONE => continue,
            R_X86_64_RELATIVE => {}
            _ => return Err(ElfError::UnsupportedRelocation { index, r_type, name: r_to_str(r_type, EM_X86_64) }),
        }
        if !segments.iter().any(|s| s.contains(offset, 8)) {
            return Err(ElfError::RelocationOutOfImage { index, offset });
        }
        relocations.push(Relocation { offset, addend });
    }
    Ok(())
}

/// Why `mpk` mode refuses an app's code ([`inspect_app`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InspectionRefusal {
    /// A segment is writable and executable at once (or has unknown permission bits).
    WritableAndExecutable { vaddr: u64, violation: isolation::wx::WxViolation },
    /// Its code holds a forbidden instruction at link address `offset` (file offset `file_offset`).
    ForbiddenInstruction { instruction: isolation::scan::ForbiddenInstruction, offset: u64, file_offset: u64 },
}

/// `mpk` mode runs the app at CPL0, so its code must not be able to change PKRU or privileged state: no
/// segment may be writable and executable at once, and with `strict` (`--strict-inspection`) no
/// executable byte of `file` may start a forbidden instruction at any offset (threat-model.md). Without
/// `strict` the kernel guards what the scan finds at run time instead (`isolation::guard`). The VMM runs
/// this on the first program, the kernel's `execve` on every later one.
pub fn inspect_app(app: &AppElf, file: &[u8], strict: bool) -> Result<(), InspectionRefusal> {
    for segment in &app.segments {
        if let Err(violation) = isolation::wx::check_wx(segment.perms) {
            return Err(InspectionRefusal::WritableAndExecutable { vaddr: segment.vaddr, violation });
        }
    }
    if !strict {
        return Ok(());
    }
    let code = app
        .segments
        .iter()
        .filter(|segment| segment.perms & PERM_EXEC != 0)
        .map(|segment| (segment.vaddr, app.segment_bytes(segment, file)));
    if let Some(&finding) = isolation::scan::scan_code_regions(code).first() {
        let file_offset = app
            .segments
            .iter()
            .find(|segment| (segment.vaddr..segment.vaddr + segment.file_size).contains(&finding.offset))
            .map_or(0, |segment| segment.file_offset + (finding.offset - segment.vaddr));
        return Err(InspectionRefusal::ForbiddenInstruction {
            instruction: finding.instruction,
            offset: finding.offset,
            file_offset,
        });
    }
    Ok(())
}
