//! Facts about the host machine that the guest needs and the CPU does not tell it: the TSC frequency.
//!
//! The guest kernel turns RDTSC into time with the frequency the boot info carries. Both backends give the
//! guest the host's TSC rate (KVM passes the TSC through; QEMU's TCG reads the host's TSC for RDTSC), so
//! the host's frequency is the guest's. Hosts report it differently (a cloud VM often has no CPUID leaf
//! 0x15/0x16, a bare-metal host no KVM_GET_TSC_KHZ before a VM exists), so the sources are tried in order
//! of precision, and a short calibration against the host's monotonic clock is the last resort: the
//! frequency is never assumed from the machine the code was written on.

use std::time::{Duration, Instant};

/// Where [`TscFrequency::khz`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TscSource {
    /// `/sys/devices/system/cpu/cpu0/tsc_freq_khz` (kernels that export the calibrated value).
    Sysfs,
    /// `KVM_GET_TSC_KHZ` on a vCPU.
    Kvm,
    /// CPUID leaf 0x15: the core crystal clock and the TSC/crystal ratio.
    CpuidCrystal,
    /// CPUID leaf 0x16: the processor base frequency (the TSC's rate on CPUs with an invariant TSC).
    CpuidBase,
    /// Measured against `CLOCK_MONOTONIC` for [`CALIBRATION_TIME`].
    Calibrated,
}

impl TscSource {
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Sysfs => "sysfs tsc_freq_khz",
            Self::Kvm => "KVM_GET_TSC_KHZ",
            Self::CpuidCrystal => "CPUID leaf 0x15",
            Self::CpuidBase => "CPUID leaf 0x16",
            Self::Calibrated => "calibrated against CLOCK_MONOTONIC",
        }
    }
}

/// The host's TSC frequency and how it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscFrequency {
    pub khz: u64,
    pub source: TscSource,
}

/// How long the last-resort calibration measures (once per process).
pub const CALIBRATION_TIME: Duration = Duration::from_millis(20);

/// What each source reported (0 or `None`: it has nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TscReports {
    pub sysfs_khz: Option<u64>,
    pub kvm_khz: Option<u64>,
    /// CPUID.15H: EAX (ratio denominator), EBX (numerator), ECX (crystal Hz).
    pub cpuid_15: (u32, u32, u32),
    /// CPUID.16H:EAX, the base frequency in MHz.
    pub cpuid_16_mhz: u32,
}

impl TscReports {
    /// The first source that knows, in order of precision; `None` when only a calibration can tell.
    pub fn best(&self) -> Option<TscFrequency> {
        let plausible = |khz: u64| (1_000..=100_000_000).contains(&khz);
        if let Some(khz) = self.sysfs_khz.filter(|&khz| plausible(khz)) {
            return Some(TscFrequency { khz, source: TscSource::Sysfs });
        }
        if let Some(khz) = self.kvm_khz.filter(|&khz| plausible(khz)) {
            return Some(TscFrequency { khz, source: TscSource::Kvm });
        }
        let (denominator, numerator, crystal_hz) = self.cpuid_15;
        if denominator != 0 && numerator != 0 && crystal_hz != 0 {
            let khz = u64::from(crystal_hz) * u64::from(numerator) / u64::from(denominator) / 1000;
            if plausible(khz) {
                return Some(TscFrequency { khz, source: TscSource::CpuidCrystal });
            }
        }
        let khz = u64::from(self.cpuid_16_mhz) * 1000;
        plausible(khz).then_some(TscFrequency { khz, source: TscSource::CpuidBase })
    }

    /// What this host reports; `kvm_khz` from the caller's KVM probe.
    pub fn of_this_host(kvm_khz: Option<u64>) -> Self {
        let sysfs_khz = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/tsc_freq_khz")
            .ok()
            .and_then(|text| text.trim().parse().ok());
        let max_leaf = std::arch::x86_64::__cpuid(0).eax;
        let leaf = |number: u32| (max_leaf >= number).then(|| std::arch::x86_64::__cpuid_count(number, 0));
        let cpuid_15 = leaf(0x15).map_or((0, 0, 0), |leaf| (leaf.eax, leaf.ebx, leaf.ecx));
        let cpuid_16_mhz = leaf(0x16).map_or(0, |leaf| leaf.eax & 0xffff);
        Self { sysfs_khz, kvm_khz, cpuid_15, cpuid_16_mhz }
    }
}

/// The host's TSC frequency: the best reported one, else calibrated (once per process).
pub fn tsc_frequency(kvm_khz: Option<u64>) -> TscFrequency {
    static CALIBRATED: std::sync::OnceLock<TscFrequency> = std::sync::OnceLock::new();
    TscReports::of_this_host(kvm_khz).best().unwrap_or_else(|| *CALIBRATED.get_or_init(calibrate))
}

/// Counts TSC ticks over [`CALIBRATION_TIME`] of the host's monotonic clock.
pub fn calibrate() -> TscFrequency {
    let rdtsc = || {
        // SAFETY: RDTSC only reads the time-stamp counter.
        unsafe { std::arch::x86_64::_rdtsc() }
    };
    let (start, start_tsc) = (Instant::now(), rdtsc());
    while start.elapsed() < CALIBRATION_TIME {
        std::hint::spin_loop();
    }
    let (elapsed, ticks) = (start.elapsed(), rdtsc().wrapping_sub(start_tsc));
    let khz = u128::from(ticks) * 1_000_000 / elapsed.as_nanos().max(1);
    TscFrequency { khz: u64::try_from(khz).unwrap_or(u64::MAX).max(1), source: TscSource::Calibrated }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_tried_in_order_of_precision() {
        let all = TscReports {
            sysfs_khz: Some(2_000_000),
            kvm_khz: Some(2_100_000),
            cpuid_15: (2, 200, 24_000_000),
            cpuid_16_mhz: 2300,
        };
        assert_eq!(all.best(), Some(TscFrequency { khz: 2_000_000, source: TscSource::Sysfs }));
        let no_sysfs = TscReports { sysfs_khz: None, ..all };
        assert_eq!(no_sysfs.best(), Some(TscFrequency { khz: 2_100_000, source: TscSource::Kvm }));
        let cpuid_only = TscReports { kvm_khz: None, ..no_sysfs };
        // 24 MHz crystal * 200 / 2 = 2.4 GHz.
        assert_eq!(cpuid_only.best(), Some(TscFrequency { khz: 2_400_000, source: TscSource::CpuidCrystal }));
        let base_only = TscReports { cpuid_15: (0, 0, 0), ..cpuid_only };
        assert_eq!(base_only.best(), Some(TscFrequency { khz: 2_300_000, source: TscSource::CpuidBase }));
        // A cloud VM like this project's machines: no sysfs value, no CPUID leaves, no KVM answer yet.
        assert_eq!(TscReports::default().best(), None);
    }

    #[test]
    fn implausible_reports_are_skipped() {
        let reports = TscReports { sysfs_khz: Some(0), kvm_khz: Some(7), cpuid_15: (1, 1, 1), cpuid_16_mhz: 1800 };
        assert_eq!(reports.best(), Some(TscFrequency { khz: 1_800_000, source: TscSource::CpuidBase }));
    }

    #[test]
    fn calibration_agrees_with_the_reported_frequency() {
        let Some(reported) = TscReports::of_this_host(crate::backend::probe_kvm().tsc_khz.map(u64::from)).best() else {
            // Nothing to compare with: the calibration is at least a plausible frequency.
            assert!((100_000..=100_000_000).contains(&calibrate().khz));
            return;
        };
        // Best of three, against a noisy shared machine: within 5 %.
        let closest = (0..3).map(|_| calibrate().khz.abs_diff(reported.khz)).min().unwrap_or(u64::MAX);
        assert!(closest * 20 < reported.khz, "calibrated TSC off by {closest} kHz from {reported:?}");
    }
}
