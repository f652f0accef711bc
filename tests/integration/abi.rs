//! The Linux ABI: C guests built three ways (glibc static, glibc static-PIE, musl static) and a
//! Rust std guest, each run under secure-run and natively, compared byte for byte (stdout and status).
//! The guests check themselves where a value cannot be printed (addresses, times) and print "ok" or
//! "FAILED"; `native::guests_c_build_and_run_natively` proves they pass on the host.
//! The modes these tests run in are set in one place: `abi_test!` in common/mod.rs.

use std::path::Path;

use crate::common::fixtures::pseudo_random_bytes;
use crate::common::*;

/// One run of a C guest: what it gets and what it must end with.
pub struct CCase {
    /// The test (module) name.
    pub key: &'static str,
    /// The guest: `tests/guests/c/<name>.c`.
    pub name: &'static str,
    /// Arguments; `/data` stands for the mounted [`data_dir`] and is replaced by its host path natively.
    pub args: &'static [&'static str],
    /// The environment (`--env`), sorted by key: the native run's environment is sorted too.
    pub env: &'static [&'static str],
    pub stdin: Option<Vec<u8>>,
    pub status: i32,
    /// Whether all C variants print the same thing: not so when argv[0] (the binary's path) is printed,
    /// or when stdio buffers are lost (glibc and musl buffer differently).
    pub same_across_variants: bool,
    /// Lines the native run must contain (checked natively; the VM run must match the native run).
    pub native_lines: &'static [&'static str],
}

impl CCase {
    const fn new(key: &'static str, name: &'static str) -> Self {
        Self { key, name, args: &[], env: &[], stdin: None, status: 0, same_across_variants: true, native_lines: &[] }
    }
    fn args(self, args: &'static [&'static str]) -> Self {
        Self { args, ..self }
    }
    fn env(self, env: &'static [&'static str]) -> Self {
        Self { env, ..self }
    }
    fn status(self, status: i32) -> Self {
        Self { status, ..self }
    }
    fn variant_specific(self) -> Self {
        Self { same_across_variants: false, ..self }
    }
    fn lines(self, native_lines: &'static [&'static str]) -> Self {
        Self { native_lines, ..self }
    }
    fn stdin(self, stdin: Vec<u8>) -> Self {
        Self { stdin: Some(stdin), ..self }
    }

    /// Runs `app` natively with `data` standing in for `/data`; `/data` is put back into its output.
    pub fn run_native(&self, app: &Path, data: &Path) -> RunResult {
        let host = data.to_str().unwrap();
        let args: Vec<String> = self.args.iter().map(|arg| arg.replace(GUEST_DATA, host)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut result = run_native(app, &args, self.env, self.stdin.as_deref());
        result.stdout = result.stdout_text().replace(host, GUEST_DATA).into_bytes();
        result
    }

    /// Runs `app` under secure-run with `data` mounted at `/data`.
    pub fn run_in_vm(&self, mode: Mode, app: &Path, data: &Path) -> RunResult {
        let mut secure_run = SecureRun::new(mode).env(self.env);
        // Mount only for the cases that use it, so the others do not depend on --mount.
        if self.args.iter().any(|arg| arg.contains(GUEST_DATA)) {
            secure_run = secure_run.mount(data, GUEST_DATA, false);
        }
        if let Some(stdin) = &self.stdin {
            secure_run = secure_run.stdin(stdin);
        }
        secure_run.run(app, self.args)
    }
}

/// Every C guest run, by test name.
pub fn c_cases() -> Vec<CCase> {
    let mut stdin = pseudo_random_bytes(200_000, 7);
    stdin.extend_from_slice(b"\nthe end\n");
    vec![
        CCase::new("printf", "printf").lines(&["percent: 100%"]),
        CCase::new("args", "args")
            .args(&["one", "two words", "", "\u{fc}n\u{ef}c\u{f6}d\u{e9}", "--flag=x"])
            .env(&["EMPTY=", "FOO=bar", "PATH=/bin:/usr/bin"])
            .variant_specific()
            .lines(&["argc=6", "argv[3]=[]", "envp[1]=[FOO=bar]", "envc=3"]),
        CCase::new("empty_environment", "args").variant_specific().lines(&["argc=1", "envc=0"]),
        CCase::new("auxv", "auxv").args(&["an argument"]).lines(&[
            "AT_PAGESZ=4096",
            "AT_PHDR ok",
            "AT_EXECFN equals argv[0] ok",
        ]),
        CCase::new("stack_align", "stack_align").lines(&["aligned in main ok", "aligned in nested calls ok"]),
        CCase::new("malloc_stress", "malloc_stress").lines(&["contents preserved ok"]),
        CCase::new("prot_none_keeps_contents", "prot_none").lines(&["contents kept ok"]),
        CCase::new("prot_none_page_faults", "prot_none")
            .args(&["touch"])
            .status(139)
            .lines(&["contents kept ok", "reading an inaccessible page"]),
        CCase::new("tmp_files", "tmp_files").lines(&["/tmp writable ok"]),
        CCase::new("shared_file_mappings", "shared_map").lines(&[
            "store visible through a second mapping ok",
            "store visible to read ok",
            "write visible through mappings ok",
            "store visible after msync ok",
            "stores kept after munmap ok",
            "getresuid/getresgid ok",
        ]),
        CCase::new("read_mounted_dir", "read_dir")
            .args(&["/data"])
            .lines(&["sub/deeper/leaf.txt: file size=5 read=5 fnv=54e1520a497512ed first=[leaf]"]),
        CCase::new("write_mounted_dir", "write_dir")
            .args(&["/data"])
            .lines(&["create created.txt: OK", "unlink input.txt: OK"]),
        CCase::new("clocks", "clocks").lines(&["slept ok"]),
        CCase::new("random", "random").lines(&["getrandom ok"]),
        CCase::new("uname", "uname").lines(&["Linux x86_64"]),
        CCase::new("errno", "errno").lines(&["open(\"/nonexistent/file\", O_RDONLY): ENOENT"]),
        CCase::new("tls", "tls").lines(&["counter=42", "tdata text=tls-initial"]),
        CCase::new("setjmp", "setjmp").lines(&["setjmp returned 1 (visit 3)", "sigsetjmp returned 3"]),
        CCase::new("stdin", "stdin").stdin(stdin).lines(&["read EOF"]),
        CCase::new("empty_stdin", "stdin").lines(&["length=0 lines=0 fnv=cbf29ce484222325"]),
        CCase::new("return_0_from_main", "exit_codes").lines(&["atexit handler ran"]),
        CCase::new("return_7_from_main", "exit_codes").args(&["return", "7"]).status(7),
        CCase::new("exit_3_from_nested_function", "exit_codes")
            .args(&["exit", "3"])
            .status(3)
            .lines(&["atexit handler ran"]),
        CCase::new("underscore_exit_4", "exit_codes").args(&["_exit", "4"]).status(4).variant_specific(),
        CCase::new("abort_is_sigabrt", "exit_codes").args(&["abort"]).status(134).variant_specific(),
        CCase::new("signal_segv_fix_and_return", "signals")
            .args(&["segv_fix"])
            .lines(&["write retried after the handler fixed the protection ok", "SEGV_ACCERR at the address ok"]),
        CCase::new("signal_null_read_siglongjmp", "signals")
            .args(&["null_longjmp"])
            .lines(&["NULL read: SEGV_MAPERR at 0 ok"]),
        CCase::new("signal_fpe_division_by_zero", "signals")
            .args(&["fpe"])
            .lines(&["division by zero: SIGFPE FPE_INTDIV ok"]),
        CCase::new("signal_ill_ud2", "signals").args(&["ill"]).lines(&["ud2: SIGILL ILL_ILLOPN ok"]),
        CCase::new("signal_faults_on_the_alternate_stack", "signals")
            .args(&["altstack_faults"])
            .lines(&["fault handled on the alternate stack ok"]),
        CCase::new("signal_stack_overflow_on_the_alternate_stack", "signals")
            .args(&["recursion"])
            .lines(&["stack overflow caught on the alternate stack ok"]),
        CCase::new("signal_ucontext_rip", "signals")
            .args(&["ucontext"])
            .lines(&["ucontext RIP is the faulting instruction ok", "execution went on after the skipped store ok"]),
        CCase::new("signal_raise_and_kill_self", "signals")
            .args(&["raise_kill"])
            .lines(&["raise: delivered, SI_TKILL ok", "kill to self: delivered, SI_USER ok"]),
        CCase::new("signal_blocked_pending_delivered", "signals")
            .args(&["blocked_pending"])
            .lines(&["blocked: pending, not delivered ok", "unblocked: delivered once (standard signals merge) ok"]),
        CCase::new("signal_sigqueue_value", "signals").args(&["sigqueue"]).lines(&["sigqueue: value and SI_QUEUE ok"]),
        CCase::new("signal_realtime_queue_order", "signals")
            .args(&["rt_order"])
            .lines(&["real-time order: 21 22 23 31 32 33"]),
        CCase::new("signal_setitimer_sigsuspend", "signals")
            .args(&["itimer_sigsuspend"])
            .lines(&["setitimer: three SIGALRMs through sigsuspend ok"]),
        CCase::new("signal_fast_interval_timer_lets_the_app_run", "signals")
            .args(&["fast_itimer"])
            .lines(&["a 50 us interval timer: handlers ran and the app went on ok"]),
        CCase::new("signal_alarm_interrupts_nanosleep", "signals")
            .args(&["alarm_nanosleep"])
            .lines(&["alarm interrupts nanosleep: EINTR ok", "time left reported ok"]),
        CCase::new("signal_sa_restart_pipe_read", "signals")
            .args(&["restart_read"])
            .lines(&["SA_RESTART: the read restarted and got the handler's byte ok"]),
        CCase::new("signal_sigpipe_ignored_epipe", "signals")
            .args(&["sigpipe_ignored"])
            .lines(&["SIGPIPE ignored: EPIPE ok"]),
        CCase::new("signal_resethand", "signals")
            .args(&["resethand"])
            .status(140)
            .lines(&["SA_RESETHAND: handler ran once, then SIG_DFL ok"]),
        CCase::new("signal_abort_status", "signals").args(&["abort"]).status(134),
        CCase::new("signal_sigterm_status", "signals").args(&["sigterm"]).status(143),
        CCase::new("output_4mib_in_4k_writes", "output").args(&["bulk", "4194304", "4096"]),
        CCase::new("output_4mib_through_putchar", "output").args(&["bulk", "4194304", "1"]),
        CCase::new("threads_mutex", "threads").args(&["mutex"]).lines(&["total=800000", "mutex total ok"]),
        CCase::new("threads_join", "threads").args(&["join"]).lines(&["sum of joined values=61", "join values ok"]),
        CCase::new("threads_tls", "threads")
            .args(&["tls"])
            .lines(&["worker tls values: 100 101 102 103", "tls and tids ok"]),
        CCase::new("threads_condvar", "threads")
            .args(&["condvar"])
            .lines(&["items=2000 sum=3001001000 squares=5003003667667000", "condvar producer/consumer ok"]),
        CCase::new("threads_once", "threads").args(&["once"]).lines(&["init ran 1 time(s)", "pthread_once ok"]),
        CCase::new("threads_detached", "threads")
            .args(&["detached"])
            .lines(&["detached threads=8 sum=10200180000 semaphore=0", "detached with semaphores ok"]),
        CCase::new("threads_recursive", "threads").args(&["recursive"]).lines(&[
            "trylock from another thread while held 4 times: EBUSY",
            "trylock from another thread while held once: EBUSY",
            "contender got the mutex after the last unlock: yes",
            "recursive mutex ok",
        ]),
        CCase::new("threads_exit_from_worker", "threads")
            .args(&["exit_from_worker"])
            .status(5)
            .lines(&["main joins the worker", "worker calls exit(5)"]),
        CCase::new("threads_spin", "threads").args(&["spin"]).lines(&["work hash=0a6c5f30961561a5", "preemption ok"]),
        CCase::new("threads_pi_mutex", "threads").args(&["pi_mutex"]).lines(&[
            "setprotocol PTHREAD_PRIO_INHERIT: OK",
            "pthread_mutex_init with PTHREAD_PRIO_INHERIT: OK",
            "total=60000",
            "pi mutex ok",
        ]),
        CCase::new("threads_timedwait", "threads").args(&["timedwait"]).lines(&[
            "cond_timedwait CLOCK_REALTIME: ETIMEDOUT",
            "cond_timedwait CLOCK_MONOTONIC: ETIMEDOUT",
            "sem_timedwait: ETIMEDOUT",
            "mutex_timedlock of a held mutex: ETIMEDOUT",
            "timed waits ok",
        ]),
        CCase::new("threads_signal_thread", "threads").args(&["signal_thread"]).lines(&[
            "pthread_kill: handled by the target thread ok",
            "kill: handled by the thread that unblocked it ok",
            "kill: handled by the thread that does not block it ok",
            "per-thread signals ok",
        ]),
        CCase::new("processes_fork_wait", "processes").args(&["fork_wait"]).lines(&[
            "child 0 exited with 10",
            "after reaping: waitpid=-1 errno=ECHILD",
            "the parent's memory is its own ok",
            "status sum=60",
            "fork and wait ok",
        ]),
        CCase::new("processes_pipe", "processes").args(&["pipe"]).lines(&[
            "read 23890 bytes, 1000 lines, then EOF (0)",
            "write with no reader: -1 EPIPE",
            "pipe ok",
        ]),
        CCase::new("processes_signals", "processes").args(&["signals"]).lines(&[
            "killed child: signaled=1 signal=15",
            "faulting child: signaled=1 signal=11",
            "SIGCHLD handled at least once",
            "kill of a reaped child: -1 ESRCH",
            "signals between processes ok",
        ]),
        CCase::new("processes_isolation", "processes").args(&["isolation"]).lines(&[
            "child reading the parent's new page: signaled=1 signal=11",
            "parent's copy unchanged by the child: yes",
            "isolation ok",
        ]),
        CCase::new("sockets_stream", "sockets").args(&["stream"]).lines(&[
            "echo: HELLO",
            "echo: PAIR",
            "after shutdown: read=0",
            "child status: 0",
        ]),
        CCase::new("sockets_messages", "sockets").args(&["messages"]).lines(&[
            "dgram: truncated read 5 [first]",
            "seqpacket: truncated read 5 [first]",
            "recvmsg 8 [gathered] flags_trunc=0",
            "empty: -1 EAGAIN",
        ]),
        CCase::new("sockets_shutdown", "sockets").args(&["shutdown"]).lines(&[
            "send to a closed peer: -1 EPIPE",
            "write to a closed peer: -1 EPIPE",
            "send on a non-socket: -1 ENOTSOCK",
        ]),
        CCase::new("sockets_epoll_and_eventfd_across_processes", "sockets")
            .args(&["epoll"])
            .lines(&["epoll saw the socket: yes, semaphore reads: 2", "child status: 0"]),
        CCase::new("processes_groups", "processes").args(&["groups"]).lines(&[
            "setsid in a child: ok",
            "child's group is its own: yes",
            "group killed: signal=9",
            "groups ok",
        ]),
    ]
}

fn c_case(key: &str) -> CCase {
    c_cases().into_iter().find(|case| case.key == key).unwrap_or_else(|| panic!("no C case {key:?}"))
}

/// Runs the C case `key` built with `toolchain` under secure-run and natively, and compares.
fn compare_c_case(mode: Mode, toolchain: Toolchain, key: &str) {
    let case = c_case(key);
    let app = guest(toolchain, case.name);
    // Fresh data for each run: some guests change it.
    let native = case.run_native(&app, data_dir().path());
    assert_status(&native, case.status);
    let in_vm = case.run_in_vm(mode, &app, data_dir().path());
    assert_same_as_native(&in_vm, &native);
    assert_no_panic(&in_vm);
}

/// `c_test!(key)`: the C case `key` in each C variant and each ABI mode, e.g. `abi::printf::musl_static::qemu_none`.
macro_rules! c_test {
    ($key:ident) => {
        c_test!(fn $key(mode, toolchain) { compare_c_case(mode, toolchain, stringify!($key)) });
    };
    (fn $name:ident($mode:ident, $toolchain:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn variant_body($mode: Mode, $toolchain: Toolchain) $body

            abi_test!(fn gcc_static(mode) { variant_body(mode, Toolchain::GccStatic) });
            abi_test!(fn gcc_static_pie(mode) { variant_body(mode, Toolchain::GccStaticPie) });
            abi_test!(fn musl_static(mode) { variant_body(mode, Toolchain::MuslStatic) });
        }
    };
}

c_test!(printf);
c_test!(args);
c_test!(empty_environment);
c_test!(auxv);
c_test!(stack_align);
c_test!(malloc_stress);
c_test!(prot_none_keeps_contents);
c_test!(prot_none_page_faults);
c_test!(tmp_files);
c_test!(shared_file_mappings);
c_test!(signal_segv_fix_and_return);
c_test!(signal_null_read_siglongjmp);
c_test!(signal_fpe_division_by_zero);
c_test!(signal_ill_ud2);
c_test!(signal_faults_on_the_alternate_stack);
c_test!(signal_stack_overflow_on_the_alternate_stack);
c_test!(signal_ucontext_rip);
c_test!(signal_raise_and_kill_self);
c_test!(signal_blocked_pending_delivered);
c_test!(signal_sigqueue_value);
c_test!(signal_realtime_queue_order);
c_test!(signal_setitimer_sigsuspend);
c_test!(signal_fast_interval_timer_lets_the_app_run);
c_test!(signal_alarm_interrupts_nanosleep);
c_test!(signal_sa_restart_pipe_read);
c_test!(signal_sigpipe_ignored_epipe);
c_test!(signal_resethand);
c_test!(signal_abort_status);
c_test!(signal_sigterm_status);
c_test!(read_mounted_dir);
c_test!(write_mounted_dir);
c_test!(clocks);
c_test!(random);
c_test!(uname);
c_test!(errno);
c_test!(tls);
c_test!(setjmp);
c_test!(stdin);
c_test!(empty_stdin);
c_test!(return_0_from_main);
c_test!(return_7_from_main);
c_test!(exit_3_from_nested_function);
c_test!(underscore_exit_4);
c_test!(abort_is_sigabrt);
c_test!(output_4mib_in_4k_writes);
c_test!(output_4mib_through_putchar);
c_test!(threads_mutex);
c_test!(threads_join);
c_test!(threads_tls);
c_test!(threads_condvar);
c_test!(threads_once);
c_test!(threads_detached);
c_test!(threads_recursive);
c_test!(threads_exit_from_worker);
c_test!(threads_spin);
c_test!(threads_pi_mutex);
c_test!(threads_timedwait);
c_test!(threads_signal_thread);
c_test!(processes_fork_wait);
c_test!(processes_pipe);
c_test!(processes_signals);
c_test!(processes_groups);
c_test!(processes_isolation);
c_test!(sockets_stream);
c_test!(sockets_messages);
c_test!(sockets_shutdown);
c_test!(sockets_epoll_and_eventfd_across_processes);

/// A directory to mount at `/bin` that holds busybox as `sh` (what popen and system() run).
fn bin_with_sh() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("secure-run-bin-").tempdir().unwrap();
    std::fs::copy(crate::busybox::busybox(), dir.path().join("busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", dir.path().join("sh")).unwrap();
    dir
}

/// Runs the `spawn` guest's scenario natively (the host's /bin/sh) and under secure-run (busybox as
/// /bin/sh), and compares.
fn compare_spawn(mode: Mode, toolchain: Toolchain, scenario: &str, lines: &[&str]) {
    let app = guest(toolchain, "spawn");
    let native = run_native(&app, &[scenario], &[], None);
    assert_status(&native, 0);
    for line in lines {
        assert!(
            native.stdout_text().lines().any(|printed| printed == *line),
            "native run lacks {line:?}\n{}",
            native.report()
        );
    }
    let bin = bin_with_sh();
    let in_vm = SecureRun::new(mode).mount(bin.path(), "/bin", true).run(&app, &[scenario]);
    assert_same_as_native(&in_vm, &native);
    assert_no_panic(&in_vm);
}

c_test!(
    fn processes_execve_of_proc_self_exe(mode, toolchain) {
        compare_spawn(mode, toolchain, "exec", &["exec'd child: exited=1 status=7"]);
    }
);
c_test!(
    fn processes_posix_spawn(mode, toolchain) {
        compare_spawn(mode, toolchain, "posix_spawn", &["posix_spawn: OK", "spawned child: exited=1 status=7"]);
    }
);
c_test!(
    fn processes_cloexec_closes_at_execve(mode, toolchain) {
        compare_spawn(mode, toolchain, "cloexec", &["after execve: the plain fd is open, the O_CLOEXEC fd is closed"]);
    }
);
c_test!(
    fn processes_popen_and_system(mode, toolchain) {
        compare_spawn(mode, toolchain, "shell", &[
            "popen read: hello through popen",
            "pclose: exited=1 status=4",
            "system: exited=1 status=3",
            "PIPED",
        ]);
    }
);

// No native comparison: natively the dynamic program runs. Under secure-run execve refuses it, clearly.
abi_test!(fn processes_execve_of_a_dynamic_program_is_enoexec(mode) {
    let dir = tempfile::Builder::new().prefix("secure-run-dynamic-").tempdir().unwrap();
    let dynamic = ["/bin/true", "/usr/bin/true"].into_iter().find(|path| Path::new(path).is_file()).unwrap();
    std::fs::copy(dynamic, dir.path().join("true")).unwrap();
    std::fs::write(dir.path().join("script"), "#!/m/true\n").unwrap();
    std::fs::set_permissions(dir.path().join("script"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let app = guest(Toolchain::GccStatic, "spawn");
    for (path, errno) in [("/m/true", "ENOEXEC"), ("/m/script", "ENOEXEC"), ("/m/missing", "ENOENT"), ("/m", "EACCES")] {
        let result = SecureRun::new(mode).mount(dir.path(), "/m", true).run(&app, &["exec_errno", path]);
        assert_status(&result, 0);
        assert!(result.stdout_text().contains(&format!("execve {path}: {errno}")), "{}", result.report());
        if errno == "ENOEXEC" {
            assert!(result.stderr.contains("dynamically linked (it asks for the interpreter"), "{}", result.report());
        }
    }
});

// No native run: the children stay zombies until the limit (the host's is far higher). QEMU only: where
// the kernel's code is emulated (this machine kind's KVM) the 255 forks and exits take about a minute.
tests_in_modes!([qemu_none, qemu_mpk_aslr, qemu_ring3] fn processes_fork_bomb_ends_at_the_process_limit(mode) {
    let result = SecureRun::new(mode).run(&guest(Toolchain::GccStatic, "processes"), &["fork_bomb"]);
    assert_status(&result, 0);
    assert!(result.stdout_text().contains("fork failed with EAGAIN after 255 children"), "{}", result.report());
    assert!(result.stderr.contains("the process limit (256 processes, zombies included)"), "{}", result.report());
});

c_test!(
    fn read_only_mount_refuses_writes(mode, toolchain) {
        // No native comparison: a host directory cannot be made read-only for root.
        let data = data_dir();
        let result = SecureRun::new(mode).mount(data.path(), GUEST_DATA, true).run(&guest(toolchain, "write_dir"), &[GUEST_DATA]);
        assert_status(&result, 0);
        let text = result.stdout_text();
        let lines: Vec<&str> = text.lines().collect();
        let refused = |line: &str, what: &str| line == format!("{what}: EROFS") || line == format!("{what}: EACCES");
        let expected = ["append input.txt", "create created.txt", "mkdir made", "unlink input.txt"];
        assert!(
            lines.len() == 5
                && lines[0] == "read input.txt: OK"
                && lines[1..].iter().zip(expected).all(|(line, what)| refused(line, what)),
            "a read-only mount must allow reading and refuse every change with EROFS or EACCES\n{}",
            result.report()
        );
        // The host directory is never written, read-only or not.
        assert_eq!(std::fs::read(data.path().join("input.txt")).unwrap(), b"hello from the host\nsecond line\n");
        assert!(!data.path().join("created.txt").exists());
    }
);

abi_test!(
    fn start_stack_is_aligned_and_well_formed(mode) {
        let app = guest(Toolchain::Asm, "start_stack");
        let result = SecureRun::new(mode).env(&["A=1", "B=2"]).run(&app, &["x", "y"]);
        assert_output(&result, 0, b"start stack ok\n");
    }
);

abi_test!(
    fn trace_syscalls_shows_signal_deliveries_and_returns(mode) {
        let app = guest(Toolchain::GccStatic, "signals");
        let traced = SecureRun::new(mode).options(["--trace-syscalls"]);
        let result = traced.run(&app, &["segv_fix"]);
        assert_status(&result, 0);
        let stderr = &result.stderr;
        assert!(stderr.contains("rt_sigaction(SIGSEGV, "), "{}", result.report());
        assert!(
            stderr.contains("--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_ACCERR, si_addr=0x"),
            "{}",
            result.report()
        );
        assert!(stderr.contains("rt_sigreturn({mask=[]}) = "), "{}", result.report());
        let result = traced.run(&app, &["sigterm"]);
        assert_status(&result, 143);
        let stderr = &result.stderr;
        let tail: Vec<&str> = stderr.lines().filter(|line| line.contains("SIGTERM")).collect();
        assert_eq!(tail, ["kill(1, SIGTERM) = 0", "+++ killed by SIGTERM +++"], "{}", result.report());
    }
);

abi_test!(
    fn rust_signal_handlers_see_and_change_the_faulting_context(mode) {
        let app = guest(Toolchain::RustMusl, "signal_rip");
        let native = run_native(&app, &[], &[], None);
        assert_status(&native, 0);
        assert!(native.stdout.ends_with(b"rust signal handlers ok\n"), "{}", native.report());
        let in_vm = SecureRun::new(mode).run(&app, &[]);
        assert_output(&in_vm, 0, &native.stdout);
    }
);

abi_test!(
    fn rust_std_program_matches_native(mode) {
        let app = guest(Toolchain::RustMusl, "std_tour");
        let args = ["first", "second arg", "\u{2764}"];
        let env = ["GREETING=hello", "LANG=C"];
        let native = run_native(&app, &args, &env, None);
        assert_status(&native, 5);
        let in_vm = SecureRun::new(mode).env(&env).run(&app, &args);
        assert_same_as_native(&in_vm, &native);
        assert_no_panic(&in_vm);
    }
);

abi_test!(
    fn rust_threads_match_native(mode) {
        let app = guest(Toolchain::RustMusl, "threads");
        let native = run_native(&app, &[], &[], None);
        assert_status(&native, 0);
        assert!(native.stdout.ends_with(b"rust threads ok\n"), "{}", native.report());
        let in_vm = SecureRun::new(mode).run(&app, &[]);
        assert_same_as_native(&in_vm, &native);
        assert_no_panic(&in_vm);
    }
);

abi_test!(
    fn threads_all_waiting_is_reported_as_a_deadlock(mode) {
        // Natively this program never ends: main joins a thread waiting on a condition nobody signals.
        let app = guest(Toolchain::GccStatic, "threads");
        let result = SecureRun::new(mode).run(&app, &["deadlock"]);
        assert_status(&result, 137);
        assert_eq!(result.stdout_text(), "main joins a thread that waits forever\n", "{}", result.report());
        assert_stderr_contains(&result, "deadlock: every thread waits and nothing can wake one (tid 1: futex wait; tid 2: futex wait");
        assert_no_panic(&result);
    }
);

abi_test!(
    fn trace_syscalls_names_the_thread_of_each_line(mode) {
        let app = guest(Toolchain::GccStatic, "threads");
        let result = SecureRun::new(mode).options(["--trace-syscalls"]).run(&app, &["join"]);
        assert_status(&result, 0);
        let lines: Vec<&str> = result.stderr.lines().collect();
        // glibc makes threads with clone3.
        let first_clone = lines.iter().position(|line| line.contains("clone3(")).expect("a clone3 line");
        assert!(!lines[first_clone - 1].starts_with("[tid "), "one thread: no prefix\n{}", result.report());
        assert!(lines[first_clone].starts_with("[tid 1] clone3("), "{}", result.report());
        assert!(lines.iter().any(|line| line.starts_with("[tid 2] ")), "{}", result.report());
        assert!(lines.iter().any(|line| line.ends_with("exit(0) = ? (thread exit)")), "{}", result.report());
    }
);

abi_test!(
    fn stdout_and_stderr_keep_their_order_in_one_pipe(mode) {
        // Both streams into one pipe (2>&1), under secure-run and natively: the bytes must be the same.
        let app = guest(Toolchain::GccStatic, "output");
        let app = app.to_str().unwrap();
        let sh = Path::new("/bin/sh");
        let env = ["PATH=/usr/local/bin:/usr/bin:/bin"];
        let native = run_native(sh, &["-c", "exec \"$@\" 2>&1", "sh", app, "interleave", "300"], &env, None);
        assert_status(&native, 0);
        let mut args = vec!["-c", "exec \"$@\" 2>&1", "sh", crate::common::run::SECURE_RUN];
        args.extend(mode.args());
        args.extend([app, "interleave", "300"]);
        let in_vm = run_native(sh, &args, &env, None);
        // secure-run's own notices (an ET_EXEC app under --aslr) come first on its stderr: skip them.
        let text = in_vm.stdout_text();
        let app_output: String = text.lines().filter(|line| !line.starts_with("secure-run: ")).map(|line| format!("{line}\n")).collect();
        assert_status(&in_vm, 0);
        assert_eq!(app_output, native.stdout_text(), "{}", in_vm.report());
    }
);
