//! Clocks and sleeping. Sleeping idles the machine until the monotonic deadline; no signal can
//! interrupt it, so the remaining time written back is always zero.

use super::{int_arg, SysResult};
use crate::errno::Errno;
use crate::machine::Machine;
use crate::process::Kernel;
use crate::user;

pub const CLOCK_REALTIME: i32 = 0;
pub const CLOCK_MONOTONIC: i32 = 1;
pub const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
pub const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
pub const CLOCK_MONOTONIC_RAW: i32 = 4;
pub const CLOCK_REALTIME_COARSE: i32 = 5;
pub const CLOCK_MONOTONIC_COARSE: i32 = 6;
pub const CLOCK_BOOTTIME: i32 = 7;
pub const CLOCK_REALTIME_ALARM: i32 = 8;
pub const CLOCK_BOOTTIME_ALARM: i32 = 9;
pub const CLOCK_TAI: i32 = 11;
pub const TIMER_ABSTIME: u64 = 1;

const NS_PER_SEC: u64 = 1_000_000_000;

fn timespec(ns: u64) -> [u8; 16] {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&((ns / NS_PER_SEC) as i64).to_le_bytes());
    raw[8..].copy_from_slice(&((ns % NS_PER_SEC) as i64).to_le_bytes());
    raw
}

/// Whether a clock counts wall time (else time since boot).
fn is_realtime(clock: i32) -> Result<bool, Errno> {
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

impl Kernel {
    fn clock_now<M: Machine>(m: &mut M, clock: i32) -> Result<u64, Errno> {
        Ok(if is_realtime(clock)? { m.realtime_ns() } else { m.monotonic_ns() })
    }

    pub(crate) fn sys_clock_gettime<M: Machine>(&mut self, m: &mut M, clock: u64, tp: u64) -> SysResult {
        let now = Self::clock_now(m, int_arg(clock))?;
        user::write(&self.vmas, m, tp, &timespec(now))?;
        Ok(0)
    }

    pub(crate) fn sys_clock_getres<M: Machine>(&mut self, m: &mut M, clock: u64, res: u64) -> SysResult {
        let clock = int_arg(clock);
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
        let clock = int_arg(clock);
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
}
