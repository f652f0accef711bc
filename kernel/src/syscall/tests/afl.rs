//! Syscall tests: the `--afl` input, as stdin and as a file, and the snapshot point, at entry or deferred to
//! the first call that could see the input (`crate::afl`).

use super::*;

#[test]
fn the_afl_input_as_stdin_reads_then_ends() {
    let mut h = Harness::with(|c| c.stdin = b"");
    h.k.attach_afl_input(b"fuzz\0input");
    let buf = h.buf(64);
    assert_eq!(h.call(READ, &[0, buf, 64]), 10);
    assert_eq!(h.read(buf, 10), b"fuzz\0input");
    assert_eq!(h.call(READ, &[0, buf, 64]), 0, "then EOF");
}

#[test]
fn the_afl_input_as_a_file_at_a_nested_path() {
    let mut h = Harness::new();
    h.k.create_afl_input_file(b"/in/put/cur", 0).unwrap();
    h.k.attach_afl_input(b"abcdef");
    let fd = h.open("/in/put/cur", O_RDONLY, 0) as u64;
    let buf = h.buf(64);
    assert_eq!(h.call(READ, &[fd, buf, 64]), 6);
    assert_eq!(h.read(buf, 6), b"abcdef");
    assert_eq!(h.call(READ, &[fd, buf, 64]), 0);
    let st = h.buf(144);
    assert_eq!(h.call(FSTAT, &[fd, st]), 0);
    assert_eq!(h.u64_at(st + 48), 6, "st_size");
    assert_eq!(h.read(st + 24, 4), 0o100644u32.to_le_bytes(), "st_mode");
    let dir = h.cstr("/in/put");
    assert_eq!(h.call(NEWFSTATAT, &[AT, dir, st, 0]), 0);
    assert_eq!(h.read(st + 24, 4), 0o40755u32.to_le_bytes(), "a created directory");
    // A private mapping copies the bytes; stdin is left alone.
    let mapped = h.call(MMAP, &[0, 4096, 1, 0x02, fd, 0]) as u64;
    assert_eq!(h.read(mapped, 7), b"abcdef\0");
    assert_eq!(h.call(READ, &[0, buf, 5]), 5);
    assert_eq!(h.read(buf, 5), b"input");
    // Writing makes the app a copy of its own, charged to the file system; the input is unchanged.
    let used = h.k.fs.used_bytes();
    let rw = h.open("/in/put/cur", O_RDWR, 0) as u64;
    let x = h.put(b"X");
    assert_eq!(h.call(PWRITE64, &[rw, x, 1, 2]), 1);
    assert_eq!(pread_bytes(&mut h, fd, 64, 0), b"abXdef");
    assert_eq!(h.k.fs.used_bytes(), used + 6);
    assert_eq!(h.call(FTRUNCATE, &[rw, 1]), 0);
    assert_eq!(pread_bytes(&mut h, fd, 64, 0), b"a");
}

#[test]
fn the_afl_input_file_needs_a_path_it_can_create() {
    let mut h = Harness::new();
    assert_eq!(h.k.create_afl_input_file(b"relative", 0), Err(Errno::EINVAL));
    assert_eq!(h.k.create_afl_input_file(b"/data/hello.txt", 0), Err(Errno::EEXIST));
    assert_eq!(h.k.create_afl_input_file(b"/data/hello.txt/x", 0), Err(Errno::ENOTDIR));
    assert_eq!(h.k.create_afl_input_file(b"/data/new", 0), Err(Errno::EROFS), "a read-only mount");
    assert_eq!(h.k.create_afl_input_file(b"/tmp/", 0), Err(Errno::EEXIST), "no file name");
    let long = alloc::format!("/{}", "x".repeat(4096));
    assert_eq!(h.k.create_afl_input_file(long.as_bytes(), 0), Err(Errno::ENAMETOOLONG));
    // Nothing was made: the input is still stdin's.
    h.k.attach_afl_input(b"in");
    let buf = h.buf(8);
    assert_eq!(h.call(READ, &[0, buf, 8]), 2);
    assert_eq!(h.read(buf, 2), b"in");
}

/// A harness whose `--afl` snapshot waits for the app's first call that could see the input
/// (`FLAG_AFL_SNAPSHOT_AFTER_STARTUP`), with `input` as the input after it.
fn deferred(input: &'static [u8]) -> Harness {
    let mut h = Harness::with(|c| c.stdin = b"");
    h.m.afl_input = input;
    h.k.defer_afl_snapshot();
    h
}

/// The C library's start-up: calls that cannot observe the input; none takes the snapshot (or changes
/// whether it is pending).
fn start_up(h: &mut Harness) {
    let (snapshots, pending) = (h.m.afl_snapshots, h.k.afl_snapshot_pending());
    let brk = h.call(BRK, &[0]) as u64;
    assert_eq!(h.call(BRK, &[brk + 0x2000]) as u64, brk + 0x2000);
    let anonymous = h.call(MMAP, &[0, 0x4000, 3, 0x22, u64::MAX, 0]);
    assert!(anonymous > 0, "anonymous mmap: {anonymous}");
    assert_eq!(h.call(MPROTECT, &[anonymous as u64, 0x1000, 1]), 0);
    let action = h.buf(32);
    assert_eq!(h.call(RT_SIGACTION, &[u64::from(linux_raw_sys::general::SIGSEGV), action, 0, 8]), 0);
    let random = h.buf(16);
    assert_eq!(h.call(GETRANDOM, &[random, 16, 0]), 16);
    assert_eq!(h.call(ARCH_PRCTL, &[0x1002, 0x7000_0000]), 0, "ARCH_SET_FS");
    assert!(h.call(SET_TID_ADDRESS, &[SCRATCH]) > 0);
    let exe = h.cstr("/proc/self/exe");
    let link = h.buf(64);
    assert_eq!(h.call(READLINKAT, &[AT, exe, link, 64]), 4);
    assert_eq!(h.call(334, &[0, 32, 0, 0]), Errno::ENOSYS.to_return(), "rseq");
    let ts = h.buf(16);
    assert_eq!(h.call(CLOCK_GETTIME, &[1, ts]), 0);
    assert_eq!(h.call(MUNMAP, &[anonymous as u64 + 0x3000, 0x1000]), 0);
    assert_eq!(h.m.afl_snapshots, snapshots, "start-up calls do not take the snapshot");
    assert_eq!(h.k.afl_snapshot_pending(), pending);
}

#[test]
fn start_up_calls_leave_a_deferred_snapshot_pending_and_a_stdin_read_takes_it() {
    let mut h = deferred(b"fuzz input");
    start_up(&mut h);
    let buf = h.buf(64);
    assert_eq!(h.call(READ, &[0, buf, 64]), 10, "the read sees this execution's input");
    assert_eq!(h.m.afl_snapshots, 1);
    assert!(!h.k.afl_snapshot_pending());
    assert_eq!(h.read(buf, 10), b"fuzz input");
    assert_eq!(h.call(READ, &[0, buf, 64]), 0, "then EOF");
    // Nothing takes it again: neither another call that could see the input nor a start-up one.
    start_up_again(&mut h);
    assert_eq!(h.m.afl_snapshots, 1, "exactly once");
}

/// Start-up calls and calls that could see the input after the snapshot: none takes another.
fn start_up_again(h: &mut Harness) {
    assert!(h.call(BRK, &[0]) > 0);
    let msg = h.put(b"out\n");
    assert_eq!(h.call(WRITE, &[1, msg, 4]), 4);
    let fd = h.open("/data/hello.txt", O_RDONLY, 0) as u64;
    assert!(h.call(MMAP, &[0, 4096, 1, 0x02, fd, 0]) > 0);
    assert_eq!(h.result(EXIT_GROUP, &[3]), SyscallResult::Exit(3));
}

#[test]
fn each_call_that_could_see_the_input_takes_a_deferred_snapshot_first() {
    type Call = fn(&mut Harness) -> SyscallResult;
    let calls: [(&str, Call); 7] = [
        ("read(0)", |h| {
            let buf = h.buf(8);
            h.result(READ, &[0, buf, 8])
        }),
        ("write", |h| {
            let msg = h.put(b"x");
            h.result(WRITE, &[1, msg, 1])
        }),
        ("openat", |h| {
            let path = h.cstr("/data/hello.txt");
            h.result(OPENAT, &[AT, path, 0, 0])
        }),
        ("fstat", |h| {
            let st = h.buf(144);
            h.result(FSTAT, &[0, st])
        }),
        ("exit_group", |h| h.result(EXIT_GROUP, &[0])),
        ("clone", |h| h.result(CLONE, &[u64::from(linux_raw_sys::general::SIGCHLD), 0, 0, 0, 0])),
        ("an unknown call", |h| h.result(999, &[])),
    ];
    for (name, call) in calls {
        let mut h = deferred(b"in");
        start_up(&mut h);
        call(&mut h);
        assert_eq!(h.m.afl_snapshots, 1, "{name} takes the snapshot");
        assert!(!h.k.afl_snapshot_pending(), "{name}");
        if name != "read(0)" && name != "exit_group" {
            let buf = h.buf(8);
            assert_eq!(h.call(READ, &[0, buf, 8]), 2, "after {name}, stdin is the input");
            assert_eq!(h.read(buf, 2), b"in");
            assert_eq!(h.m.afl_snapshots, 1, "after {name}");
        }
    }
}

#[test]
fn a_file_mapping_takes_a_deferred_snapshot_and_an_anonymous_one_does_not() {
    let mut h = Harness::with(|c| c.stdin = b"");
    h.m.afl_input = b"mapped";
    // Opened before the snapshot is deferred, so that only the mmap's flags decide.
    let fd = h.open("/data/hello.txt", O_RDONLY, 0) as u64;
    h.k.defer_afl_snapshot();
    assert!(h.call(MMAP, &[0, 4096, 3, 0x22, fd, 0]) > 0, "MAP_ANONYMOUS ignores the fd");
    assert_eq!(h.m.afl_snapshots, 0);
    let mapped = h.call(MMAP, &[0, 4096, 1, 0x02, fd, 0]) as u64;
    assert_eq!(h.m.afl_snapshots, 1, "a file mapping takes it");
    assert_eq!(h.read(mapped, 5), b"hello");
    let buf = h.buf(8);
    assert_eq!(h.call(READ, &[0, buf, 8]), 6);
    assert_eq!(h.read(buf, 6), b"mapped");
    assert_eq!(h.m.afl_snapshots, 1);
}

#[test]
fn a_deferred_snapshot_attaches_the_input_file_before_the_open_that_takes_it() {
    let mut h = Harness::with(|c| c.stdin = b"stdin");
    h.k.create_afl_input_file(b"/in/cur", 0).unwrap();
    h.m.afl_input = b"file input";
    h.k.defer_afl_snapshot();
    start_up(&mut h);
    let fd = h.open("/in/cur", O_RDONLY, 0) as u64;
    assert_eq!(h.m.afl_snapshots, 1);
    assert_eq!(pread_bytes(&mut h, fd, 64, 0), b"file input");
    let buf = h.buf(8);
    assert_eq!(h.call(READ, &[0, buf, 8]), 5, "stdin stays the configured one");
    assert_eq!(h.read(buf, 5), b"stdin");
}

#[test]
fn a_deferred_snapshot_keeps_the_trace_of_the_call_that_takes_it() {
    let mut h = Harness::with(|c| {
        c.stdin = b"";
        c.trace = true;
    });
    h.m.afl_input = b"traced";
    h.k.defer_afl_snapshot();
    assert!(h.call(BRK, &[0]) > 0);
    let buf = h.buf(8);
    assert_eq!(h.call(READ, &[0, buf, 8]), 6);
    let log = alloc::string::String::from_utf8(h.m.log.clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines[0].starts_with("brk(NULL) = 0x"), "{}", lines[0]);
    assert_eq!(lines[1], r#"read(0, "traced", 8) = 6"#);
    assert_eq!(h.m.afl_snapshots, 1);
}

#[test]
fn without_the_flag_the_snapshot_is_at_entry_and_no_call_takes_another() {
    let mut h = Harness::with(|c| c.stdin = b"");
    h.m.afl_input = b"entry";
    // What boot does without FLAG_AFL_SNAPSHOT_AFTER_STARTUP, just before entering the app.
    h.k.take_afl_snapshot(&mut h.m);
    assert_eq!(h.m.afl_snapshots, 1);
    assert!(!h.k.afl_snapshot_pending());
    start_up(&mut h);
    let buf = h.buf(8);
    assert_eq!(h.call(READ, &[0, buf, 8]), 5);
    assert_eq!(h.read(buf, 5), b"entry");
    start_up_again(&mut h);
    assert_eq!(h.m.afl_snapshots, 1);
}

#[test]
fn a_process_that_is_not_fuzzed_never_takes_a_snapshot() {
    let mut h = Harness::new();
    start_up(&mut h);
    let buf = h.buf(16);
    assert_eq!(h.call(READ, &[0, buf, 16]), 11);
    assert_eq!(h.read(buf, 11), b"input line\n");
    start_up_again(&mut h);
    assert_eq!(h.m.afl_snapshots, 0);
}
