//! Where the attacks aim: the regions of the `secure-run --report` JSON (docs/report.md) and the WRPKRU
//! instructions of the kernel's own PKRU gates (found in the kernel ELF).

use isolation::scan::{scan_forbidden_instructions, ForbiddenInstruction};
use serde::Deserialize;

/// The `version` of the `--report` JSON this reads.
pub const REPORT_VERSION: u64 = 1;

/// One region of the report's `layout.regions`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Region {
    #[serde(rename = "virt_start")]
    pub start: u64,
    #[serde(rename = "virt_end")]
    pub end: u64,
    pub perms: String,
    #[serde(rename = "pkey")]
    pub key: Option<u32>,
    pub name: String,
}

/// The regions of a `secure-run --report` JSON document, in the report's (address) order.
pub fn layout_from_report(json: &str) -> Result<Vec<Region>, String> {
    #[derive(Deserialize)]
    struct Report {
        version: u64,
        layout: Layout,
    }
    #[derive(Deserialize)]
    struct Layout {
        regions: Vec<Region>,
    }
    let report: Report =
        serde_json::from_str(json).map_err(|error| format!("the --report JSON does not parse: {error}"))?;
    if report.version != REPORT_VERSION {
        return Err(format!(
            "the --report JSON is version {}, this reads version {REPORT_VERSION}: build secure-run and eval from \
             the same tree",
            report.version
        ));
    }
    Ok(report.layout.regions)
}

/// The regions named `name`, in address order.
pub fn regions_named<'a>(regions: &'a [Region], name: &str) -> Vec<&'a Region> {
    let mut found: Vec<&Region> = regions.iter().filter(|region| region.name == name).collect();
    found.sort_by_key(|region| region.start);
    found
}

/// A WRPKRU of a kernel PKRU gate: `0F 01 EF`, then `CMP EAX, expected`, then a conditional jump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// The WRPKRU's link address in the kernel ELF.
    pub link_address: u64,
    /// The PKRU value the check after it accepts.
    pub expected: u32,
    /// The gate is the SYSCALL entry's (inside the `syscall_entry_cpl0` symbol's code).
    pub syscall_entry: bool,
}

/// The checked WRPKRU gates in the executable sections of `kernel_elf`, except the boot-only section
/// (unmapped before the app runs).
pub fn kernel_gates(kernel_elf: &[u8]) -> Result<Vec<Gate>, String> {
    let elf = goblin::elf::Elf::parse(kernel_elf).map_err(|error| format!("the kernel ELF does not parse: {error}"))?;
    let syscall_entry = elf
        .syms
        .iter()
        .find(|sym| elf.strtab.get_at(sym.st_name) == Some("syscall_entry_cpl0"))
        .map(|sym| sym.st_value);
    let mut gates = Vec::new();
    for section in &elf.section_headers {
        if section.sh_flags & u64::from(goblin::elf::section_header::SHF_EXECINSTR) == 0
            || section.sh_type == goblin::elf::section_header::SHT_NOBITS
        {
            continue;
        }
        if elf.shdr_strtab.get_at(section.sh_name) == Some(".secure_run_boot_text") {
            continue;
        }
        let bytes = usize::try_from(section.sh_offset)
            .ok()
            .zip(usize::try_from(section.sh_size).ok())
            .and_then(|(start, size)| kernel_elf.get(start..start.checked_add(size)?))
            .ok_or("a kernel section lies outside the file")?;
        for finding in scan_forbidden_instructions(bytes, section.sh_addr) {
            if finding.instruction != ForbiddenInstruction::Wrpkru {
                continue;
            }
            let at = usize::try_from(finding.offset - section.sh_addr).map_err(|error| error.to_string())?;
            let check = bytes.get(at + 3..).unwrap_or_default();
            let expected = match check {
                [0x83, 0xf8, imm, ..] => i32::from(*imm as i8) as u32,
                [0x3d, a, b, c, d, ..] => u32::from_le_bytes([*a, *b, *c, *d]),
                _ => continue,
            };
            // The entry's gate comes within its first few dozen bytes.
            let in_syscall_entry = syscall_entry.is_some_and(|entry| finding.offset.wrapping_sub(entry) < 128);
            gates.push(Gate { link_address: finding.offset, expected, syscall_entry: in_syscall_entry });
        }
    }
    Ok(gates)
}

/// The lowest `PT_LOAD` virtual address of `kernel_elf`: what the VMM's kernel base is added to.
pub fn lowest_load_address(kernel_elf: &[u8]) -> Result<u64, String> {
    let elf = goblin::elf::Elf::parse(kernel_elf).map_err(|error| format!("the kernel ELF does not parse: {error}"))?;
    elf.program_headers
        .iter()
        .filter(|header| header.p_type == goblin::elf::program_header::PT_LOAD)
        .map(|header| header.p_vaddr)
        .min()
        .ok_or_else(|| "the kernel ELF has no PT_LOAD segment".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regions_with_and_without_keys_from_the_report() {
        let json = r#"{
            "version": 1,
            "exit_code": 0,
            "layout": {
                "regions": [
                    { "name": "app brk heap", "kind": "app brk heap", "virt_start": 4268032,
                      "virt_end": 1078009856, "phys_start": null, "perms": "rw-", "pkey": 0 },
                    { "name": "kernel rodata", "kind": "kernel rodata", "virt_start": 138538465099776,
                      "virt_end": 138538465120256, "phys_start": 1060864, "perms": "r--", "pkey": 1 },
                    { "name": "kernel physical map", "kind": "kernel physical map", "virt_start": 137438953472000,
                      "virt_end": 137439221907456, "phys_start": 0, "perms": "rw-", "pkey": null }
                ],
                "entropy_bits": { "kernel": 0, "app": 0, "physmap": 0, "stack": 0, "brk": 0, "mmap": 0 }
            }
        }"#;
        let regions = layout_from_report(json).unwrap();
        assert_eq!(regions.len(), 3);
        assert_eq!(regions[0].name, "app brk heap");
        assert_eq!(
            regions[1],
            Region {
                start: 0x7e00_0000_0000,
                end: 0x7e00_0000_5000,
                perms: "r--".into(),
                key: Some(1),
                name: "kernel rodata".into()
            }
        );
        assert_eq!(regions[2].key, None);
        assert_eq!(regions[2].name, "kernel physical map");
    }

    #[test]
    fn refuses_another_report_version() {
        let error = layout_from_report(r#"{ "version": 2, "layout": { "regions": [] } }"#).unwrap_err();
        assert!(error.contains("version 2"), "{error}");
        assert!(layout_from_report("not json").is_err());
    }
}
