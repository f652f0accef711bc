//! `inspection`: arbitrary bytes through the code scanner (`isolation::scan`), cross-checked against a
//! reference written here straight from the instruction encodings (Intel SDM), structured differently
//! from the production matcher on purpose.
//!
//! Checked: `scan_forbidden_instructions` finds exactly what the reference finds, at every byte offset;
//! `first_forbidden` is its first finding; scanning the same bytes split into address-contiguous pieces
//! (`scan_code_regions`, `CodeScanner`) finds the same, including sequences across the seams; pieces at
//! separate addresses are scanned independently.

use isolation::scan::{first_forbidden, scan_code_regions, scan_forbidden_instructions, Finding, ForbiddenInstruction};

use super::input::Reader;

/// The forbidden instruction whose identifying bytes start at `code[at]`, by the SDM:
/// - an escape: `0F`, or the REX2 prefix `D5 payload` with `payload.M0` (bit 7) set, selecting map 1;
/// - WRMSR is `0F 30`, no ModRM;
/// - the others need their ModRM byte: `0F 00 /2` LLDT, `/3` LTR (any mod); `0F 01` with mod = 11 encodes
///   fixed instructions by the whole byte (`EF` WRPKRU, `D1` XSETBV, `F8` SWAPGS, `C6` WRMSRNS) and LMSW
///   register forms (`/6`); with a memory operand `/2` LGDT, `/3` LIDT, `/6` LMSW; `0F 22` MOV to CR
///   (CR0/CR3/CR4/CR8 apart from the others) and `0F 23` MOV to DR (any ModRM); `0F AE /5` XRSTOR and `0F C7 /3` XRSTORS with a memory operand.
pub fn reference_match(code: &[u8], at: usize) -> Option<ForbiddenInstruction> {
    use ForbiddenInstruction::*;
    let opcode_at = match (code.get(at), code.get(at + 1)) {
        (Some(0x0f), _) => at + 1,
        (Some(0xd5), Some(payload)) if payload & 0x80 != 0 => at + 2,
        _ => return None,
    };
    let opcode = *code.get(opcode_at)?;
    if opcode == 0x30 {
        return Some(Wrmsr);
    }
    let modrm = *code.get(opcode_at + 1)?;
    let memory_operand = modrm < 0xc0;
    let reg = (modrm >> 3) & 7;
    match opcode {
        0x00 if reg == 2 => Some(Lldt),
        0x00 if reg == 3 => Some(Ltr),
        0x01 if !memory_operand => match modrm {
            0xef => Some(Wrpkru),
            0xd1 => Some(Xsetbv),
            0xf8 => Some(Swapgs),
            0xc6 => Some(Wrmsrns),
            0xf0..=0xf7 => Some(Lmsw),
            _ => None,
        },
        0x01 => match reg {
            2 => Some(Lgdt),
            3 => Some(Lidt),
            6 => Some(Lmsw),
            _ => None,
        },
        // CR0, CR3, CR4 (and CR8, which REX.R or LOCK selects with the same low bits as CR0) control
        // paging and protection; CR2 only holds a fault address, CR1 and CR5-CR7 raise #UD.
        0x22 => Some(if matches!(reg, 0 | 3 | 4) { MovToCr } else { MovToOtherCr }),
        0x23 => Some(MovToDr),
        0xae if memory_operand && reg == 5 => Some(Xrstor),
        0xc7 if memory_operand && reg == 3 => Some(Xrstors),
        _ => None,
    }
}

/// Every reference match, in address order.
pub fn reference_scan(code: &[u8], base_addr: u64) -> Vec<Finding> {
    (0..code.len())
        .filter_map(|at| {
            reference_match(code, at)
                .map(|instruction| Finding { offset: base_addr.wrapping_add(at as u64), instruction })
        })
        .collect()
}

/// One fuzz input: a base address, split points, then the code.
pub fn run(data: &[u8]) {
    let mut input = Reader::new(data);
    let base_addr = input.u64();
    let splits = [input.u16(), input.u16(), input.u16()];
    let gap = input.u8();
    let code = input.rest();

    let findings = scan_forbidden_instructions(code, base_addr);
    let expected = reference_scan(code, base_addr);
    assert_eq!(findings, expected, "scanner and reference disagree on {code:02x?} at {base_addr:#x}");
    assert_eq!(first_forbidden(code, base_addr), findings.first().copied(), "first_forbidden disagrees");

    // The same bytes in up to four address-contiguous pieces: the same findings.
    let mut cuts: Vec<usize> = splits.iter().map(|&split| usize::from(split) % (code.len() + 1)).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([code.len()]) {
        pieces.push((base_addr.wrapping_add(start as u64), &code[start..cut]));
        start = cut;
    }
    assert_eq!(scan_code_regions(pieces.iter().copied()), findings, "contiguous pieces scan differently");

    // With a gap between the pieces, each is scanned on its own: no sequence spans a gap.
    if gap > 0 {
        let mut shift = 0u64;
        let mut separate = Vec::new();
        let mut apart = Vec::new();
        for (address, piece) in pieces {
            let address = address.wrapping_add(shift);
            separate.extend(scan_forbidden_instructions(piece, address));
            apart.push((address, piece));
            shift = shift.wrapping_add(u64::from(gap));
        }
        assert_eq!(scan_code_regions(apart), separate, "pieces separated by gaps of {gap} scan differently");
    }
}
