//! Loading the boot archive (`kernel_abi::archive`) into the file system. File contents stay in the
//! archive bytes until first written.

use kernel_abi::archive::{entries, ArchiveError, EntryKind};

use super::{Directory, FileData, FileSystem, NodeId, NodeKind, ROOT};
use crate::errno::Errno;

/// Why the archive could not be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    Malformed(ArchiveError),
    /// An entry clashes with what exists (a file where a directory is needed, a duplicate file, ...)
    /// or the file system is full.
    Conflict {
        errno: Errno,
    },
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "{e}"),
            Self::Conflict { errno } => {
                write!(f, "files archive: an entry clashes with the file system ({})", errno.name().unwrap_or("?"))
            }
        }
    }
}

impl FileSystem {
    /// Adds every entry of the boot archive (which must be the `archive` given to [`FileSystem::new`]).
    /// Missing parent directories are created (mode 0755, writable).
    pub fn load_archive(&mut self, now_ns: u64) -> Result<(), LoadError> {
        let archive = self.archive;
        // Read-only takes effect after loading, so read-only directories can still receive their entries.
        let mut read_only = alloc::vec::Vec::new();
        for entry in entries(archive).map_err(LoadError::Malformed)? {
            let entry = entry.map_err(LoadError::Malformed)?;
            let conflict = |errno| LoadError::Conflict { errno };
            if entry.path == super::PROGRAM_ENTRY && entry.kind == EntryKind::File {
                self.adopt_program(entry.data_offset, entry.data.len(), entry.mode, now_ns).map_err(conflict)?;
                continue;
            }
            let (parent_path, name) = match entry.path.iter().rposition(|&b| b == b'/') {
                Some(slash) => (&entry.path[..slash], &entry.path[slash + 1..]),
                None => return Err(conflict(Errno::EINVAL)),
            };
            let parent = self.make_dirs(parent_path, now_ns).map_err(conflict)?;
            let kind = match entry.kind {
                EntryKind::Directory => NodeKind::Directory(Directory::new()),
                EntryKind::File => {
                    NodeKind::File(FileData::Archive { offset: entry.data_offset, len: entry.data.len() })
                }
                EntryKind::Symlink => NodeKind::Symlink(entry.data.to_vec()),
            };
            let id = match self.lookup(parent, name) {
                // A directory may be announced after its children created it implicitly.
                Ok(existing)
                    if entry.kind == EntryKind::Directory && self.node(existing).is_some_and(|n| n.is_dir()) =>
                {
                    existing
                }
                Ok(_) => return Err(conflict(Errno::EEXIST)),
                Err(_) => self.create(parent, name, kind, entry.mode, now_ns).map_err(conflict)?,
            };
            if let Some(node) = self.node_mut(id) {
                node.mode = entry.mode;
            }
            if entry.read_only {
                read_only.try_reserve(1).map_err(|_| LoadError::Conflict { errno: Errno::ENOMEM })?;
                read_only.push(id);
            }
        }
        for id in read_only {
            self.set_read_only(id);
        }
        Ok(())
    }

    /// `mkdir -p` for an absolute, normalized path; returns the last directory.
    pub(super) fn make_dirs(&mut self, path: &[u8], now_ns: u64) -> Result<NodeId, Errno> {
        let mut cur = ROOT;
        for component in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            cur = match self.lookup(cur, component) {
                Ok(id) if self.node(id).is_some_and(|n| n.is_dir()) => id,
                Ok(_) => return Err(Errno::ENOTDIR),
                Err(_) => self.create(cur, component, NodeKind::Directory(Directory::new()), 0o755, now_ns)?,
            };
        }
        Ok(cur)
    }
}
