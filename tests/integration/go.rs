//! The Go programs Debian ships statically (gojq, shfmt, go-md2man): the Go runtime starts threads
//! (clone without CLONE_SETTLS), parks them on futexes, preempts goroutines with SIGURG through tgkill,
//! and waits in its netpoller (epoll and a pipe). Each runs natively and under secure-run with the same
//! stdin and must match byte for byte. Their code holds unintended guarded byte sequences, so in `mpk`
//! mode they run under the kernel's step gate (`isolation::guard`).

use std::path::PathBuf;

use crate::common::*;

/// The installed Go program `name`; fails the test, naming the Debian package, if it is missing.
fn go_program(name: &str) -> PathBuf {
    let path = PathBuf::from("/usr/bin").join(name);
    assert!(path.is_file(), "{} is missing: install the Debian package `{name}` (scripts/setup does)", path.display());
    let bytes = std::fs::read(&path).unwrap();
    assert!(goblin::elf::Elf::parse(&bytes).unwrap().interpreter.is_none(), "{} is not static", path.display());
    path
}

fn check(mode: Mode, name: &str, args: &[&str], stdin: &[u8]) {
    let app = go_program(name);
    let native = run_native(&app, args, &[], Some(stdin));
    assert_status(&native, 0);
    let in_vm = SecureRun::new(mode).stdin(stdin).run(&app, args);
    assert_same_as_native(&in_vm, &native);
    assert_no_panic(&in_vm);
}

const JSON: &[u8] = br#"{"name":"secure-run","tags":["vm","mpk",{"nested":[1,2,3]}],"n":41}"#;

abi_test!(
    fn gojq_filters_json(mode) {
        check(mode, "gojq", &["-c", ".tags[2].nested | map(. * 2) | add + 30"], JSON);
    }
);

abi_test!(
    fn gojq_reformats_json_as_yaml(mode) {
        check(mode, "gojq", &["--yaml-output", "--indent=3", "."], JSON);
    }
);

abi_test!(
    fn shfmt_formats_a_script(mode) {
        check(mode, "shfmt", &["-i", "2"], b"if [ -n \"$x\" ]; then\necho   hi;  for i in 1 2; do echo $i; done\nfi\n");
    }
);

abi_test!(
    fn go_md2man_renders_markdown(mode) {
        check(mode, "go-md2man", &[], b"# Title\n\nSome *text* and a list:\n\n- one\n- two\n\n    code block\n");
    }
);
