//! Syscall tests: processes (fork, exit, wait, pipes and signals between processes, groups).

use super::*;
use crate::processes::{MAX_PROCESSES, WNOHANG};

const SIGCHLD: u64 = linux_raw_sys::general::SIGCHLD as u64;
const SIGTERM: u64 = linux_raw_sys::general::SIGTERM as u64;
const ANY: u64 = u64::MAX; // -1: any child

fn pid(h: &Harness) -> i32 {
    h.k.pid()
}

fn status_at(h: &mut Harness, addr: u64) -> i32 {
    i32::from_le_bytes(h.read(addr, 4).try_into().unwrap())
}

#[test]
fn a_forked_child_gets_a_copy_of_memory_and_its_status_reaches_the_parent() {
    let mut h = Harness::new();
    let data = h.put(b"parent");
    let status = h.buf(4);
    assert_eq!(h.call(FORK, &[]), 2);
    assert_eq!((pid(&h), h.call(GETPPID, &[])), (1, 0), "the parent goes on first");
    h.m.poke(data, b"PARENT").unwrap();
    // The parent waits: the child runs, from the parent's context, with RAX 0, in its own copy.
    assert_eq!(h.call(WAIT4, &[ANY, status, 0, 0]), 0);
    assert_eq!((pid(&h), h.k.thread().tid), (2, 2));
    assert_eq!(h.call(GETPID, &[]), 2);
    assert_eq!(h.call(GETPPID, &[]), 1);
    assert_eq!(h.read(data, 6), b"parent", "the parent's later write is not the child's");
    h.m.poke(data, b"child!").unwrap();
    // exit_group ends the child alone: the parent's wait returns its pid and status.
    assert_eq!(h.call(EXIT_GROUP, &[7]), 2);
    assert_eq!(pid(&h), 1);
    assert_eq!(status_at(&mut h, status), 7 << 8);
    assert_eq!(h.read(data, 6), b"PARENT");
    assert!(!h.k.pending.set().contains(SIGCHLD as u32), "SIGCHLD's default action discards it, as on Linux");
    assert_eq!(h.err(WAIT4, &[ANY, status, 0, 0]), Errno::ECHILD, "reaped");
    assert_eq!(h.k.threads.len(), 1);
}

#[test]
fn a_pipe_between_processes_sees_eof_when_the_last_writer_exits() {
    let mut h = Harness::new();
    let fds = h.buf(8);
    h.call(PIPE2, &[fds, 0]);
    let raw = h.read(fds, 8);
    let (r, w) = (u64::from(raw[0]), u64::from(raw[4]));
    let message = h.put(b"hi");
    let buf = h.buf(16);
    assert_eq!(h.call(FORK, &[]), 2);
    assert_eq!(h.call(CLOSE, &[w]), 0);
    // The parent reads the empty pipe: it blocks, and the child runs.
    h.call(READ, &[r, buf, 16]);
    assert_eq!(pid(&h), 2);
    assert_eq!(h.call(CLOSE, &[r]), 0);
    assert_eq!(h.call(WRITE, &[w, message, 2]), 2);
    // The child's exit switches to the parent, whose read got the two bytes.
    h.call(EXIT_GROUP, &[0]);
    assert_eq!((pid(&h), h.ctx.rax), (1, 2));
    assert_eq!(h.read(buf, 2), b"hi");
    assert_eq!(h.call(READ, &[r, buf, 16]), 0, "EOF: the child's write end closed at its exit");
    let status = h.buf(4);
    assert_eq!(h.call(WAIT4, &[2, status, 0, 0]), 2);
}

#[test]
fn kill_ends_a_child_and_wait_reports_the_signal() {
    let mut h = Harness::new();
    let status = h.buf(4);
    assert_eq!(h.call(FORK, &[]), 2);
    assert_eq!(h.call(WAIT4, &[ANY, status, u64::from(WNOHANG), 0]), 0, "alive: WNOHANG returns 0");
    assert_eq!(h.call(KILL, &[2, SIGTERM]), 0);
    assert_eq!(h.call(KILL, &[99, 0]), -(Errno::ESRCH.0 as i64));
    assert_eq!(h.call(WAIT4, &[2, status, 0, 0]), 2, "the child takes SIGTERM when it runs, and ends");
    assert_eq!(status_at(&mut h, status), SIGTERM as i32);
    assert_eq!(pid(&h), 1);
}

#[test]
fn waitid_reports_the_child_and_wnowait_keeps_it() {
    let mut h = Harness::new();
    let info = h.buf(128);
    assert_eq!(h.call(FORK, &[]), 2);
    let (p_all, wexited, wnowait) = (0u64, 4u64, 0x0100_0000u64);
    assert_eq!(h.call(WAITID, &[p_all, 0, info, wexited | wnowait]), 0);
    assert_eq!(pid(&h), 2, "the child runs while the parent waits");
    h.call(EXIT_GROUP, &[3]);
    assert_eq!((pid(&h), h.ctx.rax), (1, 0));
    let raw = h.read(info, 28);
    let field = |at: usize| i32::from_le_bytes(raw[at..at + 4].try_into().unwrap());
    assert_eq!((field(0), field(8), field(16), field(24)), (SIGCHLD as i32, 1 /* CLD_EXITED */, 2, 3));
    // WNOWAIT left the zombie: a second wait reaps it.
    assert_eq!(h.call(WAITID, &[p_all, 0, info, wexited]), 0);
    assert_eq!(h.err(WAITID, &[p_all, 0, info, wexited]), Errno::ECHILD);
    assert_eq!(h.err(WAITID, &[p_all, 0, info, 0]), Errno::EINVAL, "no state asked for");
}

#[test]
fn process_groups_and_sessions_follow_linux() {
    let mut h = Harness::new();
    assert_eq!(h.call(GETPGID, &[0]), 1);
    assert_eq!(h.call(GETSID, &[0]), 1);
    assert_eq!(h.err(SETSID, &[]), Errno::EPERM, "the first process leads its session");
    assert_eq!(h.call(FORK, &[]), 2);
    assert_eq!(h.call(SETPGID, &[2, 2]), 0, "a parent moves its child to a new group");
    assert_eq!(h.call(GETPGID, &[2]), 2);
    assert_eq!(h.err(SETPGID, &[2, 77]), Errno::EPERM, "no such group in the session");
    assert_eq!(h.err(GETPGID, &[55]), Errno::ESRCH);
    // kill(0, sig) is the caller's group: the child's new group is not.
    let status = h.buf(4);
    assert_eq!(h.call(KILL, &[(-2i64) as u64, SIGTERM]), 0, "to group 2");
    assert_eq!(h.call(WAIT4, &[0u64.wrapping_sub(2), status, 0, 0]), 2, "wait for group 2");
    assert_eq!(status_at(&mut h, status), SIGTERM as i32);
}

#[test]
fn a_childs_fault_kills_only_the_child() {
    let mut h = Harness::new();
    let status = h.buf(4);
    assert_eq!(h.call(FORK, &[]), 2);
    h.call(WAIT4, &[ANY, status, 0, 0]);
    assert_eq!(pid(&h), 2);
    let info = crate::SigInfo::fault(linux_raw_sys::general::SIGSEGV, 1, 0x10);
    assert_eq!(h.k.fault(&mut h.m, &mut h.ctx, info, crate::TrapInfo::default()), Ok(()));
    assert!(h.k.has_return_work());
    assert_eq!(h.k.return_to_app(&mut h.m, &mut h.ctx, None), crate::Resume::App);
    assert_eq!((pid(&h), h.ctx.rax), (1, 2), "the parent's wait returns the child");
    assert_eq!(status_at(&mut h, status), 0x80 | 11, "killed by SIGSEGV, core");
    let log = alloc::string::String::from_utf8(h.m.log.clone()).unwrap();
    assert!(log.contains("process 2 was killed by SIGSEGV (fault at 0x10"), "{log}");
    h.k.check_invariants().unwrap();
}

#[test]
fn the_first_process_ending_ends_the_run_and_forks_stop_at_the_limit() {
    let mut h = Harness::with(|c| c.segments.truncate(1));
    h.m.premap(SCRATCH, 0x1000, PERM_READ | PERM_WRITE);
    let mut forked = 0;
    loop {
        let child = h.call(FORK, &[]);
        if child < 0 {
            assert_eq!(Errno(-child as i32), Errno::EAGAIN);
            break;
        }
        forked += 1;
        assert!(forked < MAX_PROCESSES, "fork never stops");
    }
    assert_eq!(forked, MAX_PROCESSES - 1, "the table holds the first process and its children");
    let log = alloc::string::String::from_utf8(h.m.log.clone()).unwrap();
    assert_eq!(log.matches("process limit").count(), 1, "reported once: {log}");
    assert_eq!(h.result(EXIT_GROUP, &[4]), SyscallResult::Exit(4));
}

#[test]
fn the_trace_names_the_process_once_there_are_two() {
    let mut h = Harness::with(|c| c.trace = true);
    h.call(GETPID, &[]);
    assert_eq!(h.call(FORK, &[]), 2);
    h.call(SCHED_YIELD, &[]);
    assert_eq!(pid(&h), 2, "the parent yields to its child");
    h.call(GETPID, &[]);
    h.call(EXIT_GROUP, &[0]);
    let status = h.buf(4);
    assert_eq!(h.call(WAIT4, &[ANY, status, 0, 0]), 2);
    let log = alloc::string::String::from_utf8(h.m.log.clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "getpid() = 1", "one process: no prefix");
    assert!(lines.contains(&"[pid 2] getpid() = 2"), "{log}");
    assert!(lines.iter().any(|line| line.starts_with("[pid 1] wait4(")), "{log}");
}

#[test]
fn execve_refuses_what_cannot_run_before_touching_the_process() {
    let mut h = Harness::new();
    let write_file = |h: &mut Harness, path: &str, bytes: &[u8]| {
        let fd = h.open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o755) as u64;
        let data = h.put(bytes);
        assert_eq!(h.call(WRITE, &[fd, data, bytes.len() as u64]), bytes.len() as i64);
        h.call(CLOSE, &[fd]);
    };
    write_file(&mut h, "/tmp/text", b"just text\n");
    write_file(&mut h, "/tmp/loop", b"#!/tmp/loop\n");
    write_file(&mut h, "/tmp/empty_shebang", b"#!   \n");
    let argv = h.put(&0u64.to_le_bytes());
    let exec = |h: &mut Harness, path: &str, argv: u64| {
        let path = h.cstr(path);
        h.err(EXECVE, &[path, argv, 0])
    };
    assert_eq!(exec(&mut h, "/nope", argv), Errno::ENOENT);
    assert_eq!(exec(&mut h, "/tmp", argv), Errno::EACCES);
    assert_eq!(exec(&mut h, "/data/hello.txt", argv), Errno::EACCES, "not executable");
    assert_eq!(exec(&mut h, "/tmp/text", argv), Errno::ENOEXEC);
    assert_eq!(exec(&mut h, "/tmp/loop", argv), Errno::ELOOP, "a script that is its own interpreter");
    assert_eq!(exec(&mut h, "/tmp/empty_shebang", argv), Errno::ENOEXEC);
    assert_eq!(exec(&mut h, "/tmp/text", KERNEL_ADDR), Errno::EFAULT, "argv in kernel memory");
    let flags_path = h.cstr("/tmp/text");
    assert_eq!(h.err(EXECVEAT, &[AT, flags_path, argv, 0, 0x8000_0000]), Errno::EINVAL);
    let log = alloc::string::String::from_utf8(h.m.log.clone()).unwrap();
    assert!(log.contains("secure-run kernel: execve /tmp/text: not an ELF file"), "{log}");
    // Nothing was touched: the process goes on with its memory and descriptors.
    assert_eq!(h.read(argv, 8), 0u64.to_le_bytes());
    assert_eq!(h.call(GETPID, &[]), 1);
}

#[test]
fn socket_pairs_keep_messages_and_refuse_what_they_are_not() {
    let mut h = Harness::new();
    let sv = h.buf(8);
    assert_eq!(h.err(SOCKETPAIR, &[2 /* AF_INET */, 1, 0, sv]), Errno::EAFNOSUPPORT);
    assert_eq!(h.err(SOCKETPAIR, &[1, 3 /* SOCK_RAW */, 0, sv]), Errno::EPROTONOSUPPORT);
    assert_eq!(h.err(SOCKETPAIR, &[1, 1, 0, KERNEL_ADDR]), Errno::EFAULT);
    assert_eq!(h.call(SOCKETPAIR, &[1, 5 /* SOCK_SEQPACKET */, 0, sv]), 0);
    let raw = h.read(sv, 8);
    let (a, b) = (u64::from(raw[0]), u64::from(raw[4]));
    let data = h.put(b"onetwo");
    assert_eq!(h.call(WRITE, &[a, data, 3]), 3);
    assert_eq!(h.call(WRITE, &[a, data + 3, 3]), 3);
    let buf = h.buf(16);
    assert_eq!(h.call(READ, &[b, buf, 16]), 3, "one message per read");
    assert_eq!(h.read(buf, 3), b"one");
    assert_eq!(h.call(READ, &[b, buf, 2]), 2, "cut to the buffer");
    assert_eq!(h.read(buf, 2), b"tw");
    assert_eq!(
        h.call(RECVFROM, &[b, buf, 16, u64::from(crate::syscall::socket::MSG_DONTWAIT), 0, 0]),
        -(Errno::EAGAIN.0 as i64)
    );
    let big = h.buf(70_000);
    assert_eq!(h.err(WRITE, &[a, big, 70_000]), Errno::EMSGSIZE);
    assert_eq!(h.err(SENDTO, &[0, data, 1, 0, 0, 0]), Errno::ENOTSOCK);
    assert_eq!(h.call(SHUTDOWN, &[a, 1 /* SHUT_WR */]), 0);
    assert_eq!(h.call(READ, &[b, buf, 16]), 0, "EOF after the peer's SHUT_WR");
    h.call(CLOSE, &[a]);
    h.call(CLOSE, &[b]);
    h.k.check_invariants().unwrap();
}
