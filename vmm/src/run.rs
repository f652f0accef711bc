//! One run of an app: read and validate it, plan and build the guest, pick a backend, run, and turn
//! the outcome into secure-run's exit status (DESIGN.md "Exit status").

use std::cell::OnceCell;
use std::ffi::OsString;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kernel_abi::{exit_code, IsolationMode};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng, TryRngCore};

use crate::backend::{self, Backend, BackendError, RunConfig};
use crate::devices::console::ConsoleSink;
use crate::elf::{self, ElfError};
use crate::exit::{GuestOutcome, StopReason};
use crate::loader::{self, LoadError, LoadRequest, LoadedVm};
use crate::report::CrashReport;

/// The guest kernel built with this VMM.
pub static EMBEDDED_KERNEL: &[u8] = include_bytes!(env!("SECURE_RUN_EMBEDDED_KERNEL"));

/// The most stdin bytes captured for the guest.
pub const STDIN_LIMIT: u64 = 64 << 20;

/// Which backend the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    Auto,
    Kvm,
    Qemu,
}

/// Everything a run needs (the CLI fills it; tests and benchmarks may too).
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub app: PathBuf,
    /// Arguments after the app (`argv[1..]`); `argv[0]` is the app path as given.
    pub args: Vec<OsString>,
    pub backend: BackendChoice,
    pub isolation: IsolationMode,
    pub memory_size: u64,
    pub timeout: Option<Duration>,
    pub seed: Option<u64>,
    pub aslr: bool,
    pub print_layout: bool,
    pub report: Option<PathBuf>,
    /// Host directories copied into the guest's file system.
    pub mounts: Vec<crate::mount::Mount>,
    /// `K=V` strings for the app's environment.
    pub env: Vec<OsString>,
    pub trace_syscalls: bool,
    /// In `mpk` mode, refuse app code with any forbidden instruction, also those the kernel neutralizes.
    pub strict_inspection: bool,
    pub max_output: u64,
    pub kernel: Option<PathBuf>,
    pub verbose: bool,
}

/// secure-run's own failures, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: not found")]
    NotFound { path: String },
    #[error("cannot execute {path}: {reason}")]
    CannotExecute { path: String, reason: String },
    #[error("cannot execute {path}: {source}")]
    BadElf {
        path: String,
        #[source]
        source: ElfError,
    },
    #[error("refusing to run {path}: {reason}")]
    Refused { path: String, reason: String },
    #[error("the guest kernel image is invalid: {0}")]
    BadKernel(#[source] ElfError),
    #[error("cannot read {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("{0}")]
    Backend(#[from] BackendError),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Mount(#[from] crate::mount::MountError),
    #[error("stdin is larger than {STDIN_LIMIT} bytes; the guest receives stdin as a captured file")]
    StdinTooLarge,
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::NotFound { .. } => exit_code::NOT_FOUND,
            Self::CannotExecute { .. } | Self::BadElf { .. } | Self::Refused { .. } => exit_code::CANNOT_EXECUTE,
            Self::Mount(_) => exit_code::USAGE,
            _ => exit_code::VMM_ERROR,
        }
    }
}

/// Forwards the guest's output to secure-run's own stdout and stderr as it arrives.
struct ProcessSink {
    stdout: std::io::Stdout,
    stderr: std::io::Stderr,
}

impl ConsoleSink for ProcessSink {
    fn stdout(&mut self, bytes: &[u8]) {
        // A closed stdout (e.g. `| head`) must not kill the run: the app keeps running as on Linux with
        // SIGPIPE ignored.
        let _ = self.stdout.write_all(bytes);
        let _ = self.stdout.flush();
    }
    fn stderr(&mut self, bytes: &[u8]) {
        let _ = self.stderr.write_all(bytes);
    }
    fn log(&mut self, bytes: &[u8]) {
        let _ = self.stderr.write_all(bytes);
    }
}

/// The app file's bytes. A regular file is mapped rather than read: reading ~1 MB into a fresh buffer
/// costs a page fault per page, and the loader's chunks borrow the mapped bytes instead of copying them.
/// The mapping is private and read-only, as `execve` maps a program, and shares its caveats: a file
/// truncated while mapped faults (SIGBUS) when a lost page is touched, which ends secure-run (the bytes
/// are only read until the image is in guest RAM), and a file written while mapped changes the bytes
/// (where that matters, `--isolation mpk`, the caller asks for a `snapshot`: the file is read, not mapped).
fn read_app(path: &Path, snapshot: bool) -> Result<Bytes, RunError> {
    let shown = path.display().to_string();
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(RunError::NotFound { path: shown }),
        Err(error) => return Err(RunError::CannotExecute { path: shown, reason: error.to_string() }),
    };
    if metadata.is_dir() {
        return Err(RunError::CannotExecute { path: shown, reason: "it is a directory".into() });
    }
    // The ELF parser caps sizes itself; this only keeps a huge file from being read into memory whole.
    const APP_FILE_LIMIT: u64 = 1 << 30;
    if metadata.len() > APP_FILE_LIMIT {
        return Err(RunError::CannotExecute { path: shown, reason: "the file is larger than 1 GiB".into() });
    }
    let cannot_execute =
        |error: std::io::Error| RunError::CannotExecute { path: shown.clone(), reason: error.to_string() };
    if snapshot || !metadata.is_file() || metadata.len() == 0 {
        // Pipes (`<(...)`) and the like cannot be mapped, and nothing is to be mapped of an empty file.
        return std::fs::read(path).map(Bytes::from).map_err(cannot_execute);
    }
    let file = File::open(path).map_err(cannot_execute)?;
    // Without MAP_POPULATE: it measured no faster, and it would map what is never loaded (debug info) too.
    // SAFETY: the mapping is private and read-only, so nothing in this process writes it. Another process
    // may write or truncate the file meanwhile, as described above: its bytes are untrusted input that is
    // validated into owned values before use, never trusted to stay as validated.
    let map = unsafe { memmap2::MmapOptions::new().map_copy_read_only(&file) }.map_err(cannot_execute)?;
    Ok(Bytes::from_owner(map))
}

fn read_stdin() -> Result<Vec<u8>, RunError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(Vec::new());
    }
    let mut bytes = Vec::new();
    stdin
        .lock()
        .take(STDIN_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| RunError::Io { what: "stdin".into(), source })?;
    if bytes.len() as u64 > STDIN_LIMIT {
        return Err(RunError::StdinTooLarge);
    }
    Ok(bytes)
}

/// What KVM offers on this host, probed once per process (opening /dev/kvm and creating a probe VM costs
/// milliseconds).
fn kvm_probe() -> &'static backend::KvmCapabilities {
    static PROBE: std::sync::OnceLock<backend::KvmCapabilities> = std::sync::OnceLock::new();
    PROBE.get_or_init(backend::probe_kvm)
}

/// Picks the backend for `choice` and `isolation` on this host (DESIGN.md "Backends").
pub fn select_backend(choice: BackendChoice, isolation: IsolationMode) -> Result<(Backend, Option<String>), RunError> {
    choose_backend(choice, isolation, kvm_probe)
}

/// [`select_backend`] with what KVM offers from `kvm`, called only if `choice` may mean KVM.
fn choose_backend<'a>(
    choice: BackendChoice,
    isolation: IsolationMode,
    kvm: impl FnOnce() -> &'a backend::KvmCapabilities,
) -> Result<(Backend, Option<String>), RunError> {
    match choice {
        BackendChoice::Qemu => Ok((Backend::Qemu, None)),
        BackendChoice::Kvm => {
            let kvm = kvm();
            if !kvm.usable {
                return Err(RunError::Unsupported(format!(
                    "--backend kvm: KVM is not usable here ({}); use --backend qemu",
                    kvm.notes.join("; ")
                )));
            }
            if isolation == IsolationMode::Mpk && (!kvm.pku || kvm.cpl0_emulated) {
                return Err(RunError::Unsupported(
                    "--backend kvm cannot enforce --isolation mpk here: this host's KVM does not offer \
                     protection keys to guests (or emulates guest kernel code); use --backend qemu, or \
                     --isolation ring3 on KVM"
                        .into(),
                ));
            }
            Ok((Backend::Kvm, None))
        }
        BackendChoice::Auto => {
            let kvm = kvm();
            let kvm_fits = kvm.usable
                && match isolation {
                    IsolationMode::Ring3 => true,
                    IsolationMode::None => !kvm.cpl0_emulated,
                    IsolationMode::Mpk => kvm.pku && !kvm.cpl0_emulated,
                };
            if kvm_fits {
                return Ok((Backend::Kvm, None));
            }
            let why = if !kvm.usable {
                "KVM is not usable"
            } else if isolation == IsolationMode::Mpk && !kvm.pku {
                "KVM here offers no protection keys"
            } else {
                "KVM here emulates guest kernel code"
            };
            Ok((
                Backend::Qemu,
                Some(format!("secure-run: note: running on QEMU (TCG): {why} for --isolation {}", isolation.name())),
            ))
        }
    }
}

fn kernel_bytes(options: &RunOptions) -> Result<Bytes, RunError> {
    match &options.kernel {
        None => Ok(Bytes::from_static(EMBEDDED_KERNEL)),
        Some(path) => std::fs::read(path)
            .map(Bytes::from)
            .map_err(|source| RunError::Io { what: format!("the kernel {}", path.display()), source }),
    }
}

/// Plans and builds the guest for `options` without running it.
pub fn prepare(options: &RunOptions, stdin: &[u8], seed: u64) -> Result<LoadedVm, RunError> {
    prepare_with(options, stdin, seed, kvm_probe)
}

/// [`prepare`], asking `kvm` for the TSC frequency if the host does not say it otherwise.
fn prepare_with<'a>(
    options: &RunOptions,
    stdin: &[u8],
    seed: u64,
    kvm: impl FnOnce() -> &'a backend::KvmCapabilities,
) -> Result<LoadedVm, RunError> {
    // In `mpk` mode the code loaded must be the code parsed and inspected, and a mapped file can change in
    // between: read it once into memory of our own instead.
    let app_file = read_app(&options.app, options.isolation == IsolationMode::Mpk)?;
    let shown = options.app.display().to_string();
    let app = elf::parse_app(&app_file).map_err(|source| RunError::BadElf { path: shown.clone(), source })?;
    if options.isolation == IsolationMode::Mpk {
        inspect_app(&app, &app_file, &shown, options.strict_inspection)?;
    }
    if options.aslr && app.kind == elf::AppKind::Exec {
        eprintln!(
            "secure-run: warning: {shown} is not position-independent (ET_EXEC): its own base stays at its link \
             address; the kernel, stack, brk and mmap bases are still randomized (link with -static-pie to \
             randomize it too)"
        );
    }
    let kernel_file = kernel_bytes(options)?;
    let kernel = elf::parse_kernel(&kernel_file).map_err(RunError::BadKernel)?;

    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let layout = loader::plan_layout(&kernel, &app, options.memory_size, options.aslr.then_some(&mut rng))?;
    let mut kernel_seed = [0u8; 32];
    rng.fill_bytes(&mut kernel_seed);

    let mut argv = vec![options.app.as_os_str().as_bytes().to_vec()];
    argv.extend(options.args.iter().map(|arg| arg.as_bytes().to_vec()));
    let envp: Vec<Vec<u8>> = options.env.iter().map(|var| var.as_bytes().to_vec()).collect();
    let exe_path = std::fs::canonicalize(&options.app).unwrap_or_else(|_| options.app.clone());
    // The packed files must leave room for the kernel, its heap and the app.
    let files = crate::mount::pack(&options.mounts, options.memory_size / 2)?;
    let boot_unix_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let request = LoadRequest {
        kernel: &kernel,
        kernel_file: &kernel_file,
        app: &app,
        app_file: &app_file,
        argv: &argv,
        envp: &envp,
        exe_path: exe_path.as_os_str().as_bytes(),
        stdin,
        files: &files,
        isolation: options.isolation,
        memory_size: options.memory_size,
        trace_syscalls: options.trace_syscalls,
        strict_inspection: options.strict_inspection,
        seed,
        aslr: options.aslr,
        tsc_khz: host_tsc_khz(kvm),
        boot_unix_ns,
    };
    Ok(loader::build(&request, &layout, kernel_seed)?)
}

/// `mpk` mode runs the app at CPL0, so its code must not be able to change PKRU or privileged state:
/// every executable byte is scanned at every offset (DESIGN.md "must hold" 2), and no segment may be
/// writable and executable at once (3). The kernel repeats the scan whenever memory becomes executable.
fn inspect_app(app: &elf::AppElf, file: &[u8], shown: &str, strict: bool) -> Result<(), RunError> {
    for segment in &app.segments {
        if let Err(violation) = isolation::wx::check_wx(segment.perms) {
            return Err(RunError::Refused {
                path: shown.to_string(),
                reason: format!("segment at {:#x}: {violation}", segment.vaddr),
            });
        }
    }
    let code = app
        .segments
        .iter()
        .filter(|segment| segment.perms & kernel_abi::PERM_EXEC != 0)
        .map(|segment| (segment.vaddr, app.segment_bytes(segment, file)));
    if let Some(finding) = isolation::scan::first_refused(&isolation::scan::scan_code_regions(code), strict) {
        let file_offset = app
            .segments
            .iter()
            .find(|segment| (segment.vaddr..segment.vaddr + segment.file_size).contains(&finding.offset))
            .map_or(0, |segment| segment.file_offset + (finding.offset - segment.vaddr));
        return Err(RunError::Refused {
            path: shown.to_string(),
            reason: format!(
                "its code contains {} at link address {:#x} (file offset {file_offset:#x}); in --isolation mpk \
                 the app runs at CPL0, where that instruction would defeat the isolation",
                finding.instruction, finding.offset
            ),
        });
    }
    Ok(())
}

/// The host TSC frequency in kHz, which guests see too (see [`crate::host`]). KVM is asked only when the
/// host does not say it otherwise.
fn host_tsc_khz<'a>(kvm: impl FnOnce() -> &'a backend::KvmCapabilities) -> u64 {
    let reports = crate::host::TscReports::of_this_host(None);
    match reports.best() {
        Some(frequency) => frequency.khz,
        None => crate::host::tsc_frequency(kvm().tsc_khz.map(u64::from)).khz,
    }
}

/// Runs the app as `options` say and returns secure-run's exit status.
pub fn run(options: &RunOptions) -> Result<i32, RunError> {
    let seed = options.seed.unwrap_or_else(|| OsRng.try_next_u64().unwrap_or(0));
    let stdin = read_stdin()?;
    // KVM is probed when first needed, and on KVM the probe's VM is the one that runs (`backend::KvmVm`).
    let probe = OnceCell::new();
    let kvm = || &probe.get_or_init(backend::open_kvm).0;
    let vm = prepare_with(options, &stdin, seed, kvm)?;
    let (backend, notice) = choose_backend(options.backend, options.isolation, kvm)?;
    let kvm_vm = probe.into_inner().and_then(|(_, kvm_vm)| kvm_vm).filter(|_| backend == Backend::Kvm);
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    if options.print_layout {
        eprint!("{}", layout_text(&vm, seed));
    }
    let config = RunConfig {
        timeout: options.timeout,
        output_limit: options.max_output,
        needs_pku: options.isolation == IsolationMode::Mpk,
        verbose: options.verbose,
        ..RunConfig::default()
    };
    let mut sink = ProcessSink { stdout: std::io::stdout(), stderr: std::io::stderr() };
    let outcome = backend::run_in(backend, kvm_vm, &vm.image, &vm.entry, &config, &mut sink)?;
    let _ = std::io::stdout().flush();
    let context = format!(
        "backend {}, isolation {}, seed {seed} (replay with --seed {seed}{})",
        backend.name(),
        options.isolation.name(),
        if options.aslr { " --aslr" } else { "" }
    );
    let (code, crash) = exit_status(&outcome, &vm, &context);
    if let Some(path) = &options.report {
        write_report(path, &outcome, &vm, seed, backend, options, code, crash.as_ref())?;
    }
    Ok(code)
}

/// The exit status for an outcome, printing what the user must know on stderr.
fn exit_status(outcome: &GuestOutcome, vm: &LoadedVm, context: &str) -> (i32, Option<CrashReport>) {
    if outcome.output_truncated {
        eprintln!("secure-run: the app's output exceeded --max-output; the rest was dropped");
    }
    if let Some(record) = &outcome.crash {
        let report = CrashReport::new(record, &vm.regions);
        eprintln!("{}", report.paragraph(context));
        return (report.exit_code(), Some(report));
    }
    match (&outcome.stop, outcome.status) {
        (StopReason::Timeout, _) => {
            eprintln!("secure-run: the app did not finish within --timeout; it was stopped ({context})");
            (exit_code::TIMEOUT, None)
        }
        (StopReason::ExitPort, Some(status)) => (status & 0xff, None),
        (StopReason::ExitPort, None) => {
            eprintln!("secure-run: the guest stopped without reporting an exit status ({context})");
            (exit_code::VMM_ERROR, None)
        }
        (stop, _) => {
            eprintln!("secure-run: the VM stopped abnormally: {stop} ({context})");
            (exit_code::VMM_ERROR, None)
        }
    }
}

/// `--print-layout`: one line per region, then the entropy of each base.
pub fn layout_text(vm: &LoadedVm, seed: u64) -> String {
    let mut text = format!("secure-run: layout (seed {seed})\n");
    for region in &vm.regions {
        let phys = region.phys_start.map_or_else(|| "on demand".to_string(), |phys| format!("{phys:#x}"));
        let key = region.pkey.map_or_else(String::new, |key| format!(" key {key}"));
        text.push_str(&format!(
            "  {:#018x}-{:#018x} {} phys {:<12}{key}  {}\n",
            region.virt_start, region.virt_end, region.perms, phys, region.name
        ));
    }
    let vm_entropy = vm.layout.entropy;
    let process_entropy = vm.process.entropy;
    text.push_str(&format!(
        "  entropy (bits): kernel base {}, app base {}, physical map {}, stack {}, brk {}, mmap base {}\n",
        vm_entropy.kernel_bits,
        vm_entropy.app_bits,
        vm_entropy.physmap_bits,
        process_entropy.stack_bits,
        process_entropy.brk_bits,
        process_entropy.mmap_bits
    ));
    text
}

#[allow(clippy::too_many_arguments)]
fn write_report(
    path: &Path,
    outcome: &GuestOutcome,
    vm: &LoadedVm,
    seed: u64,
    backend: Backend,
    options: &RunOptions,
    exit_code: i32,
    crash: Option<&CrashReport>,
) -> Result<(), RunError> {
    let report = serde_json::json!({
        "exit_code": exit_code,
        "app_status": outcome.status,
        "stop": outcome.stop.to_string(),
        "timed_out": outcome.stop == StopReason::Timeout,
        "crash": crash,
        "seed": seed,
        "aslr": options.aslr,
        "backend": backend.name(),
        "isolation": options.isolation.name(),
        "layout": {
            "regions": vm.regions,
            "entropy_bits": {
                "kernel": vm.layout.entropy.kernel_bits,
                "app": vm.layout.entropy.app_bits,
                "physmap": vm.layout.entropy.physmap_bits,
                "stack": vm.process.entropy.stack_bits,
                "brk": vm.process.entropy.brk_bits,
                "mmap": vm.process.entropy.mmap_bits,
            },
        },
        "output_truncated": outcome.output_truncated,
        "garbage_console_bytes": outcome.garbage_bytes,
        "wall_time_ms": outcome.wall_time.as_secs_f64() * 1000.0,
    });
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    std::fs::write(path, text + "\n")
        .map_err(|source| RunError::Io { what: format!("--report {} (writing)", path.display()), source })
}

#[cfg(test)]
mod tests {
    use isolation::scan::{scan_forbidden_instructions, ForbiddenInstruction};

    /// DESIGN.md "must hold" 1 and 5, on the kernel this binary ships: after boot, the kernel's executable
    /// text (which a CPL0 app can jump into) holds WRPKRU only at the gates, each followed by the compare
    /// that halts on a forged value; no instruction that changes keys, paging or descriptor tables exists
    /// outside the boot-only section the kernel unmaps; and the boot section does hold the boot's
    /// privileged instructions (so this test notices if they move).
    #[test]
    fn embedded_kernel_has_privileged_instructions_only_at_listed_sites() {
        let elf = goblin::elf::Elf::parse(super::EMBEDDED_KERNEL).expect("the embedded kernel parses");
        let mut boot_found = Vec::new();
        let mut gates = 0;
        for section in &elf.section_headers {
            if section.sh_flags & u64::from(goblin::elf::section_header::SHF_EXECINSTR) == 0 {
                continue;
            }
            let name = elf.shdr_strtab.get_at(section.sh_name).unwrap_or("?");
            let start = section.sh_offset as usize;
            let bytes = &super::EMBEDDED_KERNEL[start..start + section.sh_size as usize];
            for finding in scan_forbidden_instructions(bytes, section.sh_addr) {
                let at = (finding.offset - section.sh_addr) as usize;
                if name == ".secure_run_boot_text" {
                    boot_found.push(finding.instruction);
                    continue;
                }
                let after = &bytes[at..];
                match finding.instruction {
                    ForbiddenInstruction::Wrpkru => {
                        // 0F 01 EF, then CMP EAX, imm8 (83 F8 ib) or imm32 (3D id), then a conditional jump.
                        let (compare, rest) = match after.get(3) {
                            Some(0x83) if after.get(4) == Some(&0xf8) => (true, &after[6..]),
                            Some(0x3d) => (true, &after[8..]),
                            _ => (false, after),
                        };
                        let jump = matches!(rest.first(), Some(0x74 | 0x75)) || rest.starts_with(&[0x0f, 0x85]);
                        assert!(compare && jump, "{name}: WRPKRU at {:#x} is not a checked gate", finding.offset);
                        gates += 1;
                    }
                    ForbiddenInstruction::Wrmsr
                        if after.starts_with(&[0x0f, 0x30, 0x81, 0xf9, 0x00, 0x01, 0x00, 0xc0]) =>
                    {
                        // The FS-base write, checked (CMP ECX, MSR_FS_BASE) like a gate.
                    }
                    other => assert!(
                        other.neutralized_by_kernel().is_some(),
                        "{name}: {other} at {:#x} is executable after boot",
                        finding.offset
                    ),
                }
            }
        }
        assert!(gates >= 4, "expected the PKRU gates in the kernel text, found {gates}");
        for expected in [
            ForbiddenInstruction::Lgdt,
            ForbiddenInstruction::Lidt,
            ForbiddenInstruction::Ltr,
            ForbiddenInstruction::MovToCr,
            ForbiddenInstruction::Wrmsr,
        ] {
            assert!(boot_found.contains(&expected), "{expected} not found in the boot-only section");
        }
    }
}
