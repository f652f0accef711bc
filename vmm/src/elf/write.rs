//! The one ELF64 writer: the file header and the program headers are goblin's structs
//! (`elf64::header::Header`, `elf64::program_header::ProgramHeader`) written with `scroll::Pwrite`, never
//! bytes at hand-counted offsets. The QEMU backend writes its PVH boot ELF with it
//! ([`crate::backend::pvh`]); tests build well-formed and malformed files with it, and patch real ones
//! read back with [`ElfWriter::edit`].
//!
//! What is written is what the fields say, also when they lie: a test sets `header.e_phnum` or
//! `header.e_phoff` to nonsense and the program headers still go where [`ElfWriter::program_header_offset`]
//! says, which is how a malformed file looks.

use std::borrow::Cow;

use goblin::elf::header::{
    EI_CLASS, EI_DATA, EI_VERSION, ELFCLASS64, ELFDATA2LSB, ELFMAG, EM_X86_64, EV_CURRENT, SELFMAG,
};
use goblin::elf::program_header::PT_LOAD;
use goblin::elf64::header::{Header, SIZEOF_EHDR};
use goblin::elf64::program_header::{ProgramHeader, SIZEOF_PHDR};
use scroll::{Pread, Pwrite, LE};

/// Why a file could not be written (or read back for editing).
#[derive(Debug, thiserror::Error)]
pub enum ElfWriteError {
    #[error("cannot read or write an ELF header: {0} (the header's EI_DATA must be ELFDATA2LSB)")]
    Header(#[from] goblin::error::Error),
    #[error("cannot write a program header: {0}")]
    ProgramHeader(#[from] scroll::Error),
    #[error("contents at file offset {offset:#x} end beyond the address space")]
    TooLarge { offset: u64 },
}

/// An ELF64 file being put together: a header, program headers, and contents at file offsets; zero
/// everywhere else.
#[derive(Clone, Debug)]
pub struct ElfWriter<'a> {
    /// Written at offset 0 as it is.
    pub header: Header,
    /// Written one after another from [`Self::program_header_offset`].
    pub program_headers: Vec<ProgramHeader>,
    /// Where the program headers go: right after the file header in a new file, where `e_phoff` put them
    /// in an edited one.
    pub program_header_offset: u64,
    /// Bytes at file offsets, written in this order (a later one overwrites an earlier one), then the
    /// headers over them.
    contents: Vec<(u64, Cow<'a, [u8]>)>,
    /// The smallest length of the file.
    min_len: u64,
}

/// A program header of type `p_type` with `flags` (`PF_*`), mapping the `filesz` file bytes at `offset`
/// to `memsz` bytes at `vaddr` (also its `p_paddr`), aligned to `align`.
pub const fn segment(
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
) -> ProgramHeader {
    ProgramHeader {
        p_type,
        p_flags: flags,
        p_offset: offset,
        p_vaddr: vaddr,
        p_paddr: vaddr,
        p_filesz: filesz,
        p_memsz: memsz,
        p_align: align,
    }
}

/// A [`segment`] of type `PT_LOAD`, aligned to 4 KiB.
pub const fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> ProgramHeader {
    segment(PT_LOAD, flags, offset, vaddr, filesz, memsz, 0x1000)
}

impl<'a> ElfWriter<'a> {
    /// A little-endian x86-64 file of type `e_type` (`ET_*`) entering at `entry`, without program
    /// headers yet (they go right after the file header) or section headers.
    pub fn new(e_type: u16, entry: u64) -> Self {
        let mut e_ident = [0; 16];
        e_ident[..SELFMAG].copy_from_slice(ELFMAG);
        e_ident[EI_CLASS] = ELFCLASS64;
        e_ident[EI_DATA] = ELFDATA2LSB;
        e_ident[EI_VERSION] = EV_CURRENT;
        let header = Header {
            e_ident,
            e_type,
            e_machine: EM_X86_64,
            e_version: u32::from(EV_CURRENT),
            e_entry: entry,
            e_phoff: SIZEOF_EHDR as u64,
            e_shoff: 0,
            e_flags: 0,
            e_ehsize: SIZEOF_EHDR as u16,
            e_phentsize: SIZEOF_PHDR as u16,
            e_phnum: 0,
            e_shentsize: 0,
            e_shnum: 0,
            e_shstrndx: 0,
        };
        Self {
            header,
            program_headers: Vec::new(),
            program_header_offset: SIZEOF_EHDR as u64,
            contents: Vec::new(),
            min_len: 0,
        }
    }

    /// The little-endian ELF64 `file`, to be changed and written again: its header and program headers
    /// as goblin reads them, over the file's own bytes.
    pub fn edit(file: &'a [u8]) -> Result<Self, ElfWriteError> {
        let header = Header::parse(file)?;
        let program_headers = (0..u64::from(header.e_phnum))
            .map(|index| {
                let offset = header.e_phoff.saturating_add(index * SIZEOF_PHDR as u64);
                let offset = usize::try_from(offset).unwrap_or(usize::MAX);
                file.pread_with::<ProgramHeader>(offset, LE)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            header,
            program_headers,
            program_header_offset: header.e_phoff,
            contents: vec![(0, Cow::Borrowed(file))],
            min_len: file.len() as u64,
        })
    }

    /// Adds a program header, counted in `e_phnum`.
    pub fn program_header(&mut self, header: ProgramHeader) -> &mut Self {
        self.program_headers.push(header);
        self.header.e_phnum = self.header.e_phnum.wrapping_add(1);
        self
    }

    /// Places `bytes` at file offset `offset`.
    pub fn contents(&mut self, offset: u64, bytes: impl Into<Cow<'a, [u8]>>) -> &mut Self {
        self.contents.push((offset, bytes.into()));
        self
    }

    /// Places little-endian 64-bit `words` from file offset `offset` (dynamic entries, relocations).
    pub fn words(&mut self, offset: u64, words: &[u64]) -> &mut Self {
        let bytes: Vec<u8> = words.iter().flat_map(|word| word.to_le_bytes()).collect();
        self.contents(offset, bytes)
    }

    /// Makes the file at least `len` bytes long.
    pub fn min_len(&mut self, len: u64) -> &mut Self {
        self.min_len = self.min_len.max(len);
        self
    }

    /// The file's bytes.
    pub fn write(&self) -> Result<Vec<u8>, ElfWriteError> {
        // Where `len` bytes from file offset `offset` end, as an index into the file.
        let end = |offset: u64, len: usize| {
            offset
                .checked_add(len as u64)
                .and_then(|end| usize::try_from(end).ok())
                .ok_or(ElfWriteError::TooLarge { offset })
        };
        let mut len = usize::try_from(self.min_len).map_err(|_| ElfWriteError::TooLarge { offset: self.min_len })?;
        len = len.max(SIZEOF_EHDR).max(end(self.program_header_offset, self.program_headers.len() * SIZEOF_PHDR)?);
        for (offset, bytes) in &self.contents {
            len = len.max(end(*offset, bytes.len())?);
        }
        let mut file = vec![0; len];
        for (offset, bytes) in &self.contents {
            let start = end(*offset, 0)?;
            file[start..start + bytes.len()].copy_from_slice(bytes);
        }
        file.pwrite_with(self.header, 0, LE)?;
        let table = end(self.program_header_offset, 0)?;
        for (index, header) in self.program_headers.iter().enumerate() {
            file.pwrite_with(*header, table + index * SIZEOF_PHDR, LE)?;
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::header::ET_EXEC;
    use goblin::elf::program_header::{PF_R, PF_X, PT_INTERP};

    #[test]
    fn written_files_parse_back_as_written() {
        let mut elf = ElfWriter::new(ET_EXEC, 0x40_0100);
        elf.program_header(load(PF_R | PF_X, 0, 0x40_0000, 0x200, 0x200)).contents(0x100, &[0xc3][..]).min_len(0x200);
        let file = elf.write().unwrap();
        assert_eq!(file.len(), 0x200);
        assert_eq!(file[0x100], 0xc3);
        let parsed = goblin::elf::Elf::parse(&file).unwrap();
        assert!(parsed.is_64 && parsed.little_endian);
        assert_eq!((parsed.header.e_type, parsed.header.e_machine, parsed.entry), (ET_EXEC, EM_X86_64, 0x40_0100));
        assert_eq!(parsed.program_headers.len(), 1);
        assert_eq!(
            (parsed.program_headers[0].p_vaddr, parsed.program_headers[0].p_paddr, parsed.program_headers[0].p_align),
            (0x40_0000, 0x40_0000, 0x1000)
        );
    }

    #[test]
    fn an_edited_file_keeps_its_bytes_and_takes_the_changes() {
        let mut elf = ElfWriter::new(ET_EXEC, 0x40_0100);
        elf.program_header(load(PF_R | PF_X, 0, 0x40_0000, 0x200, 0x200)).contents(0x1f0, &[7; 16][..]);
        let file = elf.write().unwrap();
        let mut edited = ElfWriter::edit(&file).unwrap();
        assert_eq!(edited.program_headers, elf.program_headers);
        assert_eq!(edited.write().unwrap(), file, "unchanged, an edit writes the file back as it was");
        edited.program_headers[0].p_type = PT_INTERP;
        edited.header.e_phoff = 0x1000;
        let patched = edited.write().unwrap();
        assert_eq!(patched.len(), file.len());
        assert_eq!(patched[0x1f0..], [7; 16]);
        let header = Header::parse(&patched).unwrap();
        assert_eq!(header.e_phoff, 0x1000, "the header says what it was told");
        let table = patched.pread_with::<ProgramHeader>(SIZEOF_EHDR, LE).unwrap();
        assert_eq!(table.p_type, PT_INTERP, "the program headers stay where they were");
    }
}
