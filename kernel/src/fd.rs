//! The fd table: file descriptors pointing at shared open file descriptions (offset and status flags are
//! shared by `dup`, close-on-exec is per descriptor), as in Linux.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use kernel_abi::Stream;

use crate::errno::Errno;
use crate::fs::NodeId;
use crate::pipe::PipeId;

/// Hard ceiling on descriptors, whatever RLIMIT_NOFILE says.
pub const MAX_FDS: usize = 4096;

/// What an open file description refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// fd 0: the captured standard input.
    Stdin,
    /// fd 1 and 2: the host's stdout/stderr.
    Console(Stream),
    /// A file-system node (regular file, directory, device, or an `O_PATH` symlink).
    Node(NodeId),
    PipeRead(PipeId),
    PipeWrite(PipeId),
}

/// An open file description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFile {
    pub kind: FileKind,
    /// Access mode and status flags (`O_RDONLY`.., `O_APPEND`, `O_NONBLOCK`, `O_PATH`, ...).
    pub flags: u32,
    /// File position; for directories, the index of the next getdents64 entry.
    pub offset: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdSlot {
    pub description: usize,
    pub cloexec: bool,
}

#[derive(Clone, Copy, Debug)]
struct Description {
    file: OpenFile,
    refs: u32,
}

#[derive(Debug, Default)]
pub struct FdTable {
    slots: Vec<Option<FdSlot>>,
    descriptions: Vec<Option<Description>>,
    free_descriptions: Vec<usize>,
}

/// An fd argument as the syscall passed it (the low 32 bits, as Linux reads an `int`/`unsigned int`).
pub fn fd_arg(raw: u64) -> i32 {
    raw as u32 as i32
}

impl FdTable {
    pub fn new() -> Self {
        Self::default()
    }

    fn index(fd: i32) -> Result<usize, Errno> {
        usize::try_from(fd).map_err(|_| Errno::EBADF)
    }

    pub fn slot(&self, fd: i32) -> Result<FdSlot, Errno> {
        self.slots.get(Self::index(fd)?).copied().flatten().ok_or(Errno::EBADF)
    }

    /// The description behind `fd` and its index (for [`FdTable::description_mut`]).
    pub fn get(&self, fd: i32) -> Result<(usize, OpenFile), Errno> {
        let slot = self.slot(fd)?;
        let file = self.descriptions.get(slot.description).copied().flatten().ok_or(Errno::EBADF)?.file;
        Ok((slot.description, file))
    }

    pub fn description_mut(&mut self, description: usize) -> Option<&mut OpenFile> {
        self.descriptions.get_mut(description).and_then(Option::as_mut).map(|d| &mut d.file)
    }

    pub fn set_cloexec(&mut self, fd: i32, cloexec: bool) -> Result<(), Errno> {
        let slot = self.slots.get_mut(Self::index(fd)?).and_then(Option::as_mut).ok_or(Errno::EBADF)?;
        slot.cloexec = cloexec;
        Ok(())
    }

    /// Lowest free descriptor `>= min` below `limit`.
    fn free_slot(&self, min: usize, limit: usize) -> Result<usize, Errno> {
        let limit = limit.min(MAX_FDS);
        (min..limit).find(|&i| self.slots.get(i).is_none_or(Option::is_none)).ok_or(Errno::EMFILE)
    }

    fn place(&mut self, fd: usize, slot: FdSlot) -> Result<(), Errno> {
        if fd >= self.slots.len() {
            self.slots.try_reserve(fd + 1 - self.slots.len()).map_err(|_| Errno::ENOMEM)?;
            self.slots.resize(fd + 1, None);
        }
        if let Some(entry) = self.slots.get_mut(fd) {
            *entry = Some(slot);
        }
        Ok(())
    }

    fn new_description(&mut self, file: OpenFile) -> Result<usize, Errno> {
        let description = Description { file, refs: 1 };
        if let Some(index) = self.free_descriptions.pop() {
            if let Some(entry) = self.descriptions.get_mut(index) {
                *entry = Some(description);
                return Ok(index);
            }
        }
        self.descriptions.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        self.descriptions.push(Some(description));
        Ok(self.descriptions.len() - 1)
    }

    /// Opens a new description at the lowest free descriptor `>= min` (EMFILE at `limit`).
    pub fn open(&mut self, file: OpenFile, cloexec: bool, min: usize, limit: usize) -> Result<i32, Errno> {
        let fd = self.free_slot(min, limit)?;
        self.free_descriptions.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        let description = self.new_description(file)?;
        if let Err(e) = self.place(fd, FdSlot { description, cloexec }) {
            self.drop_ref(description);
            return Err(e);
        }
        i32::try_from(fd).map_err(|_| Errno::EMFILE)
    }

    /// `dup`/`F_DUPFD`: a new descriptor `>= min` sharing `fd`'s description.
    pub fn dup(&mut self, fd: i32, min: usize, cloexec: bool, limit: usize) -> Result<i32, Errno> {
        let slot = self.slot(fd)?;
        let new_fd = self.free_slot(min, limit)?;
        self.place(new_fd, FdSlot { description: slot.description, cloexec })?;
        self.add_ref(slot.description);
        i32::try_from(new_fd).map_err(|_| Errno::EMFILE)
    }

    /// `dup2`/`dup3`: makes `new_fd` share `old_fd`'s description, closing what `new_fd` held (returned
    /// when that was its last reference). EBADF when `new_fd` is at or above `limit`.
    pub fn dup_to(&mut self, old_fd: i32, new_fd: i32, cloexec: bool, limit: usize) -> Result<Option<OpenFile>, Errno> {
        let slot = self.slot(old_fd)?;
        let index = Self::index(new_fd)?;
        if index >= limit.min(MAX_FDS) {
            return Err(Errno::EBADF);
        }
        let released = match self.slots.get(index).copied().flatten() {
            Some(old) => {
                self.add_ref(slot.description);
                let released = self.drop_ref(old.description);
                self.place(index, FdSlot { description: slot.description, cloexec })?;
                released
            }
            None => {
                self.place(index, FdSlot { description: slot.description, cloexec })?;
                self.add_ref(slot.description);
                None
            }
        };
        Ok(released)
    }

    /// Closes `fd`; returns its description when this was the last reference (the caller releases what
    /// it refers to).
    pub fn close(&mut self, fd: i32) -> Result<Option<OpenFile>, Errno> {
        let slot = self.slot(fd)?;
        if let Some(entry) = self.slots.get_mut(Self::index(fd)?) {
            *entry = None;
        }
        while self.slots.last() == Some(&None) {
            self.slots.pop();
        }
        Ok(self.drop_ref(slot.description))
    }

    fn add_ref(&mut self, description: usize) {
        if let Some(d) = self.descriptions.get_mut(description).and_then(Option::as_mut) {
            d.refs = d.refs.saturating_add(1);
        }
    }

    fn drop_ref(&mut self, description: usize) -> Option<OpenFile> {
        let entry = self.descriptions.get_mut(description)?;
        let d = entry.as_mut()?;
        d.refs = d.refs.saturating_sub(1);
        if d.refs > 0 {
            return None;
        }
        let file = d.file;
        *entry = None;
        // Capacity was reserved in `open`, so this push does not allocate.
        self.free_descriptions.push(description);
        Some(file)
    }

    /// Open descriptors, lowest first.
    pub fn fds(&self) -> impl Iterator<Item = (i32, FdSlot)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| Some((i32::try_from(i).ok()?, (*s)?)))
    }

    /// Live descriptions (for the invariant checks of the owner).
    pub fn descriptions(&self) -> impl Iterator<Item = &OpenFile> {
        self.descriptions.iter().flatten().map(|d| &d.file)
    }

    /// Reference counts match the descriptors that use each description; nothing dangles.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let mut counts = alloc::vec![0u32; self.descriptions.len()];
        for (_, slot) in self.fds() {
            let count = counts.get_mut(slot.description).ok_or("fd: descriptor points past the descriptions")?;
            *count += 1;
        }
        for (index, description) in self.descriptions.iter().enumerate() {
            match description {
                Some(d) if d.refs != counts[index] => return Err("fd: reference count mismatch"),
                None if counts[index] != 0 => return Err("fd: descriptor points at a freed description"),
                _ => {}
            }
        }
        if self.slots.len() > MAX_FDS {
            return Err("fd: table larger than MAX_FDS");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(offset: u64) -> OpenFile {
        OpenFile { kind: FileKind::Stdin, flags: 0, offset }
    }

    #[test]
    fn open_dup_close() {
        let mut table = FdTable::new();
        assert_eq!(table.open(file(0), false, 0, 1024), Ok(0));
        assert_eq!(table.open(file(1), false, 0, 1024), Ok(1));
        assert_eq!(table.dup(0, 0, true, 1024), Ok(2));
        assert!(table.slot(2).unwrap().cloexec);
        assert_eq!(table.dup(0, 10, false, 1024), Ok(10));
        assert_eq!(table.close(0), Ok(None));
        assert_eq!(table.close(2), Ok(None));
        assert_eq!(table.close(10), Ok(Some(file(0))));
        assert_eq!(table.close(10), Err(Errno::EBADF));
        assert_eq!(table.close(-1), Err(Errno::EBADF));
        assert_eq!(table.dup_to(1, 5, false, 1024), Ok(None));
        assert_eq!(table.dup_to(1, 1024, false, 1024), Err(Errno::EBADF));
        assert_eq!(table.open(file(2), false, 0, 1024), Ok(0));
        assert_eq!(table.dup_to(1, 0, false, 1024), Ok(Some(file(2))));
        table.check_invariants().unwrap();
        assert_eq!(table.open(file(0), false, 0, 2), Err(Errno::EMFILE));
    }
}
