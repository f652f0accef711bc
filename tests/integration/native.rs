//! Every guest builds with every toolchain variant and behaves as expected when run natively on the
//! host. This needs no VM, so it passes before secure-run works, and it is what makes the native
//! comparisons in `abi` and `busybox` meaningful: a guest whose output is not deterministic, or
//! differs between glibc and musl, fails here first.

use goblin::elf::header::{ET_DYN, ET_EXEC, ET_REL};
use goblin::elf::Elf;

use crate::common::*;

/// Assembly guests: exact native behaviour. Port I/O faults at CPL3, so the port guests die of SIGSEGV
/// natively; that they get that far shows they are well-formed programs.
#[test]
fn guests_asm_build_and_run_natively() {
    let expectations: [(&str, &[&str], i32, &[u8]); 10] = [
        ("hello", &[], 0, b"Hello, World!\n"),
        ("exit42", &[], 42, b""),
        ("exit_group42", &[], 42, b""),
        ("null_write", &[], 139, b""),
        ("start_stack", &[], 0, b"start stack ok\n"),
        ("start_stack", &["with", "more", "args"], 0, b"start stack ok\n"),
        ("port_garbage", &[], 139, b""),
        ("port_stop_silent", &[], 139, b"stopping\n"),
        ("flood", &["0"], 0, b""),
        ("flood", &["63"], 0, b""),
    ];
    for (name, args, status, stdout) in expectations {
        let app = guest(Toolchain::Asm, name);
        assert_static_executable(&app, ET_EXEC);
        assert_output(&run_native(&app, args, &[], None), status, stdout);
    }

    let flood = run_native(&guest(Toolchain::Asm, "flood"), &["3072"], &[], None);
    assert_status(&flood, 0);
    assert!(
        flood.stdout == crate::boot::flood_pattern(3 << 20),
        "flood 3072 (KiB) wrote the wrong bytes\n{}",
        flood.report()
    );

    let object = std::fs::read(guest(Toolchain::AsmObject, "exit42")).unwrap();
    assert_eq!(Elf::parse(&object).unwrap().header.e_type, ET_REL, "gcc -c makes an ET_REL object");
}

/// The endless loop really is endless: still running after half a second.
#[test]
fn guests_asm_loop_runs_until_killed() {
    let app = guest(Toolchain::Asm, "loop");
    let mut child = std::process::Command::new(&app).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(still_running, "the loop guest exited on its own");
}

/// C guests: each variant links as intended, runs twice with the same output, all three variants print
/// the same thing, no self-check fails, and the lines the abi tests rely on are there.
#[test]
fn guests_c_build_and_run_natively() {
    for case in crate::abi::c_cases() {
        let mut outputs = Vec::new();
        for toolchain in C_VARIANTS {
            let app = guest(toolchain, case.name);
            assert_static_executable(&app, if toolchain == Toolchain::GccStaticPie { ET_DYN } else { ET_EXEC });
            // Fresh data for each run: some guests change it.
            let first = case.run_native(&app, data_dir().path());
            let second = case.run_native(&app, data_dir().path());
            assert_status(&first, case.status);
            assert!(
                first.status == second.status && first.stdout == second.stdout,
                "{} ({}) is not deterministic: two native runs differ\n{}\n{}",
                case.name,
                toolchain.name(),
                first.report(),
                second.report()
            );
            let text = first.stdout_text();
            assert!(
                !text.contains("FAILED") && !text.contains("UNEXPECTED"),
                "{} ({}) failed a self-check natively\n{}",
                case.name,
                toolchain.name(),
                first.report()
            );
            for line in case.native_lines {
                assert!(
                    text.lines().any(|printed| printed == *line),
                    "{} ({}) did not print the line {line:?}\n{}",
                    case.name,
                    toolchain.name(),
                    first.report()
                );
            }
            outputs.push((toolchain, first));
        }
        if case.same_across_variants {
            let (_, reference) = &outputs[0];
            for (toolchain, output) in &outputs[1..] {
                assert!(
                    output.stdout == reference.stdout,
                    "{}: {} prints differently from gcc-static\n{}\n{}",
                    case.name,
                    toolchain.name(),
                    output.report(),
                    reference.report()
                );
            }
        }
    }
}

/// The Rust guest: a static PIE for musl, exit status 5, its checks hold.
#[test]
fn guests_rust_build_and_run_natively() {
    let app = guest(Toolchain::RustMusl, "std_tour");
    assert_static_executable(&app, ET_DYN);
    let result = run_native(&app, &["first", "second arg"], &["GREETING=hello"], None);
    assert_status(&result, 5);
    let text = result.stdout_text();
    for line in [
        "args: 3",
        "  arg 2: \"second arg\"",
        "env: [(\"GREETING\", \"hello\")]",
        "file tail: Some(\"line 99\")",
        "removed: true",
        "nonexistent: NotFound",
        "slept at least 20 ms: true",
    ] {
        assert!(text.lines().any(|printed| printed == line), "missing line {line:?}\n{}", result.report());
    }
    assert_same_as_native(&run_native(&app, &["first", "second arg"], &["GREETING=hello"], None), &result);
}

/// The Rust threads guest: a static PIE for musl, status 0, the same output on every run (the panic
/// hook's lines go to stderr, which is not compared).
#[test]
fn guests_rust_threads_build_and_run_natively() {
    let app = guest(Toolchain::RustMusl, "threads");
    assert_static_executable(&app, ET_DYN);
    let result = run_native(&app, &[], &[], None);
    assert_status(&result, 0);
    let text = result.stdout_text();
    for line in [
        "joined sum: 400032496086 (expected 400032496086)",
        "mutex counter: 200000 (strong count 1)",
        "thread_local destructors ran for [0, 1, 2]; main's value 1",
        "panicking thread: Err(Some(\"boom 42\"))",
        "rust threads ok",
    ] {
        assert!(text.lines().any(|printed| printed == line), "missing line {line:?}\n{}", result.report());
    }
    assert_same_as_native(&run_native(&app, &[], &[], None), &result);
}

/// The inputs of the "refuses to run" tests are what they claim to be.
#[test]
fn guests_refused_kinds_link_as_intended() {
    let dynamic = std::fs::read(guest(Toolchain::GccDynamic, "exit_codes")).unwrap();
    assert!(Elf::parse(&dynamic).unwrap().interpreter.is_some(), "plain gcc output has PT_INTERP");
    assert_output(
        &run_native(&guest(Toolchain::GccDynamic, "exit_codes"), &["exit", "3"], &[], None),
        3,
        b"buffered output\natexit handler ran\n",
    );
}

/// busybox (Debian's busybox-static) is installed, static, and runs natively.
#[test]
fn guests_busybox_is_static_and_runs() {
    let busybox = crate::busybox::busybox();
    assert_static_executable(&busybox, ET_EXEC);
    assert_output(&run_native(&busybox, &["echo", "hi"], &[], None), 0, b"hi\n");
}

#[track_caller]
fn assert_static_executable(path: &std::path::Path, expected_type: u16) {
    let bytes = std::fs::read(path).unwrap();
    let elf = Elf::parse(&bytes).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    assert!(elf.interpreter.is_none(), "{} is dynamically linked", path.display());
    assert_eq!(elf.header.e_type, expected_type, "ELF type of {}", path.display());
}

/// The fuzzing target acts on its input as its header says, natively: status 0, 1 for a long input,
/// the digit of EXITn, SIGSEGV for FUZZ, SIGABRT for ABRT; and prints a fresh state each run.
#[test]
fn guests_fuzz_target_behaves_natively() {
    let app = guest(Toolchain::GccStaticPie, "fuzz_target");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    let state = format!("STATE_FILE={}", dir.path().join("state").display());
    for (bytes, status) in [(&b"hello"[..], 0), (&[b'x'; 200][..], 1), (b"EXIT7", 7), (b"FUZZ", 139), (b"ABRT", 134)] {
        std::fs::write(&input, bytes).unwrap();
        let _ = std::fs::remove_file(dir.path().join("state"));
        let result = run_native(&app, &[input.to_str().unwrap()], &[&state], None);
        assert_status(&result, status);
        let text = result.stdout_text();
        assert!(text.starts_with("runs 1\nstate file: created\n"), "{}", result.report());
        assert!(text.contains(&format!("input {} bytes", bytes.len())), "{}", result.report());
    }
}
