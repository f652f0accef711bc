//! The kernel heap: size-class free lists for small blocks and first-fit for large ones (crate
//! `kernel-heap`), a few instructions per small allocation, which matters where kernel code is emulated.

use kernel_heap::SizeClassHeap;

use crate::arch::x86_64::sync::CpuLocal;

/// The kernel heap (see `kernel_heap`: a few instructions per small allocation, which matters where kernel
/// code is emulated).
struct KernelHeap(CpuLocal<SizeClassHeap>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(CpuLocal::new(SizeClassHeap::empty()));

// SAFETY: kernel code runs one entry at a time (see `CpuLocal`) and no allocator call nests in another:
// each method takes the heap for its own duration only.
unsafe impl core::alloc::GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        // SAFETY: see the impl.
        let heap = unsafe { self.0.get() };
        heap.allocate(layout).map_or(core::ptr::null_mut(), |block| block.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        let Some(block) = core::ptr::NonNull::new(ptr) else { return };
        // SAFETY: see the impl; the caller passes a block of this allocator with its layout.
        unsafe { self.0.get().deallocate(block, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: core::alloc::Layout, new_size: usize) -> *mut u8 {
        let Some(block) = core::ptr::NonNull::new(ptr) else { return core::ptr::null_mut() };
        // SAFETY: see the impl; the caller passes a block of this allocator with its layout.
        unsafe { self.0.get().reallocate(block, layout, new_size) }.map_or(core::ptr::null_mut(), |new| new.as_ptr())
    }
}

/// The largest kernel heap; the rest of free memory backs the app.
pub const MAX_HEAP: u64 = 64 << 20;

/// Hands `[start, start + size)` to the heap.
///
/// # Safety
/// Boot only, once, before anything allocates; the range must be unused RAM, writable, never used for
/// anything else.
pub unsafe fn init(start: *mut u8, size: usize) {
    // SAFETY: the caller guarantees the range and that nothing allocates concurrently.
    unsafe { HEAP.0.get().init(start, size) };
}
