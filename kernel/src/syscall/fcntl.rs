//! Descriptor control: close, dup, fcntl and ioctl.

use super::{int_arg, SysResult, O_APPEND, O_CLOEXEC, O_DIRECT, O_NONBLOCK, O_PATH};
use crate::errno::Errno;
use crate::fd::{fd_arg, FileKind, OpenFile};
use crate::machine::Machine;
use crate::process::{Process, RLIMIT_NOFILE};
use crate::user;

pub use linux_raw_sys::general::{
    FD_CLOEXEC, F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_GETFL, F_GETLK, F_GETPIPE_SZ, F_SETFD, F_SETFL, F_SETLK, F_SETLKW,
    F_UNLCK,
};
pub use linux_raw_sys::ioctl::{FIOCLEX, FIONBIO, FIONCLEX, FIONREAD, TCGETS, TIOCGWINSZ};

impl Process {
    pub(crate) fn limit_nofile(&self) -> usize {
        usize::try_from(self.rlimits[RLIMIT_NOFILE].0).unwrap_or(usize::MAX)
    }

    /// Releases what a description referred to once its last descriptor is gone.
    pub(crate) fn release_file(&mut self, file: OpenFile) {
        match file.kind {
            FileKind::Node(id) => self.fs.release(id),
            FileKind::PipeRead(id) => self.pipes.release(id, false),
            FileKind::PipeWrite(id) => self.pipes.release(id, true),
            FileKind::Epoll(id) => self.epolls.release(id),
            FileKind::EventFd(id) => self.eventfds.release(id),
            FileKind::Socket { rx, tx, shut } => {
                if shut & 1 == 0 {
                    self.pipes.release(rx, false);
                }
                if shut & 2 == 0 {
                    self.pipes.release(tx, true);
                }
            }
            FileKind::Stdin | FileKind::Console(_) => {}
        }
    }

    pub(crate) fn sys_close(&mut self, fd: u64) -> SysResult {
        if let Some(file) = self.fds.close(fd_arg(fd))? {
            self.release_file(file);
        }
        Ok(0)
    }

    pub(crate) fn sys_dup(&mut self, fd: u64) -> SysResult {
        let limit = self.limit_nofile();
        Ok(i64::from(self.fds.dup(fd_arg(fd), 0, false, limit)?))
    }

    pub(crate) fn sys_dup2(&mut self, old: u64, new: u64) -> SysResult {
        let (old, new) = (fd_arg(old), fd_arg(new));
        if old == new {
            self.fds.get(old)?;
            return Ok(i64::from(new));
        }
        self.dup_to(old, new, false)
    }

    pub(crate) fn sys_dup3(&mut self, old: u64, new: u64, flags: u64) -> SysResult {
        let (old, new) = (fd_arg(old), fd_arg(new));
        if flags & !u64::from(O_CLOEXEC) != 0 || old == new {
            return Err(Errno::EINVAL.into());
        }
        self.dup_to(old, new, flags != 0)
    }

    fn dup_to(&mut self, old: i32, new: i32, cloexec: bool) -> SysResult {
        let limit = self.limit_nofile();
        if let Some(released) = self.fds.dup_to(old, new, cloexec, limit)? {
            self.release_file(released);
        }
        Ok(i64::from(new))
    }

    pub(crate) fn sys_fcntl<M: Machine>(&mut self, m: &mut M, fd: u64, cmd: u64, arg: u64) -> SysResult {
        let fd = fd_arg(fd);
        let (description, file) = self.fds.get(fd)?;
        let limit = self.limit_nofile();
        match cmd as u32 {
            F_DUPFD | F_DUPFD_CLOEXEC => {
                let min = usize::try_from(int_arg(arg)).map_err(|_| Errno::EINVAL)?;
                if min >= limit {
                    return Err(Errno::EINVAL.into());
                }
                Ok(i64::from(self.fds.dup(fd, min, cmd as u32 == F_DUPFD_CLOEXEC, limit)?))
            }
            F_GETFD => Ok(i64::from(self.fds.slot(fd)?.cloexec)),
            F_SETFD => {
                self.fds.set_cloexec(fd, arg & u64::from(FD_CLOEXEC) != 0)?;
                Ok(0)
            }
            F_GETFL => Ok(i64::from(file.flags)),
            F_SETFL => {
                if file.flags & O_PATH != 0 {
                    return Err(Errno::EBADF.into());
                }
                let changeable = O_APPEND | O_NONBLOCK | super::O_ASYNC | O_DIRECT | super::O_NOATIME;
                if let Some(d) = self.fds.description_mut(description) {
                    d.flags = (d.flags & !changeable) | (arg as u32 & changeable);
                }
                Ok(0)
            }
            F_GETLK => {
                // One process holds every lock it asks for: report the range unlocked.
                user::write(&self.vmas, m, arg, &(F_UNLCK as i16).to_le_bytes())?;
                Ok(0)
            }
            F_SETLK | F_SETLKW => {
                user::check_read(&self.vmas, arg, 32)?;
                Ok(0)
            }
            F_GETPIPE_SZ => match file.kind {
                FileKind::PipeRead(_) | FileKind::PipeWrite(_) => Ok(crate::pipe::PIPE_CAPACITY as i64),
                _ => Err(Errno::EBADF.into()),
            },
            _ => Err(Errno::EINVAL.into()),
        }
    }

    /// Bytes a read would return right now (FIONREAD).
    fn pending_bytes(&self, file: &OpenFile) -> u64 {
        match file.kind {
            FileKind::Stdin => (self.stdin.len() as u64).saturating_sub(file.offset),
            FileKind::PipeRead(id) | FileKind::Socket { rx: id, .. } => self
                .pipes
                .get(id)
                .map_or(0, |p| p.messages.as_ref().and_then(|m| m.front().copied()).unwrap_or(p.buffer.len()) as u64),
            FileKind::Node(id) => self.fs.file_bytes(id).map_or(0, |d| (d.len() as u64).saturating_sub(file.offset)),
            _ => 0,
        }
    }

    pub(crate) fn sys_ioctl<M: Machine>(&mut self, m: &mut M, fd: u64, request: u64, arg: u64) -> SysResult {
        let fd = fd_arg(fd);
        let (description, file) = self.fds.get(fd)?;
        match request as u32 {
            FIONBIO => {
                let on = user::read_u32(&self.vmas, m, arg)? != 0;
                if let Some(d) = self.fds.description_mut(description) {
                    d.flags = if on { d.flags | O_NONBLOCK } else { d.flags & !O_NONBLOCK };
                }
                Ok(0)
            }
            FIOCLEX | FIONCLEX => {
                self.fds.set_cloexec(fd, request as u32 == FIOCLEX)?;
                Ok(0)
            }
            FIONREAD => {
                let pending = self.pending_bytes(&file).min(i32::MAX as u64) as i32;
                user::write_i32(&self.vmas, m, arg, pending)?;
                Ok(0)
            }
            // No descriptor is a terminal (TCGETS, TIOCGWINSZ and every other request).
            _ => Err(Errno::ENOTTY.into()),
        }
    }
}
