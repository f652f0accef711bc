//! The nodes of the in-memory file system.

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::cmp::Ordering;

/// Index of a node in [`super::FileSystem`]'s table.
pub type NodeId = usize;

/// File type bits of `st_mode`.
pub use linux_raw_sys::general::{S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG};

/// `d_type` values of getdents64 (a byte in `struct linux_dirent64`).
pub const DT_FIFO: u8 = linux_raw_sys::general::DT_FIFO as u8;
pub const DT_CHR: u8 = linux_raw_sys::general::DT_CHR as u8;
pub const DT_DIR: u8 = linux_raw_sys::general::DT_DIR as u8;
pub const DT_REG: u8 = linux_raw_sys::general::DT_REG as u8;
pub const DT_LNK: u8 = linux_raw_sys::general::DT_LNK as u8;

/// The character devices under `/dev`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// Reads EOF, swallows writes.
    Null,
    /// Reads zeros, swallows writes.
    Zero,
    /// Reads the kernel's seeded ChaCha stream (`/dev/urandom`, `/dev/random`).
    Random,
}

impl Device {
    /// `st_rdev` (Linux's numbers: mem major 1).
    pub const fn rdev(self) -> u64 {
        match self {
            Self::Null => (1 << 8) | 3,
            Self::Zero => (1 << 8) | 5,
            Self::Random => (1 << 8) | 9,
        }
    }
}

/// Contents of a regular file: bytes the kernel did not copy (the boot archive's, or others that stay
/// unchanged for the run) until first written, or owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileData {
    Archive {
        offset: usize,
        len: usize,
    },
    /// Bytes outside the file system, referenced: the `--afl` input (see [`crate::afl`]).
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

/// A directory entry's name, or a path component being looked up.
///
/// Ordered as its bytes are, but compared through `head`, its first eight bytes (zero-padded) as a
/// big-endian number: most comparisons in a directory search are then one instruction instead of a
/// `memcmp` call, which matters where every kernel instruction is emulated (about 1 µs each on nested
/// KVM). Names fixed at build time (the standard tree's) borrow their bytes and get their head at compile
/// time.
#[derive(Clone)]
pub struct Name<'a> {
    head: u64,
    bytes: Cow<'a, [u8]>,
}

impl<'a> Name<'a> {
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self { head: head_of(bytes), bytes: Cow::Borrowed(bytes) }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The first eight bytes of `bytes`, zero-padded, as a big-endian number. A shorter name is read 4, 2 and
/// 1 bytes at a time (a loop per byte took about twice the instructions, at each path lookup).
const fn head_of(bytes: &[u8]) -> u64 {
    if let Some(first) = bytes.first_chunk::<8>() {
        return u64::from_be_bytes(*first);
    }
    let (mut head, mut shift, mut rest) = (0, 64, bytes);
    if let Some((four, tail)) = rest.split_first_chunk::<4>() {
        shift -= 32;
        head |= (u32::from_be_bytes(*four) as u64) << shift;
        rest = tail;
    }
    if let Some((two, tail)) = rest.split_first_chunk::<2>() {
        shift -= 16;
        head |= (u16::from_be_bytes(*two) as u64) << shift;
        rest = tail;
    }
    if let [one, ..] = rest {
        head |= (*one as u64) << (shift - 8);
    }
    head
}

impl Ord for Name<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.head != other.head {
            return self.head.cmp(&other.head);
        }
        // Equal heads of names up to eight bytes long: the longer one is the shorter one followed by NULs,
        // so it sorts after it.
        if self.bytes.len() <= 8 && other.bytes.len() <= 8 {
            return self.bytes.len().cmp(&other.bytes.len());
        }
        self.bytes.cmp(&other.bytes)
    }
}

impl PartialOrd for Name<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Name<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Name<'_> {}

/// A directory's key: a [`Name`] that owns its bytes or borrows them for the whole run. Searches borrow
/// it as a `Name` of a shorter lifetime, so a path component is looked up without copying it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct EntryName(Name<'static>);

impl<'a> Borrow<Name<'a>> for EntryName {
    fn borrow(&self) -> &Name<'a> {
        &self.0
    }
}

/// A directory's entries, in the byte order of their names (the order getdents64 lists them in).
///
/// At most one of the two fields holds entries: `fixed` until the first change, `tree` after it.
#[derive(Clone, Default)]
pub struct Directory {
    /// A constant table, sorted by name: the standard tree's directories, most of which never change,
    /// cost boot no allocation and no insertion.
    fixed: &'static [(Name<'static>, NodeId)],
    /// A B-tree, so that a directory of many thousand files stays fast to search and to grow.
    tree: BTreeMap<EntryName, NodeId>,
}

impl Directory {
    pub const fn new() -> Self {
        Self { fixed: &[], tree: BTreeMap::new() }
    }

    /// A directory holding `entries`, which must be sorted by name without duplicates.
    pub const fn fixed(entries: &'static [(Name<'static>, NodeId)]) -> Self {
        Self { fixed: entries, tree: BTreeMap::new() }
    }

    pub fn get(&self, name: &[u8]) -> Option<NodeId> {
        let name = Name::new(name);
        match self.fixed.iter().find(|(entry, _)| *entry == name) {
            Some(&(_, id)) => Some(id),
            None => self.tree.get(&name).copied(),
        }
    }

    /// Adds or replaces an entry (with a copy of `name`).
    pub fn insert(&mut self, name: &[u8], id: NodeId) {
        let Name { head, bytes } = Name::new(name);
        self.tree().insert(EntryName(Name { head, bytes: Cow::Owned(bytes.into_owned()) }), id);
    }

    pub fn remove(&mut self, name: &[u8]) -> Option<NodeId> {
        self.tree().remove(&Name::new(name))
    }

    /// The B-tree, holding the fixed table's entries if there were any.
    fn tree(&mut self) -> &mut BTreeMap<EntryName, NodeId> {
        let fixed = core::mem::take(&mut self.fixed);
        self.tree.extend(fixed.iter().map(|(name, id)| (EntryName(name.clone()), *id)));
        &mut self.tree
    }

    pub fn len(&self) -> usize {
        self.fixed.len() + self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Names and nodes in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], NodeId)> {
        let fixed = self.fixed.iter().map(|(name, id)| (name.as_bytes(), *id));
        fixed.chain(self.tree.iter().map(|(name, id)| (name.0.as_bytes(), *id)))
    }

    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.iter().map(|(_, id)| id)
    }
}

/// Directories are equal when they hold the same entries, however they are stored.
impl PartialEq for Directory {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Directory {}

impl core::fmt::Debug for Directory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Directory(Directory),
    File(FileData),
    Symlink(Vec<u8>),
    Device(Device),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub ino: u64,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Data and (for directories) entries cannot change: EROFS.
    pub read_only: bool,
    /// Still reachable from the tree (false once unlinked or removed).
    pub linked: bool,
    /// Open descriptions and the cwd that keep the node alive after it is unlinked.
    pub refs: u32,
    /// The directory holding this node (the root is its own parent).
    pub parent: NodeId,
    pub mtime_ns: u64,
    pub ctime_ns: u64,
    pub kind: NodeKind,
}

impl Node {
    pub fn file_type(&self) -> u32 {
        match self.kind {
            NodeKind::Directory(_) => S_IFDIR,
            NodeKind::File(_) => S_IFREG,
            NodeKind::Symlink(_) => S_IFLNK,
            NodeKind::Device(_) => S_IFCHR,
        }
    }

    pub fn dirent_type(&self) -> u8 {
        match self.kind {
            NodeKind::Directory(_) => DT_DIR,
            NodeKind::File(_) => DT_REG,
            NodeKind::Symlink(_) => DT_LNK,
            NodeKind::Device(_) => DT_CHR,
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Directory(_))
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        matches!(self.kind, NodeKind::File(_))
    }

    pub fn is_symlink(&self) -> bool {
        matches!(self.kind, NodeKind::Symlink(_))
    }

    pub fn entries(&self) -> Option<&Directory> {
        match &self.kind {
            NodeKind::Directory(entries) => Some(entries),
            _ => None,
        }
    }
}
