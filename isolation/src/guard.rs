//! Guarded code: how the `mpk` kernel lets an app whose code holds a guarded forbidden instruction
//! ([`ForbiddenInstruction::is_guarded`]) run without ever letting one execute.
//!
//! A byte pair such as `0F 22` occurs by chance about once per 64 KiB of code, so nearly every large
//! program holds an unintended MOV to CR, WRPKRU, LGDT, LIDT or WRMSR somewhere inside other instructions
//! or data. The kernel keeps every page that holds one (and the page before, where its prefixes may
//! start) non-executable. When the app's execution reaches such a page, the fetch faults and the kernel
//! makes the page executable for as long as the app runs there with the trap flag (TF) set: a #DB after
//! every instruction. Before each instruction runs, the kernel decodes it ([`next_instruction`]) and ends
//! the app if it is a guarded one. Leaving the pages turns TF off and the pages non-executable again.
//!
//! Single-stepping rather than hardware breakpoints on the occurrences: an app at CPL0 can execute IRETQ
//! with RF set in the RFLAGS it pops, which suppresses an instruction breakpoint on the first
//! instruction at the target, so a breakpoint can be jumped over. RF does not affect the single-step
//! trap, and no debug register is used (MOV to DR by the app changes nothing the guard relies on).
//!
//! What the decoder must see through, because it changes when the next trap comes:
//! - prefixes: an instruction starts at its first prefix (legacy, REX, REX2), up to 14 of them;
//! - MOV SS ([`NextInstruction::MovSs`]): it delays the single-step trap past the following
//!   instruction, so the kernel checks that one as well before it lets MOV SS run;
//! - XBEGIN ([`NextInstruction::Xbegin`]): a debug exception inside a transaction aborts it to the
//!   fallback address without a #DB, so the instruction there would run unchecked; the kernel performs
//!   the abort itself (what the CPU would do) and checks the fallback address as the next instruction.

use crate::scan::{match_at, ForbiddenInstruction};

/// The longest x86 instruction: what the decoder needs to see from the instruction pointer on.
pub const MAX_INSTRUCTION_LEN: usize = 15;

/// How far before a guarded instruction's escape byte (`0F`, or REX2's `D5`) the instruction may start:
/// the most prefixes an instruction can carry.
pub const MAX_PREFIXES: u64 = 14;

/// The pages an occurrence at `escape` (the address of its `0F`/`D5` byte, a
/// [`Finding::offset`](crate::scan::Finding)) makes guarded: its own and the page where its longest
/// prefix run would start.
pub fn guarded_pages(escape: u64, page_size: u64) -> [u64; 2] {
    let page = |addr: u64| addr & !(page_size - 1);
    [page(escape.saturating_sub(MAX_PREFIXES)), page(escape)]
}

/// The instruction at the app's instruction pointer, as far as the single-step guard cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextInstruction {
    /// A guarded forbidden instruction: the app must end before it runs.
    Guarded(ForbiddenInstruction),
    /// MOV SS, `len` bytes long: the instruction after it runs before the next trap.
    MovSs { len: usize },
    /// XBEGIN, `len` bytes long, with its fallback at `len + rel` from the instruction's start.
    Xbegin { len: usize, rel: i64 },
    /// Anything else: it runs, and the trap after it comes before the next one.
    Other,
}

/// Why the guard ends the app: what would have run next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A guarded forbidden instruction.
    Guarded(ForbiddenInstruction),
    /// An instruction the MOV SS shadow would hide from the guard: XBEGIN on a CPU with RTM (the
    /// transaction would start, and abort to a fallback whose first instruction nothing checks), or the
    /// end of a chain of MOV SS longer than any compiler emits.
    HiddenByMovSs,
}

impl Stop {
    /// The number that names it in a crash record: the instruction's index in
    /// [`ForbiddenInstruction::ALL`], or 0x100.
    pub fn code(self) -> u64 {
        match self {
            Self::Guarded(instruction) => {
                ForbiddenInstruction::ALL.iter().position(|&known| known == instruction).unwrap_or(0) as u64
            }
            Self::HiddenByMovSs => 0x100,
        }
    }

    /// The inverse of [`Stop::code`].
    pub fn from_code(code: u64) -> Option<Self> {
        if code == 0x100 {
            return Some(Self::HiddenByMovSs);
        }
        usize::try_from(code).ok().and_then(|i| ForbiddenInstruction::ALL.get(i)).map(|&i| Self::Guarded(i))
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Guarded(instruction) => instruction.name(),
            Self::HiddenByMovSs => "an instruction in the shadow of MOV SS",
        }
    }
}

/// Legacy prefixes (operand and address size, LOCK, REP, segment overrides) and REX.
pub const fn is_prefix(byte: u8) -> bool {
    matches!(byte, 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3 | 0x40..=0x4f)
}

/// Decodes the instruction starting at `code[0]`. `code` holds the bytes from the instruction pointer
/// on, at most [`MAX_INSTRUCTION_LEN`]; the caller reads memory that is not backed yet as zeros (what it
/// will hold when it is), so a sequence cut short by the end of `code` cannot run.
pub fn next_instruction(code: &[u8]) -> NextInstruction {
    let code = &code[..code.len().min(MAX_INSTRUCTION_LEN)];
    let mut index = 0;
    let mut operand_size_16 = false;
    while index < code.len() && index < MAX_PREFIXES as usize && is_prefix(code[index]) {
        operand_size_16 |= code[index] == 0x66;
        index += 1;
    }
    if let Some((instruction, _)) = match_at(code, index) {
        if instruction.is_guarded() {
            return NextInstruction::Guarded(instruction);
        }
        return NextInstruction::Other;
    }
    // REX2 with M0 clear selects opcode map 0, where MOV SS and XBEGIN live.
    if let [0xd5, payload, ..] = code[index..] {
        if payload & 0x80 == 0 {
            index += 2;
        }
    }
    match code.get(index..) {
        Some([0x8e, modrm, rest @ ..]) if (modrm >> 3) & 0b111 == 2 => {
            NextInstruction::MovSs { len: index + 2 + operand_bytes(*modrm, rest.first().copied()) }
        }
        Some([0xc7, 0xf8, rest @ ..]) => {
            let (size, rel) = if operand_size_16 {
                (2, rest.get(..2).map(|b| i64::from(i16::from_le_bytes([b[0], b[1]]))))
            } else {
                (4, rest.get(..4).map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))))
            };
            match rel {
                Some(rel) => NextInstruction::Xbegin { len: index + 2 + size, rel },
                // Cut short: the rest is zeros once backed.
                None => NextInstruction::Xbegin { len: index + 2 + size, rel: 0 },
            }
        }
        _ => NextInstruction::Other,
    }
}

/// The SIB and displacement bytes that follow `modrm` (`sib`: the byte after it, if any). 64-bit and
/// 32-bit addressing (a 67 prefix in 64-bit mode) share this layout.
fn operand_bytes(modrm: u8, sib: Option<u8>) -> usize {
    let mode = modrm >> 6;
    let rm = modrm & 0b111;
    if mode == 0b11 {
        return 0;
    }
    let has_sib = rm == 0b100;
    let displacement = match mode {
        0b00 if rm == 0b101 => 4,
        0b00 if has_sib && sib.is_some_and(|sib| sib & 0b111 == 0b101) => 4,
        0b00 => 0,
        0b01 => 1,
        _ => 4,
    };
    usize::from(has_sib) + displacement
}

#[cfg(test)]
mod tests {
    use super::*;
    use ForbiddenInstruction::*;
    use NextInstruction::*;

    #[test]
    fn guarded_instructions_are_seen_through_their_prefixes() {
        assert_eq!(next_instruction(&[0x0f, 0x22, 0xd8]), Guarded(MovToCr));
        assert_eq!(next_instruction(&[0x41, 0x0f, 0x22, 0xd8]), Guarded(MovToCr)); // mov cr3, r8
        assert_eq!(next_instruction(&[0x66, 0x2e, 0xf3, 0x0f, 0x01, 0xef]), Guarded(Wrpkru));
        assert_eq!(next_instruction(&[0x0f, 0x30]), Guarded(Wrmsr));
        assert_eq!(next_instruction(&[0x0f, 0x01, 0x10]), Guarded(Lgdt));
        assert_eq!(next_instruction(&[0xd5, 0x80, 0x22, 0xc0]), Guarded(MovToCr)); // REX2 map 1
        let mut long = [0x66u8; 14].to_vec();
        long.extend([0x0f, 0x30]);
        assert_eq!(next_instruction(&long[..15]), Other, "cut short: 0F alone");
        let mut fourteen = [0x3eu8; 13].to_vec();
        fourteen.extend([0x0f, 0x30]);
        assert_eq!(next_instruction(&fourteen), Guarded(Wrmsr));
    }

    #[test]
    fn neutralized_and_ordinary_instructions_run() {
        assert_eq!(next_instruction(&[0x0f, 0x00, 0xd8]), Other); // ltr ax: faults by itself
        assert_eq!(next_instruction(&[0x0f, 0x23, 0xf8]), Other); // mov dr7, rax
        assert_eq!(next_instruction(&[0x48, 0x89, 0xc3]), Other);
        assert_eq!(next_instruction(&[]), Other);
        // The 0F at the end of the bytes: the next page reads as zeros, `0F 00 00` is SLDT.
        assert_eq!(next_instruction(&[0x90, 0x0f]), Other);
        assert_eq!(next_instruction(&[0x0f, 0x22, 0x00]), Guarded(MovToCr), "mod is ignored for MOV CR");
    }

    #[test]
    fn mov_ss_lengths_follow_the_modrm_byte() {
        assert_eq!(next_instruction(&[0x8e, 0xd0]), MovSs { len: 2 }); // mov ss, eax
        assert_eq!(next_instruction(&[0x66, 0x8e, 0xd0]), MovSs { len: 3 });
        assert_eq!(next_instruction(&[0x8e, 0x10]), MovSs { len: 2 }); // mov ss, [rax]
        assert_eq!(next_instruction(&[0x8e, 0x14, 0x24]), MovSs { len: 3 }); // mov ss, [rsp]
        assert_eq!(next_instruction(&[0x8e, 0x15, 1, 2, 3, 4]), MovSs { len: 6 }); // [rip + disp32]
        assert_eq!(next_instruction(&[0x8e, 0x14, 0x25, 1, 2, 3, 4]), MovSs { len: 7 }); // [disp32]
        assert_eq!(next_instruction(&[0x8e, 0x50, 0x08]), MovSs { len: 3 }); // [rax + 8]
        assert_eq!(next_instruction(&[0x8e, 0x94, 0x24, 1, 2, 3, 4]), MovSs { len: 7 }); // [rsp + disp32]
        assert_eq!(next_instruction(&[0x67, 0x8e, 0x10]), MovSs { len: 3 });
        assert_eq!(next_instruction(&[0xd5, 0x00, 0x8e, 0xd0]), MovSs { len: 4 });
        assert_eq!(next_instruction(&[0x8e, 0xd8]), Other, "mov ds, eax does not delay the trap");
    }

    #[test]
    fn xbegin_names_its_fallback() {
        assert_eq!(next_instruction(&[0xc7, 0xf8, 0x10, 0, 0, 0]), Xbegin { len: 6, rel: 0x10 });
        assert_eq!(next_instruction(&[0xc7, 0xf8, 0xfa, 0xff, 0xff, 0xff]), Xbegin { len: 6, rel: -6 });
        assert_eq!(next_instruction(&[0x66, 0xc7, 0xf8, 0x02, 0x00]), Xbegin { len: 5, rel: 2 });
    }

    #[test]
    fn stop_codes_round_trip() {
        for instruction in ForbiddenInstruction::ALL {
            assert_eq!(Stop::from_code(Stop::Guarded(instruction).code()), Some(Stop::Guarded(instruction)));
        }
        assert_eq!(Stop::from_code(Stop::HiddenByMovSs.code()), Some(Stop::HiddenByMovSs));
        assert_eq!(Stop::from_code(15), None);
    }

    #[test]
    fn guarded_pages_cover_the_prefix_run() {
        assert_eq!(guarded_pages(0x5000, 0x1000), [0x4000, 0x5000]);
        assert_eq!(guarded_pages(0x500e, 0x1000), [0x5000, 0x5000]);
        assert_eq!(guarded_pages(0x5, 0x1000), [0, 0]);
    }
}
