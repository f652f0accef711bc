//! `cargo run --release -p bench [-- --quick] [--out DIR] [--secure-run PATH]`: secure-run's benchmarks.
//!
//! Measures, side by side and against running the same static binaries natively: hello world end to end
//! per backend × isolation mode, where a boot's time goes (in-process, through the vmm library), the
//! syscall round trip (RDTSC inside the guest), a CPU-bound and a syscall-heavy program, fuzzing
//! throughput (`--afl` against AFL++'s own forkserver), and the peak memory of the VMM. Writes
//! `performance.md`, `performance.svg` and `fuzzing-campaign.svg` to the output directory (default
//! `docs/`). A configuration that cannot run is reported as `failed: <reason>`, never a crash.

mod chart;
mod fuzzing;
mod guests;
mod machine;
mod phases;
mod report;
mod runner;
mod stats;
mod suite;

use std::path::PathBuf;
use std::process::ExitCode;

/// Command-line options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Fewer repetitions (about a minute in all).
    pub quick: bool,
    /// Where performance.md and performance.svg go.
    pub out: PathBuf,
    /// The secure-run binary measured end to end.
    pub secure_run: PathBuf,
    /// Where the guests are built.
    pub guest_dir: PathBuf,
    /// The workspace root.
    pub root: PathBuf,
}

const USAGE: &str = "usage: bench [--quick] [--out DIR] [--secure-run PATH]
  --quick            fewer repetitions (about a minute)
  --out DIR          where performance.md and performance.svg are written (default: <workspace>/docs)
  --secure-run PATH  the secure-run binary to measure (default: <workspace>/target/release/secure-run)";

fn parse_options() -> Result<Options, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap_or(root);
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut options = Options {
        quick: false,
        out: root.join("docs"),
        secure_run: root.join("target/release/secure-run"),
        guest_dir: target.join("bench-guests"),
        root,
    };
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().map(PathBuf::from).ok_or_else(|| format!("{name} needs a value"));
        match arg.to_str() {
            Some("--quick") => options.quick = true,
            Some("--out") => options.out = value("--out")?,
            Some("--secure-run") => options.secure_run = value("--secure-run")?,
            Some("-h" | "--help") => return Err(String::new()),
            _ => return Err(format!("unknown argument {}", arg.to_string_lossy())),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("bench: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if message.is_empty() { 0 } else { 2 });
        }
    };
    let results = suite::run_all(&options);
    let markdown = report::markdown(&options, &results);
    let chart_path = options.out.join("performance.svg");
    if let Err(error) = std::fs::create_dir_all(&options.out) {
        eprintln!("bench: cannot create {}: {error}", options.out.display());
        return ExitCode::FAILURE;
    }
    if let Err(error) = chart::hello_chart(&results, &chart_path) {
        eprintln!("bench: cannot draw {}: {error}", chart_path.display());
    }
    let md_path = options.out.join("performance.md");
    if let Err(error) = std::fs::write(&md_path, markdown) {
        eprintln!("bench: cannot write {}: {error}", md_path.display());
        return ExitCode::FAILURE;
    }
    eprintln!("bench: wrote {} and {}", md_path.display(), chart_path.display());
    ExitCode::SUCCESS
}
