//! What a run ended with, in words: the one-paragraph crash report on stderr and the `--report` JSON.

use kernel_abi::{exit_code, signal, CrashRecord, CRASH_GATE_VIOLATION, CRASH_KERNEL_PANIC};
use serde::Serialize;

use crate::loader::RegionReport;

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
    pub registers: Registers,
}

#[derive(Clone, Debug, Serialize)]
pub struct Registers {
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

impl CrashReport {
    pub fn new(record: &CrashRecord, regions: &[RegionReport]) -> Self {
        let (signal, signal_name) = signal_for_vector(record.vector);
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
            registers: Registers {
                rip: record.rip,
                rsp: record.rsp,
                rflags: record.rflags,
                rax: record.rax,
                rbx: record.rbx,
                rcx: record.rcx,
                rdx: record.rdx,
                rsi: record.rsi,
                rdi: record.rdi,
                rbp: record.rbp,
                r8: record.r8,
                r9: record.r9,
                r10: record.r10,
                r11: record.r11,
                r12: record.r12,
                r13: record.r13,
                r14: record.r14,
                r15: record.r15,
            },
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
            let r = &self.registers;
            text.push_str(&format!(
                "\n  rsp={:#x} rflags={:#x} rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x} rbp={:#x}\n  \
                 r8={:#x} r9={:#x} r10={:#x} r11={:#x} r12={:#x} r13={:#x} r14={:#x} r15={:#x}",
                r.rsp,
                r.rflags,
                r.rax,
                r.rbx,
                r.rcx,
                r.rdx,
                r.rsi,
                r.rdi,
                r.rbp,
                r.r8,
                r.r9,
                r.r10,
                r.r11,
                r.r12,
                r.r13,
                r.r14,
                r.r15
            ));
        }
        text.push_str(&format!("\n  {context}"));
        text
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
    fn signals_follow_linux() {
        assert_eq!(CrashReport::new(&CrashRecord { vector: 6, ..Default::default() }, &[]).exit_code(), 132);
        assert_eq!(CrashReport::new(&CrashRecord { vector: 0, ..Default::default() }, &[]).exit_code(), 136);
        assert_eq!(CrashReport::new(&CrashRecord { vector: 17, ..Default::default() }, &[]).exit_code(), 135);
        assert_eq!(CrashReport::new(&CrashRecord { vector: 13, ..Default::default() }, &[]).exit_code(), 139);
        let kernel = CrashRecord { vector: 14, in_kernel: 1, ..Default::default() };
        assert_eq!(CrashReport::new(&kernel, &[]).exit_code(), 125);
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
