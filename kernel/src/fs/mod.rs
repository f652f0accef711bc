//! The in-memory file system: a tree of [`Node`]s in a slab, path resolution with Linux's rules and
//! errors, and the data of regular files (the boot archive's or other referenced bytes until first
//! written).
//!
//! ```text
//! /                 writable
//! /tmp              writable, mode 1777
//! /dev/{null,zero,urandom,random}
//! /proc/self/exe    symlink to the app's path (for readlink)
//! <mounts>          from the boot archive; read-only entries refuse writes with EROFS
//! <afl input>       with `--afl` and an input path: the input's bytes (`crate::afl`)
//! ```
//! Memory is bounded: file data beyond the configured capacity fails with ENOSPC, and the number of
//! nodes is capped.
#![forbid(unsafe_code)]

pub mod archive;
pub mod node;

use alloc::vec::Vec;

pub use node::{Device, Directory, FileData, Name, Node, NodeId, NodeKind};

use crate::errno::Errno;

/// The root directory.
pub const ROOT: NodeId = 0;
/// Longest path component.
pub const NAME_MAX: usize = 255;
/// Symlinks followed during one resolution before ELOOP.
pub const MAX_SYMLINKS: u32 = 40;
/// Most nodes the file system holds.
pub const MAX_NODES: usize = 1 << 16;

/// Counts for `stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub ino: u64,
    /// Type and permission bits.
    pub mode: u32,
    pub nlink: u64,
    pub size: u64,
    pub rdev: u64,
    pub mtime_ns: u64,
    pub ctime_ns: u64,
}

/// The standard tree's directories with entries, as tables sorted by name (see [`Directory::fixed`]).
const DEV: NodeId = 2;
const PROC: NodeId = 7;
const PROC_SELF: NodeId = 8;
const ROOT_ENTRIES: &[(Name<'static>, NodeId)] =
    &[(Name::new(b"dev"), DEV), (Name::new(b"proc"), PROC), (Name::new(b"tmp"), 1)];
const DEV_ENTRIES: &[(Name<'static>, NodeId)] =
    &[(Name::new(b"null"), 3), (Name::new(b"random"), 6), (Name::new(b"urandom"), 5), (Name::new(b"zero"), 4)];
const PROC_ENTRIES: &[(Name<'static>, NodeId)] = &[(Name::new(b"self"), PROC_SELF)];
const PROC_SELF_ENTRIES: &[(Name<'static>, NodeId)] = &[(Name::new(b"exe"), PROC_SELF_EXE)];
const PROC_SELF_EXE: NodeId = 9;

/// Device number of the in-memory file system.
pub const FS_DEV: u64 = 0x2a;

#[derive(Debug)]
pub struct FileSystem {
    nodes: Vec<Option<Node>>,
    free: Vec<NodeId>,
    archive: &'static [u8],
    next_ino: u64,
    used_bytes: u64,
    capacity: u64,
    /// The program the run started, from the archive entry [`PROGRAM_ENTRY`]: a file linked in no
    /// directory (one reference, the file system's own), and the path `/proc/self/exe` names it by. A
    /// process whose `/proc/self/exe` still names that path reaches this file through it, as Linux's
    /// magic link reaches the program whether or not its path exists in the file system.
    program: Option<(NodeId, Vec<u8>)>,
}

pub use kernel_abi::archive::PROGRAM_ENTRY;

/// The parent directory and last component of a path, for operations that create or remove names.
#[derive(Debug)]
pub struct ParentAndName<'p> {
    pub parent: NodeId,
    /// Empty for `/`; may be `.` or `..`.
    pub name: &'p [u8],
    /// The path ended in `/`: the last component must be a directory.
    pub trailing_slash: bool,
}

fn to_u64(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

impl FileSystem {
    /// The standard tree without mounts; `capacity` bounds owned file data in bytes.
    ///
    /// Built node by node rather than through [`Self::create`]: the names are fixed and valid, and boot
    /// pays for every instruction where kernel code is emulated. `standard_tree_matches_create` checks that
    /// the result is what `create` would have built.
    pub fn new(archive: &'static [u8], exe_path: &[u8], capacity: u64, now_ns: u64) -> Self {
        // Room for the standard tree and a few mounts without regrowing (each move of the table is a copy),
        // in 2 KiB: the kernel heap's largest size class, whose blocks take a few instructions to allocate
        // where larger ones take a first-fit search.
        let nodes = Vec::with_capacity(2048 / size_of::<Option<Node>>());
        let mut fs = Self { nodes, free: Vec::new(), archive, next_ino: 1, used_bytes: 0, capacity, program: None };
        // A symlink's target counts towards the capacity, as in `create`.
        fs.used_bytes = to_u64(exe_path.len());
        // A node's id is its index (see the `*_ENTRIES` tables).
        let fixed = |entries| NodeKind::Directory(Directory::fixed(entries));
        fs.push_node(ROOT, 0o755, false, fixed(ROOT_ENTRIES), now_ns);
        fs.push_node(ROOT, 0o1777, false, NodeKind::Directory(Directory::new()), now_ns);
        fs.push_node(ROOT, 0o755, true, fixed(DEV_ENTRIES), now_ns);
        for device in [Device::Null, Device::Zero, Device::Random, Device::Random] {
            fs.push_node(DEV, 0o666, false, NodeKind::Device(device), now_ns);
        }
        fs.push_node(ROOT, 0o555, true, fixed(PROC_ENTRIES), now_ns);
        fs.push_node(PROC, 0o555, true, fixed(PROC_SELF_ENTRIES), now_ns);
        fs.push_node(PROC_SELF, 0o777, false, NodeKind::Symlink(exe_path.to_vec()), now_ns);
        fs
    }

    /// The program file `/proc/self/exe` leads to while it names the run's first program (see
    /// [`FileSystem::program`]).
    fn program_behind_exe(&self) -> Option<NodeId> {
        let (program, path) = self.program.as_ref()?;
        match self.node(PROC_SELF_EXE).map(|node| &node.kind) {
            Some(NodeKind::Symlink(target)) if target == path => Some(*program),
            _ => None,
        }
    }

    /// The run's first program file, if the VMM packed it.
    pub fn program(&self) -> Option<NodeId> {
        self.program.as_ref().map(|(id, _)| *id)
    }

    /// The path `/proc/self/exe` shows for the program file `id`.
    pub fn exe_path_of(&self, id: NodeId) -> Result<Vec<u8>, Errno> {
        match &self.program {
            Some((program, path)) if *program == id => Ok(path.clone()),
            _ => self.path_of(id),
        }
    }

    /// Takes the archive's program entry: a file linked nowhere, referenced by the file system itself.
    pub(super) fn adopt_program(&mut self, offset: usize, len: usize, mode: u32, now_ns: u64) -> Result<(), Errno> {
        if self.program.is_some() {
            return Err(Errno::EEXIST);
        }
        let path = match self.node(PROC_SELF_EXE).map(|node| &node.kind) {
            Some(NodeKind::Symlink(target)) => target.clone(),
            _ => return Err(Errno::ENOENT),
        };
        let mut node = self.fresh_node(ROOT, mode, NodeKind::File(FileData::Archive { offset, len }), now_ns);
        node.linked = false;
        node.refs = 1;
        node.read_only = true;
        let id = self.nodes.len();
        self.nodes.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        self.nodes.push(Some(node));
        self.program = Some((id, path));
        Ok(())
    }

    /// Points `/proc/self/exe` at `path` (the running process's program, `crate::processes` swaps it at
    /// every switch); returns what it pointed at.
    pub fn replace_exe_path(&mut self, path: Vec<u8>) -> Vec<u8> {
        let new_len = to_u64(path.len());
        let old = match self.nodes.get_mut(PROC_SELF_EXE).and_then(Option::as_mut).map(|node| &mut node.kind) {
            Some(NodeKind::Symlink(target)) => core::mem::replace(target, path),
            _ => return path,
        };
        // A symlink's target counts towards the capacity (see `new`).
        self.used_bytes = self.used_bytes.saturating_sub(to_u64(old.len())).saturating_add(new_len);
        old
    }

    /// Appends a node of the standard tree, built in place in the table (moving each node through a table
    /// of the tree first cost twice the instructions).
    fn push_node(&mut self, parent: NodeId, mode: u32, read_only: bool, kind: NodeKind, now_ns: u64) {
        let mut node = self.fresh_node(parent, mode, kind, now_ns);
        node.read_only = read_only;
        self.nodes.push(Some(node));
    }

    fn set_read_only(&mut self, id: NodeId) {
        if let Some(node) = self.node_mut(id) {
            node.read_only = true;
        }
    }

    fn fresh_node(&mut self, parent: NodeId, mode: u32, kind: NodeKind, now_ns: u64) -> Node {
        let ino = self.next_ino;
        self.next_ino += 1;
        Node {
            ino,
            mode: mode & 0o7777,
            read_only: false,
            linked: true,
            refs: 0,
            parent,
            mtime_ns: now_ns,
            ctime_ns: now_ns,
            kind,
        }
    }

    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id).and_then(Option::as_ref)
    }

    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(id).and_then(Option::as_mut)
    }

    fn get(&self, id: NodeId) -> Result<&Node, Errno> {
        self.node(id).ok_or(Errno::ENOENT)
    }

    /// The bytes of a regular file.
    pub fn file_bytes(&self, id: NodeId) -> Result<&[u8], Errno> {
        match &self.get(id)?.kind {
            NodeKind::File(FileData::Owned(data)) => Ok(data),
            NodeKind::File(FileData::Archive { offset, len }) => {
                Ok(offset.checked_add(*len).and_then(|end| self.archive.get(*offset..end)).unwrap_or(&[]))
            }
            NodeKind::File(FileData::Static(bytes)) => Ok(bytes),
            NodeKind::Directory(_) => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    pub fn lookup(&self, dir: NodeId, name: &[u8]) -> Result<NodeId, Errno> {
        let node = self.get(dir)?;
        let entries = node.entries().ok_or(Errno::ENOTDIR)?;
        match name {
            b"" | b"." => Ok(dir),
            b".." => Ok(node.parent),
            _ => entries.get(name).ok_or(Errno::ENOENT),
        }
    }

    /// Resolves `path` relative to `base` (or the root if absolute). With `follow_last`, a symlink as the
    /// last component is followed; intermediate ones always are.
    pub fn resolve(&self, base: NodeId, path: &[u8], follow_last: bool) -> Result<NodeId, Errno> {
        let mut links = 0;
        self.walk(base, path, follow_last, &mut links)
    }

    fn walk(&self, base: NodeId, path: &[u8], follow_last: bool, links: &mut u32) -> Result<NodeId, Errno> {
        if path.len() >= crate::user::PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let mut cur = if path.first() == Some(&b'/') { ROOT } else { base };
        let must_be_dir = path.last() == Some(&b'/');
        let mut components = path.split(|&b| b == b'/').filter(|c| !c.is_empty()).peekable();
        while let Some(component) = components.next() {
            let last = components.peek().is_none();
            if component.len() > NAME_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
            let child = self.lookup(cur, component)?;
            if child == PROC_SELF_EXE && (!last || follow_last || must_be_dir) {
                if let Some(program) = self.program_behind_exe() {
                    cur = program;
                    continue;
                }
            }
            match &self.get(child)?.kind {
                NodeKind::Symlink(target) if !last || follow_last || must_be_dir => {
                    *links += 1;
                    if *links > MAX_SYMLINKS {
                        return Err(Errno::ELOOP);
                    }
                    cur = self.walk(cur, target, true, links)?;
                }
                _ => cur = child,
            }
        }
        if must_be_dir && !self.get(cur)?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(cur)
    }

    /// Splits `path` into its (resolved) parent directory and last component.
    pub fn resolve_parent<'p>(&self, base: NodeId, path: &'p [u8]) -> Result<ParentAndName<'p>, Errno> {
        if path.len() >= crate::user::PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let trimmed_len = path.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
        let trailing_slash = trimmed_len < path.len();
        let trimmed = &path[..trimmed_len];
        let (dir_part, name) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(slash) => (&path[..=slash], &trimmed[slash + 1..]),
            None if path.first() == Some(&b'/') => (&b"/"[..], &b""[..]),
            None => (&b""[..], trimmed),
        };
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let parent = self.resolve(base, dir_part, true)?;
        if !self.get(parent)?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(ParentAndName { parent, name, trailing_slash })
    }

    /// Creates `name` in directory `parent`.
    pub fn create(
        &mut self,
        parent: NodeId,
        name: &[u8],
        kind: NodeKind,
        mode: u32,
        now_ns: u64,
    ) -> Result<NodeId, Errno> {
        let dir = self.get(parent)?;
        let entries = dir.entries().ok_or(Errno::ENOTDIR)?;
        if name.is_empty() || name == b"." || name == b".." || entries.get(name).is_some() {
            return Err(Errno::EEXIST);
        }
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if !dir.linked {
            return Err(Errno::ENOENT);
        }
        if dir.read_only {
            return Err(Errno::EROFS);
        }
        let extra = match &kind {
            NodeKind::Symlink(target) => to_u64(target.len()),
            NodeKind::File(FileData::Owned(data)) => to_u64(data.len()),
            _ => 0,
        };
        self.charge(0, extra)?;
        let node = self.fresh_node(parent, mode, kind, now_ns);
        let id = match self.free.pop() {
            Some(id) => id,
            None if self.nodes.len() < MAX_NODES => {
                self.nodes.try_reserve(1).map_err(|_| Errno::ENOSPC)?;
                self.nodes.push(None);
                self.nodes.len() - 1
            }
            None => {
                self.used_bytes -= extra;
                return Err(Errno::ENOSPC);
            }
        };
        if let Some(slot) = self.nodes.get_mut(id) {
            *slot = Some(node);
        }
        if let Some(NodeKind::Directory(entries)) = self.node_mut(parent).map(|d| &mut d.kind) {
            entries.insert(name, id);
        }
        self.touch(parent, now_ns);
        Ok(id)
    }

    /// Creates the regular file at the absolute `path` with `data` as its bytes, referenced rather than
    /// copied (a write or truncate makes them the file's own first), and the directories missing on the
    /// way (mode 0755, as the archive's).
    pub fn create_static_file(
        &mut self,
        path: &[u8],
        data: &'static [u8],
        mode: u32,
        now_ns: u64,
    ) -> Result<NodeId, Errno> {
        if path.len() >= crate::user::PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let Some(slash) = path.iter().rposition(|&b| b == b'/').filter(|_| path.first() == Some(&b'/')) else {
            return Err(Errno::EINVAL);
        };
        let parent = self.make_dirs(&path[..slash], now_ns)?;
        self.create(parent, &path[slash + 1..], NodeKind::File(FileData::Static(data)), mode, now_ns)
    }

    /// Makes `data` (referenced, not copied) the bytes of regular file `id`; anything else is left alone.
    pub fn set_static_data(&mut self, id: NodeId, data: &'static [u8]) {
        let Some(NodeKind::File(file)) = self.node_mut(id).map(|node| &mut node.kind) else { return };
        let owned = match file {
            FileData::Owned(bytes) => to_u64(bytes.len()),
            _ => 0,
        };
        *file = FileData::Static(data);
        self.used_bytes = self.used_bytes.saturating_sub(owned);
    }

    fn touch(&mut self, id: NodeId, now_ns: u64) {
        if let Some(node) = self.node_mut(id) {
            node.mtime_ns = now_ns;
            node.ctime_ns = now_ns;
        }
    }

    /// Accounts for data growing from `old` to `new` bytes.
    fn charge(&mut self, old: u64, new: u64) -> Result<(), Errno> {
        let used = self.used_bytes.saturating_sub(old).checked_add(new).ok_or(Errno::ENOSPC)?;
        if used > self.capacity {
            return Err(Errno::ENOSPC);
        }
        self.used_bytes = used;
        Ok(())
    }

    /// Removes the name `name` from `parent`; `directory` selects rmdir semantics, else unlink.
    pub fn remove(&mut self, parent: NodeId, name: &[u8], directory: bool, now_ns: u64) -> Result<(), Errno> {
        if directory {
            match name {
                b"." => return Err(Errno::EINVAL),
                b".." => return Err(Errno::ENOTEMPTY),
                b"" => return Err(Errno::EBUSY),
                _ => {}
            }
        } else if matches!(name, b"" | b"." | b"..") {
            return Err(Errno::EISDIR);
        }
        let child = self.lookup(parent, name)?;
        let node = self.get(child)?;
        match (&node.kind, directory) {
            (NodeKind::Directory(entries), true) if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
            (NodeKind::Directory(_), false) => return Err(Errno::EISDIR),
            (NodeKind::Directory(_), true) => {}
            (_, true) => return Err(Errno::ENOTDIR),
            (_, false) => {}
        }
        if self.get(parent)?.read_only {
            return Err(Errno::EROFS);
        }
        if let Some(NodeKind::Directory(entries)) = self.node_mut(parent).map(|d| &mut d.kind) {
            entries.remove(name);
        }
        self.touch(parent, now_ns);
        if let Some(node) = self.node_mut(child) {
            node.linked = false;
        }
        self.collect(child);
        Ok(())
    }

    /// Renames `old_parent/old_name` to `new_parent/new_name` with Linux's checks. `no_replace` fails with
    /// EEXIST when the target exists; `exchange` swaps two existing names.
    #[allow(clippy::too_many_arguments)]
    pub fn rename(
        &mut self,
        old_parent: NodeId,
        old_name: &[u8],
        new_parent: NodeId,
        new_name: &[u8],
        no_replace: bool,
        exchange: bool,
        now_ns: u64,
    ) -> Result<(), Errno> {
        for name in [old_name, new_name] {
            if matches!(name, b"" | b"." | b"..") {
                return Err(Errno::EBUSY);
            }
        }
        let source = self.lookup(old_parent, old_name)?;
        let target = match self.lookup(new_parent, new_name) {
            Ok(id) => Some(id),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e),
        };
        if self.get(old_parent)?.read_only || self.get(new_parent)?.read_only {
            return Err(Errno::EROFS);
        }
        if exchange {
            let target = target.ok_or(Errno::ENOENT)?;
            if self.is_ancestor(source, new_parent) || self.is_ancestor(target, old_parent) {
                return Err(Errno::EINVAL);
            }
            self.set_entry(old_parent, old_name, target);
            self.set_entry(new_parent, new_name, source);
            self.reparent(target, old_parent);
            self.reparent(source, new_parent);
            self.touch(old_parent, now_ns);
            self.touch(new_parent, now_ns);
            return Ok(());
        }
        if target == Some(source) {
            return if no_replace { Err(Errno::EEXIST) } else { Ok(()) };
        }
        let source_is_dir = self.get(source)?.is_dir();
        // A directory cannot move below itself.
        if source_is_dir && self.is_ancestor(source, new_parent) {
            return Err(Errno::EINVAL);
        }
        if let Some(target) = target {
            if no_replace {
                return Err(Errno::EEXIST);
            }
            let target_node = self.get(target)?;
            match (source_is_dir, &target_node.kind) {
                (true, NodeKind::Directory(entries)) if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
                (true, NodeKind::Directory(_)) => {}
                (true, _) => return Err(Errno::ENOTDIR),
                (false, NodeKind::Directory(_)) => return Err(Errno::EISDIR),
                (false, _) => {}
            }
            if let Some(node) = self.node_mut(target) {
                node.linked = false;
            }
        }
        if let Some(NodeKind::Directory(entries)) = self.node_mut(old_parent).map(|d| &mut d.kind) {
            entries.remove(old_name);
        }
        self.set_entry(new_parent, new_name, source);
        self.reparent(source, new_parent);
        self.touch(old_parent, now_ns);
        self.touch(new_parent, now_ns);
        if let Some(target) = target {
            self.collect(target);
        }
        Ok(())
    }

    fn set_entry(&mut self, dir: NodeId, name: &[u8], id: NodeId) {
        if let Some(NodeKind::Directory(entries)) = self.node_mut(dir).map(|d| &mut d.kind) {
            entries.insert(name, id);
        }
    }

    fn reparent(&mut self, id: NodeId, parent: NodeId) {
        if let Some(node) = self.node_mut(id) {
            node.parent = parent;
        }
    }

    /// True when `ancestor` is `node` or one of its parents.
    pub fn is_ancestor(&self, ancestor: NodeId, mut node: NodeId) -> bool {
        for _ in 0..MAX_NODES {
            if node == ancestor {
                return true;
            }
            match self.node(node) {
                Some(n) if n.parent != node => node = n.parent,
                _ => return false,
            }
        }
        false
    }

    /// Takes a reference (an open description or the cwd) that keeps `id` alive after unlink.
    pub fn acquire(&mut self, id: NodeId) {
        if let Some(node) = self.node_mut(id) {
            node.refs = node.refs.saturating_add(1);
        }
    }

    /// Drops a reference taken by [`FileSystem::acquire`].
    pub fn release(&mut self, id: NodeId) {
        if let Some(node) = self.node_mut(id) {
            node.refs = node.refs.saturating_sub(1);
        }
        self.collect(id);
    }

    /// Frees an unlinked, unreferenced node.
    fn collect(&mut self, id: NodeId) {
        let dead = self.node(id).is_some_and(|n| !n.linked && n.refs == 0 && id != ROOT);
        if !dead {
            return;
        }
        if let Some(node) = self.nodes.get_mut(id).and_then(Option::take) {
            let bytes = match &node.kind {
                NodeKind::File(FileData::Owned(data)) => to_u64(data.len()),
                NodeKind::Symlink(target) => to_u64(target.len()),
                _ => 0,
            };
            self.used_bytes = self.used_bytes.saturating_sub(bytes);
            self.free.push(id);
        }
    }

    /// Makes a regular file's data owned (copying it out of the archive or the static bytes) and returns it.
    fn owned_data(&mut self, id: NodeId) -> Result<&mut Vec<u8>, Errno> {
        let node = self.get(id)?;
        if node.read_only {
            return Err(Errno::EROFS);
        }
        if let NodeKind::File(FileData::Archive { .. } | FileData::Static(_)) = node.kind {
            let bytes = self.file_bytes(id)?;
            let mut copy = Vec::new();
            copy.try_reserve_exact(bytes.len()).map_err(|_| Errno::ENOSPC)?;
            copy.extend_from_slice(bytes);
            self.charge(0, to_u64(copy.len()))?;
            if let Some(node) = self.node_mut(id) {
                node.kind = NodeKind::File(FileData::Owned(copy));
            }
        }
        match self.node_mut(id).map(|n| &mut n.kind) {
            Some(NodeKind::File(FileData::Owned(data))) => Ok(data),
            Some(NodeKind::Directory(_)) => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Reads from a regular file at `offset`; returns the byte count (0 at or past EOF).
    pub fn read_file(&self, id: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let data = self.file_bytes(id)?;
        let Ok(start) = usize::try_from(offset) else { return Ok(0) };
        let Some(available) = data.get(start..) else { return Ok(0) };
        let count = available.len().min(buf.len());
        buf[..count].copy_from_slice(&available[..count]);
        Ok(count)
    }

    /// Writes into a regular file at `offset`, growing it (zero-filling any hole).
    pub fn write_file(&mut self, id: NodeId, offset: u64, data: &[u8], now_ns: u64) -> Result<usize, Errno> {
        let end = offset.checked_add(to_u64(data.len())).ok_or(Errno::EFBIG)?;
        let (Ok(start), Ok(end_index)) = (usize::try_from(offset), usize::try_from(end)) else {
            return Err(Errno::EFBIG);
        };
        let old_len = to_u64(self.owned_data(id)?.len());
        if end > old_len {
            self.charge(old_len, end)?;
        }
        // Each byte is written once: the part inside the file is overwritten, the rest appended (after
        // zeros for a hole), rather than growing the file with zeros first and copying over them.
        let file = self.owned_data(id)?;
        if end_index > file.len() && file.try_reserve(end_index - file.len()).is_err() {
            // Growing was charged above: give it back. Nothing was written.
            self.used_bytes = self.used_bytes.saturating_sub(end).saturating_add(old_len);
            return Err(Errno::ENOSPC);
        }
        let inside_end = end_index.min(file.len());
        if start < inside_end {
            file[start..inside_end].copy_from_slice(&data[..inside_end - start]);
        }
        if end_index > file.len() {
            let already = file.len().saturating_sub(start);
            file.resize(file.len().max(start), 0);
            file.extend_from_slice(&data[already..]);
        }
        self.touch(id, now_ns);
        Ok(data.len())
    }

    /// Overwrites bytes of a regular file in place, within its current length (what lies past it is
    /// dropped), leaving its size and times alone: stores that reached the file through a shared mapping.
    /// Bytes that are already there are not written (a file still in the boot archive stays there).
    pub fn store(&mut self, id: NodeId, offset: u64, data: &[u8]) {
        let Ok(start) = usize::try_from(offset) else { return };
        let unchanged = self.file_bytes(id).is_ok_and(|bytes| {
            let end = start.saturating_add(data.len()).min(bytes.len());
            start >= end || bytes[start..end] == data[..end - start]
        });
        if unchanged {
            return;
        }
        let Ok(file) = self.owned_data(id) else { return };
        let end = start.saturating_add(data.len()).min(file.len());
        if start < end {
            file[start..end].copy_from_slice(&data[..end - start]);
        }
    }

    /// Truncates or extends a regular file.
    pub fn set_len(&mut self, id: NodeId, len: u64, now_ns: u64) -> Result<(), Errno> {
        let old = to_u64(self.owned_data(id)?.len());
        let new_len = usize::try_from(len).map_err(|_| Errno::EFBIG)?;
        self.charge(old, len)?;
        let file = self.owned_data(id)?;
        if new_len > file.len() && file.try_reserve(new_len - file.len()).is_err() {
            self.used_bytes = self.used_bytes.saturating_sub(len).saturating_add(old);
            return Err(Errno::ENOSPC);
        }
        file.resize(new_len, 0);
        self.touch(id, now_ns);
        Ok(())
    }

    pub fn stat(&self, id: NodeId) -> Result<Stat, Errno> {
        let node = self.get(id)?;
        let (size, nlink, rdev) = match &node.kind {
            NodeKind::Directory(entries) => {
                let subdirs = entries.nodes().filter(|&c| self.node(c).is_some_and(Node::is_dir)).count();
                (4096, if node.linked { 2 + to_u64(subdirs) } else { 0 }, 0)
            }
            NodeKind::File(_) => (to_u64(self.file_bytes(id)?.len()), u64::from(node.linked), 0),
            NodeKind::Symlink(target) => (to_u64(target.len()), u64::from(node.linked), 0),
            NodeKind::Device(device) => (0, u64::from(node.linked), device.rdev()),
        };
        Ok(Stat {
            ino: node.ino,
            mode: node.file_type() | node.mode,
            nlink,
            size,
            rdev,
            mtime_ns: node.mtime_ns,
            ctime_ns: node.ctime_ns,
        })
    }

    /// The absolute path of directory `id` (for getcwd); ENOENT once it was removed.
    pub fn path_of(&self, id: NodeId) -> Result<Vec<u8>, Errno> {
        let mut names: Vec<&[u8]> = Vec::new();
        let mut cur = id;
        while cur != ROOT {
            let node = self.get(cur)?;
            if !node.linked || names.len() > MAX_NODES {
                return Err(Errno::ENOENT);
            }
            let parent = self.get(node.parent)?;
            let name = parent.entries().and_then(|e| e.iter().find(|&(_, c)| c == cur)).ok_or(Errno::ENOENT)?.0;
            names.push(name);
            cur = node.parent;
        }
        let mut path = Vec::new();
        for name in names.iter().rev() {
            path.push(b'/');
            path.extend_from_slice(name);
        }
        if path.is_empty() {
            path.push(b'/');
        }
        Ok(path)
    }

    /// Bytes of owned file data (what counts against the capacity).
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// Checks the tree: entries point at live nodes whose parent is the directory, byte accounting adds up.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let mut bytes = 0u64;
        for (id, node) in self.nodes.iter().enumerate() {
            let Some(node) = node else { continue };
            match &node.kind {
                NodeKind::Directory(entries) => {
                    for child in entries.nodes() {
                        let child_node = self.node(child).ok_or("fs: entry points at a freed node")?;
                        if !child_node.linked {
                            return Err("fs: entry points at an unlinked node");
                        }
                        if child_node.is_dir() && child_node.parent != id {
                            return Err("fs: directory parent mismatch");
                        }
                    }
                }
                NodeKind::File(FileData::Owned(data)) => bytes += to_u64(data.len()),
                NodeKind::Symlink(target) => bytes += to_u64(target.len()),
                _ => {}
            }
            if !node.linked && node.refs == 0 {
                return Err("fs: unreferenced unlinked node not freed");
            }
        }
        if bytes != self.used_bytes {
            return Err("fs: byte accounting mismatch");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
