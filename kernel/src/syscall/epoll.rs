//! epoll (create, ctl, wait, pwait, pwait2) and eventfd: what event loops and the Go runtime's netpoller
//! wait with. Readiness is poll's (`Process::poll_ready`); edge-triggered interest reports a ready bit
//! once until it goes away and comes back. A wait that nothing is ready for parks the thread like poll
//! (`Waker::Io`: it looks again after other threads' syscalls).

use super::{count, int_arg, nr, Stop, SysResult, Wait, Waker, O_CLOEXEC, O_NONBLOCK, O_RDWR};
use crate::epoll::{Epoll, EventFd, Interest, MAX_INTEREST};
use crate::errno::Errno;
use crate::fd::{fd_arg, FileKind, OpenFile};
use crate::machine::Machine;
use crate::process::Process;
use crate::user;

pub use linux_raw_sys::general::{
    EPOLLERR, EPOLLET, EPOLLEXCLUSIVE, EPOLLHUP, EPOLLIN, EPOLLMSG, EPOLLONESHOT, EPOLLOUT, EPOLLPRI, EPOLLRDBAND,
    EPOLLRDHUP, EPOLLRDNORM, EPOLLWAKEUP, EPOLLWRBAND, EPOLLWRNORM, EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_DEL,
    EPOLL_CTL_MOD,
};

/// `EFD_*` (sys/eventfd.h): the same values as O_CLOEXEC and O_NONBLOCK, and EFD_SEMAPHORE.
pub const EFD_SEMAPHORE: u32 = 1;
/// `struct epoll_event` is packed on x86-64: `u32 events`, `u64 data`.
const EVENT_SIZE: u64 = 12;
/// The most epoll_wait takes at once (Linux: INT_MAX / sizeof(struct epoll_event)).
const MAX_EVENTS: u64 = (i32::MAX as u64) / EVENT_SIZE;
/// The event bits an interest may ask for.
const EVENT_BITS: u32 = EPOLLIN
    | EPOLLPRI
    | EPOLLOUT
    | EPOLLERR
    | EPOLLHUP
    | EPOLLRDNORM
    | EPOLLRDBAND
    | EPOLLWRNORM
    | EPOLLWRBAND
    | EPOLLMSG
    | EPOLLRDHUP;
const MODE_BITS: u32 = EPOLLET | EPOLLONESHOT | EPOLLWAKEUP | EPOLLEXCLUSIVE;

impl Process {
    pub(crate) fn sys_epoll_create(&mut self, size: u64) -> SysResult {
        if int_arg(size) <= 0 {
            return Err(Errno::EINVAL.into());
        }
        self.epoll_create(0)
    }

    pub(crate) fn sys_epoll_create1(&mut self, flags: u64) -> SysResult {
        if flags & !u64::from(EPOLL_CLOEXEC) != 0 {
            return Err(Errno::EINVAL.into());
        }
        self.epoll_create(flags as u32)
    }

    fn epoll_create(&mut self, flags: u32) -> SysResult {
        let id = self.epolls.create(Epoll::default())?;
        self.open_object(FileKind::Epoll(id), O_RDWR, flags & EPOLL_CLOEXEC != 0)
    }

    /// A new descriptor for an epoll or eventfd object (released with it if no fd is left).
    fn open_object(&mut self, kind: FileKind, flags: u32, cloexec: bool) -> SysResult {
        let limit = self.limit_nofile();
        match self.fds.open(OpenFile { kind, flags, offset: 0 }, cloexec, 0, limit) {
            Ok(fd) => Ok(i64::from(fd)),
            Err(e) => {
                self.release_file(OpenFile { kind, flags, offset: 0 });
                Err(e.into())
            }
        }
    }

    fn epoll_of(&self, epfd: i32) -> Result<usize, Errno> {
        match self.fds.get(epfd)?.1.kind {
            FileKind::Epoll(id) => Ok(id),
            _ => Err(Errno::EINVAL),
        }
    }

    pub(crate) fn sys_epoll_ctl<M: Machine>(
        &mut self,
        m: &mut M,
        epfd: u64,
        op: u64,
        fd: u64,
        event: u64,
    ) -> SysResult {
        let (epfd, op, fd) = (fd_arg(epfd), op as u32, fd_arg(fd));
        let id = self.epoll_of(epfd)?;
        let (description, target) = self.fds.get(fd)?;
        if fd == epfd {
            return Err(Errno::EINVAL.into());
        }
        match target.kind {
            // Regular files and directories are always ready: Linux refuses to watch them.
            FileKind::Node(_) => return Err(Errno::EPERM.into()),
            FileKind::Epoll(_) => return Err(Errno::EINVAL.into()), // nested instances: not supported
            _ => {}
        }
        let requested = if op == EPOLL_CTL_DEL {
            None
        } else {
            let raw: [u8; 12] = user::read_array(&self.vmas, m, event)?;
            let events = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
            let data = u64::from_le_bytes(raw[4..12].try_into().unwrap_or_default());
            if events & !(EVENT_BITS | MODE_BITS) != 0 {
                return Err(Errno::EINVAL.into());
            }
            Some((events, data))
        };
        let set = self.epolls.get_mut(id).ok_or(Errno::EBADF)?;
        set.interest.retain(|i| i.fd != fd || i.description == description);
        let existing = set.interest.iter().position(|i| i.fd == fd);
        match (op, existing, requested) {
            (EPOLL_CTL_ADD, Some(_), _) => Err(Errno::EEXIST.into()),
            (EPOLL_CTL_ADD, None, Some((events, data))) => {
                if set.interest.len() >= MAX_INTEREST {
                    return Err(Errno::ENOSPC.into());
                }
                set.interest.push(Interest { fd, description, events, data, reported: 0, disabled: false });
                self.poke_io_waiters();
                Ok(0)
            }
            (EPOLL_CTL_MOD, Some(i), Some((events, data))) => {
                set.interest[i] = Interest { fd, description, events, data, reported: 0, disabled: false };
                self.poke_io_waiters();
                Ok(0)
            }
            (EPOLL_CTL_DEL, Some(i), _) => {
                set.interest.remove(i);
                Ok(0)
            }
            (EPOLL_CTL_MOD | EPOLL_CTL_DEL, None, _) => Err(Errno::ENOENT.into()),
            _ => Err(Errno::EINVAL.into()),
        }
    }

    /// A change another thread's epoll_wait may care about: its wait looks again.
    fn poke_io_waiters(&mut self) {
        if self.io_waiters() {
            self.poke();
        }
    }

    pub(crate) fn sys_epoll_wait<M: Machine>(&mut self, m: &mut M, a: &[u64; 6], number: u64) -> SysResult {
        let (epfd, events, maxevents) = (a[0], a[1], a[2]);
        let timeout = match number {
            nr::EPOLL_PWAIT2 if a[3] != 0 => Some(self.read_timespec_ns(m, a[3])?),
            nr::EPOLL_PWAIT2 => None,
            _ => {
                let ms = int_arg(a[3]);
                (ms >= 0).then(|| u64::from(ms.unsigned_abs()).saturating_mul(1_000_000))
            }
        };
        let deadline = self.deadline_for(m, number, timeout);
        let maxevents = int_arg(maxevents);
        if maxevents <= 0 || maxevents as u64 > MAX_EVENTS {
            return Err(Errno::EINVAL.into());
        }
        let id = self.epoll_of(fd_arg(epfd))?;
        user::check_write(&self.vmas, events, maxevents as u64 * EVENT_SIZE)?;
        if number != nr::EPOLL_WAIT {
            self.wait_with_mask(m, a[4], a[5])?;
        }
        let ready = self.epoll_collect(id, maxevents as usize);
        if !ready.is_empty() {
            let raw: alloc::vec::Vec<u8> = ready
                .iter()
                .flat_map(|&(events, data)| events.to_le_bytes().into_iter().chain(data.to_le_bytes()))
                .collect();
            user::write(&self.vmas, m, events, &raw)?;
            return count(ready.len());
        }
        if Self::passed(m, deadline) {
            return Ok(0);
        }
        let wait = Wait::until(deadline, Errno::EINTR, "epoll_wait with nothing ready and no timeout");
        Err(Stop::Block(wait.woken_by(Waker::Io)))
    }

    /// The events of set `id` ready now (at most `max`), with edge-triggered and one-shot interest
    /// updated as reported.
    fn epoll_collect(&mut self, id: usize, max: usize) -> alloc::vec::Vec<(u32, u64)> {
        let Some(set) = self.epolls.get(id) else { return alloc::vec::Vec::new() };
        let mut interest = set.interest.clone();
        // Descriptors closed (or reused) since they were added drop out.
        interest.retain(|i| self.fds.get(i.fd).is_ok_and(|(description, _)| description == i.description));
        let mut ready = alloc::vec::Vec::new();
        for entry in &mut interest {
            let now = self.poll_ready(entry.fd, entry.events & EVENT_BITS);
            if entry.disabled || ready.len() >= max {
                continue;
            }
            let fresh = if entry.events & EPOLLET != 0 { now & !entry.reported } else { now };
            entry.reported &= now;
            if fresh == 0 {
                continue;
            }
            entry.reported |= now;
            if entry.events & EPOLLONESHOT != 0 {
                entry.disabled = true;
            }
            ready.push((now, entry.data));
        }
        if let Some(set) = self.epolls.get_mut(id) {
            set.interest = interest;
        }
        ready
    }

    pub(crate) fn sys_eventfd2(&mut self, initial: u64, flags: u64) -> SysResult {
        let flags = flags as u32;
        if flags & !(O_CLOEXEC | O_NONBLOCK | EFD_SEMAPHORE) != 0 {
            return Err(Errno::EINVAL.into());
        }
        let id = self
            .eventfds
            .create(EventFd { counter: u64::from(initial as u32), semaphore: flags & EFD_SEMAPHORE != 0 })?;
        self.open_object(FileKind::EventFd(id), O_RDWR | (flags & O_NONBLOCK), flags & O_CLOEXEC != 0)
    }

    /// A read of an eventfd: its count (or 1, as a semaphore) into `buf`, which holds at least 8 bytes.
    pub(crate) fn eventfd_read(&mut self, id: usize, nonblocking: bool, buf: &mut [u8]) -> Result<usize, Stop> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL.into());
        }
        let counter = self.eventfds.get_mut(id).ok_or(Errno::EBADF)?;
        if counter.counter == 0 {
            return Err(if nonblocking {
                Errno::EAGAIN.into()
            } else {
                Stop::Block(Wait::until(None, Errno::ERESTARTSYS, "read from an eventfd at 0").woken_by(Waker::Io))
            });
        }
        let value = if counter.semaphore { 1 } else { counter.counter };
        counter.counter -= value;
        buf[..8].copy_from_slice(&value.to_le_bytes());
        Ok(8)
    }

    /// A write to an eventfd: adds the 8-byte value in `data` to its count.
    pub(crate) fn eventfd_write(&mut self, id: usize, nonblocking: bool, data: &[u8]) -> Result<usize, Stop> {
        let value = data.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default())).ok_or(Errno::EINVAL)?;
        if value == u64::MAX {
            return Err(Errno::EINVAL.into());
        }
        let counter = self.eventfds.get_mut(id).ok_or(Errno::EBADF)?;
        if counter.counter > u64::MAX - 1 - value {
            return Err(if nonblocking {
                Errno::EAGAIN.into()
            } else {
                Stop::Block(Wait::until(None, Errno::ERESTARTSYS, "write to a full eventfd").woken_by(Waker::Io))
            });
        }
        counter.counter += value;
        Ok(8)
    }
}
