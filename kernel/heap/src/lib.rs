//! The guest kernel's heap.
//!
//! Small blocks (up to [`MAX_SMALL`] bytes) come from per-size-class free lists: a power-of-two class per
//! request, a pop from its list or a bump through the class's current 4 KiB chunk, so an allocation or a
//! free is a handful of instructions. Larger blocks, and the chunks themselves, come from a first-fit heap
//! (`linked_list_allocator`). Where the kernel's code is emulated instruction by instruction (nested
//! KVM, about 1 µs each), a first-fit list walk on every allocation cost several milliseconds of boot.
//!
//! Freed small blocks stay in their class (chunks are never returned): memory per class is bounded by
//! the most blocks of that class ever live at once.
#![no_std]

use core::alloc::Layout;
use core::ptr::NonNull;

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

/// A free small block: its first word links to the next free block of its class.
struct FreeBlock {
    next: Option<NonNull<FreeBlock>>,
}

pub struct SizeClassHeap {
    free: [Option<NonNull<FreeBlock>>; CLASSES],
    /// Per class, the uncarved part `[next, end)` of its current chunk.
    carve: [(usize, usize); CLASSES],
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
        Self { free: [None; CLASSES], carve: [(0, 0); CLASSES], large: Heap::empty() }
    }

    /// Hands `[bottom, bottom + size)` to the heap.
    ///
    /// # Safety
    /// Once only; the range must be valid, writable memory used by nothing else for as long as the heap
    /// lives.
    pub unsafe fn init(&mut self, bottom: *mut u8, size: usize) {
        // SAFETY: the caller's contract.
        unsafe { self.large.init(bottom, size) };
    }

    /// A block for `layout`, or `None` when memory is exhausted.
    pub fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        let Some(class) = class_of(layout) else { return self.large.allocate_first_fit(layout).ok() };
        if let Some(block) = self.free[class] {
            // SAFETY: blocks on a free list are free memory of this heap whose first word is the link
            // `deallocate` wrote.
            self.free[class] = unsafe { block.as_ref().next };
            return Some(block.cast());
        }
        let (next, end) = self.carve[class];
        let block = if next < end {
            next
        } else {
            let chunk = Layout::from_size_align(CHUNK, CHUNK).ok()?;
            let start = self.large.allocate_first_fit(chunk).ok()?.as_ptr() as usize;
            self.carve[class].1 = start + CHUNK;
            start
        };
        self.carve[class].0 = block + class_size(class);
        NonNull::new(block as *mut u8)
    }

    /// Gives a block back.
    ///
    /// # Safety
    /// `ptr` must come from [`Self::allocate`] (or [`Self::reallocate`]) of this heap with this `layout`,
    /// and must not be used afterwards.
    pub unsafe fn deallocate(&mut self, ptr: NonNull<u8>, layout: Layout) {
        match class_of(layout) {
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
        if let (Some(old), Some(new)) = (class_of(layout), class_of(new_layout)) {
            if old == new {
                return Some(ptr);
            }
        }
        let new = self.allocate(new_layout)?;
        // SAFETY: both blocks are live, distinct, and at least `min(old, new)` bytes long.
        unsafe { core::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), layout.size().min(new_size)) };
        // SAFETY: the caller's contract.
        unsafe { self.deallocate(ptr, layout) };
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
        _memory: Vec<u8>,
    }

    fn arena(size: usize) -> Arena {
        let mut memory = std::vec![0u8; size];
        let mut heap = SizeClassHeap::empty();
        // SAFETY: the vector outlives the heap (both live in `Arena`) and is used by nothing else.
        unsafe { heap.init(memory.as_mut_ptr(), size) };
        Arena { heap, _memory: memory }
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
        /// Live blocks are aligned, never overlap, and keep their contents across other operations.
        #[test]
        fn blocks_are_aligned_disjoint_and_keep_their_bytes(ops in proptest::collection::vec(op(), 1..300)) {
            let mut arena = arena(ARENA);
            // address -> (layout, fill byte)
            let mut live: BTreeMap<usize, (Layout, u8)> = BTreeMap::new();
            let check = |live: &BTreeMap<usize, (Layout, u8)>| -> Result<(), TestCaseError> {
                let mut previous_end = 0;
                for (&addr, &(layout, fill)) in live {
                    prop_assert!(addr >= previous_end, "blocks overlap at {:#x}", addr);
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
