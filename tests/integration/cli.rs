//! Bad command lines and files secure-run must refuse before it starts a VM, with the exit codes of the
//! README ("Exit status") and a message that says what is wrong. Each malformed file is a patched copy of
//! a real guest (patched with `vmm::elf::write::ElfWriter`), written to a temporary directory by the test
//! itself.

use std::path::{Path, PathBuf};

use goblin::elf::header::{EI_CLASS, ELFCLASS32, EM_AARCH64};
use goblin::elf::program_header::PT_LOAD;
use kernel_abi::exit_code::{CANNOT_EXECUTE, NOT_FOUND, USAGE};
use tempfile::TempDir;
use vmm::elf::write::ElfWriter;

use crate::common::*;

/// A temporary directory holding `name` with `bytes`, and the file's path.
fn file_with(name: &str, bytes: &[u8]) -> (TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("secure-run-cli-").tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

/// `exit42.S` built by gcc: a real, tiny static ELF to patch.
fn exit42_bytes() -> Vec<u8> {
    std::fs::read(guest(Toolchain::Asm, "exit42")).unwrap()
}

/// `bytes` with `change` made to their headers.
fn patched(bytes: &[u8], change: impl FnOnce(&mut ElfWriter<'_>)) -> Vec<u8> {
    let mut elf = ElfWriter::edit(bytes).expect("the guest is a little-endian ELF64 file");
    change(&mut elf);
    elf.write().expect("the patched headers are written")
}

/// Runs secure-run on `path` (no mode options: refusal comes before any backend is chosen) and checks
/// the status and, ignoring case, the message.
#[track_caller]
fn assert_refused(path: &Path, status: i32, message: &str) {
    let result = SecureRun::without_mode().run(path, &[]);
    assert_status(&result, status);
    assert_stderr_contains(&result, message);
    assert!(result.stdout.is_empty(), "nothing should reach stdout\n{}", result.report());
    assert_no_panic(&result);
}

#[test]
fn missing_file_is_127_not_found() {
    let dir = tempfile::tempdir().unwrap();
    assert_refused(&dir.path().join("no-such-program"), NOT_FOUND, "not found");
}

#[test]
fn empty_file_is_not_an_elf_file() {
    let (_dir, path) = file_with("empty", b"");
    assert_refused(&path, CANNOT_EXECUTE, "not an ELF file");
}

#[test]
fn random_bytes_are_not_an_elf_file() {
    let mut bytes = crate::common::fixtures::pseudo_random_bytes(4096, 42);
    bytes[0] = b'#'; // never "\x7fELF" by accident
    let (_dir, path) = file_with("random", &bytes);
    assert_refused(&path, CANNOT_EXECUTE, "not an ELF file");
}

#[test]
fn shell_script_is_not_an_elf_file() {
    let (_dir, path) = file_with("script.sh", b"#!/bin/sh\necho hello\n");
    assert_refused(&path, CANNOT_EXECUTE, "not an ELF file");
}

#[test]
fn elfclass32_is_refused_as_32_bit() {
    let bytes = patched(&exit42_bytes(), |elf| elf.header.e_ident[EI_CLASS] = ELFCLASS32);
    let (_dir, path) = file_with("class32", &bytes);
    assert_refused(&path, CANNOT_EXECUTE, "32-bit ELF");
}

#[test]
fn aarch64_machine_is_not_an_x86_64_program() {
    let bytes = patched(&exit42_bytes(), |elf| elf.header.e_machine = EM_AARCH64);
    let (_dir, path) = file_with("aarch64", &bytes);
    assert_refused(&path, CANNOT_EXECUTE, "not an x86-64 program");
}

#[test]
fn relocatable_object_is_not_an_executable() {
    assert_refused(&guest(Toolchain::AsmObject, "exit42"), CANNOT_EXECUTE, "not an executable");
}

#[test]
fn dynamically_linked_program_is_refused() {
    assert_refused(&guest(Toolchain::GccDynamic, "exit_codes"), CANNOT_EXECUTE, "dynamically linked");
}

#[test]
fn static_binary_cut_in_half_is_truncated() {
    // A glibc static binary (~800 KB), so that the cut lands inside a loadable segment.
    let bytes = std::fs::read(guest(Toolchain::GccStatic, "exit_codes")).unwrap();
    let half = bytes.len() / 2;
    let cut_inside_a_segment = ElfWriter::edit(&bytes).unwrap().program_headers.iter().any(|header| {
        let (offset, size) = (header.p_offset as usize, header.p_filesz as usize);
        header.p_type == PT_LOAD && offset < half && half < offset + size
    });
    assert!(cut_inside_a_segment, "test precondition: half the file should end inside a PT_LOAD segment");
    let (_dir, path) = file_with("half", &bytes[..half]);
    assert_refused(&path, CANNOT_EXECUTE, "truncated");
}

#[test]
fn program_header_table_past_the_end_is_truncated() {
    // The real count of headers, but a table that starts so late that only its first entry fits.
    let original = exit42_bytes();
    let bytes = patched(&original, |elf| {
        assert!(elf.header.e_phnum >= 2, "test precondition: exit42 has at least two program headers");
        elf.header.e_phoff = (original.len() - usize::from(elf.header.e_phentsize)) as u64;
    });
    let (_dir, path) = file_with("phoff", &bytes);
    assert_refused(&path, CANNOT_EXECUTE, "truncated");
}

#[test]
fn program_header_count_past_the_end_is_refused() {
    // One more header than the file could hold (and far from PN_XNUM, 0xffff, which means something
    // else). Refused either as truncated or as an implausible count; the status is what matters.
    let original = exit42_bytes();
    let bytes = patched(&original, |elf| {
        let room = (original.len() as u64 - elf.header.e_phoff) / u64::from(elf.header.e_phentsize);
        elf.header.e_phnum = u16::try_from(room + 1).unwrap();
    });
    let (_dir, path) = file_with("phnum", &bytes);
    let result = SecureRun::without_mode().run(&path, &[]);
    assert_status(&result, CANNOT_EXECUTE);
    assert_stderr_contains(&result, "program headers");
    assert_no_panic(&result);
}

#[test]
fn file_size_above_memory_size_is_inconsistent() {
    let bytes = patched(&exit42_bytes(), |elf| {
        let load = elf
            .program_headers
            .iter_mut()
            .find(|header| header.p_type == PT_LOAD && header.p_filesz > 0)
            .expect("exit42 has a PT_LOAD with file contents");
        load.p_memsz = load.p_filesz - 1;
    });
    let (_dir, path) = file_with("filesz", &bytes);
    assert_refused(&path, CANNOT_EXECUTE, "inconsistent");
}

#[test]
fn directory_cannot_be_executed() {
    let dir = tempfile::tempdir().unwrap();
    let result = SecureRun::without_mode().run(dir.path(), &[]);
    assert_status(&result, CANNOT_EXECUTE);
    assert_no_panic(&result);
}

#[test]
fn unknown_option_is_a_usage_error() {
    let app = guest(Toolchain::Asm, "hello");
    let result = run(&["--no-such-option", app.to_str().unwrap()]);
    assert_status(&result, USAGE);
    assert!(result.stdout.is_empty(), "usage errors go to stderr\n{}", result.report());
}

#[test]
fn bogus_isolation_is_a_usage_error() {
    let app = guest(Toolchain::Asm, "hello");
    let result = run(&["--isolation", "bogus", app.to_str().unwrap()]);
    assert_status(&result, USAGE);
    assert_stderr_contains(&result, "bogus");
}

#[test]
fn bogus_backend_is_a_usage_error() {
    let app = guest(Toolchain::Asm, "hello");
    assert_status(&run(&["--backend", "bogus", app.to_str().unwrap()]), USAGE);
}

#[test]
fn missing_app_is_a_usage_error() {
    assert_status(&run(&[]), USAGE);
}

#[test]
fn help_documents_the_main_options() {
    let result = run(&["--help"]);
    assert_status(&result, 0);
    let text = result.stdout_text();
    for option in ["--backend", "--isolation", "--timeout"] {
        assert!(text.contains(option), "--help should mention {option}\n{}", result.report());
    }
}
