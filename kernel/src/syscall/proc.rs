//! Process resources: user ids, uname, sysinfo, rlimits, arch_prctl, getrandom. Every process runs as root;
//! pids, groups and sessions are `crate::processes`'.

use alloc::vec;

use super::{int_arg, SysResult, CHUNK};
use crate::errno::Errno;
use crate::machine::Machine;
use crate::process::{Process, RLIMIT_COUNT, RLIMIT_NOFILE};
use crate::user;

/// `arch_prctl` codes (asm/prctl.h, which linux-raw-sys does not carry).
pub const ARCH_SET_GS: u32 = 0x1001;
pub const ARCH_SET_FS: u32 = 0x1002;
pub const ARCH_GET_FS: u32 = 0x1003;
pub const ARCH_GET_GS: u32 = 0x1004;
pub use linux_raw_sys::general::{GRND_INSECURE, GRND_NONBLOCK, GRND_RANDOM};

/// Largest getrandom request Linux serves in one call.
pub const GETRANDOM_MAX: u64 = 33_554_431;

impl Process {
    /// getresuid/getresgid: real, effective and saved ids, all 0 (the app runs as root).
    pub(crate) fn sys_getresid<M: Machine>(&mut self, m: &mut M, pointers: [u64; 3]) -> SysResult {
        for pointer in pointers {
            user::write(&self.vmas, m, pointer, &0u32.to_le_bytes())?;
        }
        Ok(0)
    }

    pub(crate) fn sys_umask(&mut self, mask: u64) -> SysResult {
        let old = self.umask;
        self.umask = (mask as u32) & 0o777;
        Ok(i64::from(old))
    }

    pub(crate) fn sys_uname<M: Machine>(&mut self, m: &mut M, buf: u64) -> SysResult {
        let mut raw = [0u8; 6 * 65];
        let uname = crate::process::UNAME;
        let fields = [uname.sysname, uname.nodename, uname.release, uname.version, uname.machine, uname.domainname];
        for (slot, field) in raw.chunks_exact_mut(65).zip(fields) {
            let n = field.len().min(64);
            slot[..n].copy_from_slice(&field[..n]);
        }
        user::write(&self.vmas, m, buf, &raw)?;
        Ok(0)
    }

    /// `struct sysinfo` (112 bytes on x86-64).
    pub(crate) fn sys_sysinfo<M: Machine>(&mut self, m: &mut M, buf: u64) -> SysResult {
        let mut raw = [0u8; 112];
        let uptime = (m.monotonic_ns() / 1_000_000_000) as i64;
        raw[..8].copy_from_slice(&uptime.to_le_bytes());
        raw[32..40].copy_from_slice(&self.memory_size.to_le_bytes());
        let free = self.memory_size.saturating_sub(self.fs.used_bytes()) / 2;
        raw[40..48].copy_from_slice(&free.to_le_bytes());
        raw[80..82].copy_from_slice(&1u16.to_le_bytes());
        raw[104..108].copy_from_slice(&1u32.to_le_bytes());
        user::write(&self.vmas, m, buf, &raw)?;
        Ok(0)
    }

    pub(crate) fn sys_prlimit64<M: Machine>(
        &mut self,
        m: &mut M,
        pid: u64,
        resource: u64,
        new: u64,
        old: u64,
    ) -> SysResult {
        if int_arg(pid) != 0 && int_arg(pid) != self.pid {
            return Err(Errno::ESRCH.into());
        }
        let index = usize::try_from(resource as u32).ok().filter(|&r| r < RLIMIT_COUNT).ok_or(Errno::EINVAL)?;
        let new_limit = if new != 0 {
            let raw = user::read_array::<M, 16>(&self.vmas, m, new)?;
            let cur = u64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
            let max = u64::from_le_bytes(raw[8..].try_into().unwrap_or_default());
            if cur > max {
                return Err(Errno::EINVAL.into());
            }
            if index == RLIMIT_NOFILE && max > crate::fd::MAX_FDS as u64 {
                return Err(Errno::EPERM.into());
            }
            Some((cur, max))
        } else {
            None
        };
        if old != 0 {
            let (cur, max) = self.rlimits[index];
            let mut raw = [0u8; 16];
            raw[..8].copy_from_slice(&cur.to_le_bytes());
            raw[8..].copy_from_slice(&max.to_le_bytes());
            user::write(&self.vmas, m, old, &raw)?;
        }
        if let Some(limit) = new_limit {
            self.rlimits[index] = limit;
        }
        Ok(0)
    }

    pub(crate) fn sys_arch_prctl<M: Machine>(&mut self, m: &mut M, code: u64, addr: u64) -> SysResult {
        match code as u32 {
            ARCH_SET_FS => {
                // Linux refuses non-canonical bases (they would #GP on the next WRFSBASE/context switch).
                if addr >= isolation::paging::LOWER_HALF_END {
                    return Err(Errno::EPERM.into());
                }
                m.set_fs_base(addr);
                Ok(0)
            }
            ARCH_GET_FS => {
                let value = m.fs_base();
                user::write_u64(&self.vmas, m, addr, value)?;
                Ok(0)
            }
            ARCH_SET_GS | ARCH_GET_GS => Err(Errno::ENOSYS.into()),
            _ => Err(Errno::EINVAL.into()),
        }
    }

    pub(crate) fn sys_getrandom<M: Machine>(&mut self, m: &mut M, buf: u64, len: u64, flags: u64) -> SysResult {
        let flags = flags as u32;
        if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0
            || flags & (GRND_RANDOM | GRND_INSECURE) == GRND_RANDOM | GRND_INSECURE
        {
            return Err(Errno::EINVAL.into());
        }
        let len = len.min(GETRANDOM_MAX);
        user::check_write(&self.vmas, buf, len)?;
        let mut chunk = vec![0u8; (len as usize).min(CHUNK)];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(CHUNK as u64) as usize;
            self.rng.fill_bytes(&mut chunk[..n]);
            user::write(&self.vmas, m, buf + done, &chunk[..n])?;
            done += n as u64;
        }
        Ok(done as i64)
    }
}
