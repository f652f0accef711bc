//! Replays every input kept under `fuzz/regressions/<target>/` (crashes the fuzzers found, and the seeds
//! committed under `fuzz/seeds/<target>/`) through the same checks the fuzz targets run: the modules of
//! `fuzz/src/` are included here by path, so a plain stable `cargo test` keeps every fixed crash fixed
//! without nightly or libFuzzer. See fuzz/README.md for how an input gets here.

#[path = "../../fuzz/src/console.rs"]
mod console;
#[path = "../../fuzz/src/elf_loader.rs"]
mod elf_loader;
#[path = "../../fuzz/src/input.rs"]
mod input;
#[path = "../../fuzz/src/inspection.rs"]
mod inspection;
#[path = "../../fuzz/src/pvh.rs"]
mod pvh;
#[path = "../../fuzz/src/syscall_args.rs"]
mod syscall_args;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fuzz")
}

/// Runs `check` on every file of `fuzz/regressions/<target>` and `fuzz/seeds/<target>`; a panic names
/// the file. Returns how many inputs ran.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let mut files = Vec::new();
    for kind in ["regressions", "seeds"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            if path.is_file() && path.file_name().is_some_and(|name| name != "README.md") {
                files.push(path);
            }
        }
    }
    files.sort();
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!("fuzz regression {} fails: {message}", path.display());
        }
    }
    files.len()
}

/// One test per target, named after it: every stored input replays through the target's checks, and
/// there is at least one.
macro_rules! replays {
    ($($target:ident),*) => {$(
        #[test]
        fn $target() {
            let target = stringify!($target);
            assert!(replay(target, $target::run) > 0, "no {target} inputs found");
        }
    )*};
}

replays!(elf_loader, syscall_args, inspection, console, pvh);

/// The replay is only worth something if the checks can fail: a reference-scan mismatch must be caught.
#[test]
fn inspection_reference_finds_wrpkru() {
    let found = inspection::reference_scan(&[0x90, 0x0f, 0x01, 0xef], 0x1000);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].offset, 0x1001);
}
