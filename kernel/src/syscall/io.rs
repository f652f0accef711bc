//! Descriptor I/O: read/write and their vector and positional forms, close, lseek, dup, fcntl, ioctl,
//! pipes, poll and select.

use alloc::vec;
use alloc::vec::Vec;

use super::{
    count, int_arg, Stop, SysResult, CHUNK, MAX_RW_COUNT, O_ACCMODE, O_APPEND, O_CLOEXEC, O_DIRECT, O_NONBLOCK, O_PATH,
    O_RDONLY, O_RDWR, O_WRONLY,
};
use crate::errno::Errno;
use crate::fd::{fd_arg, FileKind, OpenFile};
use crate::fs::{Device, NodeKind};
use crate::machine::Machine;
use crate::process::{Process, RLIMIT_NOFILE};
use crate::user;
use kernel_abi::Stream;

pub use linux_raw_sys::general::{
    FD_CLOEXEC, F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_GETFL, F_GETLK, F_GETPIPE_SZ, F_SETFD, F_SETFL, F_SETLK, F_SETLKW,
    F_UNLCK, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, POLLRDNORM, POLLWRNORM, SEEK_CUR, SEEK_DATA,
    SEEK_END, SEEK_HOLE, SEEK_SET,
};
pub use linux_raw_sys::ioctl::{FIOCLEX, FIONBIO, FIONCLEX, FIONREAD, TCGETS, TIOCGWINSZ};

/// Most iovecs per readv/writev (`UIO_MAXIOV`).
pub const IOV_MAX: u64 = 1024;
/// select's bitmap size limit (`FD_SETSIZE`).
pub const FD_SETSIZE: u64 = 1024;

fn readable(file: &OpenFile) -> Result<(), Errno> {
    if file.flags & O_PATH != 0 || file.flags & O_ACCMODE == O_WRONLY {
        return Err(Errno::EBADF);
    }
    Ok(())
}

fn writable(file: &OpenFile) -> Result<(), Errno> {
    if file.flags & O_PATH != 0 || file.flags & O_ACCMODE == O_RDONLY {
        return Err(Errno::EBADF);
    }
    Ok(())
}

/// Whether the file has a position (lseek, pread).
fn seekable(file: &OpenFile) -> bool {
    matches!(file.kind, FileKind::Node(_))
}

impl Process {
    fn limit_nofile(&self) -> usize {
        usize::try_from(self.rlimits[RLIMIT_NOFILE].0).unwrap_or(usize::MAX)
    }

    /// Releases what a description referred to once its last descriptor is gone.
    pub(crate) fn release_file(&mut self, file: OpenFile) {
        match file.kind {
            FileKind::Node(id) => self.fs.release(id),
            FileKind::PipeRead(id) => self.pipes.release(id, false),
            FileKind::PipeWrite(id) => self.pipes.release(id, true),
            FileKind::Stdin | FileKind::Console(_) => {}
        }
    }

    /// Produces up to `buf.len()` bytes from `file` at `pos`. `first` is false once the syscall has already
    /// transferred something (then an empty pipe ends the call instead of blocking).
    fn read_source<M: Machine>(
        &mut self,
        m: &mut M,
        file: &OpenFile,
        pos: u64,
        buf: &mut [u8],
        first: bool,
    ) -> Result<usize, Stop> {
        match file.kind {
            FileKind::Stdin => {
                let start = usize::try_from(pos).unwrap_or(usize::MAX);
                let available = self.stdin.get(start..).unwrap_or(&[]);
                let n = available.len().min(buf.len());
                buf[..n].copy_from_slice(&available[..n]);
                Ok(n)
            }
            FileKind::Console(_) | FileKind::PipeWrite(_) => Err(Errno::EBADF.into()),
            FileKind::Node(id) => match self.fs.node(id).map(|n| &n.kind) {
                Some(NodeKind::File(_)) => {
                    self.flush_shared(m, id, pos, buf.len() as u64);
                    Ok(self.fs.read_file(id, pos, buf)?)
                }
                Some(NodeKind::Directory(_)) => Err(Errno::EISDIR.into()),
                Some(NodeKind::Device(Device::Null)) => Ok(0),
                Some(NodeKind::Device(Device::Zero)) => {
                    buf.fill(0);
                    Ok(buf.len())
                }
                Some(NodeKind::Device(Device::Random)) => {
                    self.rng.fill_bytes(buf);
                    Ok(buf.len())
                }
                Some(NodeKind::Symlink(_)) | None => Err(Errno::EBADF.into()),
            },
            FileKind::PipeRead(id) => {
                let pipe = self.pipes.get_mut(id).ok_or(Errno::EBADF)?;
                if pipe.buffer.is_empty() {
                    return if pipe.writers == 0 || !first {
                        Ok(0)
                    } else if file.flags & O_NONBLOCK != 0 {
                        Err(Errno::EAGAIN.into())
                    } else {
                        Err(self.deadlock(m, "read from an empty pipe"))
                    };
                }
                let n = pipe.buffer.len().min(buf.len());
                for (dest, byte) in buf.iter_mut().zip(pipe.buffer.drain(..n)) {
                    *dest = byte;
                }
                Ok(n)
            }
        }
    }

    /// Consumes up to `data.len()` bytes into `file` at `pos`.
    fn write_sink<M: Machine>(
        &mut self,
        m: &mut M,
        file: &OpenFile,
        pos: u64,
        data: &[u8],
        first: bool,
    ) -> Result<usize, Stop> {
        match file.kind {
            FileKind::Console(stream) => {
                m.console(stream, data);
                Ok(data.len())
            }
            FileKind::Stdin | FileKind::PipeRead(_) => Err(Errno::EBADF.into()),
            FileKind::Node(id) => match self.fs.node(id).map(|n| &n.kind) {
                Some(NodeKind::File(_)) => {
                    let now = m.realtime_ns();
                    let written = self.fs.write_file(id, pos, data, now)?;
                    self.refresh_shared(m, id, pos, written as u64);
                    Ok(written)
                }
                Some(NodeKind::Device(_)) => Ok(data.len()),
                Some(NodeKind::Directory(_)) => Err(Errno::EISDIR.into()),
                Some(NodeKind::Symlink(_)) | None => Err(Errno::EBADF.into()),
            },
            FileKind::PipeWrite(id) => {
                let pipe = self.pipes.get_mut(id).ok_or(Errno::EBADF)?;
                if pipe.readers == 0 {
                    return Err(self.broken_pipe());
                }
                let space = pipe.space();
                if space == 0 {
                    return if !first {
                        Ok(0)
                    } else if file.flags & O_NONBLOCK != 0 {
                        Err(Errno::EAGAIN.into())
                    } else {
                        Err(self.deadlock(m, "write to a full pipe"))
                    };
                }
                let n = space.min(data.len());
                pipe.buffer.try_reserve(n).map_err(|_| Errno::ENOMEM)?;
                pipe.buffer.extend(&data[..n]);
                Ok(n)
            }
        }
    }

    /// Reads into app memory at `addr` (already checked writable) through a bounce buffer. A fault after
    /// some bytes moved returns the short count, as Linux does.
    fn read_loop<M: Machine>(
        &mut self,
        m: &mut M,
        file: &OpenFile,
        pos: u64,
        addr: u64,
        len: u64,
        first: bool,
    ) -> Result<usize, Stop> {
        let total = usize::try_from(len).unwrap_or(usize::MAX);
        let mut bounce = vec![0u8; total.min(CHUNK)];
        let mut done = 0usize;
        while done < total {
            let want = (total - done).min(CHUNK);
            let at = pos.saturating_add(done as u64);
            let n = match self.read_source(m, file, at, &mut bounce[..want], first && done == 0) {
                Ok(n) => n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            if n == 0 {
                break;
            }
            if let Err(e) = user::write(&self.vmas, m, addr + done as u64, &bounce[..n]) {
                if done == 0 {
                    return Err(e.into());
                }
                break;
            }
            done += n;
            if n < want {
                break;
            }
        }
        Ok(done)
    }

    fn write_loop<M: Machine>(
        &mut self,
        m: &mut M,
        file: &OpenFile,
        pos: u64,
        addr: u64,
        len: u64,
        first: bool,
    ) -> Result<usize, Stop> {
        let total = usize::try_from(len).unwrap_or(usize::MAX);
        if let FileKind::Console(stream) = file.kind {
            return self.console_loop(m, stream, addr, total);
        }
        let mut bounce = vec![0u8; total.min(CHUNK)];
        let mut done = 0usize;
        while done < total {
            let want = (total - done).min(CHUNK);
            if let Err(e) = user::read(&self.vmas, m, addr + done as u64, &mut bounce[..want]) {
                if done == 0 {
                    return Err(e.into());
                }
                break;
            }
            let at = pos.saturating_add(done as u64);
            let n = match self.write_sink(m, file, at, &bounce[..want], first && done == 0) {
                Ok(n) => n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            done += n;
            if n < want {
                break;
            }
        }
        Ok(done)
    }

    /// [`Self::write_loop`] to stdout or stderr: straight from app memory, no kernel buffer (the common
    /// case: every `printf`). Stops at the first chunk that cannot be read.
    fn console_loop<M: Machine>(&mut self, m: &mut M, stream: Stream, addr: u64, total: usize) -> Result<usize, Stop> {
        let mut done = 0usize;
        while done < total {
            let want = (total - done).min(CHUNK);
            let at = addr + done as u64;
            let sent = user::check_read(&self.vmas, at, want as u64)
                .and_then(|()| m.console_from_user(&self.vmas, stream, at, want).map_err(|_| Errno::EFAULT));
            if sent.is_err() {
                if done == 0 {
                    return Err(Errno::EFAULT.into());
                }
                break;
            }
            done += want;
        }
        Ok(done)
    }

    /// The position a write at the description's offset starts at (end of file with O_APPEND).
    fn write_position(&self, file: &OpenFile) -> u64 {
        match file.kind {
            FileKind::Node(id) if file.flags & O_APPEND != 0 => self.fs.file_bytes(id).map_or(0, |d| d.len() as u64),
            _ => file.offset,
        }
    }

    fn advance(&mut self, description: usize, file: &OpenFile, pos: u64, n: usize) {
        if matches!(file.kind, FileKind::Node(_) | FileKind::Stdin) {
            if let Some(d) = self.fds.description_mut(description) {
                d.offset = pos.saturating_add(n as u64);
            }
        }
    }

    pub(crate) fn sys_read<M: Machine>(&mut self, m: &mut M, fd: u64, buf: u64, len: u64) -> SysResult {
        let (description, file) = self.fds.get(fd_arg(fd))?;
        readable(&file)?;
        let len = len.min(MAX_RW_COUNT);
        user::check_write(&self.vmas, buf, len)?;
        let n = self.read_loop(m, &file, file.offset, buf, len, true)?;
        self.advance(description, &file, file.offset, n);
        count(n)
    }

    pub(crate) fn sys_write<M: Machine>(&mut self, m: &mut M, fd: u64, buf: u64, len: u64) -> SysResult {
        let (description, file) = self.fds.get(fd_arg(fd))?;
        writable(&file)?;
        let len = len.min(MAX_RW_COUNT);
        user::check_read(&self.vmas, buf, len)?;
        let pos = self.write_position(&file);
        let n = self.write_loop(m, &file, pos, buf, len, true)?;
        self.advance(description, &file, pos, n);
        count(n)
    }

    fn positional(&self, fd: u64, offset: u64) -> Result<OpenFile, Errno> {
        let (_, file) = self.fds.get(fd_arg(fd))?;
        if !seekable(&file) {
            return Err(Errno::ESPIPE);
        }
        if (offset as i64) < 0 {
            return Err(Errno::EINVAL);
        }
        Ok(file)
    }

    pub(crate) fn sys_pread<M: Machine>(&mut self, m: &mut M, fd: u64, buf: u64, len: u64, offset: u64) -> SysResult {
        let file = self.positional(fd, offset)?;
        readable(&file)?;
        let len = len.min(MAX_RW_COUNT);
        user::check_write(&self.vmas, buf, len)?;
        count(self.read_loop(m, &file, offset, buf, len, true)?)
    }

    pub(crate) fn sys_pwrite<M: Machine>(&mut self, m: &mut M, fd: u64, buf: u64, len: u64, offset: u64) -> SysResult {
        let file = self.positional(fd, offset)?;
        writable(&file)?;
        let len = len.min(MAX_RW_COUNT);
        user::check_read(&self.vmas, buf, len)?;
        count(self.write_loop(m, &file, offset, buf, len, true)?)
    }

    /// Reads and checks an iovec array; each buffer must allow `perms`.
    fn read_iovecs<M: Machine>(
        &self,
        m: &mut M,
        iov: u64,
        iovcnt: u64,
        for_read: bool,
    ) -> Result<Vec<(u64, u64)>, Errno> {
        let iovcnt = u64::from(iovcnt as u32);
        if iovcnt > IOV_MAX {
            return Err(Errno::EINVAL);
        }
        let mut raw = vec![0u8; (iovcnt as usize) * 16];
        user::read(&self.vmas, m, iov, &mut raw)?;
        let mut total: u64 = 0;
        let mut out = Vec::with_capacity(iovcnt as usize);
        for entry in raw.chunks_exact(16) {
            let base = u64::from_le_bytes(entry[..8].try_into().unwrap_or_default());
            let len = u64::from_le_bytes(entry[8..].try_into().unwrap_or_default());
            total = total.checked_add(len).filter(|&t| t <= i64::MAX as u64).ok_or(Errno::EINVAL)?;
            out.push((base, len));
        }
        let mut budget = MAX_RW_COUNT;
        for (base, len) in &mut out {
            *len = (*len).min(budget);
            budget -= *len;
            if for_read {
                user::check_write(&self.vmas, *base, *len)?;
            } else {
                user::check_read(&self.vmas, *base, *len)?;
            }
        }
        Ok(out)
    }

    pub(crate) fn sys_readv<M: Machine>(&mut self, m: &mut M, fd: u64, iov: u64, iovcnt: u64) -> SysResult {
        let (description, file) = self.fds.get(fd_arg(fd))?;
        readable(&file)?;
        let iovecs = self.read_iovecs(m, iov, iovcnt, true)?;
        let mut done = 0usize;
        for (base, len) in iovecs {
            let n = match self.read_loop(m, &file, file.offset.saturating_add(done as u64), base, len, done == 0) {
                Ok(n) => n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            done += n;
            if (n as u64) < len {
                break;
            }
        }
        self.advance(description, &file, file.offset, done);
        count(done)
    }

    pub(crate) fn sys_writev<M: Machine>(&mut self, m: &mut M, fd: u64, iov: u64, iovcnt: u64) -> SysResult {
        let (description, file) = self.fds.get(fd_arg(fd))?;
        writable(&file)?;
        let iovecs = self.read_iovecs(m, iov, iovcnt, false)?;
        let pos = self.write_position(&file);
        let mut done = 0usize;
        for (base, len) in iovecs {
            let n = match self.write_loop(m, &file, pos.saturating_add(done as u64), base, len, done == 0) {
                Ok(n) => n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            done += n;
            if (n as u64) < len {
                break;
            }
        }
        self.advance(description, &file, pos, done);
        count(done)
    }

    pub(crate) fn sys_close(&mut self, fd: u64) -> SysResult {
        if let Some(file) = self.fds.close(fd_arg(fd))? {
            self.release_file(file);
        }
        Ok(0)
    }

    pub(crate) fn sys_lseek(&mut self, fd: u64, offset: u64, whence: u64) -> SysResult {
        let (description, file) = self.fds.get(fd_arg(fd))?;
        let FileKind::Node(id) = file.kind else { return Err(Errno::ESPIPE.into()) };
        let offset = offset as i64;
        let node = self.fs.node(id).ok_or(Errno::EBADF)?;
        let size = match &node.kind {
            NodeKind::File(_) => self.fs.file_bytes(id)?.len() as i64,
            NodeKind::Device(_) => return Ok(0),
            _ => 0,
        };
        let is_dir = node.is_dir();
        let new = match whence as u32 {
            SEEK_SET => Some(offset),
            SEEK_CUR => (file.offset as i64).checked_add(offset),
            SEEK_END if !is_dir => size.checked_add(offset),
            SEEK_DATA | SEEK_HOLE if !is_dir => {
                if offset < 0 {
                    return Err(Errno::EINVAL.into());
                }
                if offset >= size {
                    return Err(Errno::ENXIO.into());
                }
                Some(if whence as u32 == SEEK_DATA { offset } else { size })
            }
            _ => return Err(Errno::EINVAL.into()),
        };
        let new = new.filter(|&n| n >= 0).ok_or(Errno::EINVAL)?;
        if let Some(d) = self.fds.description_mut(description) {
            d.offset = new as u64;
        }
        Ok(new)
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
            FileKind::PipeRead(id) => self.pipes.get(id).map_or(0, |p| p.buffer.len() as u64),
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

    pub(crate) fn sys_pipe2<M: Machine>(&mut self, m: &mut M, fds_ptr: u64, flags: u64) -> SysResult {
        if flags & !u64::from(O_CLOEXEC | O_NONBLOCK | O_DIRECT) != 0 {
            return Err(Errno::EINVAL.into());
        }
        user::check_write(&self.vmas, fds_ptr, 8)?;
        let flags = flags as u32;
        let cloexec = flags & O_CLOEXEC != 0;
        let status = flags & O_NONBLOCK;
        let limit = self.limit_nofile();
        let id = self.pipes.create()?;
        let read_end = OpenFile { kind: FileKind::PipeRead(id), flags: O_RDONLY | status, offset: 0 };
        let write_end = OpenFile { kind: FileKind::PipeWrite(id), flags: O_WRONLY | status, offset: 0 };
        let read_fd = match self.fds.open(read_end, cloexec, 0, limit) {
            Ok(fd) => fd,
            Err(e) => {
                self.pipes.release(id, false);
                self.pipes.release(id, true);
                return Err(e.into());
            }
        };
        let write_fd = match self.fds.open(write_end, cloexec, 0, limit) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = self.sys_close(read_fd as u64);
                self.pipes.release(id, true);
                return Err(e.into());
            }
        };
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&read_fd.to_le_bytes());
        out[4..].copy_from_slice(&write_fd.to_le_bytes());
        if let Err(e) = user::write(&self.vmas, m, fds_ptr, &out) {
            let _ = self.sys_close(read_fd as u64);
            let _ = self.sys_close(write_fd as u64);
            return Err(e.into());
        }
        Ok(0)
    }

    /// Ready events of `fd` for poll (POLLNVAL for a bad descriptor); `struct pollfd` holds the low 16 bits.
    fn poll_ready(&self, fd: i32, events: u32) -> u32 {
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
        };
        ready & (events | POLLERR | POLLHUP | POLLNVAL)
    }

    pub(crate) fn sys_poll<M: Machine>(&mut self, m: &mut M, fds: u64, nfds: u64, timeout_ms: u64) -> SysResult {
        let timeout_ms = int_arg(timeout_ms);
        let timeout = (timeout_ms >= 0).then(|| u64::from(timeout_ms.unsigned_abs()).saturating_mul(1_000_000));
        self.poll_common(m, fds, nfds, timeout)
    }

    pub(crate) fn sys_ppoll<M: Machine>(
        &mut self,
        m: &mut M,
        fds: u64,
        nfds: u64,
        timeout: u64,
        sigsetsize: u64,
    ) -> SysResult {
        let _ = sigsetsize;
        let timeout = if timeout == 0 { None } else { Some(self.read_timespec_ns(m, timeout)?) };
        self.poll_common(m, fds, nfds, timeout)
    }

    fn poll_common<M: Machine>(&mut self, m: &mut M, fds: u64, nfds: u64, timeout_ns: Option<u64>) -> SysResult {
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
        if ready == 0 {
            self.wait_nothing(m, timeout_ns, "poll with nothing ready and no timeout")?;
        }
        count(ready)
    }

    /// Nothing is ready and, single-threaded, nothing will become ready: sleep out the timeout, or report
    /// a deadlock when there is none.
    pub(crate) fn wait_nothing<M: Machine>(
        &mut self,
        m: &mut M,
        timeout_ns: Option<u64>,
        what: &str,
    ) -> Result<(), Stop> {
        match timeout_ns {
            Some(0) => Ok(()),
            Some(ns) => {
                let deadline = m.monotonic_ns().saturating_add(ns);
                m.idle_until(deadline);
                Ok(())
            }
            None => Err(self.deadlock(m, what)),
        }
    }

    /// select (timeval timeout) and pselect6 (timespec timeout; the signal mask is ignored).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sys_select<M: Machine>(
        &mut self,
        m: &mut M,
        nfds: u64,
        readfds: u64,
        writefds: u64,
        exceptfds: u64,
        timeout: u64,
        pselect: bool,
    ) -> SysResult {
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
        if ready == 0 {
            self.wait_nothing(m, timeout_ns, "select with nothing ready and no timeout")?;
            if timeout != 0 && !pselect {
                // Linux writes back the time left: none.
                let _ = user::write(&self.vmas, m, timeout, &[0u8; 16]);
            }
        }
        count(ready)
    }

    /// A write to a pipe without readers: SIGPIPE kills unless ignored, blocked or handled; else EPIPE.
    fn broken_pipe(&self) -> Stop {
        if self.signals.default_kills(crate::syscall::signal::SIGPIPE) {
            Stop::Killed(crate::syscall::signal::SIGPIPE)
        } else {
            Stop::Errno(Errno::EPIPE)
        }
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

/// Access-mode checks shared with the file syscalls.
pub(crate) fn access_allows_write(flags: u32) -> bool {
    matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR)
}
