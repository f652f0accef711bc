//! The QEMU backend: `qemu-system-x86_64 -accel tcg -cpu max` booting a PVH ELF built from the image.
//!
//! The guest's console port is QEMU's `isa-debugcon` on QEMU's stdout, read here as a stream and fed to
//! the same [`ConsoleDecoder`] the KVM backend uses; its exit port is `isa-debug-exit`, which makes QEMU
//! exit with `(value << 1) | 1`. The timeout kills QEMU.
//!
//! QEMU gets [`RAM_SLACK`] more RAM than the image's `memory_size`: the firmware (SeaBIOS, qboot) puts
//! its tables and temporary allocations at the top of RAM, after QEMU has loaded the image, so without
//! the slack it would overwrite the top of the guest's memory. The kernel uses only `memory_size`
//! (from its boot info), never the slack.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::time::{Duration, Instant};

use kernel_abi::{CONSOLE_PORT, EXIT_PORT};

use super::{pvh, BackendError, RunConfig};
use crate::arch::x86_64::layout::MAX_MEMORY_SIZE;
use crate::devices::console::{ConsoleDecoder, ConsoleSink, GuestRam};
use crate::exit::{ExitState, GuestOutcome, StopReason};
use crate::image::{MemoryImage, VcpuEntry};

/// The QEMU machine type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum QemuMachine {
    /// `-M pc`: i440FX with SeaBIOS.
    Pc,
    /// `-M microvm` with qboot, no PCI, no option ROMs, no serial, RTC or PIT (like the KVM backend,
    /// which has no devices but the two ports): boots 2-3x faster than `pc` (measured here: about
    /// 45-100 ms against 130-300 ms from spawn to the first console byte).
    #[default]
    Microvm,
}

/// Extra RAM above the image's `memory_size` for the firmware's own use (see the module docs).
pub const RAM_SLACK: u64 = 4 << 20;
/// How much of QEMU's stderr is kept for error messages.
const STDERR_CAP: usize = 16 << 10;
/// The size of one read from QEMU's stdout.
const READ_CHUNK: usize = 64 << 10;
/// How many read chunks may wait for the decoder (bounds memory while the sink is slow).
const QUEUED_CHUNKS: usize = 8;
/// How often a run with a cancel flag (`RunConfig::cancel`) looks at it.
const CANCEL_POLL: Duration = Duration::from_millis(5);

/// The path of `qemu-system-x86_64` on `PATH`.
pub fn qemu_available() -> Result<PathBuf, String> {
    const NAME: &str = "qemu-system-x86_64";
    let path = std::env::var_os("PATH").ok_or_else(|| format!("{NAME} not found: PATH is not set"))?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(NAME))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| format!("{NAME} not found on PATH (Debian: apt-get install qemu-system-x86)"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn io_error(action: &'static str) -> impl FnOnce(std::io::Error) -> BackendError {
    move |source| BackendError::QemuIo { action, source }
}

/// QEMU's arguments for a boot ELF at `kernel` and `memory_mib` MiB of RAM, the RAM backed by the file
/// at `ram_path` (shared: the VMM reads console-ring flushes from it).
pub fn command_line(machine: QemuMachine, memory_mib: u64, kernel: &Path, ram_path: &Path) -> Vec<std::ffi::OsString> {
    let machine = match machine {
        QemuMachine::Pc => "pc,memory-backend=ram",
        QemuMachine::Microvm => "microvm,x-option-roms=off,rtc=off,pit=on,pic=on,isa-serial=off,memory-backend=ram",
    };
    let ram = format!("memory-backend-file,id=ram,size={memory_mib}M,share=on,mem-path={}", ram_path.display());
    let mut args: Vec<std::ffi::OsString> = [
        "-object",
        &ram,
        "-M",
        machine,
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        &format!("{memory_mib}M"),
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "none",
        "-monitor",
        "none",
        "-parallel",
        "none",
        "-net",
        "none",
        "-chardev",
        "stdio,id=dbg",
        "-device",
        &format!("isa-debugcon,iobase={CONSOLE_PORT:#x},chardev=dbg"),
        "-device",
        &format!("isa-debug-exit,iobase={EXIT_PORT:#x},iosize=0x04"),
        "-kernel",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(kernel.into());
    args
}

pub(super) fn run(
    image: &MemoryImage,
    entry: &VcpuEntry,
    config: &RunConfig,
    sink: &mut dyn ConsoleSink,
) -> Result<GuestOutcome, BackendError> {
    run_then(image, entry, config, sink, &mut |_| {})
}

/// Like this module's `run`, then `after` with the guest's RAM as QEMU left it (QEMU has exited).
pub fn run_then(
    image: &MemoryImage,
    entry: &VcpuEntry,
    config: &RunConfig,
    sink: &mut dyn ConsoleSink,
    after: &mut dyn FnMut(&dyn GuestRam),
) -> Result<GuestOutcome, BackendError> {
    let started = Instant::now();
    if image.memory_size > MAX_MEMORY_SIZE {
        return Err(BackendError::InvalidImage(format!(
            "QEMU supports at most {MAX_MEMORY_SIZE:#x} bytes of guest memory, the image has {:#x}",
            image.memory_size
        )));
    }
    let binary = match &config.qemu_binary {
        Some(path) => path.clone(),
        None => qemu_available().map_err(BackendError::QemuNotFound)?,
    };
    let elf = pvh::build_boot_elf(image, entry)?;
    let dir =
        tempfile::Builder::new().prefix("secure-run-").tempdir().map_err(io_error("create a temporary directory"))?;
    let kernel = dir.path().join("boot.elf");
    std::fs::write(&kernel, &elf).map_err(io_error("write the boot image"))?;
    let memory_mib = (image.memory_size + RAM_SLACK).div_ceil(1 << 20);
    let mut ram = SharedRam::create(memory_mib << 20, image.memory_size)?;
    let args = command_line(config.qemu_machine, memory_mib, &kernel, &ram.path());

    let decoder = ConsoleDecoder::new(config.console_key, config.output_limit, config.log_limit);
    let mut state = ExitState::new(decoder, sink).with_ring(&mut ram, image.console_ring);
    if config.verbose {
        let shown: Vec<_> = args.iter().map(|arg| arg.to_string_lossy()).collect();
        state.notice(&format!("qemu: {} {}", binary.display(), shown.join(" ")));
    }
    let mut child = Command::new(&binary)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_error("start qemu-system-x86_64"))?;
    let deadline = config.timeout.map(|timeout| started + timeout);
    let result = supervise(&mut child, deadline, config.cancel, &mut state);
    // Whatever happened, QEMU does not outlive the run.
    if !matches!(child.try_wait(), Ok(Some(_))) {
        let _ = child.kill();
        let _ = child.wait();
    }
    let Supervised { status, timed_out, cancelled, first_output, stderr, ring_error } = result?;
    let stop = match ring_error {
        Some(stop) => stop,
        None if cancelled => StopReason::Cancelled,
        None if timed_out => StopReason::Timeout,
        None => stop_reason(status, stderr),
    };
    let first_exit_after = first_output.map(|at| at - started);
    let wall_time = started.elapsed();
    if config.verbose {
        state.notice(&format!("qemu: {stop}; first output after {first_exit_after:?}, {wall_time:?} in all"));
    }
    let outcome = state.into_outcome(stop, first_exit_after, wall_time);
    after(&ram);
    Ok(outcome)
}

struct Supervised {
    status: ExitStatus,
    timed_out: bool,
    /// `RunConfig::cancel` was set: QEMU was stopped.
    cancelled: bool,
    first_output: Option<Instant>,
    stderr: String,
    /// The console ring was corrupt or the channel tampered with: QEMU was stopped.
    ring_error: Option<StopReason>,
}

/// The guest's RAM as QEMU maps it: an unlinked-on-drop memory file (`memfd`) QEMU opens through
/// `/proc/self/fd` (the descriptor is inherited), mapped here too, so the VMM reads the console ring and
/// the buffers it names where QEMU's guest wrote them.
struct SharedRam {
    file: std::fs::File,
    map: memmap2::MmapMut,
    /// The guest memory the kernel uses (`MemoryImage::memory_size`); the rest is QEMU's slack.
    guest_size: u64,
}

impl SharedRam {
    fn create(size: u64, guest_size: u64) -> Result<Self, BackendError> {
        use std::os::fd::FromRawFd;
        // No MFD_CLOEXEC: QEMU inherits the descriptor.
        // SAFETY: a valid NUL-terminated name and flags; the call returns a new descriptor or -1.
        let fd = unsafe { libc::memfd_create(c"secure-run-guest-ram".as_ptr(), 0) };
        if fd < 0 {
            return Err(io_error("create the guest RAM file")(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a new descriptor this process owns and nothing else uses.
        let file = unsafe { std::fs::File::from_raw_fd(fd) };
        file.set_len(size).map_err(io_error("size the guest RAM file"))?;
        // SAFETY: the file is this run's own; QEMU writes it concurrently, which the accesses below
        // tolerate (they copy bytes, and the protocol orders them: the guest waits for the ack).
        let map = unsafe { memmap2::MmapMut::map_mut(&file) }.map_err(io_error("map the guest RAM file"))?;
        Ok(Self { file, map, guest_size })
    }

    fn path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    fn range(&self, phys: u64, len: usize) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(phys).ok()?;
        let end = start.checked_add(len)?;
        (end as u64 <= self.guest_size && end <= self.map.len()).then_some(start..end)
    }
}

impl GuestRam for SharedRam {
    fn size(&self) -> u64 {
        self.guest_size
    }
    fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
        let Some(range) = self.range(phys, buf.len()) else { return false };
        buf.copy_from_slice(&self.map[range]);
        true
    }
    fn write(&mut self, phys: u64, data: &[u8]) -> bool {
        let Some(range) = self.range(phys, data.len()) else { return false };
        self.map[range].copy_from_slice(data);
        true
    }
}

/// Streams QEMU's stdout into the decoder until QEMU exits or the deadline passes (then kills it).
fn supervise(
    child: &mut Child,
    deadline: Option<Instant>,
    cancel: Option<&'static AtomicBool>,
    state: &mut ExitState<'_>,
) -> Result<Supervised, BackendError> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    std::thread::scope(|scope| {
        let stderr_reader = scope.spawn(move || read_capped(stderr, STDERR_CAP));
        let (sender, receiver) = sync_channel::<Vec<u8>>(QUEUED_CHUNKS);
        scope.spawn(move || {
            let Some(mut stdout) = stdout else { return };
            loop {
                let mut buffer = vec![0; READ_CHUNK];
                match stdout.read(&mut buffer) {
                    Ok(0) => return,
                    Ok(read) => {
                        buffer.truncate(read);
                        if sender.send(buffer).is_err() {
                            return;
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        });
        let mut timed_out = false;
        let mut cancelled = false;
        let mut first_output = None;
        let mut ring_error = None;
        loop {
            if !cancelled && cancel.is_some_and(|cancel| cancel.load(Ordering::Relaxed)) {
                // Killing QEMU closes its stdout, which ends the reader and this loop.
                cancelled = true;
                let _ = child.kill();
            }
            // With a cancel flag to watch, wait in slices of CANCEL_POLL.
            let until = match (deadline.filter(|_| !timed_out), cancel.filter(|_| !cancelled)) {
                (Some(deadline), Some(_)) => Some(deadline.min(Instant::now() + CANCEL_POLL)),
                (Some(deadline), None) => Some(deadline),
                (None, Some(_)) => Some(Instant::now() + CANCEL_POLL),
                (None, None) => None,
            };
            let chunk = match until {
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        Err(RecvTimeoutError::Timeout)
                    } else {
                        receiver.recv_timeout(left)
                    }
                }
                None => receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match chunk {
                Ok(chunk) => {
                    first_output.get_or_insert_with(Instant::now);
                    if let Err(stop) = state.feed_console(&chunk) {
                        if ring_error.is_none() {
                            ring_error = Some(stop);
                            let _ = child.kill();
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if deadline.is_some_and(|deadline| Instant::now() >= deadline) && !timed_out {
                        timed_out = true;
                        let _ = child.kill();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = wait_until(child, deadline.filter(|_| !timed_out && !cancelled))?;
        let timed_out = timed_out || status.is_none();
        let status = match status {
            Some(status) => status,
            None => {
                let _ = child.kill();
                child.wait().map_err(io_error("wait for QEMU"))?
            }
        };
        let stderr = stderr_reader.join().unwrap_or_default();
        Ok(Supervised { status, timed_out, cancelled, first_output, stderr, ring_error })
    })
}

/// Waits for `child` to exit, until `deadline` if any (`None` when it passed first).
fn wait_until(child: &mut Child, deadline: Option<Instant>) -> Result<Option<ExitStatus>, BackendError> {
    let Some(deadline) = deadline else {
        return child.wait().map(Some).map_err(io_error("wait for QEMU"));
    };
    loop {
        if let Some(status) = child.try_wait().map_err(io_error("wait for QEMU"))? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Reads `source` to its end, keeping the first `cap` bytes.
fn read_capped(source: Option<impl Read>, cap: usize) -> String {
    let Some(mut source) = source else { return String::new() };
    let mut kept = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                let room = cap.saturating_sub(kept.len()).min(read);
                kept.extend_from_slice(&buffer[..room]);
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&kept).trim().to_owned()
}

/// Maps QEMU's exit to a stop reason. `isa-debug-exit` gives an odd status; QEMU's own errors give 1
/// *with a message on stderr*, so an odd status counts as the exit port only when stderr is empty.
/// With `-no-reboot`, a triple fault (or any guest-requested reset) ends QEMU with status 0.
fn stop_reason(status: ExitStatus, stderr: String) -> StopReason {
    match status.code() {
        Some(code) if code % 2 == 1 && stderr.is_empty() => StopReason::ExitPort,
        Some(0) if stderr.is_empty() => StopReason::TripleFault,
        code => StopReason::QemuExited { code, stderr },
    }
}
