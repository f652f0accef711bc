//! The nodes of the in-memory file system.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Index of a node in [`super::FileSystem`]'s table.
pub type NodeId = usize;

/// File type bits of `st_mode`.
pub const S_IFMT: u32 = 0o170_000;
pub const S_IFIFO: u32 = 0o010_000;
pub const S_IFCHR: u32 = 0o020_000;
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFLNK: u32 = 0o120_000;

/// `d_type` values of getdents64.
pub const DT_FIFO: u8 = 1;
pub const DT_CHR: u8 = 2;
pub const DT_DIR: u8 = 4;
pub const DT_REG: u8 = 8;
pub const DT_LNK: u8 = 10;

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

/// Contents of a regular file: still the bytes of the boot archive (never copied until written), or owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileData {
    Archive { offset: usize, len: usize },
    Owned(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Directory(BTreeMap<Vec<u8>, NodeId>),
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

    pub fn entries(&self) -> Option<&BTreeMap<Vec<u8>, NodeId>> {
        match &self.kind {
            NodeKind::Directory(entries) => Some(entries),
            _ => None,
        }
    }
}
