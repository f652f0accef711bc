//! The scanner of executable bytes for instructions that would let code escape protection keys
//! (ERIM-style inspection): WRPKRU, XRSTOR/XRSTORS, XSETBV, MOV to CR/DR, WRMSR/WRMSRNS,
//! LGDT/LIDT/LLDT/LTR/LMSW, SWAPGS.
//!
//! # Every byte offset
//! An attacker can jump into the middle of an instruction, so the bytes are matched at *every* offset,
//! not just at instruction boundaries. This also settles prefixes: legacy prefixes (66, F2, F3, F0,
//! segment overrides) and REX sit *before* the 0F escape, so a prefixed instruction contains the unprefixed
//! sequence at a later offset, where it is found. The match there only looks at the opcode bytes and the
//! ModRM byte's `mod` and `reg` fields; REX.R/REX.B extend `reg`/`rm` with a fourth bit but never change
//! the low three bits of `reg` (the opcode extension) nor `mod`, and a mandatory prefix can only turn a
//! flagged sequence into some other instruction (a harmless false positive, e.g. F3 0F AE /5 with a memory
//! operand), never turn a dangerous instruction into an unflagged sequence. The reported offset is that
//! of the 0F byte, which is the instruction itself in the unprefixed reading. REX.W variants (XRSTOR64,
//! XRSTORS64) are found the same way.
//!
//! No VEX, EVEX or XOP encoding exists for these instructions. APX's REX2 prefix (D5, then a payload
//! byte whose bit 7 `M0` selects opcode map 1) does encode map-1 instructions *without* the 0F byte —
//! `MOV CR` has REX2 forms — so `D5 <payload with M0 set> <opcode> ...` is matched like `0F <opcode> ...`
//! and reported at the D5.
//!
//! # What counts as present
//! A sequence is a finding when every byte that identifies the instruction (the escape, the opcode and,
//! where the instruction has one, the ModRM byte) is inside the scanned bytes. Displacement and SIB bytes
//! are not required (it errs towards refusing). A sequence cut off by the end of the buffer is not a
//! finding: execution cannot run past the end of a mapping into unmapped or non-executable memory. Code
//! split over address-contiguous regions must therefore be scanned across the seam, which
//! [`scan_code_regions`] and [`CodeScanner`] do.

use alloc::vec::Vec;

/// An instruction app code must not contain at any byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForbiddenInstruction {
    /// `0F 01 EF`: writes PKRU, the key rights themselves.
    Wrpkru,
    /// `0F AE /5`, memory operand: restores XSAVE state, PKRU included when XCR0 enables it.
    Xrstor,
    /// `0F C7 /3`, memory operand: the supervisor variant of XRSTOR.
    Xrstors,
    /// `0F 01 D1`: writes XCR0 (could enable the PKRU state component for XRSTOR).
    Xsetbv,
    /// `0F 22 /r` with CR0, CR3 or CR4 (ModRM.reg 0, 3, 4): writes CR0.WP, the page-table root, CR4.PKE.
    MovToCr,
    /// `0F 22 /r` with any other ModRM.reg: CR2 (harmless), or an invalid CR (#UD). A preceding REX.R or
    /// LOCK prefix turns reg 0 into CR8, but a jump to the 0F byte sees the unprefixed form, reported as
    /// [`ForbiddenInstruction::MovToCr`].
    MovToOtherCr,
    /// `0F 23 /r`: writes a debug register.
    MovToDr,
    /// `0F 30`: writes an MSR (LSTAR, EFER, GS base...).
    Wrmsr,
    /// `0F 01 C6`: WRMSRNS, and WRMSRLIST with an F3 prefix: also write MSRs.
    Wrmsrns,
    /// `0F 01 /2`, memory operand: loads the GDT register.
    Lgdt,
    /// `0F 01 /3`, memory operand: loads the IDT register.
    Lidt,
    /// `0F 00 /2`: loads the LDT register.
    Lldt,
    /// `0F 00 /3`: loads the task register (and with it the IST stacks).
    Ltr,
    /// `0F 01 /6`: writes the low bits of CR0.
    Lmsw,
    /// `0F 01 F8`: swaps the GS base with the kernel's.
    Swapgs,
}

impl ForbiddenInstruction {
    /// Why this instruction cannot break `mpk` isolation under the secure-run kernel's configuration, or
    /// `None` when it is *guarded*. Large real programs contain some of these byte sequences by chance
    /// (busybox: unintended WRMSR, LTR, LLDT, MOV-to-DR and SWAPGS encodings; glibc: XRSTOR in its
    /// lazy-binding trampolines, never run in a static program). What makes each one harmless is an
    /// invariant of the kernel, and each is backed by an attack test (threat-model.md):
    /// - XRSTOR, XRSTORS, XSETBV: the kernel never sets CR4.OSXSAVE, so all three raise #UD; XCR0 (and its
    ///   PKRU component) cannot be enabled.
    /// - LLDT, LTR: the GDT is read-only and holds no LDT descriptor and only the busy TSS, so every load
    ///   faults (a null LLDT selector only empties the unused LDT).
    /// - LMSW: writes only CR0 bits 0–3; it cannot clear PE and cannot touch WP or PG.
    /// - MOV to DR: the kernel's guard uses no debug register (single-stepping needs none), so a breakpoint
    ///   the app sets only raises #DB: a signal of its own, or the end of the run where it hits kernel code.
    /// - SWAPGS: the kernel never uses the GS base.
    ///
    /// WRPKRU, MOV to CR0/CR3/CR4, LGDT and LIDT change key, paging or interrupt state directly; WRMSR and
    /// WRMSRNS could set IA32_DEBUGCTL.BTF, which would make single-stepping trap on branches only (and
    /// reach other control MSRs). Those are guarded ([`ForbiddenInstruction::is_guarded`]).
    pub const fn neutralized_by_kernel(self) -> Option<&'static str> {
        match self {
            Self::Wrpkru | Self::MovToCr | Self::Lgdt | Self::Lidt | Self::Wrmsr | Self::Wrmsrns => None,
            Self::MovToOtherCr => Some("it writes CR2, which holds only the last fault address, or raises #UD"),
            Self::Xrstor | Self::Xrstors | Self::Xsetbv => Some("the kernel never enables XSAVE: it raises #UD"),
            Self::Lldt | Self::Ltr => Some("the GDT is read-only and holds no usable descriptor: it faults"),
            Self::Lmsw => Some("it cannot clear CR0.PE or touch CR0.WP"),
            Self::MovToDr => Some("the kernel uses no debug register: a breakpoint only raises #DB"),
            Self::Swapgs => Some("the kernel never uses the GS base"),
        }
    }

    /// Whether the `mpk` kernel guards this instruction: code holding it may run, but the pages around
    /// each occurrence are non-executable and the app is single-stepped through them, ending before an
    /// occurrence would run (`isolation::guard`, docs/security.md). `--strict-inspection` refuses every
    /// forbidden instruction instead.
    pub const fn is_guarded(self) -> bool {
        self.neutralized_by_kernel().is_none()
    }

    /// Every forbidden instruction.
    pub const ALL: [Self; 15] = [
        Self::Wrpkru,
        Self::Xrstor,
        Self::Xrstors,
        Self::Xsetbv,
        Self::MovToCr,
        Self::MovToOtherCr,
        Self::MovToDr,
        Self::Wrmsr,
        Self::Wrmsrns,
        Self::Lgdt,
        Self::Lidt,
        Self::Lldt,
        Self::Ltr,
        Self::Lmsw,
        Self::Swapgs,
    ];

    /// The mnemonic, as in the Intel SDM.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Wrpkru => "WRPKRU",
            Self::Xrstor => "XRSTOR",
            Self::Xrstors => "XRSTORS",
            Self::Xsetbv => "XSETBV",
            Self::MovToCr => "MOV to CR",
            Self::MovToOtherCr => "MOV to CR2 or an invalid CR",
            Self::MovToDr => "MOV to DR",
            Self::Wrmsr => "WRMSR",
            Self::Wrmsrns => "WRMSRNS",
            Self::Lgdt => "LGDT",
            Self::Lidt => "LIDT",
            Self::Lldt => "LLDT",
            Self::Ltr => "LTR",
            Self::Lmsw => "LMSW",
            Self::Swapgs => "SWAPGS",
        }
    }
}

impl core::fmt::Display for ForbiddenInstruction {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A forbidden instruction found in code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Finding {
    /// Address of its first byte: the scan's base address plus its index in the scanned bytes.
    pub offset: u64,
    pub instruction: ForbiddenInstruction,
}

impl core::fmt::Display for Finding {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "forbidden instruction {} at {:#x}", self.instruction, self.offset)
    }
}

/// The longest matched sequence: REX2 prefix, payload, opcode, ModRM.
pub const MAX_SEQUENCE_LEN: usize = 4;

/// Classifies the map-1 opcode `opcode` (the byte after 0F) with the byte after it (its ModRM byte, if
/// it has one); returns the instruction and whether the ModRM byte is part of the match.
fn classify(opcode: u8, modrm: Option<u8>) -> Option<(ForbiddenInstruction, bool)> {
    use ForbiddenInstruction::*;
    if opcode == 0x30 {
        return Some((Wrmsr, false));
    }
    let modrm = modrm?;
    let register_form = modrm >> 6 == 0b11;
    let reg = (modrm >> 3) & 0b111;
    let instruction = match (opcode, modrm, reg) {
        (0x00, _, 2) => Lldt,
        (0x00, _, 3) => Ltr,
        (0x01, 0xef, _) => Wrpkru,
        (0x01, 0xd1, _) => Xsetbv,
        (0x01, 0xf8, _) => Swapgs,
        (0x01, 0xc6, _) => Wrmsrns,
        (0x01, _, 2) if !register_form => Lgdt,
        (0x01, _, 3) if !register_form => Lidt,
        (0x01, _, 6) => Lmsw,
        (0x22, _, 0 | 3 | 4) => MovToCr,
        (0x22, _, _) => MovToOtherCr,
        (0x23, _, _) => MovToDr,
        // With mod = 11 these are LFENCE (0F AE E8..EF) and an unused encoding: not forbidden.
        (0xae, _, 5) if !register_form => Xrstor,
        (0xc7, _, 3) if !register_form => Xrstors,
        _ => return None,
    };
    Some((instruction, true))
}

/// The forbidden instruction whose sequence starts at `code[index]`, and the sequence's length.
pub(crate) fn match_at(code: &[u8], index: usize) -> Option<(ForbiddenInstruction, usize)> {
    let rest = code.get(index..)?;
    let escape_len = match rest {
        [0x0f, ..] => 1,
        [0xd5, payload, ..] if payload & 0x80 != 0 => 2,
        _ => return None,
    };
    let opcode = *rest.get(escape_len)?;
    let (instruction, has_modrm) = classify(opcode, rest.get(escape_len + 1).copied())?;
    Some((instruction, escape_len + 1 + usize::from(has_modrm)))
}

fn address(base_addr: u64, index: usize) -> u64 {
    // Indices fit in u64 on every supported target; wrap rather than panic on a hostile base.
    base_addr.wrapping_add(index as u64)
}

/// Every forbidden instruction in `code`, at every byte offset, in address order; `base_addr` is the
/// address of `code[0]`.
pub fn scan_forbidden_instructions(code: &[u8], base_addr: u64) -> Vec<Finding> {
    let mut findings = Vec::new();
    scan_into(code, base_addr, &mut findings);
    findings
}

/// The first forbidden instruction in `code`, if any (what a loader refusing the app needs).
pub fn first_forbidden(code: &[u8], base_addr: u64) -> Option<Finding> {
    (0..code.len()).find_map(|index| {
        match_at(code, index).map(|(instruction, _)| Finding { offset: address(base_addr, index), instruction })
    })
}

fn scan_into(code: &[u8], base_addr: u64, findings: &mut Vec<Finding>) {
    for index in 0..code.len() {
        if let Some((instruction, _)) = match_at(code, index) {
            findings.push(Finding { offset: address(base_addr, index), instruction });
        }
    }
}

/// Scans code that arrives in pieces (pages, segments), finding sequences that straddle two pieces
/// when the second starts exactly where the first ended.
#[derive(Clone, Debug, Default)]
pub struct CodeScanner {
    /// The last bytes fed (fewer than [`MAX_SEQUENCE_LEN`]), which a sequence may start in.
    tail: [u8; MAX_SEQUENCE_LEN - 1],
    tail_len: usize,
    /// The address just past the last byte fed; `None` before the first piece.
    next_addr: Option<u64>,
}

impl CodeScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Scans `code`, the bytes at `base_addr`, appending findings in address order.
    pub fn feed(&mut self, base_addr: u64, code: &[u8], findings: &mut Vec<Finding>) {
        if self.next_addr != Some(base_addr) {
            self.tail_len = 0;
        }
        if self.tail_len > 0 {
            // Sequences that start in the tail and end in `code`: the others were reported already.
            let mut seam = [0u8; 2 * (MAX_SEQUENCE_LEN - 1)];
            let head = code.len().min(MAX_SEQUENCE_LEN - 1);
            seam[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
            seam[self.tail_len..self.tail_len + head].copy_from_slice(&code[..head]);
            let seam = &seam[..self.tail_len + head];
            let seam_addr = base_addr.wrapping_sub(self.tail_len as u64);
            for index in 0..self.tail_len {
                if let Some((instruction, len)) = match_at(seam, index) {
                    if index + len > self.tail_len {
                        findings.push(Finding { offset: address(seam_addr, index), instruction });
                    }
                }
            }
        }
        scan_into(code, base_addr, findings);
        // Keep the last bytes of the stream (old tail + code) for the next piece.
        let keep = (self.tail_len + code.len()).min(MAX_SEQUENCE_LEN - 1);
        let mut tail = [0u8; MAX_SEQUENCE_LEN - 1];
        let from_code = code.len().min(keep);
        let from_tail = keep - from_code;
        tail[..from_tail].copy_from_slice(&self.tail[self.tail_len - from_tail..self.tail_len]);
        tail[from_tail..keep].copy_from_slice(&code[code.len() - from_code..]);
        self.tail = tail;
        self.tail_len = keep;
        self.next_addr = Some(address(base_addr, code.len()));
    }
}

/// Scans several code regions given as `(address, bytes)` in address order; a region starting exactly
/// where the previous one ended is scanned as its continuation.
pub fn scan_code_regions<'a>(regions: impl IntoIterator<Item = (u64, &'a [u8])>) -> Vec<Finding> {
    let mut scanner = CodeScanner::new();
    let mut findings = Vec::new();
    for (base_addr, code) in regions {
        scanner.feed(base_addr, code, &mut findings);
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;
    use ForbiddenInstruction::*;

    /// One encoding of each forbidden instruction (with a memory operand where that matters).
    const SAMPLES: [(ForbiddenInstruction, &[u8]); 15] = [
        (Wrpkru, &[0x0f, 0x01, 0xef]),
        (Xrstor, &[0x0f, 0xae, 0x2f]),  // xrstor [rdi]
        (Xrstors, &[0x0f, 0xc7, 0x1f]), // xrstors [rdi]
        (Xsetbv, &[0x0f, 0x01, 0xd1]),
        (MovToCr, &[0x0f, 0x22, 0xd8]),      // mov cr3, rax
        (MovToOtherCr, &[0x0f, 0x22, 0xd0]), // mov cr2, rax
        (MovToDr, &[0x0f, 0x23, 0xf8]),      // mov dr7, rax
        (Wrmsr, &[0x0f, 0x30]),
        (Wrmsrns, &[0x0f, 0x01, 0xc6]),
        (Lgdt, &[0x0f, 0x01, 0x10]), // lgdt [rax]
        (Lidt, &[0x0f, 0x01, 0x18]), // lidt [rax]
        (Lldt, &[0x0f, 0x00, 0xd0]), // lldt ax
        (Ltr, &[0x0f, 0x00, 0xd8]),  // ltr ax
        (Lmsw, &[0x0f, 0x01, 0xf0]), // lmsw ax
        (Swapgs, &[0x0f, 0x01, 0xf8]),
    ];

    fn found(code: &[u8]) -> Vec<(u64, ForbiddenInstruction)> {
        scan_forbidden_instructions(code, 0).into_iter().map(|f| (f.offset, f.instruction)).collect()
    }

    #[test]
    fn samples_cover_every_instruction_and_have_names() {
        for instruction in ForbiddenInstruction::ALL {
            assert!(SAMPLES.iter().any(|(i, _)| *i == instruction), "{instruction:?}");
            assert!(!instruction.name().is_empty());
        }
        assert_eq!(Wrpkru.name(), "WRPKRU");
    }

    #[test]
    fn each_instruction_is_found_anywhere_in_the_buffer() {
        let filler = 0x90; // NOP
        for (instruction, bytes) in SAMPLES {
            for offset in [0usize, 1, 17, 64 - bytes.len()] {
                let mut code = vec![filler; 64];
                code[offset..offset + bytes.len()].copy_from_slice(bytes);
                assert_eq!(found(&code), vec![(offset as u64, instruction)], "{instruction:?} at {offset}");
                let first = first_forbidden(&code, 0x40_0000).unwrap();
                assert_eq!((first.offset, first.instruction), (0x40_0000 + offset as u64, instruction));
            }
        }
    }

    #[test]
    fn truncated_sequences_are_not_findings() {
        for (instruction, bytes) in SAMPLES {
            for cut in 1..bytes.len() {
                let mut code = vec![0x90; 8];
                code.extend_from_slice(&bytes[..cut]);
                assert_eq!(found(&code), vec![], "{instruction:?} cut to {cut}");
                assert_eq!(first_forbidden(&code, 0), None);
            }
        }
    }

    #[test]
    fn fences_and_register_forms_are_not_flagged() {
        for harmless in [
            &[0x0f, 0xae, 0xe8][..],   // lfence
            &[0x0f, 0xae, 0xf0],       // mfence
            &[0x0f, 0xae, 0xf8],       // sfence
            &[0x0f, 0xae, 0x07],       // fxsave [rdi]  (/0)
            &[0x0f, 0xae, 0x27],       // xsave [rdi]   (/4)
            &[0x0f, 0xae, 0x37],       // xsaveopt [rdi] (/6)
            &[0x0f, 0xc7, 0xf0],       // rdrand eax
            &[0x0f, 0xc7, 0x0f],       // cmpxchg8b [rdi] (/1)
            &[0x0f, 0x01, 0xd0],       // xgetbv
            &[0x0f, 0x01, 0xee],       // rdpkru
            &[0x0f, 0x01, 0xf9],       // rdtscp
            &[0x0f, 0x01, 0xd8],       // vmrun (register form of /3)
            &[0x0f, 0x05],             // syscall
            &[0x0f, 0x31],             // rdtsc
            &[0x0f, 0x32],             // rdmsr
            &[0x0f, 0x20, 0xd8],       // mov rax, cr3
            &[0x0f, 0x21, 0xf8],       // mov rax, dr7
            &[0x0f, 0x00, 0xc0],       // sldt eax
            &[0xd5, 0x00, 0x22, 0xd8], // REX2 with M0 clear: map 0 (and r16.. operands), not map 1
        ] {
            assert_eq!(found(harmless), vec![], "{harmless:x?}");
        }
    }

    #[test]
    fn prefixed_and_rex2_forms_are_found() {
        // xrstor64 [rdi]: REX.W, found at the 0F byte.
        assert_eq!(found(&[0x48, 0x0f, 0xae, 0x2f]), vec![(1, Xrstor)]);
        // xrstors64 [r15] with REX.WB, behind a segment override.
        assert_eq!(found(&[0x64, 0x49, 0x0f, 0xc7, 0x1f]), vec![(2, Xrstors)]);
        // mov cr8, rax through REX.R, and AMD's LOCK-prefixed alias.
        assert_eq!(found(&[0x44, 0x0f, 0x22, 0xc0]), vec![(1, MovToCr)]);
        assert_eq!(found(&[0xf0, 0x0f, 0x22, 0xc0]), vec![(1, MovToCr)]);
        // wrmsrlist is F3 0F 01 C6.
        assert_eq!(found(&[0xf3, 0x0f, 0x01, 0xc6]), vec![(1, Wrmsrns)]);
        // REX2 (M0 = 1) map-1 encodings carry no 0F byte.
        assert_eq!(found(&[0xd5, 0xc4, 0x22, 0xc0]), vec![(0, MovToCr)]);
        assert_eq!(found(&[0x90, 0xd5, 0x80, 0x30]), vec![(1, Wrmsr)]);
        assert_eq!(found(&[0xd5, 0x80, 0xae, 0xe8]), vec![]); // lfence stays harmless
    }

    #[test]
    fn overlapping_sequences_are_all_reported() {
        // 0F 0F 01 EF: the second 0F starts a WRPKRU; 0F 0F is not one.
        assert_eq!(found(&[0x0f, 0x0f, 0x01, 0xef]), vec![(1, Wrpkru)]);
        // 0F 22 0F 30: MOV to CR whose ModRM is 0F (CR1: #UD), then WRMSR inside it.
        assert_eq!(found(&[0x0f, 0x22, 0x0f, 0x30]), vec![(0, MovToOtherCr), (2, Wrmsr)]);
        // mov cr0, rax hidden in a call's displacement (seen in a real musl binary): refused.
        assert_eq!(found(&[0xe8, 0x0f, 0x22, 0x00, 0x00]), vec![(1, MovToCr)]);
    }

    #[test]
    fn regions_are_scanned_across_contiguous_seams_only() {
        let wrpkru = [0x0f, 0x01, 0xef];
        for split in 1..3 {
            let (a, b) = wrpkru.split_at(split);
            let joined = scan_code_regions([(0x1000 - a.len() as u64, a), (0x1000, b)]);
            assert_eq!(joined, vec![Finding { offset: 0x1000 - split as u64, instruction: Wrpkru }]);
            let apart = scan_code_regions([(0x1000 - a.len() as u64, a), (0x2000, b)]);
            assert_eq!(apart, vec![]);
        }
        // A sequence spread over three one-byte pieces.
        let pieces: [&[u8]; 3] = [&[0x0f], &[0x01], &[0xef]];
        let found = scan_code_regions(pieces.iter().enumerate().map(|(i, p)| (0x10 + i as u64, *p)));
        assert_eq!(found, vec![Finding { offset: 0x10, instruction: Wrpkru }]);
    }

    #[test]
    fn findings_name_the_instruction_and_address() {
        use alloc::string::ToString;
        let finding = first_forbidden(&[0x90, 0x0f, 0x01, 0xef], 0x40_1000).unwrap();
        assert_eq!(finding.to_string(), "forbidden instruction WRPKRU at 0x401001");
    }

    /// The obviously-correct reference: every concrete byte string that is a forbidden sequence after
    /// the 0F escape, spelled out from the SDM's opcode tables.
    fn reference_patterns() -> Vec<(Vec<u8>, ForbiddenInstruction)> {
        let mut patterns = vec![(vec![0x30], Wrmsr)];
        for modrm in 0..=255u8 {
            let (mode, reg) = (modrm / 64, (modrm / 8) % 8);
            let memory = mode != 3;
            let mut add = |opcode: u8, instruction| patterns.push((vec![opcode, modrm], instruction));
            match reg {
                2 => add(0x00, Lldt),
                3 => add(0x00, Ltr),
                _ => {}
            }
            match modrm {
                0xef => add(0x01, Wrpkru),
                0xd1 => add(0x01, Xsetbv),
                0xf8 => add(0x01, Swapgs),
                0xc6 => add(0x01, Wrmsrns),
                _ if memory && reg == 2 => add(0x01, Lgdt),
                _ if memory && reg == 3 => add(0x01, Lidt),
                _ if reg == 6 => add(0x01, Lmsw),
                _ => {}
            }
            add(0x22, if matches!(reg, 0 | 3 | 4) { MovToCr } else { MovToOtherCr });
            add(0x23, MovToDr);
            if memory && reg == 5 {
                add(0xae, Xrstor);
            }
            if memory && reg == 3 {
                add(0xc7, Xrstors);
            }
        }
        patterns
    }

    fn reference_scan(code: &[u8], patterns: &[(Vec<u8>, ForbiddenInstruction)]) -> Vec<(u64, ForbiddenInstruction)> {
        let mut findings = Vec::new();
        for offset in 0..code.len() {
            let window = &code[offset..];
            let after_escape = if window.first() == Some(&0x0f) {
                &window[1..]
            } else if window.len() >= 2 && window[0] == 0xd5 && window[1] >= 0x80 {
                &window[2..]
            } else {
                continue;
            };
            let hits: Vec<_> = patterns.iter().filter(|(p, _)| after_escape.starts_with(p)).collect();
            assert!(hits.len() <= 1, "ambiguous reference patterns at {offset}");
            if let Some((_, instruction)) = hits.first() {
                findings.push((offset as u64, *instruction));
            }
        }
        findings
    }

    /// Random bytes biased towards the interesting ones, so that matches actually happen.
    fn code_strategy() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            4 => any::<u8>(),
            2 => Just(0x0f),
            1 => Just(0xd5),
            1 => prop::sample::select(vec![0x00, 0x01, 0x22, 0x23, 0x30, 0xae, 0xc7, 0xef, 0xd1, 0xf8, 0xc6, 0xe8]),
        ];
        prop::collection::vec(byte, 0..256)
    }

    proptest! {
        #[test]
        fn matches_the_reference_scanner(code in code_strategy()) {
            let patterns = reference_patterns();
            prop_assert_eq!(found(&code), reference_scan(&code, &patterns));
            let first = first_forbidden(&code, 0).map(|f| (f.offset, f.instruction));
            prop_assert_eq!(first, reference_scan(&code, &patterns).first().copied());
        }

        #[test]
        fn an_inserted_sequence_is_found_where_it_was_put(
            mut code in prop::collection::vec(any::<u8>(), 0..512),
            which in 0..SAMPLES.len(),
            position in any::<prop::sample::Index>(),
            base in any::<u64>(),
        ) {
            let (instruction, bytes) = SAMPLES[which];
            let at = position.index(code.len() + 1);
            code.splice(at..at, bytes.iter().copied());
            let findings = scan_forbidden_instructions(&code, base);
            let expected = Finding { offset: base.wrapping_add(at as u64), instruction };
            prop_assert!(findings.contains(&expected), "{:?} not in {:?}", expected, findings);
        }

        #[test]
        fn pieces_scan_like_the_whole(code in code_strategy(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(code.len() + 1)).collect();
            cuts.push(0);
            cuts.push(code.len());
            cuts.sort_unstable();
            let base = 0x7000_0000u64;
            let pieces = cuts.windows(2).map(|w| (base + w[0] as u64, &code[w[0]..w[1]]));
            prop_assert_eq!(scan_code_regions(pieces), scan_forbidden_instructions(&code, base));
        }
    }

    #[test]
    fn exactly_the_state_changing_instructions_are_guarded() {
        let guarded: Vec<_> = ForbiddenInstruction::ALL.into_iter().filter(|i| i.is_guarded()).collect();
        assert_eq!(guarded, [Wrpkru, MovToCr, Wrmsr, Wrmsrns, Lgdt, Lidt]);
        for instruction in ForbiddenInstruction::ALL {
            assert_eq!(instruction.is_guarded(), instruction.neutralized_by_kernel().is_none());
        }
    }
}
