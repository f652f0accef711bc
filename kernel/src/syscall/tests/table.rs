//! Syscall tests: the syscall table and the tracer.

use super::*;

#[test]
fn every_table_entry_is_dispatched() {
    for entry in SYSCALLS {
        let mut h = Harness::new();
        let result = h.result(entry.nr, &[]);
        assert_ne!(result, SyscallResult::Return(-38), "{} is in the table but returns ENOSYS", entry.name);
    }
}

#[test]
fn trace_lines() {
    let mut h = Harness::with(|c| c.trace = true);
    let msg = h.put(b"hello\n");
    h.call(WRITE, &[1, msg, 6]);
    let path = h.cstr("/etc/x");
    h.call(OPENAT, &[AT, path, 0, 0]);
    h.call(332, &[AT, path, 0, 0x7ff, KERNEL_ADDR, 0]);
    h.call(999, &[1, 2, 3, 4, 5, 6]);
    let buf = h.buf(8);
    h.call(READ, &[0, buf, 5]);
    let long = h.cstr(&"y".repeat(40));
    h.call(OPENAT, &[AT, long, u64::from(O_CREAT | O_WRONLY | O_CLOEXEC), 0o644]);
    h.call(MMAP, &[0, 4096, 3, 0x22, u64::MAX, 0]);
    h.result(EXIT_GROUP, &[0]);
    let log = alloc::string::String::from_utf8(h.m.log.clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], r#"write(1, "hello\n", 6) = 6"#);
    assert_eq!(lines[1], r#"openat(AT_FDCWD, "/etc/x", O_RDONLY, 0) = -2 ENOENT"#);
    assert_eq!(lines[2], r#"statx(AT_FDCWD, "/etc/x", 0x0, 0x7ff, 0x7e0000001000) = -2 ENOENT"#);
    assert_eq!(lines[3], "syscall_999(0x1, 0x2, 0x3, 0x4, 0x5, 0x6) = -38 ENOSYS");
    assert_eq!(lines[4], r#"read(0, "input", 5) = 5"#);
    assert_eq!(
        lines[5],
        alloc::format!(r#"openat(AT_FDCWD, "{}"..., O_WRONLY|O_CREAT|O_CLOEXEC, 0644) = 3"#, "y".repeat(32))
    );
    assert!(lines[6].starts_with("mmap(NULL, 4096, 0x3, 0x22, -1, 0x0) = 0x7000"), "{}", lines[6]);
    assert_eq!(lines[7], "exit_group(0) = ? (exit 0)");
}
