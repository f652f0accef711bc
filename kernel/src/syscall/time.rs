//! Clocks and sleeping. Sleeping idles the machine until the monotonic deadline; no signal can
//! interrupt it, so the remaining time written back is always zero.

use super::{int_arg, SysResult};
use crate::signal::deliver::Target;
use crate::signal::info::SigInfo;
use crate::signal::{SIGALRM, SIGPROF, SIGVTALRM};
use crate::timer::{Arming, Notify, PosixTimer, Source, TimerClock};

pub use linux_raw_sys::general::{
    ITIMER_PROF, ITIMER_REAL, ITIMER_VIRTUAL, SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD, SIGEV_THREAD_ID,
};

/// `struct timeval` for `ns` nanoseconds (microseconds, rounded up as Linux reports timer values).
fn timeval(ns: u64) -> [u8; 16] {
    let us = ns.div_ceil(1000);
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&((us / 1_000_000) as i64).to_le_bytes());
    raw[8..].copy_from_slice(&((us % 1_000_000) as i64).to_le_bytes());
    raw
}

/// A `struct timeval` from the app, as nanoseconds (EINVAL for a negative or out-of-range one).
fn read_timeval(raw: &[u8]) -> Result<u64, Errno> {
    let sec = i64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
    let usec = i64::from_le_bytes(raw[8..16].try_into().unwrap_or_default());
    if sec < 0 || !(0..1_000_000).contains(&usec) {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64).saturating_mul(NS_PER_SEC).saturating_add(usec as u64 * 1000))
}

/// A `struct timespec` from the app, as nanoseconds.
fn read_timespec(raw: &[u8]) -> Result<u64, Errno> {
    let sec = i64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
    let nsec = i64::from_le_bytes(raw[8..16].try_into().unwrap_or_default());
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64).saturating_mul(NS_PER_SEC).saturating_add(nsec as u64))
}
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

/// `struct timespec` for `ns` nanoseconds.
pub(crate) fn timespec(ns: u64) -> [u8; 16] {
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
        let deadline = self.deadline_for(m, super::nr::NANOSLEEP, Some(duration));
        self.sleep_until(m, deadline, rem, Errno::ERESTART_RESTARTBLOCK)
    }

    /// Sleeps until the monotonic `deadline`; a signal interrupts with `interrupted` after writing the
    /// time left to `rem` (if not 0).
    fn sleep_until<M: Machine>(&mut self, m: &mut M, deadline: Option<u64>, rem: u64, interrupted: Errno) -> SysResult {
        if Self::passed(m, deadline) {
            return Ok(0);
        }
        let mut wait = super::Wait::until(deadline, interrupted, "sleep");
        wait.remaining_to = (rem != 0).then_some(rem);
        Err(super::Stop::Block(wait))
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
        if flags & TIMER_ABSTIME == 0 {
            let deadline = self.deadline_for(m, super::nr::CLOCK_NANOSLEEP, Some(value));
            return self.sleep_until(m, deadline, rem, Errno::ERESTART_RESTARTBLOCK);
        }
        let deadline = if realtime { Self::realtime_to_monotonic(m, value) } else { value };
        // An absolute sleep restarts as it was called (its deadline does not move).
        self.sleep_until(m, Some(deadline), 0, Errno::ERESTARTNOHAND)
    }

    /// A CLOCK_REALTIME time as a monotonic one (the guest's wall clock never jumps).
    fn realtime_to_monotonic<M: Machine>(m: &mut M, realtime_ns: u64) -> u64 {
        let (now_real, now_mono) = (m.realtime_ns(), m.monotonic_ns());
        now_mono.saturating_add(realtime_ns.saturating_sub(now_real))
    }

    /// The process's CPU time at monotonic `now`: the time it did not wait in the kernel.
    pub(crate) fn cpu_ns(&self, now: u64) -> u64 {
        now.saturating_sub(self.idle_ns)
    }

    /// Runs the timers due at `now`: each expiry queues its signal (a POSIX timer whose signal is still
    /// pending counts an overrun instead).
    pub(crate) fn expire_timers(&mut self, now: u64) {
        if !self.timers.any_armed() {
            return;
        }
        let mut expired = alloc::vec::Vec::new();
        self.timers.expire(now, self.cpu_ns(now), &mut expired);
        for expiry in expired {
            let missed = i32::try_from(expiry.count - 1).unwrap_or(i32::MAX);
            let (signal, target) = match expiry.source {
                Source::Real => (SIGALRM, Target::Process),
                Source::Virtual => (SIGVTALRM, Target::Process),
                Source::Prof => (SIGPROF, Target::Process),
                Source::Posix(id) => {
                    let Some(timer) = self.timers.posix(id) else { continue };
                    let Notify::Signal { signo, value, thread } = timer.notify else { continue };
                    let target = thread.map_or(Target::Process, Target::Thread);
                    let is_this_timer = |info: &SigInfo| info.is_from_timer(id);
                    let queue = match target {
                        Target::Process => &mut self.pending,
                        Target::Thread(tid) => match self.thread_index(tid) {
                            Some(index) => &mut self.threads[index].pending,
                            None => continue, // the thread has exited
                        },
                    };
                    if let Some(queued) = queue.find_timer_signal(signo, is_this_timer) {
                        queued.set_overrun(queued.overrun().saturating_add(missed).saturating_add(1));
                        continue;
                    }
                    let _ = self.send_signal(SigInfo::timer(signo, id, missed, value), target);
                    continue;
                }
            };
            let _ = self.send_signal(SigInfo::kernel(signal), target);
        }
    }

    /// A timer's signal is being delivered: timer_getoverrun reports its overrun from now on.
    pub(crate) fn timer_signal_delivered(&mut self, info: &SigInfo) {
        if let Some(timer) = self.timers.posix(info.timer_id()) {
            timer.last_overrun = info.overrun();
        }
    }

    /// Whether any timer runs (when none does and none did, the hardware timer needs no attention).
    pub fn timers_armed(&self) -> bool {
        self.timers.any_armed() || self.threads.len() > 1
    }

    /// When the arch side's timer must interrupt the app next (monotonic ns): the next timer, or the
    /// scheduler's next slice end or wait deadline.
    pub fn next_timer_deadline<M: Machine>(&self, m: &mut M) -> Option<u64> {
        let sched = self.sched_deadline();
        if !self.timers.any_armed() {
            return sched;
        }
        let now = m.monotonic_ns();
        let timer = self.timers.next_deadline(now, self.cpu_ns(now), true);
        match (timer, sched) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The arch side's timer interrupted the app: the timers due now queue their signals, and the
    /// scheduler sees whether a switch is due.
    pub fn timer_interrupt<M: Machine>(&mut self, m: &mut M) {
        let now = m.monotonic_ns();
        self.expire_timers(now);
        self.sched_tick(now);
    }

    /// An interval timer's arming as seen now, in `struct itimerval` form (interval, then value; µs).
    fn itimer(&self, which: u32, now: u64) -> [u8; 32] {
        let arming = match which {
            ITIMER_REAL => self.timers.real,
            ITIMER_VIRTUAL => self.timers.virtual_,
            _ => self.timers.prof,
        };
        let at = if which == ITIMER_REAL { now } else { self.cpu_ns(now) };
        let (interval, left) = arming.map_or((0, 0), |a| (a.interval, a.deadline.saturating_sub(at).max(1)));
        let mut raw = [0u8; 32];
        raw[..16].copy_from_slice(&timeval(interval));
        raw[16..].copy_from_slice(&timeval(left));
        raw
    }

    pub(crate) fn sys_getitimer<M: Machine>(&mut self, m: &mut M, which: u64, value: u64) -> SysResult {
        let which = which as u32;
        if which > ITIMER_PROF {
            return Err(Errno::EINVAL.into());
        }
        let now = m.monotonic_ns();
        user::write(&self.vmas, m, value, &self.itimer(which, now))?;
        Ok(0)
    }

    pub(crate) fn sys_setitimer<M: Machine>(&mut self, m: &mut M, which: u64, new: u64, old: u64) -> SysResult {
        let which = which as u32;
        if which > ITIMER_PROF {
            return Err(Errno::EINVAL.into());
        }
        let requested = if new != 0 {
            let raw: [u8; 32] = user::read_array(&self.vmas, m, new)?;
            Some((read_timeval(&raw[..16])?, read_timeval(&raw[16..])?))
        } else {
            None
        };
        let now = m.monotonic_ns();
        if old != 0 {
            user::write(&self.vmas, m, old, &self.itimer(which, now))?;
        }
        if let Some((interval, value)) = requested {
            self.arm_itimer(which, now, value, interval);
        }
        Ok(0)
    }

    fn arm_itimer(&mut self, which: u32, now: u64, value: u64, interval: u64) {
        let at = if which == ITIMER_REAL { now } else { self.cpu_ns(now) };
        let arming = (value != 0).then(|| Arming { deadline: at.saturating_add(value), interval });
        match which {
            ITIMER_REAL => self.timers.real = arming,
            ITIMER_VIRTUAL => self.timers.virtual_ = arming,
            _ => self.timers.prof = arming,
        }
    }

    /// alarm: ITIMER_REAL once, in seconds; returns the seconds the previous alarm had left (rounded).
    pub(crate) fn sys_alarm<M: Machine>(&mut self, m: &mut M, seconds: u64) -> SysResult {
        let now = m.monotonic_ns();
        let left = self.timers.real.map_or(0, |a| a.deadline.saturating_sub(now));
        let left_seconds = if left == 0 { 0 } else { (left + NS_PER_SEC / 2) / NS_PER_SEC }.max(u64::from(left > 0));
        let seconds = u64::from(seconds as u32);
        self.arm_itimer(ITIMER_REAL, now, seconds.saturating_mul(NS_PER_SEC), 0);
        Ok(left_seconds as i64)
    }

    pub(crate) fn sys_timer_create<M: Machine>(&mut self, m: &mut M, clock: u64, event: u64, id_out: u64) -> SysResult {
        let clock_id = clock as u32;
        let clock = match clock_id {
            CLOCK_REALTIME | CLOCK_MONOTONIC | CLOCK_BOOTTIME | CLOCK_REALTIME_ALARM | CLOCK_BOOTTIME_ALARM
            | CLOCK_TAI => TimerClock::Monotonic,
            CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => TimerClock::Cpu,
            _ => return Err(Errno::EINVAL.into()),
        };
        let wall_clock = is_realtime(clock_id)?;
        let id = self.timers.free_id().ok_or(Errno::EAGAIN)?;
        let notify = if event == 0 {
            Notify::Signal { signo: SIGALRM, value: id as u64, thread: None }
        } else {
            // struct sigevent: sigev_value (8), sigev_signo (4), sigev_notify (4), _tid (4) ...
            let raw: [u8; 24] = user::read_array(&self.vmas, m, event)?;
            let value = u64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
            let signo = u32::from_le_bytes(raw[8..12].try_into().unwrap_or_default());
            let how = u32::from_le_bytes(raw[12..16].try_into().unwrap_or_default());
            let tid = i32::from_le_bytes(raw[16..20].try_into().unwrap_or_default());
            match how {
                SIGEV_NONE => Notify::None,
                SIGEV_SIGNAL | SIGEV_THREAD if crate::signal::is_signal(signo) => {
                    Notify::Signal { signo, value, thread: None }
                }
                SIGEV_THREAD_ID if crate::signal::is_signal(signo) && self.threads.iter().any(|t| t.tid == tid) => {
                    Notify::Signal { signo, value, thread: Some(tid) }
                }
                _ => return Err(Errno::EINVAL.into()),
            }
        };
        user::write_i32(&self.vmas, m, id_out, id)?;
        self.timers.posix.try_reserve(1).map_err(|_| Errno::EAGAIN)?;
        self.timers.posix.push(PosixTimer { id, clock, wall_clock, notify, armed: None, last_overrun: 0 });
        Ok(0)
    }

    /// A timer's arming as `struct itimerspec` (interval, then time left; ns).
    fn timer_spec(&self, timer: &PosixTimer, now: u64) -> [u8; 32] {
        let at = if timer.clock == TimerClock::Cpu { self.cpu_ns(now) } else { now };
        let (interval, left) = timer.armed.map_or((0, 0), |a| (a.interval, a.deadline.saturating_sub(at).max(1)));
        let mut raw = [0u8; 32];
        raw[..16].copy_from_slice(&timespec(interval));
        raw[16..].copy_from_slice(&timespec(left));
        raw
    }

    fn timer_arg(&mut self, id: u64) -> Result<PosixTimer, Errno> {
        self.timers.posix(int_arg(id)).copied().ok_or(Errno::EINVAL)
    }

    pub(crate) fn sys_timer_settime<M: Machine>(
        &mut self,
        m: &mut M,
        id: u64,
        flags: u64,
        new: u64,
        old: u64,
    ) -> SysResult {
        let timer = self.timer_arg(id)?;
        let raw: [u8; 32] = user::read_array(&self.vmas, m, new)?;
        let (interval, value) = (read_timespec(&raw[..16])?, read_timespec(&raw[16..])?);
        let now = m.monotonic_ns();
        if old != 0 {
            user::write(&self.vmas, m, old, &self.timer_spec(&timer, now))?;
        }
        let at = if timer.clock == TimerClock::Cpu { self.cpu_ns(now) } else { now };
        let deadline = if flags as u32 & TIMER_ABSTIME != 0 {
            // The timer counts monotonic (or CPU) time; a wall-clock time converts once.
            if timer.wall_clock {
                Self::realtime_to_monotonic(m, value)
            } else {
                value
            }
        } else {
            at.saturating_add(value)
        };
        let armed = (value != 0).then_some(Arming { deadline, interval });
        if let Some(slot) = self.timers.posix(timer.id) {
            slot.armed = armed;
        }
        Ok(0)
    }

    pub(crate) fn sys_timer_gettime<M: Machine>(&mut self, m: &mut M, id: u64, out: u64) -> SysResult {
        let timer = self.timer_arg(id)?;
        let now = m.monotonic_ns();
        user::write(&self.vmas, m, out, &self.timer_spec(&timer, now))?;
        Ok(0)
    }

    pub(crate) fn sys_timer_getoverrun(&mut self, id: u64) -> SysResult {
        Ok(i64::from(self.timer_arg(id)?.last_overrun))
    }

    pub(crate) fn sys_timer_delete(&mut self, id: u64) -> SysResult {
        let timer = self.timer_arg(id)?;
        self.timers.posix.retain(|t| t.id != timer.id);
        if let Notify::Signal { signo, .. } = timer.notify {
            // Its queued signal goes too, from whichever queue holds it (SIGEV_THREAD_ID: a thread's).
            let is_this_timer = |info: &SigInfo| info.is_from_timer(timer.id);
            self.pending.remove_where(signo, is_this_timer);
            for thread in &mut self.threads {
                thread.pending.remove_where(signo, is_this_timer);
            }
        }
        Ok(0)
    }

    /// Reads and validates a timespec; returns nanoseconds.
    pub(crate) fn read_timespec_ns<M: Machine>(&self, m: &mut M, addr: u64) -> Result<u64, Errno> {
        read_timespec(&user::read_array::<M, 16>(&self.vmas, m, addr)?)
    }
}
