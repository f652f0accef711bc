//! The machine the benchmarks ran on.

use std::process::Command;

/// What performance.md says about the host.
#[derive(Clone, Debug)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub qemu: String,
    pub gcc: String,
    pub kvm: String,
    /// The TSC frequency used to turn guest cycles into time.
    pub tsc_khz: f64,
    pub tsc_source: String,
    pub date: String,
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|output| String::from_utf8_lossy(&output.stdout).lines().next().map(str::to_owned))
        .unwrap_or_else(|| format!("{program}: not found"))
}

pub fn describe() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, v)| v.trim()))
        .unwrap_or("unknown")
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: f64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let caps = vmm::backend::probe_kvm();
    let kvm = if !caps.usable {
        format!("not usable ({})", caps.notes.join("; "))
    } else if caps.cpl0_emulated {
        format!(
            "nested kvm_pvm (PVM, pagetable-based: guest ring 3 native, guest CPL0 emulated); PKU offered: {}",
            if caps.pku { "yes" } else { "no" }
        )
    } else {
        format!("hardware KVM; PKU offered: {}", if caps.pku { "yes" } else { "no" })
    };
    let tsc = vmm::host::tsc_frequency(caps.tsc_khz.map(u64::from));
    let (tsc_khz, tsc_source) = (tsc.khz as f64, tsc.source.describe().to_string());
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        memory_gib: memory_kib / (1024.0 * 1024.0),
        kernel,
        qemu: first_line("qemu-system-x86_64", &["--version"]),
        gcc: first_line("gcc", &["--version"]),
        kvm,
        tsc_khz,
        tsc_source,
        date: first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    }
}
