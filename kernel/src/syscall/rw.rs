//! Reading and writing descriptors: read/write, their vector and positional forms, and lseek.

use alloc::vec;
use alloc::vec::Vec;

use super::{
    count, Stop, SysResult, Wait, Waker, CHUNK, MAX_RW_COUNT, O_ACCMODE, O_APPEND, O_NONBLOCK, O_PATH, O_RDONLY,
    O_RDWR, O_WRONLY,
};
use crate::errno::Errno;
use crate::fd::{fd_arg, FileKind, OpenFile};
use crate::fs::{Device, NodeKind};
use crate::machine::Machine;
use crate::process::Process;
use crate::user;

pub use linux_raw_sys::general::{SEEK_CUR, SEEK_DATA, SEEK_END, SEEK_HOLE, SEEK_SET};

/// Most iovecs per readv/writev (`UIO_MAXIOV`).
pub const IOV_MAX: u64 = 1024;

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
            FileKind::Epoll(_) => Err(Errno::EINVAL.into()),
            FileKind::EventFd(_) if !first => Ok(0),
            FileKind::EventFd(id) => self.eventfd_read(id, file.flags & O_NONBLOCK != 0, buf),
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
            FileKind::PipeRead(id) => self.pipe_read(id, file.flags, buf, first),
            FileKind::Socket { rx, shut, .. } if shut & 1 == 0 => self.pipe_read(rx, file.flags, buf, first),
            FileKind::Socket { .. } => Ok(0),
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
            FileKind::Epoll(_) => Err(Errno::EINVAL.into()),
            FileKind::EventFd(_) if !first => Ok(0),
            FileKind::EventFd(id) => self.eventfd_write(id, file.flags & O_NONBLOCK != 0, data),
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
            FileKind::PipeWrite(id) => self.pipe_write(id, file.flags, data, first),
            FileKind::Socket { tx, shut, .. } if shut & 2 == 0 => self.pipe_write(tx, file.flags, data, first),
            FileKind::Socket { .. } => Err(self.broken_pipe()),
        }
    }

    /// A read of pipe `id` (a pipe's read end, or a socket's receiving direction). A direction that keeps
    /// message boundaries gives one message per call, cut to `buf` (the rest of it is dropped).
    pub(crate) fn pipe_read(&mut self, id: usize, flags: u32, buf: &mut [u8], first: bool) -> Result<usize, Stop> {
        let pipe = self.pipes.get_mut(id).ok_or(Errno::EBADF)?;
        if pipe.buffer.is_empty() {
            return if pipe.writers == 0 || !first {
                Ok(0)
            } else if flags & O_NONBLOCK != 0 {
                Err(Errno::EAGAIN.into())
            } else {
                Err(Stop::Block(Wait::until(None, Errno::ERESTARTSYS, "read from an empty pipe").woken_by(Waker::Io)))
            };
        }
        let message = match &mut pipe.messages {
            Some(_) if !first => return Ok(0),
            Some(lengths) => lengths.pop_front(),
            None => None,
        };
        let available = message.unwrap_or(pipe.buffer.len());
        let n = available.min(buf.len());
        for (dest, byte) in buf.iter_mut().zip(pipe.buffer.drain(..n)) {
            *dest = byte;
        }
        if message.is_some() {
            pipe.buffer.drain(..available - n);
        }
        Ok(n)
    }

    /// A write to pipe `id` (a pipe's write end, or a socket's sending direction). A direction that keeps
    /// message boundaries takes `data` whole as one message, or waits for room (EMSGSIZE if it can never
    /// fit).
    pub(crate) fn pipe_write(&mut self, id: usize, flags: u32, data: &[u8], first: bool) -> Result<usize, Stop> {
        let pipe = self.pipes.get_mut(id).ok_or(Errno::EBADF)?;
        if pipe.readers == 0 {
            return Err(self.broken_pipe());
        }
        let messages = pipe.messages.is_some();
        if messages && data.len() > crate::pipe::PIPE_CAPACITY {
            return Err(Errno::EMSGSIZE.into());
        }
        let space = pipe.space();
        if space == 0 || (messages && space < data.len()) {
            return if !first {
                Ok(0)
            } else if flags & O_NONBLOCK != 0 {
                Err(Errno::EAGAIN.into())
            } else {
                Err(Stop::Block(Wait::until(None, Errno::ERESTARTSYS, "write to a full pipe").woken_by(Waker::Io)))
            };
        }
        if messages && !first {
            return Ok(0);
        }
        let n = space.min(data.len());
        pipe.buffer.try_reserve(n).map_err(|_| Errno::ENOMEM)?;
        pipe.buffer.extend(&data[..n]);
        if let Some(lengths) = &mut pipe.messages {
            lengths.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
            lengths.push_back(n);
        }
        Ok(n)
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
        chunked(total, |done, want| {
            let at = pos.saturating_add(done as u64);
            let n = self.read_source(m, file, at, &mut bounce[..want], first && done == 0)?;
            user::write(&self.vmas, m, addr + done as u64, &bounce[..n])?;
            Ok(n)
        })
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
            // Straight from app memory, no kernel buffer (the common case: every `printf`).
            return chunked(total, |done, want| {
                let at = addr + done as u64;
                user::check_read(&self.vmas, at, want as u64)?;
                m.console_from_user(&self.vmas, stream, at, want).map_err(|_| Errno::EFAULT)?;
                Ok(want)
            });
        }
        let mut bounce = vec![0u8; total.min(CHUNK)];
        chunked(total, |done, want| {
            user::read(&self.vmas, m, addr + done as u64, &mut bounce[..want])?;
            let at = pos.saturating_add(done as u64);
            self.write_sink(m, file, at, &bounce[..want], first && done == 0)
        })
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
        if self.message_socket(&file) && len > crate::pipe::PIPE_CAPACITY as u64 {
            return Err(Errno::EMSGSIZE.into());
        }
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
    pub(crate) fn read_iovecs<M: Machine>(
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
        if self.message_socket(&file) {
            return self.socket_readv(m, &file, iov, iovcnt);
        }
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
        if self.message_socket(&file) {
            return self.socket_writev(m, &file, iov, iovcnt);
        }
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
}

/// Access-mode checks shared with the file syscalls.
pub(crate) fn access_allows_write(flags: u32) -> bool {
    matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR)
}

/// Moves `total` bytes in chunks of at most [`CHUNK`]: `step(done, want)` moves up to `want` bytes and says
/// how many. A short chunk ends the transfer; so does an error, which is the result only if nothing had
/// moved yet (after a partial transfer Linux returns the short count).
fn chunked(total: usize, mut step: impl FnMut(usize, usize) -> Result<usize, Stop>) -> Result<usize, Stop> {
    let mut done = 0usize;
    while done < total {
        let want = (total - done).min(CHUNK);
        match step(done, want) {
            Ok(n) => {
                done += n;
                if n < want {
                    break;
                }
            }
            Err(error) if done == 0 => return Err(error),
            Err(_) => break,
        }
    }
    Ok(done)
}
