//! x86-64 4-level page tables, written over any [`PhysMemory`].
//!
//! The VMM builds the initial tables into the memory image with this module and the kernel edits them
//! at run time (protection keys, `mmap`, `mprotect`) with the very same code, reading and writing table
//! entries through its physical map. Intermediate entries are always present, writable and user: the
//! leaf entry alone decides access, so one leaf change is all a permission change takes.
//!
//! A leaf can also be *inaccessible* ([`make_inaccessible`], the app's `PROT_NONE`): not present, so every
//! access faults, yet it keeps its frame (marked with a bit the CPU ignores), so the contents survive until
//! [`update_present_flags`] makes it accessible again or [`unmap`] frees it. The walks treat such a leaf as
//! mapped. A leaf mapped by [`map_borrowed`] maps a frame it does not own (a shared memory object's):
//! another bit the CPU ignores says so, every flag change keeps it, and [`unmap`] reports the frame as
//! borrowed instead of handing it back to be freed.
//!
//! Address spaces (one per process): [`clone_tables`] copies a tree, every table the copy's own and every
//! leaf as it was, and [`share_copy_on_write`] then marks the owned leaves of the app's ranges in both trees
//! *copy-on-write* (a third ignored bit): read-only to the CPU whatever their flags say, until
//! [`resolve_copy_on_write`] gives the page a frame of its own (or keeps the old one when no other tree
//! maps it any more) on the first write.

/// Size of a 4 KiB page.
pub const PAGE_SIZE: u64 = 4096;
/// Size of a 2 MiB page.
pub const HUGE_PAGE_SIZE: u64 = 2 << 20;

const ENTRY_PRESENT: u64 = 1 << 0;
const ENTRY_WRITABLE: u64 = 1 << 1;
const ENTRY_USER: u64 = 1 << 2;
const ENTRY_ACCESSED: u64 = 1 << 5;
const ENTRY_DIRTY: u64 = 1 << 6;
const ENTRY_HUGE: u64 = 1 << 7;
const ENTRY_GLOBAL: u64 = 1 << 8;
/// Software bit (ignored by the CPU): a not-present leaf that still owns its frame (an inaccessible page).
const ENTRY_INACCESSIBLE: u64 = 1 << 9;
/// Software bit: the leaf maps a frame it does not own (one of a shared memory object's, which other
/// mappings may map too); [`unmap`] reports it as borrowed so the caller does not free it.
const ENTRY_BORROWED: u64 = 1 << 10;
/// Software bit: copy-on-write. The leaf's frame may be mapped by another tree too (see the module doc);
/// the CPU sees the page read-only, and every flag change keeps it so.
const ENTRY_COW: u64 = 1 << 11;
const ENTRY_PKEY_SHIFT: u32 = 59;
const ENTRY_PKEY_MASK: u64 = 0xf << ENTRY_PKEY_SHIFT;
const ENTRY_NO_EXECUTE: u64 = 1 << 63;
const ENTRY_ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Page-fault error code bits (Intel SDM vol. 3, 4.7).
pub mod fault {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const RESERVED: u64 = 1 << 3;
    pub const FETCH: u64 = 1 << 4;
    pub const PROTECTION_KEY: u64 = 1 << 5;
    pub const SHADOW_STACK: u64 = 1 << 6;
}

/// Guest-physical memory as page tables see it. Every address is 8-byte aligned and inside a frame
/// that [`PhysMemory::alloc_zeroed_frame`] returned or the caller placed there.
pub trait PhysMemory {
    fn read_u64(&self, phys: u64) -> u64;
    fn write_u64(&mut self, phys: u64, value: u64);
    /// A zeroed 4 KiB frame for a new table, or `None` when memory is exhausted.
    fn alloc_zeroed_frame(&mut self) -> Option<u64>;
}

/// What a leaf mapping allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PageFlags {
    pub writable: bool,
    pub executable: bool,
    /// A user page (U=1). Protection keys govern only user pages.
    pub user: bool,
    /// Protection key, 0..=15.
    pub pkey: u8,
    pub global: bool,
}

impl PageFlags {
    fn leaf_bits(self) -> u64 {
        let mut bits = ENTRY_PRESENT | ENTRY_ACCESSED | ENTRY_DIRTY;
        if self.writable {
            bits |= ENTRY_WRITABLE;
        }
        if self.user {
            bits |= ENTRY_USER;
        }
        if !self.executable {
            bits |= ENTRY_NO_EXECUTE;
        }
        if self.global {
            bits |= ENTRY_GLOBAL;
        }
        bits | ((u64::from(self.pkey) & 0xf) << ENTRY_PKEY_SHIFT)
    }

    fn from_leaf(entry: u64) -> Self {
        Self {
            writable: entry & ENTRY_WRITABLE != 0,
            executable: entry & ENTRY_NO_EXECUTE == 0,
            user: entry & ENTRY_USER != 0,
            pkey: ((entry & ENTRY_PKEY_MASK) >> ENTRY_PKEY_SHIFT) as u8,
            global: entry & ENTRY_GLOBAL != 0,
        }
    }
}

/// Why a mapping could not be changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// An address or size is not aligned to the page size used.
    Misaligned,
    /// The range leaves the canonical lower half or wraps around.
    NonCanonical,
    /// Part of the range is mapped already.
    AlreadyMapped,
    /// Part of the range is not mapped.
    NotMapped,
    /// A 2 MiB page covers only part of the range to change.
    HugePageSplit,
    /// No frame left for a page table.
    OutOfMemory,
}

/// The lower canonical half ends here (exclusive).
pub const LOWER_HALF_END: u64 = 1 << 47;

fn index(virt: u64, level: u32) -> u64 {
    (virt >> (12 + 9 * level)) & 0x1ff
}

/// What a table entry at `level` holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    Empty,
    /// The next table down (levels 1-3).
    Table,
    /// A page, accessible or not (a 4 KiB page at level 0, a 2 MiB page at level 1).
    Leaf,
}

fn classify(entry: u64, level: u32) -> Entry {
    if entry & (ENTRY_PRESENT | ENTRY_INACCESSIBLE) == 0 {
        Entry::Empty
    } else if level == 0 || entry & ENTRY_HUGE != 0 {
        Entry::Leaf
    } else {
        Entry::Table
    }
}

fn check_range(virt: u64, size: u64, align: u64) -> Result<(), PagingError> {
    if !virt.is_multiple_of(align) || !size.is_multiple_of(align) {
        return Err(PagingError::Misaligned);
    }
    match virt.checked_add(size) {
        Some(end) if end <= LOWER_HALF_END => Ok(()),
        _ => Err(PagingError::NonCanonical),
    }
}

/// The table one level down from `table`'s entry for `virt`, created if `create`.
fn next_table(
    mem: &mut impl PhysMemory,
    table: u64,
    virt: u64,
    level: u32,
    create: bool,
) -> Result<Option<u64>, PagingError> {
    let slot = table + index(virt, level) * 8;
    let entry = mem.read_u64(slot);
    match classify(entry, level) {
        Entry::Leaf => return Err(PagingError::HugePageSplit),
        Entry::Table => return Ok(Some(entry & ENTRY_ADDRESS_MASK)),
        Entry::Empty => {}
    }
    if !create {
        return Ok(None);
    }
    let frame = mem.alloc_zeroed_frame().ok_or(PagingError::OutOfMemory)?;
    mem.write_u64(slot, frame | ENTRY_PRESENT | ENTRY_WRITABLE | ENTRY_USER);
    Ok(Some(frame))
}

/// Maps `[virt, virt + size)` to `[phys, phys + size)` with 4 KiB pages, or 2 MiB pages where `huge`.
/// Fails without changing anything already mapped if a page of the range is mapped.
pub fn map(
    mem: &mut impl PhysMemory,
    root: u64,
    virt: u64,
    phys: u64,
    size: u64,
    flags: PageFlags,
    huge: bool,
) -> Result<(), PagingError> {
    let page = if huge { HUGE_PAGE_SIZE } else { PAGE_SIZE };
    check_range(virt, size, page)?;
    if !phys.is_multiple_of(page) {
        return Err(PagingError::Misaligned);
    }
    if (0..size / page).any(|i| translate(mem, root, virt + i * page).is_some()) {
        return Err(PagingError::AlreadyMapped);
    }
    let leaf_level = if huge { 1 } else { 0 };
    for i in 0..size / page {
        let addr = virt + i * page;
        let mut table = root;
        for level in (leaf_level + 1..4).rev() {
            table = next_table(mem, table, addr, level, true)?.ok_or(PagingError::OutOfMemory)?;
        }
        let mut bits = flags.leaf_bits() | (phys + i * page);
        if huge {
            bits |= ENTRY_HUGE;
        }
        mem.write_u64(table + index(addr, leaf_level) * 8, bits);
    }
    Ok(())
}

/// Maps every unmapped 4 KiB page of `[virt, virt + size)` to a fresh frame from
/// [`PhysMemory::alloc_zeroed_frame`], leaving mapped pages alone; returns how many pages it mapped.
/// One table walk per 2 MiB, then a plain loop over the entries: this is the demand-paging path, and on a
/// nested hypervisor that emulates kernel code every instruction counts. A 2 MiB page inside the range
/// is skipped whole. Stops with `OutOfMemory` when frames run out (what was mapped stays mapped).
pub fn map_missing(
    mem: &mut impl PhysMemory,
    root: u64,
    virt: u64,
    size: u64,
    flags: PageFlags,
) -> Result<u64, PagingError> {
    check_range(virt, size, PAGE_SIZE)?;
    let end = virt + size;
    let leaf = flags.leaf_bits();
    let mut mapped = 0;
    let mut addr = virt;
    while addr < end {
        let chunk_end = ((addr | (HUGE_PAGE_SIZE - 1)) + 1).min(end);
        let mut table = root;
        let mut huge = false;
        for level in (1..4).rev() {
            match next_table(mem, table, addr, level, true) {
                Ok(Some(next)) => table = next,
                Ok(None) => return Err(PagingError::OutOfMemory),
                Err(PagingError::HugePageSplit) => {
                    huge = true;
                    break;
                }
                Err(error) => return Err(error),
            }
        }
        if !huge {
            while addr < chunk_end {
                let slot = table + index(addr, 0) * 8;
                if classify(mem.read_u64(slot), 0) == Entry::Empty {
                    let frame = mem.alloc_zeroed_frame().ok_or(PagingError::OutOfMemory)?;
                    mem.write_u64(slot, leaf | frame);
                    mapped += 1;
                }
                addr += PAGE_SIZE;
            }
        }
        addr = chunk_end;
    }
    Ok(mapped)
}

/// Maps the unmapped 4 KiB pages from `virt` up, one per frame of `frames`, to those frames, marked as
/// borrowed (see the module doc). Fails with `AlreadyMapped`, changing nothing, if one of them is mapped.
pub fn map_borrowed(
    mem: &mut impl PhysMemory,
    root: u64,
    virt: u64,
    frames: &[u64],
    flags: PageFlags,
) -> Result<(), PagingError> {
    let size = (frames.len() as u64).checked_mul(PAGE_SIZE).ok_or(PagingError::NonCanonical)?;
    check_range(virt, size, PAGE_SIZE)?;
    if frames.iter().any(|frame| !frame.is_multiple_of(PAGE_SIZE)) {
        return Err(PagingError::Misaligned);
    }
    if (0..frames.len() as u64).any(|i| leaf_slot(mem, root, virt + i * PAGE_SIZE).is_some()) {
        return Err(PagingError::AlreadyMapped);
    }
    let leaf = flags.leaf_bits() | ENTRY_BORROWED;
    for (i, frame) in frames.iter().enumerate() {
        let addr = virt + i as u64 * PAGE_SIZE;
        let mut table = root;
        for level in (1..4).rev() {
            table = next_table(mem, table, addr, level, true)?.ok_or(PagingError::OutOfMemory)?;
        }
        mem.write_u64(table + index(addr, 0) * 8, leaf | frame);
    }
    Ok(())
}

/// The leaf slot (physical address of the entry) mapping `virt`, with the page size it maps.
fn leaf_slot(mem: &impl PhysMemory, root: u64, virt: u64) -> Option<(u64, u64)> {
    if virt >= LOWER_HALF_END {
        return None;
    }
    let mut table = root;
    for level in (0..4).rev() {
        let slot = table + index(virt, level) * 8;
        let entry = mem.read_u64(slot);
        match classify(entry, level) {
            Entry::Empty => return None,
            Entry::Leaf => {
                return match level {
                    0 => Some((slot, PAGE_SIZE)),
                    1 => Some((slot, HUGE_PAGE_SIZE)),
                    _ => None, // 1 GiB pages are never created here
                };
            }
            Entry::Table => table = entry & ENTRY_ADDRESS_MASK,
        }
    }
    None
}

/// The physical address and flags `virt` maps to, if mapped (an inaccessible page is mapped too: it
/// reports the flags it had before it was made inaccessible).
pub fn translate(mem: &impl PhysMemory, root: u64, virt: u64) -> Option<(u64, PageFlags)> {
    let (slot, page) = leaf_slot(mem, root, virt)?;
    let entry = mem.read_u64(slot);
    let base = entry & ENTRY_ADDRESS_MASK & !(page - 1);
    Some((base + (virt & (page - 1)), PageFlags::from_leaf(entry)))
}

/// The table holding the 4 KiB leaf entries of the 2 MiB region around `virt`, if the region has one
/// (none while nothing there was mapped yet, or when one 2 MiB page maps it). Tables are never freed
/// ([`unmap`] leaves them), so the answer stays valid: a caller may keep it and ask [`leaf_mapped`].
pub fn leaf_table(mem: &impl PhysMemory, root: u64, virt: u64) -> Option<u64> {
    if virt >= LOWER_HALF_END {
        return None;
    }
    let mut table = root;
    for level in (1..4).rev() {
        let entry = mem.read_u64(table + index(virt, level) * 8);
        if classify(entry, level) != Entry::Table {
            return None;
        }
        table = entry & ENTRY_ADDRESS_MASK;
    }
    Some(table)
}

/// True when the entry for `virt` in `leaf_table` (from [`leaf_table`] for `virt`'s region) maps a
/// page, accessible or not.
pub fn leaf_mapped(mem: &impl PhysMemory, leaf_table: u64, virt: u64) -> bool {
    classify(mem.read_u64(leaf_table + index(virt, 0) * 8), 0) == Entry::Leaf
}

/// Applies `change` to the flags of every page of `[virt, virt + size)`; every page must be mapped and
/// no 2 MiB page may stick out of the range. Nothing changes if any page fails the check. `changed` gets
/// the address of every page after its entry changed (to drop cached translations).
pub fn update_flags<M: PhysMemory>(
    mem: &mut M,
    root: u64,
    virt: u64,
    size: u64,
    change: impl FnMut(PageFlags) -> PageFlags,
    changed: impl FnMut(&mut M, u64),
) -> Result<(), PagingError> {
    check_range(virt, size, PAGE_SIZE)?;
    let mut addr = virt;
    while addr < virt + size {
        let (_, page) = leaf_slot(mem, root, addr).ok_or(PagingError::NotMapped)?;
        addr += page;
    }
    update_present_flags(mem, root, virt, size, change, changed)
}

/// Makes the 4 KiB page at `virt` executable or not, keeping everything else of its entry (an
/// inaccessible page stays inaccessible). Returns false, changing nothing, where `virt` has no 4 KiB leaf
/// (not mapped, or inside a 2 MiB page); `changed` gets the page's address when its entry changed.
pub fn set_executable<M: PhysMemory>(
    mem: &mut M,
    root: u64,
    virt: u64,
    executable: bool,
    changed: impl FnOnce(&mut M, u64),
) -> bool {
    let Some((slot, PAGE_SIZE)) = leaf_slot(mem, root, virt) else { return false };
    let entry = mem.read_u64(slot);
    let wanted = if executable { entry & !ENTRY_NO_EXECUTE } else { entry | ENTRY_NO_EXECUTE };
    if wanted != entry {
        mem.write_u64(slot, wanted);
        changed(mem, virt & !(PAGE_SIZE - 1));
    }
    true
}

/// What [`unmap`] found at a page it unmapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unmapped {
    pub page: u64,
    pub frame: u64,
    /// The frame was the mapping's own (the caller frees it), not borrowed from a shared object.
    pub owned: bool,
}

/// Removes the mappings of `[virt, virt + size)` (tables stay); unmapped pages are skipped.
/// `unmapped(mem, what)` gets every page that was mapped, after its entry is cleared, with the physical
/// frame it mapped (for the caller to free unless borrowed, and to drop the cached translation).
pub fn unmap<M: PhysMemory>(
    mem: &mut M,
    root: u64,
    virt: u64,
    size: u64,
    mut unmapped: impl FnMut(&mut M, Unmapped),
) -> Result<(), PagingError> {
    for_each_leaf(mem, root, virt, size, |mem, leaf| {
        mem.write_u64(leaf.slot, 0);
        let (frame, owned) = (leaf.entry & ENTRY_ADDRESS_MASK, leaf.entry & ENTRY_BORROWED == 0);
        unmapped(mem, Unmapped { page: leaf.virt, frame, owned });
    })
}

/// A huge page that overlaps `[virt, end)` and sticks out of it contains `virt` or `end - 1`: checking
/// those two addresses lets the walks below change entries as they go and still change nothing when the
/// range would split a huge page.
fn check_no_huge_page_split(mem: &impl PhysMemory, root: u64, virt: u64, end: u64) -> Result<(), PagingError> {
    for addr in [virt, end - 1] {
        if let Some((_, page)) = leaf_slot(mem, root, addr) {
            let base = addr & !(page - 1);
            if base < virt || base + page > end {
                return Err(PagingError::HugePageSplit);
            }
        }
    }
    Ok(())
}

/// A mapped leaf entry, as [`for_each_leaf`] finds it.
struct Leaf {
    /// The first address the leaf maps.
    virt: u64,
    /// Physical address of the entry.
    slot: u64,
    /// The entry's value.
    entry: u64,
    /// The size of the page it maps.
    size: u64,
}

/// Calls `visit(mem, leaf)` for every mapped leaf inside `[virt, virt + size)`, skipping
/// unmapped table ranges whole (so sparse ranges of any size cost little). A huge page that sticks out of
/// the range is an error, reported before anything is visited. The visitor may change leaf entries (never
/// tables); no list is built, because on a nested hypervisor that emulates kernel code every allocation
/// and copy costs real time.
fn for_each_leaf<M: PhysMemory>(
    mem: &mut M,
    root: u64,
    virt: u64,
    size: u64,
    mut visit: impl FnMut(&mut M, Leaf),
) -> Result<(), PagingError> {
    check_range(virt, size, PAGE_SIZE)?;
    if size == 0 {
        return Ok(());
    }
    let end = virt + size;
    // Inside one 2 MiB region (most ranges) a huge page would be the range's only leaf, so the walk
    // itself can refuse it before visiting anything; otherwise check both ends first.
    if virt & !(HUGE_PAGE_SIZE - 1) != (end - 1) & !(HUGE_PAGE_SIZE - 1) {
        check_no_huge_page_split(mem, root, virt, end)?;
    }
    let mut addr = virt;
    'walk: while addr < end {
        let mut table = root;
        for level in (0..4).rev() {
            let span = 1u64 << (12 + 9 * level);
            let slot = table + index(addr, level) * 8;
            let entry = mem.read_u64(slot);
            match classify(entry, level) {
                Entry::Empty => {
                    addr = (addr & !(span - 1)) + span;
                    continue 'walk;
                }
                Entry::Leaf => {
                    let base = addr & !(span - 1);
                    if base < virt || base + span > end {
                        return Err(PagingError::HugePageSplit);
                    }
                    visit(mem, Leaf { virt: addr, slot, entry, size: span });
                    addr += span;
                    continue 'walk;
                }
                Entry::Table => {}
            }
            if level == 1 {
                // Scan this leaf table's entries up to the end of its 2 MiB or of the range: one walk
                // per 2 MiB, not per page.
                let leaf_table = entry & ENTRY_ADDRESS_MASK;
                let chunk_end = ((addr | (HUGE_PAGE_SIZE - 1)) + 1).min(end);
                while addr < chunk_end {
                    let slot = leaf_table + index(addr, 0) * 8;
                    let entry = mem.read_u64(slot);
                    if classify(entry, 0) == Entry::Leaf {
                        visit(mem, Leaf { virt: addr, slot, entry, size: PAGE_SIZE });
                    }
                    addr += PAGE_SIZE;
                }
                continue 'walk;
            }
            table = entry & ENTRY_ADDRESS_MASK;
        }
    }
    Ok(())
}

/// Like [`update_flags`], but pages of the range that are not mapped are skipped. Inaccessible pages
/// become accessible with the changed flags.
pub fn update_present_flags<M: PhysMemory>(
    mem: &mut M,
    root: u64,
    virt: u64,
    size: u64,
    mut change: impl FnMut(PageFlags) -> PageFlags,
    mut changed: impl FnMut(&mut M, u64),
) -> Result<(), PagingError> {
    for_each_leaf(mem, root, virt, size, |mem, leaf| {
        let kept = leaf.entry & (ENTRY_ADDRESS_MASK | ENTRY_HUGE | ENTRY_BORROWED | ENTRY_COW);
        let mut bits = kept | change(PageFlags::from_leaf(leaf.entry)).leaf_bits();
        if bits & ENTRY_COW != 0 {
            bits &= !ENTRY_WRITABLE;
        }
        mem.write_u64(leaf.slot, bits);
        changed(mem, leaf.virt);
    })
}

/// A copy of the tree at `root` in tables of its own (levels 3 to 1 copied, leaves copied as they are:
/// both trees map the same frames), except below entries whose whole range `kernel_only(start, size)`
/// names: those tables (the kernel's, which no app mapping ever reaches, and the upper half) are shared
/// by both trees. Returns the copy's root. On `OutOfMemory` the tables copied so far are handed to `free`
/// (nothing leaks).
pub fn clone_tables<M: PhysMemory>(
    mem: &mut M,
    root: u64,
    kernel_only: &impl Fn(u64, u64) -> bool,
    mut free: impl FnMut(&mut M, u64),
) -> Result<u64, PagingError> {
    let mut made = alloc::vec::Vec::new();
    match clone_table(mem, root, 3, 0, kernel_only, &mut made) {
        Ok(copy) => Ok(copy),
        Err(error) => {
            for table in made {
                free(mem, table);
            }
            Err(error)
        }
    }
}

/// Whether the entry at `level` for `[start, start + span)` leads to a table both trees share.
fn shared_subtree(start: u64, span: u64, kernel_only: &impl Fn(u64, u64) -> bool) -> bool {
    start >= LOWER_HALF_END || kernel_only(start, span)
}

fn clone_table<M: PhysMemory>(
    mem: &mut M,
    table: u64,
    level: u32,
    base: u64,
    kernel_only: &impl Fn(u64, u64) -> bool,
    made: &mut alloc::vec::Vec<u64>,
) -> Result<u64, PagingError> {
    let copy = mem.alloc_zeroed_frame().ok_or(PagingError::OutOfMemory)?;
    made.push(copy);
    // Leaves as they are; tables below get their own copies, unless they are the kernel's (shared).
    let span = 1u64 << (12 + 9 * level);
    for i in 0..512 {
        let entry = mem.read_u64(table + i * 8);
        if entry == 0 {
            continue;
        }
        let start = base + i * span;
        let value = if level > 0 && classify(entry, level) == Entry::Table && !shared_subtree(start, span, kernel_only)
        {
            clone_table(mem, entry & ENTRY_ADDRESS_MASK, level - 1, start, kernel_only, made)?
                | (entry & !ENTRY_ADDRESS_MASK)
        } else {
            entry
        };
        mem.write_u64(copy + i * 8, value);
    }
    Ok(copy)
}

/// Hands every table of the tree at `root` (the root too) that [`clone_tables`] made with the same
/// `kernel_only` to `free`; shared tables and the frames leaves map are left alone (the caller unmapped
/// what it owns first).
pub fn free_tables<M: PhysMemory>(
    mem: &mut M,
    root: u64,
    kernel_only: &impl Fn(u64, u64) -> bool,
    mut free: impl FnMut(&mut M, u64),
) {
    free_table(mem, root, 3, 0, kernel_only, &mut free);
}

fn free_table<M: PhysMemory>(
    mem: &mut M,
    table: u64,
    level: u32,
    base: u64,
    kernel_only: &impl Fn(u64, u64) -> bool,
    free: &mut impl FnMut(&mut M, u64),
) {
    if level > 0 {
        let span = 1u64 << (12 + 9 * level);
        for i in 0..512 {
            let entry = mem.read_u64(table + i * 8);
            let start = base + i * span;
            if entry != 0 && classify(entry, level) == Entry::Table && !shared_subtree(start, span, kernel_only) {
                free_table(mem, entry & ENTRY_ADDRESS_MASK, level - 1, start, kernel_only, free);
            }
        }
    }
    free(mem, table);
}

/// After [`clone_tables`] made `copy` from `root`: marks every owned 4 KiB leaf of `[virt, virt + size)`
/// copy-on-write in both trees (read-only to the CPU, see the module doc) and calls `shared(mem, page, frame)`
/// for each such page and its frame, which both trees now map (the caller counts the reference and drops
/// the page's cached translation). Borrowed leaves (a shared object's frames) stay as they are:
/// both trees keep sharing them. A 2 MiB leaf in the range is refused (`HugePageSplit`, after the 4 KiB
/// leaves were marked, which is harmless): app memory is mapped in 4 KiB pages.
pub fn share_copy_on_write<M: PhysMemory>(
    mem: &mut M,
    root: u64,
    copy: u64,
    virt: u64,
    size: u64,
    mut shared: impl FnMut(&mut M, u64, u64),
) -> Result<(), PagingError> {
    let mut huge = false;
    for_each_leaf(mem, root, virt, size, |mem, leaf| {
        if leaf.size != PAGE_SIZE {
            huge = true;
        }
        if huge || leaf.entry & ENTRY_BORROWED != 0 {
            return;
        }
        let Some((copy_slot, _)) = leaf_slot(mem, copy, leaf.virt) else { return };
        let marked = (leaf.entry | ENTRY_COW) & !ENTRY_WRITABLE;
        mem.write_u64(leaf.slot, marked);
        mem.write_u64(copy_slot, marked);
        shared(mem, leaf.virt, leaf.entry & ENTRY_ADDRESS_MASK);
    })?;
    if huge {
        return Err(PagingError::HugePageSplit);
    }
    Ok(())
}

/// The frame of the copy-on-write 4 KiB page at `virt` (see the module doc), if that page is one.
pub fn copy_on_write_frame(mem: &impl PhysMemory, root: u64, virt: u64) -> Option<u64> {
    let (slot, page) = leaf_slot(mem, root, virt)?;
    let entry = mem.read_u64(slot);
    (page == PAGE_SIZE && entry & ENTRY_COW != 0).then_some(entry & ENTRY_ADDRESS_MASK)
}

/// Ends copy-on-write for the page at `virt` (one [`copy_on_write_frame`] names): it maps `frame` from
/// now on (its old frame when no other tree maps that one any more, else a copy the caller made), writable
/// if `writable`, with its other flags as they were.
pub fn resolve_copy_on_write(
    mem: &mut impl PhysMemory,
    root: u64,
    virt: u64,
    frame: u64,
    writable: bool,
) -> Result<(), PagingError> {
    let (slot, page) = leaf_slot(mem, root, virt).ok_or(PagingError::NotMapped)?;
    let entry = mem.read_u64(slot);
    if page != PAGE_SIZE || entry & ENTRY_COW == 0 || !frame.is_multiple_of(PAGE_SIZE) {
        return Err(PagingError::NotMapped);
    }
    let mut bits = (entry & !(ENTRY_ADDRESS_MASK | ENTRY_COW)) | frame;
    // An inaccessible page (PROT_NONE) stays inaccessible: its flags become writable when it is made
    // accessible again.
    if writable {
        bits |= ENTRY_WRITABLE;
    }
    mem.write_u64(slot, bits);
    Ok(())
}

/// Makes every mapped page of `[virt, virt + size)` inaccessible: any access faults as if it were not
/// present, while the page keeps its frame, contents and flags for [`update_present_flags`] to restore (or
/// [`unmap`] to free). Unmapped pages are skipped. `changed` gets the address of every page after its entry
/// changed (to drop cached translations).
pub fn make_inaccessible<M: PhysMemory>(
    mem: &mut M,
    root: u64,
    virt: u64,
    size: u64,
    mut changed: impl FnMut(&mut M, u64),
) -> Result<(), PagingError> {
    for_each_leaf(mem, root, virt, size, |mem, leaf| {
        mem.write_u64(leaf.slot, (leaf.entry & !ENTRY_PRESENT) | ENTRY_INACCESSIBLE);
        changed(mem, leaf.virt);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    /// Sparse physical memory: table frames handed out from 1 MiB up.
    #[derive(Default)]
    struct SparseMemory {
        words: BTreeMap<u64, u64>,
        next_frame: u64,
        frames_left: u64,
    }

    impl SparseMemory {
        fn new(frames: u64) -> Self {
            Self { words: BTreeMap::new(), next_frame: 0x10_0000, frames_left: frames }
        }
    }

    impl PhysMemory for SparseMemory {
        fn read_u64(&self, phys: u64) -> u64 {
            self.words.get(&phys).copied().unwrap_or(0)
        }
        fn write_u64(&mut self, phys: u64, value: u64) {
            self.words.insert(phys, value);
        }
        fn alloc_zeroed_frame(&mut self) -> Option<u64> {
            self.frames_left = self.frames_left.checked_sub(1)?;
            self.next_frame += PAGE_SIZE;
            Some(self.next_frame)
        }
    }

    fn setup() -> (SparseMemory, u64) {
        let mut mem = SparseMemory::new(1000);
        let root = mem.alloc_zeroed_frame().unwrap();
        (mem, root)
    }

    const RW_USER: PageFlags = PageFlags { writable: true, executable: false, user: true, pkey: 0, global: false };

    /// The mapped pages of `[virt, virt + size)` as (address, page size), in address order (inaccessible ones
    /// included).
    fn mapped_pages(
        mem: &mut impl PhysMemory,
        root: u64,
        virt: u64,
        size: u64,
    ) -> Result<alloc::vec::Vec<(u64, u64)>, PagingError> {
        let mut pages = alloc::vec::Vec::new();
        for_each_leaf(mem, root, virt, size, |mem, leaf| {
            let page = leaf_slot(mem, root, leaf.virt).map_or(0, |(_, page)| page);
            pages.push((leaf.virt, page));
        })?;
        Ok(pages)
    }

    /// True when `virt` is mapped and the CPU sees it present (not made inaccessible).
    fn is_accessible(mem: &SparseMemory, root: u64, virt: u64) -> bool {
        leaf_slot(mem, root, virt).is_some_and(|(slot, _)| mem.read_u64(slot) & ENTRY_PRESENT != 0)
    }

    #[test]
    fn maps_and_translates_small_and_huge_pages() {
        let (mut mem, root) = setup();
        map(&mut mem, root, 0x40_0000, 0x20_0000, 0x3000, RW_USER, false).unwrap();
        assert_eq!(translate(&mem, root, 0x40_1234), Some((0x20_1234, RW_USER)));
        assert_eq!(translate(&mem, root, 0x40_3000), None);
        let kernel = PageFlags { pkey: 3, ..RW_USER };
        map(&mut mem, root, 0x7f00_0000_0000, 0x4000_0000, HUGE_PAGE_SIZE * 2, kernel, true).unwrap();
        assert_eq!(translate(&mem, root, 0x7f00_0030_0001), Some((0x4030_0001, kernel)));
    }

    #[test]
    fn set_executable_flips_only_no_execute_and_keeps_inaccessible_pages_so() {
        let (mut mem, root) = setup();
        let code = PageFlags { executable: true, ..RW_USER };
        map(&mut mem, root, 0x40_0000, 0x20_0000, 0x2000, code, false).unwrap();
        map(&mut mem, root, 0x80_0000, 0x40_0000, HUGE_PAGE_SIZE, code, true).unwrap();
        let mut changed = alloc::vec::Vec::new();
        assert!(set_executable(&mut mem, root, 0x40_1234, false, |_, page| changed.push(page)));
        assert_eq!(translate(&mem, root, 0x40_1000), Some((0x20_1000, RW_USER)));
        assert_eq!(translate(&mem, root, 0x40_0000), Some((0x20_0000, code)), "the neighbour is untouched");
        assert!(set_executable(&mut mem, root, 0x40_1000, false, |_, page| changed.push(page)));
        assert_eq!(changed, [0x40_1000], "no change, no invalidation");
        make_inaccessible(&mut mem, root, 0x40_1000, PAGE_SIZE, |_, _| {}).unwrap();
        assert!(set_executable(&mut mem, root, 0x40_1000, true, |_, _| {}));
        assert!(!is_accessible(&mem, root, 0x40_1000));
        update_present_flags(&mut mem, root, 0x40_1000, PAGE_SIZE, |f| f, |_, _| {}).unwrap();
        assert_eq!(translate(&mem, root, 0x40_1000), Some((0x20_1000, code)));
        assert!(!set_executable(&mut mem, root, 0x40_2000, false, |_, _| {}), "not mapped");
        assert!(!set_executable(&mut mem, root, 0x80_1000, false, |_, _| {}), "inside a 2 MiB page");
    }

    #[test]
    fn refuses_overlap_misalignment_and_noncanonical() {
        let (mut mem, root) = setup();
        map(&mut mem, root, 0x1000, 0, 0x2000, RW_USER, false).unwrap();
        assert_eq!(map(&mut mem, root, 0x2000, 0, 0x1000, RW_USER, false), Err(PagingError::AlreadyMapped));
        assert_eq!(map(&mut mem, root, 0x1234, 0, 0x1000, RW_USER, false), Err(PagingError::Misaligned));
        assert_eq!(
            map(&mut mem, root, LOWER_HALF_END - 0x1000, 0, 0x2000, RW_USER, false),
            Err(PagingError::NonCanonical)
        );
        assert_eq!(map(&mut mem, root, !0xfff, 0, 0x2000, RW_USER, false), Err(PagingError::NonCanonical));
    }

    #[test]
    fn update_flags_sets_keys_and_rejects_partial_huge_pages() {
        let (mut mem, root) = setup();
        map(&mut mem, root, 0x20_0000, 0x20_0000, HUGE_PAGE_SIZE, RW_USER, true).unwrap();
        let mut changed = alloc::vec::Vec::new();
        assert_eq!(
            update_flags(&mut mem, root, 0x20_0000, PAGE_SIZE, |f| f, |_, page| changed.push(page)),
            Err(PagingError::HugePageSplit)
        );
        assert_eq!(changed, []);
        update_flags(
            &mut mem,
            root,
            0x20_0000,
            HUGE_PAGE_SIZE,
            |f| PageFlags { pkey: 5, ..f },
            |_, page| changed.push(page),
        )
        .unwrap();
        assert_eq!(changed, [0x20_0000]);
        assert_eq!(translate(&mem, root, 0x20_0010).unwrap().1.pkey, 5);
        assert_eq!(update_flags(&mut mem, root, 0x80_0000, PAGE_SIZE, |f| f, |_, _| {}), Err(PagingError::NotMapped));
    }

    #[test]
    fn a_cloned_tree_shares_owned_pages_copy_on_write() {
        let (mut mem, root) = setup();
        map(&mut mem, root, 0x40_0000, 0x9000, 0x2000, RW_USER, false).unwrap();
        map_borrowed(&mut mem, root, 0x50_0000, &[0x7000], RW_USER).unwrap();
        let kernel = PageFlags { pkey: 3, ..RW_USER };
        map(&mut mem, root, 0x7f00_0000_0000, 0x4000_0000, HUGE_PAGE_SIZE, kernel, true).unwrap();
        // The GiB at 0x7f00_0000_0000 is the kernel's own: its table is shared.
        let kernel_only = |start: u64, size: u64| start >= 0x7f00_0000_0000 && start + size <= 0x7f00_4000_0000;
        let copy = clone_tables(&mut mem, root, &kernel_only, |_, _| panic!("nothing to free")).unwrap();
        assert_ne!(copy, root);
        let mut shared = alloc::vec::Vec::new();
        share_copy_on_write(&mut mem, root, copy, 0x40_0000, 0x20_0000, |_, _, frame| shared.push(frame)).unwrap();
        assert_eq!(shared, [0x9000, 0xa000]);
        for tree in [root, copy] {
            let (phys, flags) = translate(&mem, tree, 0x40_1000).unwrap();
            assert_eq!((phys, flags.writable), (0xa000, false), "both trees map the frame read-only");
            assert_eq!(copy_on_write_frame(&mem, tree, 0x40_1000), Some(0xa000));
            // The borrowed page and the kernel's huge page are shared as they were.
            assert_eq!(translate(&mem, tree, 0x50_0000), Some((0x7000, RW_USER)));
            assert_eq!(copy_on_write_frame(&mem, tree, 0x50_0000), None);
            assert_eq!(translate(&mem, tree, 0x7f00_0000_1000), Some((0x4000_1000, kernel)));
        }
        // A permission change keeps a copy-on-write page read-only.
        update_present_flags(&mut mem, copy, 0x40_0000, 0x2000, |f| PageFlags { writable: true, ..f }, |_, _| {})
            .unwrap();
        assert!(!translate(&mem, copy, 0x40_0000).unwrap().1.writable);
        // Resolving in one tree leaves the other one copy-on-write.
        resolve_copy_on_write(&mut mem, copy, 0x40_0000, 0xb000, true).unwrap();
        assert_eq!(translate(&mem, copy, 0x40_0000), Some((0xb000, RW_USER)));
        assert_eq!(copy_on_write_frame(&mem, copy, 0x40_0000), None);
        assert_eq!(copy_on_write_frame(&mem, root, 0x40_0000), Some(0x9000));
        assert_eq!(resolve_copy_on_write(&mut mem, copy, 0x40_0000, 0xb000, true), Err(PagingError::NotMapped));
        // The copy's tables are its own: a new mapping in one tree is not seen in the other.
        map(&mut mem, copy, 0x40_3000, 0xc000, 0x1000, RW_USER, false).unwrap();
        assert_eq!(translate(&mem, root, 0x40_3000), None);
        let mut freed = alloc::vec::Vec::new();
        free_tables(&mut mem, copy, &kernel_only, |_, table| freed.push(table));
        assert!(freed.contains(&copy));
        assert_eq!(freed.len(), 5, "root, a PDPT per half, the app's PD and leaf table; the kernel's PD is shared");
        assert_eq!(translate(&mem, root, 0x7f00_0000_1000), Some((0x4000_1000, kernel)));
        assert_eq!(translate(&mem, root, 0x40_1000).map(|(phys, _)| phys), Some(0xa000));
    }

    #[test]
    fn unmap_returns_frames() {
        let (mut mem, root) = setup();
        map(&mut mem, root, 0x1000, 0x9000, 0x2000, RW_USER, false).unwrap();
        let mut freed = alloc::vec::Vec::new();
        unmap(&mut mem, root, 0, 0x4000, |_, gone| freed.push((gone.page, gone.frame))).unwrap();
        assert_eq!(freed, [(0x1000, 0x9000), (0x2000, 0xa000)]);
        assert_eq!(translate(&mem, root, 0x1000), None);
        // A range ending inside a 2 MiB page changes nothing, not even the 4 KiB pages before it.
        map(&mut mem, root, 0x1f_e000, 0x1000, 0x2000, RW_USER, false).unwrap();
        map(&mut mem, root, 0x20_0000, 0x20_0000, HUGE_PAGE_SIZE, RW_USER, true).unwrap();
        let result = unmap(&mut mem, root, 0x1f_e000, 0x3000, |_, gone| panic!("unmapped {:#x}", gone.page));
        assert_eq!(result, Err(PagingError::HugePageSplit));
        assert!(translate(&mem, root, 0x1f_e000).is_some());
    }

    #[test]
    fn sparse_walks_skip_unmapped_tables_and_see_every_page() {
        let (mut mem, root) = setup();
        map(&mut mem, root, 0x1000, 0x9000, 0x2000, RW_USER, false).unwrap();
        map(&mut mem, root, 0x7f00_0000_0000, 0x20_0000, HUGE_PAGE_SIZE, RW_USER, true).unwrap();
        let all = LOWER_HALF_END - PAGE_SIZE;
        let pages = mapped_pages(&mut mem, root, 0, all).unwrap();
        assert_eq!(pages, [(0x1000, PAGE_SIZE), (0x2000, PAGE_SIZE), (0x7f00_0000_0000, HUGE_PAGE_SIZE)]);
        let mut changed = alloc::vec::Vec::new();
        update_present_flags(
            &mut mem,
            root,
            0,
            0x10_0000,
            |f| PageFlags { writable: false, ..f },
            |_, page| changed.push(page),
        )
        .unwrap();
        assert_eq!(changed, [0x1000, 0x2000]);
        assert!(!translate(&mem, root, 0x2000).unwrap().1.writable);
        assert!(translate(&mem, root, 0x7f00_0000_0000).unwrap().1.writable);
        assert_eq!(
            update_present_flags(&mut mem, root, 0x7f00_0000_0000, PAGE_SIZE, |f| f, |_, _| {}),
            Err(PagingError::HugePageSplit)
        );
    }

    #[test]
    fn inaccessible_pages_keep_their_frames() {
        let (mut mem, root) = setup();
        map(&mut mem, root, 0x1000, 0x9000, 0x2000, RW_USER, false).unwrap();
        let mut changed = alloc::vec::Vec::new();
        make_inaccessible(&mut mem, root, 0, 0x2000, |_, page| changed.push(page)).unwrap();
        assert_eq!(changed, [0x1000]);
        assert!(!is_accessible(&mem, root, 0x1000));
        assert!(is_accessible(&mem, root, 0x2000));
        assert_eq!(mem.read_u64(leaf_slot(&mem, root, 0x1000).unwrap().0) & ENTRY_PRESENT, 0, "the CPU sees no page");
        // Still mapped for the walks: not refilled, not remapped, listed, and its frame survives.
        assert_eq!(translate(&mem, root, 0x1008), Some((0x9008, RW_USER)));
        assert_eq!(map_missing(&mut mem, root, 0x1000, 0x1000, RW_USER).unwrap(), 0);
        assert_eq!(map(&mut mem, root, 0x1000, 0, 0x1000, RW_USER, false), Err(PagingError::AlreadyMapped));
        assert_eq!(mapped_pages(&mut mem, root, 0, 0x3000).unwrap(), [(0x1000, PAGE_SIZE), (0x2000, PAGE_SIZE)]);
        let read_only = PageFlags { writable: false, ..RW_USER };
        update_present_flags(&mut mem, root, 0x1000, 0x1000, |_| read_only, |_, _| {}).unwrap();
        assert!(is_accessible(&mem, root, 0x1000));
        assert_eq!(translate(&mem, root, 0x1000), Some((0x9000, read_only)));
        // Freed like any page.
        make_inaccessible(&mut mem, root, 0x1000, 0x2000, |_, _| {}).unwrap();
        let mut freed = alloc::vec::Vec::new();
        unmap(&mut mem, root, 0x1000, 0x2000, |_, gone| freed.push((gone.page, gone.frame))).unwrap();
        assert_eq!(freed, [(0x1000, 0x9000), (0x2000, 0xa000)]);
        assert_eq!(translate(&mem, root, 0x1000), None);
        assert_eq!(map_missing(&mut mem, root, 0x1000, 0x1000, RW_USER).unwrap(), 1);
    }

    #[test]
    fn borrowed_frames_survive_flag_changes_and_are_not_owned() {
        let (mut mem, root) = setup();
        map(&mut mem, root, 0x1000, 0x9000, PAGE_SIZE, RW_USER, false).unwrap();
        assert_eq!(map_borrowed(&mut mem, root, 0x1000, &[0x5000], RW_USER), Err(PagingError::AlreadyMapped));
        assert_eq!(map_borrowed(&mut mem, root, 0x2000, &[0x5001], RW_USER), Err(PagingError::Misaligned));
        map_borrowed(&mut mem, root, 0x2000, &[0x5000, 0x7000], RW_USER).unwrap();
        assert_eq!(translate(&mem, root, 0x3008), Some((0x7008, RW_USER)));
        let read_only = PageFlags { writable: false, ..RW_USER };
        update_present_flags(&mut mem, root, 0x2000, 0x2000, |_| read_only, |_, _| {}).unwrap();
        make_inaccessible(&mut mem, root, 0x3000, PAGE_SIZE, |_, _| {}).unwrap();
        update_present_flags(&mut mem, root, 0x3000, PAGE_SIZE, |_| RW_USER, |_, _| {}).unwrap();
        let mut gone = alloc::vec::Vec::new();
        unmap(&mut mem, root, 0x1000, 0x3000, |_, what| gone.push(what)).unwrap();
        assert_eq!(
            gone,
            [
                Unmapped { page: 0x1000, frame: 0x9000, owned: true },
                Unmapped { page: 0x2000, frame: 0x5000, owned: false },
                Unmapped { page: 0x3000, frame: 0x7000, owned: false },
            ]
        );
    }

    #[test]
    fn leaf_tables_answer_for_their_region() {
        let (mut mem, root) = setup();
        assert_eq!(leaf_table(&mem, root, 0x1000), None);
        map(&mut mem, root, 0x1000, 0x9000, PAGE_SIZE, RW_USER, false).unwrap();
        let table = leaf_table(&mem, root, 0x1000).unwrap();
        assert_eq!(leaf_table(&mem, root, 0x1f_f000), Some(table), "one table per 2 MiB");
        assert!(leaf_mapped(&mem, table, 0x1000));
        assert!(!leaf_mapped(&mem, table, 0x2000));
        map_missing(&mut mem, root, 0x2000, PAGE_SIZE, RW_USER).unwrap();
        assert!(leaf_mapped(&mem, table, 0x2000));
        make_inaccessible(&mut mem, root, 0x2000, PAGE_SIZE, |_, _| {}).unwrap();
        assert!(leaf_mapped(&mem, table, 0x2000), "inaccessible pages are mapped");
        unmap(&mut mem, root, 0x1000, 0x2000, |_, _| {}).unwrap();
        assert!(!leaf_mapped(&mem, table, 0x1000));
        assert_eq!(leaf_table(&mem, root, 0x1000), Some(table), "tables stay");
        map(&mut mem, root, 0x20_0000, 0x40_0000, HUGE_PAGE_SIZE, RW_USER, true).unwrap();
        assert_eq!(leaf_table(&mem, root, 0x20_1000), None);
    }

    #[test]
    fn inaccessible_huge_pages_stay_huge_pages() {
        let (mut mem, root) = setup();
        map(&mut mem, root, 0x20_0000, 0x40_0000, HUGE_PAGE_SIZE, RW_USER, true).unwrap();
        make_inaccessible(&mut mem, root, 0x20_0000, HUGE_PAGE_SIZE, |_, _| {}).unwrap();
        assert!(!is_accessible(&mem, root, 0x20_1000));
        assert_eq!(translate(&mem, root, 0x20_1000), Some((0x40_1000, RW_USER)));
        assert_eq!(map_missing(&mut mem, root, 0x20_0000, PAGE_SIZE, RW_USER), Ok(0), "skipped whole, not replaced");
        update_present_flags(&mut mem, root, 0x20_0000, HUGE_PAGE_SIZE, |f| f, |_, _| {}).unwrap();
        assert!(is_accessible(&mem, root, 0x20_1000));
    }

    #[test]
    fn map_missing_fills_only_the_holes() {
        let (mut mem, root) = setup();
        map(&mut mem, root, 0x3000, 0x9000, PAGE_SIZE, RW_USER, false).unwrap();
        let mapped = map_missing(&mut mem, root, 0x1000, 0x5000, RW_USER).unwrap();
        assert_eq!(mapped, 4);
        assert_eq!(translate(&mem, root, 0x3000).unwrap().0, 0x9000, "an existing page is left alone");
        let pages = mapped_pages(&mut mem, root, 0, 0x10_0000).unwrap();
        assert_eq!(
            pages.iter().map(|(addr, _)| *addr).collect::<alloc::vec::Vec<_>>(),
            [0x1000, 0x2000, 0x3000, 0x4000, 0x5000]
        );
        // Across a 2 MiB boundary, and again: nothing left to map.
        assert_eq!(map_missing(&mut mem, root, 0x1f_f000, 0x2000, RW_USER).unwrap(), 2);
        assert_eq!(map_missing(&mut mem, root, 0x1f_f000, 0x2000, RW_USER).unwrap(), 0);
    }

    #[test]
    fn running_out_of_frames_is_an_error() {
        let mut mem = SparseMemory::new(2);
        let root = mem.alloc_zeroed_frame().unwrap();
        assert_eq!(map(&mut mem, root, 0x1000, 0, 0x1000, RW_USER, false), Err(PagingError::OutOfMemory));
    }

    proptest! {
        #[test]
        fn every_mapped_page_translates_to_its_frame(
            start_page in 1u64..(1 << 35) - 64, pages in 1u64..32, phys_page in 0u64..(1 << 20), pkey in 0u8..16,
        ) {
            let (mut mem, root) = setup();
            let flags = PageFlags { pkey, ..RW_USER };
            map(&mut mem, root, start_page * PAGE_SIZE, phys_page * PAGE_SIZE, pages * PAGE_SIZE, flags, false).unwrap();
            for i in 0..pages {
                let got = translate(&mem, root, (start_page + i) * PAGE_SIZE + 8);
                prop_assert_eq!(got, Some(((phys_page + i) * PAGE_SIZE + 8, flags)));
            }
            prop_assert_eq!(translate(&mem, root, (start_page + pages) * PAGE_SIZE), None);
        }
    }
}
