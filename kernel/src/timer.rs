//! The process's timers: the three interval timers (`setitimer`: ITIMER_REAL, behind `alarm` too;
//! ITIMER_VIRTUAL and ITIMER_PROF, on CPU time) and POSIX timers (`timer_create`). Hardware-free: the
//! syscall layer asks which have expired at a given time ([`Timers::expire`]) and when the next one will
//! ([`Timers::next_deadline`]), and the arch side arms its timer interrupt for that.
//!
//! CPU time here is the time the process did not spend waiting in the kernel (the only thread runs
//! whenever it does not wait), so ITIMER_VIRTUAL and ITIMER_PROF count alike.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// Which time a timer counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerClock {
    /// Monotonic nanoseconds (CLOCK_MONOTONIC, CLOCK_BOOTTIME; CLOCK_REALTIME converted at arming: the
    /// guest's wall clock never jumps).
    Monotonic,
    /// The process's CPU time.
    Cpu,
}

/// An armed timer: when it next expires, and its period (0: once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arming {
    pub deadline: u64,
    pub interval: u64,
}

/// What an expiring timer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// SIGEV_NONE: nothing (timer_gettime shows it).
    None,
    /// SIGEV_SIGNAL (to the process) or SIGEV_THREAD_ID (to `thread`).
    Signal { signo: u32, value: u64, thread: Option<i32> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PosixTimer {
    pub id: i32,
    pub clock: TimerClock,
    /// A CLOCK_REALTIME-family timer: absolute times given to it are wall-clock times.
    pub wall_clock: bool,
    pub notify: Notify,
    pub armed: Option<Arming>,
    /// The overrun count of the last signal delivered (timer_getoverrun).
    pub last_overrun: i32,
}

/// Which timer expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Real,
    Virtual,
    Prof,
    Posix(i32),
}

/// One timer's expiry at a check: how often it expired since the last check (more than once when the
/// process was not looking, e.g. a short period during a long wait).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    pub source: Source,
    pub count: u64,
}

/// Most POSIX timers a process may have.
pub const MAX_TIMERS: usize = 1024;

#[derive(Clone, Debug, Default)]
pub struct Timers {
    pub real: Option<Arming>,
    pub virtual_: Option<Arming>,
    pub prof: Option<Arming>,
    pub posix: Vec<PosixTimer>,
}

/// Advances `arming` past `now`; returns how many expirations that was (0: not yet due).
fn advance(arming: &mut Option<Arming>, now: u64) -> u64 {
    let Some(armed) = arming else { return 0 };
    if now < armed.deadline {
        return 0;
    }
    if armed.interval == 0 {
        *arming = None;
        return 1;
    }
    let periods = (now - armed.deadline) / armed.interval + 1;
    armed.deadline = armed.deadline.saturating_add(periods.saturating_mul(armed.interval));
    periods
}

impl Timers {
    /// Whether any timer is armed (the common case has none: then nothing is asked of the hardware).
    pub fn any_armed(&self) -> bool {
        self.real.is_some()
            || self.virtual_.is_some()
            || self.prof.is_some()
            || self.posix.iter().any(|t| t.armed.is_some())
    }

    /// The timers that expired by `now` (monotonic) and `cpu` (CPU time), re-armed for their next period.
    pub fn expire(&mut self, now: u64, cpu: u64, out: &mut Vec<Expiry>) {
        for (source, arming, at) in [
            (Source::Real, &mut self.real, now),
            (Source::Virtual, &mut self.virtual_, cpu),
            (Source::Prof, &mut self.prof, cpu),
        ] {
            let count = advance(arming, at);
            if count > 0 {
                out.push(Expiry { source, count });
            }
        }
        for timer in &mut self.posix {
            let at = if timer.clock == TimerClock::Cpu { cpu } else { now };
            let count = advance(&mut timer.armed, at);
            if count > 0 {
                out.push(Expiry { source: Source::Posix(timer.id), count });
            }
        }
    }

    /// The monotonic time of the next expiry. CPU-time timers count only while the process runs: they
    /// are left out while it waits (`running` false), and otherwise expire `deadline - cpu` from now.
    pub fn next_deadline(&self, now: u64, cpu: u64, running: bool) -> Option<u64> {
        let cpu_deadline = |arming: &Option<Arming>| {
            arming.filter(|_| running).map(|a| now.saturating_add(a.deadline.saturating_sub(cpu)))
        };
        let mut next = self.real.map(|a| a.deadline);
        let mut take = |candidate: Option<u64>| {
            if let Some(c) = candidate {
                next = Some(next.map_or(c, |n: u64| n.min(c)));
            }
        };
        take(cpu_deadline(&self.virtual_));
        take(cpu_deadline(&self.prof));
        for timer in &self.posix {
            match timer.clock {
                TimerClock::Monotonic => take(timer.armed.map(|a| a.deadline)),
                TimerClock::Cpu => take(cpu_deadline(&timer.armed)),
            }
        }
        next
    }

    pub fn posix(&mut self, id: i32) -> Option<&mut PosixTimer> {
        self.posix.iter_mut().find(|timer| timer.id == id)
    }

    /// A new timer's id: the lowest not in use.
    pub fn free_id(&self) -> Option<i32> {
        (0..MAX_TIMERS as i32).find(|id| self.posix.iter().all(|timer| timer.id != *id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_and_periodic_timers_expire_and_count_missed_periods() {
        let mut timers = Timers { real: Some(Arming { deadline: 100, interval: 0 }), ..Timers::default() };
        timers.posix.push(PosixTimer {
            id: 0,
            clock: TimerClock::Monotonic,
            wall_clock: false,
            notify: Notify::None,
            armed: Some(Arming { deadline: 50, interval: 10 }),
            last_overrun: 0,
        });
        let mut out = Vec::new();
        timers.expire(49, 0, &mut out);
        assert!(out.is_empty());
        assert_eq!(timers.next_deadline(49, 0, true), Some(50));
        timers.expire(125, 0, &mut out);
        assert_eq!(out, [Expiry { source: Source::Real, count: 1 }, Expiry { source: Source::Posix(0), count: 8 }]);
        assert_eq!(timers.real, None);
        assert_eq!(timers.posix[0].armed, Some(Arming { deadline: 130, interval: 10 }));
        assert_eq!(timers.free_id(), Some(1));
    }

    #[test]
    fn cpu_timers_do_not_run_while_the_process_waits() {
        let timers = Timers { virtual_: Some(Arming { deadline: 1_000, interval: 0 }), ..Timers::default() };
        assert_eq!(timers.next_deadline(5_000, 400, true), Some(5_600));
        assert_eq!(timers.next_deadline(5_000, 400, false), None);
        assert!(timers.any_armed());
        assert!(!Timers::default().any_armed());
    }
}
