//! Guest-physical memory: the physical map (all guest RAM at `physmap_base`), the frame allocator, and
//! page-table edits through `isolation::paging`. Owned by the arch machine (`machine::ArchMachine`), so
//! holding `&mut` to it proves the kernel is its only user.
//!
//! Frames the VMM never touched are zero already (fresh guest RAM), so only recycled frames are
//! cleared: on a nested KVM every CPL0 instruction is emulated and clearing costs real time.

use alloc::vec::Vec;

use isolation::paging::{self, PageFlags, PhysMemory, PAGE_SIZE};

use crate::arch::x86_64::halt::fatal;
use crate::arch::x86_64::registers::invalidate_page;

pub struct PhysicalMemory {
    physmap_base: u64,
    memory_size: u64,
    page_table_root: u64,
    /// Never-used frames `[next_fresh, end)`, zero since boot.
    next_fresh: u64,
    end: u64,
    /// Frames given back; cleared before reuse.
    recycled: Vec<u64>,
    /// References beyond the first to frames that several address spaces map (copy-on-write after a
    /// fork), by frame number: empty until the first fork.
    extra_refs: Vec<u16>,
    /// The two 2 MiB regions last asked about by [`PhysicalMemory::is_mapped`] with their leaf tables,
    /// most recent first (tables are never freed, so these stay valid); [`NO_REGION`] when unused.
    last_leaf_tables: [(u64, u64); 2],
}

/// Never a 2 MiB region's address (those are 2 MiB aligned).
const NO_REGION: u64 = 1;

/// Sets up the heap and the frame allocator from the boot info's free range: the heap gets a quarter
/// (at most [`super::heap::MAX_HEAP`]), the frame allocator the rest.
///
/// # Safety
/// Boot only, once; `free_start..free_end` must be unused RAM mapped by the physical map.
pub unsafe fn init(
    physmap_base: u64,
    memory_size: u64,
    page_table_root: u64,
    free_start: u64,
    free_end: u64,
) -> PhysicalMemory {
    let free = free_end.saturating_sub(free_start);
    let heap_size = (free / 4).min(super::heap::MAX_HEAP) & !(PAGE_SIZE - 1);
    // SAFETY: the range is unused RAM, mapped writable by the physical map, handed to the heap once, at
    // boot, before anything allocates.
    unsafe { super::heap::init((physmap_base + free_start) as *mut u8, heap_size as usize) };
    PhysicalMemory {
        physmap_base,
        memory_size,
        page_table_root,
        next_fresh: free_start + heap_size,
        end: free_end,
        recycled: Vec::new(),
        extra_refs: Vec::new(),
        last_leaf_tables: [(NO_REGION, 0); 2],
    }
}

impl PhysicalMemory {
    pub fn physmap_base(&self) -> u64 {
        self.physmap_base
    }

    fn pointer(&self, phys: u64) -> *mut u64 {
        if phys >= self.memory_size {
            fatal("physical address outside guest memory");
        }
        (self.physmap_base + phys) as *mut u64
    }

    /// A frame for the app or a page table, zeroed. Never-used frames come first: they are zero already,
    /// while a recycled one must be cleared, which on a nested KVM (emulated kernel code) costs more than
    /// the whole fault.
    pub fn alloc_frame(&mut self) -> Option<u64> {
        if self.next_fresh + PAGE_SIZE <= self.end {
            let frame = self.next_fresh;
            self.next_fresh += PAGE_SIZE;
            return Some(frame);
        }
        let frame = self.recycled.pop()?;
        // SAFETY: the frame is free RAM inside the physical map; the kernel owns it. REP STOSQ: 512
        // iterations instead of 4096 byte stores.
        unsafe {
            core::arch::asm!(
                "rep stosq",
                inout("rdi") self.pointer(frame) => _,
                inout("rcx") PAGE_SIZE / 8 => _,
                in("rax") 0u64,
                options(nostack, preserves_flags)
            )
        };
        Some(frame)
    }

    /// Gives back one reference to `frame`: the frame is free once no address space maps it.
    pub fn free_frame(&mut self, frame: u64) {
        if let Some(refs) = self.extra_refs.get_mut((frame / PAGE_SIZE) as usize) {
            if *refs > 0 {
                *refs -= 1;
                return;
            }
        }
        self.recycled.push(frame);
    }

    /// One more address space maps `frame` (a fork shared it).
    fn share_frame(&mut self, frame: u64) {
        if self.extra_refs.is_empty() {
            self.extra_refs = alloc::vec![0; (self.memory_size / PAGE_SIZE) as usize];
        }
        match self.extra_refs.get_mut((frame / PAGE_SIZE) as usize) {
            Some(refs) => *refs = refs.checked_add(1).unwrap_or_else(|| fatal("a frame shared too often")),
            None => fatal("shared frame outside guest memory"),
        }
    }

    /// Whether another address space maps `frame` too.
    pub fn is_shared(&self, frame: u64) -> bool {
        self.extra_refs.get((frame / PAGE_SIZE) as usize).is_some_and(|&refs| refs > 0)
    }

    /// Whether any fork ever shared frames (so a kernel write must look for copy-on-write pages).
    pub fn forked(&self) -> bool {
        !self.extra_refs.is_empty()
    }

    /// The root of the current tree (the current address space).
    pub fn root(&self) -> u64 {
        self.page_table_root
    }

    /// Makes `root` the tree the edits below work on (CR3 is the caller's to load).
    pub fn set_root(&mut self, root: u64) {
        self.page_table_root = root;
        self.last_leaf_tables = [(NO_REGION, 0); 2];
    }

    /// A copy of the current tree for a forked address space, sharing the app pages of `ranges`
    /// copy-on-write (`crate::arch::x86_64::machine`). Drops the current tree's cached translations of the
    /// pages that became read-only.
    /// `kernel` lists the ranges no app mapping ever reaches: the tables below them are shared.
    pub fn fork_tree(
        &mut self,
        ranges: impl Iterator<Item = (u64, u64)>,
        kernel: &[(u64, u64)],
    ) -> Result<u64, paging::PagingError> {
        let root = self.page_table_root;
        let kernel_only = kernel_only(kernel);
        let copy = paging::clone_tables(self, root, &kernel_only, |memory, table| memory.free_frame(table))?;
        for (start, size) in ranges {
            let shared = paging::share_copy_on_write(self, root, copy, start, size, |memory, page, frame| {
                memory.share_frame(frame);
                invalidate_page(page);
            });
            if let Err(error) = shared {
                self.free_tree(copy, kernel);
                return Err(error);
            }
        }
        Ok(copy)
    }

    /// Frees the tables of the tree at `root` that [`PhysicalMemory::fork_tree`] made with the same `kernel`
    /// (not the current tree; its app pages are unmapped already).
    pub fn free_tree(&mut self, root: u64, kernel: &[(u64, u64)]) {
        if root == self.page_table_root {
            fatal("freeing the current page tables");
        }
        paging::free_tables(self, root, &kernel_only(kernel), |memory, table| memory.free_frame(table));
        self.last_leaf_tables = [(NO_REGION, 0); 2];
    }

    /// The frame of the copy-on-write page at `page` in the current tree, if it is one.
    pub fn copy_on_write_frame(&self, page: u64) -> Option<u64> {
        paging::copy_on_write_frame(self, self.page_table_root, page)
    }

    /// Gives the copy-on-write page at `page` a frame of its own (its frame, when no other address space
    /// maps it any more, else a copy), writable if `writable`.
    pub fn break_copy_on_write(&mut self, page: u64, writable: bool) -> Result<(), paging::PagingError> {
        let frame = self.copy_on_write_frame(page).ok_or(paging::PagingError::NotMapped)?;
        let target = if self.is_shared(frame) {
            let copy = self.alloc_frame().ok_or(paging::PagingError::OutOfMemory)?;
            let (from, to) = (self.pointer(frame) as *const u8, self.pointer(copy) as *mut u8);
            // SAFETY: both frames lie in guest memory (checked by `pointer`), mapped by the physical map;
            // the copy is the kernel's, fresh, and no reference to either frame lives.
            unsafe { core::ptr::copy_nonoverlapping(from, to, PAGE_SIZE as usize) };
            self.free_frame(frame);
            copy
        } else {
            frame
        };
        let root = self.page_table_root;
        paging::resolve_copy_on_write(self, root, page, target, writable)?;
        invalidate_page(page);
        Ok(())
    }

    /// Bytes of RAM still available to the app.
    pub fn free_bytes(&self) -> u64 {
        self.end - self.next_fresh + self.recycled.len() as u64 * PAGE_SIZE
    }

    /// Backs every unmapped page of `[virt, virt + size)` with a fresh zeroed frame.
    pub fn map_missing(&mut self, virt: u64, size: u64, flags: PageFlags) -> Result<u64, paging::PagingError> {
        let root = self.page_table_root;
        paging::map_missing(self, root, virt, size, flags)
    }

    /// Removes the mappings of `[virt, virt + size)` and frees their frames.
    pub fn unmap(&mut self, virt: u64, size: u64) -> Result<(), paging::PagingError> {
        let root = self.page_table_root;
        paging::unmap(self, root, virt, size, |memory, gone| {
            invalidate_page(gone.page);
            if gone.owned {
                memory.free_frame(gone.frame);
            }
        })
    }

    /// Changes the flags of the mapped pages of `[virt, virt + size)`; unmapped pages are skipped.
    pub fn update_present_flags(
        &mut self,
        virt: u64,
        size: u64,
        change: impl FnMut(PageFlags) -> PageFlags,
    ) -> Result<(), paging::PagingError> {
        let root = self.page_table_root;
        paging::update_present_flags(self, root, virt, size, change, |_, page| invalidate_page(page))
    }

    /// Makes the mapped pages of `[virt, virt + size)` fault on every access, keeping their frames.
    pub fn make_inaccessible(&mut self, virt: u64, size: u64) -> Result<(), paging::PagingError> {
        let root = self.page_table_root;
        paging::make_inaccessible(self, root, virt, size, |_, page| invalidate_page(page))
    }

    /// Copies the 4 KiB frame at `frame` (guest-physical, page-aligned) through the physical map.
    pub fn read_frame(&self, frame: u64, page: &mut [u8; PAGE_SIZE as usize]) {
        if !frame.is_multiple_of(PAGE_SIZE) || frame + PAGE_SIZE > self.memory_size {
            fatal("frame outside guest memory");
        }
        let source = self.pointer(frame) as *const u8;
        // SAFETY: the whole frame lies inside guest memory (checked), which the physical map covers; the
        // kernel only reads it.
        unsafe { core::ptr::copy_nonoverlapping(source, page.as_mut_ptr(), page.len()) };
    }

    pub fn memory_size(&self) -> u64 {
        self.memory_size
    }

    /// Copies guest-physical `[phys, phys + buf.len())`, which lies in one frame, into `buf`.
    pub fn read_phys(&self, phys: u64, buf: &mut [u8]) {
        let source = self.frame_bytes(phys, buf.len());
        // SAFETY: `frame_bytes` checked the range lies inside guest memory, which the physical map covers.
        unsafe { core::ptr::copy_nonoverlapping(source, buf.as_mut_ptr(), buf.len()) };
    }

    /// Copies `data` to guest-physical `[phys, phys + data.len())`, which lies in one frame the kernel owns.
    pub fn write_phys(&mut self, phys: u64, data: &[u8]) {
        let target = self.frame_bytes(phys, data.len());
        // SAFETY: as for `read_phys`; the frame is the kernel's (a shared object's), no reference to it lives.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), target, data.len()) };
    }

    /// The physical-map pointer to `[phys, phys + len)`, which must lie inside one frame of guest memory.
    fn frame_bytes(&self, phys: u64, len: usize) -> *mut u8 {
        let in_one_frame = (phys % PAGE_SIZE).checked_add(len as u64).is_some_and(|end| end <= PAGE_SIZE);
        if !in_one_frame || phys.saturating_add(len as u64) > self.memory_size {
            fatal("physical copy outside one frame of guest memory");
        }
        (self.physmap_base + phys) as *mut u8
    }

    /// Maps `frames` (a shared object's) from `virt` up, as borrowed pages that unmapping does not free.
    pub fn map_borrowed(&mut self, virt: u64, frames: &[u64], flags: PageFlags) -> Result<(), paging::PagingError> {
        let root = self.page_table_root;
        paging::map_borrowed(self, root, virt, frames, flags)
    }

    /// Removes the mappings of `[virt, virt + size)` without freeing the frames (memory the VMM placed).
    pub fn unmap_keep_frames(&mut self, virt: u64, size: u64) -> Result<(), paging::PagingError> {
        let root = self.page_table_root;
        paging::unmap(self, root, virt, size, |_, gone| invalidate_page(gone.page))
    }

    pub fn update_flags(
        &mut self,
        virt: u64,
        size: u64,
        change: impl FnMut(PageFlags) -> PageFlags,
    ) -> Result<(), paging::PagingError> {
        let root = self.page_table_root;
        paging::update_flags(self, root, virt, size, change, |_, page| invalidate_page(page))
    }

    /// True when `virt`'s page is mapped (accessible or not). Syscalls touch the same few regions again
    /// and again (stack, data), so the leaf tables of the last two regions asked about are remembered: one
    /// entry read instead of a four-level walk, on the path of every copy from or to the app.
    pub fn is_mapped(&mut self, virt: u64) -> bool {
        let region = virt & !(paging::HUGE_PAGE_SIZE - 1);
        let [recent, older] = self.last_leaf_tables;
        let table = if recent.0 == region {
            recent.1
        } else if older.0 == region {
            self.last_leaf_tables = [older, recent];
            older.1
        } else {
            match paging::leaf_table(self, self.page_table_root, virt) {
                Some(table) => {
                    self.last_leaf_tables = [(region, table), recent];
                    table
                }
                // No table yet (nothing mapped), or a 2 MiB page.
                None => return self.translate(virt).is_some(),
            }
        };
        paging::leaf_mapped(self, table, virt)
    }

    pub fn translate(&self, virt: u64) -> Option<(u64, PageFlags)> {
        paging::translate(self, self.page_table_root, virt)
    }
}

impl PhysMemory for PhysicalMemory {
    fn read_u64(&self, phys: u64) -> u64 {
        // SAFETY: `pointer` checked the address against guest memory; page tables are 8-byte aligned.
        unsafe { core::ptr::read_volatile(self.pointer(phys)) }
    }
    fn write_u64(&mut self, phys: u64, value: u64) {
        // SAFETY: as above; the kernel owns every page table.
        unsafe { core::ptr::write_volatile(self.pointer(phys), value) }
    }
    fn alloc_zeroed_frame(&mut self) -> Option<u64> {
        self.alloc_frame()
    }
}

/// Whether `[start, start + size)` lies inside one of the `kernel` ranges (sorted or not).
fn kernel_only(kernel: &[(u64, u64)]) -> impl Fn(u64, u64) -> bool + '_ {
    move |start, size| kernel.iter().any(|&(s, e)| s <= start && start.saturating_add(size) <= e)
}
