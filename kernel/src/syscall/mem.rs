//! Memory syscalls: brk, mmap, munmap, mprotect, mremap, madvise (SysV shared memory: `shm`).
//!
//! Every change goes VMA list first (so a failure leaves the machine untouched) or is rolled back, and
//! the machine is only ever asked to map, protect or unmap ranges the VMA list owns or that are free and
//! outside the reserved (kernel) ranges. Memory that becomes executable is mapped without execute first,
//! filled, inspected (`crate::inspect`), and only then made executable. Private file
//! mappings are copies; shared ones map the file's shared memory object (`crate::mm::shared`), which
//! `read()`/`write()` and `msync` keep in step with the file.

use alloc::vec;

use isolation::layout::{HIGHEST_ADDRESS, LOWEST_ADDRESS};
use kernel_abi::{PERM_EXEC, PERM_READ, PERM_WRITE};

use super::{Stop, SysResult, CHUNK, O_ACCMODE, O_PATH, O_RDWR, O_WRONLY};
use crate::errno::Errno;
use crate::fd::{fd_arg, FileKind};
use crate::fs::{Device, NodeId, NodeKind};
use crate::machine::Machine;
use crate::mm::{page_align_up, page_aligned, Vma, VmaKind, PAGE_SIZE};
use crate::process::Process;

pub use linux_raw_sys::general::{
    MADV_DONTNEED, MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE,
    MAP_TYPE, MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE, MS_ASYNC, MS_INVALIDATE, MS_SYNC, PROT_EXEC, PROT_READ,
    PROT_WRITE,
};

/// PROT_* to PERM_* (x86 cannot map write-only or execute-only: both imply read).
fn prot_to_perms(prot: u64) -> Result<u32, Errno> {
    if prot & !u64::from(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let mut perms = 0;
    if prot != 0 {
        perms |= PERM_READ;
    }
    if prot & u64::from(PROT_WRITE) != 0 {
        perms |= PERM_WRITE;
    }
    if prot & u64::from(PROT_EXEC) != 0 {
        perms |= PERM_EXEC;
    }
    Ok(perms)
}

pub(super) fn map_error(_: crate::machine::MapError) -> Errno {
    Errno::ENOMEM
}

/// Which pages of which file a shared mapping maps.
#[derive(Clone, Copy)]
struct SharedPages {
    node: NodeId,
    /// The file offset of the mapping's first byte.
    offset: u64,
    /// The file was opened for writing.
    may_write: bool,
}

/// What fills a fresh mapping.
#[derive(Clone, Copy)]
enum Fill {
    Zero,
    File { node: NodeId, offset: u64 },
}

impl Process {
    fn check_wx(&self, perms: u32) -> Result<(), Errno> {
        if self.enforce_wx && perms & PERM_WRITE != 0 && perms & PERM_EXEC != 0 {
            return Err(Errno::EACCES);
        }
        Ok(())
    }

    /// True when the app may have memory in `[start, end)`: inside the usable range, outside kernel ranges.
    pub(super) fn may_map(&self, start: u64, end: u64) -> bool {
        start >= LOWEST_ADDRESS
            && end <= HIGHEST_ADDRESS
            && start < end
            && !self.reserved.iter().any(|&(s, e)| s < end && start < e)
    }

    /// Maps the free range `[start, start + len)` with fresh frames, fills it, inspects it if executable.
    fn map_fresh<M: Machine>(
        &mut self,
        m: &mut M,
        start: u64,
        len: u64,
        perms: u32,
        kind: VmaKind,
        fill: Fill,
    ) -> Result<(), Errno> {
        let end = start + len;
        let staged = perms & PERM_EXEC != 0 || matches!(fill, Fill::File { .. });
        let initial = if staged { PERM_READ | PERM_WRITE } else { perms };
        self.vmas.insert(Vma { start, end, perms: initial, kind }).map_err(|_| Errno::ENOMEM)?;
        if let Err(e) = m.map_anonymous(start, len, initial) {
            let _ = self.vmas.remove(start, end);
            return Err(map_error(e));
        }
        let result = self.finish_fresh(m, start, len, perms, initial, fill);
        if result.is_err() {
            let _ = self.vmas.remove(start, end);
            m.unmap(start, len);
        }
        result
    }

    fn finish_fresh<M: Machine>(
        &mut self,
        m: &mut M,
        start: u64,
        len: u64,
        perms: u32,
        initial: u32,
        fill: Fill,
    ) -> Result<(), Errno> {
        if let Fill::File { node, offset } = fill {
            self.flush_shared(m, node, offset, len);
            let data = self.fs.file_bytes(node)?;
            let from = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
            let to = from.saturating_add(usize::try_from(len).unwrap_or(usize::MAX)).min(data.len());
            if from < to {
                m.write_user(&self.vmas, start, &data[from..to]).map_err(|_| Errno::EFAULT)?;
            }
        }
        if perms & PERM_EXEC != 0 {
            self.inspect_executable(m, start, len)?;
        }
        if initial != perms {
            self.vmas.protect(start, start + len, perms).map_err(|_| Errno::ENOMEM)?;
            m.protect(start, len, perms).map_err(map_error)?;
        }
        Ok(())
    }

    /// Unmaps whatever the app has in `[start, end)`; a file's shared object goes with its last mapping.
    pub(super) fn unmap_range<M: Machine>(&mut self, m: &mut M, start: u64, end: u64) -> Result<(), Errno> {
        let pieces: alloc::vec::Vec<Vma> = self.vmas.intersections(start, end).collect();
        self.vmas.remove(start, end).map_err(|_| Errno::ENOMEM)?;
        let mut shared_nodes = alloc::vec::Vec::new();
        for piece in pieces {
            m.unmap(piece.start, piece.len());
            if let VmaKind::SharedFile { node, .. } = piece.kind {
                shared_nodes.push(node);
            }
        }
        self.release_unmapped_shared(m, &shared_nodes);
        Ok(())
    }

    /// Maps file offset `offset` of `node` at the free range `[start, start + len)`, shared: the pages of
    /// the file's shared object, grown to cover them.
    fn map_shared_file<M: Machine>(
        &mut self,
        m: &mut M,
        start: u64,
        len: u64,
        perms: u32,
        pages: SharedPages,
    ) -> Result<(), Errno> {
        let SharedPages { node, offset, may_write } = pages;
        let first_page = offset / PAGE_SIZE;
        let pages = first_page.checked_add(len / PAGE_SIZE).ok_or(Errno::ENOMEM)?;
        let id = self.shared_object(m, node, pages)?;
        let kind = VmaKind::SharedFile { node, base: start.wrapping_sub(offset), may_write };
        let inserted = self.vmas.insert(Vma { start, end: start + len, perms, kind }).map_err(|_| Errno::ENOMEM);
        let mapped = inserted.and_then(|()| {
            m.map_shared(start, len, perms, id, first_page).map_err(map_error).inspect_err(|_| {
                let _ = self.vmas.remove(start, start + len);
            })
        });
        if mapped.is_err() {
            self.release_unmapped_shared(m, &[node]);
        }
        mapped
    }

    pub(crate) fn sys_brk<M: Machine>(&mut self, m: &mut M, addr: u64) -> SysResult {
        let span = self.layout.brk;
        if addr < span.start || addr > span.end() {
            return Ok(self.brk as i64);
        }
        let (Some(old_top), Some(new_top)) = (page_align_up(self.brk), page_align_up(addr)) else {
            return Ok(self.brk as i64);
        };
        if new_top > old_top {
            if !self.vmas.is_free(old_top, new_top)
                || self
                    .map_fresh(m, old_top, new_top - old_top, PERM_READ | PERM_WRITE, VmaKind::Heap, Fill::Zero)
                    .is_err()
            {
                return Ok(self.brk as i64);
            }
        } else if new_top < old_top && self.unmap_range(m, new_top, old_top).is_err() {
            return Ok(self.brk as i64);
        }
        self.brk = addr;
        Ok(addr as i64)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sys_mmap<M: Machine>(
        &mut self,
        m: &mut M,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        fd: u64,
        offset: u64,
    ) -> SysResult {
        let flags = flags as u32;
        if len == 0 || !page_aligned(offset) {
            return Err(Errno::EINVAL.into());
        }
        let len = page_align_up(len).filter(|&l| l <= HIGHEST_ADDRESS).ok_or(Errno::ENOMEM)?;
        let perms = prot_to_perms(prot)?;
        let shared = match flags & MAP_TYPE {
            MAP_SHARED | MAP_SHARED_VALIDATE => true,
            MAP_PRIVATE => false,
            _ => return Err(Errno::EINVAL.into()),
        };
        let mut fill = Fill::Zero;
        let mut kind = VmaKind::Anonymous;
        let mut shared_file = None;
        if flags & MAP_ANONYMOUS == 0 {
            let (_, file) = self.fds.get(fd_arg(fd))?;
            if file.flags & O_PATH != 0 {
                return Err(Errno::EBADF.into());
            }
            let FileKind::Node(node) = file.kind else { return Err(Errno::ENODEV.into()) };
            match self.fs.node(node).map(|n| &n.kind) {
                Some(NodeKind::File(_)) => {
                    if file.flags & O_ACCMODE == O_WRONLY {
                        return Err(Errno::EACCES.into());
                    }
                    let may_write = file.flags & O_ACCMODE == O_RDWR;
                    if shared && perms & PERM_WRITE != 0 && !may_write {
                        return Err(Errno::EACCES.into());
                    }
                    if shared {
                        // Its bytes can change after inspection (another mapping, write()): never code in mpk.
                        if self.enforce_wx && perms & PERM_EXEC != 0 {
                            return Err(Errno::EACCES.into());
                        }
                        shared_file = Some(SharedPages { node, offset, may_write });
                    } else {
                        fill = Fill::File { node, offset };
                        kind = VmaKind::File;
                    }
                }
                Some(NodeKind::Device(Device::Zero)) => {}
                _ => return Err(Errno::ENODEV.into()),
            }
        }
        self.check_wx(perms)?;
        let start = if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
            if !page_aligned(addr) {
                return Err(Errno::EINVAL.into());
            }
            let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
            if addr < LOWEST_ADDRESS {
                return Err(Errno::EPERM.into());
            }
            if !self.may_map(addr, end) {
                return Err(Errno::ENOMEM.into());
            }
            if flags & MAP_FIXED == 0 && !self.vmas.is_free(addr, end) {
                return Err(Errno::EEXIST.into());
            }
            self.unmap_range(m, addr, end)?;
            addr
        } else {
            let hint = addr & !(PAGE_SIZE - 1);
            match hint.checked_add(len) {
                Some(end) if hint != 0 && self.may_map(hint, end) && self.vmas.is_free(hint, end) => hint,
                _ => self.find_free(len)?,
            }
        };
        match shared_file {
            Some(pages) => self.map_shared_file(m, start, len, perms, pages)?,
            None => self.map_fresh(m, start, len, perms, kind, fill)?,
        }
        Ok(start as i64)
    }

    pub(super) fn find_free(&self, len: u64) -> Result<u64, Errno> {
        let span = self.layout.mmap;
        self.vmas.find_free_top_down(len, span.start, span.end(), &self.reserved).ok_or(Errno::ENOMEM)
    }

    pub(crate) fn sys_munmap<M: Machine>(&mut self, m: &mut M, addr: u64, len: u64) -> SysResult {
        if !page_aligned(addr) || len == 0 {
            return Err(Errno::EINVAL.into());
        }
        let end = page_align_up(len)
            .and_then(|l| addr.checked_add(l))
            .filter(|&e| e <= HIGHEST_ADDRESS)
            .ok_or(Errno::EINVAL)?;
        self.unmap_range(m, addr, end)?;
        Ok(0)
    }

    pub(crate) fn sys_mprotect<M: Machine>(&mut self, m: &mut M, addr: u64, len: u64, prot: u64) -> SysResult {
        if !page_aligned(addr) {
            return Err(Errno::EINVAL.into());
        }
        let perms = prot_to_perms(prot)?;
        if len == 0 {
            return Ok(0);
        }
        let len = page_align_up(len).ok_or(Errno::ENOMEM)?;
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        if !self.vmas.covers(addr, len, 0) {
            return Err(Errno::ENOMEM.into());
        }
        self.check_wx(perms)?;
        for piece in self.vmas.intersections(addr, end) {
            // Shared memory others can change is never code in mpk; the SysV segment never is.
            let (may_write, may_exec) = match piece.kind {
                VmaKind::SharedFile { may_write, .. } => (may_write, !self.enforce_wx),
                VmaKind::SysvShm { may_write, .. } => (may_write, false),
                _ => continue,
            };
            if (perms & PERM_EXEC != 0 && !may_exec) || (perms & PERM_WRITE != 0 && !may_write) {
                return Err(Errno::EACCES.into());
            }
        }
        let gains_exec = perms & PERM_EXEC != 0 && self.vmas.intersections(addr, end).any(|p| p.perms & PERM_EXEC == 0);
        if gains_exec {
            self.inspect_executable(m, addr, len)?;
        }
        // The machine first (a failed `protect` changes nothing), then the list, which has room for its
        // splits reserved and so cannot fail: no copy of the old permissions is needed to roll back.
        self.vmas.reserve_for_split().map_err(|_| Errno::ENOMEM)?;
        m.protect(addr, len, perms).map_err(map_error)?;
        if self.vmas.protect(addr, end, perms).is_err() {
            // Unreachable after the reservation; should it happen, put the machine back in step with the list.
            for piece in self.vmas.intersections(addr, end) {
                let _ = m.protect(piece.start, piece.len(), piece.perms);
            }
            return Err(Errno::ENOMEM.into());
        }
        Ok(0)
    }

    pub(crate) fn sys_mremap<M: Machine>(
        &mut self,
        m: &mut M,
        old: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> SysResult {
        // Linux takes unsigned long flags: bits beyond the known ones are invalid, the high half too.
        let flags = u32::try_from(flags).map_err(|_| Errno::EINVAL)?;
        if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0
            || flags & MREMAP_DONTUNMAP != 0
            || (flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0)
            || !page_aligned(old)
        {
            return Err(Errno::EINVAL.into());
        }
        let old_len = page_align_up(old_len).ok_or(Errno::EINVAL)?;
        let new_len = page_align_up(new_len).filter(|&l| l > 0 && l <= HIGHEST_ADDRESS).ok_or(Errno::EINVAL)?;
        if old_len == 0 {
            return Err(Errno::EINVAL.into());
        }
        let old_end = old.checked_add(old_len).ok_or(Errno::EFAULT)?;
        let vma = *self.vmas.find(old).filter(|v| v.end >= old_end).ok_or(Errno::EFAULT)?;
        if let VmaKind::SysvShm { .. } = vma.kind {
            return Err(Errno::EINVAL.into()); // see `crate::syscall::shm`
        }
        if let VmaKind::SharedFile { node, base, may_write } = vma.kind {
            let pages = SharedPages { node, offset: old.wrapping_sub(base), may_write };
            return self.remap_shared_file(m, (old, old_len), new_len, flags, new_addr, (vma.perms, pages));
        }
        if flags & MREMAP_FIXED != 0 {
            let new_end = new_addr.checked_add(new_len).ok_or(Errno::EINVAL)?;
            if !page_aligned(new_addr) || (new_addr < old_end && old < new_end) || !self.may_map(new_addr, new_end) {
                return Err(Errno::EINVAL.into());
            }
            self.unmap_range(m, new_addr, new_end)?;
            self.move_mapping(m, &vma, old, old_len, new_addr, new_len)?;
            return Ok(new_addr as i64);
        }
        if new_len <= old_len {
            self.unmap_range(m, old + new_len, old_end)?;
            return Ok(old as i64);
        }
        let grown_end = old.checked_add(new_len).ok_or(Errno::ENOMEM)?;
        if self.may_map(old_end, grown_end) && self.vmas.is_free(old_end, grown_end) {
            self.map_fresh(m, old_end, grown_end - old_end, vma.perms, vma.kind, Fill::Zero)?;
            return Ok(old as i64);
        }
        if flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::ENOMEM.into());
        }
        let target = self.find_free(new_len)?;
        self.move_mapping(m, &vma, old, old_len, target, new_len)?;
        Ok(target as i64)
    }

    /// mremap of a shared file mapping: the new range maps the same file pages (no copy), the old one goes.
    fn remap_shared_file<M: Machine>(
        &mut self,
        m: &mut M,
        (old, old_len): (u64, u64),
        new_len: u64,
        flags: u32,
        new_addr: u64,
        (perms, pages): (u32, SharedPages),
    ) -> SysResult {
        let old_end = old + old_len;
        let target = if flags & MREMAP_FIXED != 0 {
            let new_end = new_addr.checked_add(new_len).ok_or(Errno::EINVAL)?;
            if !page_aligned(new_addr) || (new_addr < old_end && old < new_end) || !self.may_map(new_addr, new_end) {
                return Err(Errno::EINVAL.into());
            }
            self.unmap_range(m, new_addr, new_end)?;
            new_addr
        } else if new_len <= old_len {
            self.unmap_range(m, old + new_len, old_end)?;
            return Ok(old as i64);
        } else {
            let grown_end = old.checked_add(new_len).ok_or(Errno::ENOMEM)?;
            if self.may_map(old_end, grown_end) && self.vmas.is_free(old_end, grown_end) {
                let tail = SharedPages { offset: pages.offset + old_len, ..pages };
                self.map_shared_file(m, old_end, grown_end - old_end, perms, tail)?;
                return Ok(old as i64);
            }
            if flags & MREMAP_MAYMOVE == 0 {
                return Err(Errno::ENOMEM.into());
            }
            self.find_free(new_len)?
        };
        self.map_shared_file(m, target, new_len, perms, pages)?;
        self.unmap_range(m, old, old_end)?;
        Ok(target as i64)
    }

    /// Copies `[old, old + old_len)` to a fresh mapping at `new` (zero-extended to `new_len`) with the same
    /// permissions, then unmaps the old range.
    fn move_mapping<M: Machine>(
        &mut self,
        m: &mut M,
        vma: &Vma,
        old: u64,
        old_len: u64,
        new: u64,
        new_len: u64,
    ) -> Result<(), Errno> {
        self.map_fresh(m, new, new_len, PERM_READ | PERM_WRITE, vma.kind, Fill::Zero)?;
        let copy_len = old_len.min(new_len);
        let mut bounce = vec![0u8; CHUNK];
        let mut done = 0;
        while done < copy_len {
            let n = (copy_len - done).min(CHUNK as u64) as usize;
            let copied = m
                .read_user(&self.vmas, old + done, &mut bounce[..n])
                .and_then(|_| m.write_user(&self.vmas, new + done, &bounce[..n]));
            if copied.is_err() {
                let _ = self.unmap_range(m, new, new + new_len);
                return Err(Errno::EFAULT);
            }
            done += n as u64;
        }
        if vma.perms != PERM_READ | PERM_WRITE {
            let staged = self.finish_fresh(m, new, new_len, vma.perms, PERM_READ | PERM_WRITE, Fill::Zero);
            if let Err(e) = staged {
                let _ = self.unmap_range(m, new, new + new_len);
                return Err(e);
            }
        }
        self.unmap_range(m, old, old + old_len)
    }

    pub(crate) fn sys_madvise<M: Machine>(&mut self, m: &mut M, addr: u64, len: u64, advice: u64) -> SysResult {
        if !page_aligned(addr) {
            return Err(Errno::EINVAL.into());
        }
        let known = matches!(advice, 0..=4 | 8..=23 | 100 | 101);
        if !known {
            return Err(Errno::EINVAL.into());
        }
        if len == 0 {
            return Ok(0);
        }
        let len = page_align_up(len).ok_or(Errno::EINVAL)?;
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        if !self.vmas.covers(addr, len, 0) {
            return Err(Errno::ENOMEM.into());
        }
        if advice as u32 == MADV_DONTNEED {
            // Fresh zero pages, as Linux gives anonymous private memory (file copies are zeroed too).
            // A shared mapping's pages are its file's or segment's: dropping them changes nothing the app sees.
            let pieces: alloc::vec::Vec<Vma> = self
                .vmas
                .intersections(addr, end)
                .filter(|p| !matches!(p.kind, VmaKind::SharedFile { .. } | VmaKind::SysvShm { .. }))
                .collect();
            for piece in pieces {
                m.unmap(piece.start, piece.len());
                if m.map_anonymous(piece.start, piece.len(), piece.perms).is_err() {
                    let _ = self.vmas.remove(piece.start, piece.end);
                    return Err(Stop::Errno(Errno::ENOMEM));
                }
            }
        }
        Ok(0)
    }

    /// Writes the shared file mappings in `[addr, addr + len)` back to their files. The in-memory file
    /// system has no storage below it, so MS_ASYNC and MS_SYNC do the same; MS_INVALIDATE has nothing to
    /// drop (every mapping of a file maps the same pages).
    pub(crate) fn sys_msync<M: Machine>(&mut self, m: &mut M, addr: u64, len: u64, flags: u64) -> SysResult {
        let flags = flags as u32;
        if !page_aligned(addr)
            || flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0
            || flags & (MS_ASYNC | MS_SYNC) == MS_ASYNC | MS_SYNC
        {
            return Err(Errno::EINVAL.into());
        }
        let len = page_align_up(len).ok_or(Errno::ENOMEM)?;
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        if len == 0 {
            return Ok(0);
        }
        if !self.vmas.covers(addr, len, 0) {
            return Err(Errno::ENOMEM.into());
        }
        let pieces: alloc::vec::Vec<Vma> = self.vmas.intersections(addr, end).collect();
        for piece in pieces {
            if let VmaKind::SharedFile { node, base, .. } = piece.kind {
                self.flush_shared(m, node, piece.start.wrapping_sub(base), piece.len());
            }
        }
        Ok(0)
    }
}
