//! What a run ended with and how it was laid out, for people and for programs: the one-paragraph crash
//! report on stderr ([`CrashReport`]), the `--print-layout` text ([`LayoutReport::text`]) and the
//! `--report` JSON ([`RunReport`], documented field by field in docs/report.md). The text and the JSON
//! are made from the same values, so they cannot disagree.

use std::io::Write;
use std::path::Path;

use kernel_abi::{
    exit_code, signal, CrashRecord, IsolationMode, CRASH_GATE_VIOLATION, CRASH_GUARDED_INSTRUCTION, CRASH_KERNEL_PANIC,
};
use serde::Serialize;

use crate::backend::Backend;
use crate::devices::console::Tampering;
use crate::exit::{GuestOutcome, StopReason};
use crate::loader::{LoadedVm, RegionReport};

/// The `version` of the `--report` JSON. Raised whenever a field changes meaning or goes away (adding
/// one does not).
pub const REPORT_VERSION: u32 = 1;

/// How a CPU exception in the app maps to a Linux signal.
pub fn signal_for_vector(vector: u64) -> (i32, &'static str) {
    match vector {
        0 | 16 | 19 => (signal::SIGFPE, "SIGFPE"),
        1 | 3 => (signal::SIGTRAP, "SIGTRAP"),
        6 => (signal::SIGILL, "SIGILL"),
        17 => (signal::SIGBUS, "SIGBUS"),
        _ => (signal::SIGSEGV, "SIGSEGV"),
    }
}

/// The exception's name.
pub fn vector_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error (#DE)",
        1 => "debug exception (#DB)",
        2 => "non-maskable interrupt",
        3 => "breakpoint (#BP)",
        4 => "overflow (#OF)",
        5 => "bound range exceeded (#BR)",
        6 => "invalid opcode (#UD)",
        7 => "device not available (#NM)",
        8 => "double fault (#DF)",
        10 => "invalid TSS (#TS)",
        11 => "segment not present (#NP)",
        12 => "stack-segment fault (#SS)",
        13 => "general protection fault (#GP)",
        14 => "page fault (#PF)",
        16 => "x87 floating-point error (#MF)",
        17 => "alignment check (#AC)",
        18 => "machine check (#MC)",
        19 => "SIMD floating-point error (#XM)",
        21 => "control protection fault (#CP)",
        CRASH_GATE_VIOLATION => "protection-key gate violation",
        CRASH_KERNEL_PANIC => "kernel panic",
        CRASH_GUARDED_INSTRUCTION => "guarded instruction",
        _ => "CPU exception",
    }
}

/// What kind of access a page fault was, from its error code.
pub fn page_fault_access(error_code: u64) -> PageFaultAccess {
    use isolation::paging::fault;
    PageFaultAccess {
        access: if error_code & fault::FETCH != 0 {
            "instruction fetch"
        } else if error_code & fault::WRITE != 0 {
            "write"
        } else {
            "read"
        },
        cause: if error_code & fault::PROTECTION_KEY != 0 {
            "protection-key violation"
        } else if error_code & fault::PRESENT == 0 {
            "unmapped address"
        } else if error_code & fault::RESERVED != 0 {
            "reserved bit set in a page-table entry"
        } else if error_code & fault::USER != 0 {
            "supervisor-page violation"
        } else {
            "page-protection violation"
        },
        user_mode: error_code & fault::USER != 0,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PageFaultAccess {
    pub access: &'static str,
    pub cause: &'static str,
    pub user_mode: bool,
}

/// The region containing `address`, by name.
pub fn region_of(address: u64, regions: &[RegionReport]) -> Option<&RegionReport> {
    regions.iter().find(|region| (region.virt_start..region.virt_end).contains(&address))
}

/// A crash as the user and `--report` see it.
#[derive(Clone, Debug, Serialize)]
pub struct CrashReport {
    pub signal: i32,
    pub signal_name: &'static str,
    pub exception: &'static str,
    pub vector: u64,
    pub error_code: u64,
    pub fault_address: Option<u64>,
    pub page_fault: Option<PageFaultAccess>,
    pub protection_key: Option<u64>,
    pub fault_region: Option<String>,
    pub rip: u64,
    pub rip_region: Option<String>,
    pub in_kernel: bool,
    /// What `mpk` mode's step gate stopped the app before, where it did.
    pub guarded: Option<GuardedStop>,
    pub registers: Registers,
}

/// A guarded instruction the app was about to run (`isolation::guard`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct GuardedStop {
    pub instruction: &'static str,
    pub address: u64,
}

/// The general registers at the fault, named, in the order the reports list them (a JSON object in
/// `--report`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registers(pub [(&'static str, u64); 18]);

impl Registers {
    pub fn of(record: &CrashRecord) -> Self {
        let r = record;
        Self([
            ("rip", r.rip),
            ("rsp", r.rsp),
            ("rflags", r.rflags),
            ("rax", r.rax),
            ("rbx", r.rbx),
            ("rcx", r.rcx),
            ("rdx", r.rdx),
            ("rsi", r.rsi),
            ("rdi", r.rdi),
            ("rbp", r.rbp),
            ("r8", r.r8),
            ("r9", r.r9),
            ("r10", r.r10),
            ("r11", r.r11),
            ("r12", r.r12),
            ("r13", r.r13),
            ("r14", r.r14),
            ("r15", r.r15),
        ])
    }

    /// `name=0x...` for the registers at `indices` of the list, separated by spaces.
    fn line(&self, indices: std::ops::Range<usize>) -> String {
        let named = self.0.get(indices).unwrap_or_default().iter().map(|(name, value)| format!("{name}={value:#x}"));
        named.collect::<Vec<_>>().join(" ")
    }
}

impl Serialize for Registers {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl CrashReport {
    pub fn new(record: &CrashRecord, regions: &[RegionReport]) -> Self {
        let stop = (record.vector == CRASH_GUARDED_INSTRUCTION)
            .then(|| isolation::guard::Stop::from_code(record.error_code))
            .flatten();
        // As where the app runs at CPL3: the privileged ones raise #GP (SIGSEGV); WRPKRU without
        // protection keys for the app, #UD (SIGILL).
        let (signal, signal_name) = match stop {
            Some(isolation::guard::Stop::Guarded(isolation::scan::ForbiddenInstruction::Wrpkru)) => {
                (signal::SIGILL, "SIGILL")
            }
            Some(_) => (signal::SIGSEGV, "SIGSEGV"),
            None => signal_for_vector(record.vector),
        };
        let is_page_fault = record.vector == 14;
        let page_fault = is_page_fault.then(|| page_fault_access(record.error_code));
        let region_name = |address| region_of(address, regions).map(|region| region.name.clone());
        Self {
            signal,
            signal_name,
            exception: vector_name(record.vector),
            vector: record.vector,
            error_code: record.error_code,
            fault_address: is_page_fault.then_some(record.fault_address),
            protection_key: page_fault.filter(|access| access.cause == "protection-key violation").map(|_| record.pkey),
            fault_region: if is_page_fault { region_name(record.fault_address) } else { None },
            page_fault,
            rip: record.rip,
            rip_region: region_name(record.rip),
            in_kernel: record.in_kernel != 0,
            guarded: stop.map(|stop| GuardedStop { instruction: stop.name(), address: record.fault_address }),
            registers: Registers::of(record),
        }
    }

    /// The exit status this crash gives secure-run: 128 + signal for the app's faults; a kernel fault
    /// or panic is secure-run's own failure.
    pub fn exit_code(&self) -> i32 {
        if self.in_kernel || self.vector == CRASH_KERNEL_PANIC {
            exit_code::VMM_ERROR
        } else {
            exit_code::killed_by(self.signal)
        }
    }

    /// The one-paragraph report for stderr.
    pub fn paragraph(&self, context: &str) -> String {
        let mut text = if self.vector == CRASH_KERNEL_PANIC {
            "secure-run: the guest kernel panicked (a secure-run bug; its message is above)".to_string()
        } else if self.in_kernel {
            format!("secure-run: the guest kernel faulted (a secure-run bug): {}", self.exception)
        } else {
            format!("secure-run: the app was killed by {}: {}", self.signal_name, self.exception)
        };
        if self.vector == CRASH_GATE_VIOLATION {
            text.push_str(" (a jump to a PKRU gate with forged registers; the VM was halted)");
        }
        if let Some(stop) = self.guarded {
            text.push_str(&format!(
                " {} at {:#x}, stopped before it ran: in --isolation mpk the app runs at CPL0, where it would \
                 defeat the isolation",
                stop.instruction, stop.address
            ));
        }
        if let (Some(address), Some(access)) = (self.fault_address, self.page_fault) {
            text.push_str(&format!(", {} of address {address:#x}: {}", access.access, access.cause));
            match (&self.fault_region, self.protection_key) {
                (Some(region), Some(key)) => text.push_str(&format!(" ({region}, protection key {key})")),
                (Some(region), None) => text.push_str(&format!(" (in {region})")),
                (None, _) => text.push_str(" (in no mapped region)"),
            }
        } else if matches!(self.vector, 8 | 10..=13 | 17 | 21 | 29 | 30) {
            // Only these exceptions push an error code.
            text.push_str(&format!(", error code {:#x}", self.error_code));
        }
        if self.vector != CRASH_GATE_VIOLATION && self.vector != CRASH_KERNEL_PANIC {
            text.push_str(&format!("; at rip {:#x}", self.rip));
            if let Some(region) = &self.rip_region {
                text.push_str(&format!(" ({region})"));
            }
            // Without RIP, said above: RSP to RBP, then R8 to R15.
            text.push_str(&format!("\n  {}\n  {}", self.registers.line(1..10), self.registers.line(10..18)));
        }
        text.push_str(&format!("\n  {context}"));
        text
    }
}

/// How a run was set up, as every report names it (the crash paragraph ends with it, so the run can
/// be replayed).
#[derive(Clone, Copy, Debug)]
pub struct RunSetup {
    pub seed: u64,
    pub aslr: bool,
    pub backend: Backend,
    pub isolation: IsolationMode,
}

impl RunSetup {
    /// `backend kvm, isolation ring3, seed 7 (replay with --seed 7 --aslr)`.
    pub fn replay_context(&self) -> String {
        let seed = self.seed;
        format!(
            "backend {}, isolation {}, seed {seed} (replay with --seed {seed}{})",
            self.backend.name(),
            self.isolation.name(),
            if self.aslr { " --aslr" } else { "" }
        )
    }
}

/// The guest's layout: every region, and how many bits of entropy each randomized base has.
#[derive(Clone, Debug, Serialize)]
pub struct LayoutReport<'a> {
    /// Sorted by virtual address.
    pub regions: &'a [RegionReport],
    pub entropy_bits: EntropyBits,
}

/// Bits of entropy of each base (0 without `--aslr`, and for an ET_EXEC app's own base).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EntropyBits {
    pub kernel: u32,
    pub app: u32,
    pub physmap: u32,
    pub stack: u32,
    pub brk: u32,
    pub mmap: u32,
}

impl<'a> LayoutReport<'a> {
    pub fn of(vm: &'a LoadedVm) -> Self {
        let (vm_entropy, process_entropy) = (vm.layout.entropy, vm.process.entropy);
        Self {
            regions: &vm.regions,
            entropy_bits: EntropyBits {
                kernel: vm_entropy.kernel_bits,
                app: vm_entropy.app_bits,
                physmap: vm_entropy.physmap_bits,
                stack: process_entropy.stack_bits,
                brk: process_entropy.brk_bits,
                mmap: process_entropy.mmap_bits,
            },
        }
    }

    /// `--print-layout`: one line per region, then the entropy of each base.
    pub fn text(&self, seed: u64) -> String {
        let mut text = format!("secure-run: layout (seed {seed})\n");
        for region in self.regions {
            let phys = region.phys_start.map_or_else(|| "on demand".to_string(), |phys| format!("{phys:#x}"));
            let key = region.pkey.map_or_else(String::new, |key| format!(" key {key}"));
            text.push_str(&format!(
                "  {:#018x}-{:#018x} {} phys {:<12}{key}  {}\n",
                region.virt_start, region.virt_end, region.perms, phys, region.name
            ));
        }
        let bits = self.entropy_bits;
        text.push_str(&format!(
            "  entropy (bits): kernel base {}, app base {}, physical map {}, stack {}, brk {}, mmap base {}\n",
            bits.kernel, bits.app, bits.physmap, bits.stack, bits.brk, bits.mmap
        ));
        text
    }
}

/// The `--report` JSON: one object, the fields in docs/report.md.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport<'a> {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// secure-run's exit status.
    pub exit_code: i32,
    /// The status the app exited with, if it did.
    pub app_status: Option<i32>,
    /// Why the VM stopped, in words.
    pub stop: String,
    pub timed_out: bool,
    pub crash: Option<&'a CrashReport>,
    /// What the app forged on the console channel, if it did (the exit code is then
    /// `exit_code::TAMPERING`).
    pub tampering: Option<TamperingReport>,
    pub seed: u64,
    pub aslr: bool,
    pub backend: &'static str,
    pub isolation: &'static str,
    pub layout: LayoutReport<'a>,
    /// The app's output went past `--max-output` and the rest was dropped.
    pub output_truncated: bool,
    /// Console bytes outside well-formed frames.
    pub garbage_console_bytes: u64,
    /// From starting the backend to the VM's end.
    pub wall_time_ms: f64,
}

/// The `tampering` object of the `--report` JSON.
#[derive(Clone, Debug, Serialize)]
pub struct TamperingReport {
    /// One word ([`Tampering::kind`]).
    pub kind: &'static str,
    /// The same in words, as the stderr line says it.
    pub what: String,
}

impl TamperingReport {
    pub fn of(tampering: Tampering) -> Self {
        Self { kind: tampering.kind(), what: tampering.to_string() }
    }
}

impl<'a> RunReport<'a> {
    pub fn new(
        exit_code: i32,
        outcome: &GuestOutcome,
        crash: Option<&'a CrashReport>,
        layout: LayoutReport<'a>,
        setup: &RunSetup,
    ) -> Self {
        Self {
            version: REPORT_VERSION,
            exit_code,
            app_status: outcome.status,
            stop: outcome.stop.to_string(),
            timed_out: outcome.stop == StopReason::Timeout,
            crash,
            tampering: outcome.tampering.map(TamperingReport::of),
            seed: setup.seed,
            aslr: setup.aslr,
            backend: setup.backend.name(),
            isolation: setup.isolation.name(),
            layout,
            output_truncated: outcome.output_truncated,
            garbage_console_bytes: outcome.garbage_bytes,
            wall_time_ms: outcome.wall_time.as_secs_f64() * 1000.0,
        }
    }

    /// Writes the report to `path` as pretty-printed JSON and a newline.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        serde_json::to_writer_pretty(&mut file, self)?;
        file.write_all(b"\n")?;
        file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions() -> Vec<RegionReport> {
        vec![RegionReport {
            name: "app segment".into(),
            kind: "app segment".into(),
            virt_start: 0x40_0000,
            virt_end: 0x40_1000,
            phys_start: Some(0),
            pkey: None,
            perms: "r-x".into(),
        }]
    }

    #[test]
    fn null_write_is_a_sigsegv_naming_the_address() {
        let record =
            CrashRecord { vector: 14, error_code: 0x2, fault_address: 0, rip: 0x40_0010, ..Default::default() };
        let report = CrashReport::new(&record, &regions());
        assert_eq!(report.exit_code(), 139);
        let text = report.paragraph("seed 1");
        assert!(text.contains("SIGSEGV"), "{text}");
        assert!(text.contains("write of address 0x0: unmapped address (in no mapped region)"), "{text}");
        assert!(text.contains("rip 0x400010 (app segment)"), "{text}");
    }

    #[test]
    fn the_paragraph_lists_the_registers_and_ends_with_the_context() {
        let record = CrashRecord {
            vector: 6,
            rip: 0x40_0010,
            rsp: 0x1,
            rflags: 0x2,
            rax: 0x3,
            rbx: 0x4,
            rcx: 0x5,
            rdx: 0x6,
            rsi: 0x7,
            rdi: 0x8,
            rbp: 0x9,
            r8: 0x10,
            r9: 0x11,
            r10: 0x12,
            r11: 0x13,
            r12: 0x14,
            r13: 0x15,
            r14: 0x16,
            r15: 0x17,
            ..Default::default()
        };
        let text = CrashReport::new(&record, &regions()).paragraph("seed 1");
        assert!(
            text.ends_with(
                "; at rip 0x400010 (app segment)\n  \
                 rsp=0x1 rflags=0x2 rax=0x3 rbx=0x4 rcx=0x5 rdx=0x6 rsi=0x7 rdi=0x8 rbp=0x9\n  \
                 r8=0x10 r9=0x11 r10=0x12 r11=0x13 r12=0x14 r13=0x15 r14=0x16 r15=0x17\n  seed 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn signals_follow_linux() {
        assert_eq!(CrashReport::new(&CrashRecord { vector: 6, ..Default::default() }, &[]).exit_code(), 132);
        assert_eq!(CrashReport::new(&CrashRecord { vector: 0, ..Default::default() }, &[]).exit_code(), 136);
        assert_eq!(CrashReport::new(&CrashRecord { vector: 17, ..Default::default() }, &[]).exit_code(), 135);
        assert_eq!(CrashReport::new(&CrashRecord { vector: 13, ..Default::default() }, &[]).exit_code(), 139);
        let kernel = CrashRecord { vector: 14, in_kernel: 1, ..Default::default() };
        assert_eq!(CrashReport::new(&kernel, &[]).exit_code(), 125);
    }

    /// Every `name.path` a JSON value has (`[]` for array elements), for comparing with docs/report.md.
    fn key_paths(value: &serde_json::Value, prefix: &str, paths: &mut std::collections::BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    key_paths(value, &path, paths);
                    paths.insert(path);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    key_paths(item, &format!("{prefix}[]"), paths);
                }
            }
            _ => {}
        }
    }

    /// The field paths docs/report.md's table lists (`a.{b,c}` stands for `a.b` and `a.c`).
    fn documented_paths() -> std::collections::BTreeSet<String> {
        let mut paths = std::collections::BTreeSet::new();
        for line in include_str!("../../docs/report.md").lines() {
            let Some(path) = line.strip_prefix("| `").and_then(|rest| rest.split('`').next()) else { continue };
            match path.split_once('{') {
                Some((prefix, names)) => {
                    paths.extend(names.trim_end_matches('}').split(',').map(|name| format!("{prefix}{name}")));
                }
                None => {
                    paths.insert(path.to_string());
                }
            }
        }
        paths
    }

    #[test]
    fn report_json_has_the_documented_version_and_fields() {
        let record = CrashRecord {
            vector: 14,
            error_code: 0x6,
            fault_address: 0,
            rip: 0x40_0010,
            rsp: u64::MAX,
            ..Default::default()
        };
        let crash = CrashReport::new(&record, &regions());
        let outcome = GuestOutcome {
            status: None,
            crash: Some(record),
            killed_by: None,
            stop: StopReason::ExitPort,
            tampering: Some(Tampering::ForgedFrame { stream: kernel_abi::Stream::Crash }),
            garbage_bytes: 3,
            output_truncated: false,
            log_truncated: false,
            unhandled_accesses: 0,
            exits: 0,
            first_exit_after: None,
            wall_time: std::time::Duration::from_millis(12),
        };
        let regions = regions();
        let layout = LayoutReport {
            regions: &regions,
            entropy_bits: EntropyBits { kernel: 34, app: 0, physmap: 25, stack: 34, brk: 30, mmap: 34 },
        };
        let setup = RunSetup { seed: 42, aslr: true, backend: Backend::Qemu, isolation: IsolationMode::Mpk };
        let report = RunReport::new(crash.exit_code(), &outcome, Some(&crash), layout.clone(), &setup);
        let json = serde_json::to_value(&report).unwrap();

        assert_eq!(REPORT_VERSION, 1, "docs/report.md documents version 1");
        assert_eq!(json["version"], 1);
        assert_eq!(json["exit_code"], 139);
        assert_eq!(
            (json["seed"].clone(), json["aslr"].clone(), json["backend"].clone()),
            (42.into(), true.into(), "qemu".into())
        );
        assert_eq!(json["isolation"], "mpk");
        assert_eq!(json["crash"]["page_fault"]["access"], "write");
        assert_eq!(json["crash"]["registers"]["rsp"].as_u64(), Some(u64::MAX), "64-bit values stay exact");
        assert_eq!(json["layout"]["regions"][0]["kind"], "app segment");
        assert_eq!(json["layout"]["entropy_bits"]["physmap"], 25);
        assert_eq!(json["garbage_console_bytes"], 3);
        assert_eq!(json["tampering"]["kind"], "forged_frame");
        assert!(json["tampering"]["what"].as_str().unwrap().contains("forged crash frame"), "{json}");
        assert_eq!(json["wall_time_ms"], 12.0);

        let mut written = std::collections::BTreeSet::new();
        key_paths(&json, "", &mut written);
        // A stop by the step gate fills `crash.guarded`.
        let guarded = CrashRecord {
            vector: CRASH_GUARDED_INSTRUCTION,
            error_code: isolation::guard::Stop::HiddenByMovSs.code(),
            fault_address: 0x40_0020,
            rip: 0x40_0010,
            ..Default::default()
        };
        let crash = CrashReport::new(&guarded, &regions);
        assert_eq!(crash.exit_code(), 139, "as the privileged instructions at CPL3: SIGSEGV");
        let json =
            serde_json::to_value(RunReport::new(crash.exit_code(), &outcome, Some(&crash), layout, &setup)).unwrap();
        assert_eq!(json["crash"]["guarded"]["instruction"], "an instruction in the shadow of MOV SS");
        assert_eq!(json["crash"]["guarded"]["address"], 0x40_0020);
        key_paths(&json, "", &mut written);
        let documented = documented_paths();
        let undocumented: Vec<_> = written.difference(&documented).collect();
        let not_written: Vec<_> = documented.difference(&written).collect();
        assert!(undocumented.is_empty(), "fields missing from docs/report.md: {undocumented:?}");
        assert!(not_written.is_empty(), "docs/report.md lists fields the report lacks: {not_written:?}");
    }

    #[test]
    fn print_layout_text_lists_every_region_and_the_entropy() {
        let regions = regions();
        let layout = LayoutReport {
            regions: &regions,
            entropy_bits: EntropyBits { kernel: 34, app: 0, physmap: 25, stack: 34, brk: 30, mmap: 34 },
        };
        assert_eq!(
            layout.text(7),
            "secure-run: layout (seed 7)\n  \
             0x0000000000400000-0x0000000000401000 r-x phys 0x0           app segment\n  \
             entropy (bits): kernel base 34, app base 0, physical map 25, stack 34, brk 30, mmap base 34\n"
        );
    }

    #[test]
    fn protection_key_faults_name_the_key() {
        let record =
            CrashRecord { vector: 14, error_code: 0x21, fault_address: 0x40_0800, pkey: 2, ..Default::default() };
        let text = CrashReport::new(&record, &regions()).paragraph("");
        assert!(
            text.contains("read of address 0x400800: protection-key violation (app segment, protection key 2)"),
            "{text}"
        );
    }
}
