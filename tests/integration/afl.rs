//! `secure-run --afl`: the executor driven through AFL++'s forkserver protocol by a driver of our own
//! (exact control over each execution: statuses, output, hangs, the coverage map, resets), and by a real
//! `afl-fuzz` campaign that must find the planted crash.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmm::afl::forkserver::Fuzzer;

use crate::common::run::SECURE_RUN;
use crate::common::*;

/// How long the driver waits for any answer of the executor before it fails the test.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// One execution as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Execution {
    /// The `waitpid` status the executor reported.
    status: i32,
    /// What the app printed on stdout during it.
    stdout: String,
}

impl Execution {
    fn exit_code(&self) -> Option<i32> {
        (self.status & 0x7f == 0).then_some((self.status >> 8) & 0xff)
    }
    fn signal(&self) -> Option<i32> {
        (self.status & 0x7f != 0).then_some(self.status & 0x7f)
    }
}

/// secure-run --afl under a driver that speaks afl-fuzz's side of the protocol.
struct Driver {
    fuzzer: Option<Fuzzer>,
    stdout: File,
    stderr: Option<std::thread::JoinHandle<String>>,
    input: PathBuf,
    _dir: tempfile::TempDir,
}

impl Driver {
    /// Starts `secure-run --afl OPTIONS APP [@@]`: with `file_input` the input is the file afl-fuzz would
    /// put for `@@` (named `.cur_input`), else stdin. `env` adds variables to secure-run's environment.
    fn start(options: &[&str], app: &Path, file_input: bool, env: &[(&str, String)]) -> Self {
        let dir = tempfile::Builder::new().prefix("secure-run-afl-").tempdir().unwrap();
        let input = dir.path().join(".cur_input");
        File::create(&input).unwrap();
        let mut command = Command::new(SECURE_RUN);
        command.arg("--afl").args(options).arg(app);
        if file_input {
            command.arg(&input);
            command.stdin(Stdio::null());
        } else {
            command.stdin(File::open(&input).unwrap());
        }
        for (key, value) in env {
            command.env(key, value);
        }
        command.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut fuzzer = Fuzzer::spawn(&mut command).expect("start secure-run --afl");
        let stdout = fuzzer.child().stdout.take().unwrap();
        // SAFETY: F_SETFL on our own pipe descriptor.
        unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        let mut stderr = fuzzer.child().stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let mut driver = Self {
            fuzzer: Some(fuzzer),
            stdout: File::from(OwnedFd::from(stdout)),
            stderr: Some(stderr),
            input,
            _dir: dir,
        };
        let hello = driver.read_word("hello");
        assert_eq!(hello, 0, "the hello is the classic forkserver's");
        driver
    }

    fn fuzzer(&mut self) -> &mut Fuzzer {
        self.fuzzer.as_mut().expect("the executor is running")
    }

    fn fail(&mut self, what: &str, error: std::io::Error) -> ! {
        if let Some(fuzzer) = &mut self.fuzzer {
            let _ = fuzzer.child().kill();
        }
        let stderr = self.stderr.take().map(|thread| thread.join().unwrap_or_default()).unwrap_or_default();
        panic!("{what} failed: {error}\n--- secure-run's stderr ---\n{stderr}");
    }

    fn read_word(&mut self, what: &str) -> i32 {
        match self.fuzzer().read_word(ANSWER_TIMEOUT) {
            Ok(word) => word,
            Err(error) => self.fail(&format!("reading the {what}"), error),
        }
    }

    fn drain_stdout(&mut self) -> String {
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(read @ 1..) = self.stdout.read(&mut buffer) {
            bytes.extend_from_slice(&buffer[..read]);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Writes `input`, asks for an execution and returns the stand-in's pid.
    fn request(&mut self, input: &[u8]) -> i32 {
        std::fs::write(&self.input, input).unwrap();
        let pid = match self.fuzzer().request(false, ANSWER_TIMEOUT) {
            Ok(pid) => pid,
            Err(error) => self.fail("asking for an execution", error),
        };
        assert!(pid > 0, "the executor named pid {pid}");
        pid
    }

    /// Runs one execution with `input`.
    fn execute(&mut self, input: &[u8]) -> Execution {
        self.request(input);
        let status = self.read_word("status");
        Execution { status, stdout: self.drain_stdout() }
    }

    /// Closes the control pipe, as afl-fuzz does at the end: the executor must exit 0.
    fn finish(mut self) -> String {
        let status = self.fuzzer.take().expect("the executor is running").finish().unwrap();
        let stderr = self.stderr.take().map(|thread| thread.join().unwrap_or_default()).unwrap_or_default();
        assert!(status.success(), "secure-run --afl exited with {status}\n{stderr}");
        stderr
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(fuzzer) = &mut self.fuzzer {
            let _ = fuzzer.child().kill();
            let _ = fuzzer.child().wait();
        }
    }
}

fn target() -> PathBuf {
    guest(Toolchain::GccStaticPie, "fuzz_target")
}

// Exits pass their status on, a fault is its signal, abort() is SIGABRT, and each execution's output is
// its own; with the input as a file and as stdin.
tests_in_modes!([kvm_ring3, kvm_ring3_aslr, qemu_mpk_aslr, qemu_ring3] fn executor_reports_each_execution(mode) {
    for file_input in [true, false] {
        let mut driver = Driver::start(&mode.args(), &target(), file_input, &[]);
        let hello = driver.execute(b"hello");
        assert_eq!(hello.exit_code(), Some(0), "{hello:?}");
        assert!(hello.stdout.contains("input 5 bytes"), "{hello:?}");
        let fault = driver.execute(b"FUZZ and more");
        assert_eq!(fault.signal(), Some(11), "a null write is SIGSEGV: {fault:?}");
        let abort = driver.execute(b"ABRT");
        assert_eq!(abort.signal(), Some(6), "abort() is SIGABRT: {abort:?}");
        let exit = driver.execute(b"EXIT7");
        assert_eq!(exit.exit_code(), Some(7), "{exit:?}");
        let long = driver.execute(&[b'x'; 200]);
        assert_eq!(long.exit_code(), Some(1), "{long:?}");
        assert!(long.stdout.contains("input 200 bytes"), "{long:?}");
        let empty = driver.execute(b"");
        assert!(empty.stdout.contains("input 0 bytes"), "a shorter input leaves nothing of a longer one: {empty:?}");
        let stderr = driver.finish();
        assert!(stderr.contains("SIGSEGV"), "the fault's crash report is on stderr:\n{stderr}");
    }
});

// Every execution starts from the same state: an input run first and after many others prints the same
// (fresh static counter, fresh /tmp, the same random bytes), and the same as a plain run with that seed.
tests_in_modes!([kvm_ring3_aslr, qemu_mpk_aslr] fn every_execution_starts_fresh(mode) {
    let others = if mode.backend == run::Backend::Kvm { 1000 } else { 20 };
    let mut options = mode.args();
    options.extend(["--seed", "4242"]);
    let mut driver = Driver::start(&options, &target(), true, &[]);
    let first = driver.execute(b"the same input");
    for index in 0..others {
        let other = driver.execute(format!("other input {index}").as_bytes());
        assert_eq!(other.exit_code(), Some(0), "{other:?}");
    }
    let again = driver.execute(b"the same input");
    let input_path = driver.input.clone();
    assert_eq!(first, again, "the input behaved differently after {others} other executions");
    assert!(first.stdout.contains("runs 1\nstate file: created\n"), "{first:?}");

    // A plain run with the same seed and the same input at the same path.
    std::fs::write(&input_path, b"the same input").unwrap();
    let dir = input_path.parent().unwrap();
    let plain = SecureRun::new(mode)
        .options(["--seed", "4242"])
        .mount(dir, dir.to_str().unwrap(), true)
        .run(&target(), &[input_path.to_str().unwrap()]);
    assert_status(&plain, 0);
    assert_eq!(plain.stdout_text(), first.stdout, "an execution differs from a plain run with its seed");
    driver.finish();
});

// afl-fuzz's hang timeout kills the pid the executor named: the execution stops with SIGKILL and the
// next one runs normally.
tests_in_modes!([kvm_ring3, qemu_mpk] fn a_killed_hang_ends_and_the_campaign_goes_on(mode) {
    let mut driver = Driver::start(&mode.args(), &target(), true, &[]);
    let pid = driver.request(b"HANG");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill has no memory-safety preconditions; the pid is the executor's stand-in.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "the stand-in {pid} exists");
    let status = driver.read_word("status after the kill");
    assert_eq!(status & 0x7f, libc::SIGKILL, "a killed execution reports SIGKILL (status {status:#x})");
    driver.drain_stdout();
    let next = driver.execute(b"hello");
    assert_eq!(next.exit_code(), Some(0), "{next:?}");
    assert!(next.stdout.contains("runs 1\n"), "{next:?}");
    driver.finish();
});

/// A SysV segment like the one afl-fuzz creates for its coverage map, removed on drop.
struct Segment {
    id: i32,
    map: *mut u8,
    size: usize,
}

impl Segment {
    fn create(size: usize) -> Self {
        // SAFETY: plain SysV calls; results checked.
        unsafe {
            let id = libc::shmget(libc::IPC_PRIVATE, size, libc::IPC_CREAT | 0o600);
            assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
            let map = libc::shmat(id, std::ptr::null(), 0);
            assert!(map as isize != -1, "shmat: {}", std::io::Error::last_os_error());
            Self { id, map: map.cast(), size }
        }
    }
    fn bytes(&self) -> Vec<u8> {
        // SAFETY: the segment maps `size` bytes at `map` while `self` lives.
        unsafe { std::slice::from_raw_parts(self.map, self.size).to_vec() }
    }
    fn clear(&self) {
        // SAFETY: as above; afl-fuzz clears its map the same way before each execution.
        unsafe { std::ptr::write_bytes(self.map, 0, self.size) };
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: our own attachment and segment.
        unsafe {
            libc::shmdt(self.map.cast());
            libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut());
        }
    }
}

// The app attaches afl-fuzz's map with shmat(__AFL_SHM_ID) and what it writes there reaches the host's
// segment, execution after execution.
tests_in_modes!([kvm_ring3, kvm_ring3_aslr, qemu_mpk, qemu_ring3] fn the_coverage_map_is_afl_fuzzs_segment(mode) {
    let segment = Segment::create(65536);
    let mut driver = Driver::start(&mode.args(), &target(), true, &[("__AFL_SHM_ID", segment.id.to_string())]);
    for input in [&b"first coverage"[..], b"second", b"a third, longer input than the others"] {
        segment.clear();
        let execution = driver.execute(input);
        assert!(execution.stdout.contains("map attached"), "{execution:?}");
        let map = segment.bytes();
        assert_eq!(&map[..input.len()], input, "the map holds what the app wrote");
        assert!(map[input.len()..].iter().all(|&byte| byte == 0), "and nothing else");
    }
    driver.finish();
});

// --crash-dir keeps each crashing execution's input and JSON report, and the input replays with the
// report's seed to the same crash.
tests_in_modes!([kvm_ring3_aslr, qemu_mpk] fn crash_dir_keeps_replayable_crashes(mode) {
    let crashes = tempfile::Builder::new().prefix("secure-run-crashes-").tempdir().unwrap();
    let mut options = mode.args();
    options.extend(["--crash-dir", crashes.path().to_str().unwrap()]);
    let mut driver = Driver::start(&options, &target(), true, &[]);
    assert_eq!(driver.execute(b"FUZZ").signal(), Some(11));
    assert_eq!(driver.execute(b"hello").exit_code(), Some(0));
    assert_eq!(driver.execute(b"ABRT").signal(), Some(6));
    driver.finish();
    let mut kept: Vec<PathBuf> = std::fs::read_dir(crashes.path()).unwrap().map(|entry| entry.unwrap().path()).collect();
    kept.sort();
    assert_eq!(kept.len(), 4, "two crashes, an input and a report each: {kept:?}");
    // crash-PID-N.input sorts before crash-PID-N.json.
    let (first_input, first_report) = (&kept[0], &kept[1]);
    assert!(std::fs::read(first_input).unwrap() == b"FUZZ", "{first_input:?} holds the crashing input");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(first_report).unwrap()).unwrap();
    assert_eq!(report["exit_code"], 139, "{report}");
    assert_eq!(report["crash"]["signal_name"], "SIGSEGV", "{report}");
    let seed = report["seed"].as_u64().expect("the report names the seed").to_string();
    let replay = SecureRun::new(mode)
        .options(["--seed", &seed])
        .mount(crashes.path(), "/crashes", true)
        .run(&target(), &[&format!("/crashes/{}", first_input.file_name().unwrap().to_str().unwrap())]);
    assert_status(&replay, 139);
    assert_stderr_contains(&replay, "SIGSEGV");
    let second: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&kept[3]).unwrap()).unwrap();
    assert_eq!(second["exit_code"], 134, "abort() is kept as SIGABRT: {second}");
});

#[test]
fn afl_without_afl_fuzz_is_a_usage_error() {
    let result = SecureRun::without_mode().options(["--afl"]).run(&target(), &[]);
    assert_status(&result, 2);
    assert_stderr_contains(&result, "afl-fuzz");
    let result = SecureRun::without_mode().options(["--afl", "--timeout", "1"]).run(&target(), &[]);
    assert_status(&result, 2);
    assert_stderr_contains(&result, "--timeout");
}

/// afl-fuzz itself, or a failed test naming the package.
fn afl_fuzz() -> &'static str {
    let found = Command::new("afl-fuzz").arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(found.is_ok(), "afl-fuzz is not installed: install the Debian package `afl++` (scripts/setup does)");
    "afl-fuzz"
}

// A real campaign: afl-fuzz runs secure-run --afl on the target built with afl-clang-fast, finds the
// crash planted behind four byte comparisons (from a seed one bit away, with its deterministic stages),
// and replaying the saved crash with a plain secure-run gives SIGSEGV's status and a crash report.
tests_in_modes!([kvm_ring3, qemu_mpk] fn afl_fuzz_campaign_finds_the_planted_crash(mode) {
    let app = guest(Toolchain::AflClangFast, "fuzz_target");
    let dir = tempfile::Builder::new().prefix("secure-run-campaign-").tempdir().unwrap();
    let (inputs, findings) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir(&inputs).unwrap();
    std::fs::write(inputs.join("seed"), b"FUZ[").unwrap();
    let mut command = Command::new(afl_fuzz());
    command
        .args(["-i", inputs.to_str().unwrap(), "-o", findings.to_str().unwrap(), "-D", "-V", "300", "-t", "20000"])
        .arg("--")
        .arg(SECURE_RUN)
        .arg("--afl")
        .args(mode.args())
        .arg(&app)
        .arg("@@")
        .env("AFL_NO_UI", "1")
        .env("AFL_SKIP_CPUFREQ", "1")
        .env("AFL_NO_AFFINITY", "1")
        .env("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1")
        .env("AFL_BENCH_UNTIL_CRASH", "1")
        .env("AFL_FORKSRV_INIT_TMOUT", "60000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let output = command.output().expect("run afl-fuzz");
    let log = format!(
        "afl-fuzz {} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        started.elapsed(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let crashes = findings.join("default").join("crashes");
    let crash = std::fs::read_dir(&crashes)
        .unwrap_or_else(|error| panic!("no crashes directory ({error})\n{log}"))
        .filter_map(Result::ok)
        .find(|entry| entry.file_name().to_string_lossy().starts_with("id:"))
        .unwrap_or_else(|| panic!("afl-fuzz saved no crash\n{log}"));
    let bytes = std::fs::read(crash.path()).unwrap();
    assert!(bytes.starts_with(b"FUZZ"), "the crash is the planted one: {bytes:?}\n{log}");

    let replay_dir = dir.path().join("replay");
    std::fs::create_dir(&replay_dir).unwrap();
    std::fs::write(replay_dir.join("crash"), &bytes).unwrap();
    let replay = SecureRun::new(mode).mount(&replay_dir, "/replay", true).run(&app, &["/replay/crash"]);
    assert_status(&replay, 139);
    assert_stderr_contains(&replay, "SIGSEGV");
});
