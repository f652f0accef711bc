//! Files mapped `MAP_SHARED`: one shared memory object per file, whose frames every shared mapping of the
//! file maps (so a store through one mapping is seen through every other at once), kept in step with
//! the file system's copy of the file at the syscalls that read or change it.
//!
//! The object holds the file's pages from the first one up to the last page any shared mapping covers,
//! and for that range it is the newest copy: stores through mappings land in it directly.
//! - Before the kernel reads file data (`read`, `pread`, `readv`, a private mapping's fill) it copies the
//!   object's bytes of the range it reads into the file system (`Process::flush_shared`); `msync` and
//!   the last unmap flush the whole file.
//! - After the kernel changes file data (`write`, `pwrite`, `writev`, `truncate`, `O_TRUNC`) it copies
//!   the changed range into the object (`Process::refresh_shared`); bytes past the end of the file read
//!   as zero, as Linux's page cache shows them after a truncate.
//!
//! The object lives while a shared mapping of the file exists, and holds a reference to the file's node
//! (an unlinked file stays readable through its mapping). A shared file mapping is never executable in
//! `mpk` mode: another mapping or a `write()` could change its bytes after inspection.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;

use crate::errno::Errno;
use crate::fs::NodeId;
use crate::machine::{Machine, SharedId};
use crate::mm::{VmaKind, PAGE_SIZE};
use crate::process::Process;

/// Bytes moved between the object and the file system per step.
const CHUNK: usize = 16 * 1024;

/// The shared memory object of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedFile {
    pub id: SharedId,
    /// Pages the object has: the file's pages `0..pages`.
    pub pages: u64,
}

/// The files that have a shared memory object.
#[derive(Clone, Debug, Default)]
pub struct SharedFiles {
    files: BTreeMap<NodeId, SharedFile>,
    next_id: u32,
}

impl SharedFiles {
    pub fn get(&self, node: NodeId) -> Option<SharedFile> {
        self.files.get(&node).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (NodeId, SharedFile)> + '_ {
        self.files.iter().map(|(&node, &file)| (node, file))
    }
}

/// The part of `[offset, offset + len)` inside the first `limit` bytes, as (start, length).
fn clip(offset: u64, len: u64, limit: u64) -> Option<(u64, usize)> {
    let end = offset.saturating_add(len).min(limit);
    (offset < end).then(|| (offset, usize::try_from(end - offset).unwrap_or(usize::MAX)))
}

impl Process {
    /// The object of `node`, created (taking a reference to the node) or grown to cover the file's pages
    /// `0..pages`; new pages are filled from the file.
    pub(crate) fn shared_object<M: Machine>(&mut self, m: &mut M, node: NodeId, pages: u64) -> Result<SharedId, Errno> {
        let existing = self.shared_files.get(node);
        let (id, old_pages) = match existing {
            Some(file) => (file.id, file.pages),
            None => {
                let id = SharedId(self.shared_files.next_id);
                if id == SharedId::AFL_MAP {
                    return Err(Errno::ENOMEM); // every other id is taken
                }
                self.shared_files.next_id += 1;
                (id, 0)
            }
        };
        if pages <= old_pages {
            return Ok(id);
        }
        if m.shared_grow(id, pages).is_err() {
            if existing.is_none() {
                m.shared_destroy(id);
            }
            return Err(Errno::ENOMEM);
        }
        if existing.is_none() {
            self.fs.acquire(node);
        }
        self.shared_files.files.insert(node, SharedFile { id, pages });
        let grown = old_pages * PAGE_SIZE;
        self.copy_file_to_object(m, node, id, grown, (pages - old_pages) * PAGE_SIZE);
        Ok(id)
    }

    /// Copies the file's bytes `[offset, offset + len)` into object `id` (zeros past the end of the file).
    fn copy_file_to_object<M: Machine>(&mut self, m: &mut M, node: NodeId, id: SharedId, offset: u64, len: u64) {
        let mut chunk = [0u8; CHUNK];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(CHUNK as u64) as usize;
            let read = self.fs.read_file(node, offset + done, &mut chunk[..n]).unwrap_or(0);
            chunk[read..n].fill(0);
            m.shared_write(id, offset + done, &chunk[..n]);
            done += n as u64;
        }
    }

    /// Before the kernel reads `[offset, offset + len)` of `node`'s data: the object's bytes of that range
    /// (stores through shared mappings) go into the file system first.
    pub(crate) fn flush_shared<M: Machine>(&mut self, m: &mut M, node: NodeId, offset: u64, len: u64) {
        let Some(file) = self.shared_files.get(node) else { return };
        let file_len = self.fs.file_bytes(node).map_or(0, |data| data.len() as u64);
        let Some((start, len)) = clip(offset, len, file_len.min(file.pages * PAGE_SIZE)) else { return };
        let mut chunk = [0u8; CHUNK];
        let mut done = 0usize;
        while done < len {
            let n = (len - done).min(CHUNK);
            let at = start + done as u64;
            m.shared_read(file.id, at, &mut chunk[..n]);
            self.fs.store(node, at, &chunk[..n]);
            done += n;
        }
    }

    /// After the kernel changed `[offset, offset + len)` of `node`'s data (or its length, over that range):
    /// the object's copy of that range follows.
    pub(crate) fn refresh_shared<M: Machine>(&mut self, m: &mut M, node: NodeId, offset: u64, len: u64) {
        let Some(file) = self.shared_files.get(node) else { return };
        if let Some((start, len)) = clip(offset, len, file.pages * PAGE_SIZE) {
            self.copy_file_to_object(m, node, file.id, start, len as u64);
        }
    }

    /// Frees the object of every node in `nodes` that no shared mapping maps any more, after flushing its
    /// pages into the file.
    pub(crate) fn release_unmapped_shared<M: Machine>(&mut self, m: &mut M, nodes: &[NodeId]) {
        for &node in nodes {
            let still_mapped = self
                .vmas
                .iter()
                .any(|vma| matches!(vma.kind, VmaKind::SharedFile { node: other, .. } if other == node));
            if still_mapped || self.node_mapped_elsewhere(node) {
                continue;
            }
            let Some(file) = self.shared_files.get(node) else { continue };
            self.flush_shared(m, node, 0, file.pages * PAGE_SIZE);
            m.shared_destroy(file.id);
            self.shared_files.files.remove(&node);
            self.fs.release(node);
        }
    }

    /// Every shared-file VMA lies inside its file's object, every SysV attachment inside the segment (for
    /// the invariant checks).
    pub(crate) fn check_shared_invariants(&self) -> Result<(), &'static str> {
        for vma in self.vmas.iter() {
            if let VmaKind::SysvShm { base, .. } = vma.kind {
                let size = self.afl_map.map_or(0, |segment| segment.size());
                if vma.start < base || vma.end - base > size {
                    return Err("kernel: SysV attachment outside the segment");
                }
                continue;
            }
            let VmaKind::SharedFile { node, base, .. } = vma.kind else { continue };
            let file = self.shared_files.get(node).ok_or("kernel: shared mapping of a file without an object")?;
            let end_offset = vma.end.wrapping_sub(base);
            if vma.start.wrapping_sub(base) > end_offset || end_offset > file.pages * PAGE_SIZE {
                return Err("kernel: shared mapping outside its file's object");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clip_keeps_the_part_below_the_limit() {
        assert_eq!(clip(0, 10, 100), Some((0, 10)));
        assert_eq!(clip(95, 10, 100), Some((95, 5)));
        assert_eq!(clip(100, 10, 100), None);
        assert_eq!(clip(5, 0, 100), None);
        assert_eq!(clip(u64::MAX - 1, 10, u64::MAX), Some((u64::MAX - 1, 1)));
    }
}
