//! The two ways to run a [`MemoryImage`]: KVM (fast, where the host allows it) and QEMU TCG (correct
//! everywhere), and the probes the backend policy ([`crate::policy`]) decides with.
//!
//! Both start the guest in the same state — the 64-bit entry of [`crate::arch::x86_64::regs`] with the
//! [`VcpuEntry`]'s values, GDTR on the boot GDT — and both report through the same console decoder
//! ([`crate::devices::console`]) and [`GuestOutcome`].
//! - [`kvm`]: one memory slot, vCPU entered directly in long mode, exits handled by
//!   [`crate::exit::handle_exit`]; the timeout kicks the vCPU out of `KVM_RUN` with a signal.
//! - [`qemu`]: writes a PVH boot ELF ([`pvh`]) and runs `qemu-system-x86_64 -accel tcg`, decoding its
//!   stdout (the debug console); the timeout kills QEMU.

pub mod kvm;
pub mod pvh;
pub mod qemu;

use std::path::PathBuf;
use std::time::Duration;

use crate::devices::console::{ConsoleSink, DEFAULT_LOG_LIMIT, DEFAULT_OUTPUT_LIMIT};
use crate::exit::GuestOutcome;
use isolation::paging::PAGE_SIZE;

use crate::arch::x86_64::layout::{IMAGE_START, PAGE_TABLE_ROOT_LIMIT};
use crate::image::{MemoryImage, VcpuEntry};

pub use kvm::{open_kvm, probe_kvm, KvmCapabilities, KvmExecutor, KvmVm, RestoreStats};
pub use qemu::{qemu_available, QemuMachine};

/// Which hypervisor runs the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Kvm,
    Qemu,
}

impl Backend {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Qemu => "qemu",
        }
    }
}

/// How to run.
#[derive(Clone)]
pub struct RunConfig {
    /// The key the guest's console frames must carry: the one in the image's boot info
    /// ([`crate::run::install_console_key`]). The default is a fresh one from the OS, which an image
    /// without it in its boot info does not know: every frame of such a run is tampering.
    pub console_key: kernel_abi::ConsoleKey,
    /// Stop the guest after this long (`StopReason::Timeout`).
    pub timeout: Option<Duration>,
    /// Cap on the app's stdout + stderr bytes forwarded to the sink.
    pub output_limit: u64,
    /// Cap on kernel log bytes forwarded to the sink.
    pub log_limit: u64,
    /// The guest needs protection keys: KVM refuses to run it if the host's KVM offers none.
    pub needs_pku: bool,
    /// Report backend details (command line, timings) through [`ConsoleSink::notice`].
    pub verbose: bool,
    /// The QEMU binary; `None` finds `qemu-system-x86_64` on `PATH`.
    pub qemu_binary: Option<PathBuf>,
    /// The QEMU machine type.
    pub qemu_machine: QemuMachine,
    /// When set, the run stops ([`crate::exit::StopReason::Cancelled`]). Both backends look at it every
    /// few milliseconds; setting it from a signal handler installed without `SA_RESTART` makes the KVM
    /// backend notice at once (the signal interrupts `KVM_RUN`).
    pub cancel: Option<&'static std::sync::atomic::AtomicBool>,
}

/// Leaves the console key out: `--verbose` output and test logs are no place for the run's secret.
impl std::fmt::Debug for RunConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunConfig")
            .field("timeout", &self.timeout)
            .field("output_limit", &self.output_limit)
            .field("log_limit", &self.log_limit)
            .field("needs_pku", &self.needs_pku)
            .field("verbose", &self.verbose)
            .field("qemu_binary", &self.qemu_binary)
            .field("qemu_machine", &self.qemu_machine)
            .field("cancel", &self.cancel.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for RunConfig {
    /// Panics only if the OS's random number generator fails (Linux's getrandom does not, once booted);
    /// `secure-run` itself draws its key with [`draw_key`](crate::devices::console::draw_key) and
    /// reports such a failure as an error.
    fn default() -> Self {
        Self {
            console_key: crate::devices::console::draw_key()
                .unwrap_or_else(|error| panic!("the OS random number generator failed: {error}")),
            timeout: None,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            log_limit: DEFAULT_LOG_LIMIT,
            needs_pku: false,
            verbose: false,
            qemu_binary: None,
            qemu_machine: QemuMachine::default(),
            cancel: None,
        }
    }
}

/// Why a backend could not run the guest (the guest's own failures are a [`GuestOutcome`], not this).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("invalid memory image: {0}")]
    InvalidImage(String),
    #[error("KVM: cannot {action}: {source}")]
    Kvm {
        action: &'static str,
        #[source]
        source: vmm_sys_util::errno::Error,
    },
    #[error("cannot allocate {size} bytes of guest memory: {message}")]
    GuestMemory { size: u64, message: String },
    #[error("the guest needs protection keys, but this host's KVM does not offer PKU to guests; use --backend qemu")]
    PkuUnavailable,
    #[error("cannot install the vCPU kick signal handler: {0}")]
    Signal(String),
    #[error("QEMU is not available: {0}")]
    QemuNotFound(String),
    #[error("cannot build the PVH boot image: {0}")]
    BootImage(#[from] pvh::PvhError),
    #[error("QEMU: cannot {action}: {source}")]
    QemuIo {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Runs `image` from `entry` on `backend`, forwarding console output to `sink`.
pub fn run(
    backend: Backend,
    image: &MemoryImage,
    entry: &VcpuEntry,
    config: &RunConfig,
    sink: &mut dyn ConsoleSink,
) -> Result<GuestOutcome, BackendError> {
    run_in(backend, None, image, entry, config, sink)
}

/// Like [`run`], but on KVM in `kvm_vm` (the VM [`open_kvm`] probed with) when given, instead of a new
/// VM. QEMU does not use it.
pub fn run_in(
    backend: Backend,
    kvm_vm: Option<KvmVm>,
    image: &MemoryImage,
    entry: &VcpuEntry,
    config: &RunConfig,
    sink: &mut dyn ConsoleSink,
) -> Result<GuestOutcome, BackendError> {
    validate_image(image, entry)?;
    match backend {
        Backend::Kvm => kvm::run(kvm_vm, image, entry, config, sink),
        Backend::Qemu => {
            drop(kvm_vm);
            qemu::run(image, entry, config, sink)
        }
    }
}

/// Checks what both backends rely on: page-granular memory size, chunks inside RAM from [`IMAGE_START`]
/// (above the trampoline page) and not overlapping each other, a page-table root in RAM below
/// [`PAGE_TABLE_ROOT_LIMIT`] (the 32-bit PVH entry loads it).
pub fn validate_image(image: &MemoryImage, entry: &VcpuEntry) -> Result<(), BackendError> {
    let invalid = |message: String| Err(BackendError::InvalidImage(message));
    if !image.memory_size.is_multiple_of(PAGE_SIZE) || image.memory_size < IMAGE_START + PAGE_SIZE {
        return invalid(format!(
            "memory size {:#x} must be a multiple of 4 KiB and more than {IMAGE_START:#x}",
            image.memory_size
        ));
    }
    let mut ranges = Vec::with_capacity(image.chunks.len());
    for chunk in &image.chunks {
        let end = chunk.guest_phys.checked_add(chunk.bytes.len() as u64);
        match end {
            Some(end) if chunk.guest_phys >= IMAGE_START && end <= image.memory_size => {
                ranges.push((chunk.guest_phys, end));
            }
            _ => {
                return invalid(format!(
                    "chunk at {:#x} ({} bytes) is outside [{IMAGE_START:#x}, {:#x})",
                    chunk.guest_phys,
                    chunk.bytes.len(),
                    image.memory_size
                ))
            }
        }
    }
    ranges.sort_unstable();
    if let Some(pair) = ranges.windows(2).find(|pair| pair[0].1 > pair[1].0) {
        return invalid(format!("chunks at {:#x} and {:#x} overlap", pair[0].0, pair[1].0));
    }
    let root = entry.page_table_root;
    if !root.is_multiple_of(PAGE_SIZE)
        || root < IMAGE_START
        || root >= image.memory_size
        || root >= PAGE_TABLE_ROOT_LIMIT
    {
        return invalid(format!("page-table root {root:#x} must be a page in RAM above the trampoline, below 4 GiB"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
