//! The KVM backend: one memory slot, one vCPU entered directly in 64-bit mode, a `KVM_RUN` loop around
//! [`handle_exit`], and two timers that kick the vCPU out of `KVM_RUN`: one when `--timeout` expires,
//! one when the guest's timer interrupt is due.
//!
//! The vCPU runs on the calling thread (so the console sink need not be `Send`). Each kick is a POSIX
//! timer (`KickTimer`) that signals that thread, whose no-op handler is installed without
//! `SA_RESTART`, so `KVM_RUN` returns `EINTR`; the timer repeats the signal until the loop has acted,
//! which closes the race of a signal arriving just before `KVM_RUN` starts. The guest's timer is the
//! PIT/8259 model of `devices::timer` (no in-kernel irqchip): before each `KVM_RUN` the loop injects its
//! vector with `KVM_INTERRUPT` when it is due and the vCPU can take it, else asks KVM for an
//! interrupt-window exit.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use isolation::paging::{translate, PhysMemory};
use kvm_bindings::{kvm_userspace_memory_region, CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

mod snapshot;

pub use snapshot::{KvmExecutor, RestoreStats};

use super::{pvh, BackendError, RunConfig};
use crate::arch::x86_64::layout::TRAMPOLINE_ADDR;
use crate::arch::x86_64::regs;
use crate::devices::console::{ConsoleDecoder, ConsoleSink, GuestRam};
use crate::exit::{handle_exit, Action, ExitState, GuestExitEvent, GuestOutcome, StopReason};
use crate::image::{MemoryImage, VcpuEntry};

/// What the host's KVM can do, for the backend policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvmCapabilities {
    /// `/dev/kvm` opens and a VM can be created.
    pub usable: bool,
    /// KVM offers protection keys to guests (CPUID.(EAX=7,ECX=0):ECX.PKU[bit 3]).
    pub pku: bool,
    /// The host is a nested, pagetable-based KVM (`kvm_pvm`) that emulates guest CPL0 code: slow, and
    /// lacking SSE/x87/INT3 and more at CPL0.
    pub cpl0_emulated: bool,
    /// The guest TSC frequency, when KVM knows it.
    pub tsc_khz: Option<u32>,
    /// Why something is missing, one line each.
    pub notes: Vec<String>,
}

const PKU_ECX_BIT: u32 = 1 << 3;

fn offers_pku(cpuid: &CpuId) -> bool {
    cpuid.as_slice().iter().any(|leaf| leaf.function == 7 && leaf.index == 0 && leaf.ecx & PKU_ECX_BIT != 0)
}

/// A KVM VM with vCPU 0, before it has memory or registers.
///
/// Probing KVM means creating a VM and a vCPU (the TSC frequency is a vCPU property), which costs about
/// a millisecond on some hosts, and so does destroying them; [`open_kvm`] therefore hands its VM on, so
/// that a run creates one VM rather than a probe VM and then another.
pub struct KvmVm {
    vcpu: VcpuFd,
    vm: VmFd,
    /// What KVM supports (`KVM_GET_SUPPORTED_CPUID`), given to the vCPU unchanged.
    cpuid: CpuId,
}

/// A VM with its guest memory registered. Fields drop in declaration order: the vCPU and the VM before
/// the memory their slot points into.
struct VmWithMemory {
    vcpu: VcpuFd,
    vm: VmFd,
    memory: GuestMemoryMmap,
}

impl KvmVm {
    /// Opens `/dev/kvm` and creates a VM with vCPU 0.
    fn create() -> Result<Self, BackendError> {
        let kvm = Kvm::new().map_err(kvm_error("open /dev/kvm"))?;
        let cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(kvm_error("read the supported CPUID"))?;
        let vm = kvm.create_vm().map_err(kvm_error("create a VM"))?;
        let vcpu = vm.create_vcpu(0).map_err(kvm_error("create a vCPU"))?;
        Ok(Self { vcpu, vm, cpuid })
    }

    /// Maps `size` bytes of zeroed memory and registers them as the guest's RAM from address 0.
    /// With `log_dirty`, KVM logs the pages the guest writes (`KVM_MEM_LOG_DIRTY_PAGES`).
    fn attach_memory(self, size: u64, log_dirty: bool) -> Result<VmWithMemory, BackendError> {
        let length =
            usize::try_from(size).map_err(|_| BackendError::GuestMemory { size, message: "too large".into() })?;
        let memory = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), length)])
            .map_err(|error| BackendError::GuestMemory { size, message: error.to_string() })?;
        let host_address = memory
            .get_host_address(GuestAddress(0))
            .map_err(|error| BackendError::GuestMemory { size, message: error.to_string() })?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: if log_dirty { kvm_bindings::KVM_MEM_LOG_DIRTY_PAGES } else { 0 },
            guest_phys_addr: 0,
            memory_size: size,
            userspace_addr: host_address as u64,
        };
        // SAFETY: `region` describes exactly the `size` bytes `memory` mapped at `host_address`, and
        // `memory` outlives the VM: both move into a `VmWithMemory`, which drops the VM first (if this
        // fails, KVM keeps no region). Nothing else uses slot 0.
        unsafe { self.vm.set_user_memory_region(region) }.map_err(kvm_error("register guest memory"))?;
        Ok(VmWithMemory { vcpu: self.vcpu, vm: self.vm, memory })
    }
}

/// Probes `/dev/kvm`. Never fails: what does not work is `false` with a note.
pub fn probe_kvm() -> KvmCapabilities {
    open_kvm().0
}

/// Probes `/dev/kvm` like [`probe_kvm`], and returns the VM it probed with when everything a run needs
/// worked (a VM, its vCPU and the supported CPUID), for [`super::run_in`].
pub fn open_kvm() -> (KvmCapabilities, Option<KvmVm>) {
    let mut caps = KvmCapabilities { cpl0_emulated: Path::new("/sys/module/kvm_pvm").exists(), ..Default::default() };
    if caps.cpl0_emulated {
        caps.notes.push("KVM is nested kvm_pvm: guest CPL0 code is emulated (no SSE/x87/INT3 at CPL0)".into());
    }
    let kvm = match Kvm::new() {
        Ok(kvm) => kvm,
        Err(error) => {
            caps.notes.push(format!("cannot open /dev/kvm: {error}"));
            return (caps, None);
        }
    };
    let vm = match kvm.create_vm() {
        Ok(vm) => vm,
        Err(error) => {
            caps.notes.push(format!("cannot create a KVM VM: {error}"));
            return (caps, None);
        }
    };
    caps.usable = true;
    let cpuid = match kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES) {
        Ok(cpuid) => {
            caps.pku = offers_pku(&cpuid);
            if !caps.pku {
                caps.notes.push("KVM does not offer protection keys (PKU) to guests".into());
            }
            Some(cpuid)
        }
        Err(error) => {
            caps.notes.push(format!("cannot read KVM's supported CPUID: {error}"));
            None
        }
    };
    let vcpu = vm.create_vcpu(0).ok();
    if let Some(vcpu) = &vcpu {
        caps.tsc_khz = vcpu.get_tsc_khz().ok().filter(|&khz| khz != 0);
    }
    let kvm_vm = match (cpuid, vcpu) {
        (Some(cpuid), Some(vcpu)) => Some(KvmVm { vcpu, vm, cpuid }),
        _ => None,
    };
    (caps, kvm_vm)
}

fn kvm_error(action: &'static str) -> impl FnOnce(vmm_sys_util::errno::Error) -> BackendError {
    move |source| BackendError::Kvm { action, source }
}

/// `kvm_vm` (or a new VM) with its vCPU's CPUID set and `memory_size` bytes of guest RAM, dirty-logged
/// with `log_dirty`; refused if the guest needs protection keys KVM does not offer.
fn vm_with_memory(
    kvm_vm: Option<KvmVm>,
    config: &RunConfig,
    memory_size: u64,
    log_dirty: bool,
) -> Result<VmWithMemory, BackendError> {
    let kvm_vm = match kvm_vm {
        Some(kvm_vm) => kvm_vm,
        None => KvmVm::create()?,
    };
    if config.needs_pku && !offers_pku(&kvm_vm.cpuid) {
        return Err(BackendError::PkuUnavailable);
    }
    // Needed here even though we change nothing: without it, setting EFER.NXE raises #GP (seen on this
    // project's nested KVM).
    kvm_vm.vcpu.set_cpuid2(&kvm_vm.cpuid).map_err(kvm_error("set the vCPU's CPUID"))?;
    kvm_vm.attach_memory(memory_size, log_dirty)
}

/// Runs the guest in `kvm_vm` (from [`open_kvm`]), or in a new VM when `None`.
pub(super) fn run(
    kvm_vm: Option<KvmVm>,
    image: &MemoryImage,
    entry: &VcpuEntry,
    config: &RunConfig,
    sink: &mut dyn ConsoleSink,
) -> Result<GuestOutcome, BackendError> {
    let started = Instant::now();
    let mut guest = vm_with_memory(kvm_vm, config, image.memory_size, false)?;
    write_image(&guest.memory, image, entry)?;
    set_long_mode_entry(&guest.vcpu, entry)?;
    install_kick_handler()?;

    let mut ram = KvmRam(&guest.memory);
    let decoder = ConsoleDecoder::new(config.console_key, config.output_limit, config.log_limit);
    let mut state = ExitState::new(decoder, sink).with_ring(&mut ram, image.console_ring);
    let mut first_exit = None;
    let deadline = config.timeout.map(Deadline::arm).transpose()?;
    let guest_timer = KickTimer::new()?;
    let stop = run_loop(
        &mut guest.vcpu,
        &guest.memory,
        entry,
        &mut state,
        Timers { deadline: deadline.as_ref(), guest: &guest_timer, started, cancel: config.cancel },
        &mut first_exit,
    )?;
    drop(deadline);
    let first_exit_after = first_exit.map(|at: Instant| at - started);
    let wall_time = started.elapsed();
    if config.verbose {
        state.notice(&format!(
            "kvm: {stop}; {} exits, first after {first_exit_after:?}, {wall_time:?} in all",
            state.exits()
        ));
    }
    Ok(state.into_outcome(stop, first_exit_after, wall_time))
}

/// Writes the image's chunks, and the trampoline page, into zeroed guest memory.
fn write_image(memory: &GuestMemoryMmap, image: &MemoryImage, entry: &VcpuEntry) -> Result<(), BackendError> {
    let write = |bytes: &[u8], address: u64| {
        prefault(memory, address, bytes.len());
        memory.write_slice(bytes, GuestAddress(address)).map_err(|error| BackendError::InvalidImage(error.to_string()))
    };
    for chunk in &image.chunks {
        write(&chunk.bytes, chunk.guest_phys)?;
    }
    // The trampoline page is unused on KVM, but writing it gives the kernel the same memory (and the
    // same GDT) on both backends.
    write(&pvh::trampoline_page(entry), TRAMPOLINE_ADDR)
}

/// Faults in the pages of `[address, address + length)` of guest memory in one system call, which costs
/// less than the page faults of copying into them one by one. Only an optimization: pages it leaves out
/// (outside the memory, or on kernels before Linux 5.14 without `MADV_POPULATE_WRITE`) fault as usual.
fn prefault(memory: &GuestMemoryMmap, address: u64, length: usize) {
    const PAGE: usize = 4096;
    let Some(end) = address.checked_add(length as u64) else { return };
    if length == 0 || end > memory.last_addr().raw_value().saturating_add(1) {
        return;
    }
    let Ok(host) = memory.get_host_address(GuestAddress(address)) else { return };
    let start = host as usize & !(PAGE - 1);
    let end = (host as usize + length).next_multiple_of(PAGE);
    // SAFETY: `[start, end)` lies inside `memory`'s single private anonymous mapping (it starts page
    // aligned, and `[address, address + length)` is inside it, so the rounded range is too).
    // MADV_POPULATE_WRITE only faults pages in as a write would, leaving their contents unchanged; it
    // creates no references into the memory.
    unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_POPULATE_WRITE) };
}

/// Sets the state the PVH trampoline reaches on QEMU ([`regs`]): long mode, paging on, flat 64-bit
/// segments.
fn set_long_mode_entry(vcpu: &VcpuFd, entry: &VcpuEntry) -> Result<(), BackendError> {
    let mut sregs = vcpu.get_sregs().map_err(kvm_error("read the vCPU's special registers"))?;
    regs::set_entry_sregs(&mut sregs, entry);
    vcpu.set_sregs(&sregs).map_err(kvm_error("set the vCPU's special registers"))?;
    vcpu.set_regs(&regs::entry_regs(entry)).map_err(kvm_error("set the vCPU's registers"))
}

/// The `KVM_RUN` loop: a few lines around [`handle_exit`].
fn run_loop(
    vcpu: &mut VcpuFd,
    memory: &GuestMemoryMmap,
    entry: &VcpuEntry,
    state: &mut ExitState<'_>,
    timers: Timers<'_>,
    first_exit: &mut Option<Instant>,
) -> Result<StopReason, BackendError> {
    let mut kick_armed_for = None;
    // The signal that sets the cancel flag interrupts KVM_RUN, but one that lands between the check below
    // and KVM_RUN would leave a guest that never exits running: a kick every KICK_INTERVAL bounds that.
    let _cancel_watch = match timers.cancel {
        Some(_) => {
            let watch = KickTimer::new()?;
            watch.arm(KICK_INTERVAL)?;
            Some(watch)
        }
        None => None,
    };
    loop {
        if timers.deadline.is_some_and(Deadline::passed) {
            return Ok(StopReason::Timeout);
        }
        if timers.cancel.is_some_and(|cancel| cancel.load(std::sync::atomic::Ordering::Relaxed)) {
            return Ok(StopReason::Cancelled);
        }
        state.now = timers.started.elapsed().as_nanos() as u64;
        inject_timer_interrupt(vcpu, state)?;
        // Kick KVM_RUN out when the guest's timer expires (repeating until it is injected, so a kick
        // that lands just before KVM_RUN is not lost).
        let expires_at = state.timer.expires_at();
        if expires_at != kick_armed_for {
            match expires_at {
                Some(at) => timers.guest.arm(Duration::from_nanos(at.saturating_sub(state.now)))?,
                None => timers.guest.disarm()?,
            }
            kick_armed_for = expires_at;
        }
        let result = vcpu.run();
        first_exit.get_or_insert_with(Instant::now);
        let event = match result {
            Ok(VcpuExit::IoOut(port, data)) => GuestExitEvent::IoOut { port, data },
            Ok(VcpuExit::IoIn(port, data)) => GuestExitEvent::IoIn { port, data },
            Ok(VcpuExit::MmioRead(address, data)) => GuestExitEvent::MmioRead { address, data },
            Ok(VcpuExit::MmioWrite(address, data)) => GuestExitEvent::MmioWrite { address, data },
            Ok(VcpuExit::Hlt) => GuestExitEvent::Hlt,
            Ok(VcpuExit::Shutdown) => GuestExitEvent::Shutdown,
            Ok(VcpuExit::FailEntry(reason, _)) => GuestExitEvent::FailEntry { reason },
            Ok(VcpuExit::Intr | VcpuExit::IrqWindowOpen) => GuestExitEvent::Interrupted,
            Ok(VcpuExit::InternalError) => internal_error(vcpu, memory, entry),
            Ok(other) => GuestExitEvent::Unknown(format!("{other:?}")),
            Err(error) if matches!(error.errno(), libc::EINTR | libc::EAGAIN) => GuestExitEvent::Interrupted,
            Err(error) => return Err(BackendError::Kvm { action: "run the vCPU", source: error }),
        };
        if let Action::Stop(reason) = handle_exit(event, state) {
            return Ok(reason);
        }
    }
}

/// The timers the vCPU loop watches.
struct Timers<'t> {
    /// `--timeout`.
    deadline: Option<&'t Deadline>,
    /// Kicks `KVM_RUN` out when the guest's timer interrupt is due.
    guest: &'t KickTimer,
    /// When the VM started: guest time 0.
    started: Instant,
    /// Set (from a signal handler, whose signal interrupts `KVM_RUN`) to stop the run; looked at after
    /// every exit, and at least every KICK_INTERVAL.
    cancel: Option<&'static std::sync::atomic::AtomicBool>,
}

// KVM_INTERRUPT (not wrapped by kvm-ioctls): inject an external interrupt without an in-kernel irqchip.
vmm_sys_util::ioctl_iow_nr!(KVM_INTERRUPT, kvm_bindings::KVMIO, 0x86, kvm_bindings::kvm_interrupt);

/// Injects the guest timer's vector when it is due and the vCPU can take it (IF set, no event being
/// delivered); else asks KVM to exit as soon as it can.
fn inject_timer_interrupt(vcpu: &mut VcpuFd, state: &mut ExitState<'_>) -> Result<(), BackendError> {
    state.timer.poll(state.now);
    let vector = state.timer.ready();
    let run = vcpu.get_kvm_run();
    let can_inject = run.ready_for_interrupt_injection != 0 && run.if_flag != 0;
    match vector {
        Some(vector) if can_inject => {
            run.request_interrupt_window = 0;
            let interrupt = kvm_bindings::kvm_interrupt { irq: u32::from(vector) };
            // SAFETY: KVM_INTERRUPT reads one `kvm_interrupt` from the pointer, which lives for the call;
            // the fd is this VM's vCPU.
            let result = unsafe { vmm_sys_util::ioctl::ioctl_with_ref(&*vcpu, KVM_INTERRUPT(), &interrupt) };
            if result != 0 {
                return Err(BackendError::Kvm {
                    action: "inject the timer interrupt",
                    source: vmm_sys_util::errno::Error::last(),
                });
            }
            state.timer.acknowledge();
        }
        Some(_) => run.request_interrupt_window = 1,
        None => run.request_interrupt_window = 0,
    }
    Ok(())
}

/// Describes an internal error: the suberror, RIP and the instruction bytes there (found through the
/// guest's page tables, read with bounded copies).
fn internal_error(vcpu: &mut VcpuFd, memory: &GuestMemoryMmap, entry: &VcpuEntry) -> GuestExitEvent<'static> {
    // SAFETY: KVM_RUN just reported KVM_EXIT_INTERNAL_ERROR, so `internal` is the union member KVM wrote.
    let suberror = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal.suberror };
    let rip = vcpu.get_regs().ok().map(|regs| regs.rip);
    let root = vcpu.get_sregs().map(|sregs| sregs.cr3 & 0x000f_ffff_ffff_f000).unwrap_or(entry.page_table_root);
    let instruction = rip.and_then(|rip| {
        let reader = GuestPhys(memory);
        let mut bytes = Vec::with_capacity(15);
        for address in rip..rip.saturating_add(15) {
            let (phys, _) = translate(&reader, root, address)?;
            bytes.push(memory.read_obj::<u8>(GuestAddress(phys)).ok()?);
        }
        Some(bytes)
    });
    GuestExitEvent::InternalError { suberror, rip, instruction }
}

/// Guest memory as the console ring reads it.
struct KvmRam<'m>(&'m GuestMemoryMmap);

impl GuestRam for KvmRam<'_> {
    fn size(&self) -> u64 {
        self.0.last_addr().raw_value().saturating_add(1)
    }
    fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
        self.0.read_slice(buf, GuestAddress(phys)).is_ok()
    }
    fn write(&mut self, phys: u64, data: &[u8]) -> bool {
        self.0.write_slice(data, GuestAddress(phys)).is_ok()
    }
}

/// Read-only page-table walking over guest memory; out-of-range reads give 0 (not present).
struct GuestPhys<'m>(&'m GuestMemoryMmap);

impl PhysMemory for GuestPhys<'_> {
    fn read_u64(&self, phys: u64) -> u64 {
        self.0.read_obj::<u64>(GuestAddress(phys)).unwrap_or(0)
    }
    fn write_u64(&mut self, _phys: u64, _value: u64) {}
    fn alloc_zeroed_frame(&mut self) -> Option<u64> {
        None
    }
}

/// The real-time signal that kicks a vCPU out of `KVM_RUN`.
fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN() + 1
}

extern "C" fn ignore_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the no-op kick handler once per process (`SA_SIGINFO`, no `SA_RESTART`).
fn install_kick_handler() -> Result<(), BackendError> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            vmm_sys_util::signal::register_signal_handler(kick_signal(), ignore_kick).map_err(|error| error.to_string())
        })
        .clone()
        .map_err(BackendError::Signal)
}

/// How often the timer repeats the kick after the deadline, until the vCPU loop has stopped (a kick that
/// lands between the loop's deadline check and `KVM_RUN` is not lost).
const KICK_INTERVAL: Duration = Duration::from_millis(5);

/// A POSIX timer that sends the kick signal to the vCPU thread (whose no-op handler, installed without
/// `SA_RESTART`, makes `KVM_RUN` return `EINTR`); once armed it repeats every [`KICK_INTERVAL`] until
/// disarmed, which closes the race of a kick landing just before `KVM_RUN` starts.
struct KickTimer {
    timer: libc::timer_t,
}

impl KickTimer {
    /// A disarmed timer aimed at the calling thread.
    fn new() -> Result<Self, BackendError> {
        // SAFETY: all-zero is a valid `sigevent`; the fields set below select a signal to one thread.
        let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
        event.sigev_notify = libc::SIGEV_THREAD_ID;
        event.sigev_signo = kick_signal();
        // SAFETY: gettid has no preconditions.
        event.sigev_notify_thread_id = unsafe { libc::gettid() };
        let mut timer: libc::timer_t = std::ptr::null_mut();
        // SAFETY: `event` and `timer` are valid for the call; the timer is deleted in `Drop`.
        if unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut timer) } != 0 {
            return Err(BackendError::Signal(format!("timer_create: {}", std::io::Error::last_os_error())));
        }
        Ok(Self { timer })
    }

    fn set(&self, spec: &libc::itimerspec) -> Result<(), BackendError> {
        // SAFETY: `timer` was created by `new`; `spec` is valid for reads.
        if unsafe { libc::timer_settime(self.timer, 0, spec, std::ptr::null_mut()) } != 0 {
            return Err(BackendError::Signal(format!("timer_settime: {}", std::io::Error::last_os_error())));
        }
        Ok(())
    }

    /// Kicks after `after`, then every [`KICK_INTERVAL`].
    fn arm(&self, after: Duration) -> Result<(), BackendError> {
        self.set(&libc::itimerspec { it_interval: timespec(KICK_INTERVAL), it_value: timespec(after) })
    }

    fn disarm(&self) -> Result<(), BackendError> {
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        self.set(&libc::itimerspec { it_interval: zero, it_value: zero })
    }
}

impl Drop for KickTimer {
    fn drop(&mut self) {
        // SAFETY: the timer was created by `new` and is deleted once.
        unsafe { libc::timer_delete(self.timer) };
    }
}

/// When the vCPU loop must stop (`--timeout`), with the kick that interrupts `KVM_RUN` then. No watchdog
/// thread to start, wake and join on every run.
struct Deadline {
    at: Instant,
    _kick: KickTimer,
}

impl Deadline {
    /// Arms the kick for `timeout` from now.
    fn arm(timeout: Duration) -> Result<Self, BackendError> {
        let kick = KickTimer::new()?;
        kick.arm(timeout)?;
        Ok(Self { at: Instant::now() + timeout, _kick: kick })
    }

    fn passed(&self) -> bool {
        Instant::now() >= self.at
    }
}

/// A `timespec` for `duration` (a zero duration would disarm the timer: at least a nanosecond).
fn timespec(duration: Duration) -> libc::timespec {
    let duration = duration.max(Duration::from_nanos(1));
    libc::timespec {
        tv_sec: libc::time_t::try_from(duration.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(duration.subsec_nanos()),
    }
}
