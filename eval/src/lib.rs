//! secure-run's security evaluation (issue 8): the attack corpus as data, and what the runner
//! (`cargo run --release -p eval`, binary `secure-run-eval`) and the integration tests
//! (`tests/integration/attacks.rs`) share to run it.
//!
//! - [`corpus`]: every attack — its guest in `tests/guests/attacks/`, its arguments, and the outcome
//!   expected in each (backend, isolation) mode.
//! - [`outcome`]: classifying what a run ended with (refused at load, fault, gate halt, EFAULT, ran to
//!   completion).
//! - [`kernel`]: where the attacks aim: the regions `secure-run --print-layout` prints and the kernel's
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

/// What the host CPU adds to an outcome. The nested KVM runs the guest's CPL3 code natively, under the
/// host's CR4: there WRPKRU executes when the host OS turned protection keys on, and raises #UD (as in
/// every other mode of ours) when it did not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Host {
    /// CPUID.(EAX=7, ECX=0):ECX.OSPKE: the host kernel set CR4.PKE.
    pub protection_keys: bool,
}

impl Host {
    /// The machine this runs on.
    pub fn current() -> Self {
        const OSPKE: u32 = 1 << 4;
        let has_leaf_7 = std::arch::x86_64::__cpuid(0).eax >= 7;
        Self { protection_keys: has_leaf_7 && std::arch::x86_64::__cpuid_count(7, 0).ecx & OSPKE != 0 }
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
