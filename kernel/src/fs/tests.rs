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
    assert_eq!((parent.parent, parent.name, parent.trailing_slash), (tmp, &b"new"[..], true));
    let parent = fs.resolve_parent(tmp, b"rel").unwrap();
    assert_eq!((parent.parent, parent.name), (tmp, &b"rel"[..]));
    let root = fs.resolve_parent(tmp, b"///").unwrap();
    assert_eq!((root.parent, root.name), (ROOT, &b""[..]));
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
fn writes_overwrite_extend_and_leave_holes_of_zeros() {
    let mut fs = fs();
    let tmp = fs.resolve(ROOT, b"/tmp", true).unwrap();
    let file = fs.create(tmp, b"f", NodeKind::File(FileData::Owned(Vec::new())), 0o644, 0).unwrap();
    let contents = |fs: &FileSystem| fs.file_bytes(file).unwrap().to_vec();
    assert_eq!(fs.write_file(file, 0, b"abcdef", 0), Ok(6));
    assert_eq!(fs.write_file(file, 1, b"XY", 0), Ok(2), "inside the file");
    assert_eq!(contents(&fs), b"aXYdef");
    assert_eq!(fs.write_file(file, 4, b"1234", 0), Ok(4), "across the end");
    assert_eq!(contents(&fs), b"aXYd1234");
    assert_eq!(fs.write_file(file, 10, b"z", 0), Ok(1), "past the end: a hole");
    assert_eq!(contents(&fs), b"aXYd1234\0\0z");
    assert_eq!(fs.write_file(file, 11, b"", 0), Ok(0));
    assert_eq!(contents(&fs).len(), 11);
    assert_eq!(fs.used_bytes(), 11 + 4, "the file and /proc/self/exe's target");
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
        *entries = Directory::new();
    }
    let directory = || NodeKind::Directory(Directory::new());
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

/// The standard tree's directories start as fixed tables; changing one turns it into a B-tree that
/// keeps every entry.
#[test]
fn fixed_directories_change_like_any_other() {
    let mut fs = fs();
    let dir = || NodeKind::Directory(Directory::new());
    let a = fs.create(ROOT, b"a", dir(), 0o755, 0).unwrap();
    let names =
        |fs: &FileSystem| fs.node(ROOT).unwrap().entries().unwrap().iter().map(|(n, _)| n.to_vec()).collect::<Vec<_>>();
    assert_eq!(names(&fs), [&b"a"[..], b"dev", b"proc", b"tmp"]);
    for path in [&b"/dev/null"[..], b"/proc/self/exe", b"/tmp", b"/a"] {
        assert!(fs.resolve(ROOT, path, false).is_ok(), "{path:?}");
    }
    assert_eq!(fs.resolve(ROOT, b"/a", true), Ok(a));
    fs.rename(ROOT, b"a", ROOT, b"zz", false, false, 0).unwrap();
    assert_eq!(names(&fs), [&b"dev"[..], b"proc", b"tmp", b"zz"]);
    fs.remove(ROOT, b"zz", true, 0).unwrap();
    assert_eq!(names(&fs), [&b"dev"[..], b"proc", b"tmp"]);
    fs.check_invariants().unwrap();
    // Read-only fixed directories refuse changes before any conversion.
    let dev = fs.resolve(ROOT, b"/dev", true).unwrap();
    assert_eq!(fs.create(dev, b"x", dir(), 0o755, 0), Err(Errno::EROFS));
    assert_eq!(fs.remove(dev, b"null", false, 0), Err(Errno::EROFS));
}

/// Byte strings biased towards what makes name comparisons interesting: shared prefixes, lengths around
/// eight, NULs and high bytes.
fn name_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop_oneof![
        proptest::collection::vec(prop_oneof![Just(0u8), Just(b'a'), Just(b'b'), Just(0xff)], 0..12),
        (0usize..12, proptest::collection::vec(any::<u8>(), 0..4)).prop_map(|(shared, tail)| [
            &b"abcdefghijkl"[..shared],
            &tail
        ]
        .concat()),
        proptest::collection::vec(any::<u8>(), 0..20),
    ]
}

/// Two byte strings, often one a prefix of the other or the two differing only past their first eight
/// bytes.
fn name_pair() -> impl proptest::strategy::Strategy<Value = (Vec<u8>, Vec<u8>)> {
    use proptest::collection::vec;
    use proptest::prelude::*;
    prop_oneof![
        (name_bytes(), name_bytes()),
        (name_bytes(), vec(prop_oneof![Just(0u8), any::<u8>()], 0..3))
            .prop_map(|(a, tail)| (a.clone(), [a, tail].concat())),
        (vec(any::<u8>(), 8), vec(any::<u8>(), 0..3), vec(any::<u8>(), 0..3))
            .prop_map(|(head, x, y)| ([&head[..], &x].concat(), [head, y].concat())),
    ]
}

proptest::proptest! {
    /// Names order and compare exactly as their bytes do.
    #[test]
    fn names_order_as_bytes((a, b) in name_pair()) {
        proptest::prop_assert_eq!(Name::new(&a).cmp(&Name::new(&b)), a.cmp(&b));
        proptest::prop_assert_eq!(Name::new(&a) == Name::new(&b), a == b);
    }

    /// A directory, fixed or a tree, finds what a map of byte strings finds and lists in its order,
    /// through any sequence of inserts and removes.
    #[test]
    fn directories_behave_as_maps(
        fixed in proptest::collection::btree_map(name_bytes(), 0usize..100, 0..6),
        ops in proptest::collection::vec((proptest::bool::ANY, name_bytes(), 0usize..100), 0..40),
    ) {
        let table: Vec<(Name<'static>, NodeId)> =
            fixed.iter().map(|(name, &id)| (Name::new(&*name.clone().leak()), id)).collect();
        let mut directory = Directory::fixed(table.leak());
        let mut model = fixed;
        for (insert, name, id) in ops {
            if insert {
                directory.insert(&name, id);
                model.insert(name.clone(), id);
            } else {
                proptest::prop_assert_eq!(directory.remove(&name), model.remove(&name));
            }
            let listed: Vec<(Vec<u8>, NodeId)> = directory.iter().map(|(n, id)| (n.to_vec(), id)).collect();
            let expected: Vec<(Vec<u8>, NodeId)> = model.iter().map(|(n, &id)| (n.clone(), id)).collect();
            proptest::prop_assert_eq!(listed, expected);
            proptest::prop_assert_eq!(directory.len(), model.len());
            for (name, &id) in &model {
                proptest::prop_assert_eq!(directory.get(name), Some(id));
            }
            proptest::prop_assert_eq!(directory.get(&name), model.get(&name).copied());
        }
    }
}

#[test]
fn static_files_are_referenced_until_written() {
    let mut fs = FileSystem::new(&[], b"", 100, 0);
    let file = fs.create_static_file(b"/a/b/c", b"static", 0o644, 0).unwrap();
    assert_eq!(fs.file_bytes(file), Ok(&b"static"[..]));
    assert_eq!(fs.stat(fs.resolve(ROOT, b"/a/b", true).unwrap()).map(|s| s.mode), Ok(node::S_IFDIR | 0o755));
    assert_eq!(fs.used_bytes(), 0, "not charged while referenced");
    // A write copies the bytes (charged), and a new static slice gives the charge back.
    assert_eq!(fs.write_file(file, 6, b"!", 0), Ok(1));
    assert_eq!((fs.file_bytes(file), fs.used_bytes()), (Ok(&b"static!"[..]), 7));
    fs.set_static_data(file, b"other");
    assert_eq!((fs.file_bytes(file), fs.used_bytes()), (Ok(&b"other"[..]), 0));
    fs.set_static_data(ROOT, b"x");
    assert!(fs.node(ROOT).unwrap().is_dir(), "only a regular file takes static bytes");
    fs.check_invariants().unwrap();
}

#[test]
fn proc_self_exe_leads_to_the_packed_program_while_it_names_it() {
    let mut packed = alloc::vec::Vec::new();
    kernel_abi::archive::encode_header(&mut |d: &[u8]| packed.extend_from_slice(d));
    kernel_abi::archive::encode_entry(
        &mut |d: &[u8]| packed.extend_from_slice(d),
        kernel_abi::archive::EntryKind::File,
        0o755,
        true,
        PROGRAM_ENTRY,
        b"\x7fELF program",
    )
    .unwrap();
    let mut fs = FileSystem::new(packed.leak(), b"/host/dir/app", 1 << 20, 0);
    fs.load_archive(0).unwrap();
    let program = fs.program().expect("the program entry is adopted");
    assert_eq!(fs.resolve(ROOT, b"/proc/self/exe", true), Ok(program));
    assert_eq!(fs.file_bytes(program), Ok(&b"\x7fELF program"[..]));
    assert_eq!(fs.resolve(ROOT, b"/host", true), Err(Errno::ENOENT), "its host path is not created");
    assert_eq!(fs.exe_path_of(program), Ok(b"/host/dir/app".to_vec()));
    // Another program named: the link is a plain symlink again.
    fs.replace_exe_path(b"/tmp".to_vec());
    assert_eq!(fs.resolve(ROOT, b"/proc/self/exe", true), fs.resolve(ROOT, b"/tmp", true));
    fs.check_invariants().unwrap();
}
