//! File-system unit tests: resolution rules, removal, accounting.

use super::*;

fn fs() -> FileSystem {
    FileSystem::new(&[], b"/app", 1 << 20, 0)
}

#[test]
fn resolution_rules() {
    let mut fs = fs();
    let tmp = fs.resolve(ROOT, b"/tmp", true).unwrap();
    assert_eq!(fs.resolve(ROOT, b"//tmp/./", true), Ok(tmp));
    assert_eq!(fs.resolve(tmp, b"..", true), Ok(ROOT));
    assert_eq!(fs.resolve(ROOT, b"/..", true), Ok(ROOT));
    let file = fs.create(tmp, b"f", NodeKind::File(FileData::Owned(Vec::new())), 0o644, 0).unwrap();
    assert_eq!(fs.resolve(ROOT, b"/tmp/f/", true), Err(Errno::ENOTDIR));
    assert_eq!(fs.resolve(ROOT, b"/tmp/f/x", true), Err(Errno::ENOTDIR));
    assert_eq!(fs.resolve(ROOT, b"/tmp/g", true), Err(Errno::ENOENT));
    assert_eq!(fs.resolve(ROOT, &[b'a'; 300], true), Err(Errno::ENAMETOOLONG));
    assert_eq!(fs.resolve(ROOT, b"/tmp/f", true), Ok(file));
    let exe = fs.resolve(ROOT, b"/proc/self/exe", false).unwrap();
    assert!(matches!(fs.node(exe).unwrap().kind, NodeKind::Symlink(_)));
    assert_eq!(fs.resolve(ROOT, b"/proc/self/exe", true), Err(Errno::ENOENT), "the app binary is not in the fs");
    let parent = fs.resolve_parent(ROOT, b"/tmp/new/").unwrap();
    assert_eq!((parent.parent, parent.name.as_slice(), parent.trailing_slash), (tmp, &b"new"[..], true));
    let parent = fs.resolve_parent(tmp, b"rel").unwrap();
    assert_eq!((parent.parent, parent.name.as_slice()), (tmp, &b"rel"[..]));
    let root = fs.resolve_parent(tmp, b"///").unwrap();
    assert_eq!((root.parent, root.name.as_slice()), (ROOT, &b""[..]));
}

#[test]
fn capacity_is_enforced() {
    let mut fs = FileSystem::new(&[], b"", 100, 0);
    let tmp = fs.resolve(ROOT, b"/tmp", true).unwrap();
    let file = fs.create(tmp, b"f", NodeKind::File(FileData::Owned(Vec::new())), 0o644, 0).unwrap();
    assert_eq!(fs.write_file(file, 0, &[1; 60], 0), Ok(60));
    assert_eq!(fs.write_file(file, 60, &[1; 60], 0), Err(Errno::ENOSPC));
    assert_eq!(fs.write_file(file, u64::MAX - 1, &[1; 2], 0), Err(Errno::EFBIG));
    assert_eq!(fs.write_file(file, 1 << 40, &[1], 0), Err(Errno::ENOSPC));
    assert_eq!(fs.used_bytes(), 60);
    fs.remove(tmp, b"f", false, 0).unwrap();
    assert_eq!(fs.used_bytes(), 0);
    fs.check_invariants().unwrap();
}

#[test]
fn open_references_keep_unlinked_nodes() {
    let mut fs = fs();
    let tmp = fs.resolve(ROOT, b"/tmp", true).unwrap();
    let file = fs.create(tmp, b"f", NodeKind::File(FileData::Owned(Vec::new())), 0o644, 0).unwrap();
    fs.write_file(file, 0, b"abc", 0).unwrap();
    fs.acquire(file);
    fs.remove(tmp, b"f", false, 0).unwrap();
    let mut buf = [0u8; 3];
    assert_eq!(fs.read_file(file, 0, &mut buf), Ok(3));
    fs.check_invariants().unwrap();
    fs.release(file);
    assert!(fs.node(file).is_none());
    fs.check_invariants().unwrap();
}

#[test]
fn archive_conflicts_are_errors() {
    use kernel_abi::archive::{encode_entry, encode_header, EntryKind};
    let mut bytes = Vec::new();
    encode_header(&mut |d| bytes.extend_from_slice(d));
    encode_entry(&mut |d| bytes.extend_from_slice(d), EntryKind::File, 0o644, false, b"/a", b"x").unwrap();
    encode_entry(&mut |d| bytes.extend_from_slice(d), EntryKind::File, 0o644, false, b"/a/b", b"y").unwrap();
    let mut fs = FileSystem::new(bytes.leak(), b"", 1 << 20, 0);
    assert_eq!(fs.load_archive(0), Err(archive::LoadError::Conflict { errno: Errno::ENOTDIR }));
    let mut fs = FileSystem::new(b"garbage-garbage-garbage", b"", 1 << 20, 0);
    assert!(matches!(fs.load_archive(0), Err(archive::LoadError::Malformed(_))));
}

/// `FileSystem::new` builds the standard tree directly; it must be exactly what `create` builds.
#[test]
fn standard_tree_matches_create() {
    let now = 1_234;
    let mut expected = FileSystem::new(&[], b"", 1 << 20, now);
    expected.nodes.truncate(1);
    expected.next_ino = 2;
    if let Some(NodeKind::Directory(entries)) = expected.node_mut(ROOT).map(|root| &mut root.kind) {
        entries.clear();
    }
    let directory = || NodeKind::Directory(BTreeMap::new());
    let read_only = |fs: &mut FileSystem, id| fs.node_mut(id).unwrap().read_only = true;
    let fs = &mut expected;
    fs.create(ROOT, b"tmp", directory(), 0o1777, now).unwrap();
    let dev = fs.create(ROOT, b"dev", directory(), 0o755, now).unwrap();
    for (name, device) in [(&b"null"[..], Device::Null), (b"zero", Device::Zero), (b"urandom", Device::Random)] {
        fs.create(dev, name, NodeKind::Device(device), 0o666, now).unwrap();
    }
    fs.create(dev, b"random", NodeKind::Device(Device::Random), 0o666, now).unwrap();
    read_only(fs, dev);
    let proc = fs.create(ROOT, b"proc", directory(), 0o555, now).unwrap();
    let this = fs.create(proc, b"self", directory(), 0o555, now).unwrap();
    fs.create(this, b"exe", NodeKind::Symlink(b"/bin/app".to_vec()), 0o777, now).unwrap();
    read_only(fs, this);
    read_only(fs, proc);

    let built = FileSystem::new(&[], b"/bin/app", 1 << 20, now);
    assert_eq!(alloc::format!("{built:?}"), alloc::format!("{expected:?}"));
    built.check_invariants().unwrap();
}
