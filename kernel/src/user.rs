//! Access to app memory on the app's behalf: every pointer and length is checked against the VMA list
//! (overflow, unmapped, wrong permission → EFAULT) before the machine copies anything, so a syscall can
//! never make the kernel read or write its own memory.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use kernel_abi::{PERM_READ, PERM_WRITE};

use crate::errno::Errno;
use crate::machine::Machine;
use crate::mm::VmaList;

/// Longest path a syscall accepts, including the NUL (Linux `PATH_MAX`).
pub const PATH_MAX: usize = 4096;

/// Checks that the app may read `[addr, addr + len)`.
pub fn check_read(vmas: &VmaList, addr: u64, len: u64) -> Result<(), Errno> {
    if vmas.covers(addr, len, PERM_READ) {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

/// Checks that the app may write `[addr, addr + len)`.
pub fn check_write(vmas: &VmaList, addr: u64, len: u64) -> Result<(), Errno> {
    if vmas.covers(addr, len, PERM_WRITE) {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

fn len_u64(len: usize) -> Result<u64, Errno> {
    u64::try_from(len).map_err(|_| Errno::EFAULT)
}

/// Copies app memory into `buf`.
pub fn read<M: Machine>(vmas: &VmaList, m: &mut M, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    check_read(vmas, addr, len_u64(buf.len())?)?;
    if buf.is_empty() {
        return Ok(());
    }
    m.read_user(vmas, addr, buf).map_err(|_| Errno::EFAULT)
}

/// Copies `data` into app memory.
pub fn write<M: Machine>(vmas: &VmaList, m: &mut M, addr: u64, data: &[u8]) -> Result<(), Errno> {
    check_write(vmas, addr, len_u64(data.len())?)?;
    if data.is_empty() {
        return Ok(());
    }
    m.write_user(vmas, addr, data).map_err(|_| Errno::EFAULT)
}

/// Reads a fixed-size struct.
pub fn read_array<M: Machine, const N: usize>(vmas: &VmaList, m: &mut M, addr: u64) -> Result<[u8; N], Errno> {
    let mut buf = [0u8; N];
    read(vmas, m, addr, &mut buf)?;
    Ok(buf)
}

pub fn read_u64<M: Machine>(vmas: &VmaList, m: &mut M, addr: u64) -> Result<u64, Errno> {
    read_array::<M, 8>(vmas, m, addr).map(u64::from_le_bytes)
}

pub fn read_u32<M: Machine>(vmas: &VmaList, m: &mut M, addr: u64) -> Result<u32, Errno> {
    read_array::<M, 4>(vmas, m, addr).map(u32::from_le_bytes)
}

pub fn write_u64<M: Machine>(vmas: &VmaList, m: &mut M, addr: u64, value: u64) -> Result<(), Errno> {
    write(vmas, m, addr, &value.to_le_bytes())
}

pub fn write_i32<M: Machine>(vmas: &VmaList, m: &mut M, addr: u64, value: i32) -> Result<(), Errno> {
    write(vmas, m, addr, &value.to_le_bytes())
}

/// Reads a NUL-terminated string of at most `max` bytes (NUL excluded). Reads page by page so a string
/// ending just before an unmapped page is fine. `Err(ENAMETOOLONG)` when no NUL within `max` bytes.
/// Most strings are short: the first read is small and goes to the stack, so a string that ends in it
/// costs one allocation of its own size (none when empty); later reads are larger (where kernel code is
/// emulated, every byte zeroed and copied costs real time).
pub fn read_c_string<M: Machine>(vmas: &VmaList, m: &mut M, addr: u64, max: usize) -> Result<Vec<u8>, Errno> {
    const FIRST_READ: usize = 64;
    const LATER_READS: u64 = 512;
    let mut first = [0u8; FIRST_READ];
    let want = read_len(addr, FIRST_READ as u64)?;
    read(vmas, m, addr, &mut first[..want])?;
    if let Some(nul) = first[..want].iter().position(|&b| b == 0) {
        return if nul > max { Err(Errno::ENAMETOOLONG) } else { Ok(first[..nul].to_vec()) };
    }
    let mut out = first[..want].to_vec();
    loop {
        if out.len() > max {
            return Err(Errno::ENAMETOOLONG);
        }
        // `out` holds every byte read so far, so the next one is at `addr + out.len()`.
        let at = addr.checked_add(len_u64(out.len())?).ok_or(Errno::EFAULT)?;
        let want = read_len(at, LATER_READS)?;
        let start = out.len();
        out.resize(start + want, 0);
        read(vmas, m, at, &mut out[start..])?;
        if let Some(nul) = out[start..].iter().position(|&b| b == 0) {
            out.truncate(start + nul);
            return if out.len() > max { Err(Errno::ENAMETOOLONG) } else { Ok(out) };
        }
    }
}

/// How many bytes to read at `at`: at most `limit`, and never across a page boundary in one read (the
/// next page may be unmapped).
fn read_len(at: u64, limit: u64) -> Result<usize, Errno> {
    let to_page_end = crate::mm::PAGE_SIZE - (at % crate::mm::PAGE_SIZE);
    usize::try_from(to_page_end.min(limit)).map_err(|_| Errno::EFAULT)
}

/// Reads a path argument: at most `PATH_MAX - 1` bytes; an empty path is ENOENT unless `allow_empty`.
pub fn read_path<M: Machine>(vmas: &VmaList, m: &mut M, addr: u64, allow_empty: bool) -> Result<Vec<u8>, Errno> {
    let path = read_c_string(vmas, m, addr, PATH_MAX - 1)?;
    if path.is_empty() && !allow_empty {
        return Err(Errno::ENOENT);
    }
    Ok(path)
}
