//! Syscall tests: SysV shared memory over the `--afl` coverage map (shmget, shmat, shmdt, shmctl).

use super::*;
use crate::machine::SharedId;
use crate::mm::{Backing, VmaKind};
use crate::syscall::shm::{IPC_CREAT, IPC_RMID, IPC_STAT, SHM_EXEC, SHM_RDONLY, SHM_REMAP, SHM_RND};
use crate::ShmSegment;

const SHM_ID: u64 = 42;
const MAP_PAGES: usize = 2;
const MAP_SIZE: u64 = MAP_PAGES as u64 * 4096;

/// A harness whose machine has a coverage map of [`MAP_PAGES`] pages under id [`SHM_ID`].
fn with_map() -> Harness {
    let mut h = Harness::with(|c| c.afl_map = ShmSegment::new(SHM_ID, MAP_SIZE));
    h.m.add_fixed_object(SharedId::AFL_MAP, MAP_PAGES);
    h
}

/// Byte `offset` of the coverage map, as the VMM sees it.
fn map_byte(h: &Harness, offset: usize) -> u8 {
    h.m.shared[&SharedId::AFL_MAP][offset / 4096][offset % 4096]
}

#[test]
fn shmat_maps_the_coverage_map_and_shmdt_unmaps_it() {
    let mut h = with_map();
    let a = h.call(SHMAT, &[SHM_ID, 0, 0]) as u64;
    assert!(a >= MMAP_START && a + MAP_SIZE <= MMAP_START + MMAP_LEN && a.is_multiple_of(4096), "{a:#x}");
    let vma = *h.k.vmas().find(a).unwrap();
    assert_eq!((vma.start, vma.end, vma.perms), (a, a + MAP_SIZE, PERM_READ | PERM_WRITE));
    assert_eq!(vma.kind, VmaKind::SysvShm { base: a, may_write: true });
    // The app's stores land in the map's frames, and the VMM's in the app's view.
    h.m.poke(a + 5, &[7]).unwrap();
    h.m.poke(a + 4096 + 1, &[8]).unwrap();
    assert_eq!((map_byte(&h, 5), map_byte(&h, 4097)), (7, 8));
    h.m.shared.get_mut(&SharedId::AFL_MAP).unwrap()[1][9] = 9;
    assert_eq!(h.read(a + 4096 + 9, 1), [9]);
    // So do the kernel's copies into it (read() from stdin).
    assert_eq!(h.call(READ, &[0, a + 100, 5]), 5);
    assert_eq!((100..105).map(|i| map_byte(&h, i)).collect::<Vec<_>>(), b"input");
    // A second attachment maps the same frames elsewhere.
    let b = h.call(SHMAT, &[SHM_ID, 0, 0]) as u64;
    assert_ne!(a, b);
    assert_eq!(h.read(b + 5, 1), [7]);
    // IPC_STAT: size, mode, one mapping per attachment.
    let ds = h.buf(112);
    assert_eq!(h.call(SHMCTL, &[SHM_ID, IPC_STAT as u64, ds]), 0);
    assert_eq!(h.u64_at(ds + 48), MAP_SIZE, "shm_segsz");
    assert_eq!(h.read(ds + 20, 4), 0o600u32.to_le_bytes(), "shm_perm.mode");
    assert_eq!(h.u64_at(ds + 88), 2, "shm_nattch");
    // IPC_RMID: accepted, changes nothing.
    assert_eq!(h.call(SHMCTL, &[SHM_ID, IPC_RMID as u64, 0]), 0);
    assert_eq!(h.read(b + 5, 1), [7]);
    // shmdt takes an attachment's start only.
    assert_eq!(h.err(SHMDT, &[a + 4096]), Errno::EINVAL);
    assert_eq!(h.err(SHMDT, &[a + 1]), Errno::EINVAL);
    assert_eq!(h.call(SHMDT, &[a]), 0);
    assert_eq!(h.m.perms_at(a), None);
    assert!(h.k.vmas().find(a).is_none());
    assert_eq!(h.err(SHMDT, &[a]), Errno::EINVAL, "detached already");
    assert_eq!(h.read(b + 4096 + 1, 1), [8], "the other attachment stays");
    // A fragment (its first page unmapped) still detaches by the attachment's start.
    assert_eq!(h.call(MUNMAP, &[b, 4096]), 0);
    assert_eq!(h.call(SHMDT, &[b]), 0);
    assert_eq!(h.m.perms_at(b + 4096), None);
    assert_eq!(map_byte(&h, 5), 7, "the frames are never freed");
    assert_eq!(h.call(SHMCTL, &[SHM_ID, IPC_STAT as u64, ds]), 0);
    assert_eq!(h.u64_at(ds + 88), 0);
}

#[test]
fn shm_calls_check_their_arguments() {
    let mut h = with_map();
    assert_eq!(h.err(SHMAT, &[SHM_ID + 1, 0, 0]), Errno::EINVAL, "another id");
    assert_eq!(h.err(SHMAT, &[u64::MAX, 0, 0]), Errno::EINVAL, "a negative id");
    assert_eq!(h.err(SHMAT, &[SHM_ID, 0, u64::from(SHM_EXEC)]), Errno::EINVAL, "never executable");
    assert_eq!(h.err(SHMAT, &[SHM_ID, 0, u64::from(SHM_REMAP)]), Errno::EINVAL, "SHM_REMAP needs an address");
    // A given address: page-aligned, or rounded down with SHM_RND; never over a mapping unless SHM_REMAP.
    let fixed = MMAP_START + 0x10_0000;
    assert_eq!(h.err(SHMAT, &[SHM_ID, fixed + 10, 0]), Errno::EINVAL);
    assert_eq!(h.call(SHMAT, &[SHM_ID, fixed + 10, u64::from(SHM_RND)]) as u64, fixed);
    assert_eq!(h.err(SHMAT, &[SHM_ID, fixed + 4096, 0]), Errno::EINVAL, "overlaps the attachment");
    let other = h.call(MMAP, &[fixed + MAP_SIZE, 4096, 3, 0x32, u64::MAX, 0]) as u64;
    h.m.poke(other, b"old").unwrap();
    assert_eq!(h.call(SHMAT, &[SHM_ID, other, u64::from(SHM_REMAP)]) as u64, other, "replaces the mapping");
    assert_eq!(h.read(other, 3), [0; 3]);
    assert_eq!(h.k.vmas().find(other).map(|v| v.kind), Some(VmaKind::SysvShm { base: other, may_write: true }));
    assert_eq!(h.err(SHMAT, &[SHM_ID, 0x1000, 0]), Errno::EPERM, "below the lowest address");
    assert_eq!(h.err(SHMAT, &[SHM_ID, 10, u64::from(SHM_RND | SHM_REMAP)]), Errno::EINVAL, "rounded to NULL");
    assert_eq!(h.err(SHMAT, &[SHM_ID, KERNEL_ADDR & !4095, 0]), Errno::ENOMEM, "the kernel's range");
    // shmget finds and creates nothing.
    assert_eq!(h.err(SHMGET, &[0x1234, 4096, 0o600]), Errno::ENOENT);
    assert_eq!(h.err(SHMGET, &[0, 4096, u64::from(IPC_CREAT) | 0o600]), Errno::ENOSPC, "IPC_PRIVATE");
    assert_eq!(h.err(SHMGET, &[0x1234, 0, u64::from(IPC_CREAT)]), Errno::EINVAL, "size 0");
    // shmctl: the segment's id, IPC_STAT and IPC_RMID only, a writable buffer.
    let ds = h.buf(112);
    assert_eq!(h.err(SHMCTL, &[SHM_ID + 1, IPC_STAT as u64, ds]), Errno::EINVAL);
    assert_eq!(h.err(SHMCTL, &[SHM_ID, 1, 0]), Errno::EINVAL, "IPC_SET");
    assert_eq!(h.err(SHMCTL, &[SHM_ID, 14, 0]), Errno::EINVAL, "SHM_INFO");
    assert_eq!(h.err(SHMCTL, &[SHM_ID, IPC_STAT as u64, KERNEL_ADDR]), Errno::EFAULT);
    assert_eq!(h.err(SHMDT, &[SCRATCH]), Errno::EINVAL, "not an attachment");
    // Without a coverage map there is no segment at all.
    let mut plain = Harness::new();
    assert_eq!(plain.err(SHMAT, &[0, 0, 0]), Errno::EINVAL);
    assert_eq!(plain.err(SHMCTL, &[0, IPC_STAT as u64, SCRATCH]), Errno::EINVAL);
    assert_eq!(plain.err(SHMDT, &[MMAP_START]), Errno::EINVAL);
}

#[test]
fn shm_attachments_follow_rdonly_mprotect_madvise_and_mremap() {
    let mut h = with_map();
    h.m.shared.get_mut(&SharedId::AFL_MAP).unwrap()[0][..4].copy_from_slice(b"cov!");
    let ro = h.call(SHMAT, &[SHM_ID, 0, u64::from(SHM_RDONLY)]) as u64;
    assert_eq!(h.m.perms_at(ro), Some(PERM_READ));
    assert_eq!(h.err(READ, &[0, ro, 5]), Errno::EFAULT, "the kernel does not write into it either");
    assert_eq!(h.call(WRITE, &[1, ro, 4]), 4);
    assert_eq!(h.m.stdout, b"cov!");
    assert_eq!(h.err(MPROTECT, &[ro, 4096, 3]), Errno::EACCES, "read-only for good");
    assert_eq!(h.call(MPROTECT, &[ro, 4096, 0]), 0);
    assert_eq!(h.m.perms_at(ro), Some(0));
    assert_eq!(h.call(MPROTECT, &[ro, 4096, 1]), 0);
    let rw = h.call(SHMAT, &[SHM_ID, 0, 0]) as u64;
    assert_eq!(h.err(MPROTECT, &[rw, 4096, 5]), Errno::EACCES, "never executable");
    // MADV_DONTNEED keeps the segment's bytes; mremap is refused.
    assert_eq!(h.call(MADVISE, &[rw, MAP_SIZE, 4]), 0);
    assert_eq!(h.read(rw, 4), b"cov!");
    assert_eq!(h.err(MREMAP, &[rw, MAP_SIZE, 2 * MAP_SIZE, 1, 0]), Errno::EINVAL);
    // A mapping placed over an attachment replaces it; the segment's frames stay.
    assert_eq!(h.call(MMAP, &[rw, 4096, 3, 0x32, u64::MAX, 0]) as u64, rw);
    assert_eq!(h.read(rw, 4), [0; 4]);
    assert_eq!(h.read(rw + 4096, 1), [0]);
    assert_eq!(h.call(SHMDT, &[rw]), 0, "its second page is still an attachment piece");
    assert_eq!(h.m.perms_at(rw + 4096), None);
    assert_eq!(h.read(ro, 4), b"cov!");
}

/// Every page of every attachment that the model maps, maps the segment page its VMA's backing names
/// (what the arch machine maps there on first touch), and none maps the segment outside an attachment.
fn assert_pages_follow_backing(h: &Harness) {
    for (&page, mapped) in &h.m.pages {
        match h.k.vmas().find(page) {
            Some(vma) if matches!(vma.kind, VmaKind::SysvShm { .. }) => {
                let Backing::Shared { id, page: index } = vma.backing(page) else { panic!("{vma:?}") };
                assert_eq!(mapped.shared, Some((id, index as usize)), "page {page:#x}");
            }
            _ => assert_eq!(mapped.shared, None, "page {page:#x}"),
        }
    }
}

#[test]
fn shm_attachment_pieces_keep_their_segment_pages() {
    const PAGES: usize = 8;
    let mut h = Harness::with(|c| c.afl_map = ShmSegment::new(SHM_ID, PAGES as u64 * 4096));
    h.m.add_fixed_object(SharedId::AFL_MAP, PAGES);
    for (index, page) in h.m.shared.get_mut(&SharedId::AFL_MAP).unwrap().iter_mut().enumerate() {
        page[0] = index as u8 + 1;
    }
    let a = MMAP_START + 0x10_0000;
    assert_eq!(h.call(SHMAT, &[SHM_ID, a, 0]) as u64, a);
    let segment_page = |h: &mut Harness, addr: u64| h.read(addr, 1)[0] - 1;
    assert_eq!(
        (0..PAGES as u64).map(|i| segment_page(&mut h, a + i * 4096)).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5, 6, 7]
    );
    assert_pages_follow_backing(&h);
    // Pieces cut out by munmap, mprotect, a fixed mapping: each remaining page still maps its own.
    assert_eq!(h.call(MUNMAP, &[a, 2 * 4096]), 0);
    assert_eq!(h.call(MPROTECT, &[a + 3 * 4096, 4096, 1]), 0);
    assert_eq!(h.call(MMAP, &[a + 5 * 4096, 4096, 3, 0x32, u64::MAX, 0]) as u64, a + 5 * 4096);
    assert_eq!(h.k.vmas().intersections(a, a + PAGES as u64 * 4096).count(), 5);
    for page in [2, 3, 4, 6, 7] {
        assert_eq!(segment_page(&mut h, a + page * 4096), page as u8, "page {page}");
    }
    assert_pages_follow_backing(&h);
    // The kernel's copies go through the same pages: write() of the read-only piece, read() into another.
    assert_eq!(h.call(WRITE, &[1, a + 3 * 4096, 1]), 1);
    assert_eq!(h.m.stdout, [4]);
    assert_eq!(h.call(READ, &[0, a + 6 * 4096 + 1, 5]), 5);
    assert_eq!(&h.m.shared[&SharedId::AFL_MAP][6][1..6], b"input");
    // A second attachment over a piece of the first (SHM_REMAP) starts the segment there.
    assert_eq!(h.call(SHMAT, &[SHM_ID, a + 4 * 4096, u64::from(SHM_REMAP)]) as u64, a + 4 * 4096);
    assert_eq!(segment_page(&mut h, a + 4 * 4096), 0);
    assert_eq!(segment_page(&mut h, a + 7 * 4096), 3);
    assert_eq!(segment_page(&mut h, a + 3 * 4096), 3, "the first attachment's piece below it stays");
    assert_pages_follow_backing(&h);
    // shmdt of the first attachment leaves the second; the frames stay.
    assert_eq!(h.call(SHMDT, &[a]), 0);
    assert_eq!(h.m.perms_at(a + 3 * 4096), None);
    assert_eq!(segment_page(&mut h, a + 4 * 4096), 0);
    assert_pages_follow_backing(&h);
    assert_eq!(h.call(SHMDT, &[a + 4 * 4096]), 0);
    assert!(h.m.pages.values().all(|page| page.shared.is_none()));
    assert_eq!(h.m.shared[&SharedId::AFL_MAP].len(), PAGES);
}
