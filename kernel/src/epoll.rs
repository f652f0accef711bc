//! In-kernel epoll instances and eventfd counters: the objects behind `FileKind::Epoll` and
//! `FileKind::EventFd` descriptions. The syscalls are in `crate::syscall::epoll`.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use crate::errno::Errno;

/// Most epoll instances or eventfds alive at once.
pub const MAX_OBJECTS: usize = 1024;
/// Most descriptors one epoll instance watches.
pub const MAX_INTEREST: usize = 4096;

/// One watched descriptor: the fd and the description it named when added (a descriptor closed since,
/// or reused for another file, drops out of the set, as Linux drops a closed file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    pub fd: i32,
    pub description: usize,
    /// `EPOLL*` bits asked for, with `EPOLLET`/`EPOLLONESHOT`.
    pub events: u32,
    pub data: u64,
    /// Edge-triggered: the ready bits already reported (reported again only once they went away).
    pub reported: u32,
    /// `EPOLLONESHOT` after its event: silent until `EPOLL_CTL_MOD`.
    pub disabled: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Epoll {
    pub interest: Vec<Interest>,
}

/// An eventfd's counter and mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventFd {
    pub counter: u64,
    /// `EFD_SEMAPHORE`: a read takes 1, not the whole count.
    pub semaphore: bool,
}

/// A table of objects that each belong to one open file description (freed when it closes).
#[derive(Clone, Debug)]
pub struct Table<T> {
    slots: Vec<Option<T>>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self { slots: Vec::new() }
    }
}

impl<T> Table<T> {
    pub fn create(&mut self, object: T) -> Result<usize, Errno> {
        if let Some(index) = self.slots.iter().position(Option::is_none) {
            self.slots[index] = Some(object);
            return Ok(index);
        }
        if self.slots.len() >= MAX_OBJECTS {
            return Err(Errno::ENFILE);
        }
        self.slots.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        self.slots.push(Some(object));
        Ok(self.slots.len() - 1)
    }

    pub fn get(&self, id: usize) -> Option<&T> {
        self.slots.get(id).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, id: usize) -> Option<&mut T> {
        self.slots.get_mut(id).and_then(Option::as_mut)
    }

    pub fn release(&mut self, id: usize) {
        if let Some(slot) = self.slots.get_mut(id) {
            *slot = None;
        }
    }

    pub fn ids(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, slot)| slot.as_ref().map(|_| i))
    }
}
