//! AF_UNIX socket pairs: socketpair, send/recv (sendto, recvfrom, sendmsg, recvmsg), shutdown.
//!
//! A pair is two pipes, one per direction (`crate::pipe`): each end reads one and writes the other, so
//! blocking, `O_NONBLOCK`, poll/epoll readiness, EOF when the peer closes and EPIPE/SIGPIPE when it is
//! gone are the pipes' (and shared across processes like them). SOCK_STREAM is a byte stream;
//! SOCK_DGRAM and SOCK_SEQPACKET keep message boundaries: a write is one message (EMSGSIZE past the
//! 64 KiB a direction holds), a read takes one message, cut to the buffer (recvmsg says MSG_TRUNC). There
//! are no named sockets (`socket`, `bind`, `connect` are not implemented) and no ancillary data
//! (SCM_RIGHTS): a `sendmsg` with control data is EOPNOTSUPP.

use alloc::vec;
use alloc::vec::Vec;

use super::{int_arg, SysResult, CHUNK, O_NONBLOCK, O_RDWR};
use crate::errno::Errno;
use crate::fd::{fd_arg, FileKind, OpenFile};
use crate::machine::Machine;
use crate::pipe::PIPE_CAPACITY;
use crate::process::Process;
use crate::user;

pub use linux_raw_sys::net::{
    AF_UNIX, MSG_DONTWAIT, MSG_NOSIGNAL, MSG_TRUNC, MSG_WAITALL, SHUT_RD, SHUT_RDWR, SHUT_WR, SOCK_DGRAM,
    SOCK_SEQPACKET, SOCK_STREAM,
};

/// socketpair's type flags: close-on-exec and non-blocking (O_CLOEXEC and O_NONBLOCK, as Linux defines them).
pub const SOCK_CLOEXEC: u32 = super::O_CLOEXEC;
pub const SOCK_NONBLOCK: u32 = O_NONBLOCK;

/// `struct msghdr` on x86-64.
const MSGHDR_SIZE: usize = 56;

impl Process {
    pub(crate) fn sys_socketpair<M: Machine>(
        &mut self,
        m: &mut M,
        domain: u64,
        kind: u64,
        protocol: u64,
        sv: u64,
    ) -> SysResult {
        if domain as u32 != AF_UNIX {
            return Err(Errno::EAFNOSUPPORT.into());
        }
        let kind = kind as u32;
        if kind & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
            return Err(Errno::EINVAL.into());
        }
        let messages = match kind & 0xf {
            SOCK_STREAM => false,
            SOCK_DGRAM | SOCK_SEQPACKET => true,
            _ => return Err(Errno::EPROTONOSUPPORT.into()),
        };
        if protocol != 0 {
            return Err(Errno::EPROTONOSUPPORT.into());
        }
        user::check_write(&self.vmas, sv, 8)?;
        let create = |pipes: &mut crate::pipe::Pipes| if messages { pipes.create_messages() } else { pipes.create() };
        let one = create(&mut self.pipes)?;
        let other = match create(&mut self.pipes) {
            Ok(id) => id,
            Err(e) => {
                self.pipes.release(one, false);
                self.pipes.release(one, true);
                return Err(e.into());
            }
        };
        let flags = O_RDWR | if kind & SOCK_NONBLOCK != 0 { O_NONBLOCK } else { 0 };
        let cloexec = kind & SOCK_CLOEXEC != 0;
        let limit = self.limit_nofile();
        let ends = [(one, other), (other, one)];
        let mut fds = [0i32; 2];
        for (i, (rx, tx)) in ends.into_iter().enumerate() {
            let file = OpenFile { kind: FileKind::Socket { rx, tx, shut: 0 }, flags, offset: 0 };
            match self.fds.open(file, cloexec, 0, limit) {
                Ok(fd) => fds[i] = fd,
                Err(e) => {
                    // The end not yet open holds its pipe ends still: release them as its close would.
                    self.release_file(file);
                    if i == 1 {
                        let _ = self.sys_close(fds[0] as u64);
                    }
                    return Err(e.into());
                }
            }
        }
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&fds[0].to_le_bytes());
        out[4..].copy_from_slice(&fds[1].to_le_bytes());
        if let Err(e) = user::write(&self.vmas, m, sv, &out) {
            let _ = self.sys_close(fds[0] as u64);
            let _ = self.sys_close(fds[1] as u64);
            return Err(e.into());
        }
        Ok(0)
    }

    /// The socket behind `fd`, as a send or receive with `flags` sees it (MSG_DONTWAIT as O_NONBLOCK).
    fn socket_file(&self, fd: u64, flags: u32, allowed: u32) -> Result<(usize, OpenFile), Errno> {
        let (description, mut file) = self.fds.get(fd_arg(fd))?;
        if !matches!(file.kind, FileKind::Socket { .. }) {
            return Err(Errno::ENOTSOCK);
        }
        if flags & !allowed != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if flags & MSG_DONTWAIT != 0 {
            file.flags |= O_NONBLOCK;
        }
        Ok((description, file))
    }

    /// Whether `file` is a socket whose directions keep message boundaries.
    pub(crate) fn message_socket(&self, file: &OpenFile) -> bool {
        match file.kind {
            FileKind::Socket { rx, .. } => self.pipes.get(rx).is_some_and(|p| p.messages.is_some()),
            _ => false,
        }
    }

    /// Sends `data` (one message, or as much of a stream as fits), with SIGPIPE unless MSG_NOSIGNAL.
    fn send_bytes(&mut self, file: &OpenFile, data: &[u8], flags: u32) -> SysResult {
        if self.message_socket(file) && data.len() > PIPE_CAPACITY {
            return Err(Errno::EMSGSIZE.into());
        }
        let FileKind::Socket { tx, shut, .. } = file.kind else { return Err(Errno::ENOTSOCK.into()) };
        let gone = shut & 2 != 0 || self.pipes.get(tx).is_none_or(|p| p.readers == 0);
        if gone {
            return Err(if flags & MSG_NOSIGNAL != 0 { Errno::EPIPE.into() } else { self.broken_pipe() });
        }
        Ok(self.pipe_write(tx, file.flags, data, true)? as i64)
    }

    /// Receives into a kernel buffer of up to `len` bytes: (bytes, the message's whole length).
    fn receive_bytes(&mut self, file: &OpenFile, len: usize) -> Result<(Vec<u8>, usize), super::Stop> {
        let FileKind::Socket { rx, shut, .. } = file.kind else { return Err(Errno::ENOTSOCK.into()) };
        let mut buf = vec![0u8; len.min(CHUNK)];
        if shut & 1 != 0 {
            return Ok((Vec::new(), 0));
        }
        let whole = self.pipes.get(rx).and_then(|p| p.messages.as_ref()?.front().copied());
        let n = self.pipe_read(rx, file.flags, &mut buf, true)?;
        buf.truncate(n);
        Ok((buf, whole.unwrap_or(n)))
    }

    pub(crate) fn sys_sendto<M: Machine>(&mut self, m: &mut M, a: &[u64; 6]) -> SysResult {
        let (fd, buf, len, flags, addr) = (a[0], a[1], a[2], a[3] as u32, a[4]);
        let (_, file) = self.socket_file(fd, flags, MSG_DONTWAIT | MSG_NOSIGNAL)?;
        if addr != 0 {
            return Err(Errno::EISCONN.into());
        }
        let take = if self.message_socket(&file) { len } else { len.min(CHUNK as u64) };
        if take > PIPE_CAPACITY as u64 {
            return Err(Errno::EMSGSIZE.into());
        }
        let mut data = vec![0u8; take as usize];
        user::read(&self.vmas, m, buf, &mut data)?;
        self.send_bytes(&file, &data, flags)
    }

    pub(crate) fn sys_recvfrom<M: Machine>(&mut self, m: &mut M, a: &[u64; 6]) -> SysResult {
        let (fd, buf, len, flags, addr, addrlen) = (a[0], a[1], a[2], a[3] as u32, a[4], a[5]);
        let (_, file) = self.socket_file(fd, flags, MSG_DONTWAIT | MSG_WAITALL | MSG_TRUNC)?;
        user::check_write(&self.vmas, buf, len)?;
        let (data, whole) = self.receive_bytes(&file, usize::try_from(len).unwrap_or(usize::MAX))?;
        user::write(&self.vmas, m, buf, &data)?;
        if addr != 0 && addrlen != 0 {
            // An unnamed peer: no address.
            user::write(&self.vmas, m, addrlen, &0u32.to_le_bytes())?;
        }
        Ok(if flags & MSG_TRUNC != 0 { whole } else { data.len() } as i64)
    }

    /// Reads a `struct msghdr`: (iovec pointer, iovec count), refusing names and control data.
    fn read_msghdr<M: Machine>(&self, m: &mut M, msg: u64, sending: bool) -> Result<[u8; MSGHDR_SIZE], Errno> {
        let raw: [u8; MSGHDR_SIZE] = user::read_array(&self.vmas, m, msg)?;
        let word = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or_default());
        if sending && word(0) != 0 {
            return Err(Errno::EISCONN);
        }
        if sending && word(32) != 0 && word(40) != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        Ok(raw)
    }

    pub(crate) fn sys_sendmsg<M: Machine>(&mut self, m: &mut M, fd: u64, msg: u64, flags: u64) -> SysResult {
        let flags = flags as u32;
        let (_, file) = self.socket_file(fd, flags, MSG_DONTWAIT | MSG_NOSIGNAL)?;
        let raw = self.read_msghdr(m, msg, true)?;
        let word = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or_default());
        let data = self.gather(m, word(16), word(24), self.message_socket(&file))?;
        self.send_bytes(&file, &data, flags)
    }

    pub(crate) fn sys_recvmsg<M: Machine>(&mut self, m: &mut M, fd: u64, msg: u64, flags: u64) -> SysResult {
        let flags = flags as u32;
        let (_, file) = self.socket_file(fd, flags, MSG_DONTWAIT | MSG_WAITALL | MSG_TRUNC)?;
        let raw = self.read_msghdr(m, msg, false)?;
        let word = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or_default());
        user::check_write(&self.vmas, msg, MSGHDR_SIZE as u64)?;
        let iovecs = self.iovecs(m, word(16), word(24), true)?;
        let total: u64 = iovecs.iter().map(|&(_, len)| len).sum();
        let (data, whole) = self.receive_bytes(&file, usize::try_from(total).unwrap_or(usize::MAX))?;
        self.scatter(m, &iovecs, &data)?;
        // No name, no control data; MSG_TRUNC when a message was cut.
        user::write(&self.vmas, m, msg + 8, &0u32.to_le_bytes())?;
        user::write(&self.vmas, m, msg + 40, &0u64.to_le_bytes())?;
        let out_flags = if whole > data.len() { MSG_TRUNC } else { 0 };
        user::write(&self.vmas, m, msg + 48, &out_flags.to_le_bytes())?;
        Ok(if flags & MSG_TRUNC != 0 { whole } else { data.len() } as i64)
    }

    pub(crate) fn sys_shutdown(&mut self, fd: u64, how: u64) -> SysResult {
        let (description, file) = self.fds.get(fd_arg(fd))?;
        let FileKind::Socket { rx, tx, shut } = file.kind else { return Err(Errno::ENOTSOCK.into()) };
        let bits = match int_arg(how) as u32 {
            SHUT_RD => 1,
            SHUT_WR => 2,
            SHUT_RDWR => 3,
            _ => return Err(Errno::EINVAL.into()),
        };
        let new = bits & !shut;
        if new & 1 != 0 {
            self.pipes.release(rx, false);
        }
        if new & 2 != 0 {
            self.pipes.release(tx, true);
        }
        if let Some(d) = self.fds.description_mut(description) {
            d.kind = FileKind::Socket { rx, tx, shut: shut | bits };
        }
        Ok(0)
    }

    /// readv on a message socket: one message across the buffers.
    pub(crate) fn socket_readv<M: Machine>(&mut self, m: &mut M, file: &OpenFile, iov: u64, iovcnt: u64) -> SysResult {
        let iovecs = self.iovecs(m, iov, iovcnt, true)?;
        let total: u64 = iovecs.iter().map(|&(_, len)| len).sum();
        let (data, _) = self.receive_bytes(file, usize::try_from(total).unwrap_or(usize::MAX))?;
        self.scatter(m, &iovecs, &data)?;
        Ok(data.len() as i64)
    }

    /// writev on a message socket: the buffers together are one message.
    pub(crate) fn socket_writev<M: Machine>(&mut self, m: &mut M, file: &OpenFile, iov: u64, iovcnt: u64) -> SysResult {
        let data = self.gather(m, iov, iovcnt, true)?;
        self.send_bytes(file, &data, 0)
    }

    fn iovecs<M: Machine>(&self, m: &mut M, iov: u64, iovcnt: u64, for_read: bool) -> Result<Vec<(u64, u64)>, Errno> {
        self.read_iovecs(m, iov, iovcnt, for_read)
    }

    /// The bytes of the buffers `iov` names, at most one message (EMSGSIZE) or one chunk of a stream.
    fn gather<M: Machine>(&self, m: &mut M, iov: u64, iovcnt: u64, message: bool) -> Result<Vec<u8>, Errno> {
        let iovecs = self.iovecs(m, iov, iovcnt, false)?;
        let total: u64 = iovecs.iter().map(|&(_, len)| len).sum();
        if message && total > PIPE_CAPACITY as u64 {
            return Err(Errno::EMSGSIZE);
        }
        let mut data = Vec::new();
        for (base, len) in iovecs {
            let take = len.min((CHUNK - data.len()) as u64) as usize;
            let start = data.len();
            data.resize(start + take, 0);
            user::read(&self.vmas, m, base, &mut data[start..])?;
            if data.len() == CHUNK {
                break;
            }
        }
        Ok(data)
    }

    fn scatter<M: Machine>(&self, m: &mut M, iovecs: &[(u64, u64)], data: &[u8]) -> Result<(), Errno> {
        let mut done = 0usize;
        for &(base, len) in iovecs {
            if done == data.len() {
                break;
            }
            let n = (len as usize).min(data.len() - done);
            user::write(&self.vmas, m, base, &data[done..done + n])?;
            done += n;
        }
        Ok(())
    }
}
