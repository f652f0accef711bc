//! Waiting for descriptors: poll, ppoll, select and pselect6.

use alloc::vec;

use super::{count, int_arg, nr, Stop, SysResult, Wait, Waker};
use crate::errno::Errno;
use crate::fd::FileKind;
use crate::machine::Machine;
use crate::process::{Process, RLIMIT_NOFILE};
use crate::signal::SigSet;
use crate::user;

pub use linux_raw_sys::general::{POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, POLLRDNORM, POLLWRNORM};

/// select's bitmap size limit (`FD_SETSIZE`).
pub const FD_SETSIZE: u64 = 1024;

impl Process {
    /// Ready events of `fd` for poll (POLLNVAL for a bad descriptor); `struct pollfd` holds the low 16 bits.
    pub(crate) fn poll_ready(&self, fd: i32, events: u32) -> u32 {
        let Ok((_, file)) = self.fds.get(fd) else { return POLLNVAL };
        let readable = POLLIN | POLLRDNORM;
        let writable = POLLOUT | POLLWRNORM;
        let ready = match file.kind {
            FileKind::Stdin => readable,
            FileKind::Console(_) => writable,
            FileKind::Node(_) => readable | writable,
            FileKind::PipeRead(id) => match self.pipes.get(id) {
                Some(p) if !p.buffer.is_empty() && p.writers == 0 => readable | POLLHUP,
                Some(p) if !p.buffer.is_empty() => readable,
                Some(p) if p.writers == 0 => POLLHUP,
                Some(_) => 0,
                None => POLLNVAL,
            },
            FileKind::PipeWrite(id) => match self.pipes.get(id) {
                Some(p) if p.readers == 0 => writable | POLLERR,
                Some(p) if p.space() > 0 => writable,
                Some(_) => 0,
                None => POLLNVAL,
            },
            FileKind::EventFd(id) => match self.eventfds.get(id) {
                Some(e) => {
                    (if e.counter > 0 { readable } else { 0 }) | (if e.counter < u64::MAX - 1 { writable } else { 0 })
                }
                None => POLLNVAL,
            },
            FileKind::Socket { rx, tx, shut } => {
                let input = match self.pipes.get(rx) {
                    _ if shut & 1 != 0 => readable,
                    Some(p) if p.writers == 0 => readable | POLLHUP,
                    Some(p) if !p.buffer.is_empty() => readable,
                    Some(_) => 0,
                    None => POLLNVAL,
                };
                let output = match self.pipes.get(tx) {
                    _ if shut & 2 != 0 => writable | POLLERR,
                    Some(p) if p.readers == 0 => writable | POLLERR,
                    Some(p) if p.space() > 0 => writable,
                    Some(_) => 0,
                    None => POLLNVAL,
                };
                input | output
            }
            // An epoll instance is readable when one of its events is ready (not looked into here).
            FileKind::Epoll(_) => 0,
        };
        ready & (events | POLLERR | POLLHUP | POLLNVAL)
    }

    pub(crate) fn sys_poll<M: Machine>(&mut self, m: &mut M, fds: u64, nfds: u64, timeout_ms: u64) -> SysResult {
        let timeout_ms = int_arg(timeout_ms);
        let timeout = (timeout_ms >= 0).then(|| u64::from(timeout_ms.unsigned_abs()).saturating_mul(1_000_000));
        let deadline = self.deadline_for(m, nr::POLL, timeout);
        self.poll_common(m, fds, nfds, deadline, Errno::ERESTART_RESTARTBLOCK)
    }

    pub(crate) fn sys_ppoll<M: Machine>(
        &mut self,
        m: &mut M,
        fds: u64,
        nfds: u64,
        timeout: u64,
        sigmask: u64,
        sigsetsize: u64,
    ) -> SysResult {
        let timeout = if timeout == 0 { None } else { Some(self.read_timespec_ns(m, timeout)?) };
        let deadline = self.deadline_for(m, nr::PPOLL, timeout);
        self.wait_with_mask(m, sigmask, sigsetsize)?;
        self.poll_common(m, fds, nfds, deadline, Errno::ERESTARTNOHAND)
    }

    /// ppoll and pselect6 wait with `sigmask` (if not NULL) in force; the old mask comes back when the
    /// call returns, or after the handler of a signal that interrupted it.
    pub(crate) fn wait_with_mask<M: Machine>(&mut self, m: &mut M, sigmask: u64, sigsetsize: u64) -> Result<(), Errno> {
        if sigmask == 0 || self.thread().saved_mask.is_some() {
            return Ok(());
        }
        if sigsetsize != 8 {
            return Err(Errno::EINVAL);
        }
        let mask = SigSet(user::read_u64(&self.vmas, m, sigmask)?).as_mask();
        let thread = self.thread_mut();
        thread.saved_mask = Some(thread.mask);
        thread.mask = mask;
        Ok(())
    }

    fn poll_common<M: Machine>(
        &mut self,
        m: &mut M,
        fds: u64,
        nfds: u64,
        deadline: Option<u64>,
        interrupted: Errno,
    ) -> SysResult {
        if nfds > self.rlimits[RLIMIT_NOFILE].0.min(crate::fd::MAX_FDS as u64) {
            return Err(Errno::EINVAL.into());
        }
        let mut raw = vec![0u8; nfds as usize * 8];
        user::read(&self.vmas, m, fds, &mut raw)?;
        user::check_write(&self.vmas, fds, raw.len() as u64)?;
        let mut ready = 0usize;
        for entry in raw.chunks_exact_mut(8) {
            let fd = i32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
            let events = u32::from(u16::from_le_bytes([entry[4], entry[5]]));
            let revents = if fd < 0 { 0 } else { self.poll_ready(fd, events) };
            entry[6..8].copy_from_slice(&(revents as u16).to_le_bytes());
            if revents != 0 {
                ready += 1;
            }
        }
        user::write(&self.vmas, m, fds, &raw)?;
        if ready == 0 && !Self::passed(m, deadline) {
            return Err(Stop::Block(
                Wait::until(deadline, interrupted, "poll with nothing ready and no timeout").woken_by(Waker::Io),
            ));
        }
        count(ready)
    }

    /// select (timeval timeout) and pselect6 (timespec timeout; `sigmask_arg` points at the mask to wait
    /// with and its size).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sys_select<M: Machine>(
        &mut self,
        m: &mut M,
        nfds: u64,
        readfds: u64,
        writefds: u64,
        exceptfds: u64,
        timeout: u64,
        sigmask_arg: Option<u64>,
    ) -> SysResult {
        let pselect = sigmask_arg.is_some();
        let nfds = int_arg(nfds);
        if nfds < 0 {
            return Err(Errno::EINVAL.into());
        }
        let nfds = u64::from(nfds.unsigned_abs()).min(FD_SETSIZE);
        let timeout_ns = if timeout == 0 {
            None
        } else if pselect {
            Some(self.read_timespec_ns(m, timeout)?)
        } else {
            let raw = user::read_array::<M, 16>(&self.vmas, m, timeout)?;
            let sec = i64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
            let usec = i64::from_le_bytes(raw[8..].try_into().unwrap_or_default());
            if sec < 0 || !(0..1_000_000).contains(&usec) {
                return Err(Errno::EINVAL.into());
            }
            Some((sec as u64).saturating_mul(1_000_000_000).saturating_add(usec as u64 * 1000))
        };
        let number = if pselect { nr::PSELECT6 } else { nr::SELECT };
        let deadline = self.deadline_for(m, number, timeout_ns);
        if let Some(arg) = sigmask_arg.filter(|&arg| arg != 0) {
            // struct { const sigset_t *ss; size_t ss_len; }
            let raw: [u8; 16] = user::read_array(&self.vmas, m, arg)?;
            let set = u64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
            let size = u64::from_le_bytes(raw[8..].try_into().unwrap_or_default());
            self.wait_with_mask(m, set, size)?;
        }
        let bytes = nfds.div_ceil(64) as usize * 8;
        let mut sets = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
        for (set, &ptr) in sets.iter_mut().zip(&[readfds, writefds, exceptfds]) {
            if ptr != 0 {
                user::read(&self.vmas, m, ptr, set)?;
                user::check_write(&self.vmas, ptr, bytes as u64)?;
            }
        }
        let mut ready = 0usize;
        let mut results = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
        for fd in 0..nfds as usize {
            let (byte, bit) = (fd / 8, 1u8 << (fd % 8));
            let wanted: [bool; 3] = core::array::from_fn(|i| sets[i][byte] & bit != 0);
            if !wanted.iter().any(|&w| w) {
                continue;
            }
            let revents = self.poll_ready(fd as i32, POLLIN | POLLOUT | POLLPRI);
            if revents & POLLNVAL != 0 {
                return Err(Errno::EBADF.into());
            }
            let hits = [
                revents & (POLLIN | POLLHUP | POLLERR) != 0,
                revents & (POLLOUT | POLLERR) != 0,
                revents & POLLPRI != 0,
            ];
            for i in 0..3 {
                if wanted[i] && hits[i] {
                    results[i][byte] |= bit;
                    ready += 1;
                }
            }
        }
        for (result, &ptr) in results.iter().zip(&[readfds, writefds, exceptfds]) {
            if ptr != 0 {
                user::write(&self.vmas, m, ptr, result)?;
            }
        }
        if ready == 0 && !Self::passed(m, deadline) {
            return Err(Stop::Block(
                Wait::until(deadline, Errno::ERESTARTNOHAND, "select with nothing ready and no timeout")
                    .woken_by(Waker::Io),
            ));
        }
        if timeout != 0 && !pselect {
            // Linux writes back the time left.
            let left = deadline.map_or(0, |deadline| deadline.saturating_sub(m.monotonic_ns()));
            let raw =
                [((left / 1_000_000_000) as i64).to_le_bytes(), (((left % 1_000_000_000) / 1000) as i64).to_le_bytes()];
            let _ = user::write(&self.vmas, m, timeout, &raw.concat());
        }
        count(ready)
    }
}
