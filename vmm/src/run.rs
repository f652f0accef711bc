//! One run of an app end to end: read and validate it, plan and build the guest ([`prepare`]), pick a
//! backend ([`crate::policy`]), run it, and turn the outcome into secure-run's exit status and reports
//! ([`crate::report`]). The exit statuses are the README's.

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
use zerocopy::{FromBytes, IntoBytes};

use crate::backend::{self, Backend, BackendError, RunConfig};
use crate::devices::console::ConsoleSink;
use crate::elf::{self, ElfError};
use crate::exit::{GuestOutcome, StopReason};
use crate::loader::{self, LoadError, LoadRequest, LoadedVm};
use crate::policy::{self, BackendChoice, PolicyError};
use crate::report::{CrashReport, LayoutReport, RunReport, RunSetup};

/// The guest kernel built with this VMM.
pub static EMBEDDED_KERNEL: &[u8] = include_bytes!(env!("SECURE_RUN_EMBEDDED_KERNEL"));

/// The most stdin bytes captured for the guest.
pub const STDIN_LIMIT: u64 = 64 << 20;

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
    #[error("the guest kernel image is invalid: {0}")]
    BadKernel(#[source] ElfError),
    #[error("cannot read {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the --report file {path}: {source} (is its directory there and writable?)")]
    WriteReport {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    WriteFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("{0}")]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("{0}")]
    Mount(#[from] crate::mount::MountError),
    #[error("stdin is larger than {STDIN_LIMIT} bytes; the guest receives stdin as a captured file")]
    StdinTooLarge,
    #[error("cannot draw the run's console key from the OS random number generator: {0}")]
    Random(rand_core::OsError),
    #[error("the memory image has no boot info at the address its entry names (a secure-run bug)")]
    NoBootInfo,
    /// Options that do not fit together.
    #[error("{0}")]
    Usage(String),
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::NotFound { .. } => exit_code::NOT_FOUND,
            Self::CannotExecute { .. } | Self::BadElf { .. } => exit_code::CANNOT_EXECUTE,
            Self::Policy(error) => error.exit_code(),
            Self::Mount(_) | Self::Usage(_) => exit_code::USAGE,
            _ => exit_code::VMM_ERROR,
        }
    }
}

/// Forwards the guest's output to secure-run's own stdout and stderr as it arrives.
pub(crate) struct ProcessSink {
    pub(crate) stdout: std::io::Stdout,
    pub(crate) stderr: std::io::Stderr,
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
    prepare_with(options, stdin, seed, None, policy::kvm_probe)
}

/// [`prepare`] with `--afl`'s pieces, asking `kvm` for the TSC frequency if the host does not say it
/// otherwise.
pub(crate) fn prepare_with<'a>(
    options: &RunOptions,
    stdin: &[u8],
    seed: u64,
    afl: Option<loader::AflLoad<'_>>,
    kvm: impl FnOnce() -> &'a backend::KvmCapabilities,
) -> Result<LoadedVm, RunError> {
    // In `mpk` mode the code loaded must be the code parsed and inspected, and a mapped file can change in
    // between: read it once into memory of our own instead.
    let app_file = read_app(&options.app, options.isolation == IsolationMode::Mpk)?;
    let shown = options.app.display().to_string();
    let app = elf::parse_app(&app_file).map_err(|source| RunError::BadElf { path: shown.clone(), source })?;
    if options.isolation == IsolationMode::Mpk {
        policy::inspect_app(&app, &app_file, &shown, options.strict_inspection)?;
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
    let mode = std::fs::metadata(&options.app)
        .map_or(0o755, |metadata| std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()));
    let program = crate::mount::Program { data: &app_file, mode };
    let files = crate::mount::pack(&options.mounts, Some(program), options.memory_size / 2)?;
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
        afl,
    };
    Ok(loader::build(&request, &layout, kernel_seed)?)
}

/// Draws a fresh console key and writes it into `vm`'s boot info (`kernel_abi::console`): the key the
/// VMM then expects on every frame ([`RunConfig::console_key`]). Drawn from the OS for each boot, apart
/// from the image, which stays a function of the options and `--seed` alone.
pub fn install_console_key(vm: &mut LoadedVm) -> Result<kernel_abi::ConsoleKey, RunError> {
    let key = crate::devices::console::draw_key().map_err(RunError::Random)?;
    // The entry's RDI is the boot info's address in the physical map.
    let phys = vm.entry.rdi.wrapping_sub(vm.layout.physmap.start);
    let chunk = vm.image.chunks.iter_mut().find(|chunk| chunk.guest_phys == phys).ok_or(RunError::NoBootInfo)?;
    let mut info = kernel_abi::BootInfo::read_from_bytes(&chunk.bytes).map_err(|_| RunError::NoBootInfo)?;
    info.console_key = key;
    chunk.bytes = Bytes::copy_from_slice(info.as_bytes());
    Ok(key)
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
    let mut vm = prepare_with(options, &stdin, seed, None, kvm)?;
    let console_key = install_console_key(&mut vm)?;
    let (backend, notice) = policy::choose_backend(options.backend, options.isolation, kvm)?;
    let kvm_vm = probe.into_inner().and_then(|(_, kvm_vm)| kvm_vm).filter(|_| backend == Backend::Kvm);
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    let layout = LayoutReport::of(&vm);
    if options.print_layout {
        eprint!("{}", layout.text(seed));
    }
    let config = RunConfig {
        console_key,
        timeout: options.timeout,
        output_limit: options.max_output,
        needs_pku: options.isolation == IsolationMode::Mpk,
        verbose: options.verbose,
        ..RunConfig::default()
    };
    let mut sink = ProcessSink { stdout: std::io::stdout(), stderr: std::io::stderr() };
    let outcome = backend::run_in(backend, kvm_vm, &vm.image, &vm.entry, &config, &mut sink)?;
    let _ = std::io::stdout().flush();
    let setup = RunSetup { seed, aslr: options.aslr, backend, isolation: options.isolation };
    let (code, crash) = exit_status(&outcome, &vm, &setup.replay_context());
    if let Some(path) = &options.report {
        RunReport::new(code, &outcome, crash.as_ref(), layout, &setup)
            .write(path)
            .map_err(|source| RunError::WriteReport { path: path.display().to_string(), source })?;
    }
    Ok(code)
}

/// The exit status for an outcome, printing what the user must know on stderr.
fn exit_status(outcome: &GuestOutcome, vm: &LoadedVm, context: &str) -> (i32, Option<CrashReport>) {
    if outcome.output_truncated {
        eprintln!("secure-run: the app's output exceeded --max-output; the rest was dropped");
    }
    if let Some(tampering) = outcome.tampering {
        eprintln!("{} ({context})", tampering_line(tampering));
        return (exit_code::TAMPERING, None);
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

/// The one stderr line for a run whose console channel was tampered with.
pub(crate) fn tampering_line(tampering: crate::devices::console::Tampering) -> String {
    format!(
        "secure-run: tampering: the app forged the kernel's console channel ({tampering}); its output after \
         that was dropped and the run counts as a crash (status {})",
        exit_code::TAMPERING
    )
}

#[cfg(test)]
mod tests {
    use isolation::scan::{scan_forbidden_instructions, ForbiddenInstruction};

    /// threat-model.md M3 and M6, on the kernel this binary ships: after boot, the kernel's executable
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
                    ForbiddenInstruction::Wrmsr | ForbiddenInstruction::Wrmsrns => {
                        // Reachable by the app only while no guarded page is active (a jump here from a
                        // stepped page traps first, which ends the run), and no MSR holds isolation state but
                        // DEBUGCTL.BTF, which the step gate clears each time stepping begins.
                    }
                    other => assert!(
                        other.neutralized_by_kernel().is_some(),
                        "{name}: {other} at {:#x} is executable after boot, and a CPL0 app could jump to it; \
                         if it lies in the displacement of a `call *GOT(%rip)` (FF 15), change GOT_SHIFT in \
                         kernel/src/main.rs, else reshape the code around it",
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
