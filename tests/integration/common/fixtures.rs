//! Input files the tests mount into guests (`--mount DIR:/data`) or feed on stdin. Every test gets its
//! own fresh copy, since some guests write to it.

use std::fs;
use std::path::Path;

use tempfile::TempDir;

/// Where tests mount [`data_dir`] in the guest.
pub const GUEST_DATA: &str = "/data";

pub const LINES: &str = "the quick brown fox\njumps over\nthe lazy dog\n\nfox and dog are friends\nlast line\n";
pub const WORDS: &str = "pear\napple\nfig\napple\nbanana\nfig\napple\ncherry\n";
pub const NUMBERS: &str = "10\n-3\n42\n7\n100\n0\n7\n";
pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nuser:x:1000:1000:A User,,,:/home/user:/bin/bash\n";

/// A fresh directory holding:
/// `input.txt`, `lines.txt`, `words.txt`, `numbers.txt`, `passwd.txt`, `empty.txt`,
/// `binary.bin` (bytes 0..=255 twice), `left.txt`/`right.txt` (differ in one line),
/// `sub/nested.txt` and `sub/deeper/leaf.txt`.
pub fn data_dir() -> TempDir {
    let dir = tempfile::Builder::new().prefix("secure-run-data-").tempdir().expect("creating a temporary directory");
    let root = dir.path();
    write(root, "input.txt", b"hello from the host\nsecond line\n");
    write(root, "lines.txt", LINES.as_bytes());
    write(root, "words.txt", WORDS.as_bytes());
    write(root, "numbers.txt", NUMBERS.as_bytes());
    write(root, "passwd.txt", PASSWD.as_bytes());
    write(root, "empty.txt", b"");
    let binary: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
    write(root, "binary.bin", &binary);
    write(root, "left.txt", b"one\ntwo\nthree\nfour\n");
    write(root, "right.txt", b"one\ntwo\n3\nfour\n");
    write(root, "sub/nested.txt", b"nested file\n");
    write(root, "sub/deeper/leaf.txt", b"leaf\n");
    dir
}

fn write(root: &Path, relative: &str, contents: &[u8]) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, contents).unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
}

/// Deterministic pseudo-random bytes (xorshift64*), for stdin payloads and junk files.
pub fn pseudo_random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}
