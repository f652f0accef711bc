//! secure-run's security evaluation: the attack corpus as data, and what the runner
//! (`cargo run --release -p eval`, binary `secure-run-eval`) and the integration tests
//! (`tests/integration/attacks.rs`) share to run it.
//!
//! - [`corpus`]: every attack — its guest in `tests/guests/attacks/`, its arguments, and the outcome
//!   expected in each (backend, isolation) mode.
//! - [`outcome`]: classifying what a run ended with (refused at load, fault, gate halt, EFAULT, ran to
//!   completion).
//! - [`kernel`]: where the attacks aim: the regions of the `secure-run --report` JSON and the kernel's
//!   own PKRU gates.
//! - [`guests`]: building the attack guests (`gcc -nostdlib -static`).

pub mod corpus;
pub mod guests;
pub mod kernel;
pub mod outcome;

pub use corpus::{Arg, Attack, Expect, GateChoice, ATTACKS};
pub use outcome::{classify, Outcome};

/// `--backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Qemu,
    Kvm,
}

/// `--isolation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isolation {
    Mpk,
    Ring3,
    None,
}

impl Backend {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Qemu => "qemu",
            Self::Kvm => "kvm",
        }
    }
}

impl Isolation {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Mpk => "mpk",
            Self::Ring3 => "ring3",
            Self::None => "none",
        }
    }
}

/// What the host adds to an outcome.
///
/// A hardware KVM (VT-x, SVM) runs the guest's CPL3 code under the guest's own control registers: ours,
/// which never set CR4.OSXSAVE and set CR4.PKE only in `mpk`. The nested, pagetable-based `kvm_pvm` runs
/// guest CPL3 code natively under the *host's* CR4 and XCR0 instead, so there WRPKRU and XRSTOR at CPL3
/// behave as they do in a host process: WRPKRU executes where the host OS turned protection keys on (else
/// #UD), XRSTOR executes where it turned XSAVE on. The eval matrix and the attack tests compute such
/// expectations from this, never from the machine a test happened to be written on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Host {
    /// KVM runs guest CPL3 code under the host's CR4 and XCR0 (`kvm_pvm`).
    pub kvm_cpl3_under_host_cr4: bool,
    /// CPUID.(EAX=7, ECX=0):ECX.OSPKE: the host kernel set CR4.PKE.
    pub os_protection_keys: bool,
    /// CPUID.1:ECX.OSXSAVE: the host kernel set CR4.OSXSAVE.
    pub os_xsave: bool,
}

/// A fact about the host that decides an expectation ([`Expect::host`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HostCondition {
    /// WRPKRU at CPL3 in a KVM guest executes instead of raising #UD.
    KvmCpl3Wrpkru,
    /// XRSTOR at CPL3 in a KVM guest executes instead of raising #UD.
    KvmCpl3Xsave,
}

impl HostCondition {
    /// Every condition, for tests that try an expectation table on every kind of host.
    pub const ALL: [Self; 2] = [Self::KvmCpl3Wrpkru, Self::KvmCpl3Xsave];

    pub const fn describe(self) -> &'static str {
        match self {
            Self::KvmCpl3Wrpkru => "WRPKRU at CPL3 executes on KVM (kvm_pvm host with OS protection keys)",
            Self::KvmCpl3Xsave => "XRSTOR at CPL3 executes on KVM (kvm_pvm host with OS XSAVE)",
        }
    }
}

impl Host {
    /// This machine: the CPU's CPUID as the host kernel configured it, and whether its KVM is `kvm_pvm`
    /// (`vmm::backend::KvmCapabilities::cpl0_emulated`, which the caller probes).
    pub fn current(kvm_is_pvm: bool) -> Self {
        let cpuid = raw_cpuid::CpuId::new();
        let os_xsave = cpuid.get_feature_info().is_some_and(|info| info.has_oxsave());
        let os_protection_keys = cpuid.get_extended_feature_info().is_some_and(|info| info.has_ospke());
        Self { kvm_cpl3_under_host_cr4: kvm_is_pvm, os_protection_keys, os_xsave }
    }

    /// Whether `condition` holds on this host.
    pub const fn holds(self, condition: HostCondition) -> bool {
        self.kvm_cpl3_under_host_cr4
            && match condition {
                HostCondition::KvmCpl3Wrpkru => self.os_protection_keys,
                HostCondition::KvmCpl3Xsave => self.os_xsave,
            }
    }

    /// Every combination of the facts, for tests that an expectation exists on any host.
    pub fn every_kind() -> impl Iterator<Item = Self> {
        (0..8u8).map(|bits| Self {
            kvm_cpl3_under_host_cr4: bits & 1 != 0,
            os_protection_keys: bits & 2 != 0,
            os_xsave: bits & 4 != 0,
        })
    }
}

/// One (backend, isolation) combination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mode {
    pub backend: Backend,
    pub isolation: Isolation,
}

impl Mode {
    pub const fn new(backend: Backend, isolation: Isolation) -> Self {
        Self { backend, isolation }
    }

    /// `qemu_mpk`, `kvm_ring3`, ...: the test-name form.
    pub fn name(self) -> String {
        format!("{}_{}", self.backend.name(), self.isolation.name())
    }

    /// The secure-run options that select this mode.
    pub fn args(self) -> [&'static str; 4] {
        ["--backend", self.backend.name(), "--isolation", self.isolation.name()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_need_a_pvm_host_and_the_os_feature() {
        for host in Host::every_kind() {
            assert_eq!(
                host.holds(HostCondition::KvmCpl3Wrpkru),
                host.kvm_cpl3_under_host_cr4 && host.os_protection_keys
            );
            assert_eq!(host.holds(HostCondition::KvmCpl3Xsave), host.kvm_cpl3_under_host_cr4 && host.os_xsave);
        }
        // A hardware KVM never runs guest CPL3 code under the host's CR4.
        let hardware = Host { kvm_cpl3_under_host_cr4: false, os_protection_keys: true, os_xsave: true };
        assert!(HostCondition::ALL.iter().all(|&condition| !hardware.holds(condition)));
    }

    #[test]
    fn current_host_matches_the_cpuid_instruction() {
        // The same bits read with the raw instruction, independently of raw-cpuid's decoding.
        let leaf1 = std::arch::x86_64::__cpuid(1);
        let has_leaf7 = std::arch::x86_64::__cpuid(0).eax >= 7;
        let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
        let host = Host::current(true);
        assert_eq!(host.os_xsave, leaf1.ecx & (1 << 27) != 0);
        assert_eq!(host.os_protection_keys, has_leaf7 && leaf7.ecx & (1 << 4) != 0);
        assert!(!Host::current(false).kvm_cpl3_under_host_cr4);
    }
}
