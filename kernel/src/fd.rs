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
    /// An epoll instance (`crate::epoll`).
    Epoll(usize),
    /// An eventfd counter (`crate::epoll`).
    EventFd(usize),
    /// One end of an AF_UNIX socket pair (`crate::syscall::socket`): it reads pipe `rx` and writes pipe
    /// `tx`; `shut` holds `SHUT_RD` (1) and `SHUT_WR` (2) once shut down (that direction's end released).
    Socket {
        rx: PipeId,
        tx: PipeId,
        shut: u8,
    },
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

/// An entry of the description table. Free entries link to the next free one, so closing never
/// allocates and opening needs no separate free list (one allocation less per table, and fewer
/// instructions per open where kernel code is emulated).
#[derive(Clone, Copy, Debug)]
enum DescriptionEntry {
    Open(Description),
    Free { next: Option<usize> },
}

#[derive(Debug, Default)]
pub struct FdTable {
    slots: Vec<Option<FdSlot>>,
    descriptions: Vec<DescriptionEntry>,
    /// The first free entry of `descriptions`.
    free_description: Option<usize>,
}

/// An fd argument as the syscall passed it (the low 32 bits, as Linux reads an `int`/`unsigned int`).
pub fn fd_arg(raw: u64) -> i32 {
    raw as u32 as i32
}

impl FdTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// A table whose descriptors `0..N` each hold their own description of `files` (a process's standard
    /// streams), with room for a few more. Built directly rather than by `N` opens: boot pays for every
    /// instruction where kernel code is emulated.
    pub fn with_files<const N: usize>(files: [OpenFile; N]) -> Self {
        const ROOM: usize = 8;
        let mut slots = Vec::with_capacity(ROOM.max(N));
        slots.extend((0..N).map(|description| Some(FdSlot { description, cloexec: false })));
        let mut descriptions = Vec::with_capacity(ROOM.max(N));
        descriptions.extend(files.map(|file| DescriptionEntry::Open(Description { file, refs: 1 })));
        Self { slots, descriptions, free_description: None }
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
        match self.descriptions.get(slot.description) {
            Some(DescriptionEntry::Open(d)) => Ok((slot.description, d.file)),
            _ => Err(Errno::EBADF),
        }
    }

    fn open_description(&mut self, description: usize) -> Option<&mut Description> {
        match self.descriptions.get_mut(description) {
            Some(DescriptionEntry::Open(d)) => Some(d),
            _ => None,
        }
    }

    pub fn description_mut(&mut self, description: usize) -> Option<&mut OpenFile> {
        self.open_description(description).map(|d| &mut d.file)
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
        let description = DescriptionEntry::Open(Description { file, refs: 1 });
        if let Some(index) = self.free_description {
            if let Some(entry) = self.descriptions.get_mut(index) {
                if let DescriptionEntry::Free { next } = *entry {
                    self.free_description = next;
                    *entry = description;
                    return Ok(index);
                }
            }
        }
        self.descriptions.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        self.descriptions.push(description);
        Ok(self.descriptions.len() - 1)
    }

    /// Opens a new description at the lowest free descriptor `>= min` (EMFILE at `limit`).
    pub fn open(&mut self, file: OpenFile, cloexec: bool, min: usize, limit: usize) -> Result<i32, Errno> {
        let fd = self.free_slot(min, limit)?;
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
        if let Some(d) = self.open_description(description) {
            d.refs = d.refs.saturating_add(1);
        }
    }

    fn drop_ref(&mut self, description: usize) -> Option<OpenFile> {
        let entry = self.descriptions.get_mut(description)?;
        let DescriptionEntry::Open(d) = entry else { return None };
        d.refs = d.refs.saturating_sub(1);
        if d.refs > 0 {
            return None;
        }
        let file = d.file;
        *entry = DescriptionEntry::Free { next: self.free_description.replace(description) };
        Some(file)
    }

    /// Takes the descriptor slots out (the running process's, when another process runs: the descriptions
    /// stay, shared by every process, see `crate::processes`).
    pub fn take_slots(&mut self) -> Vec<Option<FdSlot>> {
        core::mem::take(&mut self.slots)
    }

    /// Puts back slots [`FdTable::take_slots`] took.
    pub fn put_slots(&mut self, slots: Vec<Option<FdSlot>>) {
        self.slots = slots;
    }

    /// A copy of the slots for a forked process: each descriptor shares its description (one more
    /// reference).
    pub fn fork_slots(&mut self) -> Vec<Option<FdSlot>> {
        let slots = self.slots.clone();
        for slot in slots.iter().flatten() {
            self.add_ref(slot.description);
        }
        slots
    }

    /// Closes every descriptor (a process's exit); returns the descriptions that lost their last
    /// reference, for the caller to release.
    pub fn close_all(&mut self) -> Vec<OpenFile> {
        let slots = core::mem::take(&mut self.slots);
        slots.iter().flatten().filter_map(|slot| self.drop_ref(slot.description)).collect()
    }

    /// Open descriptors, lowest first.
    pub fn fds(&self) -> impl Iterator<Item = (i32, FdSlot)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| Some((i32::try_from(i).ok()?, (*s)?)))
    }

    /// Live descriptions (for the invariant checks of the owner).
    pub fn descriptions(&self) -> impl Iterator<Item = &OpenFile> {
        self.descriptions.iter().filter_map(|entry| match entry {
            DescriptionEntry::Open(d) => Some(&d.file),
            DescriptionEntry::Free { .. } => None,
        })
    }

    /// Reference counts match the descriptors that use each description; nothing dangles; the free list
    /// holds exactly the free entries.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        self.check_invariants_with(core::iter::empty())
    }

    /// [`FdTable::check_invariants`], counting `others` too (the slots of processes not running now).
    pub fn check_invariants_with(&self, others: impl Iterator<Item = FdSlot>) -> Result<(), &'static str> {
        let mut counts = alloc::vec![0u32; self.descriptions.len()];
        for slot in self.fds().map(|(_, slot)| slot).chain(others) {
            let count = counts.get_mut(slot.description).ok_or("fd: descriptor points past the descriptions")?;
            *count += 1;
        }
        for (index, entry) in self.descriptions.iter().enumerate() {
            match entry {
                DescriptionEntry::Open(d) if d.refs != counts[index] => return Err("fd: reference count mismatch"),
                DescriptionEntry::Free { .. } if counts[index] != 0 => {
                    return Err("fd: descriptor points at a freed description")
                }
                _ => {}
            }
        }
        let free = self.descriptions.iter().filter(|entry| matches!(entry, DescriptionEntry::Free { .. })).count();
        let mut listed = 0;
        let mut next = self.free_description;
        while let Some(index) = next {
            listed += 1;
            if listed > free {
                return Err("fd: free list longer than the free entries (or a cycle)");
            }
            next = match self.descriptions.get(index) {
                Some(DescriptionEntry::Free { next }) => *next,
                _ => return Err("fd: free list links to an open description"),
            };
        }
        if listed != free {
            return Err("fd: free entry missing from the free list");
        }
        if self.slots.len() > MAX_FDS {
            return Err("fd: table larger than MAX_FDS");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use alloc::collections::BTreeMap;

    use proptest::prelude::*;

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

    #[test]
    fn with_files_is_like_opening_each() {
        let files = [file(0), file(1), file(2)];
        let mut opened = FdTable::new();
        for file in files {
            opened.open(file, false, 0, 1024).unwrap();
        }
        let mut built = FdTable::with_files(files);
        built.check_invariants().unwrap();
        assert_eq!(built.fds().collect::<Vec<_>>(), opened.fds().collect::<Vec<_>>());
        assert!(built.descriptions().eq(opened.descriptions()));
        assert_eq!(built.open(file(3), false, 0, 1024), Ok(3));
        assert_eq!(built.close(1), Ok(Some(file(1))));
        built.check_invariants().unwrap();
    }

    /// Closed descriptions are reused, most recently freed first, and the table stays consistent.
    #[test]
    fn freed_descriptions_are_reused() {
        let mut table = FdTable::new();
        for offset in 0..4 {
            table.open(file(offset), false, 0, 1024).unwrap();
        }
        let description = |table: &FdTable, fd| table.get(fd).unwrap().0;
        let (one, two) = (description(&table, 1), description(&table, 2));
        table.close(1).unwrap();
        table.close(2).unwrap();
        table.check_invariants().unwrap();
        assert_eq!(table.open(file(9), false, 0, 1024), Ok(1));
        assert_eq!(description(&table, 1), two);
        assert_eq!(table.open(file(9), false, 0, 1024), Ok(2));
        assert_eq!(description(&table, 2), one);
        assert_eq!(table.descriptions.len(), 4);
        table.check_invariants().unwrap();
    }

    #[derive(Clone, Debug)]
    enum Op {
        Open { min: usize },
        Dup { fd: i32, min: usize },
        DupTo { fd: i32, to: i32 },
        Close { fd: i32 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..8).prop_map(|min| Op::Open { min }),
            (-1i32..12, 0usize..8).prop_map(|(fd, min)| Op::Dup { fd, min }),
            (-1i32..12, -1i32..12).prop_map(|(fd, to)| Op::DupTo { fd, to }),
            (-1i32..12).prop_map(|fd| Op::Close { fd }),
        ]
    }

    proptest! {
        /// Any sequence of opens, dups and closes keeps reference counts and the free list consistent,
        /// and a description is returned by `close` exactly when its last descriptor goes.
        #[test]
        fn tables_stay_consistent(ops in proptest::collection::vec(op(), 1..200)) {
            let mut table = FdTable::new();
            // Per descriptor, the offset that identifies its description in this test.
            let mut model: BTreeMap<i32, u64> = BTreeMap::new();
            for (step, op) in ops.into_iter().enumerate() {
                let tag = step as u64;
                let last_ref = |model: &BTreeMap<i32, u64>, fd| {
                    model.get(&fd).filter(|&&t| model.values().filter(|&&u| u == t).count() == 1).copied()
                };
                match op {
                    Op::Open { min } => {
                        if let Ok(fd) = table.open(file(tag), false, min, 12) {
                            prop_assert!(model.insert(fd, tag).is_none());
                        }
                    }
                    Op::Dup { fd, min } => {
                        if let Ok(new) = table.dup(fd, min, false, 12) {
                            let shared = model[&fd];
                            prop_assert!(model.insert(new, shared).is_none());
                        }
                    }
                    Op::DupTo { fd, to } => {
                        let released = last_ref(&model, to).filter(|_| model.get(&fd) != model.get(&to));
                        match table.dup_to(fd, to, false, 12) {
                            Ok(closed) => {
                                prop_assert_eq!(closed.map(|f| f.offset), released);
                                let shared = model[&fd];
                                model.insert(to, shared);
                            }
                            Err(_) => prop_assert!(!model.contains_key(&fd) || !(0..12).contains(&to)),
                        }
                    }
                    Op::Close { fd } => {
                        let released = last_ref(&model, fd);
                        match table.close(fd) {
                            Ok(closed) => {
                                prop_assert_eq!(closed.map(|f| f.offset), released);
                                model.remove(&fd);
                            }
                            Err(_) => prop_assert!(!model.contains_key(&fd)),
                        }
                    }
                }
                for (&fd, &tag) in &model {
                    prop_assert_eq!(table.get(fd).map(|(_, f)| f.offset), Ok(tag));
                }
                prop_assert_eq!(table.fds().count(), model.len());
                table.check_invariants().map_err(TestCaseError::fail)?;
            }
        }
    }
}
