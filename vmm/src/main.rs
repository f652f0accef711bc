//! `secure-run`: parse the command line, run, map the result to an exit status.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use kernel_abi::{exit_code, IsolationMode};
use vmm::policy::BackendChoice;
use vmm::run::{self, RunOptions};

/// Run a static x86-64 Linux program inside a single-purpose VM with secure-run's own small kernel,
/// isolated from that kernel's memory.
///
/// Prints what the app prints and exits with its status. Signals reach the app's handlers as on Linux;
/// a fault or signal it does not handle kills it with 128 + signal (SIGSEGV → 139, SIGILL → 132,
/// SIGFPE → 136, SIGBUS → 135, SIGABRT → 134), a fault with a crash report on stderr. An app that
/// forges the kernel's console channel (a frame without the run's secret key, a stop through the exit
/// port without the kernel's verdict) ends with 159 (128 + SIGSYS, a crash) and one "tampering" line;
/// in --isolation none the app can read the key, so there no verdict is guaranteed.
/// secure-run's own failures: 124 timeout, 125 VMM or backend error, 126 the app cannot be executed,
/// 127 app not found, 2 usage error.
#[derive(Parser, Debug)]
#[command(name = "secure-run", version, max_term_width = 100)]
struct Cli {
    /// Which hypervisor runs the VM: kvm when it can honour the isolation mode, else QEMU (TCG).
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,

    /// How the app is kept away from the kernel: protection keys (mpk: app and kernel at CPL0, kernel
    /// memory keyed), privilege levels (ring3: the app at CPL3), or not at all (none: a baseline).
    #[arg(long, value_enum, default_value_t = IsolationArg::Mpk)]
    isolation: IsolationArg,

    /// Guest memory, in bytes or with a K, M or G suffix (2 MiB granularity).
    #[arg(long, default_value = "256M", value_parser = parse_memory)]
    memory: u64,

    /// Stop the app after this many seconds (exit status 124).
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    timeout: Option<Duration>,

    /// Seed of the layout randomization and of the guest's randomness; printed in every crash report,
    /// so a run can be replayed exactly.
    #[arg(long)]
    seed: Option<u64>,

    /// Place the kernel and a static-PIE app at random, non-overlapping bases (address-space layout
    /// randomization).
    #[arg(long)]
    aslr: bool,

    /// Print the guest's memory layout (regions, permissions, entropy) on stderr before running.
    #[arg(long)]
    print_layout: bool,

    /// Write a JSON report of the run (exit status, crash, layout, seed) to FILE; its fields are listed
    /// in docs/report.md.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,

    /// Copy the host directory HOST into the guest's file system at GUEST (read-only with `:ro`).
    /// Repeatable. Nothing else of the host is visible to the app.
    #[arg(long = "mount", value_name = "HOST:GUEST[:ro]", value_parser = parse_mount)]
    mounts: Vec<vmm::mount::Mount>,

    /// Set an environment variable for the app (`K=V`), or pass one through from secure-run's own
    /// environment (`K`). The app's environment is empty otherwise.
    #[arg(long = "env", value_name = "K[=V]")]
    env: Vec<OsString>,

    /// Print one line per syscall the app makes on stderr (strace-like).
    #[arg(long)]
    trace_syscalls: bool,

    /// In mpk mode, refuse app code containing any instruction of the inspection list: also those the
    /// kernel guards (WRPKRU, MOV to CR, WRMSR...: by default their pages run single-stepped and the
    /// app is stopped before one runs) and those its configuration makes harmless (XRSTOR, LTR...).
    /// See threat-model.md M4.
    #[arg(long)]
    strict_inspection: bool,

    /// Stop forwarding the app's stdout and stderr after this many bytes.
    #[arg(long, value_name = "BYTES", default_value = "64M", value_parser = parse_memory)]
    max_output: u64,

    /// Be an AFL++ executor: run under `afl-fuzz -i IN -o OUT -- secure-run --afl APP @@`, boot the VM
    /// once and run one input per afl-fuzz request from a snapshot (docs/fuzzing.md).
    #[arg(long)]
    afl: bool,

    /// With --afl: the file afl-fuzz writes each input to (its -f FILE). By default the argument named
    /// `.cur_input` (what afl-fuzz puts for @@), else the input is stdin.
    #[arg(long, value_name = "FILE", requires = "afl")]
    afl_input: Option<PathBuf>,

    /// With --afl: where each execution starts. `startup`: at the app's first system call that could see
    /// its input, after the C library's start-up (faster); `entry`: at its first instruction.
    #[arg(long, value_enum, value_name = "POINT", default_value_t = SnapshotArg::Startup, requires = "afl")]
    afl_snapshot: SnapshotArg,

    /// With --afl: keep each crashing execution's input and JSON report (exit status, crash, seed) in DIR,
    /// as crash-PID-N.input and crash-PID-N.json.
    #[arg(long, value_name = "DIR", requires = "afl")]
    crash_dir: Option<PathBuf>,

    /// Use this guest kernel ELF instead of the built-in one.
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,

    /// Report what the VMM does (backend, timings).
    #[arg(short, long)]
    verbose: bool,

    /// The static x86-64 Linux program to run.
    app: PathBuf,

    /// Arguments for the app.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BackendArg {
    Auto,
    Kvm,
    Qemu,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SnapshotArg {
    Entry,
    Startup,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum IsolationArg {
    Mpk,
    Ring3,
    None,
}

fn parse_memory(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, shift) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 10),
        Some((at, 'm' | 'M')) => (&text[..at], 20),
        Some((at, 'g' | 'G')) => (&text[..at], 30),
        _ => (text, 0),
    };
    let value: u64 = number.parse().map_err(|_| format!("`{text}` is not a size (examples: 256M, 1G, 4096)"))?;
    value.checked_mul(1 << shift).ok_or_else(|| format!("`{text}` is too large"))
}

fn parse_mount(text: &str) -> Result<vmm::mount::Mount, String> {
    vmm::mount::Mount::parse(text).map_err(|error| error.to_string())
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is not a valid timeout"))
}

/// Guest memory bounds: enough for the kernel and a small app, and what QEMU's machines map below their
/// PCI hole.
const MIN_MEMORY: u64 = 32 << 20;
const MAX_MEMORY: u64 = vmm::arch::x86_64::layout::MAX_MEMORY_SIZE;

fn options(cli: Cli) -> Result<(RunOptions, Option<vmm::afl::AflOptions>), String> {
    if cli.memory < MIN_MEMORY || cli.memory > MAX_MEMORY || !cli.memory.is_multiple_of(2 << 20) {
        return Err(format!(
            "--memory must be a multiple of 2M between {}M and {}M",
            MIN_MEMORY >> 20,
            MAX_MEMORY >> 20
        ));
    }
    let mut env = Vec::new();
    for var in cli.env {
        if var.as_encoded_bytes().contains(&b'=') {
            env.push(var);
        } else if let Some(value) = std::env::var_os(&var) {
            let mut pair = var.clone();
            pair.push("=");
            pair.push(value);
            env.push(pair);
        }
    }
    let afl = cli.afl.then(|| vmm::afl::AflOptions {
        input_file: cli.afl_input.clone(),
        crash_dir: cli.crash_dir.clone(),
        snapshot: match cli.afl_snapshot {
            SnapshotArg::Entry => vmm::afl::SnapshotPoint::Entry,
            SnapshotArg::Startup => vmm::afl::SnapshotPoint::AfterStartup,
        },
    });
    let options = RunOptions {
        app: cli.app,
        args: cli.args,
        backend: match cli.backend {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Kvm => BackendChoice::Kvm,
            BackendArg::Qemu => BackendChoice::Qemu,
        },
        isolation: match cli.isolation {
            IsolationArg::Mpk => IsolationMode::Mpk,
            IsolationArg::Ring3 => IsolationMode::Ring3,
            IsolationArg::None => IsolationMode::None,
        },
        memory_size: cli.memory,
        timeout: cli.timeout,
        seed: cli.seed,
        aslr: cli.aslr,
        print_layout: cli.print_layout,
        report: cli.report,
        mounts: cli.mounts,
        env,
        trace_syscalls: cli.trace_syscalls,
        strict_inspection: cli.strict_inspection,
        max_output: cli.max_output,
        kernel: cli.kernel,
        verbose: cli.verbose,
    };
    Ok((options, afl))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { exit_code::USAGE as u8 } else { 0 });
        }
    };
    let (options, afl) = match options(cli) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("secure-run: {message}");
            return ExitCode::from(exit_code::USAGE as u8);
        }
    };
    let result = match &afl {
        Some(afl) => vmm::afl::run(&options, afl),
        None => run::run(&options),
    };
    match result {
        Ok(status) => ExitCode::from(status as u8),
        Err(error) => {
            eprintln!("secure-run: {error}");
            ExitCode::from(error.exit_code() as u8)
        }
    }
}
