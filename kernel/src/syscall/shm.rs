//! SysV shared memory: shmget, shmat, shmdt, shmctl, over the one segment there is, the VMM's (the
//! `--afl` coverage map, `kernel_abi::afl`). AFL++'s instrumentation finds it by id
//! (`shmat(atoi(getenv("__AFL_SHM_ID")), NULL, 0)`) and writes its coverage into it.
//!
//! - `shmget`: no key names a segment (ENOENT) and none can be created (ENOSPC; EINVAL for size 0, as
//!   Linux checks that first): the one segment is known by its id only.
//! - `shmat(id, addr, flags)`: only the segment's id is valid (EINVAL otherwise). Linux's address rules
//!   (`SHMLBA` is a page on x86-64): a NULL `addr` takes free space of the mmap area as mmap does; an
//!   unaligned one is rounded down with `SHM_RND`, else EINVAL; a given range that is in use is EINVAL
//!   unless `SHM_REMAP` replaces what is there (`SHM_REMAP` without an address is EINVAL). The whole
//!   segment is mapped, shared (its frames are the VMM's, whatever the app does), read-write or, with
//!   `SHM_RDONLY`, read-only for good (`mprotect` to writable is EACCES). It is never executable:
//!   `SHM_EXEC` is EINVAL and `mprotect` to executable EACCES. The arch machine maps an attachment's
//!   pages on first touch (the app's, or a kernel copy's), as it backs anonymous memory, but with the
//!   segment's frames ([`crate::mm::Vma::backing`]).
//! - `shmdt(addr)`: unmaps every part still mapped of the attachment that starts at `addr` (EINVAL if
//!   none does). `munmap`, `mprotect` and `madvise` apply to an attachment as to any shared mapping;
//!   `mremap` of one is EINVAL (Linux would move it).
//! - `shmctl(id, cmd, buf)`: `IPC_STAT` of the segment fills `struct shmid_ds` (size, mode 0600, the
//!   number of mappings; key, owner, pids and times 0); `IPC_RMID` succeeds and changes nothing (the
//!   segment is the VMM's, and lives as long as the run); every other command is EINVAL.
#![forbid(unsafe_code)]

use isolation::layout::LOWEST_ADDRESS;
use kernel_abi::{PERM_READ, PERM_WRITE};

use super::{int_arg, SysResult};
use crate::errno::Errno;
use crate::machine::{Machine, SharedId};
use crate::mm::{page_aligned, Vma, VmaKind, PAGE_SIZE};
use crate::process::Process;
use crate::user;

/// The key that always creates a new segment (linux/ipc.h, which linux-raw-sys does not carry).
pub const IPC_PRIVATE: i32 = 0;
pub const IPC_CREAT: u32 = 0o1000;
/// `shmctl` commands.
pub const IPC_RMID: i32 = 0;
pub const IPC_STAT: i32 = 2;
/// `shmat` flags (linux/shm.h).
pub const SHM_RDONLY: u32 = 0o10000;
pub const SHM_RND: u32 = 0o20000;
pub const SHM_REMAP: u32 = 0o40000;
pub const SHM_EXEC: u32 = 0o100000;

/// Bytes of x86-64's `struct shmid_ds` (`struct shmid64_ds`).
const SHMID_DS_SIZE: usize = 112;
/// What `IPC_STAT` reports as the segment's permissions (what AFL++ creates it with).
const SEGMENT_MODE: u32 = 0o600;

/// A SysV shared-memory segment the VMM provides: id `id`, `pages` pages, whose frames are the machine's
/// shared object [`SharedId::AFL_MAP`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmSegment {
    id: i32,
    pages: u64,
}

impl ShmSegment {
    /// The segment of id `id` (a valid shmid: not negative) and `size` bytes (whole pages, at least one,
    /// that fit the address space), if it is one.
    pub fn new(id: u64, size: u64) -> Option<Self> {
        let id = i32::try_from(id).ok()?;
        let fits = size > 0 && page_aligned(size) && size <= isolation::layout::HIGHEST_ADDRESS;
        fits.then_some(Self { id, pages: size / PAGE_SIZE })
    }

    pub fn id(&self) -> i32 {
        self.id
    }

    pub fn size(&self) -> u64 {
        self.pages * PAGE_SIZE
    }
}

impl Process {
    /// The segment named by the raw `id` argument.
    fn shm_segment(&self, id: u64) -> Result<ShmSegment, Errno> {
        self.afl_map.filter(|segment| segment.id == int_arg(id)).ok_or(Errno::EINVAL)
    }

    pub(crate) fn sys_shmget(&mut self, key: u64, size: u64, flags: u64) -> SysResult {
        if int_arg(key) != IPC_PRIVATE && flags as u32 & IPC_CREAT == 0 {
            return Err(Errno::ENOENT.into());
        }
        if size == 0 {
            return Err(Errno::EINVAL.into());
        }
        Err(Errno::ENOSPC.into())
    }

    pub(crate) fn sys_shmat<M: Machine>(&mut self, m: &mut M, id: u64, addr: u64, flags: u64) -> SysResult {
        let flags = flags as u32;
        let mut start = addr;
        if addr != 0 && !page_aligned(addr) {
            if flags & SHM_RND == 0 {
                return Err(Errno::EINVAL.into());
            }
            start = addr & !(PAGE_SIZE - 1);
            if start == 0 && flags & SHM_REMAP != 0 {
                return Err(Errno::EINVAL.into());
            }
        } else if addr == 0 && flags & SHM_REMAP != 0 {
            return Err(Errno::EINVAL.into());
        }
        let segment = self.shm_segment(id)?;
        if flags & SHM_EXEC != 0 {
            return Err(Errno::EINVAL.into());
        }
        let len = segment.size();
        let start = if addr != 0 {
            let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
            if flags & SHM_REMAP == 0 && !self.vmas.is_free(start, end) {
                return Err(Errno::EINVAL.into());
            }
            if start < LOWEST_ADDRESS {
                return Err(Errno::EPERM.into());
            }
            if !self.may_map(start, end) {
                return Err(Errno::ENOMEM.into());
            }
            if flags & SHM_REMAP != 0 {
                self.unmap_range(m, start, end)?;
            }
            start
        } else {
            self.find_free(len)?
        };
        let may_write = flags & SHM_RDONLY == 0;
        let perms = if may_write { PERM_READ | PERM_WRITE } else { PERM_READ };
        let end = start + len;
        let kind = VmaKind::SysvShm { base: start, may_write };
        self.vmas.insert(Vma { start, end, perms, kind }).map_err(|_| Errno::ENOMEM)?;
        // On first touch, where the machine can: where kernel code is emulated, mapping AFL++'s default 8 MiB
        // at once costs about 200 ms, each execution, of which the app touches a page or two.
        if let Err(error) = m.map_shared_on_touch(start, len, perms, SharedId::AFL_MAP, 0) {
            let _ = self.vmas.remove(start, end);
            return Err(super::mem::map_error(error).into());
        }
        Ok(start as i64)
    }

    pub(crate) fn sys_shmdt<M: Machine>(&mut self, m: &mut M, addr: u64) -> SysResult {
        let Some(segment) = self.afl_map.filter(|_| page_aligned(addr)) else { return Err(Errno::EINVAL.into()) };
        let end = addr.saturating_add(segment.size());
        let pieces: alloc::vec::Vec<Vma> = self
            .vmas
            .intersections(addr, end)
            .filter(|piece| matches!(piece.kind, VmaKind::SysvShm { base, .. } if base == addr))
            .collect();
        if pieces.is_empty() {
            return Err(Errno::EINVAL.into());
        }
        for piece in pieces {
            self.unmap_range(m, piece.start, piece.end)?;
        }
        Ok(0)
    }

    pub(crate) fn sys_shmctl<M: Machine>(&mut self, m: &mut M, id: u64, cmd: u64, buf: u64) -> SysResult {
        let segment = self.shm_segment(id)?;
        match int_arg(cmd) {
            IPC_STAT => {
                let mut raw = [0u8; SHMID_DS_SIZE];
                raw[20..24].copy_from_slice(&SEGMENT_MODE.to_le_bytes());
                raw[48..56].copy_from_slice(&segment.size().to_le_bytes());
                let mappings = self.vmas.iter().filter(|vma| matches!(vma.kind, VmaKind::SysvShm { .. })).count();
                raw[88..96].copy_from_slice(&(mappings as u64).to_le_bytes());
                user::write(&self.vmas, m, buf, &raw)?;
                Ok(0)
            }
            IPC_RMID => Ok(0),
            _ => Err(Errno::EINVAL.into()),
        }
    }
}
