//! `--mount HOST:GUEST[:ro]`: host directories copied into the guest's in-memory file system at boot,
//! packed in the `kernel_abi::archive` format. Nothing of the host is visible to the guest otherwise.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kernel_abi::archive::{self, EntryKind};

/// One `--mount` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    /// Absolute guest path, without a trailing slash.
    pub guest: String,
    pub read_only: bool,
}

/// Why a mount cannot be packed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("--mount {0}: expected HOST:GUEST or HOST:GUEST:ro with an absolute GUEST path")]
    Syntax(String),
    #[error("--mount: cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--mount: {path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("--mount: the guest path {0} is not usable (it must be absolute, without `.` or `..`, not `/`)")]
    GuestPath(String),
    #[error("--mount: {path}: {reason}")]
    Entry { path: PathBuf, reason: String },
    #[error("--mount: the mounted files total more than {limit_mib} MiB; use fewer files or a larger --memory")]
    TooLarge { limit_mib: u64 },
}

impl Mount {
    /// Parses `HOST:GUEST` or `HOST:GUEST:ro`.
    pub fn parse(spec: &str) -> Result<Self, MountError> {
        let syntax = || MountError::Syntax(spec.to_string());
        let (rest, read_only) = match spec.strip_suffix(":ro") {
            Some(rest) => (rest, true),
            None => (spec.strip_suffix(":rw").unwrap_or(spec), false),
        };
        let (host, guest) = rest.rsplit_once(':').ok_or_else(syntax)?;
        if host.is_empty() || !guest.starts_with('/') {
            return Err(syntax());
        }
        let guest = guest.trim_end_matches('/').to_string();
        if !archive::is_valid_path(guest.as_bytes()) {
            return Err(MountError::GuestPath(guest));
        }
        Ok(Self { host: PathBuf::from(host), guest, read_only })
    }
}

/// The program secure-run runs, for the guest's `execve` of `/proc/self/exe` (busybox runs its applets
/// so): packed under `kernel_abi`'s program entry path, which the kernel keeps as a file linked in no
/// directory that `/proc/self/exe` leads to (its own path need not exist in the guest).
#[derive(Clone, Copy, Debug)]
pub struct Program<'a> {
    pub data: &'a [u8],
    /// Permission bits.
    pub mode: u32,
}

use kernel_abi::archive::PROGRAM_ENTRY;

/// Packs every mount, then `program` (read-only), into one archive of at most `limit` bytes.
pub fn pack(mounts: &[Mount], program: Option<Program<'_>>, limit: u64) -> Result<Vec<u8>, MountError> {
    if mounts.is_empty() && program.is_none() {
        return Ok(Vec::new());
    }
    let mut packer = Packer { out: Vec::new(), limit, read_only: false };
    archive::encode_header(&mut |bytes: &[u8]| packer.out.extend_from_slice(bytes));
    for mount in mounts {
        let metadata =
            std::fs::metadata(&mount.host).map_err(|source| MountError::Io { path: mount.host.clone(), source })?;
        if !metadata.is_dir() {
            return Err(MountError::NotADirectory { path: mount.host.clone() });
        }
        packer.read_only = mount.read_only;
        packer.add(&mount.host, mount.guest.as_bytes())?;
    }
    if let Some(program) = program {
        packer.read_only = true;
        packer.encode(
            Path::new("the program"),
            EntryKind::File,
            program.mode & archive::MODE_MASK,
            PROGRAM_ENTRY,
            program.data,
        )?;
    }
    Ok(packer.out)
}

/// The archive being written, its size limit, and whether the current mount is read-only.
struct Packer {
    out: Vec<u8>,
    limit: u64,
    read_only: bool,
}

impl Packer {
    fn encode(&mut self, host: &Path, kind: EntryKind, mode: u32, guest: &[u8], data: &[u8]) -> Result<(), MountError> {
        if (self.out.len() + data.len() + guest.len() + archive::ENTRY_HEADER_LEN) as u64 > self.limit {
            return Err(MountError::TooLarge { limit_mib: self.limit >> 20 });
        }
        let out = &mut self.out;
        archive::encode_entry(&mut |bytes: &[u8]| out.extend_from_slice(bytes), kind, mode, self.read_only, guest, data)
            .map_err(|error| MountError::Entry { path: host.to_path_buf(), reason: format!("{error:?}") })
    }

    /// Adds `host` at `guest`, directories recursively in a stable (sorted) order. Symbolic links are
    /// copied as links, never followed; sockets, devices and FIFOs are left out.
    fn add(&mut self, host: &Path, guest: &[u8]) -> Result<(), MountError> {
        let io = |source| MountError::Io { path: host.to_path_buf(), source };
        let metadata = std::fs::symlink_metadata(host).map_err(io)?;
        let mode = metadata.permissions().mode() & archive::MODE_MASK;
        let file_type = metadata.file_type();
        if file_type.is_symlink() {
            let target = std::fs::read_link(host).map_err(io)?;
            return self.encode(host, EntryKind::Symlink, 0o777, guest, target.as_os_str().as_bytes());
        }
        if file_type.is_file() {
            if metadata.len() > self.limit {
                return Err(MountError::TooLarge { limit_mib: self.limit >> 20 });
            }
            let data = std::fs::read(host).map_err(io)?;
            return self.encode(host, EntryKind::File, mode, guest, &data);
        }
        if !file_type.is_dir() {
            return Ok(());
        }
        self.encode(host, EntryKind::Directory, mode, guest, &[])?;
        let mut children: Vec<_> = std::fs::read_dir(host).map_err(io)?.collect::<Result<_, _>>().map_err(io)?;
        children.sort_by_key(|entry| entry.file_name());
        for child in children {
            let mut child_guest = guest.to_vec();
            child_guest.push(b'/');
            child_guest.extend_from_slice(child.file_name().as_bytes());
            self.add(&child.path(), &child_guest)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(
            Mount::parse("/srv/data:/data:ro").unwrap(),
            Mount { host: "/srv/data".into(), guest: "/data".into(), read_only: true }
        );
        assert_eq!(Mount::parse("rel/dir:/x/y/").unwrap().guest, "/x/y");
        assert!(!Mount::parse("a:/b").unwrap().read_only);
        for bad in ["nocolon", ":/data", "dir:relative", "dir:/", "dir:/a/../b"] {
            assert!(Mount::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn packs_a_tree_that_the_decoder_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.txt"), b"alpha").unwrap();
        std::fs::write(dir.path().join("sub/b.txt"), b"beta").unwrap();
        std::os::unix::fs::symlink("a.txt", dir.path().join("link")).unwrap();
        let mounts = [Mount { host: dir.path().into(), guest: "/data".into(), read_only: true }];
        let packed = pack(&mounts, None, 1 << 20).unwrap();
        let entries: Vec<_> = archive::entries(&packed).unwrap().map(|entry| entry.unwrap()).collect();
        let paths: Vec<&[u8]> = entries.iter().map(|entry| entry.path).collect();
        assert_eq!(paths, [&b"/data"[..], b"/data/a.txt", b"/data/link", b"/data/sub", b"/data/sub/b.txt"]);
        assert_eq!(entries[1].data, b"alpha");
        assert_eq!(entries[2].kind, EntryKind::Symlink);
        assert!(entries.iter().all(|entry| entry.read_only));
        assert!(matches!(pack(&mounts, None, 100), Err(MountError::TooLarge { .. })));
        let missing = [Mount { host: dir.path().join("nope"), guest: "/x".into(), read_only: false }];
        assert!(matches!(pack(&missing, None, 1 << 20), Err(MountError::Io { .. })));
    }

    #[test]
    fn the_program_goes_in_under_its_entry_path() {
        let program = Program { data: b"\x7fELF...", mode: 0o100755 };
        let packed = pack(&[], Some(program), 1 << 20).unwrap();
        let entries: Vec<_> = archive::entries(&packed).unwrap().map(|entry| entry.unwrap()).collect();
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].path, entries[0].data, entries[0].mode), (PROGRAM_ENTRY, &b"\x7fELF..."[..], 0o755));
        assert!(entries[0].read_only);
        assert!(matches!(pack(&[], Some(program), 10), Err(MountError::TooLarge { .. })));
    }
}
