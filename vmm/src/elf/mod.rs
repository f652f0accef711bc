//! The ELF files the VMM loads: their validation is the shared `exec::elf` (the guest kernel's `execve`
//! uses the same rules), re-exported here; loading the kernel image with its relocations applied; and,
//! in [`write`](mod@write), the one ELF writer (the PVH boot ELF, and the tests' well-formed and malformed
//! files).

pub mod write;

use bytes::Bytes;
pub use exec::elf::*;
use isolation::paging::LOWER_HALF_END;

/// Initialized bytes of the loaded kernel image: `bytes` go `offset` bytes after its start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedSegment {
    pub offset: u64,
    pub bytes: Bytes,
}

/// The image as it must appear at virtual address `base` (which receives `span.start`), as one piece
/// per segment with initialized bytes: its file bytes, relocations applied, extended with zeros as far
/// as a relocation into its bss reaches. The rest of the `span.size` bytes (bss, gaps) is zero. The
/// pieces of segments no relocation touches share `file`'s buffer; only the others are copied.
pub fn load_kernel_segments(kernel: &KernelElf, file: &Bytes, base: u64) -> Result<Vec<LoadedSegment>, ElfError> {
    if !base.is_multiple_of(kernel.align) {
        return Err(ElfError::BaseMisaligned { base, align: kernel.align });
    }
    let size = kernel.span.size;
    if base.checked_add(size).is_none_or(|end| end > LOWER_HALF_END) {
        return Err(ElfError::BaseOutOfRange { base, size });
    }
    let sources = kernel
        .segments
        .iter()
        .map(|segment| file_range(file, segment.file_offset, segment.file_size).ok_or(ElfError::FileMismatch))
        .collect::<Result<Vec<_>, _>>()?;
    // The link-time image starts at span.start; the load bias moves it to base.
    let bias = i128::from(base) - i128::from(kernel.span.start);
    // Copies of the segments that relocations patch, made at their first relocation.
    let mut patched: Vec<Option<Vec<u8>>> = vec![None; kernel.segments.len()];
    for (index, relocation) in kernel.relocations.iter().enumerate() {
        let offset = relocation.offset;
        let value = u64::try_from(bias + i128::from(relocation.addend))
            .map_err(|_| ElfError::RelocationOverflow { offset, base })?;
        let (which, segment) = kernel
            .segments
            .iter()
            .enumerate()
            .find(|(_, segment)| segment.contains(offset, 8))
            .ok_or(ElfError::RelocationOutOfImage { index, offset })?;
        let copy = patched[which].get_or_insert_with(|| sources[which].to_vec());
        // Inside the segment, whose size is bounded by MAX_KERNEL_SPAN at parse time.
        let at = usize::try_from(offset - segment.vaddr).map_err(|_| ElfError::FileMismatch)?;
        if copy.len() < at + 8 {
            copy.resize(at + 8, 0);
        }
        copy[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }
    let pieces = kernel.segments.iter().zip(sources).zip(patched).map(|((segment, source), patched)| {
        let bytes = patched.map_or_else(|| file.slice_ref(source), Bytes::from);
        LoadedSegment { offset: segment.vaddr - kernel.span.start, bytes }
    });
    Ok(pieces.filter(|piece| !piece.bytes.is_empty()).collect())
}

#[cfg(test)]
pub(crate) mod tests;
