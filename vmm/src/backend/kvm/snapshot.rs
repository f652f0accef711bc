//! `--afl` on KVM: boot once to the kernel's snapshot point (`kernel_abi::afl`), snapshot the VM there,
//! and run each input from that snapshot.
//!
//! The snapshot is the vCPU's whole architectural state (general, segment and control registers, XSAVE
//! area, XCR0, debug registers, pending events, and the MSRs the kernel programs, the TSC among them, so
//! every execution sees the same clock), the guest's RAM (a copy of its non-zero pages) and the VMM's
//! device state (timer model, console decoder). RAM is logged from boot (`KVM_MEM_LOG_DIRTY_PAGES`), so
//! the snapshot copies only the pages the image or the boot wrote. Restoring it writes back only what
//! changed: the pages of KVM's dirty-page log since the snapshot, plus the two pages the
//! VMM itself writes (the console ring's acknowledgements, the input region). The coverage map is not
//! restored: it is a second memory slot holding the host's AFL segment, which afl-fuzz clears itself.

use std::time::{Duration, Instant};

use kvm_bindings::{
    kvm_debugregs, kvm_msr_entry, kvm_regs, kvm_sregs, kvm_userspace_memory_region, kvm_vcpu_events, kvm_xcrs,
    kvm_xsave, Msrs,
};
use vm_memory::{Bytes, GuestAddress};

use super::{
    install_kick_handler, kvm_error, run_loop, set_long_mode_entry, vm_with_memory, write_image, KickTimer, KvmRam,
    KvmVm, Timers, VmWithMemory,
};
use crate::arch::x86_64::layout::TRAMPOLINE_ADDR;
use crate::backend::{BackendError, RunConfig};
use crate::devices::console::{ConsoleDecoder, ConsoleSink};
use crate::devices::timer::PitPic;
use crate::exit::{ExitState, GuestOutcome, StopReason};
use crate::image::{MemoryImage, VcpuEntry};
use crate::loader::AflRegions;

const PAGE: usize = 4096;

/// MSRs the snapshot saves when KVM lets it read them: the syscall entry, the GS swap, PAT, SYSENTER,
/// TSC_AUX and the TSC itself. (EFER and the FS/GS bases travel in the special registers.)
const MSRS: [u32; 11] = [
    0xc000_0081, // STAR
    0xc000_0082, // LSTAR
    0xc000_0083, // CSTAR
    0xc000_0084, // SFMASK
    0xc000_0102, // KERNEL_GS_BASE
    0xc000_0103, // TSC_AUX
    0x0000_0277, // PAT
    0x0000_0174, // SYSENTER_CS
    0x0000_0175, // SYSENTER_ESP
    0x0000_0176, // SYSENTER_EIP
    0x0000_0010, // TSC
];

/// The VM at the snapshot point.
struct Snapshot {
    regs: kvm_regs,
    sregs: kvm_sregs,
    xsave: kvm_xsave,
    xcrs: kvm_xcrs,
    debug: kvm_debugregs,
    events: kvm_vcpu_events,
    msrs: Vec<kvm_msr_entry>,
    /// Guest RAM: the non-zero pages copied, the rest left zero (never touched, so never allocated).
    ram: Vec<u8>,
    /// Non-zero pages in `ram`.
    pages: u64,
    timer: PitPic,
    decoder: ConsoleDecoder,
    /// Guest time (the VMM's clock for its timer model) at the snapshot.
    now: u64,
}

/// What one restore did, for `--verbose` and the benchmark.
#[derive(Clone, Copy, Debug, Default)]
pub struct RestoreStats {
    /// Pages copied back from the snapshot (the dirty log's and the VMM's own).
    pub pages: u64,
    pub time: Duration,
}

/// A VM booted to the snapshot point that runs one input after another from there.
pub struct KvmExecutor {
    guest: VmWithMemory,
    afl: AflRegions,
    console_ring: u64,
    memory_size: u64,
    config: RunConfig,
    guest_timer: KickTimer,
    snapshot: Snapshot,
    /// The VM has run since the last restore.
    dirty: bool,
    /// How many bytes of the input region the last input used (their tail is cleared before a shorter one).
    input_region_used: usize,
    last_restore: RestoreStats,
}

impl KvmExecutor {
    /// Boots `image` until the kernel reaches the snapshot point and snapshots it there. `Ok(Err(outcome))`
    /// when the guest ended before (the kernel refused the boot info, say): nothing to fuzz.
    ///
    /// # Safety
    /// `map_host`, when given, must point to `image.afl`'s map size in bytes of host memory that stays
    /// mapped, readable and writable, for the executor's whole life (the guest writes it as its coverage
    /// map, concurrently with whatever else reads it).
    pub unsafe fn boot(
        kvm_vm: Option<KvmVm>,
        image: &MemoryImage,
        entry: &VcpuEntry,
        config: &RunConfig,
        map_host: Option<*mut u8>,
        sink: &mut dyn ConsoleSink,
    ) -> Result<Result<Self, GuestOutcome>, BackendError> {
        let started = Instant::now();
        let Some(afl) = image.afl else {
            return Err(BackendError::InvalidImage("the image has no --afl input region".into()));
        };
        // Dirty logging from the start: the snapshot copies the pages the guest wrote while booting and the
        // pages of the image, and knows every other page is still zero.
        let mut guest = vm_with_memory(kvm_vm, config, image.memory_size, true)?;
        if let Some(host) = map_host.filter(|_| afl.map.size != 0) {
            let region = kvm_userspace_memory_region {
                slot: 1,
                flags: 0,
                guest_phys_addr: afl.map.phys_start,
                memory_size: afl.map.size,
                userspace_addr: host as u64,
            };
            // SAFETY: the caller guarantees `host` maps the map's size in bytes for the executor's life, and
            // the executor owns the VM; slot 1 is used for nothing else, and the loader placed the map above
            // slot 0's RAM.
            unsafe { guest.vm.set_user_memory_region(region) }.map_err(kvm_error("register the coverage map"))?;
        }
        write_image(&guest.memory, image, entry)?;
        set_long_mode_entry(&guest.vcpu, entry)?;
        install_kick_handler()?;
        let guest_timer = KickTimer::new()?;

        let mut ram = KvmRam(&guest.memory);
        let decoder = ConsoleDecoder::new(config.console_key, config.output_limit, config.log_limit);
        let mut state = ExitState::new(decoder, sink).with_ring(&mut ram, image.console_ring).expecting_snapshot();
        let mut first_exit = None;
        let deadline = config.timeout.map(super::Deadline::arm).transpose()?;
        let stop = run_loop(
            &mut guest.vcpu,
            &guest.memory,
            entry,
            &mut state,
            Timers { deadline: deadline.as_ref(), guest: &guest_timer, started, cancel: config.cancel },
            &mut first_exit,
        )?;
        drop(deadline);
        if stop != StopReason::SnapshotPoint {
            let first = first_exit.map(|at: Instant| at - started);
            return Ok(Err(state.into_outcome(stop, first, started.elapsed())));
        }
        let now = state.now;
        let timer = state.timer.clone();
        let decoder = state.decoder.clone();
        // KVM completes the OUT (advances RIP past it) only on the next KVM_RUN: enter it with an immediate
        // exit so that the state read below is the state after the OUT.
        guest.vcpu.set_kvm_immediate_exit(1);
        let completed = match guest.vcpu.run() {
            Err(error) if error.errno() == libc::EINTR => Ok(()),
            Err(error) => Err(BackendError::Kvm { action: "complete the snapshot exit", source: error }),
            Ok(exit) => Err(BackendError::InvalidImage(format!(
                "the vCPU ran past the snapshot point instead of stopping ({exit:?})"
            ))),
        };
        guest.vcpu.set_kvm_immediate_exit(0);
        completed?;
        // Reading the log also clears it: from here it lists what each execution writes.
        let booted =
            guest.vm.get_dirty_log(0, image.memory_size as usize).map_err(kvm_error("read the dirty-page log"))?;
        let mut written = vec![false; image.memory_size as usize / PAGE];
        for page in dirty_pages(&booted) {
            if let Some(page) = written.get_mut(page) {
                *page = true;
            }
        }
        let chunks = image.chunks.iter().map(|chunk| (chunk.guest_phys, chunk.bytes.len() as u64));
        for (start, length) in chunks.chain([(TRAMPOLINE_ADDR, PAGE as u64)]) {
            let first = start as usize / PAGE;
            let end = (start + length).div_ceil(PAGE as u64) as usize;
            for page in written.iter_mut().take(end).skip(first) {
                *page = true;
            }
        }
        let snapshot = take_snapshot(&guest, image.memory_size, &written, timer, decoder, now)?;
        if config.verbose {
            sink.notice(&format!(
                "kvm: snapshot after {:?}: {} non-zero pages of RAM, {} MSRs",
                started.elapsed(),
                snapshot.pages,
                snapshot.msrs.len()
            ));
        }
        Ok(Ok(Self {
            guest,
            afl,
            console_ring: image.console_ring,
            memory_size: image.memory_size,
            config: config.clone(),
            guest_timer,
            snapshot,
            dirty: false,
            input_region_used: 0,
            last_restore: RestoreStats::default(),
        }))
    }

    /// What the last [`Self::restore`] did.
    pub fn last_restore(&self) -> RestoreStats {
        self.last_restore
    }

    /// Runs the app from the snapshot with `input` (restoring the snapshot first if the VM ran since).
    pub fn run(&mut self, input: &[u8], sink: &mut dyn ConsoleSink) -> Result<GuestOutcome, BackendError> {
        if self.dirty {
            self.restore()?;
        }
        self.dirty = true;
        self.write_input(input)?;
        let started = Instant::now();
        let memory = &self.guest.memory;
        let mut ram = KvmRam(memory);
        let mut state = ExitState::new(self.snapshot.decoder.clone(), sink).with_ring(&mut ram, self.console_ring);
        state.timer = self.snapshot.timer.clone();
        let mut first_exit = None;
        let deadline = self.config.timeout.map(super::Deadline::arm).transpose()?;
        // Guest time continues from the snapshot's.
        let guest_zero = started.checked_sub(Duration::from_nanos(self.snapshot.now)).unwrap_or(started);
        let timers = Timers {
            deadline: deadline.as_ref(),
            guest: &self.guest_timer,
            started: guest_zero,
            cancel: self.config.cancel,
        };
        let entry = VcpuEntry { rip: 0, rdi: 0, page_table_root: self.snapshot.sregs.cr3 & !0xfff };
        let stop = run_loop(&mut self.guest.vcpu, memory, &entry, &mut state, timers, &mut first_exit);
        drop(deadline);
        self.guest_timer.disarm()?;
        let stop = stop?;
        let first = first_exit.map(|at: Instant| at - started);
        Ok(state.into_outcome(stop, first, started.elapsed()))
    }

    /// Puts the VM back into its snapshot state (a no-op if it has not run since).
    pub fn restore(&mut self) -> Result<(), BackendError> {
        if !self.dirty {
            return Ok(());
        }
        let started = Instant::now();
        let snapshot = &self.snapshot;
        let vcpu = &mut self.guest.vcpu;
        let memory = &self.guest.memory;
        let bitmap =
            self.guest.vm.get_dirty_log(0, self.memory_size as usize).map_err(kvm_error("read the dirty-page log"))?;
        let mut pages = 0;
        for page in dirty_pages(&bitmap) {
            restore_page(memory, &snapshot.ram, page)?;
            pages += 1;
        }
        // The pages the VMM wrote itself, which the dirty log does not see.
        if self.console_ring != 0 {
            restore_page(memory, &snapshot.ram, self.console_ring as usize / PAGE)?;
            pages += 1;
        }
        vcpu.set_regs(&snapshot.regs).map_err(kvm_error("restore the registers"))?;
        vcpu.set_sregs(&snapshot.sregs).map_err(kvm_error("restore the special registers"))?;
        // SAFETY: the XSAVE area was read from this vCPU by `get_xsave`, so it has the layout KVM expects.
        unsafe { vcpu.set_xsave(&snapshot.xsave) }.map_err(kvm_error("restore the XSAVE state"))?;
        vcpu.set_xcrs(&snapshot.xcrs).map_err(kvm_error("restore XCR0"))?;
        vcpu.set_debug_regs(&snapshot.debug).map_err(kvm_error("restore the debug registers"))?;
        vcpu.set_vcpu_events(&snapshot.events).map_err(kvm_error("restore the pending events"))?;
        let msrs = Msrs::from_entries(&snapshot.msrs).map_err(|_| msr_list_error())?;
        let written = vcpu.set_msrs(&msrs).map_err(kvm_error("restore the MSRs"))?;
        if written != snapshot.msrs.len() {
            return Err(BackendError::InvalidImage(format!(
                "KVM restored {written} of the snapshot's {} MSRs",
                snapshot.msrs.len()
            )));
        }
        vcpu.get_kvm_run().request_interrupt_window = 0;
        self.dirty = false;
        self.last_restore = RestoreStats { pages, time: started.elapsed() };
        Ok(())
    }

    /// Writes `input` (truncated to the capacity) and its length into the input region, clearing what a
    /// longer previous input left behind.
    fn write_input(&mut self, input: &[u8]) -> Result<(), BackendError> {
        let mut bytes = self.afl.input_region_bytes(input);
        let used = bytes.len();
        bytes.resize(used.max(self.input_region_used), 0);
        self.guest
            .memory
            .write_slice(&bytes, GuestAddress(self.afl.input.phys_start))
            .map_err(|_| BackendError::InvalidImage("the input region lies outside guest memory".into()))?;
        self.input_region_used = used;
        Ok(())
    }
}

/// The page numbers a `KVM_GET_DIRTY_LOG` bitmap marks, in order.
fn dirty_pages(bitmap: &[u64]) -> impl Iterator<Item = usize> + '_ {
    bitmap.iter().enumerate().flat_map(|(word_index, &word)| {
        let mut bits = word;
        std::iter::from_fn(move || {
            (bits != 0).then(|| {
                let page = word_index * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                page
            })
        })
    })
}

fn msr_list_error() -> BackendError {
    BackendError::InvalidImage("too many MSRs for one KVM call".into())
}

/// Copies page `page` of the snapshot back into guest memory.
fn restore_page(memory: &vm_memory::GuestMemoryMmap, ram: &[u8], page: usize) -> Result<(), BackendError> {
    let start = page * PAGE;
    let bytes = ram.get(start..start + PAGE).ok_or_else(|| {
        BackendError::InvalidImage(format!("the dirty-page log names page {page:#x}, outside guest memory"))
    })?;
    memory
        .write_slice(bytes, GuestAddress(start as u64))
        .map_err(|error| BackendError::InvalidImage(format!("cannot restore page {page:#x}: {error}")))
}

/// Reads the vCPU's state and copies the `written` pages of guest RAM (every other page is zero).
fn take_snapshot(
    guest: &VmWithMemory,
    memory_size: u64,
    written: &[bool],
    timer: PitPic,
    decoder: ConsoleDecoder,
    now: u64,
) -> Result<Snapshot, BackendError> {
    let vcpu = &guest.vcpu;
    let mut msrs = Vec::with_capacity(MSRS.len());
    for index in MSRS {
        let mut one =
            Msrs::from_entries(&[kvm_msr_entry { index, ..Default::default() }]).map_err(|_| msr_list_error())?;
        // An MSR this KVM does not have reads as 0 entries: it is not part of the state then.
        if vcpu.get_msrs(&mut one).map_err(kvm_error("read an MSR"))? == 1 {
            msrs.push(one.as_slice()[0]);
        }
    }
    let mut ram = vec![0u8; memory_size as usize];
    let mut pages = 0;
    let mut page = [0u8; PAGE];
    for (index, target) in ram.chunks_exact_mut(PAGE).enumerate() {
        if !written.get(index).copied().unwrap_or(false) {
            continue;
        }
        guest
            .memory
            .read_slice(&mut page, GuestAddress((index * PAGE) as u64))
            .map_err(|error| BackendError::GuestMemory { size: memory_size, message: error.to_string() })?;
        if page.iter().any(|&byte| byte != 0) {
            target.copy_from_slice(&page);
            pages += 1;
        }
    }
    Ok(Snapshot {
        regs: vcpu.get_regs().map_err(kvm_error("read the registers"))?,
        sregs: vcpu.get_sregs().map_err(kvm_error("read the special registers"))?,
        xsave: vcpu.get_xsave().map_err(kvm_error("read the XSAVE state"))?,
        xcrs: vcpu.get_xcrs().map_err(kvm_error("read XCR0"))?,
        debug: vcpu.get_debug_regs().map_err(kvm_error("read the debug registers"))?,
        events: vcpu.get_vcpu_events().map_err(kvm_error("read the pending events"))?,
        msrs,
        ram,
        pages,
        timer,
        decoder,
        now,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn dirty_pages_are_the_bitmaps_set_bits_in_order() {
        let bitmap = [0b1001, 0, 1 << 63 | 1];
        assert_eq!(super::dirty_pages(&bitmap).collect::<Vec<_>>(), [0, 3, 128, 191]);
        assert_eq!(super::dirty_pages(&[]).count(), 0);
    }
}
