//! The guest kernel's heap.
//!
//! Small blocks (up to [`MAX_SMALL`] bytes) come from per-size-class free lists: a power-of-two class per
//! request, a pop from its list or a bump through the class's current 4 KiB chunk, so an allocation or a
//! free is a handful of instructions. The chunks are themselves bumped out of 64 KiB slabs: the first
//! slab is the bottom of the heap's memory, later ones come from a first-fit heap
//! (`linked_list_allocator`), which also serves the larger blocks. Where the kernel's code is emulated
//! instruction by instruction (nested KVM, about 1 µs each), a first-fit list walk on every allocation
//! cost several milliseconds of boot, and one per chunk still cost most of a millisecond.
//!
//! Freed small blocks stay in their class (chunks are never returned): memory per class is bounded by
//! the most blocks of that class ever live at once.
#![no_std]

use core::alloc::Layout;
use core::ptr::NonNull;

use linked_list_allocator::hole::HoleList;
use linked_list_allocator::Heap;

/// The smallest class: 16 bytes (room for the free-list link, and malloc's usual alignment).
const MIN_CLASS_SHIFT: u32 = 4;
/// Classes 16, 32, ..., 2048 bytes.
const CLASSES: usize = 8;
/// The largest request served from a size class.
pub const MAX_SMALL: usize = 1 << (MIN_CLASS_SHIFT as usize + CLASSES - 1);
/// Small blocks are carved from chunks of this size, aligned to it, so every block is aligned to its
/// class size.
const CHUNK: usize = 4096;
/// Chunks are carved from slabs of this size (aligned to [`CHUNK`]): sixteen chunks, more than boot uses.
const SLAB: usize = 16 * CHUNK;

/// A free small block: its first word links to the next free block of its class.
struct FreeBlock {
    next: Option<NonNull<FreeBlock>>,
}

pub struct SizeClassHeap {
    free: [Option<NonNull<FreeBlock>>; CLASSES],
    /// Per class, the next uncarved block of its current chunk. Chunks are aligned to [`CHUNK`], so a
    /// multiple of it (0 at first) means the chunk is used up.
    carve: [usize; CLASSES],
    /// The uncarved chunks `[next, end)` of the current slab.
    slab: (usize, usize),
    large: Heap,
}

/// The class serving `layout` (block size `1 << (class + MIN_CLASS_SHIFT)`), or `None` for a large block.
fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(1 << MIN_CLASS_SHIFT);
    if size > MAX_SMALL {
        return None;
    }
    // ceil(log2(size)) - MIN_CLASS_SHIFT
    Some((usize::BITS - (size - 1).leading_zeros() - MIN_CLASS_SHIFT) as usize)
}

const fn class_size(class: usize) -> usize {
    1 << (class + MIN_CLASS_SHIFT as usize)
}

impl SizeClassHeap {
    pub const fn empty() -> Self {
        Self { free: [None; CLASSES], carve: [0; CLASSES], slab: (0, 0), large: Heap::empty() }
    }

    /// Hands `[bottom, bottom + size)` to the heap: its first slab (from the first 4 KiB boundary)
    /// for the size classes, the rest to the first-fit heap.
    ///
    /// # Safety
    /// Once only; the range must be valid, writable memory used by nothing else for as long as the heap
    /// lives.
    pub unsafe fn init(&mut self, bottom: *mut u8, size: usize) {
        let start = bottom as usize;
        // A valid range does not wrap.
        let end = start + size;
        let slab_start = start.next_multiple_of(CHUNK).min(end);
        let slab_end = slab_start.saturating_add(SLAB).min(end & !(CHUNK - 1)).max(slab_start);
        self.slab = (slab_start, slab_end);
        if end - slab_end >= HoleList::min_size() {
            // SAFETY: the caller's contract; `[slab_end, end)` is the part of the range above the slab.
            unsafe { self.large.init(bottom.wrapping_add(slab_end - start), end - slab_end) };
        }
    }

    /// A block for `layout`, or `None` when memory is exhausted.
    ///
    /// The common paths (a pop from the class's free list, a bump through its chunk) call nothing and
    /// need no stack frame: about twenty instructions.
    #[inline]
    pub fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        let Some(class) = class_of(layout) else { return self.large.allocate_first_fit(layout).ok() };
        if let Some(block) = self.free[class] {
            // SAFETY: blocks on a free list are free memory of this heap whose first word is the link
            // `deallocate` wrote.
            self.free[class] = unsafe { block.as_ref().next };
            return Some(block.cast());
        }
        let next = self.carve[class];
        if next.is_multiple_of(CHUNK) {
            return self.allocate_from_new_chunk(class);
        }
        self.carve[class] = next + class_size(class);
        NonNull::new(next as *mut u8)
    }

    /// The first block of a fresh chunk for `class`. The chunk is bumped from the current slab, which is
    /// refilled from the first-fit heap when used up (near exhaustion, with a single chunk).
    #[cold]
    #[inline(never)]
    fn allocate_from_new_chunk(&mut self, class: usize) -> Option<NonNull<u8>> {
        let (next, end) = self.slab;
        let chunk = if next < end {
            next
        } else {
            let layout = |size| Layout::from_size_align(size, CHUNK).ok();
            let slab = layout(SLAB).and_then(|slab| self.large.allocate_first_fit(slab).ok());
            let (start, size) = match slab {
                Some(start) => (start, SLAB),
                None => (self.large.allocate_first_fit(layout(CHUNK)?).ok()?, CHUNK),
            };
            let start = start.as_ptr() as usize;
            self.slab.1 = start + size;
            start
        };
        self.slab.0 = chunk + CHUNK;
        self.carve[class] = chunk + class_size(class);
        NonNull::new(chunk as *mut u8)
    }

    /// Gives a block back.
    ///
    /// # Safety
    /// `ptr` must come from [`Self::allocate`] (or [`Self::reallocate`]) of this heap with this `layout`,
    /// and must not be used afterwards.
    #[inline]
    pub unsafe fn deallocate(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's contract.
        unsafe { self.release(ptr, class_of(layout), layout) }
    }

    /// Gives back a block of `class` (`class_of(layout)`), without computing the class again.
    ///
    /// # Safety
    /// As for [`Self::deallocate`].
    #[inline]
    unsafe fn release(&mut self, ptr: NonNull<u8>, class: Option<usize>, layout: Layout) {
        match class {
            Some(class) => {
                let block = ptr.cast::<FreeBlock>();
                // SAFETY: the block is at least 16 bytes, aligned to its class size, and now free.
                unsafe { block.as_ptr().write(FreeBlock { next: self.free[class] }) };
                self.free[class] = Some(block);
            }
            // SAFETY: the caller's contract; large blocks came from `large` with this layout.
            None => unsafe { self.large.deallocate(ptr, layout) },
        }
    }

    /// Resizes a block to `new_size` bytes (same alignment), in place when both sizes share a class.
    ///
    /// # Safety
    /// As for [`Self::deallocate`]; on success the old pointer must not be used any more.
    pub unsafe fn reallocate(&mut self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> Option<NonNull<u8>> {
        let new_layout = Layout::from_size_align(new_size, layout.align()).ok()?;
        let class = class_of(layout);
        if class.is_some() && class == class_of(new_layout) {
            return Some(ptr);
        }
        let new = self.allocate(new_layout)?;
        // SAFETY: both blocks are live, distinct, and at least `min(old, new)` bytes long.
        unsafe { core::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), layout.size().min(new_size)) };
        // SAFETY: the caller's contract; `class` is the old block's.
        unsafe { self.release(ptr, class, layout) };
        Some(new)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    const ARENA: usize = 1 << 20;

    struct Arena {
        heap: SizeClassHeap,
        /// The memory handed to the heap.
        range: core::ops::Range<usize>,
        _memory: Vec<u8>,
    }

    /// A heap over `size` bytes starting `offset` bytes past a [`CHUNK`] boundary.
    fn arena_at(size: usize, offset: usize) -> Arena {
        let mut memory = std::vec![0u8; size + offset + CHUNK];
        let skip = (memory.as_ptr() as usize).next_multiple_of(CHUNK) - memory.as_ptr() as usize + offset;
        let bottom = memory[skip..].as_mut_ptr();
        let mut heap = SizeClassHeap::empty();
        // SAFETY: `[bottom, bottom + size)` lies in the vector, which outlives the heap (both live in
        // `Arena`) and is used by nothing else.
        unsafe { heap.init(bottom, size) };
        Arena { heap, range: bottom as usize..bottom as usize + size, _memory: memory }
    }

    fn arena(size: usize) -> Arena {
        arena_at(size, 0)
    }

    #[test]
    fn classes() {
        let class = |size, align| class_of(Layout::from_size_align(size, align).unwrap());
        assert_eq!(class(1, 1), Some(0));
        assert_eq!(class(16, 8), Some(0));
        assert_eq!(class(17, 1), Some(1));
        assert_eq!(class(8, 64), Some(2));
        assert_eq!(class(2048, 8), Some(7));
        assert_eq!(class(2049, 8), None);
        assert_eq!(class(8, 4096), None);
    }

    #[test]
    fn freed_small_blocks_are_reused_first() {
        let mut arena = arena(ARENA);
        let layout = Layout::from_size_align(24, 8).unwrap();
        let a = arena.heap.allocate(layout).unwrap();
        // SAFETY: `a` was just allocated with `layout`.
        unsafe { arena.heap.deallocate(a, layout) };
        assert_eq!(arena.heap.allocate(layout), Some(a));
    }

    #[test]
    fn exhaustion_is_none_not_a_panic() {
        let mut arena = arena(64 << 10);
        let small = Layout::from_size_align(100, 8).unwrap();
        let large = Layout::from_size_align(32 << 10, 8).unwrap();
        let mut count = 0;
        while arena.heap.allocate(small).is_some() {
            count += 1;
        }
        assert!(count > 100, "only {count} small blocks from 64 KiB");
        assert_eq!(arena.heap.allocate(large), None);
    }

    /// The blocks of the size classes come from the bottom slab: no first-fit until it is used up, then
    /// one first-fit per slab.
    #[test]
    fn chunks_are_bumped_from_the_slab() {
        let mut arena = arena(ARENA);
        let slab = arena.range.start..arena.range.start + SLAB;
        let largest = Layout::from_size_align(MAX_SMALL, 8).unwrap();
        let mut blocks = Vec::new();
        for class in 0..CLASSES {
            blocks.push(arena.heap.allocate(Layout::from_size_align(class_size(class), 8).unwrap()).unwrap());
        }
        // The largest class has two blocks per chunk: fill its chunk and the rest of the slab.
        for _ in 0..(SLAB / CHUNK - CLASSES) * 2 + 1 {
            blocks.push(arena.heap.allocate(largest).unwrap());
        }
        assert!(blocks.iter().all(|block| slab.contains(&(block.as_ptr() as usize))));
        assert_eq!(arena.heap.large.used(), 0);
        let next_slab = arena.heap.allocate(largest).unwrap().as_ptr() as usize;
        assert!(!slab.contains(&next_slab));
        assert_eq!(arena.heap.large.used(), SLAB);
    }

    /// When the first-fit heap has no room for another slab, the classes still get single chunks.
    #[test]
    fn near_exhaustion_chunks_come_one_by_one() {
        let mut arena = arena(SLAB + 3 * CHUNK);
        let largest = Layout::from_size_align(MAX_SMALL, 8).unwrap();
        let mut count = 0;
        while arena.heap.allocate(largest).is_some() {
            count += 1;
        }
        assert_eq!(count, (SLAB / CHUNK + 3) * 2);
    }

    /// A range too small for a whole slab, or not aligned to a chunk, still serves blocks of every size.
    #[test]
    fn small_and_misaligned_ranges() {
        for (size, offset) in [(CHUNK, 8), (3 * CHUNK, 100), (SLAB, 0), (SLAB, CHUNK - 16), (2 * SLAB, 4000)] {
            let mut arena = arena_at(size, offset);
            let small = Layout::from_size_align(64, 8).unwrap();
            let block = arena.heap.allocate(small).map(|block| block.as_ptr() as usize);
            assert!(block.is_none_or(|block| arena.range.contains(&block)), "{size} at +{offset}");
            if size >= 2 * CHUNK {
                assert!(block.is_some(), "{size} at +{offset}: no small block");
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Alloc { size: usize, align_shift: u32 },
        Free { index: usize },
        Realloc { index: usize, size: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1usize..5000, 0u32..8).prop_map(|(size, align_shift)| Op::Alloc { size, align_shift }),
            any::<usize>().prop_map(|index| Op::Free { index }),
            (any::<usize>(), 1usize..5000).prop_map(|(index, size)| Op::Realloc { index, size }),
        ]
    }

    proptest! {
        /// Live blocks lie in the heap's range, are aligned, never overlap, and keep their contents across
        /// other operations, whatever the range's size and alignment (small ranges run out: slab refills and
        /// single chunks).
        #[test]
        fn blocks_are_aligned_disjoint_and_keep_their_bytes(
            ops in proptest::collection::vec(op(), 1..300),
            size in prop_oneof![Just(ARENA), 1usize..(4 * SLAB)],
            offset in prop_oneof![Just(0), 0usize..CHUNK],
        ) {
            let mut arena = arena_at(size, offset);
            let range = arena.range.clone();
            // address -> (layout, fill byte)
            let mut live: BTreeMap<usize, (Layout, u8)> = BTreeMap::new();
            let check = |live: &BTreeMap<usize, (Layout, u8)>| -> Result<(), TestCaseError> {
                let mut previous_end = range.start;
                for (&addr, &(layout, fill)) in live {
                    prop_assert!(addr >= previous_end, "blocks overlap (or start below the range) at {:#x}", addr);
                    prop_assert!(addr + layout.size() <= range.end, "block at {:#x} ends past the range", addr);
                    previous_end = addr + layout.size();
                    // SAFETY: the block is live and `layout.size()` bytes long.
                    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, layout.size()) };
                    prop_assert!(bytes.iter().all(|&b| b == fill), "block at {:#x} was overwritten", addr);
                }
                Ok(())
            };
            for (step, op) in ops.into_iter().enumerate() {
                let fill = step as u8;
                match op {
                    Op::Alloc { size, align_shift } => {
                        let layout = Layout::from_size_align(size, 1 << align_shift).unwrap();
                        if let Some(block) = arena.heap.allocate(layout) {
                            let addr = block.as_ptr() as usize;
                            prop_assert_eq!(addr % layout.align(), 0);
                            // SAFETY: freshly allocated, `size` bytes.
                            unsafe { core::ptr::write_bytes(block.as_ptr(), fill, size) };
                            live.insert(addr, (layout, fill));
                        }
                    }
                    Op::Free { index } if !live.is_empty() => {
                        let addr = *live.keys().nth(index % live.len()).unwrap();
                        let (layout, _) = live.remove(&addr).unwrap();
                        // SAFETY: live block allocated with `layout`.
                        unsafe { arena.heap.deallocate(NonNull::new(addr as *mut u8).unwrap(), layout) };
                    }
                    Op::Realloc { index, size } if !live.is_empty() => {
                        let addr = *live.keys().nth(index % live.len()).unwrap();
                        let (layout, old_fill) = live[&addr];
                        let ptr = NonNull::new(addr as *mut u8).unwrap();
                        // SAFETY: live block allocated with `layout`.
                        if let Some(new) = unsafe { arena.heap.reallocate(ptr, layout, size) } {
                            live.remove(&addr);
                            let kept = layout.size().min(size);
                            // SAFETY: the new block is live and `size` bytes long.
                            let bytes = unsafe { core::slice::from_raw_parts_mut(new.as_ptr(), size) };
                            prop_assert!(bytes[..kept].iter().all(|&b| b == old_fill), "realloc lost bytes");
                            bytes.fill(fill);
                            live.insert(new.as_ptr() as usize, (Layout::from_size_align(size, layout.align()).unwrap(), fill));
                        }
                    }
                    _ => {}
                }
                check(&live)?;
            }
        }
    }
}
