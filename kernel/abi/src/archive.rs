//! The packed-files archive: how `--mount` directories travel from the VMM into the guest's file system.
//!
//! A little-endian record stream, small enough to validate by eye:
//! ```text
//! header  : magic "SRFILES\0" (8) | version u32 | reserved u32 (0)
//! entry*  : kind u8 | flags u8 | reserved u16 (0) | mode u32 | path_len u32 | reserved u32 (0) | data_len u64
//!           | path bytes (path_len) | data bytes (data_len)
//! ```
//! Paths are absolute and normalized (`/a/b`: no empty, `.` or `..` components, no NUL, at most
//! [`MAX_PATH_LEN`] bytes, components at most [`MAX_NAME_LEN`]). Directories carry no data; a symlink's
//! data is its target. An empty byte slice is a valid, empty archive (no `--mount`).
//!
//! The VMM writes with [`encode_header`] and [`encode_entry`] through a callback (so it can append to a
//! `Vec` or stream into guest memory); the kernel reads with [`entries`], which validates every field with
//! checked arithmetic and reports malformed input as an [`ArchiveError`] instead of panicking.

/// First bytes of every non-empty archive.
pub const ARCHIVE_MAGIC: [u8; 8] = *b"SRFILES\0";
/// Bumped on every incompatible change; the decoder refuses other versions.
pub const ARCHIVE_VERSION: u32 = 1;
/// Size of the archive header.
pub const HEADER_LEN: usize = 16;
/// Size of the fixed part of each entry.
pub const ENTRY_HEADER_LEN: usize = 24;
/// Longest path (Linux `PATH_MAX` without the NUL).
pub const MAX_PATH_LEN: usize = 4095;
/// Longest path component (Linux `NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;
/// [`Entry::read_only`] as a flag bit.
pub const FLAG_READ_ONLY: u8 = 1;
/// Permission bits an entry may carry.
pub const MODE_MASK: u32 = 0o7777;

/// What an entry creates.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Directory = 1,
    File = 2,
    Symlink = 3,
}

impl EntryKind {
    pub fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::Directory,
            2 => Self::File,
            3 => Self::Symlink,
            _ => return None,
        })
    }
}

/// One decoded entry, borrowing the archive bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub kind: EntryKind,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Writes to this node fail with EROFS.
    pub read_only: bool,
    pub path: &'a [u8],
    pub data: &'a [u8],
    /// Offset of `data` inside the archive, so the kernel can reference file contents without copying.
    pub data_offset: usize,
}

/// Why an archive (or an entry to encode) was refused. `offset` is where the bad record starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveError {
    /// Non-empty input that does not start with [`ARCHIVE_MAGIC`].
    BadMagic,
    UnsupportedVersion(u32),
    /// The input ends inside a header, a path or data.
    Truncated {
        offset: usize,
    },
    UnknownKind {
        offset: usize,
        kind: u8,
    },
    UnknownFlags {
        offset: usize,
        flags: u8,
    },
    ReservedNotZero {
        offset: usize,
    },
    BadMode {
        offset: usize,
        mode: u32,
    },
    /// Not absolute, not normalized, too long, or contains NUL.
    BadPath {
        offset: usize,
    },
    /// A directory with data, or a symlink with an empty or NUL-containing target.
    BadData {
        offset: usize,
    },
}

impl core::fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic => write!(f, "files archive: bad magic (not produced by this secure-run version?)"),
            Self::UnsupportedVersion(v) => {
                write!(f, "files archive: version {v} unsupported (expected {ARCHIVE_VERSION})")
            }
            Self::Truncated { offset } => write!(f, "files archive: truncated record at offset {offset}"),
            Self::UnknownKind { offset, kind } => {
                write!(f, "files archive: unknown entry kind {kind} at offset {offset}")
            }
            Self::UnknownFlags { offset, flags } => {
                write!(f, "files archive: unknown flags {flags:#x} at offset {offset}")
            }
            Self::ReservedNotZero { offset } => write!(f, "files archive: reserved field not zero at offset {offset}"),
            Self::BadMode { offset, mode } => {
                write!(f, "files archive: mode {mode:#o} out of range at offset {offset}")
            }
            Self::BadPath { offset } => {
                write!(f, "files archive: path not absolute and normalized (or too long) at offset {offset}")
            }
            Self::BadData { offset } => write!(f, "files archive: data not allowed for this entry at offset {offset}"),
        }
    }
}

/// True for `/`-rooted paths with non-empty components other than `.`/`..`, no NUL, within the limits.
/// The root itself (`/`) is not a valid entry path.
pub fn is_valid_path(path: &[u8]) -> bool {
    if path.len() < 2 || path.len() > MAX_PATH_LEN || path[0] != b'/' || path.contains(&0) {
        return false;
    }
    path[1..].split(|&b| b == b'/').all(|c| !c.is_empty() && c != b"." && c != b".." && c.len() <= MAX_NAME_LEN)
}

/// Writes the archive header.
pub fn encode_header(out: &mut impl FnMut(&[u8])) {
    out(&ARCHIVE_MAGIC);
    out(&ARCHIVE_VERSION.to_le_bytes());
    out(&0u32.to_le_bytes());
}

/// Writes one entry after checking it as the decoder will.
pub fn encode_entry(
    out: &mut impl FnMut(&[u8]),
    kind: EntryKind,
    mode: u32,
    read_only: bool,
    path: &[u8],
    data: &[u8],
) -> Result<(), ArchiveError> {
    if !is_valid_path(path) {
        return Err(ArchiveError::BadPath { offset: 0 });
    }
    if mode & !MODE_MASK != 0 {
        return Err(ArchiveError::BadMode { offset: 0, mode });
    }
    if !data_allowed(kind, data) {
        return Err(ArchiveError::BadData { offset: 0 });
    }
    let path_len = u32::try_from(path.len()).map_err(|_| ArchiveError::BadPath { offset: 0 })?;
    let data_len = u64::try_from(data.len()).map_err(|_| ArchiveError::BadData { offset: 0 })?;
    let mut header = [0u8; ENTRY_HEADER_LEN];
    header[0] = kind as u8;
    header[1] = if read_only { FLAG_READ_ONLY } else { 0 };
    header[4..8].copy_from_slice(&mode.to_le_bytes());
    header[8..12].copy_from_slice(&path_len.to_le_bytes());
    header[16..24].copy_from_slice(&data_len.to_le_bytes());
    out(&header);
    out(path);
    out(data);
    Ok(())
}

fn data_allowed(kind: EntryKind, data: &[u8]) -> bool {
    match kind {
        EntryKind::Directory => data.is_empty(),
        EntryKind::File => true,
        EntryKind::Symlink => !data.is_empty() && data.len() <= MAX_PATH_LEN && !data.contains(&0),
    }
}

/// Validates the header and returns an iterator over the entries. Empty input is an empty archive.
pub fn entries(bytes: &[u8]) -> Result<Entries<'_>, ArchiveError> {
    if bytes.is_empty() {
        return Ok(Entries { bytes, offset: 0, failed: false });
    }
    let header = bytes.get(..HEADER_LEN).ok_or(ArchiveError::Truncated { offset: 0 })?;
    if header[..8] != ARCHIVE_MAGIC {
        return Err(ArchiveError::BadMagic);
    }
    let version = read_u32(header, 8);
    if version != ARCHIVE_VERSION {
        return Err(ArchiveError::UnsupportedVersion(version));
    }
    if read_u32(header, 12) != 0 {
        return Err(ArchiveError::ReservedNotZero { offset: 12 });
    }
    Ok(Entries { bytes, offset: HEADER_LEN, failed: false })
}

/// Iterator over validated entries; yields at most one error, then stops.
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    bytes: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.bytes.len() {
            return None;
        }
        let result = self.decode();
        match &result {
            Ok(_) => {}
            Err(_) => self.failed = true,
        }
        Some(result)
    }
}

impl<'a> Entries<'a> {
    fn decode(&mut self) -> Result<Entry<'a>, ArchiveError> {
        let offset = self.offset;
        let truncated = ArchiveError::Truncated { offset };
        let header_end = offset.checked_add(ENTRY_HEADER_LEN).ok_or(truncated)?;
        let header = self.bytes.get(offset..header_end).ok_or(truncated)?;
        let kind = EntryKind::from_byte(header[0]).ok_or(ArchiveError::UnknownKind { offset, kind: header[0] })?;
        let flags = header[1];
        if flags & !FLAG_READ_ONLY != 0 {
            return Err(ArchiveError::UnknownFlags { offset, flags });
        }
        if header[2] != 0 || header[3] != 0 || read_u32(header, 12) != 0 {
            return Err(ArchiveError::ReservedNotZero { offset });
        }
        let mode = read_u32(header, 4);
        if mode & !MODE_MASK != 0 {
            return Err(ArchiveError::BadMode { offset, mode });
        }
        let path_len = usize::try_from(read_u32(header, 8)).map_err(|_| truncated)?;
        let data_len = usize::try_from(read_u64(header, 16)).map_err(|_| truncated)?;
        let path_end = header_end.checked_add(path_len).ok_or(truncated)?;
        let path = self.bytes.get(header_end..path_end).ok_or(truncated)?;
        let data_end = path_end.checked_add(data_len).ok_or(truncated)?;
        let data = self.bytes.get(path_end..data_end).ok_or(truncated)?;
        if !is_valid_path(path) {
            return Err(ArchiveError::BadPath { offset });
        }
        if !data_allowed(kind, data) {
            return Err(ArchiveError::BadData { offset });
        }
        self.offset = data_end;
        Ok(Entry { kind, mode, read_only: flags & FLAG_READ_ONLY != 0, path, data, data_offset: path_end })
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    if let Some(src) = bytes.get(at..at.saturating_add(4)) {
        raw.copy_from_slice(src);
    }
    u32::from_le_bytes(raw)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    if let Some(src) = bytes.get(at..at.saturating_add(8)) {
        raw.copy_from_slice(src);
    }
    u64::from_le_bytes(raw)
}

/// The path of the archive entry that holds the program the run starts (the VMM packs it there, read-only):
/// the kernel keeps it as a file linked in no directory, reached through `/proc/self/exe` while that names
/// the program's own path, so that the program can `execve` itself (busybox runs its applets so) whether or
/// not its path exists in the guest.
pub const PROGRAM_ENTRY: &[u8] = b"/proc/self/exe";

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed-capacity sink so the tests need no allocator.
    struct Sink {
        buf: [u8; 512],
        len: usize,
    }

    impl Sink {
        fn new() -> Self {
            Self { buf: [0; 512], len: 0 }
        }
        fn push(&mut self, data: &[u8]) {
            self.buf[self.len..self.len + data.len()].copy_from_slice(data);
            self.len += data.len();
        }
        fn bytes(&self) -> &[u8] {
            &self.buf[..self.len]
        }
    }

    fn sample() -> Sink {
        let mut sink = Sink::new();
        encode_header(&mut |d| sink.push(d));
        encode_entry(&mut |d| sink.push(d), EntryKind::Directory, 0o755, false, b"/data", b"").unwrap();
        encode_entry(&mut |d| sink.push(d), EntryKind::File, 0o644, true, b"/data/a.txt", b"hello").unwrap();
        encode_entry(&mut |d| sink.push(d), EntryKind::Symlink, 0o777, false, b"/data/l", b"a.txt").unwrap();
        sink
    }

    #[test]
    fn round_trips() {
        let sink = sample();
        let mut it = entries(sink.bytes()).unwrap();
        let dir = it.next().unwrap().unwrap();
        assert_eq!((dir.kind, dir.mode, dir.read_only, dir.path), (EntryKind::Directory, 0o755, false, &b"/data"[..]));
        let file = it.next().unwrap().unwrap();
        assert_eq!(
            (file.kind, file.read_only, file.path, file.data),
            (EntryKind::File, true, &b"/data/a.txt"[..], &b"hello"[..])
        );
        assert_eq!(&sink.bytes()[file.data_offset..file.data_offset + 5], b"hello");
        let link = it.next().unwrap().unwrap();
        assert_eq!((link.kind, link.data), (EntryKind::Symlink, &b"a.txt"[..]));
        assert!(it.next().is_none());
    }

    #[test]
    fn empty_input_is_empty_archive() {
        assert_eq!(entries(&[]).unwrap().count(), 0);
    }

    #[test]
    fn rejects_bad_header() {
        assert_eq!(entries(b"SRFILES").unwrap_err(), ArchiveError::Truncated { offset: 0 });
        assert_eq!(entries(b"XXFILES\0\x01\0\0\0\0\0\0\0").unwrap_err(), ArchiveError::BadMagic);
        assert_eq!(entries(b"SRFILES\0\x02\0\0\0\0\0\0\0").unwrap_err(), ArchiveError::UnsupportedVersion(2));
        assert_eq!(
            entries(b"SRFILES\0\x01\0\0\0\x01\0\0\0").unwrap_err(),
            ArchiveError::ReservedNotZero { offset: 12 }
        );
    }

    #[test]
    fn rejects_every_truncation() {
        let sink = sample();
        for len in HEADER_LEN + 1..sink.len {
            let result: Result<usize, ArchiveError> =
                entries(&sink.bytes()[..len]).unwrap().try_fold(0, |n, e| e.map(|_| n + 1));
            // Cutting exactly at a record boundary leaves a shorter valid archive.
            assert!(matches!(result, Err(ArchiveError::Truncated { .. }) | Ok(1 | 2)), "len {len}: {result:?}");
        }
    }

    #[test]
    fn rejects_bad_fields() {
        let base = sample();
        let patch = |at: usize, value: u8| {
            let mut sink = Sink::new();
            sink.push(base.bytes());
            sink.buf[at] = value;
            entries(sink.bytes()).unwrap().find_map(|e| e.err())
        };
        assert_eq!(patch(HEADER_LEN, 9), Some(ArchiveError::UnknownKind { offset: HEADER_LEN, kind: 9 }));
        assert_eq!(patch(HEADER_LEN + 1, 2), Some(ArchiveError::UnknownFlags { offset: HEADER_LEN, flags: 2 }));
        assert_eq!(patch(HEADER_LEN + 2, 1), Some(ArchiveError::ReservedNotZero { offset: HEADER_LEN }));
        assert_eq!(patch(HEADER_LEN + 5, 0x10), Some(ArchiveError::BadMode { offset: HEADER_LEN, mode: 0x10ed }));
        assert_eq!(patch(HEADER_LEN + ENTRY_HEADER_LEN, b'x'), Some(ArchiveError::BadPath { offset: HEADER_LEN }));
        // A huge data length must not overflow.
        assert!(matches!(patch(HEADER_LEN + 23, 0xff), Some(ArchiveError::Truncated { .. })));
    }

    #[test]
    fn path_rules() {
        for good in [&b"/a"[..], b"/a/b", b"/a.b/..c"] {
            assert!(is_valid_path(good), "{good:?}");
        }
        for bad in [&b""[..], b"/", b"a", b"/a/", b"//a", b"/a/./b", b"/a/../b", b"/a\0"] {
            assert!(!is_valid_path(bad), "{bad:?}");
        }
        let mut sink = Sink::new();
        assert_eq!(
            encode_entry(&mut |d| sink.push(d), EntryKind::Directory, 0, false, b"/d", b"x"),
            Err(ArchiveError::BadData { offset: 0 })
        );
        assert_eq!(sink.len, 0);
    }
}
