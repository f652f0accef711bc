//! Clocks and sleeping. Sleeping idles the machine until the monotonic deadline; no signal can
//! interrupt it, so the remaining time written back is always zero.

use super::SysResult;
use crate::errno::Errno;
use crate::machine::Machine;
use crate::process::Process;
use crate::user;

pub use linux_raw_sys::general::{
    CLOCK_BOOTTIME, CLOCK_BOOTTIME_ALARM, CLOCK_MONOTONIC, CLOCK_MONOTONIC_COARSE, CLOCK_MONOTONIC_RAW,
    CLOCK_PROCESS_CPUTIME_ID, CLOCK_REALTIME, CLOCK_REALTIME_ALARM, CLOCK_REALTIME_COARSE, CLOCK_TAI,
    CLOCK_THREAD_CPUTIME_ID, TIMER_ABSTIME,
};

const NS_PER_SEC: u64 = 1_000_000_000;

fn timespec(ns: u64) -> [u8; 16] {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&((ns / NS_PER_SEC) as i64).to_le_bytes());
    raw[8..].copy_from_slice(&((ns % NS_PER_SEC) as i64).to_le_bytes());
    raw
}

/// Whether a clock counts wall time (else time since boot). Negative ids (CPU clocks of other processes)
/// are far outside the table as `u32`: EINVAL.
fn is_realtime(clock: u32) -> Result<bool, Errno> {
    match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE | CLOCK_REALTIME_ALARM | CLOCK_TAI => Ok(true),
        CLOCK_MONOTONIC
        | CLOCK_MONOTONIC_RAW
        | CLOCK_MONOTONIC_COARSE
        | CLOCK_BOOTTIME
        | CLOCK_BOOTTIME_ALARM
        | CLOCK_PROCESS_CPUTIME_ID
        | CLOCK_THREAD_CPUTIME_ID => Ok(false),
        _ => Err(Errno::EINVAL),
    }
}

impl Process {
    fn clock_now<M: Machine>(m: &mut M, clock: u32) -> Result<u64, Errno> {
        Ok(if is_realtime(clock)? { m.realtime_ns() } else { m.monotonic_ns() })
    }

    pub(crate) fn sys_clock_gettime<M: Machine>(&mut self, m: &mut M, clock: u64, tp: u64) -> SysResult {
        let now = Self::clock_now(m, clock as u32)?;
        user::write(&self.vmas, m, tp, &timespec(now))?;
        Ok(0)
    }

    pub(crate) fn sys_clock_getres<M: Machine>(&mut self, m: &mut M, clock: u64, res: u64) -> SysResult {
        let clock = clock as u32;
        is_realtime(clock)?;
        let resolution = if matches!(clock, CLOCK_REALTIME_COARSE | CLOCK_MONOTONIC_COARSE) { 4_000_000 } else { 1 };
        if res != 0 {
            user::write(&self.vmas, m, res, &timespec(resolution))?;
        }
        Ok(0)
    }

    pub(crate) fn sys_gettimeofday<M: Machine>(&mut self, m: &mut M, tv: u64, tz: u64) -> SysResult {
        if tv != 0 {
            let now = m.realtime_ns();
            let mut raw = [0u8; 16];
            raw[..8].copy_from_slice(&((now / NS_PER_SEC) as i64).to_le_bytes());
            raw[8..].copy_from_slice(&(((now % NS_PER_SEC) / 1000) as i64).to_le_bytes());
            user::write(&self.vmas, m, tv, &raw)?;
        }
        if tz != 0 {
            user::write(&self.vmas, m, tz, &[0u8; 8])?;
        }
        Ok(0)
    }

    pub(crate) fn sys_time<M: Machine>(&mut self, m: &mut M, tloc: u64) -> SysResult {
        let seconds = (m.realtime_ns() / NS_PER_SEC) as i64;
        if tloc != 0 {
            user::write(&self.vmas, m, tloc, &seconds.to_le_bytes())?;
        }
        Ok(seconds)
    }

    pub(crate) fn sys_nanosleep<M: Machine>(&mut self, m: &mut M, req: u64, rem: u64) -> SysResult {
        let duration = self.read_timespec_ns(m, req)?;
        let deadline = m.monotonic_ns().saturating_add(duration);
        m.idle_until(deadline);
        if rem != 0 {
            let _ = user::write(&self.vmas, m, rem, &timespec(0));
        }
        Ok(0)
    }

    pub(crate) fn sys_clock_nanosleep<M: Machine>(
        &mut self,
        m: &mut M,
        clock: u64,
        flags: u64,
        req: u64,
        rem: u64,
    ) -> SysResult {
        let (clock, flags) = (clock as u32, flags as u32);
        let realtime = match clock {
            CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => return Err(Errno::EINVAL.into()),
            _ => is_realtime(clock)?,
        };
        let value = self.read_timespec_ns(m, req)?;
        let deadline = if flags & TIMER_ABSTIME != 0 {
            if realtime {
                let now = m.realtime_ns();
                m.monotonic_ns().saturating_add(value.saturating_sub(now))
            } else {
                value
            }
        } else {
            m.monotonic_ns().saturating_add(value)
        };
        m.idle_until(deadline);
        if rem != 0 && flags & TIMER_ABSTIME == 0 {
            let _ = user::write(&self.vmas, m, rem, &timespec(0));
        }
        Ok(0)
    }

    /// Reads and validates a timespec; returns nanoseconds.
    pub(crate) fn read_timespec_ns<M: Machine>(&self, m: &mut M, addr: u64) -> Result<u64, Errno> {
        let raw = user::read_array::<M, 16>(&self.vmas, m, addr)?;
        let sec = i64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
        let nsec = i64::from_le_bytes(raw[8..].try_into().unwrap_or_default());
        if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
            return Err(Errno::EINVAL);
        }
        Ok((sec as u64).saturating_mul(1_000_000_000).saturating_add(nsec as u64))
    }
}
