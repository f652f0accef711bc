//! The attack corpus: each attack is one guest of `tests/guests/attacks/` trying ONE thing, its
//! arguments, and what must happen in each mode. `--isolation none` is the baseline: there the attacks
//! that isolation stops get through, so every expectation in `mpk` and `ring3` is a claim with a
//! contrast (threat-model.md cites the tests `attacks::<name>::<mode>` generated from this table).

use crate::kernel::{regions_named, Gate, Region};
use crate::{Host, HostCondition, Mode};

/// An argument of an attack guest, resolved against the layout of the run.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    Literal(&'static str),
    /// The start of the first region named this, in hexadecimal.
    RegionStart(&'static str),
    /// The last 8 bytes of the first region named this. For "kernel data" that is the end of the
    /// relocated data segment (GOT, `.data.rel.ro`): keyed kernel data the kernel only reads, so a store
    /// that gets through in `none` does not break the run. Not the end of `.bss`: the IST stacks may
    /// sit there, supervisor pages by design (threat-model.md M2).
    RegionLastWord(&'static str),
    /// The address of a WRPKRU of one of the kernel's PKRU gates.
    Gate(GateChoice),
    /// The offset of the console key in the boot info, in hexadecimal.
    ConsoleKeyOffset,
}

/// Which kernel gate [`Arg::Gate`] picks. The attack forges EAX = 0 (every key open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateChoice {
    /// A gate whose check expects another value than 0 (an exit gate, to the app's PKRU): the check
    /// must catch the forged value.
    ChecksOtherValue,
    /// The SYSCALL entry's gate, whose check expects 0 (the kernel's PKRU): the forged value passes the
    /// check, and what follows must not let the app go on with the keys open.
    ChecksForgedValue,
    /// An exception entry's gate (check expects 0, not the SYSCALL entry): after the gate the entry
    /// requires to be on an IST stack, so a jump into it must halt the VM.
    ExceptionEntry,
}

/// What the resolution of [`Arg`]s needs: the layout and the gates at their run-time addresses.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub regions: Vec<Region>,
    /// Gates with `link_address` already moved to the run-time address.
    pub gates: Vec<Gate>,
}

impl Arg {
    pub fn resolve(self, targets: &Targets) -> Result<String, String> {
        let named = |name: &str| {
            let found = regions_named(&targets.regions, name);
            if found.is_empty() {
                Err(format!("the layout has no region named {name:?}"))
            } else {
                Ok(found)
            }
        };
        Ok(match self {
            Self::Literal(text) => text.to_owned(),
            Self::RegionStart(name) => format!("{:#x}", named(name)?[0].start),
            Self::RegionLastWord(name) => format!("{:#x}", named(name)?[0].end - 8),
            Self::Gate(choice) => {
                let text = named("kernel text")?;
                let in_text =
                    |gate: &&Gate| text.iter().any(|region| (region.start..region.end).contains(&gate.link_address));
                let wanted = |gate: &&Gate| match choice {
                    GateChoice::ChecksForgedValue => gate.expected == 0 && gate.syscall_entry,
                    GateChoice::ExceptionEntry => gate.expected == 0 && !gate.syscall_entry,
                    GateChoice::ChecksOtherValue => gate.expected != 0,
                };
                let gate =
                    targets.gates.iter().filter(in_text).find(wanted).ok_or_else(|| {
                        format!("no kernel gate of the kind {choice:?} inside the kernel text region")
                    })?;
                format!("{:#x}", gate.link_address)
            }
            Self::ConsoleKeyOffset => format!("{:#x}", core::mem::offset_of!(kernel_abi::BootInfo, console_key)),
        })
    }
}

/// The expected end of an attack in some modes.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    /// Mode names (`qemu_mpk`) or isolation names (`ring3`: both backends). An exact mode wins.
    pub modes: &'static [&'static str],
    pub status: i32,
    /// Substrings of the attack's stdout (how far it got).
    pub stdout: &'static [&'static str],
    /// Substrings of secure-run's stderr (the crash report or the refusal), ignoring ASCII case.
    pub stderr: &'static [&'static str],
    /// Substrings the attack's stdout must not hold (forged output that must not get through).
    pub stdout_lacks: &'static [&'static str],
    /// Holds only on a host where this condition holds ([`Host`]); elsewhere the next matching
    /// expectation applies.
    pub host: Option<HostCondition>,
}

impl Expect {
    /// This expectation, only for hosts where `condition` holds.
    const fn if_host(self, condition: HostCondition) -> Self {
        Self { host: Some(condition), ..self }
    }

    /// This expectation, with `needles` absent from the attack's stdout.
    const fn without(self, needles: &'static [&'static str]) -> Self {
        Self { stdout_lacks: needles, ..self }
    }

    /// Whether a run matches; else what differs.
    pub fn check(&self, status: i32, stdout: &str, stderr: &str) -> Result<(), String> {
        let mut problems = Vec::new();
        if status != self.status {
            problems.push(format!("status {status}, expected {}", self.status));
        }
        for needle in self.stdout {
            if !stdout.contains(needle) {
                problems.push(format!("stdout lacks {needle:?}"));
            }
        }
        for needle in self.stdout_lacks {
            if stdout.contains(needle) {
                problems.push(format!("stdout holds {needle:?}, which must not get through"));
            }
        }
        let lower = stderr.to_ascii_lowercase();
        for needle in self.stderr {
            if !lower.contains(&needle.to_ascii_lowercase()) {
                problems.push(format!("stderr lacks {needle:?}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// One attack.
#[derive(Clone, Copy, Debug)]
pub struct Attack {
    /// The test module name: `attacks::<name>::<mode>`.
    pub name: &'static str,
    /// `tests/guests/attacks/<guest>.S`.
    pub guest: &'static str,
    /// What it tries, one line.
    pub what: &'static str,
    /// secure-run options besides the mode.
    pub options: &'static [&'static str],
    pub args: &'static [Arg],
    /// The app's stdin.
    pub stdin: &'static [u8],
    pub expect: &'static [Expect],
}

impl Attack {
    /// The expectation for `mode` on `host`: one naming the mode exactly, else one naming its isolation,
    /// skipping those whose host condition does not hold on `host`.
    pub fn expected(&self, mode: Mode, host: Host) -> Option<&Expect> {
        let name = mode.name();
        let applies = |expect: &&Expect| expect.host.is_none_or(|condition| host.holds(condition));
        let naming = |wanted: &str| self.expect.iter().filter(applies).find(|expect| expect.modes.contains(&wanted));
        naming(&name).or_else(|| naming(mode.isolation.name()))
    }

    /// Whether the expectation for `mode` differs between hosts (some expectation for it has a host
    /// condition).
    pub fn depends_on_host(&self, mode: Mode) -> bool {
        let name = mode.name();
        self.expect.iter().any(|expect| {
            expect.host.is_some()
                && (expect.modes.contains(&name.as_str()) || expect.modes.contains(&mode.isolation.name()))
        })
    }

    /// The attack's arguments for this run.
    pub fn resolve_args(&self, targets: &Targets) -> Result<Vec<String>, String> {
        self.args.iter().map(|arg| arg.resolve(targets)).collect()
    }
}

/// The attack named `name`.
pub fn attack(name: &str) -> &'static Attack {
    ATTACKS.iter().find(|attack| attack.name == name).unwrap_or_else(|| panic!("no attack named {name:?}"))
}

const MPK: &[&str] = &["mpk"];
const RING3: &[&str] = &["ring3"];
const NONE: &[&str] = &["none"];
const CPL0: &[&str] = &["mpk", "none"];
const ALL: &[&str] = &["mpk", "ring3", "none"];
/// secure-run's status for tampering with the console channel (128 + SIGSYS).
const TAMPERING: i32 = kernel_abi::exit_code::TAMPERING;
/// What the VMM says about tampering, and what an OUT at CPL3 raises.
const TAMPERED: &str = "secure-run: tampering:";
const OUT_FAULTS: &[&str] = &["SIGSEGV", "general protection fault (#GP)"];
/// What the report says when `mpk` mode's step gate stops the app before a guarded instruction.
const STOPPED_BEFORE_MOV_TO_CR: &[&str] = &["SIGSEGV", "guarded instruction MOV to CR at 0x", "stopped before it ran"];
const STOPPED_BEFORE_WRPKRU: &[&str] = &["SIGILL", "guarded instruction WRPKRU at 0x", "stopped before it ran"];

const fn expect(
    modes: &'static [&'static str],
    status: i32,
    stdout: &'static [&'static str],
    stderr: &'static [&'static str],
) -> Expect {
    Expect { modes, status, stdout, stderr, stdout_lacks: &[], host: None }
}

/// Every attack, in the order of the matrix.
pub const ATTACKS: &[Attack] = &[
    Attack {
        name: "read_kernel_rodata",
        guest: "read_kernel_memory",
        what: "load from the kernel's read-only data",
        options: &[],
        args: &[Arg::RegionStart("kernel rodata")],
        stdin: b"",
        expect: &[
            expect(
                MPK,
                139,
                &["reading kernel memory\n"],
                &["SIGSEGV", "read of address", "protection-key violation (kernel rodata, protection key 1)"],
            ),
            expect(
                RING3,
                139,
                &["reading kernel memory\n"],
                &["SIGSEGV", "read of address", "supervisor-page violation (in kernel rodata)"],
            ),
            expect(NONE, 0, &["read kernel memory\n"], &[]),
        ],
    },
    Attack {
        name: "read_kernel_data",
        guest: "read_kernel_memory",
        what: "load from the kernel's data",
        options: &[],
        args: &[Arg::RegionStart("kernel data")],
        stdin: b"",
        expect: &[
            expect(
                MPK,
                139,
                &["reading kernel memory\n"],
                &["SIGSEGV", "read of address", "protection-key violation (kernel data, protection key 2)"],
            ),
            expect(
                RING3,
                139,
                &["reading kernel memory\n"],
                &["SIGSEGV", "read of address", "supervisor-page violation (in kernel data)"],
            ),
            expect(NONE, 0, &["read kernel memory\n"], &[]),
        ],
    },
    Attack {
        name: "write_kernel_data",
        guest: "write_kernel_memory",
        what: "store to the kernel's data",
        options: &[],
        args: &[Arg::RegionLastWord("kernel data")],
        stdin: b"",
        expect: &[
            expect(
                MPK,
                139,
                &["writing kernel memory\n"],
                &["SIGSEGV", "write of address", "protection-key violation (kernel data, protection key 2)"],
            ),
            expect(
                RING3,
                139,
                &["writing kernel memory\n"],
                &["SIGSEGV", "write of address", "supervisor-page violation (in kernel data)"],
            ),
            expect(NONE, 0, &["wrote kernel memory\n"], &[]),
        ],
    },
    Attack {
        name: "read_physical_map",
        guest: "read_physical_map",
        what: "load from the kernel's map of all RAM (page tables included)",
        options: &[],
        args: &[Arg::RegionStart("kernel physical map")],
        stdin: b"",
        expect: &[
            expect(
                MPK,
                139,
                &["reading the physical map\n"],
                &["SIGSEGV", "protection-key violation (kernel physical map, protection key 3)"],
            ),
            expect(
                RING3,
                139,
                &["reading the physical map\n"],
                &["SIGSEGV", "supervisor-page violation (in kernel physical map)"],
            ),
            expect(NONE, 0, &["read the physical map\n"], &[]),
        ],
    },
    Attack {
        name: "write_gdt",
        guest: "write_descriptor_table",
        what: "SGDT, then store to the GDT",
        options: &[],
        args: &[Arg::Literal("g")],
        stdin: b"",
        expect: &[
            // Read-only supervisor pages with CR0.WP = 1 in every CPL0 mode: `none` is no different.
            expect(
                CPL0,
                139,
                &["writing the descriptor table\n"],
                &["SIGSEGV", "write of address", "page-protection violation"],
            ),
            // UMIP: SGDT itself faults at CPL3.
            expect(RING3, 139, &["SGDT\n"], &["SIGSEGV", "general protection fault (#GP)"]),
        ],
    },
    Attack {
        name: "write_idt",
        guest: "write_descriptor_table",
        what: "SIDT, then store to the IDT",
        options: &[],
        args: &[Arg::Literal("i")],
        stdin: b"",
        expect: &[
            expect(
                CPL0,
                139,
                &["writing the descriptor table\n"],
                &["SIGSEGV", "write of address", "page-protection violation"],
            ),
            expect(RING3, 139, &["SIDT\n"], &["SIGSEGV", "general protection fault (#GP)"]),
        ],
    },
    Attack {
        name: "wrpkru_in_code",
        guest: "wrpkru_in_code",
        what: "WRPKRU (EAX = 0) in the app's code, then load kernel data",
        options: &[],
        args: &[Arg::RegionStart("kernel data")],
        stdin: b"",
        expect: &[
            // Guarded: the app runs up to it and is stopped before it (as at CPL3 without keys: SIGILL).
            expect(MPK, 132, &["WRPKRU\n"], STOPPED_BEFORE_WRPKRU),
            // The nested KVM runs CPL3 code natively, with the host's CR4.PKE: on a host with keys WRPKRU
            // executes, and keys are not what protects the kernel in ring3 anyway.
            expect(
                &["kvm_ring3"],
                139,
                &["WRPKRU executed\n"],
                &["SIGSEGV", "supervisor-page violation (in kernel data)"],
            )
            .if_host(HostCondition::KvmCpl3Wrpkru),
            expect(RING3, 132, &["WRPKRU\n"], &["SIGILL", "invalid opcode (#UD)"]),
            expect(NONE, 132, &["WRPKRU\n"], &["SIGILL", "invalid opcode (#UD)"]),
        ],
    },
    Attack {
        name: "xrstor_in_code",
        guest: "xrstor_in_code",
        what: "XRSTOR in the app's code (could load PKRU from app memory)",
        options: &[],
        args: &[],
        stdin: b"",
        expect: &[
            // Allowed by default inspection: the kernel never sets CR4.OSXSAVE, so it raises #UD.
            expect(CPL0, 132, &["XRSTOR\n"], &["SIGILL", "invalid opcode (#UD)"]),
            // CPL3 code on the nested KVM runs natively under the host's XSAVE configuration; at CPL3 with
            // supervisor pages XRSTOR cannot reach the kernel anyway.
            expect(&["kvm_ring3"], 0, &["XRSTOR executed\n"], &[]).if_host(HostCondition::KvmCpl3Xsave),
            expect(RING3, 132, &["XRSTOR\n"], &["SIGILL", "invalid opcode (#UD)"]),
        ],
    },
    Attack {
        name: "xrstor_in_code_strict",
        guest: "xrstor_in_code",
        what: "XRSTOR in the app's code, `--strict-inspection`",
        options: &["--strict-inspection"],
        args: &[],
        stdin: b"",
        expect: &[
            expect(MPK, 126, &[], &["refusing to run", "XRSTOR at link address 0x"]),
            expect(&["kvm_ring3"], 0, &["XRSTOR executed\n"], &[]).if_host(HostCondition::KvmCpl3Xsave),
            expect(RING3, 132, &["XRSTOR\n"], &["SIGILL", "invalid opcode (#UD)"]),
            expect(NONE, 132, &["XRSTOR\n"], &["SIGILL", "invalid opcode (#UD)"]),
        ],
    },
    Attack {
        name: "mov_to_cr4",
        guest: "mov_to_cr4",
        what: "MOV to CR4 (writes back the value it read)",
        options: &[],
        args: &[],
        stdin: b"",
        expect: &[
            expect(MPK, 139, &["MOV to CR4\n"], STOPPED_BEFORE_MOV_TO_CR),
            expect(RING3, 139, &["MOV to CR4\n"], &["SIGSEGV", "general protection fault (#GP)"]),
            expect(NONE, 0, &["wrote CR4\n"], &[]),
        ],
    },
    Attack {
        name: "mov_to_cr4_strict",
        guest: "mov_to_cr4",
        what: "MOV to CR4, `--strict-inspection`",
        options: &["--strict-inspection"],
        args: &[],
        stdin: b"",
        expect: &[
            expect(MPK, 126, &[], &["refusing to run", "MOV to CR at link address 0x", "--strict-inspection"]),
            expect(RING3, 139, &["MOV to CR4\n"], &["SIGSEGV", "general protection fault (#GP)"]),
            expect(NONE, 0, &["wrote CR4\n"], &[]),
        ],
    },
    Attack {
        name: "hidden_mov_to_cr3",
        guest: "guarded_code",
        what: "jump into a MOV to CR3 hidden in the immediate of a benign MOV",
        options: &[],
        args: &[Arg::Literal("c")],
        stdin: b"",
        expect: &[
            expect(
                MPK,
                139,
                &["jumping into the middle of a MOV\n"],
                STOPPED_BEFORE_MOV_TO_CR,
            ),
            expect(RING3, 139, &["reading CR3\n"], &["SIGSEGV", "general protection fault (#GP)"]),
            expect(NONE, 0, &["jumping into the middle of a MOV\n", "wrote CR3\n"], &[]),
        ],
    },
    Attack {
        name: "hidden_wrpkru",
        guest: "guarded_code",
        what: "jump into a WRPKRU (EAX = 0) hidden in the immediate of a benign MOV, then load kernel data",
        options: &[],
        args: &[Arg::Literal("p"), Arg::RegionStart("kernel data")],
        stdin: b"",
        expect: &[
            expect(
                MPK,
                132,
                &["jumping into the middle of a MOV\n"],
                STOPPED_BEFORE_WRPKRU,
            ),
            expect(
                &["kvm_ring3"],
                139,
                &["WRPKRU executed\n"],
                &["SIGSEGV", "supervisor-page violation (in kernel data)"],
            )
            .if_host(HostCondition::KvmCpl3Wrpkru),
            expect(RING3, 132, &["jumping into the middle of a MOV\n"], &["SIGILL", "invalid opcode (#UD)"]),
            expect(NONE, 132, &["jumping into the middle of a MOV\n"], &["SIGILL", "invalid opcode (#UD)"]),
        ],
    },
    Attack {
        name: "crowded_guarded_page",
        guest: "guarded_code",
        what: "run a page holding seven guarded sequences (more than the four debug registers), then jump into one",
        options: &[],
        args: &[Arg::Literal("m")],
        stdin: b"",
        expect: &[
            expect(
                MPK,
                139,
                &["running a page with seven guarded sequences\n", "ran the page\n"],
                STOPPED_BEFORE_MOV_TO_CR,
            ),
            expect(RING3, 139, &["ran the page\n"], &["SIGSEGV", "general protection fault (#GP)"]),
            expect(NONE, 0, &["ran the page\n", "wrote CR3\n"], &[]),
        ],
    },
    Attack {
        name: "disarm_debug_registers",
        guest: "guarded_code",
        what: "clear DR7 and DR6 with MOV to DR, then jump into a hidden MOV to CR3",
        options: &[],
        args: &[Arg::Literal("d")],
        stdin: b"",
        expect: &[
            // MOV to DR runs (the guard uses no debug register); the jump is still stopped.
            expect(
                MPK,
                139,
                &["disarmed the debug registers\n"],
                STOPPED_BEFORE_MOV_TO_CR,
            ),
            expect(RING3, 139, &["MOV to DR7 and DR6\n"], &["SIGSEGV", "general protection fault (#GP)"]),
            expect(NONE, 0, &["disarmed the debug registers\n", "wrote CR3\n"], &[]),
        ],
    },
    Attack {
        name: "iretq_with_rf",
        guest: "guarded_code",
        what: "IRETQ with RF set (which suppresses an instruction breakpoint) into a hidden MOV to CR3",
        options: &[],
        args: &[Arg::Literal("i")],
        stdin: b"",
        expect: &[
            expect(
                MPK,
                139,
                &["IRETQ with RF set into a MOV to CR3\n"],
                STOPPED_BEFORE_MOV_TO_CR,
            ),
            expect(RING3, 139, &["reading CR3\n"], &["SIGSEGV", "general protection fault (#GP)"]),
            expect(NONE, 0, &["IRETQ with RF set into a MOV to CR3\n", "wrote CR3\n"], &[]),
        ],
    },
    Attack {
        name: "mov_ss_shadow",
        guest: "guarded_code",
        what: "MOV SS, then MOV to CR3 in its shadow (where the single-step trap is delayed)",
        options: &[],
        args: &[Arg::Literal("s")],
        stdin: b"",
        expect: &[
            expect(
                MPK,
                139,
                &["MOV SS, then MOV to CR3 in its shadow\n"],
                STOPPED_BEFORE_MOV_TO_CR,
            ),
            expect(RING3, 139, &["reading CR3\n"], &["SIGSEGV", "general protection fault (#GP)"]),
            expect(NONE, 0, &["MOV SS, then MOV to CR3 in its shadow\n", "wrote CR3\n"], &[]),
        ],
    },
    Attack {
        name: "mmap_wx_wrpkru",
        guest: "mmap_wx_wrpkru",
        what: "mmap RWX, copy WRPKRU in, call it",
        options: &[],
        args: &[],
        stdin: b"",
        expect: &[
            expect(MPK, 1, &["mmap RWX: -13\n"], &[]),
            expect(&["kvm_ring3"], 0, &["WRPKRU executed\n"], &[]).if_host(HostCondition::KvmCpl3Wrpkru),
            expect(RING3, 132, &["calling the new WRPKRU\n"], &["SIGILL", "invalid opcode (#UD)"]),
            expect(NONE, 132, &["mmap RWX: mapped\n", "calling the new WRPKRU\n"], &["SIGILL", "invalid opcode (#UD)"]),
        ],
    },
    Attack {
        name: "mprotect_wx_wrpkru",
        guest: "mprotect_wx_wrpkru",
        what: "mmap RW, copy WRPKRU in, mprotect RX, call it",
        options: &[],
        args: &[],
        stdin: b"",
        expect: &[
            // Made executable, and guarded like code loaded at boot.
            expect(
                MPK,
                132,
                &["mprotect RX: 0\n", "calling the new WRPKRU\n"],
                STOPPED_BEFORE_WRPKRU,
            ),
            expect(&["kvm_ring3"], 0, &["WRPKRU executed\n"], &[]).if_host(HostCondition::KvmCpl3Wrpkru),
            expect(RING3, 132, &["mprotect RX: 0\n", "calling the new WRPKRU\n"], &["SIGILL", "invalid opcode (#UD)"]),
            expect(NONE, 132, &["mprotect RX: 0\n", "calling the new WRPKRU\n"], &["SIGILL", "invalid opcode (#UD)"]),
        ],
    },
    Attack {
        name: "jump_to_exit_gate",
        guest: "jump_to_gate",
        what: "jump to a kernel exit gate's WRPKRU with EAX = 0 (all keys open)",
        options: &[],
        args: &[Arg::Gate(GateChoice::ChecksOtherValue)],
        stdin: b"",
        expect: &[
            expect(MPK, TAMPERING, &["jumping to the gate\n"], &["tampering", "protection-key gate violation"]),
            // A CPL3 fetch from a supervisor page is the app's fault, whatever the address.
            expect(
                RING3,
                139,
                &["jumping to the gate\n"],
                &["SIGSEGV", "instruction fetch", "supervisor-page violation (in kernel text)"],
            ),
            // At CPL0 without keys the gate's WRPKRU raises #UD (CR4.PKE off) with RIP in kernel text,
            // which the kernel reports as its own fault.
            expect(NONE, 125, &["jumping to the gate\n"], &["the guest kernel faulted", "invalid opcode (#UD)"]),
        ],
    },
    Attack {
        name: "jump_to_exception_entry_gate",
        guest: "jump_to_gate",
        what: "jump to the exception entry gate's WRPKRU with EAX = 0 (the value its check accepts)",
        options: &[],
        args: &[Arg::Gate(GateChoice::ExceptionEntry)],
        stdin: b"",
        expect: &[
            // The gate's check passes (0 is the kernel's PKRU), but the entry is not on an IST stack:
            // it halts instead of handling a frame the app forged.
            expect(MPK, TAMPERING, &["jumping to the gate\n"], &["tampering", "protection-key gate violation"]),
            expect(
                RING3,
                139,
                &["jumping to the gate\n"],
                &["SIGSEGV", "instruction fetch", "supervisor-page violation (in kernel text)"],
            ),
            expect(NONE, 125, &["jumping to the gate\n"], &["the guest kernel faulted", "invalid opcode (#UD)"]),
        ],
    },
    Attack {
        name: "jump_to_entry_gate",
        guest: "jump_to_gate",
        what: "jump to a kernel entry gate's WRPKRU with EAX = 0 (the value its check accepts)",
        options: &["--timeout", "3"],
        args: &[Arg::Gate(GateChoice::ChecksForgedValue)],
        stdin: b"",
        expect: &[
            // The check passes by design (0 is the kernel's PKRU): the jump is a way to make a system call
            // with the app's registers. The kernel serves it and leaves through its exit gate; with the
            // forged registers the app ends up re-entering over and over until --timeout stops it. It
            // never gets to run its own code with the kernel's keys open.
            expect(MPK, 124, &["jumping to the gate\n"], &["did not finish within --timeout"]),
            expect(
                RING3,
                139,
                &["jumping to the gate\n"],
                &["SIGSEGV", "instruction fetch", "supervisor-page violation (in kernel text)"],
            ),
            expect(NONE, 125, &["jumping to the gate\n"], &["the guest kernel faulted", "invalid opcode (#UD)"]),
        ],
    },
    Attack {
        name: "jump_to_entry_gate_under_timer",
        guest: "jump_to_gate",
        what: "jump to the SYSCALL entry gate with a timer interrupt pending (CLI, wait, STI, jump)",
        options: &["--timeout", "5"],
        args: &[Arg::Gate(GateChoice::ChecksForgedValue), Arg::Literal("timer")],
        stdin: b"",
        expect: &[
            // The interrupt arrives at the gate's first instruction, in kernel text, where kernel code
            // never takes one (its entries run with IF clear): the kernel halts the VM as a gate
            // violation rather than resume kernel code with the app's registers. `none` has the same
            // check. At CPL3 CLI itself is privileged.
            expect(
                MPK,
                TAMPERING,
                &["timer running\n", "jumping to the gate with an interrupt pending\n"],
                &["tampering", "protection-key gate violation"],
            ),
            expect(
                RING3,
                139,
                &["timer running\n", "jumping to the gate with an interrupt pending\n"],
                &["SIGSEGV", "general protection fault (#GP)", "(app segment)"],
            ),
            expect(
                NONE,
                TAMPERING,
                &["timer running\n", "jumping to the gate with an interrupt pending\n"],
                &["tampering", "protection-key gate violation"],
            ),
        ],
    },
    Attack {
        name: "kernel_pointer_syscall",
        guest: "kernel_pointer_syscall",
        what: "write(1, kernel, 16) and read(0, kernel, 16): the kernel as a confused deputy",
        options: &[],
        args: &[Arg::RegionStart("kernel data")],
        stdin: b"attack input\n",
        expect: &[expect(ALL, 0, &["write(1, kernel, 16) = -14\n", "read(0, kernel, 16) = -14\n"], &[])],
    },
    Attack {
        name: "racing_thread",
        guest: "racing_thread",
        what: "a thread flips a writev buffer between app and kernel memory while the kernel uses it",
        options: &[],
        args: &[Arg::RegionStart("kernel data")],
        stdin: b"",
        expect: &[expect(ALL, 0, &["leaked: 0\n", "both outcomes seen\n"], &[])],
    },
    Attack {
        name: "kernel_pointer_direct",
        guest: "kernel_pointer_syscall",
        what: "load directly from that kernel address (the contrast: it is mapped)",
        options: &[],
        args: &[Arg::RegionStart("kernel data"), Arg::Literal("direct")],
        stdin: b"",
        expect: &[
            expect(
                MPK,
                139,
                &["loading from the kernel address\n"],
                &["SIGSEGV", "protection-key violation (kernel data, protection key 2)"],
            ),
            expect(
                RING3,
                139,
                &["loading from the kernel address\n"],
                &["SIGSEGV", "supervisor-page violation (in kernel data)"],
            ),
            expect(NONE, 0, &["direct load succeeded\n"], &[]),
        ],
    },
    Attack {
        name: "forged_sigreturn_flags",
        guest: "forged_sigreturn",
        what: "rt_sigreturn with a forged frame: RFLAGS with IOPL 3, NT and VM",
        options: &[],
        args: &[Arg::Literal("flags"), Arg::Literal("0")],
        stdin: b"",
        // The kernel takes only the arithmetic flags (and TF, AC) from a frame, in every mode.
        expect: &[expect(ALL, 0, &["sigreturn returned\n", "IOPL 0\n"], &[])],
    },
    Attack {
        name: "forged_sigreturn_segments",
        guest: "forged_sigreturn",
        what: "rt_sigreturn with a forged frame: the kernel's CS and SS selectors",
        options: &[],
        args: &[Arg::Literal("segments"), Arg::Literal("0")],
        stdin: b"",
        expect: &[
            // Segments never come from the frame: a CPL3 app stays at CPL3.
            expect(RING3, 0, &["sigreturn returned\n", "3\n"], &[]),
            expect(CPL0, 0, &["sigreturn returned\n", "0\n"], &[]),
        ],
    },
    Attack {
        name: "forged_sigreturn_rip",
        guest: "forged_sigreturn",
        what: "rt_sigreturn with a forged frame: RIP in the kernel's data",
        options: &[],
        args: &[Arg::Literal("rip"), Arg::RegionStart("kernel data")],
        stdin: b"",
        expect: &[
            // As if the app had jumped there itself: kernel data is not executable, and supervisor in ring3.
            expect(RING3, 139, &["forging RIP\n"], &["SIGSEGV", "instruction fetch", "supervisor-page violation (in kernel data)"]),
            expect(CPL0, 139, &["forging RIP\n"], &["SIGSEGV", "instruction fetch", "page-protection violation (in kernel data)"]),
        ],
    },
    Attack {
        name: "forged_sigreturn_fpu",
        guest: "forged_sigreturn",
        what: "rt_sigreturn with a forged FPU area (reserved MXCSR bits, XSAVE header asking for PKRU), then load kernel data",
        options: &[],
        args: &[Arg::Literal("xsave"), Arg::RegionStart("kernel data")],
        stdin: b"",
        expect: &[
            // FXRSTOR of the sanitized area, no #GP in the kernel, PKRU untouched: the keys still hold.
            expect(
                MPK,
                139,
                &["sigreturn returned\n", "loading from the target\n"],
                &["SIGSEGV", "protection-key violation (kernel data, protection key 2)"],
            ),
            expect(
                RING3,
                139,
                &["sigreturn returned\n", "loading from the target\n"],
                &["SIGSEGV", "supervisor-page violation (in kernel data)"],
            ),
            expect(NONE, 0, &["sigreturn returned\n", "loaded\n"], &[]),
        ],
    },
    Attack {
        name: "privileged_instructions",
        guest: "privileged_instructions",
        what: "CLI; STI, MOV from CR0, OUT to port 0x80",
        options: &[],
        args: &[],
        stdin: b"",
        expect: &[
            // At CPL0 (mpk and none) they execute by design: none of them changes keys or paging.
            expect(CPL0, 0, &["privileged instructions: executed\n"], &[]),
            expect(RING3, 139, &["CLI; STI\n"], &["SIGSEGV", "general protection fault (#GP)"]),
        ],
    },
    Attack {
        name: "forged_exit_status",
        guest: "forged_exit_status",
        what: "hide a crash: an Exit frame with status 0 in the kernel's format (a guessed key), then OUT to the exit port",
        options: &[],
        args: &[],
        stdin: b"",
        expect: &[
            expect(CPL0, TAMPERING, &["forging an exit status\n"], &[TAMPERED, "a forged exit-status frame"])
                .without(&["the VM went on"]),
            expect(RING3, 139, &["forging an exit status\n"], OUT_FAULTS),
        ],
    },
    Attack {
        name: "forged_stdout_frame",
        guest: "forged_console_frame",
        what: "a stdout frame in the kernel's format (a guessed key) of text the app never wrote",
        options: &[],
        args: &[Arg::Literal("stdout")],
        stdin: b"",
        expect: &[
            expect(CPL0, TAMPERING, &["forging a frame\n"], &[TAMPERED, "a forged stdout frame"])
                .without(&["forged output", "after the forgery"]),
            expect(RING3, 139, &["forging a frame\n"], OUT_FAULTS),
        ],
    },
    Attack {
        name: "forged_crash_record",
        guest: "forged_console_frame",
        what: "a crash frame in the kernel's format (a guessed key) blaming a page fault",
        options: &[],
        args: &[Arg::Literal("crash")],
        stdin: b"",
        expect: &[
            expect(CPL0, TAMPERING, &["forging a frame\n"], &[TAMPERED, "a forged crash frame"])
                .without(&["after the forgery"]),
            expect(RING3, 139, &["forging a frame\n"], OUT_FAULTS),
        ],
    },
    Attack {
        name: "stop_without_verdict",
        guest: "stop_without_verdict",
        what: "OUT to the exit port with no verdict sent before",
        options: &[],
        args: &[],
        stdin: b"",
        expect: &[
            expect(
                CPL0,
                TAMPERING,
                &["stopping the VM\n"],
                &[TAMPERED, "a stop through the exit port without an authenticated"],
            )
            .without(&["the VM went on"]),
            expect(RING3, 139, &["stopping the VM\n"], OUT_FAULTS),
        ],
    },
    Attack {
        name: "steal_console_key",
        guest: "steal_console_key",
        what: "read the console key from the boot info in the physical map, then forge an authenticated stdout line and Exit 0",
        options: &[],
        args: &[Arg::RegionStart("kernel physical map"), Arg::ConsoleKeyOffset],
        stdin: b"",
        expect: &[
            expect(
                MPK,
                139,
                &["searching the physical map for the boot info\n"],
                &["SIGSEGV", "protection-key violation (kernel physical map, protection key 3)"],
            )
            .without(&["stole the console key"]),
            expect(
                RING3,
                139,
                &["searching the physical map for the boot info\n"],
                &["SIGSEGV", "supervisor-page violation (in kernel physical map)"],
            )
            .without(&["stole the console key"]),
            // No isolation, no secret: the forged verdict is taken (docs/security.md, "Verdicts").
            expect(NONE, 0, &["stole the console key\n", "forged with the stolen key\n"], &[]),
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, Isolation};

    #[test]
    fn every_attack_has_an_expectation_in_every_mode_and_a_guest() {
        let modes = [
            Mode::new(Backend::Qemu, Isolation::Mpk),
            Mode::new(Backend::Kvm, Isolation::Ring3),
            Mode::new(Backend::Qemu, Isolation::Ring3),
            Mode::new(Backend::Qemu, Isolation::None),
        ];
        for attack in ATTACKS {
            for (mode, host) in modes.into_iter().flat_map(|mode| Host::every_kind().map(move |host| (mode, host))) {
                assert!(
                    attack.expected(mode, host).is_some(),
                    "{} has no expectation for {mode:?} on {host:?}",
                    attack.name
                );
            }
            assert!(crate::guests::attacks_dir().join(format!("{}.S", attack.guest)).is_file(), "{}", attack.guest);
        }
    }

    #[test]
    fn names_are_unique() {
        for (index, attack) in ATTACKS.iter().enumerate() {
            assert!(ATTACKS[index + 1..].iter().all(|other| other.name != attack.name), "{}", attack.name);
        }
    }
}
