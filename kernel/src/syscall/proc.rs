//! Process identity and resources: ids, uname, sysinfo, rlimits, arch_prctl, futex, affinity, getrandom.
//! The app is pid 1 (its own tid, process group and session) with parent 0, running as root.

use alloc::vec;

use super::{int_arg, nr, Stop, SysResult, Wait, CHUNK};
use crate::errno::Errno;
use crate::machine::Machine;
use crate::process::{Process, RLIMIT_COUNT, RLIMIT_NOFILE};
use crate::user;

/// `arch_prctl` codes (asm/prctl.h, which linux-raw-sys does not carry).
pub const ARCH_SET_GS: u32 = 0x1001;
pub const ARCH_SET_FS: u32 = 0x1002;
pub const ARCH_GET_FS: u32 = 0x1003;
pub const ARCH_GET_GS: u32 = 0x1004;
pub use linux_raw_sys::general::{
    FUTEX_CLOCK_REALTIME, FUTEX_CMP_REQUEUE, FUTEX_PRIVATE_FLAG, FUTEX_REQUEUE, FUTEX_WAIT, FUTEX_WAIT_BITSET,
    FUTEX_WAKE, FUTEX_WAKE_BITSET, FUTEX_WAKE_OP, GRND_INSECURE, GRND_NONBLOCK, GRND_RANDOM,
};

/// Largest getrandom request Linux serves in one call.
pub const GETRANDOM_MAX: u64 = 33_554_431;

/// The app's pid (and tid, pgid, sid).
pub const PID: i64 = 1;

impl Process {
    pub(crate) fn sys_getpid(&mut self, number: u64, pid: u64) -> SysResult {
        match number {
            nr::GETPGID | nr::GETSID if !matches!(int_arg(pid), 0 | 1) => Err(Errno::ESRCH.into()),
            _ => Ok(PID),
        }
    }

    pub(crate) fn sys_setpgid(&mut self, pid: u64, pgid: u64) -> SysResult {
        match (int_arg(pid), int_arg(pgid)) {
            (_, pgid) if pgid < 0 => Err(Errno::EINVAL.into()),
            (0 | 1, 0 | 1) => Ok(0),
            (0 | 1, _) => Err(Errno::EPERM.into()),
            _ => Err(Errno::ESRCH.into()),
        }
    }

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

    pub(crate) fn sys_set_tid_address(&mut self, address: u64) -> SysResult {
        let thread = self.thread_mut();
        thread.clear_child_tid = address;
        Ok(i64::from(thread.tid))
    }

    pub(crate) fn sys_set_robust_list(&mut self, head: u64, len: u64) -> SysResult {
        if len != 24 {
            return Err(Errno::EINVAL.into());
        }
        self.thread_mut().robust_list = (head, len);
        Ok(0)
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
        if !matches!(int_arg(pid), 0 | 1) {
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

    /// Single-threaded futex: nothing can wake a waiter, so a wait either fails at once (value changed:
    /// EAGAIN), sleeps out its timeout (ETIMEDOUT), or is a deadlock. Wakes wake nobody.
    pub(crate) fn sys_futex<M: Machine>(
        &mut self,
        m: &mut M,
        uaddr: u64,
        op: u64,
        value: u64,
        timeout: u64,
    ) -> SysResult {
        let op = op as u32;
        let command = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
        if !uaddr.is_multiple_of(4) {
            return Err(Errno::EINVAL.into());
        }
        match command {
            FUTEX_WAIT | FUTEX_WAIT_BITSET => {
                let current = user::read_u32(&self.vmas, m, uaddr)?;
                let resumed = self.thread().restart.is_some_and(|restart| restart.nr == nr::FUTEX);
                if current != value as u32 && !resumed {
                    return Err(Errno::EAGAIN.into());
                }
                let deadline = if timeout == 0 {
                    None
                } else if resumed {
                    self.deadline_for(m, nr::FUTEX, None)
                } else {
                    let ns = self.read_timespec_ns(m, timeout)?;
                    // FUTEX_WAIT takes a relative timeout; the bitset variant an absolute one.
                    Some(if command == FUTEX_WAIT {
                        m.monotonic_ns().saturating_add(ns)
                    } else if op & FUTEX_CLOCK_REALTIME != 0 {
                        let now = m.realtime_ns();
                        m.monotonic_ns().saturating_add(ns.saturating_sub(now))
                    } else {
                        ns
                    })
                };
                if Self::passed(m, deadline) {
                    return Err(Errno::ETIMEDOUT.into());
                }
                // With one thread nothing but a signal handler can change the word, and only after the wait.
                let interrupted = if deadline.is_some() { Errno::ERESTART_RESTARTBLOCK } else { Errno::ERESTARTSYS };
                Err(Stop::Block(Wait::until(deadline, interrupted, "futex wait with no other thread to wake it")))
            }
            FUTEX_WAKE | FUTEX_WAKE_BITSET | FUTEX_REQUEUE => {
                user::check_read(&self.vmas, uaddr, 4)?;
                Ok(0)
            }
            FUTEX_CMP_REQUEUE => {
                let current = user::read_u32(&self.vmas, m, uaddr)?;
                // The expected value is the sixth argument, which this layer does not receive: accept.
                let _ = current;
                Ok(0)
            }
            FUTEX_WAKE_OP => Err(Errno::ENOSYS.into()),
            _ => Err(Errno::ENOSYS.into()),
        }
    }

    pub(crate) fn sys_sched_getaffinity<M: Machine>(&mut self, m: &mut M, pid: u64, len: u64, mask: u64) -> SysResult {
        if !matches!(int_arg(pid), 0 | 1) {
            return Err(Errno::ESRCH.into());
        }
        let len = u64::from(len as u32);
        if len < 8 || len % 8 != 0 {
            return Err(Errno::EINVAL.into());
        }
        user::write(&self.vmas, m, mask, &1u64.to_le_bytes())?;
        Ok(8)
    }

    pub(crate) fn sys_sched_setaffinity<M: Machine>(&mut self, m: &mut M, pid: u64, len: u64, mask: u64) -> SysResult {
        if !matches!(int_arg(pid), 0 | 1) {
            return Err(Errno::ESRCH.into());
        }
        if u64::from(len as u32) < 8 {
            return Err(Errno::EINVAL.into());
        }
        let cpus = user::read_u64(&self.vmas, m, mask)?;
        if cpus & 1 == 0 {
            return Err(Errno::EINVAL.into());
        }
        Ok(0)
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
