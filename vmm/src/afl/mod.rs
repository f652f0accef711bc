//! `secure-run --afl`: an AFL++ executor. afl-fuzz runs `secure-run --afl APP ARGS` as it would run an
//! instrumented target; secure-run speaks the forkserver protocol ([`forkserver`]), boots the VM once,
//! and runs one execution per request, in the isolation mode asked for (docs/fuzzing.md, "Campaigns").
//!
//! - Input: afl-fuzz's `@@` file (the argument whose file name is `.cur_input`, or `--afl-input`'s path)
//!   appears in the guest at the same path with each execution's contents; without one, the input is
//!   the app's stdin (afl-fuzz's `.cur_input`, re-read from its start for each execution). At most
//!   [`MAX_INPUT`] bytes reach the app (AFL++'s own limit).
//! - Reset: on KVM the VM is snapshotted at the kernel's snapshot point, just before the app's first
//!   instruction, and restored after each execution ([`crate::backend::KvmExecutor`]): every execution
//!   starts from the same state, with the same `--seed`. On QEMU each execution boots a fresh VM.
//! - Coverage: the app attaches afl-fuzz's map with `shmat(__AFL_SHM_ID)`: on KVM the guest writes the
//!   host segment itself (a second memory slot), on QEMU the map is copied out after each execution.
//! - Verdicts: a fault or fatal signal is reported as that signal, an exit as its status; when afl-fuzz's
//!   hang timeout kills the execution's stand-in process (`standin.rs`), the execution stops and reports
//!   SIGKILL.

pub mod forkserver;
mod shm;
mod standin;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kernel_abi::{exit_code, signal, IsolationMode};
use rand_core::{OsRng, TryRngCore};

use crate::backend::{self, Backend, KvmExecutor, RestoreStats, RunConfig};
use crate::devices::console::ConsoleSink;
use crate::exit::{GuestOutcome, StopReason};
use crate::image::{Bytes, Chunk};
use crate::loader::{AflLoad, LoadedVm, RegionReport};
use crate::policy;
use crate::report::{CrashReport, LayoutReport, RunReport, RunSetup};
use crate::run::{prepare_with, ProcessSink, RunError, RunOptions};

/// The most input bytes one execution gets: AFL++'s `MAX_FILE`.
pub const MAX_INPUT: u64 = 1 << 20;

/// The environment variable naming afl-fuzz's coverage map, NUL-terminated: afl-fuzz checks that a
/// target's binary contains these bytes before it accepts it as instrumented.
static SHM_ENV_VAR: &[u8] = b"__AFL_SHM_ID\0";

/// The file name afl-fuzz gives the file it substitutes for `@@`.
const CUR_INPUT: &str = ".cur_input";

/// What `--afl` adds to a run's options.
#[derive(Clone, Debug, Default)]
pub struct AflOptions {
    /// The file afl-fuzz writes each input to (`afl-fuzz -f`); by default the argument named
    /// `.cur_input`, else stdin.
    pub input_file: Option<PathBuf>,
    pub snapshot: SnapshotPoint,
    /// Where to keep one JSON crash report and the input of each execution that crashed.
    pub crash_dir: Option<PathBuf>,
}

/// Where the VM is snapshotted (`--afl-snapshot`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotPoint {
    /// Just before the app's first instruction: every execution runs the app's whole start-up.
    Entry,
    /// At the app's first system call that could observe its input (after the C library's start-up).
    #[default]
    AfterStartup,
}

/// Where the app finds its input.
enum Input {
    /// The host file afl-fuzz writes, shown in the guest at `guest_path`.
    File { host: PathBuf, guest_path: Vec<u8> },
    /// secure-run's stdin (afl-fuzz's input file, read from its start each time).
    Stdin,
}

impl Input {
    fn find(options: &RunOptions, afl: &AflOptions) -> Self {
        let named = afl.input_file.clone().or_else(|| {
            options.args.iter().map(PathBuf::from).find(|arg| arg.file_name().is_some_and(|name| name == CUR_INPUT))
        });
        match named {
            Some(host) => {
                // The guest's working directory is `/`: a relative path names the same file from there.
                let mut guest_path = Vec::new();
                if !host.is_absolute() {
                    guest_path.push(b'/');
                }
                guest_path.extend_from_slice(host.as_os_str().as_bytes());
                Self::File { host, guest_path }
            }
            None => Self::Stdin,
        }
    }

    /// This execution's input, at most `capacity` bytes of it.
    fn read(&self, capacity: usize) -> Result<Vec<u8>, RunError> {
        match self {
            Self::File { host, .. } => read_capped(host, capacity),
            Self::Stdin => pread_stdin(capacity),
        }
    }
}

fn read_capped(path: &Path, capacity: usize) -> Result<Vec<u8>, RunError> {
    use std::io::Read;
    let io = |source| RunError::Io { what: format!("the input file {}", path.display()), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(capacity as u64).read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Reads stdin from offset 0 (afl-fuzz rewrites the file behind it for each execution).
fn pread_stdin(capacity: usize) -> Result<Vec<u8>, RunError> {
    let mut bytes = vec![0u8; capacity];
    let mut filled = 0;
    while filled < capacity {
        // SAFETY: the destination is the unfilled tail of `bytes`, valid for writes of that length.
        let read =
            unsafe { libc::pread(0, bytes[filled..].as_mut_ptr().cast(), capacity - filled, filled as libc::off_t) };
        match read {
            0 => break,
            read if read > 0 => filled += read as usize,
            _ => {
                let error = std::io::Error::last_os_error();
                if error.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(RunError::Io {
                    what: "the input on stdin (it must be a file, as afl-fuzz gives it)".into(),
                    source: error,
                });
            }
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// How the executions run.
enum Executor<'v> {
    /// One VM, restored from its snapshot after each execution.
    Kvm(Box<KvmExecutor>),
    /// A fresh QEMU per execution, the input in its image; the map is copied out after each.
    Qemu { vm: &'v LoadedVm, config: RunConfig },
}

impl Executor<'_> {
    fn run(
        &mut self,
        input: &[u8],
        map: Option<&shm::Segment>,
        sink: &mut dyn ConsoleSink,
    ) -> Result<GuestOutcome, RunError> {
        match self {
            Self::Kvm(executor) => Ok(executor.run(input, sink)?),
            Self::Qemu { vm, config } => {
                let regions = vm.image.afl.unwrap_or_default();
                let bytes = Bytes::from(regions.input_region_bytes(input));
                let mut image = vm.image.clone();
                image.chunks.push(Chunk { guest_phys: regions.input.phys_start, bytes });
                image.chunks.sort_by_key(|chunk| chunk.guest_phys);
                backend::validate_image(&image, &vm.entry)?;
                let mut copy_map = |ram: &dyn crate::devices::console::GuestRam| {
                    if let Some(map) = map {
                        let mut bytes = vec![0; map.size()];
                        if ram.read(regions.map.phys_start, &mut bytes) {
                            map.write(&bytes);
                        }
                    }
                };
                Ok(backend::qemu::run_then(&image, &vm.entry, config, sink, &mut copy_map)?)
            }
        }
    }

    /// Resets for the next execution; on KVM, what the restore did.
    fn restore(&mut self) -> Result<Option<RestoreStats>, RunError> {
        match self {
            Self::Kvm(executor) => {
                executor.restore()?;
                Ok(Some(executor.last_restore()))
            }
            Self::Qemu { .. } => Ok(None),
        }
    }
}

/// What `--verbose` reports when the campaign ends: executions, their time, the resets.
#[derive(Default)]
struct Summary {
    executions: u64,
    run: Vec<Duration>,
    restore: Vec<Duration>,
    pages: Vec<u64>,
}

impl Summary {
    fn line(&mut self) -> String {
        fn median<T: Copy + Ord + Default>(values: &mut [T]) -> T {
            values.sort_unstable();
            values.get(values.len() / 2).copied().unwrap_or_default()
        }
        let mut line = format!(
            "secure-run: afl: {} executions, median {:?} each (request to status)",
            self.executions,
            median(&mut self.run)
        );
        if !self.restore.is_empty() {
            line.push_str(&format!(
                "; reset from the snapshot: median {:?}, {} pages",
                median(&mut self.restore),
                median(&mut self.pages)
            ));
        }
        line
    }
}

/// The `waitpid` status afl-fuzz gets for an outcome, and the crash report when the app faulted.
fn wait_status(outcome: &GuestOutcome, regions: &[RegionReport]) -> (i32, Option<CrashReport>) {
    // An input that made the app forge a verdict (or hide a crash) is a finding: SIGSYS, as secure-run's
    // own status 159 says, whatever the forged frames claimed.
    if outcome.tampering.is_some() {
        return (signal::SIGSYS, None);
    }
    if let Some(record) = &outcome.crash {
        let report = CrashReport::new(record, regions);
        // A fault of the kernel itself is a finding too: reported like an abort.
        let code = report.exit_code();
        let signal = if code > 128 { code - 128 } else { signal::SIGABRT };
        return (signal & 0x7f, Some(report));
    }
    if let Some(signal) = outcome.killed_by {
        return (signal & 0x7f, None);
    }
    match (&outcome.stop, outcome.status) {
        (StopReason::ExitPort, Some(status)) => ((status & 0xff) << 8, None),
        (StopReason::Cancelled | StopReason::Timeout, _) => (signal::SIGKILL, None),
        // The VM ended abnormally (a triple fault, an instruction the hypervisor cannot run, a corrupt
        // console ring): the input broke something, which afl-fuzz must keep.
        _ => (signal::SIGABRT, None),
    }
}

fn usage(message: String) -> RunError {
    RunError::Usage(message)
}

/// Runs the executor until afl-fuzz ends the campaign; the exit status is secure-run's.
pub fn run(options: &RunOptions, afl: &AflOptions) -> Result<i32, RunError> {
    if options.timeout.is_some() {
        return Err(usage(
            "--timeout does not combine with --afl: afl-fuzz's -t decides when an execution hangs".into(),
        ));
    }
    let Some(mut server) = forkserver::ForkServer::open() else {
        return Err(usage(format!(
            "--afl: file descriptors {} and {} are not open; run it under afl-fuzz: afl-fuzz -i IN -o OUT -- \
             secure-run --afl APP @@",
            forkserver::CONTROL_FD,
            forkserver::STATUS_FD
        )));
    };
    if let Some(dir) = &afl.crash_dir {
        std::fs::create_dir_all(dir)
            .map_err(|source| RunError::WriteFile { path: format!("the --crash-dir {}", dir.display()), source })?;
    }
    let input = Input::find(options, afl);
    // SAFETY: SHM_ENV_VAR is NUL-terminated; getenv returns a pointer into the environment or null.
    let shm_id = unsafe {
        let value = libc::getenv(SHM_ENV_VAR.as_ptr().cast());
        (!value.is_null()).then(|| std::ffi::CStr::from_ptr(value).to_string_lossy().into_owned())
    };
    let map = match shm_id {
        Some(text) => {
            let id: i32 = text.trim().parse().map_err(|_| usage(format!("__AFL_SHM_ID={text} is not a number")))?;
            let segment = shm::Segment::attach(id)
                .map_err(|source| RunError::Io { what: format!("afl-fuzz's coverage map (shm id {id})"), source })?;
            Some(segment)
        }
        None => None,
    };
    let seed = options.seed.unwrap_or_else(|| OsRng.try_next_u64().unwrap_or(0));
    let mut guest_options = options.clone();
    if let Some(map) = &map {
        guest_options.env.push(OsString::from(format!("__AFL_SHM_ID={}", map.id())));
        if let Some(size) = std::env::var_os("AFL_MAP_SIZE") {
            let mut pair = OsString::from("AFL_MAP_SIZE=");
            pair.push(size);
            guest_options.env.push(pair);
        }
    }
    let (backend, notice) = policy::select_backend(options.backend, options.isolation)?;
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    let load = AflLoad {
        input_capacity: MAX_INPUT,
        input_path: match &input {
            Input::File { guest_path, .. } => Some(guest_path),
            Input::Stdin => None,
        },
        map_size: map.as_ref().map_or(0, |map| map.size() as u64),
        map_above_ram: backend == Backend::Kvm,
        shm_id: map.as_ref().map_or(0, |map| map.id() as u64),
        snapshot_after_startup: afl.snapshot == SnapshotPoint::AfterStartup,
    };
    let mut vm = prepare_with(&guest_options, &[], seed, Some(load), policy::kvm_probe)?;
    // One key for the whole campaign: every execution restores the same kernel (its copy of the key
    // included) from the snapshot, and the app never learns the key in any execution, so reusing it
    // across executions gives an input nothing a previous one could have learned.
    let console_key = crate::run::install_console_key(&mut vm)?;
    standin::install().map_err(|source| RunError::Io { what: "the SIGCHLD handler".into(), source })?;
    // The first stand-in is started before the VM exists, while forking is cheap.
    standin::ensure().map_err(|source| RunError::Io { what: "a stand-in process".into(), source })?;
    let config = RunConfig {
        console_key,
        output_limit: options.max_output,
        needs_pku: options.isolation == IsolationMode::Mpk,
        verbose: options.verbose,
        cancel: Some(&standin::KILLED),
        ..RunConfig::default()
    };
    let mut sink = ProcessSink { stdout: std::io::stdout(), stderr: std::io::stderr() };
    let mut executor = match backend {
        Backend::Kvm => {
            let host = map.as_ref().map(shm::Segment::address);
            // SAFETY: `map` outlives `executor` (declared before it, so dropped after it).
            match unsafe { KvmExecutor::boot(None, &vm.image, &vm.entry, &config, host, &mut sink) }? {
                Ok(executor) => Executor::Kvm(Box::new(executor)),
                Err(outcome) => return Err(never_reached(&outcome, &vm, seed)),
            }
        }
        Backend::Qemu => Executor::Qemu { vm: &vm, config: config.clone() },
    };
    let capacity = MAX_INPUT as usize;
    let setup = RunSetup { seed, aslr: options.aslr, backend, isolation: options.isolation };
    let context = setup.replay_context();
    let mut crashes = 0u64;
    if let Err(error) = server.hello() {
        return campaign_ended(error);
    }
    let mut summary = Summary::default();
    loop {
        match server.next_request() {
            Ok(Some(_)) => {}
            Ok(None) => {
                if options.verbose {
                    eprintln!("{}", summary.line());
                }
                return Ok(0);
            }
            Err(error) => return Err(pipe_error(error)),
        }
        let started = Instant::now();
        let bytes = input.read(capacity)?;
        let pid = standin::ensure().map_err(|source| RunError::Io { what: "a stand-in process".into(), source })?;
        if let Err(error) = server.started(pid) {
            return campaign_ended(error);
        }
        let outcome = executor.run(&bytes, map.as_ref(), &mut sink)?;
        let _ = std::io::stdout().flush();
        let (status, crash) = wait_status(&outcome, &vm.regions);
        if let Some(tampering) = outcome.tampering {
            eprintln!("{} ({context})", crate::run::tampering_line(tampering));
        }
        if let Some(report) = &crash {
            eprintln!("{}", report.paragraph(&context));
        }
        let crashed = status & 0x7f != 0 && outcome.stop != StopReason::Cancelled;
        if let (true, Some(dir)) = (crashed, &afl.crash_dir) {
            crashes += 1;
            keep_crash(dir, crashes, &bytes, status, &outcome, crash.as_ref(), &vm, &setup)?;
        }
        if let Err(error) = server.finished(status) {
            return campaign_ended(error);
        }
        summary.executions += 1;
        summary.run.push(started.elapsed());
        if let Some(restore) = executor.restore()? {
            summary.restore.push(restore.time);
            summary.pages.push(restore.pages);
        }
    }
}

/// Writes `DIR/crash-PID-N.input` (the input) and `DIR/crash-PID-N.json` (the run report: exit status
/// 128 + signal, crash, seed, layout; docs/report.md).
#[allow(clippy::too_many_arguments)]
fn keep_crash(
    dir: &Path,
    number: u64,
    input: &[u8],
    status: i32,
    outcome: &GuestOutcome,
    crash: Option<&CrashReport>,
    vm: &LoadedVm,
    setup: &RunSetup,
) -> Result<(), RunError> {
    let stem = dir.join(format!("crash-{}-{number:06}", std::process::id()));
    let input_path = stem.with_extension("input");
    let report_path = stem.with_extension("json");
    let failed = |path: &Path, source| RunError::WriteFile { path: path.display().to_string(), source };
    std::fs::write(&input_path, input).map_err(|source| failed(&input_path, source))?;
    let code = exit_code::killed_by(status & 0x7f);
    RunReport::new(code, outcome, crash, LayoutReport::of(vm), setup)
        .write(&report_path)
        .map_err(|source| failed(&report_path, source))
}

/// A write to afl-fuzz that failed: a closed pipe is the campaign's end (secure-run exits 0), anything
/// else an error.
fn campaign_ended(error: std::io::Error) -> Result<i32, RunError> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(0)
    } else {
        Err(pipe_error(error))
    }
}

fn pipe_error(source: std::io::Error) -> RunError {
    RunError::Io { what: "afl-fuzz's forkserver pipes".into(), source }
}

/// The error for a guest that ended before the snapshot point (the kernel refused to start the app).
fn never_reached(outcome: &GuestOutcome, vm: &LoadedVm, seed: u64) -> RunError {
    let (status, _) = wait_status(outcome, &vm.regions);
    RunError::CannotExecute {
        path: "the app".into(),
        reason: format!(
            "the app ended before the snapshot point, where each execution starts ({}; wait status \
             {status:#x}, seed {seed}): is its command line right? (--afl-snapshot entry snapshots before its \
             first instruction)",
            outcome.stop
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_abi::CrashRecord;

    fn outcome(stop: StopReason, status: Option<i32>) -> GuestOutcome {
        GuestOutcome {
            status,
            crash: None,
            tampering: None,
            killed_by: None,
            stop,
            garbage_bytes: 0,
            output_truncated: false,
            log_truncated: false,
            unhandled_accesses: 0,
            exits: 0,
            first_exit_after: None,
            wall_time: Duration::ZERO,
        }
    }

    #[test]
    fn outcomes_become_the_wait_statuses_afl_fuzz_expects() {
        let vm: &[RegionReport] = &[];
        // exit(7): WIFEXITED, WEXITSTATUS 7.
        assert_eq!(wait_status(&outcome(StopReason::ExitPort, Some(7)), vm).0, 7 << 8);
        // exit(134) is an exit, not SIGABRT...
        assert_eq!(wait_status(&outcome(StopReason::ExitPort, Some(134)), vm).0, 134 << 8);
        // ...but a Killed frame is the signal.
        let killed = GuestOutcome { killed_by: Some(6), ..outcome(StopReason::ExitPort, Some(134)) };
        assert_eq!(wait_status(&killed, vm).0, 6);
        // A page fault of the app: SIGSEGV, with a crash report.
        let record = CrashRecord { vector: 14, ..Default::default() };
        let crashed = GuestOutcome { crash: Some(record), ..outcome(StopReason::ExitPort, Some(139)) };
        let (status, report) = wait_status(&crashed, vm);
        assert_eq!(status, 11);
        assert!(report.is_some());
        // afl-fuzz's kill of the stand-in: SIGKILL.
        assert_eq!(wait_status(&outcome(StopReason::Cancelled, None), vm).0, 9);
        // Tampering is a crash, even after a forged status 0.
        let forged = GuestOutcome {
            tampering: Some(crate::devices::console::Tampering::StopWithoutVerdict),
            ..outcome(StopReason::ExitPort, Some(0))
        };
        assert_eq!(wait_status(&forged, vm).0, signal::SIGSYS);
        // A VM that ended abnormally is kept as a crash.
        assert_eq!(wait_status(&outcome(StopReason::TripleFault, None), vm).0, 6);
    }

    #[test]
    fn the_binary_carries_the_variable_afl_fuzz_looks_for() {
        assert_eq!(SHM_ENV_VAR, b"__AFL_SHM_ID\0");
    }
}
