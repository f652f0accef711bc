//! Where a boot's time goes, measured in-process through the vmm library: `prepare` (ELF parse, layout,
//! image build), backend selection (the KVM probe), `backend::run` with a collecting sink, and the drop
//! of the VM afterwards. The guest (`boot_probe`) prints its time-stamp counter as its first act, which
//! splits the backend's time into "start" and "kernel init":
//! - on KVM here (kvm_pvm) the guest reads the host's TSC unchanged (checked: guest values continue the
//!   host's), so host TSC at `backend::run` → guest TSC at app entry is backend start + kernel init;
//!   VM creation alone is estimated by timing `probe_kvm` (open /dev/kvm, create a VM and a vCPU);
//! - on QEMU TCG the guest TSC counts host ticks from the moment QEMU starts the vCPU, so it is the
//!   firmware (qboot) + kernel init time, and spawn → first output minus it is QEMU's own start-up.

use std::path::Path;
use std::time::{Duration, Instant};

use kernel_abi::IsolationMode;
use vmm::backend::{self, Backend, RunConfig};
use vmm::devices::console::CollectingSink;
use vmm::exit::StopReason;
use vmm::policy::BackendChoice;
use vmm::run::RunOptions;

use crate::stats::millis;

/// One in-process run's phases, in milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Phases {
    /// `vmm::run::prepare`: read and validate the ELF, plan the layout, build the memory image.
    pub setup: f64,
    /// `select_backend` (probes KVM for `--backend kvm`; nothing for qemu).
    pub select: f64,
    /// KVM: VM + vCPU creation (estimated by `probe_kvm`); QEMU: spawn → vCPU start.
    pub backend_start: f64,
    /// KVM: kernel init (entry TSC − run start − backend start); QEMU: firmware + kernel init.
    pub kernel_init: f64,
    /// App entry → the backend reports the guest stopped (QEMU: first output → QEMU exited).
    pub app_and_exit: f64,
    /// `backend::run` returned after its `wall_time`, plus dropping the image.
    pub teardown: f64,
    /// Everything above.
    pub total: f64,
    /// Bytes the VMM places into guest RAM (image chunks).
    pub image_bytes: u64,
    /// VM exits (KVM only).
    pub exits: u64,
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no preconditions; every x86-64 CPU has it.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

/// Runs `probe` (the boot probe guest) once on `backend` with `isolation` and splits its time.
pub fn measure(probe: &Path, backend: Backend, isolation: IsolationMode, tsc_khz: f64) -> Result<Phases, String> {
    let choice = match backend {
        Backend::Kvm => BackendChoice::Kvm,
        Backend::Qemu => BackendChoice::Qemu,
    };
    let options = RunOptions {
        app: probe.to_path_buf(),
        args: Vec::new(),
        backend: choice,
        isolation,
        memory_size: 256 << 20,
        timeout: Some(Duration::from_secs(30)),
        seed: Some(1),
        aslr: false,
        print_layout: false,
        report: None,
        mounts: Vec::new(),
        env: Vec::new(),
        trace_syscalls: false,
        strict_inspection: false,
        max_output: 1 << 20,
        kernel: None,
        verbose: false,
    };
    let started = Instant::now();
    let mut vm = vmm::run::prepare(&options, &[], 1).map_err(|error| error.to_string())?;
    let console_key = vmm::run::install_console_key(&mut vm).map_err(|error| error.to_string())?;
    let setup = started.elapsed();
    let selecting = Instant::now();
    let (chosen, _) = vmm::policy::select_backend(choice, isolation).map_err(|error| error.to_string())?;
    let select = selecting.elapsed();
    let config = RunConfig {
        console_key,
        timeout: options.timeout,
        needs_pku: isolation == IsolationMode::Mpk,
        ..RunConfig::default()
    };
    let mut sink = CollectingSink::default();
    let running = Instant::now();
    let host_tsc = rdtsc();
    let outcome = backend::run(chosen, &vm.image, &vm.entry, &config, &mut sink).map_err(|error| error.to_string())?;
    let image_bytes = vm.image.chunks.iter().map(|chunk| chunk.bytes.len() as u64).sum();
    drop(vm);
    let around = running.elapsed();
    if outcome.stop != StopReason::ExitPort || outcome.status != Some(0) {
        return Err(format!("the guest did not exit cleanly: {} (status {:?})", outcome.stop, outcome.status));
    }
    let text = String::from_utf8_lossy(&sink.stdout);
    let guest_tsc: u64 = text
        .split_whitespace()
        .skip_while(|word| *word != "tsc_at_entry")
        .nth(1)
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| format!("no tsc_at_entry in the guest's output {text:?}"))?;
    let cycles_to_ms = |cycles: f64| cycles / tsc_khz;
    let wall = millis(outcome.wall_time);
    let first_output = outcome.first_exit_after.map_or(wall, millis);
    let (backend_start, kernel_init, app_and_exit) = match chosen {
        Backend::Kvm => {
            let creating = Instant::now();
            let _ = backend::probe_kvm();
            let create = millis(creating.elapsed());
            let entry_after = cycles_to_ms(guest_tsc.wrapping_sub(host_tsc) as i64 as f64);
            if !(0.0..=wall).contains(&entry_after) {
                return Err(format!(
                    "the guest's TSC ({guest_tsc}) does not continue the host's ({host_tsc}): cannot split the time"
                ));
            }
            (create, (entry_after - create).max(0.0), wall - entry_after)
        }
        Backend::Qemu => {
            let firmware_and_kernel = cycles_to_ms(guest_tsc as f64);
            ((first_output - firmware_and_kernel).max(0.0), firmware_and_kernel, wall - first_output)
        }
    };
    let teardown = millis(around) - wall;
    Ok(Phases {
        setup: millis(setup),
        select: millis(select),
        backend_start,
        kernel_init,
        app_and_exit,
        teardown,
        total: millis(setup) + millis(select) + millis(around),
        image_bytes,
        exits: outcome.exits,
    })
}
