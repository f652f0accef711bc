//! The decisions a run takes before it starts a VM: which backend can run the app in the asked
//! isolation mode on this host ([`select_backend`]), and whether an app may run in `mpk` mode at all
//! ([`inspect_app`]). Both are pure functions of what they are given (the KVM probe is passed in), so
//! they are tested without a hypervisor.

use kernel_abi::{exit_code, IsolationMode};

use crate::backend::{self, Backend};
use crate::elf::AppElf;

/// Which backend the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    Auto,
    Kvm,
    Qemu,
}

/// Why a run may not go ahead as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("--backend kvm: KVM is not usable here ({notes}); use --backend qemu")]
    KvmUnusable { notes: String },
    #[error(
        "--backend kvm cannot enforce --isolation mpk here: this host's KVM does not offer protection keys to \
         guests (or emulates guest kernel code); use --backend qemu, or --isolation ring3 on KVM"
    )]
    KvmCannotEnforceMpk,
    #[error("refusing to run {path}: segment at {vaddr:#x}: {violation}")]
    WritableAndExecutable { path: String, vaddr: u64, violation: isolation::wx::WxViolation },
    #[error(
        "refusing to run {path}: its code contains {instruction} at link address {offset:#x} (file offset \
         {file_offset:#x}), which --strict-inspection refuses (without it, --isolation mpk {})",
        without_strict(*.instruction)
    )]
    ForbiddenInstruction {
        path: String,
        instruction: isolation::scan::ForbiddenInstruction,
        offset: u64,
        file_offset: u64,
    },
}

/// What `mpk` mode does with `instruction` when inspection is not strict.
fn without_strict(instruction: isolation::scan::ForbiddenInstruction) -> String {
    match instruction.neutralized_by_kernel() {
        None => "guards such code and stops the app before one would run".to_string(),
        Some(reason) => format!("runs such code: {reason}"),
    }
}

impl PolicyError {
    /// secure-run's exit status for this refusal: the app cannot be executed as asked (126), or the
    /// host cannot run it (125).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::KvmUnusable { .. } | Self::KvmCannotEnforceMpk => exit_code::VMM_ERROR,
            Self::WritableAndExecutable { .. } | Self::ForbiddenInstruction { .. } => exit_code::CANNOT_EXECUTE,
        }
    }
}

/// What KVM offers on this host, probed once per process (opening /dev/kvm and creating a probe VM costs
/// milliseconds).
pub(crate) fn kvm_probe() -> &'static backend::KvmCapabilities {
    static PROBE: std::sync::OnceLock<backend::KvmCapabilities> = std::sync::OnceLock::new();
    PROBE.get_or_init(backend::probe_kvm)
}

/// Picks the backend for `choice` and `isolation` on this host (docs/design.md, "Run"), with the
/// one-line notice to print when `auto` falls back to QEMU.
pub fn select_backend(
    choice: BackendChoice,
    isolation: IsolationMode,
) -> Result<(Backend, Option<String>), PolicyError> {
    choose_backend(choice, isolation, kvm_probe)
}

/// [`select_backend`] with what KVM offers from `kvm`, called only if `choice` may mean KVM.
pub(crate) fn choose_backend<'a>(
    choice: BackendChoice,
    isolation: IsolationMode,
    kvm: impl FnOnce() -> &'a backend::KvmCapabilities,
) -> Result<(Backend, Option<String>), PolicyError> {
    match choice {
        BackendChoice::Qemu => Ok((Backend::Qemu, None)),
        BackendChoice::Kvm => {
            let kvm = kvm();
            if !kvm.usable {
                return Err(PolicyError::KvmUnusable { notes: kvm.notes.join("; ") });
            }
            if isolation == IsolationMode::Mpk && (!kvm.pku || kvm.cpl0_emulated) {
                return Err(PolicyError::KvmCannotEnforceMpk);
            }
            Ok((Backend::Kvm, None))
        }
        BackendChoice::Auto => {
            let kvm = kvm();
            let kvm_fits = kvm.usable
                && match isolation {
                    IsolationMode::Ring3 => true,
                    IsolationMode::None => !kvm.cpl0_emulated,
                    IsolationMode::Mpk => kvm.pku && !kvm.cpl0_emulated,
                };
            if kvm_fits {
                return Ok((Backend::Kvm, None));
            }
            let why = if !kvm.usable {
                "KVM is not usable"
            } else if isolation == IsolationMode::Mpk && !kvm.pku {
                "KVM here offers no protection keys"
            } else {
                "KVM here emulates guest kernel code"
            };
            Ok((
                Backend::Qemu,
                Some(format!("secure-run: note: running on QEMU (TCG): {why} for --isolation {}", isolation.name())),
            ))
        }
    }
}

/// `mpk` mode's inspection of the app (`exec::elf::inspect_app`, which the kernel's `execve` runs too),
/// with the file shown as `shown` in the refusal.
pub fn inspect_app(app: &AppElf, file: &[u8], shown: &str, strict: bool) -> Result<(), PolicyError> {
    let path = shown.to_string();
    exec::elf::inspect_app(app, file, strict).map_err(|refusal| match refusal {
        exec::elf::InspectionRefusal::WritableAndExecutable { vaddr, violation } => {
            PolicyError::WritableAndExecutable { path, vaddr, violation }
        }
        exec::elf::InspectionRefusal::ForbiddenInstruction { instruction, offset, file_offset } => {
            PolicyError::ForbiddenInstruction { path, instruction, offset, file_offset }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::KvmCapabilities;

    fn kvm(usable: bool, pku: bool, cpl0_emulated: bool) -> KvmCapabilities {
        KvmCapabilities { usable, pku, cpl0_emulated, notes: vec!["a note".into()], ..Default::default() }
    }

    #[test]
    fn auto_takes_kvm_only_where_it_enforces_the_mode() {
        let nested = kvm(true, false, true);
        let choose = |isolation, caps: &KvmCapabilities| choose_backend(BackendChoice::Auto, isolation, || caps);
        assert_eq!(choose(IsolationMode::Ring3, &nested), Ok((Backend::Kvm, None)));
        for isolation in [IsolationMode::Mpk, IsolationMode::None] {
            let (backend, notice) = choose(isolation, &nested).unwrap();
            assert_eq!(backend, Backend::Qemu);
            assert!(notice.is_some_and(|notice| notice.contains("running on QEMU (TCG)")));
        }
        let hardware = kvm(true, true, false);
        for isolation in [IsolationMode::Mpk, IsolationMode::Ring3, IsolationMode::None] {
            assert_eq!(choose(isolation, &hardware), Ok((Backend::Kvm, None)));
        }
        let (_, notice) = choose(IsolationMode::Ring3, &kvm(false, false, false)).unwrap();
        assert!(notice.is_some_and(|notice| notice.contains("KVM is not usable")));
    }

    #[test]
    fn asking_for_kvm_fails_where_it_cannot_enforce_the_mode() {
        let unusable = kvm(false, false, false);
        let error = choose_backend(BackendChoice::Kvm, IsolationMode::Ring3, || &unusable).unwrap_err();
        assert_eq!(error, PolicyError::KvmUnusable { notes: "a note".into() });
        assert!(error.to_string().ends_with("use --backend qemu"), "{error}");
        let nested = kvm(true, true, true);
        assert_eq!(
            choose_backend(BackendChoice::Kvm, IsolationMode::Mpk, || &nested),
            Err(PolicyError::KvmCannotEnforceMpk)
        );
        let probed = std::cell::Cell::new(false);
        let qemu = choose_backend(BackendChoice::Qemu, IsolationMode::Mpk, || {
            probed.set(true);
            &unusable
        });
        assert_eq!(qemu, Ok((Backend::Qemu, None)));
        assert!(!probed.get(), "--backend qemu must not probe KVM");
    }
}
