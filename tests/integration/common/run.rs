//! Runs secure-run (or a guest natively) with a hard timeout and captured output, and asserts on the
//! result, printing everything the program said when an assertion fails.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const SECURE_RUN: &str = env!("CARGO_BIN_EXE_secure-run");

/// How long any one run may take before the harness kills it and fails the test. Generous: the
/// machines are shared and QEMU's TCG is slow; the tests that are about time limits assert their own.
pub const HARD_TIMEOUT: Duration = Duration::from_secs(60);

/// `--backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Qemu,
    Kvm,
}

/// `--isolation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    None,
    Ring3,
    Mpk,
}

/// One (backend, isolation) combination a test body runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    pub backend: Backend,
    pub isolation: Isolation,
    /// Run with `--aslr` (every base randomized).
    pub aslr: bool,
}

impl Mode {
    /// Parses the test-name form `qemu_none`, `kvm_ring3`, `qemu_mpk_aslr`, ... (what `tests_in_modes!`
    /// generates).
    pub fn named(name: &str) -> Self {
        let (name, aslr) = match name.strip_suffix("_aslr") {
            Some(name) => (name, true),
            None => (name, false),
        };
        let (backend, isolation) =
            name.split_once('_').unwrap_or_else(|| panic!("mode {name:?} is not BACKEND_ISOLATION[_aslr]"));
        let backend = match backend {
            "qemu" => Backend::Qemu,
            "kvm" => Backend::Kvm,
            _ => panic!("unknown backend in mode {name:?}"),
        };
        let isolation = match isolation {
            "none" => Isolation::None,
            "ring3" => Isolation::Ring3,
            "mpk" => Isolation::Mpk,
            _ => panic!("unknown isolation in mode {name:?}"),
        };
        Self { backend, isolation, aslr }
    }

    /// The secure-run options that select this mode.
    pub fn args(self) -> Vec<&'static str> {
        let backend = match self.backend {
            Backend::Qemu => "qemu",
            Backend::Kvm => "kvm",
        };
        let isolation = match self.isolation {
            Isolation::None => "none",
            Isolation::Ring3 => "ring3",
            Isolation::Mpk => "mpk",
        };
        let mut args = vec!["--backend", backend, "--isolation", isolation];
        if self.aslr {
            args.push("--aslr");
        }
        args
    }
}

/// What a finished run left behind.
#[derive(Debug)]
pub struct RunResult {
    /// The exit status, or 128 + signal if the process was killed by a signal (as a shell reports it).
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
    /// The command line, for failure messages.
    pub command: String,
}

impl RunResult {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Everything about the run, with long output shortened: what a failing assertion prints.
    pub fn report(&self) -> String {
        format!(
            "command: {}\nstatus: {}\nelapsed: {:.2?}\n--- stdout ({} bytes) ---\n{}\n--- stderr ({} bytes) ---\n{}\n--- end ---",
            self.command,
            self.status,
            self.elapsed,
            self.stdout.len(),
            shorten(&String::from_utf8_lossy(&self.stdout)),
            self.stderr.len(),
            shorten(&self.stderr),
        )
    }
}

fn shorten(text: &str) -> String {
    const LIMIT: usize = 6000;
    if text.len() <= LIMIT {
        return text.to_owned();
    }
    let mut head = LIMIT / 2;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - LIMIT / 2;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}\n[... {} bytes left out ...]\n{}", &text[..head], tail - head, &text[tail..])
}

/// A secure-run command line under construction: options, then the app and its arguments.
#[derive(Clone, Debug, Default)]
pub struct SecureRun {
    options: Vec<String>,
    stdin: Option<Vec<u8>>,
    hard_timeout: Option<Duration>,
}

impl SecureRun {
    /// secure-run with `--backend` and `--isolation` from `mode`.
    pub fn new(mode: Mode) -> Self {
        Self::default().options(mode.args())
    }

    /// secure-run without mode options (for tests that never reach a VM).
    pub fn without_mode() -> Self {
        Self::default()
    }

    pub fn options<S: AsRef<str>>(mut self, options: impl IntoIterator<Item = S>) -> Self {
        self.options.extend(options.into_iter().map(|option| option.as_ref().to_owned()));
        self
    }

    /// `--mount HOST:GUEST` (read-write copy) or `--mount HOST:GUEST:ro`.
    pub fn mount(self, host: &Path, guest: &str, read_only: bool) -> Self {
        let spec = format!("{}:{guest}{}", host.display(), if read_only { ":ro" } else { "" });
        self.options(["--mount".to_owned(), spec])
    }

    /// `--env K=V` for each entry.
    pub fn env(mut self, vars: &[&str]) -> Self {
        for var in vars {
            self = self.options(["--env", var]);
        }
        self
    }

    /// Bytes the VMM captures as the app's stdin (default: /dev/null).
    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
        self
    }

    /// Overrides [`HARD_TIMEOUT`] for runs that are expected to be slow.
    pub fn hard_timeout(mut self, limit: Duration) -> Self {
        self.hard_timeout = Some(limit);
        self
    }

    /// Runs `app` like [`run`](Self::run) with `--report FILE` added, and returns the JSON report the run
    /// wrote (docs/report.md), failing the test if it wrote none.
    pub fn run_reporting(&self, app: &Path, app_args: &[&str]) -> (RunResult, String) {
        let dir = tempfile::Builder::new().prefix("secure-run-report-").tempdir().expect("a temporary directory");
        let path = dir.path().join("report.json");
        let result =
            self.clone().options(["--report", path.to_str().expect("UTF-8 temporary path")]).run(app, app_args);
        let report = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("no --report written ({error})\n{}", result.report()));
        (result, report)
    }

    /// Runs `app` with `app_args` and waits for it.
    pub fn run(&self, app: &Path, app_args: &[&str]) -> RunResult {
        let mut args = self.options.clone();
        args.push(app.to_str().expect("guest paths are UTF-8").to_owned());
        args.extend(app_args.iter().map(|arg| (*arg).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        execute(secure_run_command(&args), self.stdin.as_deref(), self.hard_timeout.unwrap_or(HARD_TIMEOUT))
    }
}

fn secure_run_command(args: &[&str]) -> Command {
    let mut command = Command::new(SECURE_RUN);
    command.args(args);
    command
}

/// Runs secure-run with exactly `args`, stdin from /dev/null.
pub fn run(args: &[&str]) -> RunResult {
    execute(secure_run_command(args), None, HARD_TIMEOUT)
}

/// Runs `app` natively the way secure-run presents a program its world: argv[0] is `app` as given, the
/// environment holds exactly `env` (like `env -i K=V ...`), the working directory is `/`.
pub fn run_native(app: &Path, args: &[&str], env: &[&str], stdin: Option<&[u8]>) -> RunResult {
    let mut command = Command::new(app);
    command.args(args).env_clear().current_dir("/");
    for var in env {
        let (key, value) = var.split_once('=').unwrap_or((var, ""));
        command.env(key, value);
    }
    execute(command, stdin, HARD_TIMEOUT)
}

/// Spawns `command` in its own process group, feeds it `stdin`, collects its output, and kills the whole
/// group if it outlives `limit` (then fails the test). Also fails the test if the command exits but
/// leaves processes behind in its group (a leaked QEMU, say).
fn execute(mut command: Command, stdin: Option<&[u8]>, limit: Duration) -> RunResult {
    let description = format!("{command:?}");
    command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = command.spawn().unwrap_or_else(|error| panic!("cannot start {description}: {error}"));
    let group = i32::try_from(child.id()).expect("pids fit in i32");

    let stdin_writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let bytes = bytes.to_vec();
        // A program that does not read all its input closes the pipe early: not an error here.
        thread::spawn(move || drop(pipe.write_all(&bytes)))
    });
    let mut stdout_pipe = child.stdout.take().expect("stdout is piped");
    let stdout_reader = thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut bytes);
        bytes
    });
    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    let stderr_reader = thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut bytes);
        bytes
    });

    let (exit, timed_out) = loop {
        if let Some(exit) = child.try_wait().expect("waiting for the child") {
            break (exit, false);
        }
        if start.elapsed() > limit {
            kill_group(group);
            break (child.wait().expect("waiting for the killed child"), true);
        }
        thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let leftovers = live_processes_in_group(group);
    if !leftovers.is_empty() {
        kill_group(group);
    }
    if let Some(writer) = stdin_writer {
        let _ = writer.join();
    }
    let result = RunResult {
        status: exit.code().unwrap_or_else(|| 128 + exit.signal().unwrap_or(0)),
        stdout: stdout_reader.join().expect("stdout reader"),
        stderr: String::from_utf8_lossy(&stderr_reader.join().expect("stderr reader")).into_owned(),
        elapsed,
        command: description,
    };
    assert!(!timed_out, "killed after the harness's hard timeout of {limit:?}\n{}", result.report());
    assert!(
        leftovers.is_empty(),
        "the command exited but left processes running in its process group: {leftovers:?}\n{}",
        result.report()
    );
    result
}

fn kill_group(group: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created for this child; it
    // touches no memory of ours.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
}

/// Processes (not zombies) whose process group is `group`, from /proc: "pid comm" strings.
fn live_processes_in_group(group: i32) -> Vec<String> {
    // A child that exits a moment after its parent is not a leak: give the group a short while to drain.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let live = scan_process_group(group);
        if live.is_empty() || Instant::now() > deadline {
            return live;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn scan_process_group(group: i32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut live = Vec::new();
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses, so split after the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == group.to_string() && fields[0] != "Z" && fields[0] != "X" {
            live.push(head.replace(" (", " ").to_string());
        }
    }
    live
}

/// Asserts the exit status and the exact stdout.
#[track_caller]
pub fn assert_output(result: &RunResult, status: i32, stdout: &[u8]) {
    if result.status != status || result.stdout != stdout {
        panic!(
            "expected status {status} and stdout {:?}\n{}",
            shorten(&String::from_utf8_lossy(stdout)),
            result.report()
        );
    }
}

/// Asserts the exit status.
#[track_caller]
pub fn assert_status(result: &RunResult, status: i32) {
    assert!(result.status == status, "expected status {status}\n{}", result.report());
}

/// Asserts that stderr contains `needle`, ignoring ASCII case.
#[track_caller]
pub fn assert_stderr_contains(result: &RunResult, needle: &str) {
    assert!(
        result.stderr.to_ascii_lowercase().contains(&needle.to_ascii_lowercase()),
        "expected stderr to contain {needle:?}\n{}",
        result.report()
    );
}

/// Asserts that secure-run did not panic (a guest must never be able to make it panic).
#[track_caller]
pub fn assert_no_panic(result: &RunResult) {
    assert!(
        !result.stderr.contains("panicked at") && !result.stderr.contains("RUST_BACKTRACE"),
        "secure-run panicked\n{}",
        result.report()
    );
}

/// The guarded instructions (`isolation::scan::ForbiddenInstruction::is_guarded`) in `app`'s executable
/// segments, found by scanning them independently of the VMM and the kernel: what `mpk` mode's step gate
/// must let the app run around. Real binaries hold such byte sequences by chance (a musl `call` whose
/// displacement encodes `mov cr0, rax`); tests that mean to exercise the gate assert there are some.
pub fn guarded_instructions(app: &Path) -> Vec<isolation::scan::Finding> {
    let bytes = std::fs::read(app).unwrap_or_else(|error| panic!("cannot read {}: {error}", app.display()));
    let elf = vmm::elf::parse_app(&bytes).unwrap_or_else(|error| panic!("{}: {error}", app.display()));
    let code = elf
        .segments
        .iter()
        .filter(|segment| segment.perms & kernel_abi::PERM_EXEC != 0)
        .map(|segment| (segment.vaddr, elf.segment_bytes(segment, &bytes)));
    let found = isolation::scan::scan_code_regions(code);
    found.into_iter().filter(|finding| finding.instruction.is_guarded()).collect()
}

/// Asserts that a run under secure-run behaved exactly like the native run of the same binary: same
/// status, same stdout byte for byte. (stderr is not compared: secure-run may add notices to it.)
#[track_caller]
pub fn assert_same_as_native(guest: &RunResult, native: &RunResult) {
    if guest.status != native.status || guest.stdout != native.stdout {
        let first_difference = guest.stdout.iter().zip(&native.stdout).position(|(a, b)| a != b);
        panic!(
            "secure-run and the native run differ (first differing stdout byte: {first_difference:?})\n\
             === under secure-run ===\n{}\n=== natively ===\n{}",
            guest.report(),
            native.report()
        );
    }
}
