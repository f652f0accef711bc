//! Syscall tests: brk, mmap, mprotect, mremap, file and shared mappings.

use super::*;
use isolation::scan::ForbiddenInstruction;

#[test]
fn segments_become_vmas_and_a_shared_page_gets_both_permissions() {
    let rx = PERM_READ | PERM_EXEC;
    let rw = PERM_READ | PERM_WRITE;
    let h = Harness::with(|c| {
        // Text ends and data starts in page 0x40_2000 (no gap between them), as older linkers lay them out.
        c.segments = vec![
            Segment { start: TEXT, len: 0x2800, perms: rx },
            Segment { start: TEXT + 0x2800, len: 0x1000, perms: rw },
            Segment { start: SCRATCH, len: SCRATCH_LEN, perms: rw },
        ];
    });
    let vmas: Vec<(u64, u64, u32)> = h.k.vmas().iter().map(|v| (v.start, v.end, v.perms)).collect();
    assert_eq!(
        vmas,
        [
            (TEXT, TEXT + 0x2000, rx),
            (TEXT + 0x2000, TEXT + 0x3000, rx | rw),
            (TEXT + 0x3000, TEXT + 0x4000, rw),
            (SCRATCH, SCRATCH + SCRATCH_LEN, rw),
        ]
    );
    let config = |segments: Vec<Segment>| {
        let mut config = ProcessConfig::new([7; 32], layout());
        config.segments = segments;
        config.reserved = vec![Span::new(0x7e00_0000_0000, 1 << 30)];
        config
    };
    let unordered = config(vec![
        Segment { start: SCRATCH, len: 0x1000, perms: rw },
        Segment { start: TEXT, len: 0x1000, perms: rx },
    ]);
    assert_eq!(Process::new(&unordered).err(), Some(crate::ConfigError::BadSegment { start: TEXT }));
    let in_kernel = config(vec![Segment { start: 0x7e00_0000_0000, len: 0x1000, perms: rw }]);
    assert!(matches!(Process::new(&in_kernel).err(), Some(crate::ConfigError::BadSegment { .. })));
    let empty = config(vec![Segment { start: TEXT, len: 0, perms: rw }]);
    assert!(matches!(Process::new(&empty).err(), Some(crate::ConfigError::BadSegment { .. })));
}

#[test]
fn brk_grows_and_shrinks() {
    let mut h = Harness::new();
    assert_eq!(h.call(BRK, &[0]) as u64, BRK_START);
    assert_eq!(h.call(BRK, &[BRK_START + 10_000]) as u64, BRK_START + 10_000);
    assert_eq!(h.m.perms_at(BRK_START + 8192), Some(PERM_READ | PERM_WRITE));
    h.m.poke(BRK_START + 9_999, &[1]).unwrap();
    assert_eq!(h.call(BRK, &[BRK_START + 100]) as u64, BRK_START + 100);
    assert_eq!(h.m.perms_at(BRK_START + 4096), None);
    assert_eq!(h.call(BRK, &[BRK_START + (1 << 30)]) as u64, BRK_START + 100, "beyond the span: unchanged");
    // A fixed mapping in the way stops brk.
    let fixed = BRK_START + 0x10_0000;
    assert_eq!(h.call(MMAP, &[fixed, 4096, 3, 0x32, u64::MAX, 0]) as u64, fixed);
    assert_eq!(h.call(BRK, &[fixed + 4096]) as u64, BRK_START + 100);
}

#[test]
fn mmap_munmap_mprotect_split_vmas() {
    let mut h = Harness::new();
    let addr = h.call(MMAP, &[0, 10 * 4096, 3, 0x22, u64::MAX, 0]) as u64;
    assert!(addr >= MMAP_START && addr + 10 * 4096 <= MMAP_START + MMAP_LEN);
    assert_eq!(h.m.perms_at(addr), Some(PERM_READ | PERM_WRITE));
    let before = h.k.vmas().len();
    assert_eq!(h.call(MUNMAP, &[addr + 4096 * 3, 4096 * 2]), 0);
    assert_eq!(h.k.vmas().len(), before + 1);
    assert_eq!(h.m.perms_at(addr + 4096 * 3), None);
    assert_eq!(h.call(MPROTECT, &[addr + 4096 * 6, 4096, 1]), 0);
    assert_eq!(h.m.perms_at(addr + 4096 * 6), Some(PERM_READ));
    assert_eq!(h.k.vmas().len(), before + 3);
    assert_eq!(h.err(MPROTECT, &[addr, 5 * 4096, 1]), Errno::ENOMEM, "hole inside");
    assert_eq!(h.err(MPROTECT, &[addr + 1, 4096, 1]), Errno::EINVAL);
    assert_eq!(h.err(MPROTECT, &[addr, 4096, 8]), Errno::EINVAL);
    // W^X
    assert_eq!(h.err(MPROTECT, &[addr, 4096, 7]), Errno::EACCES);
    assert_eq!(h.err(MMAP, &[0, 4096, 7, 0x22, u64::MAX, 0]), Errno::EACCES);
    assert_eq!(h.call(MPROTECT, &[addr, 4096, 5]), 0);
    h.m.poke(addr + 4096 + 100, &WRPKRU).unwrap();
    assert_eq!(h.call(MPROTECT, &[addr + 4096, 4096, 5]), 0, "guarded, not refused");
    assert_eq!(h.m.guarded.get(&(addr + 4096 + 100)), Some(&ForbiddenInstruction::Wrpkru));
    // Fresh memory mapped executable is zeros: nothing to guard.
    let before = h.m.guarded.len();
    assert!(h.call(MMAP, &[0, 4096, 5, 0x22, u64::MAX, 0]) > 0);
    assert_eq!(h.m.guarded.len(), before);
    // Invalid requests.
    assert_eq!(h.err(MMAP, &[0, 0, 3, 0x22, u64::MAX, 0]), Errno::EINVAL);
    assert_eq!(h.err(MMAP, &[0, 4096, 3, 0x20, u64::MAX, 0]), Errno::EINVAL);
    assert_eq!(h.err(MMAP, &[0, u64::MAX, 3, 0x22, u64::MAX, 0]), Errno::ENOMEM);
    assert_eq!(h.err(MMAP, &[0, 4096, 3, 0x02, 99, 0]), Errno::EBADF);
    assert_eq!(h.err(MUNMAP, &[addr + 1, 4096]), Errno::EINVAL);
    assert_eq!(h.err(MUNMAP, &[addr, 0]), Errno::EINVAL);
    // Fixed mappings: over the kernel, below the minimum, no-replace.
    assert_eq!(h.err(MMAP, &[KERNEL_ADDR & !4095, 4096, 3, 0x32, u64::MAX, 0]), Errno::ENOMEM);
    assert_eq!(h.err(MMAP, &[0x1000, 4096, 3, 0x32, u64::MAX, 0]), Errno::EPERM);
    assert_eq!(h.err(MMAP, &[addr, 4096, 3, 0x10_0022, u64::MAX, 0]), Errno::EEXIST);
    assert_eq!(h.call(MMAP, &[addr, 2 * 4096, 1, 0x32, u64::MAX, 0]) as u64, addr);
    assert_eq!(h.m.perms_at(addr), Some(PERM_READ));
    // Unmapping the kernel's range is harmless: nothing of the app is there.
    assert_eq!(h.call(MUNMAP, &[KERNEL_ADDR & !4095, 1 << 20]), 0);
    // madvise(DONTNEED) zeroes.
    let page = addr + 4096 * 8;
    h.m.poke(page, &[9; 16]).unwrap();
    assert_eq!(h.call(MADVISE, &[page, 4096, 4]), 0);
    assert_eq!(h.read(page, 16), [0; 16]);
    assert_eq!(h.err(MADVISE, &[page, 4096, 999]), Errno::EINVAL);
    assert_eq!(h.err(MADVISE, &[addr + 3 * 4096, 4096, 4]), Errno::ENOMEM);
}

#[test]
fn mremap_grows_shrinks_moves() {
    let mut h = Harness::new();
    let a = h.call(MMAP, &[0, 2 * 4096, 3, 0x22, u64::MAX, 0]) as u64;
    h.m.poke(a, b"keep me").unwrap();
    // Something right above blocks in-place growth (allocation is top-down, so map the next one first).
    let b = h.call(MMAP, &[a + 2 * 4096, 4096, 3, 0x32, u64::MAX, 0]) as u64;
    assert_eq!(b, a + 2 * 4096);
    assert_eq!(h.err(MREMAP, &[a, 2 * 4096, 4 * 4096, 0, 0]), Errno::ENOMEM);
    let moved = h.call(MREMAP, &[a, 2 * 4096, 4 * 4096, MREMAP_MAYMOVE_FLAG, 0]) as u64;
    assert_ne!(moved, a);
    assert_eq!(h.read(moved, 7), b"keep me");
    assert_eq!(h.m.perms_at(a), None);
    assert_eq!(h.m.perms_at(moved + 3 * 4096), Some(PERM_READ | PERM_WRITE));
    assert_eq!(h.call(MREMAP, &[moved, 4 * 4096, 4096, 0, 0]) as u64, moved);
    assert_eq!(h.m.perms_at(moved + 4096), None);
    assert_eq!(h.call(MREMAP, &[moved, 4096, 3 * 4096, 0, 0]) as u64, moved, "grows in place into the freed space");
    assert_eq!(h.err(MREMAP, &[moved + 1, 4096, 4096, 0, 0]), Errno::EINVAL);
    assert_eq!(h.err(MREMAP, &[moved, 4096, 0, 0, 0]), Errno::EINVAL);
    assert_eq!(h.err(MREMAP, &[0x5000_0000, 4096, 8192, 1, 0]), Errno::EFAULT);
}

const MREMAP_MAYMOVE_FLAG: u64 = 1;

#[test]
fn file_mappings_copy_contents() {
    let mut h = Harness::new();
    let fd = h.open("/data/hello.txt", O_RDONLY, 0) as u64;
    let addr = h.call(MMAP, &[0, 4096, 1, 0x02, fd, 0]) as u64;
    assert_eq!(h.read(addr, 14), b"hello, world\n\0");
    assert_eq!(h.m.perms_at(addr), Some(PERM_READ));
    // Private writable copies are fine, shared writable ones are not.
    assert!(h.call(MMAP, &[0, 4096, 3, 0x02, fd, 0]) > 0);
    assert_eq!(h.err(MMAP, &[0, 4096, 3, 0x01, fd, 0]), Errno::EACCES);
    assert_eq!(h.err(MMAP, &[0, 4096, 1, 0x02, fd, 1]), Errno::EINVAL);
    assert_eq!(h.err(MMAP, &[0, 4096, 1, 0x02, 1, 0]), Errno::ENODEV);
    let exec = h.call(MMAP, &[0, 4096, 5, 0x02, fd, 0]) as u64;
    assert_eq!(h.m.perms_at(exec), Some(PERM_READ | PERM_EXEC));
}

const WRPKRU: [u8; 3] = [0x0f, 0x01, 0xef];
/// `xrstor [rax]`: neutralized by the kernel's configuration (no CR4.OSXSAVE), refused only when strict.
const XRSTOR: [u8; 3] = [0x0f, 0xae, 0x28];

#[test]
fn code_made_executable_is_inspected_across_its_edges() {
    let mut h = Harness::new();
    let x = h.call(MMAP, &[0, 4 * 4096, 3, 0x22, u64::MAX, 0]) as u64;
    // WRPKRU straddling the edge of pages 0 and 1: found from page 1's side (the window reaches back).
    h.m.poke(x + 4096 - 2, &WRPKRU).unwrap();
    assert_eq!(h.call(MPROTECT, &[x + 4096, 4096, 5]), 0);
    assert_eq!(h.m.guarded.get(&(x + 4096 - 2)), Some(&ForbiddenInstruction::Wrpkru));
    // `0F 22` at the end of a page whose successor has no frame yet: that page reads as zeros once
    // touched, and `0F 22 00` is `mov cr0, rax`.
    h.m.poke(x + 3 * 4096 - 2, &[0x0f, 0x22]).unwrap();
    assert_eq!(h.call(MPROTECT, &[x + 2 * 4096, 2 * 4096, 5]), 0);
    assert_eq!(h.m.guarded.get(&(x + 3 * 4096 - 2)), Some(&ForbiddenInstruction::MovToCr));
    // Code replaced and made executable again: its record is replaced too.
    assert_eq!(h.call(MPROTECT, &[x + 2 * 4096, 4096, 3]), 0);
    h.m.poke(x + 3 * 4096 - 2, &[0x90, 0x90]).unwrap();
    assert_eq!(h.call(MPROTECT, &[x + 2 * 4096, 4096, 5]), 0);
    assert_eq!(h.m.guarded.get(&(x + 3 * 4096 - 2)), None);
    // Unmapping forgets.
    assert_eq!(h.call(MUNMAP, &[x, 4 * 4096]), 0);
    assert!(h.m.guarded.range(x..x + 4 * 4096).next().is_none());
    // A neutralized instruction is not guarded.
    let y = h.call(MMAP, &[0, 4096, 3, 0x22, u64::MAX, 0]) as u64;
    h.m.poke(y + 8, &XRSTOR).unwrap();
    assert_eq!(h.call(MPROTECT, &[y, 4096, 5]), 0);
    assert!(h.m.guarded.range(y..y + 4096).next().is_none());
    assert_eq!(h.m.violations, 0);

    let mut strict = Harness::with(|config| config.inspection = Inspection::Strict);
    let z = strict.call(MMAP, &[0, 4096, 3, 0x22, u64::MAX, 0]) as u64;
    strict.m.poke(z + 8, &XRSTOR).unwrap();
    assert_eq!(strict.err(MPROTECT, &[z, 4096, 5]), Errno::EACCES);
    assert!(alloc::string::String::from_utf8_lossy(&strict.m.log).contains("refused to make"), "logged");
    assert_eq!(strict.m.perms_at(z), Some(PERM_READ | PERM_WRITE), "unchanged after refusal");

    let mut off = Harness::with(|config| {
        config.inspection = Inspection::Off;
        config.enforce_wx = false;
    });
    let w = off.call(MMAP, &[0, 4096, 3, 0x22, u64::MAX, 0]) as u64;
    off.m.poke(w, &WRPKRU).unwrap();
    assert_eq!(off.call(MPROTECT, &[w, 4096, 5]), 0);
    assert!(off.m.guarded.is_empty());
}

#[test]
fn shared_file_mappings_see_read_and_write() {
    let mut h = Harness::new();
    let fd = h.open("/tmp/shared", O_RDWR | O_CREAT, 0o644) as u64;
    let data = h.put(b"0123456789");
    assert_eq!(h.call(WRITE, &[fd, data, 10]), 10);
    let a = h.call(MMAP, &[0, 8192, 3, 0x01, fd, 0]) as u64;
    let b = h.call(MMAP, &[0, 4096, 1, 0x01, fd, 0]) as u64;
    assert_eq!(h.read(a, 11), b"0123456789\0");
    // A store through one mapping: seen through the other at once, by read() and pread().
    h.m.poke(a + 2, b"AB").unwrap();
    assert_eq!(h.read(b, 4), b"01AB");
    assert_eq!(pread_bytes(&mut h, fd, 16, 0), b"01AB456789");
    // write() and pwrite(): seen through both mappings.
    let more = h.put(b"xyz");
    assert_eq!(h.call(PWRITE64, &[fd, more, 3, 7]), 3);
    assert_eq!(h.read(a, 10), b"01AB456xyz");
    assert_eq!(h.read(b, 10), b"01AB456xyz");
    // Stores past the end of the file stay in the mapping, never in the file; truncate zeroes the tail.
    h.m.poke(a + 20, b"tail").unwrap();
    assert_eq!(pread_bytes(&mut h, fd, 64, 0).len(), 10);
    assert_eq!(h.call(FTRUNCATE, &[fd, 4]), 0);
    assert_eq!(h.read(a, 10), b"01AB\0\0\0\0\0\0");
    assert_eq!(h.call(FTRUNCATE, &[fd, 30]), 0);
    assert_eq!(h.read(a + 20, 4), [0; 4], "extending shows zeros, not the old stores");
    // msync: validated, and a plain flush here.
    h.m.poke(a, b"Z").unwrap();
    assert_eq!(h.call(MSYNC, &[a, 4096, 4]), 0);
    assert_eq!(h.err(MSYNC, &[a, 4096, 5]), Errno::EINVAL);
    assert_eq!(h.err(MSYNC, &[a + 1, 4096, 4]), Errno::EINVAL);
    assert_eq!(h.err(MSYNC, &[0x1000_0000, 4096, 4]), Errno::ENOMEM);
    assert_eq!(pread_bytes(&mut h, fd, 1, 0), b"Z");
    // The last unmap writes back and frees the object; the file keeps the stores.
    h.m.poke(a + 1, b"Q").unwrap();
    assert_eq!(h.call(MUNMAP, &[a, 8192]), 0);
    assert_eq!(h.k.shared_files.iter().count(), 1, "b still maps the file");
    assert_eq!(h.call(MUNMAP, &[b, 4096]), 0);
    assert_eq!(h.k.shared_files.iter().count(), 0);
    assert!(h.m.shared.is_empty());
    assert_eq!(pread_bytes(&mut h, fd, 2, 0), b"ZQ");
}

#[test]
fn shared_file_mappings_follow_mprotect_mremap_and_unlink() {
    let mut h = Harness::new();
    let fd = h.open("/tmp/shared", O_RDWR | O_CREAT, 0o644) as u64;
    assert_eq!(h.call(FTRUNCATE, &[fd, 3 * 4096]), 0);
    let a = h.call(MMAP, &[0, 4096, 3, 0x01, fd, 4096]) as u64;
    h.m.poke(a, b"page1").unwrap();
    assert_eq!(pread_bytes(&mut h, fd, 5, 4096), b"page1", "offset 4096 is the mapping's first byte");
    // Executable shared file memory is refused in mpk mode (W^X enforced), at mmap and mprotect.
    assert_eq!(h.err(MMAP, &[0, 4096, 5, 0x01, fd, 0]), Errno::EACCES);
    assert_eq!(h.err(MPROTECT, &[a, 4096, 5]), Errno::EACCES);
    assert_eq!(h.call(MPROTECT, &[a, 4096, 1]), 0);
    assert_eq!(h.m.perms_at(a), Some(PERM_READ));
    assert_eq!(h.call(MPROTECT, &[a, 4096, 3]), 0);
    // mremap grows or moves over the same file pages, no copy.
    let moved = h.call(MREMAP, &[a, 4096, 2 * 4096, MREMAP_MAYMOVE_FLAG, 0]) as u64;
    assert_eq!(h.read(moved, 5), b"page1");
    h.m.poke(moved + 4096, b"page2").unwrap();
    assert_eq!(pread_bytes(&mut h, fd, 5, 2 * 4096), b"page2");
    // A read-only open cannot get a writable shared mapping, not even through mprotect.
    let ro = h.open("/tmp/shared", O_RDONLY, 0) as u64;
    let view = h.call(MMAP, &[0, 4096, 1, 0x01, ro, 0]) as u64;
    assert_eq!(h.err(MPROTECT, &[view, 4096, 3]), Errno::EACCES);
    // Unlinked while mapped: the mapping keeps the file alive and coherent.
    let path = h.cstr("/tmp/shared");
    assert_eq!(h.call(UNLINK, &[path]), 0);
    assert_eq!(h.call(CLOSE, &[fd]), 0);
    assert_eq!(h.call(CLOSE, &[ro]), 0);
    h.m.poke(moved, b"still").unwrap();
    assert_eq!(h.call(MUNMAP, &[moved, 2 * 4096]), 0);
    assert_eq!(h.call(MUNMAP, &[view, 4096]), 0);
    assert!(h.m.shared.is_empty());
}
