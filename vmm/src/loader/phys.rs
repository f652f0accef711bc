//! Guest-physical bookkeeping while the image is built: the bump allocator every placement draws from,
//! and the page tables under construction (as the bytes the guest will see).

use isolation::paging::{PhysMemory, PAGE_SIZE};

use super::LoadError;

/// Guest-physical bump allocation of page-aligned ranges, from `next` up to `end`.
pub(super) struct PhysAllocator {
    pub(super) next: u64,
    pub(super) end: u64,
}

impl PhysAllocator {
    /// The start of `size` bytes (rounded up to whole pages; nothing for 0), or
    /// [`LoadError::OutOfMemory`] with how much memory would have been needed.
    pub(super) fn alloc(&mut self, size: u64) -> Result<u64, LoadError> {
        let start = self.next;
        let end = start
            .checked_add(round_up(size, PAGE_SIZE))
            .filter(|end| *end <= self.end)
            .ok_or(LoadError::OutOfMemory { needed_mib: start.saturating_add(size).div_ceil(1 << 20) })?;
        self.next = end;
        Ok(start)
    }
}

/// Page tables under construction: the table frames, as the bytes the guest will see. They are the
/// last allocations, so they lie one after another from `base`: one buffer and one chunk.
pub(super) struct TableBuilder {
    pub(super) base: u64,
    pub(super) bytes: Vec<u8>,
    pub(super) allocator: PhysAllocator,
}

impl TableBuilder {
    pub(super) fn new(allocator: PhysAllocator) -> Self {
        // Enough for the usual dozen or so tables without growing.
        const USUAL_FRAMES: usize = 16;
        Self { base: allocator.next, bytes: Vec::with_capacity(USUAL_FRAMES * PAGE_SIZE as usize), allocator }
    }

    /// Where in `bytes` the entry at `phys` is, if it is in a table.
    fn entry(&self, phys: u64) -> Option<std::ops::Range<usize>> {
        let at = usize::try_from(phys.checked_sub(self.base)? & !7).ok()?;
        (at + 8 <= self.bytes.len()).then_some(at..at + 8)
    }
}

impl PhysMemory for TableBuilder {
    fn read_u64(&self, phys: u64) -> u64 {
        let entry = self.entry(phys).and_then(|range| self.bytes[range].try_into().ok());
        entry.map_or(0, u64::from_le_bytes)
    }
    fn write_u64(&mut self, phys: u64, value: u64) {
        if let Some(range) = self.entry(phys) {
            self.bytes[range].copy_from_slice(&value.to_le_bytes());
        }
    }
    fn alloc_zeroed_frame(&mut self) -> Option<u64> {
        let frame = self.allocator.alloc(PAGE_SIZE).ok()?;
        // A bump allocator: each frame follows the previous one.
        debug_assert_eq!(frame, self.base + self.bytes.len() as u64);
        self.bytes.resize(self.bytes.len() + PAGE_SIZE as usize, 0);
        Some(frame)
    }
}

pub(super) fn round_up(value: u64, align: u64) -> u64 {
    value.div_ceil(align).saturating_mul(align)
}
