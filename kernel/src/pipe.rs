//! In-kernel pipes, and the two directions of an AF_UNIX socket pair (`crate::syscall::socket`). A read from an empty pipe or a write to a full one waits (the thread parks until
//! another thread's syscall changes the pipe, see `crate::sched`), or fails with EAGAIN (`O_NONBLOCK`);
//! when no thread can ever change it, the kernel reports a deadlock.
#![forbid(unsafe_code)]

use alloc::collections::VecDeque;

use crate::errno::Errno;
use crate::slots::Slots;

/// Bytes a pipe buffers (Linux's default).
pub const PIPE_CAPACITY: usize = 65_536;

pub type PipeId = usize;

#[derive(Debug, Default)]
pub struct Pipe {
    pub buffer: VecDeque<u8>,
    /// The lengths of the messages in `buffer`, oldest first, for a datagram or seqpacket socket's
    /// direction (each read takes one message); `None` for a byte stream.
    pub messages: Option<VecDeque<usize>>,
    /// Open descriptions of the read end.
    pub readers: u32,
    pub writers: u32,
}

impl Pipe {
    pub fn space(&self) -> usize {
        PIPE_CAPACITY.saturating_sub(self.buffer.len())
    }
}

#[derive(Debug, Default)]
pub struct Pipes {
    pipes: Slots<Pipe>,
}

impl Pipes {
    /// A new pipe with one reader and one writer.
    pub fn create(&mut self) -> Result<PipeId, Errno> {
        self.pipes.create(Pipe { buffer: VecDeque::new(), messages: None, readers: 1, writers: 1 })
    }

    /// A new pipe with one reader and one writer that keeps message boundaries.
    pub fn create_messages(&mut self) -> Result<PipeId, Errno> {
        self.pipes.create(Pipe { buffer: VecDeque::new(), messages: Some(VecDeque::new()), readers: 1, writers: 1 })
    }

    pub fn get(&self, id: PipeId) -> Option<&Pipe> {
        self.pipes.get(id)
    }

    pub fn get_mut(&mut self, id: PipeId) -> Option<&mut Pipe> {
        self.pipes.get_mut(id)
    }

    /// Drops one end; frees the pipe when both ends are gone.
    pub fn release(&mut self, id: PipeId, write_end: bool) {
        let Some(pipe) = self.pipes.get_mut(id) else { return };
        if write_end {
            pipe.writers = pipe.writers.saturating_sub(1);
        } else {
            pipe.readers = pipe.readers.saturating_sub(1);
        }
        if pipe.readers == 0 && pipe.writers == 0 {
            self.pipes.release(id);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (PipeId, &Pipe)> {
        self.pipes.iter()
    }
}
