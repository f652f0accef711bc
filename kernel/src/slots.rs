//! Kernel objects kept in numbered slots (pipes, epoll instances, eventfds): a freed number is reused
//! first, and a kind of object has at most [`MAX_OBJECTS`] alive.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use crate::errno::Errno;

/// Most objects of one kind alive at once.
pub const MAX_OBJECTS: usize = 1024;

/// Objects of one kind by number.
#[derive(Clone, Debug)]
pub struct Slots<T> {
    slots: Vec<Option<T>>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self { slots: Vec::new() }
    }
}

impl<T> Slots<T> {
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
        self.iter().map(|(id, _)| id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, slot)| Some((i, slot.as_ref()?)))
    }
}
