//! Pipes: pipe2, and what a write to a pipe without readers does.

use super::{Stop, SysResult, O_CLOEXEC, O_DIRECT, O_NONBLOCK, O_RDONLY, O_WRONLY};
use crate::errno::Errno;
use crate::fd::{FileKind, OpenFile};
use crate::machine::Machine;
use crate::process::Process;
use crate::signal::deliver::Target;
use crate::signal::info::SigInfo;
use crate::signal::SIGPIPE;
use crate::user;

impl Process {
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

    /// A write to a pipe without readers: EPIPE, and SIGPIPE for the writing thread (which kills unless
    /// it is ignored, blocked or handled).
    pub(crate) fn broken_pipe(&mut self) -> Stop {
        let tid = self.thread().tid;
        let _ = self.send_signal(SigInfo::kernel(SIGPIPE), Target::Thread(tid));
        Stop::Errno(Errno::EPIPE)
    }
}
