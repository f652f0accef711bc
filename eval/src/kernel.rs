//! Where the attacks aim: the regions of `secure-run --print-layout` (parsed from its stderr) and the
//! WRPKRU instructions of the kernel's own PKRU gates (found in the kernel ELF).

use isolation::scan::{scan_forbidden_instructions, ForbiddenInstruction};

/// One line of `--print-layout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub key: Option<u32>,
    pub name: String,
}

/// Parses the region lines of `secure-run --print-layout` (on stderr):
/// `  0x00007e0000000000-0x00007e0000005000 r-- phys 0x103000     key 1  kernel rodata`.
pub fn parse_layout(stderr: &str) -> Vec<Region> {
    stderr.lines().filter_map(parse_region).collect()
}

fn parse_region(line: &str) -> Option<Region> {
    let mut tokens = line.split_whitespace().peekable();
    let (start, end) = tokens.next()?.split_once('-')?;
    let start = parse_hex(start)?;
    let end = parse_hex(end)?;
    let perms = tokens.next()?.to_owned();
    if tokens.next()? != "phys" {
        return None;
    }
    if tokens.next()? == "on" {
        tokens.next()?; // "demand"
    }
    let mut key = None;
    if tokens.peek() == Some(&"key") {
        tokens.next();
        key = Some(tokens.next()?.parse().ok()?);
    }
    let name = tokens.collect::<Vec<_>>().join(" ");
    (!name.is_empty()).then_some(Region { start, end, perms, key, name })
}

fn parse_hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.strip_prefix("0x")?, 16).ok()
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
    fn parses_layout_lines_with_and_without_keys() {
        let text = "secure-run: layout (seed 1)\n  0x0000000000412000-0x0000000040412000 rw- phys on demand    key 0  app brk heap\n  \
                    0x00007e0000000000-0x00007e0000005000 r-- phys 0x103000     key 1  kernel rodata\n  \
                    0x00007d0000000000-0x00007d0010000000 rw- phys 0x0           kernel physical map\n  \
                    entropy (bits): kernel base 0\n";
        let regions = parse_layout(text);
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
}
