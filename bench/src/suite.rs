//! The measurements: which configurations, how many repetitions, and what each one records.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kernel_abi::IsolationMode;
use vmm::backend::Backend;

use crate::guests::{self, GuestSpec};
use crate::machine::{self, Machine};
use crate::phases::{self, Phases};
use crate::runner::{self, ChildRun};
use crate::stats::{millis, Summary};
use crate::Options;

/// Where a program runs: natively, or under secure-run with a backend and an isolation mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub backend: Option<Backend>,
    pub isolation: IsolationMode,
}

impl Config {
    const fn vm(backend: Backend, isolation: IsolationMode) -> Self {
        Self { backend: Some(backend), isolation }
    }

    pub fn label(&self) -> String {
        match self.backend {
            None => "native".into(),
            Some(backend) => format!("{} + {}", backend.name(), self.isolation.name()),
        }
    }
}

pub const NATIVE: Config = Config { backend: None, isolation: IsolationMode::None };
pub const KVM_RING3: Config = Config::vm(Backend::Kvm, IsolationMode::Ring3);
pub const KVM_NONE: Config = Config::vm(Backend::Kvm, IsolationMode::None);
pub const KVM_MPK: Config = Config::vm(Backend::Kvm, IsolationMode::Mpk);
pub const QEMU_NONE: Config = Config::vm(Backend::Qemu, IsolationMode::None);
pub const QEMU_RING3: Config = Config::vm(Backend::Qemu, IsolationMode::Ring3);
pub const QEMU_MPK: Config = Config::vm(Backend::Qemu, IsolationMode::Mpk);

/// The VM configurations of the hello-world and syscall tables, in table order.
pub const VM_CONFIGS: [Config; 6] = [KVM_RING3, KVM_NONE, KVM_MPK, QEMU_NONE, QEMU_RING3, QEMU_MPK];

/// One measured quantity for one configuration.
#[derive(Clone, Debug)]
pub enum Cell {
    Value(Summary),
    Failed(String),
    NotApplicable(String),
}

impl Cell {
    pub fn value(&self) -> Option<&Summary> {
        match self {
            Self::Value(summary) => Some(summary),
            _ => None,
        }
    }

    /// The table text: "median (min–max)", "failed: …" or "n/a: …".
    pub fn show(&self, decimals: usize) -> String {
        match self {
            Self::Value(summary) => summary.show(decimals),
            Self::Failed(reason) => format!("failed: {}", runner::shorten(reason, 140).replace('|', "/")),
            Self::NotApplicable(reason) => format!("n/a: {reason}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct HelloRow {
    pub config: Config,
    pub asm: Cell,
    pub c: Cell,
    /// Peak RSS (MiB) over the asm hello runs.
    pub rss_mib: Cell,
}

#[derive(Clone, Debug)]
pub struct PhaseRow {
    pub config: Config,
    /// Median of each phase over the runs.
    pub phases: Result<Phases, String>,
    pub runs: usize,
}

#[derive(Clone, Debug)]
pub struct SyscallRow {
    pub config: Config,
    /// Cycles per getpid round trip.
    pub getpid: Cell,
    /// What getpid returned (the kernel may answer -ENOSYS).
    pub getpid_returned: String,
    /// Cycles per round trip of an unknown syscall number (-ENOSYS).
    pub unknown: Cell,
}

#[derive(Clone, Debug)]
pub struct OutputRow {
    pub config: Config,
    /// "4 KiB write()s" or "putchar (stdio)".
    pub how: &'static str,
    /// End-to-end wall time of writing [`OUTPUT_BYTES`] to stdout, ms.
    pub wall: Cell,
}

/// What the output rows write: 4 MiB.
pub const OUTPUT_BYTES: u64 = 4 << 20;

#[derive(Clone, Debug)]
pub struct ThreadRow {
    pub config: Config,
    /// Cycles per pthread_create + pthread_join of a thread that returns at once.
    pub create_join: Cell,
    /// Cycles per futex hand-off between two threads (FUTEX_WAKE in one, the FUTEX_WAIT return in the
    /// other).
    pub handoff: Cell,
    pub iterations: String,
    /// Cycles per fork + `_exit` + waitpid, and per fork + execve + waitpid.
    pub fork_wait: Cell,
    pub fork_exec_wait: Cell,
    pub process_iterations: String,
}

#[derive(Clone, Debug)]
pub struct ComputeRow {
    pub program: &'static str,
    pub flavor: &'static str,
    pub config: Config,
    /// End-to-end wall time, ms.
    pub wall: Cell,
    /// The in-guest measure: SHA-256 ms, or cycles per write.
    pub inner: Cell,
    /// What else the run said (write target and count, digest check).
    pub note: String,
}

/// Everything performance.md shows.
#[derive(Clone, Debug)]
pub struct Results {
    pub machine: Machine,
    pub repetitions: Repetitions,
    pub secure_run: PathBuf,
    pub guest_errors: Vec<String>,
    pub hello: Vec<HelloRow>,
    pub phases: Vec<PhaseRow>,
    pub syscalls: Vec<SyscallRow>,
    pub compute: Vec<ComputeRow>,
    /// sha256 without, beside and on a guarded page (`program` names the variant, [`GUARDED_VARIANTS`]).
    pub guarded: Vec<ComputeRow>,
    /// bash-static running the tests' script ([`BASH_STATIC`]).
    pub guarded_bash: Vec<ComputeRow>,
    pub threads: Vec<ThreadRow>,
    pub output: Vec<OutputRow>,
    pub fuzzing: crate::fuzzing::FuzzResults,
    /// Peak RSS (MiB) of secure-run refusing `--backend kvm --isolation mpk` after building the image:
    /// the VMM without any guest memory.
    pub rss_without_vm: Cell,
    pub elapsed: Duration,
}

/// How many times each measurement repeats.
#[derive(Clone, Copy, Debug)]
pub struct Repetitions {
    pub hello: usize,
    pub phases: usize,
    pub syscall: usize,
    pub compute: usize,
}

/// Writes per run of the writes guest: the nested KVM emulates every kernel instruction (about 2 ms per
/// write here), so it gets fewer.
const WRITES: u64 = 20_000;
const WRITES_KVM: u64 = 200;
const SHA_MIB: u64 = 64;
/// The guarded-code rows' builds of sha256, in table order: the unguarded baseline first, the hot one last.
pub const GUARDED_VARIANTS: [(GuestSpec, &str); 3] = [
    (guests::SHA256_NOLIBC, "no guarded sequence"),
    (guests::SHA256_GUARDED_COLD, "guarded sequence on a page of its own"),
    (guests::SHA256_GUARDED_HOT, "guarded sequence on the hot loop's page"),
];
/// The guarded-code rows' real program, and the script the integration tests give it
/// (tests/integration/busybox.rs): command substitutions, a subshell, a function.
pub const BASH_STATIC: &str = "/bin/bash-static";
const SHELL_SCRIPT: &str =
    "x=$(echo sub); echo \"got $x\"; (exit 3); echo \"subshell $?\"; f() { echo in; return 4; }; \
                            y=$(f); echo \"$y $?\"; echo \"$(echo $(echo nested))\"";
/// What the guarded-code rows hash: in `mpk` the hot variant runs every instruction of its loop
/// single-stepped (about 10 s for this on QEMU TCG here).
pub const GUARDED_SHA_KIB: u64 = 16;
const TIMEOUT: Duration = Duration::from_secs(120);

struct Guests(BTreeMap<&'static str, Result<PathBuf, String>>);

impl Guests {
    fn get(&self, spec: &GuestSpec) -> Result<&Path, String> {
        match self.0.get(spec.name) {
            Some(Ok(path)) => Ok(path),
            Some(Err(reason)) => Err(format!("guest {} not built: {reason}", spec.name)),
            None => Err(format!("guest {} not built", spec.name)),
        }
    }
}

/// Why `config` cannot run here at all, if it cannot.
fn not_applicable(config: Config, kvm: &vmm::backend::KvmCapabilities) -> Option<String> {
    match config.backend {
        Some(Backend::Kvm) if !kvm.usable => Some("KVM is not usable here".into()),
        Some(Backend::Kvm) if config.isolation == IsolationMode::Mpk && (!kvm.pku || kvm.cpl0_emulated) => {
            Some("KVM here offers no PKU".into())
        }
        _ => None,
    }
}

/// Runs `app args` in `config` once; an unclean run is an error with its reason.
fn run_once(options: &Options, config: Config, app: &Path, args: &[String]) -> Result<ChildRun, String> {
    let run = match config.backend {
        None => runner::run(app, args, TIMEOUT),
        Some(backend) => {
            if !options.secure_run.exists() {
                return Err(format!(
                    "{} not found (build it with cargo build --release, or pass --secure-run)",
                    options.secure_run.display()
                ));
            }
            let mut argv: Vec<String> = [
                "--backend",
                backend.name(),
                "--isolation",
                config.isolation.name(),
                "--timeout",
                &TIMEOUT.as_secs().to_string(),
            ]
            .iter()
            .map(|arg| arg.to_string())
            .collect();
            argv.push(app.display().to_string());
            argv.extend(args.iter().cloned());
            runner::run(&options.secure_run, &argv, TIMEOUT + Duration::from_secs(10))
        }
    }
    .map_err(|error| format!("cannot run: {error}"))?;
    match run.failure() {
        Some(reason) => Err(reason),
        None => Ok(run),
    }
}

/// One untimed warm-up run, then `count` runs; `measure` turns each into a number. The first failure
/// ends the series.
fn repeat<T>(
    count: usize,
    mut run: impl FnMut() -> Result<ChildRun, String>,
    mut measure: impl FnMut(&ChildRun) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    run().and_then(|warm_up| measure(&warm_up))?;
    (0..count).map(|_| run().and_then(|child| measure(&child))).collect()
}

fn cell(values: Result<Vec<f64>, String>) -> Cell {
    match values {
        Ok(values) => Summary::of(&values).map_or_else(|| Cell::Failed("no samples".into()), Cell::Value),
        Err(reason) => Cell::Failed(reason),
    }
}

/// Two cells from a series of (wall, in-guest) pairs; a failure fills both.
fn cell_pair(measured: Result<Vec<(f64, f64)>, String>) -> (Cell, Cell) {
    match measured {
        Ok(pairs) => {
            (cell(Ok(pairs.iter().map(|pair| pair.0).collect())), cell(Ok(pairs.iter().map(|pair| pair.1).collect())))
        }
        Err(reason) => (Cell::Failed(reason.clone()), Cell::Failed(reason)),
    }
}

/// A sha256 guest's run: its wall time and hashing time (ms, from its cycle count at `tsc_khz`). The
/// native run's digest is kept in `native_digest`; any other run must match it.
fn sha256_times(
    run: &ChildRun,
    config: Config,
    native_digest: &mut Option<String>,
    tsc_khz: f64,
) -> Result<(f64, f64), String> {
    let line = run.stdout.lines().find(|line| line.starts_with("sha256 ")).ok_or("no digest")?;
    let digest = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let cycles: f64 = field(line, "cycles").and_then(|v| v.parse().ok()).ok_or("unreadable cycles")?;
    match native_digest {
        None if config == NATIVE => *native_digest = Some(digest),
        Some(expected) if *expected != digest => return Err(format!("wrong digest {digest} (native: {expected})")),
        _ => {}
    }
    Ok((millis(run.wall), cycles / tsc_khz))
}

/// The value after `key=` in `text`.
fn field<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    text.split_whitespace().find_map(|word| word.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

pub fn run_all(options: &Options) -> Results {
    let started = Instant::now();
    let repetitions = if options.quick {
        Repetitions { hello: 3, phases: 2, syscall: 1, compute: 1 }
    } else {
        Repetitions { hello: 20, phases: 5, syscall: 3, compute: 3 }
    };
    let machine = machine::describe();
    let kvm = vmm::backend::probe_kvm();
    let sources = options.root.join("bench/guests");
    let mut guest_errors = Vec::new();
    let guests = Guests(
        guests::ALL
            .iter()
            .map(|spec| {
                let built = guests::build(spec, &sources, &options.guest_dir);
                if let Err(reason) = &built {
                    guest_errors.push(format!("{}: {reason}", spec.name));
                }
                (spec.name, built)
            })
            .collect(),
    );

    // Hello world, end to end.
    let mut hello = Vec::new();
    for config in std::iter::once(NATIVE).chain(VM_CONFIGS) {
        eprintln!("bench: hello world, {}", config.label());
        if let Some(reason) = not_applicable(config, &kvm) {
            let na = Cell::NotApplicable(reason);
            hello.push(HelloRow { config, asm: na.clone(), c: na.clone(), rss_mib: na });
            continue;
        }
        let mut rss = Vec::new();
        let series = |spec: &GuestSpec, rss: &mut Vec<f64>| {
            let app = guests.get(spec);
            cell(repeat(
                repetitions.hello,
                || run_once(options, config, app.clone()?, &[]),
                |run| {
                    if !run.stdout.contains("Hello, World!") {
                        return Err(format!("unexpected output {:?}", runner::shorten(&run.stdout, 60)));
                    }
                    rss.push(run.max_rss_kib as f64 / 1024.0);
                    Ok(millis(run.wall))
                },
            ))
        };
        let asm = series(&guests::HELLO_ASM, &mut rss);
        let c = match series(&guests::HELLO_C, &mut Vec::new()) {
            // glibc's start-up uses SSE; where the app runs at CPL0 (`none`, `mpk`) a nested KVM that
            // emulates CPL0 code stops the VM on it (docs/design.md). The run happened and failed this way.
            Cell::Failed(reason) if config.backend == Some(Backend::Kvm) && reason.contains("KVM internal error 1") => {
                Cell::NotApplicable(
                    "glibc's SSE code at CPL0 stops this nested KVM (it emulates CPL0 code; use ring3)".into(),
                )
            }
            other => other,
        };
        let rss_mib = cell(if rss.is_empty() { Err("no successful run".into()) } else { Ok(rss) });
        hello.push(HelloRow { config, asm, c, rss_mib });
    }

    // The VMM's own memory: secure-run refuses kvm + mpk here after building the image, before any VM.
    let rss_without_vm = match guests.get(&guests::HELLO_ASM) {
        Ok(app) if options.secure_run.exists() => {
            let args = ["--backend", "kvm", "--isolation", "mpk", &app.display().to_string()].map(String::from);
            let samples: Vec<f64> = (0..3)
                .filter_map(|_| runner::run(&options.secure_run, &args, TIMEOUT).ok())
                .map(|run| run.max_rss_kib as f64 / 1024.0)
                .collect();
            cell(Ok(samples))
        }
        Ok(_) => Cell::Failed("secure-run not found".into()),
        Err(reason) => Cell::Failed(reason),
    };

    // Where the time goes, in-process.
    let mut phase_rows = Vec::new();
    for config in VM_CONFIGS {
        let Some(backend) = config.backend else { continue };
        eprintln!("bench: boot phases, {}", config.label());
        if let Some(reason) = not_applicable(config, &kvm) {
            phase_rows.push(PhaseRow { config, phases: Err(format!("n/a: {reason}")), runs: 0 });
            continue;
        }
        let measured: Result<Vec<Phases>, String> = guests.get(&guests::BOOT_PROBE).and_then(|probe| {
            // A warm-up run first, as for the others.
            phases::measure(probe, backend, config.isolation, machine.tsc_khz)?;
            (0..repetitions.phases)
                .map(|_| phases::measure(probe, backend, config.isolation, machine.tsc_khz))
                .collect()
        });
        let runs = measured.as_ref().map_or(0, Vec::len);
        phase_rows.push(PhaseRow { config, phases: measured.map(|runs| median_phases(&runs)), runs });
    }

    // Syscall round trip.
    let mut syscalls = Vec::new();
    let target_mcycles = if options.quick { "50" } else { "100" }.to_string();
    for config in std::iter::once(NATIVE).chain(VM_CONFIGS) {
        eprintln!("bench: syscall round trip, {}", config.label());
        if let Some(reason) = not_applicable(config, &kvm) {
            let na = Cell::NotApplicable(reason);
            syscalls.push(SyscallRow { config, getpid: na.clone(), getpid_returned: String::new(), unknown: na });
            continue;
        }
        let mut returned = String::new();
        let measured = repeat(
            repetitions.syscall,
            || run_once(options, config, guests.get(&guests::SYSCALL_LOOP)?, std::slice::from_ref(&target_mcycles)),
            |run| {
                let line = |name: &str| {
                    run.stdout
                        .lines()
                        .find(|line| line.starts_with(&format!("syscall {name} ")))
                        .ok_or_else(|| format!("no {name} line in {:?}", runner::shorten(&run.stdout, 80)))
                };
                let cycles = |line: &str| -> Result<f64, String> {
                    field(line, "cycles_per_call")
                        .and_then(|value| value.parse().ok())
                        .ok_or_else(|| format!("unreadable line {line:?}"))
                };
                let getpid = line("getpid")?;
                returned = field(getpid, "ret").unwrap_or("?").to_string();
                Ok((cycles(getpid)?, cycles(line("unknown")?)?))
            },
        );
        let (getpid, unknown) = match measured {
            Ok(pairs) => (
                cell(Ok(pairs.iter().map(|pair| pair.0).collect())),
                cell(Ok(pairs.iter().map(|pair| pair.1).collect())),
            ),
            Err(reason) => (Cell::Failed(reason.clone()), Cell::Failed(reason)),
        };
        syscalls.push(SyscallRow { config, getpid, getpid_returned: returned, unknown });
    }

    // Console output: 4 MiB to stdout, checked byte for byte against the native run's.
    let mut output = Vec::new();
    let mut native_output: Vec<Option<String>> = vec![None, None];
    for config in [NATIVE, KVM_RING3, QEMU_NONE, QEMU_MPK] {
        for (index, (how, chunk)) in [("4 KiB write()s", "4096"), ("putchar (stdio)", "1")].into_iter().enumerate() {
            eprintln!("bench: stdout, {how}, {}", config.label());
            if let Some(reason) = not_applicable(config, &kvm) {
                output.push(OutputRow { config, how, wall: Cell::NotApplicable(reason) });
                continue;
            }
            let args = ["bulk".to_string(), OUTPUT_BYTES.to_string(), chunk.to_string()];
            let measured = repeat(
                repetitions.compute,
                || run_once(options, config, guests.get(&guests::OUTPUT)?, &args),
                |run| {
                    match &native_output[index] {
                        None if config == NATIVE => native_output[index] = Some(run.stdout.clone()),
                        Some(expected) if *expected != run.stdout => {
                            return Err(format!("output differs from the native run's ({} bytes)", run.stdout.len()))
                        }
                        _ => {}
                    }
                    Ok(millis(run.wall))
                },
            );
            output.push(OutputRow { config, how, wall: cell(measured) });
        }
    }

    // Threads: create + join, and a contended futex hand-off; processes: fork + wait, fork + exec + wait.
    let mut threads = Vec::new();
    for config in [NATIVE, KVM_RING3, QEMU_NONE, QEMU_RING3, QEMU_MPK] {
        eprintln!("bench: threads and processes, {}", config.label());
        // Where the hypervisor emulates kernel code a hand-off costs milliseconds, a fork a fifth of a
        // second: fewer rounds there.
        let (iterations, process_iterations) = match config.backend {
            None => ("2000", "200"),
            Some(Backend::Kvm) => ("40", "4"),
            Some(Backend::Qemu) => ("400", "40"),
        };
        if let Some(reason) = not_applicable(config, &kvm) {
            let na = Cell::NotApplicable(reason);
            threads.push(ThreadRow {
                config,
                create_join: na.clone(),
                handoff: na.clone(),
                iterations: String::new(),
                fork_wait: na.clone(),
                fork_exec_wait: na,
                process_iterations: String::new(),
            });
            continue;
        }
        let args = [iterations.to_string(), process_iterations.to_string()];
        let measured = repeat(
            repetitions.compute,
            || run_once(options, config, guests.get(&guests::THREADS)?, &args),
            |run| {
                let value = |prefix: &str, key: &str| -> Result<f64, String> {
                    let line = run
                        .stdout
                        .lines()
                        .find(|line| line.starts_with(&format!("{prefix} ")))
                        .ok_or_else(|| format!("no {prefix} line in {:?}", runner::shorten(&run.stdout, 80)))?;
                    field(line, key).and_then(|v| v.parse().ok()).ok_or_else(|| format!("unreadable line {line:?}"))
                };
                Ok([
                    value("threads create_join", "cycles_per_round_trip")?,
                    value("threads futex_handoff", "cycles_per_handoff")?,
                    value("processes fork_wait", "cycles_per_round_trip")?,
                    value("processes fork_exec_wait", "cycles_per_round_trip")?,
                ])
            },
        );
        let column = |k: usize| match &measured {
            Ok(rows) => cell(Ok(rows.iter().map(|row| row[k]).collect())),
            Err(reason) => Cell::Failed(reason.clone()),
        };
        threads.push(ThreadRow {
            config,
            create_join: column(0),
            handoff: column(1),
            iterations: iterations.to_string(),
            fork_wait: column(2),
            fork_exec_wait: column(3),
            process_iterations: process_iterations.to_string(),
        });
    }

    // CPU-bound and syscall-heavy programs.
    let mut compute = Vec::new();
    let mut native_digest: Option<String> = None;
    for (spec, program) in [
        (guests::SHA256_NOLIBC, "sha256"),
        (guests::SHA256_GLIBC, "sha256"),
        (guests::WRITES_NOLIBC, "writes"),
        (guests::WRITES_GLIBC, "writes"),
    ] {
        for config in [NATIVE, KVM_RING3, QEMU_NONE, QEMU_MPK] {
            eprintln!("bench: {} ({}), {}", program, spec.flavor.label(), config.label());
            let args = if program == "sha256" {
                vec![SHA_MIB.to_string()]
            } else if config.backend == Some(Backend::Kvm) {
                vec![WRITES_KVM.to_string()]
            } else {
                vec![WRITES.to_string()]
            };
            let mut note = String::new();
            let measured = repeat(
                repetitions.compute,
                || run_once(options, config, guests.get(&spec)?, &args),
                |run| {
                    if program == "sha256" {
                        let times = sha256_times(run, config, &mut native_digest, machine.tsc_khz)?;
                        note = format!(
                            "{SHA_MIB} MiB, digest {}",
                            if native_digest.is_some() { "= native" } else { "unchecked" }
                        );
                        Ok(times)
                    } else {
                        let line =
                            run.stderr.lines().find(|line| line.starts_with("writes ")).ok_or("no writes line")?;
                        let per_write: f64 =
                            field(line, "cycles_per_write").and_then(|v| v.parse().ok()).ok_or("unreadable line")?;
                        let failed = field(line, "failed").unwrap_or("?");
                        note = format!(
                            "{} × 64 B to {}{}",
                            field(line, "count").unwrap_or("?"),
                            field(line, "target").unwrap_or("?"),
                            if failed == "0" { String::new() } else { format!(", {failed} failed") }
                        );
                        Ok((millis(run.wall), per_write))
                    }
                },
            );
            let (wall, inner) = cell_pair(measured);
            compute.push(ComputeRow { program, flavor: spec.flavor.label(), config, wall, inner, note });
        }
    }

    // Guarded code: the same hashing with no guarded sequence, one on a page of its own, one on the
    // hot loop's page.
    let mut guarded = Vec::new();
    let mut native_digest: Option<String> = None;
    for (spec, program) in GUARDED_VARIANTS {
        for config in [NATIVE, QEMU_NONE, QEMU_MPK, KVM_MPK] {
            eprintln!("bench: sha256 {GUARDED_SHA_KIB} KiB, {program}, {}", config.label());
            if let Some(reason) = not_applicable(config, &kvm) {
                let na = Cell::NotApplicable(reason);
                let flavor = spec.flavor.label();
                guarded.push(ComputeRow { program, flavor, config, wall: na.clone(), inner: na, note: String::new() });
                continue;
            }
            let args = [GUARDED_SHA_KIB.to_string(), "K".to_string()];
            let measured = repeat(
                repetitions.compute,
                || run_once(options, config, guests.get(&spec)?, &args),
                |run| sha256_times(run, config, &mut native_digest, machine.tsc_khz),
            );
            let (wall, inner) = cell_pair(measured);
            let note = if native_digest.is_some() { "digest = native" } else { "digest unchecked" }.to_string();
            guarded.push(ComputeRow { program, flavor: spec.flavor.label(), config, wall, inner, note });
        }
    }

    // A real program with guarded sequences: Debian's bash-static running the tests' shell script.
    let bash = Path::new(BASH_STATIC);
    let mut guarded_bash = Vec::new();
    let mut native_output: Option<String> = None;
    for config in [NATIVE, QEMU_NONE, QEMU_MPK, KVM_MPK] {
        eprintln!("bench: {BASH_STATIC} -c SCRIPT, {}", config.label());
        let program = "bash-static -c (the tests' script)";
        let flavor = "Debian bash-static";
        let no_clock = || Cell::NotApplicable("no in-guest clock".into());
        let wall = if let Some(reason) = not_applicable(config, &kvm) {
            Cell::NotApplicable(reason)
        } else if !bash.exists() {
            Cell::Failed(format!("{BASH_STATIC} is not installed (Debian package bash-static)"))
        } else {
            let args = ["-c".to_string(), SHELL_SCRIPT.to_string()];
            cell(repeat(
                repetitions.compute,
                || run_once(options, config, bash, &args),
                |run| {
                    match &native_output {
                        None if config == NATIVE => native_output = Some(run.stdout.clone()),
                        Some(expected) if *expected != run.stdout => {
                            return Err(format!("output {:?} differs from native", runner::shorten(&run.stdout, 60)))
                        }
                        _ => {}
                    }
                    Ok(millis(run.wall))
                },
            ))
        };
        let note = if native_output.is_some() { "output = native" } else { "output unchecked" }.to_string();
        guarded_bash.push(ComputeRow { program, flavor, config, wall, inner: no_clock(), note });
    }

    Results {
        machine,
        repetitions,
        secure_run: options.secure_run.clone(),
        guest_errors,
        hello,
        phases: phase_rows,
        syscalls,
        compute,
        guarded,
        guarded_bash,
        threads,
        output,
        fuzzing: crate::fuzzing::run(options, kvm.usable, &options.out.join("fuzzing-campaign.svg")),
        rss_without_vm,
        elapsed: started.elapsed(),
    }
}

/// The median of each phase over `runs` (not one run's split: each column is its own median).
fn median_phases(runs: &[Phases]) -> Phases {
    let median = |get: fn(&Phases) -> f64| {
        Summary::of(&runs.iter().map(get).collect::<Vec<_>>()).map_or(0.0, |summary| summary.median)
    };
    Phases {
        setup: median(|p| p.setup),
        select: median(|p| p.select),
        backend_start: median(|p| p.backend_start),
        kernel_init: median(|p| p.kernel_init),
        app_and_exit: median(|p| p.app_and_exit),
        teardown: median(|p| p.teardown),
        total: median(|p| p.total),
        image_bytes: runs.first().map_or(0, |p| p.image_bytes),
        exits: median(|p| p.exits as f64) as u64,
    }
}
