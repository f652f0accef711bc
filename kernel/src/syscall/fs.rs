//! Path syscalls: open, stat, access, directories, links, renames, truncation, the cwd.

use alloc::vec::Vec;

use kernel_abi::Stream;

use super::rw::access_allows_write;
use super::*;
use crate::errno::Errno;
use crate::fd::{fd_arg, FileKind, OpenFile};
use crate::fs::node::{S_IFIFO, S_IFMT, S_IFREG};
use crate::fs::{Directory, NodeId, NodeKind, Stat, FS_DEV, ROOT};
use crate::machine::Machine;
use crate::process::{Process, RLIMIT_NOFILE};
use crate::user;

use linux_raw_sys::general::STATX__RESERVED;
pub use linux_raw_sys::general::{RENAME_EXCHANGE, RENAME_NOREPLACE, R_OK, STATX_BASIC_STATS, W_OK, X_OK};

/// Size of `struct stat` on x86-64.
pub const STAT_SIZE: usize = 144;
/// Size of `struct statx`.
pub const STATX_SIZE: usize = 256;

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dest) = buf.get_mut(at..at + bytes.len()) {
        dest.copy_from_slice(bytes);
    }
}

fn split_ns(ns: u64) -> (i64, i64) {
    ((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64)
}

/// `struct stat` (x86-64): dev 0, ino 8, nlink 16, mode 24, uid 28, gid 32, rdev 40, size 48, blksize 56,
/// blocks 64, atime 72/80, mtime 88/96, ctime 104/112, 3 reserved words.
pub fn encode_stat(st: &Stat) -> [u8; STAT_SIZE] {
    let mut buf = [0u8; STAT_SIZE];
    put(&mut buf, 0, &FS_DEV.to_le_bytes());
    put(&mut buf, 8, &st.ino.to_le_bytes());
    put(&mut buf, 16, &st.nlink.to_le_bytes());
    put(&mut buf, 24, &st.mode.to_le_bytes());
    put(&mut buf, 40, &st.rdev.to_le_bytes());
    put(&mut buf, 48, &st.size.to_le_bytes());
    put(&mut buf, 56, &4096i64.to_le_bytes());
    put(&mut buf, 64, &st.size.div_ceil(512).to_le_bytes());
    let (msec, mnsec) = split_ns(st.mtime_ns);
    let (csec, cnsec) = split_ns(st.ctime_ns);
    for (at, value) in [(72, msec), (80, mnsec), (88, msec), (96, mnsec), (104, csec), (112, cnsec)] {
        put(&mut buf, at, &value.to_le_bytes());
    }
    buf
}

/// `struct statx` with the basic stats.
pub fn encode_statx(st: &Stat) -> [u8; STATX_SIZE] {
    let mut buf = [0u8; STATX_SIZE];
    put(&mut buf, 0, &STATX_BASIC_STATS.to_le_bytes());
    put(&mut buf, 4, &4096u32.to_le_bytes());
    put(&mut buf, 16, &(st.nlink.min(u64::from(u32::MAX)) as u32).to_le_bytes());
    put(&mut buf, 28, &(st.mode as u16).to_le_bytes());
    put(&mut buf, 32, &st.ino.to_le_bytes());
    put(&mut buf, 40, &st.size.to_le_bytes());
    put(&mut buf, 48, &st.size.div_ceil(512).to_le_bytes());
    let (msec, mnsec) = split_ns(st.mtime_ns);
    let (csec, cnsec) = split_ns(st.ctime_ns);
    // atime 64, btime 80, ctime 96, mtime 112: { i64 sec; u32 nsec; i32 pad }
    for (at, sec, nsec) in [(64, msec, mnsec), (80, csec, cnsec), (96, csec, cnsec), (112, msec, mnsec)] {
        put(&mut buf, at, &sec.to_le_bytes());
        put(&mut buf, at + 8, &(nsec as u32).to_le_bytes());
    }
    put(&mut buf, 128, &((st.rdev >> 8) as u32).to_le_bytes());
    put(&mut buf, 132, &((st.rdev & 0xff) as u32).to_le_bytes());
    put(&mut buf, 136, &((FS_DEV >> 8) as u32).to_le_bytes());
    put(&mut buf, 140, &((FS_DEV & 0xff) as u32).to_le_bytes());
    buf
}

impl Process {
    /// The directory a relative path starts from: the cwd for AT_FDCWD, else `dirfd`'s directory.
    pub(crate) fn base_dir(&self, dirfd: u64, path: &[u8]) -> Result<NodeId, Errno> {
        let dirfd = fd_arg(dirfd);
        if path.first() == Some(&b'/') {
            return Ok(ROOT);
        }
        if dirfd == AT_FDCWD {
            return Ok(self.cwd);
        }
        match self.fds.get(dirfd)?.1.kind {
            FileKind::Node(id) if self.fs.node(id).is_some_and(|n| n.is_dir()) => Ok(id),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn limit_fds(&self) -> usize {
        usize::try_from(self.rlimits[RLIMIT_NOFILE].0).unwrap_or(usize::MAX)
    }

    pub(crate) fn sys_openat<M: Machine>(
        &mut self,
        m: &mut M,
        dirfd: u64,
        path: u64,
        flags: u64,
        mode: u64,
    ) -> SysResult {
        let path = user::read_path(&self.vmas, m, path, false)?;
        let flags = flags as u32;
        if flags & O_TMPFILE == O_TMPFILE {
            return Err(Errno::EOPNOTSUPP.into());
        }
        let accmode = flags & O_ACCMODE;
        if accmode == O_ACCMODE && flags & O_PATH == 0 {
            return Err(Errno::EINVAL.into());
        }
        let wants_write = flags & O_PATH == 0 && access_allows_write(flags);
        let base = self.base_dir(dirfd, &path)?;
        let follow = flags & O_NOFOLLOW == 0;
        let now = m.realtime_ns();
        let id = if flags & O_CREAT != 0 && flags & O_PATH == 0 {
            let target = self.fs.resolve_parent(base, &path)?;
            if target.trailing_slash {
                return Err(Errno::EISDIR.into());
            }
            match self.fs.lookup(target.parent, target.name) {
                Ok(_) if flags & O_EXCL != 0 => return Err(Errno::EEXIST.into()),
                Ok(existing) => match self.fs.node(existing).map(|n| &n.kind) {
                    Some(NodeKind::Symlink(_)) if follow => self.fs.resolve(base, &path, true)?,
                    Some(NodeKind::Directory(_)) => return Err(Errno::EISDIR.into()),
                    _ => existing,
                },
                Err(Errno::ENOENT) => {
                    let mode = (mode as u32) & 0o7777 & !self.umask;
                    self.fs.create(
                        target.parent,
                        target.name,
                        NodeKind::File(crate::fs::FileData::Owned(Vec::new())),
                        mode,
                        now,
                    )?
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            self.fs.resolve(base, &path, follow)?
        };
        let node = self.fs.node(id).ok_or(Errno::ENOENT)?;
        match &node.kind {
            NodeKind::Symlink(_) if flags & O_PATH == 0 => return Err(Errno::ELOOP.into()),
            NodeKind::Directory(_) if wants_write => return Err(Errno::EISDIR.into()),
            NodeKind::Directory(_) => {}
            _ if flags & O_DIRECTORY != 0 => return Err(Errno::ENOTDIR.into()),
            _ => {}
        }
        let is_file = matches!(node.kind, NodeKind::File(_));
        if wants_write && is_file && node.read_only {
            return Err(Errno::EROFS.into());
        }
        if wants_write && is_file && flags & O_TRUNC != 0 {
            self.set_file_len(m, id, 0, now)?;
        }
        let kept = O_ACCMODE | O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | O_ASYNC | O_SYNC | O_DSYNC | O_LARGEFILE;
        let stored = if flags & O_PATH != 0 { O_PATH } else { flags & kept };
        let limit = self.limit_fds();
        let fd = self.fds.open(
            OpenFile { kind: FileKind::Node(id), flags: stored, offset: 0 },
            flags & O_CLOEXEC != 0,
            0,
            limit,
        )?;
        self.fs.acquire(id);
        Ok(i64::from(fd))
    }

    /// Stat of an open file (nodes from the file system; stdin, stdout, stderr and pipes as FIFOs).
    fn stat_of(&self, file: &OpenFile) -> Result<Stat, Errno> {
        let fifo = |ino: u64| Stat { ino, mode: S_IFIFO | 0o600, nlink: 1, ..Stat::default() };
        match file.kind {
            FileKind::Node(id) => self.fs.stat(id),
            FileKind::Stdin => Ok(Stat { size: 0, ..fifo(0x1_0000_0000) }),
            FileKind::Console(Stream::Stderr) => Ok(fifo(0x1_0000_0002)),
            FileKind::Console(_) => Ok(fifo(0x1_0000_0001)),
            FileKind::PipeRead(id) | FileKind::PipeWrite(id) => Ok(fifo(0x2_0000_0000 + id as u64)),
            FileKind::Socket { rx, .. } => {
                Ok(Stat { ino: 0x5_0000_0000 + rx as u64, mode: 0o140777, nlink: 1, ..Stat::default() })
            }
            // Anonymous inodes, as Linux shows them: mode 0600 and no file type.
            FileKind::Epoll(id) => {
                Ok(Stat { ino: 0x3_0000_0000 + id as u64, mode: 0o600, nlink: 1, ..Stat::default() })
            }
            FileKind::EventFd(id) => {
                Ok(Stat { ino: 0x4_0000_0000 + id as u64, mode: 0o600, nlink: 1, ..Stat::default() })
            }
        }
    }

    /// Resolves the target of a stat-like call: a path, or with AT_EMPTY_PATH and "" the dirfd itself.
    ///
    /// With AT_EMPTY_PATH the path is usually empty (glibc's `fstat` is `newfstatat(fd, "", AT_EMPTY_PATH)`),
    /// which its first byte tells: the whole path is read only when that is not NUL.
    fn stat_target<M: Machine>(&self, m: &mut M, dirfd: u64, path: u64, flags: u32) -> Result<Stat, Errno> {
        if flags & AT_EMPTY_PATH != 0 && user::read_array::<M, 1>(&self.vmas, m, path)? == [0] {
            if fd_arg(dirfd) == AT_FDCWD {
                return self.fs.stat(self.cwd);
            }
            let (_, file) = self.fds.get(fd_arg(dirfd))?;
            return self.stat_of(&file);
        }
        let path = user::read_path(&self.vmas, m, path, false)?;
        let base = self.base_dir(dirfd, &path)?;
        let id = self.fs.resolve(base, &path, flags & AT_SYMLINK_NOFOLLOW == 0)?;
        self.fs.stat(id)
    }

    pub(crate) fn sys_fstat<M: Machine>(&mut self, m: &mut M, fd: u64, buf: u64) -> SysResult {
        let (_, file) = self.fds.get(fd_arg(fd))?;
        let st = self.stat_of(&file)?;
        user::write(&self.vmas, m, buf, &encode_stat(&st))?;
        Ok(0)
    }

    pub(crate) fn sys_newfstatat<M: Machine>(
        &mut self,
        m: &mut M,
        dirfd: u64,
        path: u64,
        buf: u64,
        flags: u32,
    ) -> SysResult {
        if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT) != 0 {
            return Err(Errno::EINVAL.into());
        }
        let st = self.stat_target(m, dirfd, path, flags)?;
        user::write(&self.vmas, m, buf, &encode_stat(&st))?;
        Ok(0)
    }

    pub(crate) fn sys_statx<M: Machine>(
        &mut self,
        m: &mut M,
        dirfd: u64,
        path: u64,
        flags: u32,
        mask: u64,
        buf: u64,
    ) -> SysResult {
        if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE) != 0
            || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE
            || mask & u64::from(STATX__RESERVED) != 0
        {
            return Err(Errno::EINVAL.into());
        }
        let st = self.stat_target(m, dirfd, path, flags)?;
        user::write(&self.vmas, m, buf, &encode_statx(&st))?;
        Ok(0)
    }

    pub(crate) fn sys_faccessat<M: Machine>(
        &mut self,
        m: &mut M,
        dirfd: u64,
        path: u64,
        mode: u32,
        flags: u32,
    ) -> SysResult {
        if mode & !(R_OK | W_OK | X_OK) != 0 || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
            return Err(Errno::EINVAL.into());
        }
        let path = user::read_path(&self.vmas, m, path, flags & AT_EMPTY_PATH != 0)?;
        let id = if path.is_empty() {
            match self.fds.get(fd_arg(dirfd)).map(|(_, f)| f.kind) {
                _ if fd_arg(dirfd) == AT_FDCWD => self.cwd,
                Ok(FileKind::Node(id)) => id,
                Ok(_) => return Ok(0),
                Err(e) => return Err(e.into()),
            }
        } else {
            let base = self.base_dir(dirfd, &path)?;
            self.fs.resolve(base, &path, flags & AT_SYMLINK_NOFOLLOW == 0)?
        };
        let node = self.fs.node(id).ok_or(Errno::ENOENT)?;
        if mode & W_OK != 0 && node.read_only {
            return Err(Errno::EROFS.into());
        }
        // Root may do anything, except execute a file nobody may execute.
        if mode & X_OK != 0 && !node.is_dir() && node.mode & 0o111 == 0 {
            return Err(Errno::EACCES.into());
        }
        Ok(0)
    }

    /// `utimensat` (and `futimens` with a NULL path): sets the modification time (the file system keeps
    /// no access time); EROFS on read-only nodes, as `touch` on a read-only mount expects.
    pub(crate) fn sys_utimensat<M: Machine>(
        &mut self,
        m: &mut M,
        dirfd: u64,
        path: u64,
        times: u64,
        flags: u32,
    ) -> SysResult {
        const UTIME_NOW: u64 = (1 << 30) - 1;
        const UTIME_OMIT: u64 = (1 << 30) - 2;
        if flags & !AT_SYMLINK_NOFOLLOW != 0 {
            return Err(Errno::EINVAL.into());
        }
        let id = if path == 0 {
            match self.fds.get(fd_arg(dirfd))?.1.kind {
                FileKind::Node(id) => id,
                _ => return Ok(0),
            }
        } else {
            let path = user::read_path(&self.vmas, m, path, false)?;
            let base = self.base_dir(dirfd, &path)?;
            self.fs.resolve(base, &path, flags & AT_SYMLINK_NOFOLLOW == 0)?
        };
        let now = m.realtime_ns();
        let mut mtime = Some(now);
        if times != 0 {
            let raw: [u8; 32] = user::read_array(&self.vmas, m, times)?;
            let word = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or([0; 8]));
            let (seconds, nanos) = (word(16), word(24));
            mtime = match nanos {
                UTIME_OMIT => None,
                UTIME_NOW => Some(now),
                n if n < 1_000_000_000 && (seconds as i64) >= 0 => {
                    Some(seconds.saturating_mul(1_000_000_000).saturating_add(n))
                }
                _ => return Err(Errno::EINVAL.into()),
            };
            for at in [0, 16] {
                if !matches!(word(at + 8), UTIME_NOW | UTIME_OMIT) && word(at + 8) >= 1_000_000_000 {
                    return Err(Errno::EINVAL.into());
                }
            }
        }
        let node = self.fs.node_mut(id).ok_or(Errno::ENOENT)?;
        if node.read_only {
            return Err(Errno::EROFS.into());
        }
        if let Some(mtime) = mtime {
            node.mtime_ns = mtime;
        }
        node.ctime_ns = now;
        Ok(0)
    }

    pub(crate) fn sys_getdents64<M: Machine>(&mut self, m: &mut M, fd: u64, dirp: u64, len: u64) -> SysResult {
        let (description, file) = self.fds.get(fd_arg(fd))?;
        if file.flags & O_PATH != 0 {
            return Err(Errno::EBADF.into());
        }
        let FileKind::Node(id) = file.kind else { return Err(Errno::ENOTDIR.into()) };
        let node = self.fs.node(id).ok_or(Errno::EBADF)?;
        let entries = node.entries().ok_or(Errno::ENOTDIR)?;
        let len = u64::from(len as u32);
        user::check_write(&self.vmas, dirp, len)?;
        let capacity = usize::try_from(len).unwrap_or(usize::MAX).min(CHUNK);
        let mut out: Vec<u8> = Vec::with_capacity(capacity);
        let start = usize::try_from(file.offset).unwrap_or(usize::MAX);
        let dot = [
            (&b"."[..], node.ino, crate::fs::node::DT_DIR),
            (b"..", self.fs.node(node.parent).map_or(node.ino, |p| p.ino), crate::fs::node::DT_DIR),
        ];
        let children =
            entries.iter().filter_map(|(name, child)| self.fs.node(child).map(|c| (name, c.ino, c.dirent_type())));
        let mut index = start;
        for (name, ino, kind) in dot.into_iter().chain(children).skip(start) {
            let reclen = (19 + name.len() + 1).next_multiple_of(8);
            if out.len() + reclen > capacity {
                break;
            }
            let at = out.len();
            out.resize(at + reclen, 0);
            put(&mut out, at, &ino.to_le_bytes());
            put(&mut out, at + 8, &((index + 1) as i64).to_le_bytes());
            put(&mut out, at + 16, &(reclen as u16).to_le_bytes());
            out[at + 18] = kind;
            put(&mut out, at + 19, name);
            index += 1;
        }
        if out.is_empty() && index < 2 + entries.len() {
            return Err(Errno::EINVAL.into());
        }
        user::write(&self.vmas, m, dirp, &out)?;
        if let Some(d) = self.fds.description_mut(description) {
            d.offset = index as u64;
        }
        count(out.len())
    }

    pub(crate) fn sys_getcwd<M: Machine>(&mut self, m: &mut M, buf: u64, size: u64) -> SysResult {
        let mut path = self.fs.path_of(self.cwd)?;
        path.push(0);
        if (path.len() as u64) > size {
            return Err(Errno::ERANGE.into());
        }
        user::write(&self.vmas, m, buf, &path)?;
        count(path.len())
    }

    fn set_cwd(&mut self, id: NodeId) -> Result<(), Errno> {
        if !self.fs.node(id).ok_or(Errno::ENOENT)?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.fs.acquire(id);
        let old = core::mem::replace(&mut self.cwd, id);
        self.fs.release(old);
        Ok(())
    }

    pub(crate) fn sys_chdir<M: Machine>(&mut self, m: &mut M, path: u64) -> SysResult {
        let path = user::read_path(&self.vmas, m, path, false)?;
        let id = self.fs.resolve(self.cwd, &path, true)?;
        self.set_cwd(id)?;
        Ok(0)
    }

    pub(crate) fn sys_fchdir(&mut self, fd: u64) -> SysResult {
        match self.fds.get(fd_arg(fd))?.1.kind {
            FileKind::Node(id) => self.set_cwd(id)?,
            _ => return Err(Errno::ENOTDIR.into()),
        }
        Ok(0)
    }

    pub(crate) fn sys_mkdirat<M: Machine>(&mut self, m: &mut M, dirfd: u64, path: u64, mode: u64) -> SysResult {
        let path = user::read_path(&self.vmas, m, path, false)?;
        let base = self.base_dir(dirfd, &path)?;
        let target = self.fs.resolve_parent(base, &path)?;
        let mode = (mode as u32) & 0o1777 & !self.umask;
        let now = m.realtime_ns();
        self.fs.create(target.parent, target.name, NodeKind::Directory(Directory::new()), mode, now)?;
        Ok(0)
    }

    pub(crate) fn sys_unlinkat<M: Machine>(&mut self, m: &mut M, dirfd: u64, path: u64, flags: u32) -> SysResult {
        if flags & !AT_REMOVEDIR != 0 {
            return Err(Errno::EINVAL.into());
        }
        let path = user::read_path(&self.vmas, m, path, false)?;
        let base = self.base_dir(dirfd, &path)?;
        let target = self.fs.resolve_parent(base, &path)?;
        let directory = flags & AT_REMOVEDIR != 0;
        if target.trailing_slash && !directory {
            let id = self.fs.lookup(target.parent, target.name)?;
            return Err(
                if self.fs.node(id).is_some_and(|n| n.is_dir()) { Errno::EISDIR } else { Errno::ENOTDIR }.into()
            );
        }
        let now = m.realtime_ns();
        self.fs.remove(target.parent, target.name, directory, now)?;
        Ok(0)
    }

    pub(crate) fn sys_renameat2<M: Machine>(
        &mut self,
        m: &mut M,
        old_dirfd: u64,
        old_path: u64,
        new_dirfd: u64,
        new_path: u64,
        flags: u32,
    ) -> SysResult {
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0 || flags == RENAME_NOREPLACE | RENAME_EXCHANGE {
            return Err(Errno::EINVAL.into());
        }
        let old_path = user::read_path(&self.vmas, m, old_path, false)?;
        let new_path = user::read_path(&self.vmas, m, new_path, false)?;
        let old = self.fs.resolve_parent(self.base_dir(old_dirfd, &old_path)?, &old_path)?;
        let new = self.fs.resolve_parent(self.base_dir(new_dirfd, &new_path)?, &new_path)?;
        if old.trailing_slash || new.trailing_slash {
            let source = self.fs.lookup(old.parent, old.name)?;
            if !self.fs.node(source).is_some_and(|n| n.is_dir()) {
                return Err(Errno::ENOTDIR.into());
            }
        }
        let now = m.realtime_ns();
        self.fs.rename(
            old.parent,
            old.name,
            new.parent,
            new.name,
            flags & RENAME_NOREPLACE != 0,
            flags & RENAME_EXCHANGE != 0,
            now,
        )?;
        Ok(0)
    }

    pub(crate) fn sys_readlinkat<M: Machine>(
        &mut self,
        m: &mut M,
        dirfd: u64,
        path: u64,
        buf: u64,
        size: u64,
    ) -> SysResult {
        let size = int_arg(size);
        if size <= 0 {
            return Err(Errno::EINVAL.into());
        }
        let path = user::read_path(&self.vmas, m, path, false)?;
        let base = self.base_dir(dirfd, &path)?;
        let id = self.fs.resolve(base, &path, false)?;
        let NodeKind::Symlink(target) = &self.fs.node(id).ok_or(Errno::ENOENT)?.kind else {
            return Err(Errno::EINVAL.into());
        };
        let n = target.len().min(size as usize);
        user::write(&self.vmas, m, buf, &target[..n])?;
        count(n)
    }

    pub(crate) fn sys_symlinkat<M: Machine>(&mut self, m: &mut M, target: u64, dirfd: u64, path: u64) -> SysResult {
        let target = user::read_path(&self.vmas, m, target, false)?;
        let path = user::read_path(&self.vmas, m, path, false)?;
        let base = self.base_dir(dirfd, &path)?;
        let parent = self.fs.resolve_parent(base, &path)?;
        if parent.trailing_slash {
            return Err(Errno::ENOENT.into());
        }
        let now = m.realtime_ns();
        self.fs.create(parent.parent, parent.name, NodeKind::Symlink(target), 0o777, now)?;
        Ok(0)
    }

    /// Sets a regular file's length; shared mappings of it see the bytes that came or went as zeros.
    fn set_file_len<M: Machine>(&mut self, m: &mut M, id: NodeId, length: u64, now: u64) -> Result<(), Errno> {
        let old = self.fs.file_bytes(id).map_or(0, |data| data.len() as u64);
        self.fs.set_len(id, length, now)?;
        let (low, high) = (old.min(length), old.max(length));
        self.refresh_shared(m, id, low, high - low);
        Ok(())
    }

    fn truncate_node<M: Machine>(&mut self, m: &mut M, id: NodeId, length: u64, now: u64) -> Result<(), Errno> {
        if (length as i64) < 0 {
            return Err(Errno::EINVAL);
        }
        let node = self.fs.node(id).ok_or(Errno::ENOENT)?;
        if node.is_dir() {
            return Err(Errno::EISDIR);
        }
        if node.file_type() & S_IFMT != S_IFREG {
            return Err(Errno::EINVAL);
        }
        self.set_file_len(m, id, length, now)
    }

    pub(crate) fn sys_truncate<M: Machine>(&mut self, m: &mut M, path: u64, length: u64) -> SysResult {
        let path = user::read_path(&self.vmas, m, path, false)?;
        let id = self.fs.resolve(self.cwd, &path, true)?;
        let now = m.realtime_ns();
        self.truncate_node(m, id, length, now)?;
        Ok(0)
    }

    pub(crate) fn sys_ftruncate<M: Machine>(&mut self, m: &mut M, fd: u64, length: u64) -> SysResult {
        let (_, file) = self.fds.get(fd_arg(fd))?;
        match file.kind {
            FileKind::Node(id) if file.flags & O_PATH == 0 && access_allows_write(file.flags) => {
                let now = m.realtime_ns();
                self.truncate_node(m, id, length, now)?;
                Ok(0)
            }
            _ if file.flags & O_PATH != 0 => Err(Errno::EBADF.into()),
            _ => Err(Errno::EINVAL.into()),
        }
    }
}
