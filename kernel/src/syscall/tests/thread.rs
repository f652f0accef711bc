//! Syscall tests: threads (clone, exit, the scheduler's switches and deadlock report) and futex.

use super::*;
use crate::syscall::thread::*;

const THREAD: u64 = (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM) as u64;
const PRIVATE: u64 = FUTEX_PRIVATE_FLAG as u64;

/// Starts a thread on a fresh stack; returns its tid (the parent keeps running).
fn spawn(h: &mut Harness, extra: u64, ptid: u64, ctid: u64, tls: u64) -> i64 {
    let stack = h.buf(256) + 256;
    let tid = h.call(CLONE, &[THREAD | extra, stack, ptid, ctid, tls]);
    assert!(tid > 1, "clone: {tid}");
    tid
}

fn tid(h: &Harness) -> i32 {
    h.k.thread().tid
}

fn word(h: &mut Harness, value: u32) -> u64 {
    h.put(&value.to_le_bytes())
}

fn read_u32(h: &mut Harness, addr: u64) -> u32 {
    u32::from_le_bytes(h.read(addr, 4).try_into().unwrap())
}

#[test]
fn clone_starts_a_thread_from_the_parents_context_on_its_own_stack_and_tls() {
    let mut h = Harness::new();
    h.ctx.rbx = 0x1234;
    let (ptid, ctid) = (word(&mut h, 0), word(&mut h, 0));
    let stack = h.buf(256) + 256;
    let flags = THREAD | (CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID) as u64;
    let child = h.call(CLONE, &[flags, stack, ptid, ctid, 0x7000_1000]);
    assert_eq!(child, 2);
    assert_eq!((tid(&h), h.ctx.rax), (1, 2), "the parent goes on first, with the child's tid");
    assert_eq!((read_u32(&mut h, ptid), read_u32(&mut h, ctid)), (2, 2));
    let parent_rip = h.ctx.rip;
    // The parent waits on a futex: the child runs, from the parent's registers, with RAX 0.
    let futex = word(&mut h, 7);
    assert_eq!(h.call(FUTEX, &[futex, u64::from(FUTEX_WAIT) | PRIVATE, 7, 0]), 0);
    assert_eq!(tid(&h), 2);
    assert_eq!((h.ctx.rax, h.ctx.rsp, h.ctx.rip, h.ctx.rbx), (0, stack, parent_rip, 0x1234));
    assert_eq!(h.m.fs_base, 0x7000_1000);
    assert_eq!(h.call(GETTID, &[]), 2);
    assert_eq!(h.call(GETPID, &[]), 1);
    // The child wakes the parent and exits: the parent resumes with its futex wait's 0, and the child's
    // tid word is cleared.
    assert_eq!(h.call(FUTEX, &[futex, u64::from(FUTEX_WAKE) | PRIVATE, 1]), 1);
    assert_eq!(tid(&h), 2, "a wake does not switch by itself");
    h.call(EXIT, &[0]);
    assert_eq!((tid(&h), h.ctx.rip, h.ctx.rax), (1, parent_rip, 0));
    assert_eq!(h.m.fs_base, 0, "the parent's own FS base is back");
    assert_eq!(read_u32(&mut h, ctid), 0);
    assert_eq!(h.k.threads.len(), 1);
}

#[test]
fn clone_refuses_what_is_not_a_thread() {
    let mut h = Harness::new();
    assert_eq!(h.err(CLONE, &[u64::from(CLONE_VM), 0, 0, 0, 0]), Errno::ENOSYS, "shared memory, no thread");
    let files = u64::from(CLONE_FILES) | u64::from(linux_raw_sys::general::SIGCHLD);
    assert_eq!(h.err(CLONE, &[files, 0, 0, 0, 0]), Errno::EINVAL, "a fork sharing the fd table");
    let no_sighand = u64::from(CLONE_VM | CLONE_THREAD);
    assert_eq!(h.err(CLONE, &[no_sighand, 0, 0, 0, 0]), Errno::EINVAL);
    let vfork = THREAD | u64::from(linux_raw_sys::general::CLONE_VFORK);
    assert_eq!(h.err(CLONE, &[vfork, 0, 0, 0, 0]), Errno::EINVAL);
    let settid = THREAD | u64::from(CLONE_PARENT_SETTID);
    assert_eq!(h.err(CLONE, &[settid, 0, KERNEL_ADDR, 0, 0]), Errno::EFAULT);
    let settls = THREAD | u64::from(CLONE_SETTLS);
    assert_eq!(h.err(CLONE, &[settls, 0, 0, 0, 1 << 63]), Errno::EPERM);
    assert_eq!(h.k.threads.len(), 1, "no refused call made a thread");
    // clone3: too small, unknown nonzero tail, stack without size.
    let args = h.buf(128);
    assert_eq!(h.err(CLONE3, &[args, 32]), Errno::EINVAL);
    h.m.poke(args + 100, &[1]).unwrap();
    assert_eq!(h.err(CLONE3, &[args, 128]), Errno::E2BIG);
    h.m.poke(args + 100, &[0]).unwrap();
    let mut fields = [0u64; 11];
    fields[0] = THREAD;
    fields[5] = SCRATCH;
    let raw: Vec<u8> = fields.iter().flat_map(|f| f.to_le_bytes()).collect();
    h.m.poke(args, &raw).unwrap();
    assert_eq!(h.err(CLONE3, &[args, 88]), Errno::EINVAL);
    fields[6] = 0x100;
    let raw: Vec<u8> = fields.iter().flat_map(|f| f.to_le_bytes()).collect();
    h.m.poke(args, &raw).unwrap();
    assert_eq!(h.call(CLONE3, &[args, 88]), 2);
}

#[test]
fn every_thread_blocked_is_a_deadlock_naming_each_wait() {
    let mut h = Harness::new();
    spawn(&mut h, 0, 0, 0, 0);
    let futex = word(&mut h, 0);
    h.call(FUTEX, &[futex, u64::from(FUTEX_WAIT), 0, 0]);
    assert_eq!(tid(&h), 2);
    let fds = h.buf(8);
    h.call(PIPE2, &[fds, 0]);
    let read_end = u64::from(read_u32(&mut h, fds));
    let buf = h.buf(8);
    assert_eq!(h.result(READ, &[read_end, buf, 8]), SyscallResult::Killed(9));
    let log = alloc::string::String::from_utf8(h.m.log.clone()).unwrap();
    assert!(log.contains("every thread waits"), "{log}");
    assert!(log.contains("tid 1: futex wait; tid 2: read from an empty pipe"), "{log}");
}

#[test]
fn a_pipe_read_in_one_thread_ends_when_another_writes() {
    let mut h = Harness::new();
    let fds = h.buf(8);
    h.call(PIPE2, &[fds, 0]);
    let (read_end, write_end) = (u64::from(read_u32(&mut h, fds)), u64::from(read_u32(&mut h, fds + 4)));
    spawn(&mut h, 0, 0, 0, 0);
    let buf = h.buf(8);
    h.call(READ, &[read_end, buf, 8]);
    assert_eq!(tid(&h), 2, "the reader waits, the writer runs");
    let msg = h.put(b"hi");
    assert_eq!(h.call(WRITE, &[write_end, msg, 2]), 2);
    // The write ended the read's wait: the reader runs next (a wake does not preempt the writer), with
    // the two bytes.
    assert_eq!(tid(&h), 2);
    h.call(SCHED_YIELD, &[]);
    assert_eq!((tid(&h), h.ctx.rax), (1, 2));
    assert_eq!(h.read(buf, 2), b"hi");
}

#[test]
fn the_last_thread_to_exit_ends_the_process_with_the_leaders_status() {
    let mut h = Harness::new();
    spawn(&mut h, 0, 0, 0, 0);
    assert_eq!(h.result(EXIT, &[3]), SyscallResult::Return(0));
    assert_eq!(tid(&h), 2);
    assert_eq!(h.result(EXIT, &[9]), SyscallResult::Exit(3));
    let mut h = Harness::new();
    spawn(&mut h, 0, 0, 0, 0);
    assert_eq!(h.result(EXIT_GROUP, &[5]), SyscallResult::Exit(5), "exit_group ends every thread");
}

#[test]
fn sched_yield_runs_the_next_thread_round_robin() {
    let mut h = Harness::new();
    spawn(&mut h, 0, 0, 0, 0);
    spawn(&mut h, 0, 0, 0, 0);
    let order: Vec<i32> = (0..6)
        .map(|_| {
            h.call(SCHED_YIELD, &[]);
            tid(&h)
        })
        .collect();
    assert_eq!(order, [2, 3, 1, 2, 3, 1]);
}

#[test]
fn a_timer_tick_after_the_slice_switches_and_a_lone_thread_is_left_alone() {
    let mut h = Harness::new();
    assert!(!h.k.timers_armed(), "one thread and no timer: no interrupt");
    spawn(&mut h, 0, 0, 0, 0);
    assert!(h.k.timers_armed());
    let slice_end = h.k.next_timer_deadline(&mut h.m).expect("a slice deadline while another can run");
    h.m.idle_until(slice_end);
    h.k.timer_interrupt(&mut h.m);
    assert!(h.k.has_return_work());
    assert_eq!(h.k.return_to_app(&mut h.m, &mut h.ctx, None), Resume::App);
    assert_eq!(tid(&h), 2);
}

#[test]
fn tgkill_reaches_its_thread_and_ends_its_wait() {
    let mut h = Harness::new();
    let handler = TEXT + 0x200;
    let act =
        h.put(&[handler.to_le_bytes(), 0x0400_0000u64.to_le_bytes(), (TEXT + 0x300).to_le_bytes(), [0; 8]].concat());
    h.call(RT_SIGACTION, &[u64::from(crate::signal::SIGUSR1), act, 0, 8]);
    spawn(&mut h, 0, 0, 0, 0);
    let futex = word(&mut h, 0);
    h.call(FUTEX, &[futex, u64::from(FUTEX_WAIT), 0, 0]); // tid 1 waits
    assert_eq!(tid(&h), 2);
    assert_eq!(h.call(TGKILL, &[1, 1, u64::from(crate::signal::SIGUSR1)]), 0);
    // Thread 2 goes on until it waits too; then thread 1 runs its handler (the wait ended by the signal).
    let futex2 = word(&mut h, 0);
    h.call(FUTEX, &[futex2, u64::from(FUTEX_WAIT), 0, 0]);
    assert_eq!((tid(&h), h.ctx.rip), (1, handler));
    assert_eq!(h.err(TGKILL, &[1, 99, 10]), Errno::ESRCH);
    assert_eq!(h.err(TGKILL, &[2, 2, 10]), Errno::ESRCH);
}

#[test]
fn futex_requeue_cmp_requeue_and_bitsets() {
    let mut h = Harness::new();
    let (a, b) = (word(&mut h, 0), word(&mut h, 0));
    // Three waiters on `a`: tids 1, 2, 3 (each spawned thread waits once it runs).
    spawn(&mut h, 0, 0, 0, 0);
    spawn(&mut h, 0, 0, 0, 0);
    spawn(&mut h, 0, 0, 0, 0);
    for expected_next in [2, 3, 4] {
        h.call(FUTEX, &[a, u64::from(FUTEX_WAIT_BITSET), 0, 0, 0, if expected_next == 3 { 2 } else { 1 }]);
        assert_eq!(tid(&h), expected_next);
    }
    assert_eq!(h.err(FUTEX, &[a, u64::from(FUTEX_CMP_REQUEUE), 0, 1, b, 5]), Errno::EAGAIN, "value differs");
    // Wake none, move one to `b`, then wake with a bitset that only the second waiter has.
    assert_eq!(h.call(FUTEX, &[a, u64::from(FUTEX_CMP_REQUEUE), 0, 1, b, 0]), 1);
    assert_eq!(h.err(FUTEX, &[a, u64::from(FUTEX_WAKE_BITSET), 1, 0, 0, 0]), Errno::EINVAL, "empty bitset");
    assert_eq!(h.call(FUTEX, &[a, u64::from(FUTEX_WAKE_BITSET), 9, 0, 0, 2]), 1, "only tid 2 has bit 1");
    assert_eq!(h.call(FUTEX, &[a, u64::from(FUTEX_WAKE), 9]), 1, "tid 3; tid 1 was moved to b");
    assert_eq!(h.call(FUTEX, &[b, u64::from(FUTEX_WAKE), 9]), 1);
    assert_eq!(h.err(FUTEX, &[a, 99, 0]), Errno::ENOSYS);
    assert_eq!(h.err(FUTEX, &[a, u64::from(FUTEX_WAKE | FUTEX_CLOCK_REALTIME), 1]), Errno::ENOSYS);
}

#[test]
fn futex_wake_op_changes_the_word_and_wakes_on_the_comparison() {
    let mut h = Harness::new();
    let (a, b) = (word(&mut h, 0), word(&mut h, 5));
    spawn(&mut h, 0, 0, 0, 0);
    h.call(FUTEX, &[b, u64::from(FUTEX_WAIT), 5, 0]); // tid 1 waits on b
                                                      // ADD 3 to *b if... wake one on b when old value (5) > 4.
    let op = (FUTEX_OP_ADD << 28) | (FUTEX_OP_CMP_GT << 24) | (3 << 12) | 4;
    assert_eq!(h.call(FUTEX, &[a, u64::from(FUTEX_WAKE_OP), 1, 1, b, u64::from(op)]), 1);
    assert_eq!(read_u32(&mut h, b), 8);
    // OPARG_SHIFT: OR in 1 << 4; comparison EQ 0 fails, nobody woken.
    let op = ((FUTEX_OP_OR | FUTEX_OP_OPARG_SHIFT) << 28) | (FUTEX_OP_CMP_EQ << 24) | (4 << 12);
    assert_eq!(h.call(FUTEX, &[a, u64::from(FUTEX_WAKE_OP), 1, 1, b, u64::from(op)]), 0);
    assert_eq!(read_u32(&mut h, b), 8 | 16);
    assert_eq!(h.err(FUTEX, &[a, u64::from(FUTEX_WAKE_OP), 1, 1, b, 7 << 28]), Errno::ENOSYS);
}

#[test]
fn pi_futexes_hand_the_lock_to_the_waiter() {
    let mut h = Harness::new();
    let lock = word(&mut h, 0);
    assert_eq!(h.call(FUTEX, &[lock, u64::from(FUTEX_TRYLOCK_PI)]), 0);
    assert_eq!(read_u32(&mut h, lock), 1);
    assert_eq!(h.err(FUTEX, &[lock, u64::from(FUTEX_LOCK_PI)]), Errno::EDEADLK);
    spawn(&mut h, 0, 0, 0, 0);
    h.call(SCHED_YIELD, &[]);
    assert_eq!(tid(&h), 2);
    assert_eq!(h.err(FUTEX, &[lock, u64::from(FUTEX_TRYLOCK_PI)]), Errno::EAGAIN);
    assert_eq!(h.err(FUTEX, &[lock, u64::from(FUTEX_UNLOCK_PI)]), Errno::EPERM, "not the owner");
    h.call(FUTEX, &[lock, u64::from(FUTEX_LOCK_PI)]); // waits
    assert_eq!(tid(&h), 1);
    assert_eq!(read_u32(&mut h, lock), 1 | FUTEX_WAITERS);
    assert_eq!(h.call(FUTEX, &[lock, u64::from(FUTEX_UNLOCK_PI)]), 0);
    assert_eq!(read_u32(&mut h, lock), 2, "handed to tid 2, no waiters left");
    h.call(SCHED_YIELD, &[]);
    assert_eq!((tid(&h), h.ctx.rax), (2, 0), "tid 2's FUTEX_LOCK_PI returned 0");
}

#[test]
fn a_dead_threads_robust_futexes_get_owner_died_and_wake_a_waiter() {
    let mut h = Harness::new();
    spawn(&mut h, 0, 0, 0, 0);
    h.call(SCHED_YIELD, &[]);
    assert_eq!(tid(&h), 2);
    // A robust mutex held by tid 2: its list entry, whose futex word is 8 bytes past the entry.
    let head = h.buf(24);
    let entry = h.buf(16);
    h.m.poke(entry, &head.to_le_bytes()).unwrap(); // entry.next = head
    h.m.poke(entry + 8, &(2u32 | FUTEX_WAITERS).to_le_bytes()).unwrap();
    h.m.poke(head, &[entry.to_le_bytes(), 8i64.to_le_bytes(), 0u64.to_le_bytes()].concat()).unwrap();
    assert_eq!(h.call(SET_ROBUST_LIST, &[head, 24]), 0);
    assert_eq!(h.err(SET_ROBUST_LIST, &[head, 16]), Errno::EINVAL);
    let (got_head, got_len) = (h.buf(8), h.buf(8));
    assert_eq!(h.call(GET_ROBUST_LIST, &[0, got_head, got_len]), 0);
    assert_eq!((h.u64_at(got_head), h.u64_at(got_len)), (head, 24));
    h.call(SCHED_YIELD, &[]);
    h.call(FUTEX, &[entry + 8, u64::from(FUTEX_WAIT), u64::from(2u32 | FUTEX_WAITERS), 0]); // tid 1 waits
    assert_eq!(tid(&h), 2);
    h.call(EXIT, &[0]);
    assert_eq!((tid(&h), h.ctx.rax), (1, 0), "the waiter was woken");
    assert_eq!(read_u32(&mut h, entry + 8), FUTEX_OWNER_DIED | FUTEX_WAITERS);
}

#[test]
fn trace_lines_name_the_thread_once_there_are_two() {
    let mut h = Harness::with(|c| c.trace = true);
    h.call(GETTID, &[]);
    spawn(&mut h, 0, 0, 0, 0);
    h.call(GETTID, &[]);
    h.call(SCHED_YIELD, &[]);
    h.call(EXIT, &[0]);
    let log = alloc::string::String::from_utf8(h.m.log.clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "gettid() = 1");
    assert!(lines[1].starts_with("[tid 1] clone(") && lines[1].ends_with(") = 2"), "{log}");
    assert_eq!(&lines[2..], ["[tid 1] gettid() = 1", "[tid 1] sched_yield() = 0", "[tid 2] exit(0) = ? (thread exit)"]);
}
