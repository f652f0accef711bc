//! The VMA list: sorted, non-overlapping, page-aligned ranges of app memory.
//!
//! This is the only authority on what app memory exists: user pointers are checked against it, and the
//! kernel unmaps or reprotects only ranges it finds here (so it never touches kernel memory on the app's
//! behalf). Adjacent ranges with equal permissions and kind are merged to keep the list short.

use alloc::vec::Vec;
use core::cell::Cell;

use kernel_abi::{PERM_EXEC, PERM_READ, PERM_WRITE};

use super::page_aligned;
use crate::machine::SharedId;

/// Most VMAs an app may have (Linux's default `vm.max_map_count`).
pub const MAX_VMAS: usize = 65_530;

/// What a range holds (for diagnostics and brk bookkeeping; permissions do not depend on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaKind {
    /// A PT_LOAD segment mapped by the VMM.
    Image,
    Stack,
    /// The brk heap.
    Heap,
    Anonymous,
    /// A private copy of file contents.
    File,
    /// A `MAP_SHARED` mapping of a file's pages (see [`crate::mm::shared`]): file offset `addr - base`
    /// (wrapping) is mapped at `addr`, which a split keeps; `may_write` is whether the file was opened for
    /// writing, as `mprotect(PROT_WRITE)` requires.
    SharedFile {
        node: crate::fs::NodeId,
        base: u64,
        may_write: bool,
    },
    /// An attachment of the SysV shared-memory segment (see [`crate::syscall::shm`]) that starts at
    /// `base`: segment offset `addr - base` is mapped at `addr`; `may_write` is false when it was attached
    /// `SHM_RDONLY`.
    SysvShm {
        base: u64,
        may_write: bool,
    },
}

/// `[start, end)` mapped with `perms` (`PERM_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    pub perms: u32,
    pub kind: VmaKind,
}

/// What gives a page of a VMA its frame when a machine that backs memory on first touch backs it
/// ([`Vma::backing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// A fresh zeroed frame of its own (anonymous memory, the stack, brk, private file copies).
    Fresh,
    /// Page `page` of shared object `id`, borrowed (unmapping it never frees the frame); the next page of
    /// the VMA maps page `page + 1`, and so on.
    Shared { id: SharedId, page: u64 },
    /// Nothing: the layer had the machine map the whole range when it created it (a shared file mapping),
    /// so one of its pages without a frame is a bug.
    Mapped,
}

impl Vma {
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }
    pub const fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// What backs the page at `addr` (inside the VMA) on first touch. A SysV attachment maps segment page
    /// `(addr - base) / PAGE_SIZE` of [`SharedId::AFL_MAP`] at `addr`, whatever pieces of the attachment
    /// were unmapped or reprotected since (a split keeps `base`).
    pub fn backing(&self, addr: u64) -> Backing {
        match self.kind {
            VmaKind::SysvShm { base, .. } => {
                Backing::Shared { id: SharedId::AFL_MAP, page: addr.wrapping_sub(base) / super::PAGE_SIZE }
            }
            VmaKind::SharedFile { .. } => Backing::Mapped,
            VmaKind::Image | VmaKind::Stack | VmaKind::Heap | VmaKind::Anonymous | VmaKind::File => Backing::Fresh,
        }
    }
}

/// The sorted list.
#[derive(Clone, Debug, Default)]
pub struct VmaList {
    vmas: Vec<Vma>,
    /// Indices of the VMAs that last covered a whole checked range, most recent first: syscalls pass
    /// the same few buffers again and again (in the app's stack, data, read-only data and heap), and
    /// where kernel code is emulated the search costs real time. Only hints: each is checked against the
    /// entry it names before use.
    last_covers: Cell<[usize; COVERS_HINTS]>,
}

/// A VMA operation could not be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaError {
    /// Part of the range is already mapped.
    Overlap,
    /// Part of the range is not mapped.
    NotMapped,
    /// Too many VMAs, or no memory for the list.
    TooMany,
    /// Empty, unaligned or wrapping range.
    BadRange,
}

/// `a` ends where `b` starts, with the same permissions and kind: one VMA.
fn mergeable(a: &Vma, b: &Vma) -> bool {
    a.end == b.start && a.perms == b.perms && a.kind == b.kind
}

fn valid_range(start: u64, end: u64) -> bool {
    start < end && page_aligned(start) && page_aligned(end)
}

/// How many VMAs [`VmaList::covers`] remembers.
const COVERS_HINTS: usize = 4;

/// Room a new list starts with: a static program's segments, stack, brk and a few mmaps fit without
/// growing (each growth is an allocation and a copy, which cost real time where kernel code is emulated).
const INITIAL_CAPACITY: usize = 16;

impl VmaList {
    pub fn new() -> Self {
        Self { vmas: Vec::with_capacity(INITIAL_CAPACITY), last_covers: Cell::new([0; COVERS_HINTS]) }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Vma> {
        self.vmas.iter()
    }

    pub fn len(&self) -> usize {
        self.vmas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vmas.is_empty()
    }

    /// Index of the first VMA whose end is above `addr`.
    fn first_ending_after(&self, addr: u64) -> usize {
        self.vmas.partition_point(|v| v.end <= addr)
    }

    /// The VMA containing `addr`.
    pub fn find(&self, addr: u64) -> Option<&Vma> {
        self.vmas.get(self.first_ending_after(addr)).filter(|v| v.start <= addr)
    }

    /// True when every byte of `[addr, addr + len)` is mapped with all of `perms`. A zero length is always
    /// accessible; a wrapping range never is.
    pub fn covers(&self, addr: u64, len: u64, perms: u32) -> bool {
        if len == 0 {
            return true;
        }
        let Some(end) = addr.checked_add(len) else { return false };
        for hint in self.last_covers.get() {
            if let Some(vma) = self.vmas.get(hint) {
                if vma.start <= addr && end <= vma.end {
                    return vma.perms & perms == perms;
                }
            }
        }
        self.covers_by_search(addr, end, perms)
    }

    /// [`Self::covers`] when no hint names a VMA that holds the whole range. Out of line, so the hint
    /// checks above (most calls) need no registers saved.
    #[inline(never)]
    fn covers_by_search(&self, addr: u64, end: u64, perms: u32) -> bool {
        let first = self.first_ending_after(addr);
        let mut at = addr;
        for (index, vma) in self.vmas[first..].iter().enumerate() {
            if vma.start > at || vma.perms & perms != perms {
                return false;
            }
            if vma.end >= end {
                if at == addr {
                    let hints = self.last_covers.get();
                    let mut newer = [first + index; COVERS_HINTS];
                    newer[1..].copy_from_slice(&hints[..COVERS_HINTS - 1]);
                    self.last_covers.set(newer);
                }
                return true;
            }
            at = vma.end;
        }
        false
    }

    /// True when nothing in `[start, end)` is mapped.
    pub fn is_free(&self, start: u64, end: u64) -> bool {
        self.vmas.get(self.first_ending_after(start)).is_none_or(|v| v.start >= end)
    }

    /// The mapped pieces of `[start, end)`, in order.
    pub fn intersections(&self, start: u64, end: u64) -> impl Iterator<Item = Vma> + '_ {
        self.vmas[self.first_ending_after(start)..].iter().take_while(move |v| v.start < end).map(move |v| Vma {
            start: v.start.max(start),
            end: v.end.min(end),
            perms: v.perms,
            kind: v.kind,
        })
    }

    /// Adds a range that must be free. A range that continues an equal neighbour extends it in place
    /// (growing brk or the stack does this), with no entry moved.
    pub fn insert(&mut self, vma: Vma) -> Result<(), VmaError> {
        if !valid_range(vma.start, vma.end) {
            return Err(VmaError::BadRange);
        }
        if let Some(last) = self.vmas.last_mut().filter(|last| last.end <= vma.start) {
            // Past every VMA (the app's segments in ascending order at boot, then its stack): no search.
            if mergeable(last, &vma) {
                last.end = vma.end;
                return Ok(());
            }
            self.reserve(1)?;
            self.vmas.push(vma);
            return Ok(());
        }
        let index = self.first_ending_after(vma.start);
        let next = self.vmas.get(index);
        if next.is_some_and(|next| next.start < vma.end) {
            return Err(VmaError::Overlap);
        }
        let joins_next = next.is_some_and(|next| mergeable(&vma, next));
        let joins_previous = index > 0 && mergeable(&self.vmas[index - 1], &vma);
        match (joins_previous, joins_next) {
            (true, true) => {
                self.vmas[index - 1].end = self.vmas[index].end;
                self.vmas.remove(index);
            }
            (true, false) => self.vmas[index - 1].end = vma.end,
            (false, true) => self.vmas[index].start = vma.start,
            (false, false) => {
                self.reserve(1)?;
                self.vmas.insert(index, vma);
            }
        }
        Ok(())
    }

    /// Room for `more` entries, within [`MAX_VMAS`].
    fn reserve(&mut self, more: usize) -> Result<(), VmaError> {
        if self.vmas.len() + more > MAX_VMAS || self.vmas.try_reserve(more).is_err() {
            return Err(VmaError::TooMany);
        }
        Ok(())
    }

    /// Makes sure one [`Self::protect`] or [`Self::remove`] of a single range cannot fail for lack of
    /// room (each splits at most two VMAs), so callers can change the machine first and the list after.
    pub fn reserve_for_split(&mut self) -> Result<(), VmaError> {
        self.reserve(2)
    }

    /// Removes `[start, end)` wherever it is mapped, splitting VMAs at the edges.
    pub fn remove(&mut self, start: u64, end: u64) -> Result<(), VmaError> {
        if !valid_range(start, end) {
            return Err(VmaError::BadRange);
        }
        self.split_at(start)?;
        self.split_at(end)?;
        let from = self.first_ending_after(start);
        let to = self.vmas.partition_point(|v| v.start < end);
        if from < to {
            self.vmas.drain(from..to);
        }
        Ok(())
    }

    /// Sets the permissions of `[start, end)`, which must be fully mapped.
    pub fn protect(&mut self, start: u64, end: u64, perms: u32) -> Result<(), VmaError> {
        if !valid_range(start, end) {
            return Err(VmaError::BadRange);
        }
        let index = self.first_ending_after(start);
        if let Some(&vma) = self.vmas.get(index).filter(|vma| vma.start <= start && end <= vma.end) {
            return self.protect_within(index, vma, start, end, perms);
        }
        if !self.covers(start, end - start, 0) {
            return Err(VmaError::NotMapped);
        }
        self.split_at(start)?;
        self.split_at(end)?;
        let from = self.first_ending_after(start);
        let to = self.vmas.partition_point(|v| v.start < end);
        for vma in &mut self.vmas[from..to] {
            vma.perms = perms;
        }
        // Merge from the right so indices stay valid.
        let mut index = to.min(self.vmas.len());
        while index > from.saturating_sub(1) {
            self.merge_around(index.min(self.vmas.len().saturating_sub(1)));
            index -= 1;
        }
        Ok(())
    }

    /// [`Self::protect`] of `[start, end)` inside `vma`, the VMA at `index` (the common case: glibc's RELRO
    /// and guard pages): the VMA keeps the parts left and right of the range, and the changed part joins an
    /// equal neighbour or becomes a VMA of its own, with at most two entries inserted or removed.
    fn protect_within(&mut self, index: usize, vma: Vma, start: u64, end: u64, perms: u32) -> Result<(), VmaError> {
        if vma.perms == perms {
            return Ok(()); // nothing changes (glibc's start-up repeats such calls)
        }
        let changed = Vma { start, end, perms, kind: vma.kind };
        let keeps_left = vma.start < start;
        let keeps_right = end < vma.end;
        let joins_previous = !keeps_left && index > 0 && mergeable(&self.vmas[index - 1], &changed);
        let joins_next = !keeps_right && self.vmas.get(index + 1).is_some_and(|next| mergeable(&changed, next));
        match (keeps_left, keeps_right) {
            (true, true) => {
                self.reserve(2)?;
                self.vmas[index].end = start;
                self.vmas.insert(index + 1, changed);
                self.vmas.insert(index + 2, Vma { start: end, ..vma });
            }
            (true, false) if joins_next => {
                self.vmas[index].end = start;
                self.vmas[index + 1].start = start;
            }
            (true, false) => {
                self.reserve(1)?;
                self.vmas[index].end = start;
                self.vmas.insert(index + 1, changed);
            }
            (false, true) if joins_previous => {
                self.vmas[index].start = end;
                self.vmas[index - 1].end = end;
            }
            (false, true) => {
                self.reserve(1)?;
                self.vmas[index].start = end;
                self.vmas.insert(index, changed);
            }
            (false, false) => match (joins_previous, joins_next) {
                (true, true) => {
                    self.vmas[index - 1].end = self.vmas[index + 1].end;
                    self.vmas.drain(index..index + 2);
                }
                (true, false) => {
                    self.vmas[index - 1].end = end;
                    self.vmas.remove(index);
                }
                (false, true) => {
                    self.vmas[index + 1].start = start;
                    self.vmas.remove(index);
                }
                (false, false) => self.vmas[index] = changed,
            },
        }
        Ok(())
    }

    /// Splits the VMA containing `addr` (if any, and if `addr` is inside it) into two at `addr`.
    fn split_at(&mut self, addr: u64) -> Result<(), VmaError> {
        let index = self.first_ending_after(addr);
        let Some(&vma) = self.vmas.get(index) else { return Ok(()) };
        if vma.start >= addr {
            return Ok(());
        }
        self.reserve(1)?;
        self.vmas[index].end = addr;
        self.vmas.insert(index + 1, Vma { start: addr, ..vma });
        Ok(())
    }

    /// Merges the VMA at `index` with equal neighbours.
    fn merge_around(&mut self, index: usize) {
        if index + 1 < self.vmas.len() && mergeable(&self.vmas[index], &self.vmas[index + 1]) {
            self.vmas[index].end = self.vmas[index + 1].end;
            self.vmas.remove(index + 1);
        }
        if index > 0 && index < self.vmas.len() && mergeable(&self.vmas[index - 1], &self.vmas[index]) {
            self.vmas[index - 1].end = self.vmas[index].end;
            self.vmas.remove(index);
        }
    }

    /// The highest free, page-aligned `[a, a + len)` inside `[low, high)` that overlaps none of `forbidden`
    /// (half-open `(start, end)` pairs).
    pub fn find_free_top_down(&self, len: u64, low: u64, high: u64, forbidden: &[(u64, u64)]) -> Option<u64> {
        if len == 0 || !page_aligned(len) || low >= high {
            return None;
        }
        let upper = self.vmas.partition_point(|v| v.start < high);
        for index in (0..=upper).rev() {
            let gap_start = if index == 0 { low } else { self.vmas[index - 1].end.max(low) };
            let gap_end = if index < upper { self.vmas[index].start.min(high) } else { high };
            let mut end = gap_end;
            // Slide down past forbidden ranges; `end` strictly decreases, so this terminates.
            while end >= gap_start && end - gap_start >= len {
                let candidate = end - len;
                match forbidden.iter().filter(|(s, e)| *s < end && candidate < *e).map(|(s, _)| *s).min() {
                    None => return Some(candidate),
                    Some(blocked) => end = blocked & !(super::PAGE_SIZE - 1),
                }
            }
            if gap_start <= low {
                break;
            }
        }
        None
    }

    /// Checks the list's invariants: sorted, non-overlapping, non-empty, page-aligned, known permissions.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let mut previous_end = 0;
        for vma in &self.vmas {
            if !valid_range(vma.start, vma.end) {
                return Err("vma: empty or unaligned range");
            }
            if vma.start < previous_end {
                return Err("vma: overlapping or unsorted");
            }
            if vma.perms & !(PERM_READ | PERM_WRITE | PERM_EXEC) != 0 {
                return Err("vma: unknown permission bits");
            }
            previous_end = vma.end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: u64 = 4096;
    const RW: u32 = PERM_READ | PERM_WRITE;

    fn vma(start: u64, end: u64, perms: u32) -> Vma {
        Vma { start: start * P, end: end * P, perms, kind: VmaKind::Anonymous }
    }

    #[test]
    fn insert_merges_and_refuses_overlap() {
        let mut list = VmaList::new();
        list.insert(vma(10, 20, RW)).unwrap();
        list.insert(vma(20, 30, RW)).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list.insert(vma(25, 35, RW)), Err(VmaError::Overlap));
        list.insert(vma(5, 10, PERM_READ)).unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.covers(5 * P, 25 * P, PERM_READ));
        assert!(!list.covers(5 * P, 25 * P, PERM_WRITE));
        assert!(!list.covers(5 * P, 26 * P, PERM_READ));
        assert!(!list.covers(u64::MAX - 10, 20, 0));
        assert!(list.covers(0, 0, PERM_READ));
    }

    #[test]
    fn remove_and_protect_split() {
        let mut list = VmaList::new();
        list.insert(vma(10, 30, RW)).unwrap();
        list.remove(15 * P, 20 * P).unwrap();
        assert_eq!(list.iter().copied().collect::<Vec<_>>(), [vma(10, 15, RW), vma(20, 30, RW)]);
        assert_eq!(list.protect(12 * P, 22 * P, PERM_READ), Err(VmaError::NotMapped));
        list.protect(22 * P, 24 * P, PERM_READ).unwrap();
        assert_eq!(
            list.iter().copied().collect::<Vec<_>>(),
            [vma(10, 15, RW), vma(20, 22, RW), vma(22, 24, PERM_READ), vma(24, 30, RW)]
        );
        list.protect(22 * P, 24 * P, RW).unwrap();
        assert_eq!(list.iter().copied().collect::<Vec<_>>(), [vma(10, 15, RW), vma(20, 30, RW)]);
        list.check_invariants().unwrap();
    }

    #[test]
    fn find_free_goes_top_down() {
        let mut list = VmaList::new();
        list.insert(vma(90, 100, RW)).unwrap();
        assert_eq!(list.find_free_top_down(5 * P, 0, 100 * P, &[]), Some(85 * P));
        assert_eq!(list.find_free_top_down(5 * P, 0, 95 * P, &[]), Some(85 * P));
        assert_eq!(list.find_free_top_down(5 * P, 0, 120 * P, &[]), Some(115 * P));
        assert_eq!(list.find_free_top_down(5 * P, 0, 120 * P, &[(50 * P, 119 * P)]), Some(45 * P));
        assert_eq!(list.find_free_top_down(5 * P, 10 * P, 120 * P, &[(8 * P, 119 * P)]), None);
        assert_eq!(list.find_free_top_down(200 * P, 0, 120 * P, &[]), None);
    }

    #[test]
    fn backing_keeps_an_attachments_segment_pages_through_splits() {
        let base = 10 * P;
        let shm = VmaKind::SysvShm { base, may_write: true };
        let mut list = VmaList::new();
        list.insert(Vma { start: base, end: base + 8 * P, perms: RW, kind: shm }).unwrap();
        list.remove(base, base + 2 * P).unwrap();
        list.remove(base + 6 * P, base + 7 * P).unwrap();
        list.protect(base + 4 * P, base + 5 * P, PERM_READ).unwrap();
        assert_eq!(list.len(), 4);
        for page in [2, 3, 4, 5, 7] {
            let addr = base + page * P;
            let backing = list.find(addr).unwrap().backing(addr);
            assert_eq!(backing, Backing::Shared { id: SharedId::AFL_MAP, page }, "page {page}");
        }
        assert_eq!(vma(1, 2, RW).backing(P), Backing::Fresh);
        let file = Vma { kind: VmaKind::SharedFile { node: 3, base: 0, may_write: true }, ..vma(1, 2, RW) };
        assert_eq!(file.backing(P), Backing::Mapped, "a shared file mapping is mapped whole");
    }

    proptest! {
        #[test]
        fn random_operations_keep_invariants(ops in proptest::collection::vec((0u8..3, 0u64..64, 1u64..16, 0u32..8), 1..64)) {
            let mut list = VmaList::new();
            let mut model = [None::<u32>; 80];
            for (op, start, len, perms) in ops {
                let (s, e) = (start * P, (start + len) * P);
                match op {
                    0 => {
                        let free = model[start as usize..(start + len) as usize].iter().all(Option::is_none);
                        prop_assert_eq!(list.insert(Vma { start: s, end: e, perms, kind: VmaKind::Anonymous }).is_ok(), free);
                        if free { model[start as usize..(start + len) as usize].fill(Some(perms)); }
                    }
                    1 => {
                        list.remove(s, e).unwrap();
                        model[start as usize..(start + len) as usize].fill(None);
                    }
                    _ => {
                        let mapped = model[start as usize..(start + len) as usize].iter().all(Option::is_some);
                        prop_assert_eq!(list.protect(s, e, perms).is_ok(), mapped);
                        if mapped { model[start as usize..(start + len) as usize].fill(Some(perms)); }
                    }
                }
                list.check_invariants().unwrap();
                let all: Vec<Vma> = list.iter().copied().collect();
                for pair in all.windows(2) {
                    prop_assert!(!mergeable(&pair[0], &pair[1]), "equal neighbours left unmerged: {:?}", pair);
                }
                for (page, expected) in model.iter().enumerate() {
                    prop_assert_eq!(list.find(page as u64 * P).map(|v| v.perms), *expected);
                }
            }
        }
    }
}
