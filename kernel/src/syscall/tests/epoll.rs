//! Syscall tests: epoll and eventfd.

use super::*;
use crate::syscall::epoll::*;

fn event(h: &mut Harness, events: u32, data: u64) -> u64 {
    let mut raw = events.to_le_bytes().to_vec();
    raw.extend_from_slice(&data.to_le_bytes());
    h.put(&raw)
}

fn pipe(h: &mut Harness) -> (u64, u64) {
    let fds = h.buf(8);
    assert_eq!(h.call(PIPE2, &[fds, 0]), 0);
    let bytes = h.read(fds, 8);
    (
        u64::from(u32::from_le_bytes(bytes[..4].try_into().unwrap())),
        u64::from(u32::from_le_bytes(bytes[4..].try_into().unwrap())),
    )
}

/// epoll_wait with a zero timeout: the (events, data) reported.
fn ready(h: &mut Harness, epfd: u64) -> Vec<(u32, u64)> {
    let out = h.buf(12 * 8);
    let n = h.call(EPOLL_WAIT, &[epfd, out, 8, 0]);
    assert!(n >= 0, "epoll_wait: {n}");
    let raw = h.read(out, 12 * n as usize);
    raw.chunks(12)
        .map(|e| (u32::from_le_bytes(e[..4].try_into().unwrap()), u64::from_le_bytes(e[4..].try_into().unwrap())))
        .collect()
}

#[test]
fn epoll_ctl_checks_its_arguments_as_linux_does() {
    let mut h = Harness::new();
    assert_eq!(h.err(EPOLL_CREATE, &[0]), Errno::EINVAL);
    assert_eq!(h.err(EPOLL_CREATE1, &[1]), Errno::EINVAL);
    let epfd = h.call(EPOLL_CREATE1, &[u64::from(EPOLL_CLOEXEC)]) as u64;
    let (r, _) = pipe(&mut h);
    let ev = event(&mut h, EPOLLIN, 7);
    let file = h.open("/work/w.txt", O_RDONLY, 0) as u64;
    assert_eq!(h.err(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_ADD), file, ev]), Errno::EPERM, "regular file");
    assert_eq!(h.err(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_ADD), epfd, ev]), Errno::EINVAL, "itself");
    assert_eq!(h.err(EPOLL_CTL, &[r, u64::from(EPOLL_CTL_ADD), r, ev]), Errno::EINVAL, "not an epoll fd");
    assert_eq!(h.err(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_ADD), 99, ev]), Errno::EBADF);
    assert_eq!(h.err(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_MOD), r, ev]), Errno::ENOENT);
    assert_eq!(h.call(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_ADD), r, ev]), 0);
    assert_eq!(h.err(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_ADD), r, ev]), Errno::EEXIST);
    assert_eq!(h.err(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_ADD), r, KERNEL_ADDR]), Errno::EFAULT);
    let bad = event(&mut h, 1 << 20, 0);
    assert_eq!(h.err(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_MOD), r, bad]), Errno::EINVAL);
    assert_eq!(h.call(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_DEL), r, 0]), 0);
    assert_eq!(h.err(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_DEL), r, 0]), Errno::ENOENT);
    let out = h.buf(12);
    assert_eq!(h.err(EPOLL_WAIT, &[epfd, out, 0, 0]), Errno::EINVAL);
    assert_eq!(h.err(EPOLL_WAIT, &[epfd, KERNEL_ADDR, 1, 0]), Errno::EFAULT);
    assert_eq!(h.call(EPOLL_WAIT, &[epfd, out, 1, 0]), 0, "nothing watched, no timeout");
    assert_eq!(h.call(CLOSE, &[epfd]), 0, "the instance goes with its descriptor");
}

#[test]
fn level_edge_and_oneshot_interest() {
    let mut h = Harness::new();
    let epfd = h.call(EPOLL_CREATE1, &[0]) as u64;
    let (r, w) = pipe(&mut h);
    let level = event(&mut h, EPOLLIN, 1);
    h.call(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_ADD), r, level]);
    let edge = event(&mut h, EPOLLOUT | EPOLLET, 2);
    h.call(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_ADD), w, edge]);
    assert_eq!(ready(&mut h, epfd), [(EPOLLOUT, 2)], "writable once, edge-triggered");
    assert_eq!(ready(&mut h, epfd), [], "not again until it changes");
    let msg = h.put(b"x");
    h.call(WRITE, &[w, msg, 1]);
    assert_eq!(ready(&mut h, epfd), [(EPOLLIN, 1)]);
    assert_eq!(ready(&mut h, epfd), [(EPOLLIN, 1)], "level-triggered: while data is there");
    let oneshot = event(&mut h, EPOLLIN | EPOLLONESHOT, 3);
    h.call(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_MOD), r, oneshot]);
    assert_eq!(ready(&mut h, epfd), [(EPOLLIN, 3)]);
    assert_eq!(ready(&mut h, epfd), [], "one-shot: silent until EPOLL_CTL_MOD");
    h.call(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_MOD), r, oneshot]);
    assert_eq!(ready(&mut h, epfd), [(EPOLLIN, 3)]);
    // A closed descriptor drops out of the set; the write end, now without readers, has a new edge.
    h.call(CLOSE, &[r]);
    assert_eq!(ready(&mut h, epfd), [(EPOLLOUT | EPOLLERR, 2)]);
    assert_eq!(ready(&mut h, epfd), []);
}

#[test]
fn epoll_wait_blocks_until_another_thread_makes_a_descriptor_ready() {
    let mut h = Harness::new();
    let epfd = h.call(EPOLL_CREATE1, &[0]) as u64;
    let (r, w) = pipe(&mut h);
    let ev = event(&mut h, EPOLLIN, 42);
    h.call(EPOLL_CTL, &[epfd, u64::from(EPOLL_CTL_ADD), r, ev]);
    let stack = h.buf(256) + 256;
    let flags = u64::from(
        crate::syscall::thread::CLONE_VM
            | crate::syscall::thread::CLONE_FS
            | crate::syscall::thread::CLONE_FILES
            | crate::syscall::thread::CLONE_SIGHAND
            | crate::syscall::thread::CLONE_THREAD,
    );
    assert_eq!(h.call(CLONE, &[flags, stack, 0, 0, 0]), 2);
    let out = h.buf(12);
    h.call(EPOLL_WAIT, &[epfd, out, 1, u64::MAX]); // -1: no timeout; tid 1 waits
    assert_eq!(h.k.thread().tid, 2);
    let msg = h.put(b"!");
    h.call(WRITE, &[w, msg, 1]);
    h.call(SCHED_YIELD, &[]);
    assert_eq!((h.k.thread().tid, h.ctx.rax), (1, 1), "one event");
    assert_eq!(h.read(out, 12)[4], 42);
    // With a timeout and nothing ready, it times out with 0.
    let one = h.buf(1);
    h.call(READ, &[r, one, 1]);
    assert_eq!(h.call(EPOLL_PWAIT, &[epfd, out, 1, 5, 0, 8]), 0);
}

#[test]
fn eventfd_counts_and_blocks_as_linux_does() {
    let mut h = Harness::new();
    assert_eq!(h.err(EVENTFD2, &[0, 0x4]), Errno::EINVAL);
    let efd = h.call(EVENTFD2, &[3, u64::from(O_NONBLOCK)]) as u64;
    let buf = h.buf(8);
    assert_eq!(h.err(READ, &[efd, buf, 4]), Errno::EINVAL, "shorter than 8 bytes");
    assert_eq!(h.call(READ, &[efd, buf, 8]), 8);
    assert_eq!(h.u64_at(buf), 3);
    assert_eq!(h.err(READ, &[efd, buf, 8]), Errno::EAGAIN);
    let two = h.put(&2u64.to_le_bytes());
    assert_eq!(h.call(WRITE, &[efd, two, 8]), 8);
    assert_eq!(h.call(WRITE, &[efd, two, 8]), 8);
    let max = h.put(&u64::MAX.to_le_bytes());
    assert_eq!(h.err(WRITE, &[efd, max, 8]), Errno::EINVAL);
    let big = h.put(&(u64::MAX - 2).to_le_bytes());
    assert_eq!(h.err(WRITE, &[efd, big, 8]), Errno::EAGAIN, "would overflow");
    assert_eq!(h.call(READ, &[efd, buf, 8]), 8);
    assert_eq!(h.u64_at(buf), 4);
    // A semaphore eventfd hands out one at a time; poll sees it readable while the count is nonzero.
    let sem = h.call(EVENTFD2, &[2, u64::from(EFD_SEMAPHORE)]) as u64;
    let pfd = h.put(&[(sem as u32).to_le_bytes(), [1, 0, 0, 0]].concat());
    assert_eq!(h.call(POLL, &[pfd, 1, 0]), 1);
    for _ in 0..2 {
        assert_eq!(h.call(READ, &[sem, buf, 8]), 8);
        assert_eq!(h.u64_at(buf), 1);
    }
    assert_eq!(h.call(POLL, &[pfd, 1, 0]), 0);
    // Blocking, with no other thread to write: a deadlock, not a hang.
    assert_eq!(h.result(READ, &[sem, buf, 8]), SyscallResult::Killed(9));
}
