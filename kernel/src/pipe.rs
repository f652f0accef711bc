//! In-kernel pipes. A read from an empty pipe or a write to a full one waits (the thread parks until
//! another thread's syscall changes the pipe, see `crate::sched`), or fails with EAGAIN (`O_NONBLOCK`);
//! when no thread can ever change it, the kernel reports a deadlock.
#![forbid(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::errno::Errno;

/// Bytes a pipe buffers (Linux's default).
pub const PIPE_CAPACITY: usize = 65_536;
/// Most pipes alive at once.
pub const MAX_PIPES: usize = 1024;

pub type PipeId = usize;

#[derive(Debug, Default)]
pub struct Pipe {
    pub buffer: VecDeque<u8>,
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
    pipes: Vec<Option<Pipe>>,
}

impl Pipes {
    /// A new pipe with one reader and one writer.
    pub fn create(&mut self) -> Result<PipeId, Errno> {
        let pipe = Pipe { buffer: VecDeque::new(), readers: 1, writers: 1 };
        if let Some(index) = self.pipes.iter().position(Option::is_none) {
            self.pipes[index] = Some(pipe);
            return Ok(index);
        }
        if self.pipes.len() >= MAX_PIPES {
            return Err(Errno::ENFILE);
        }
        self.pipes.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        self.pipes.push(Some(pipe));
        Ok(self.pipes.len() - 1)
    }

    pub fn get(&self, id: PipeId) -> Option<&Pipe> {
        self.pipes.get(id).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, id: PipeId) -> Option<&mut Pipe> {
        self.pipes.get_mut(id).and_then(Option::as_mut)
    }

    /// Drops one end; frees the pipe when both ends are gone.
    pub fn release(&mut self, id: PipeId, write_end: bool) {
        let Some(slot) = self.pipes.get_mut(id) else { return };
        let Some(pipe) = slot.as_mut() else { return };
        if write_end {
            pipe.writers = pipe.writers.saturating_sub(1);
        } else {
            pipe.readers = pipe.readers.saturating_sub(1);
        }
        if pipe.readers == 0 && pipe.writers == 0 {
            *slot = None;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (PipeId, &Pipe)> {
        self.pipes.iter().enumerate().filter_map(|(i, p)| Some((i, p.as_ref()?)))
    }
}
