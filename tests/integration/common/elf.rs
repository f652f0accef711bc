//! Just enough ELF64 to check how a guest was linked and to make malformed copies of it.
//! Offsets are from the System V gABI (`Elf64_Ehdr`, `Elf64_Phdr`).

/// `Elf64_Ehdr` field offsets.
pub const EI_CLASS: usize = 4;
pub const E_TYPE: usize = 16;
pub const E_MACHINE: usize = 18;
pub const E_PHOFF: usize = 32;
pub const E_PHENTSIZE: usize = 54;
pub const E_PHNUM: usize = 56;

/// `Elf64_Phdr` field offsets, relative to the program header.
pub const P_TYPE: usize = 0;
pub const P_OFFSET: usize = 8;
pub const P_FILESZ: usize = 32;
pub const P_MEMSZ: usize = 40;

pub const ELFCLASS32: u8 = 1;
pub const ET_EXEC: u16 = 2;
pub const ET_DYN: u16 = 3;
pub const EM_AARCH64: u16 = 183;
pub const PT_LOAD: u32 = 1;
pub const PT_INTERP: u32 = 3;

pub fn read_u16(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes(bytes[offset..offset + 2].try_into().unwrap())
}
pub fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
}
pub fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap())
}
pub fn write_u16(bytes: &mut [u8], offset: usize, value: u16) {
    bytes[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
}
pub fn write_u64(bytes: &mut [u8], offset: usize, value: u64) {
    bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

/// File offsets of the program headers of a well-formed ELF64 file.
pub fn program_headers(bytes: &[u8]) -> Vec<usize> {
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    let phoff = usize::try_from(read_u64(bytes, E_PHOFF)).unwrap();
    let phentsize = usize::from(read_u16(bytes, E_PHENTSIZE));
    (0..usize::from(read_u16(bytes, E_PHNUM))).map(|index| phoff + index * phentsize).collect()
}

/// Whether the file asks for a dynamic loader (has PT_INTERP).
pub fn has_interpreter(bytes: &[u8]) -> bool {
    program_headers(bytes).into_iter().any(|header| read_u32(bytes, header + P_TYPE) == PT_INTERP)
}
