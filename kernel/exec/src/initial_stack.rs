//! The Linux initial process stack: argc, argv, envp and the auxiliary vector, as the app's entry point
//! expects them (System V x86-64 ABI §3.4.1; `fs/binfmt_elf.c` `create_elf_tables`).
//!
//! The VMM writes it into guest memory at the top of the stack span, so the guest kernel only records the
//! stack (where kernel code is emulated, building it there cost milliseconds). AT_HWCAP is the one value
//! the VMM cannot know for every backend: it is left 0 and its address is passed to the kernel, which
//! fills in the CPU's CPUID.1:EDX.
//!
//! ```text
//!   stack_top →  8 zero bytes (end marker)
//!                AT_EXECFN string, argv strings, envp strings, "x86_64", 16 random bytes
//!                (padding to 16)
//!                AT_NULL, auxv pairs ...
//!                NULL, envp[envc-1] ... envp[0]
//!                NULL, argv[argc-1] ... argv[0]
//!         rsp →  argc                     (rsp % 16 == 0)
//! ```

use alloc::vec::Vec;

pub const AT_NULL: u64 = 0;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_RANDOM: u64 = 25;
pub const AT_EXECFN: u64 = 31;

/// What the auxiliary vector reports about the app image and the CPU.
#[derive(Clone, Copy, Debug)]
pub struct AuxvInputs<'a> {
    /// Address of the program headers in app memory.
    pub phdr: u64,
    pub phnum: u64,
    pub phent: u64,
    /// The app's entry point.
    pub entry: u64,
    /// The 16 bytes AT_RANDOM points at (libc's stack-protector and pointer-guard seed).
    pub random: [u8; 16],
    /// The path AT_EXECFN names (`argv[0]` as given).
    pub execfn: &'a [u8],
}

/// The bytes to write at `[rsp, stack_top)`, the stack pointer the app starts with, and where the AT_HWCAP
/// value lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialStack {
    pub rsp: u64,
    pub bytes: Vec<u8>,
    pub hwcap_slot: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StackError {
    #[error("the stack top is misaligned or too low")]
    BadTop,
    /// Arguments and environment exceed `max_size` (the app would get E2BIG from execve).
    #[error("the arguments and environment need more than {max_size} bytes of stack")]
    TooBig { max_size: usize },
}

const PLATFORM: &[u8] = b"x86_64";

/// Builds the initial stack below `stack_top` in at most `max_size` bytes.
pub fn build_initial_stack(
    stack_top: u64,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    aux: &AuxvInputs<'_>,
    max_size: usize,
) -> Result<InitialStack, StackError> {
    if !stack_top.is_multiple_of(16) {
        return Err(StackError::BadTop);
    }
    let mut strings_size: usize = 8 + PLATFORM.len() + 1 + 16 + aux.execfn.len() + 1;
    for s in argv.iter().chain(envp) {
        strings_size = strings_size.checked_add(s.len() + 1).ok_or(StackError::TooBig { max_size })?;
    }
    let auxv_count = 19;
    let words = 1 + argv.len() + 1 + envp.len() + 1 + 2 * auxv_count;
    let vector_size = words.checked_mul(8).ok_or(StackError::TooBig { max_size })?;
    let total_unaligned =
        strings_size.checked_add(15).and_then(|s| s.checked_add(vector_size)).ok_or(StackError::TooBig { max_size })?;
    if total_unaligned > max_size {
        return Err(StackError::TooBig { max_size });
    }
    let strings_low = stack_top.checked_sub(strings_size as u64).ok_or(StackError::BadTop)?;
    let rsp = (strings_low & !15).checked_sub(vector_size as u64).ok_or(StackError::BadTop)? & !15;
    let size = usize::try_from(stack_top - rsp).map_err(|_| StackError::TooBig { max_size })?;
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(size).map_err(|_| StackError::TooBig { max_size })?;
    bytes.resize(size, 0);

    // Strings, from the top down.
    let mut cursor = stack_top - 8;
    let mut put_string = |bytes: &mut Vec<u8>, s: &[u8], nul: bool| -> u64 {
        cursor -= s.len() as u64 + u64::from(nul);
        let at = (cursor - rsp) as usize;
        bytes[at..at + s.len()].copy_from_slice(s);
        cursor
    };
    let execfn = put_string(&mut bytes, aux.execfn, true);
    let argv_addrs: Vec<u64> = argv.iter().map(|s| put_string(&mut bytes, s, true)).collect();
    let envp_addrs: Vec<u64> = envp.iter().map(|s| put_string(&mut bytes, s, true)).collect();
    let platform = put_string(&mut bytes, PLATFORM, true);
    let random = put_string(&mut bytes, &aux.random, false);

    let auxv: [(u64, u64); 19] = [
        (AT_PHDR, aux.phdr),
        (AT_PHENT, aux.phent),
        (AT_PHNUM, aux.phnum),
        (AT_PAGESZ, 4096),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, aux.entry),
        (AT_UID, 0),
        (AT_EUID, 0),
        (AT_GID, 0),
        (AT_EGID, 0),
        (AT_SECURE, 0),
        (AT_CLKTCK, 100),
        (AT_HWCAP, 0),
        (AT_RANDOM, random),
        (AT_PLATFORM, platform),
        (AT_EXECFN, execfn),
        (AT_NULL, 0),
        (AT_NULL, 0),
    ];
    // The vector, from rsp up: argc, argv, NULL, envp, NULL, auxv (the final AT_NULL pair is duplicated
    // harmlessly so the count stays a constant).
    let vector = core::iter::once(argv.len() as u64)
        .chain(argv_addrs.iter().copied())
        .chain(core::iter::once(0))
        .chain(envp_addrs.iter().copied())
        .chain(core::iter::once(0))
        .chain(auxv.iter().flat_map(|&(k, v)| [k, v]));
    for (i, word) in vector.enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
    }
    let hwcap_index = auxv.iter().position(|&(key, _)| key == AT_HWCAP).unwrap_or_default();
    let hwcap_slot = rsp + 8 * (argv.len() + envp.len() + 3 + 2 * hwcap_index + 1) as u64;
    Ok(InitialStack { rsp, bytes, hwcap_slot })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn word(stack: &InitialStack, addr: u64) -> u64 {
        let at = (addr - stack.rsp) as usize;
        u64::from_le_bytes(stack.bytes[at..at + 8].try_into().unwrap())
    }

    fn c_string(stack: &InitialStack, addr: u64) -> Vec<u8> {
        let at = (addr - stack.rsp) as usize;
        stack.bytes[at..].iter().take_while(|&&b| b != 0).copied().collect()
    }

    fn aux<'a>() -> AuxvInputs<'a> {
        AuxvInputs { phdr: 0x40_0040, phnum: 7, phent: 56, entry: 0x40_1000, random: [7; 16], execfn: b"/app" }
    }

    #[test]
    fn layout_matches_linux() {
        let top = 0x7fff_f000;
        let stack =
            build_initial_stack(top, &[b"/app".to_vec(), b"-x".to_vec()], &[b"A=1".to_vec()], &aux(), 1 << 20).unwrap();
        assert_eq!(stack.rsp % 16, 0);
        assert_eq!(stack.rsp + stack.bytes.len() as u64, top);
        assert_eq!(word(&stack, stack.rsp), 2);
        assert_eq!(c_string(&stack, word(&stack, stack.rsp + 8)), b"/app");
        assert_eq!(c_string(&stack, word(&stack, stack.rsp + 16)), b"-x");
        assert_eq!(word(&stack, stack.rsp + 24), 0);
        assert_eq!(c_string(&stack, word(&stack, stack.rsp + 32)), b"A=1");
        assert_eq!(word(&stack, stack.rsp + 40), 0);
        let mut at = stack.rsp + 48;
        let mut found = std::collections::BTreeMap::new();
        loop {
            let (key, value) = (word(&stack, at), word(&stack, at + 8));
            if key == AT_NULL {
                break;
            }
            found.insert(key, value);
            at += 16;
        }
        assert_eq!(found[&AT_PHDR], 0x40_0040);
        assert_eq!(found[&AT_ENTRY], 0x40_1000);
        assert_eq!(found[&AT_PAGESZ], 4096);
        assert_eq!(found[&AT_CLKTCK], 100);
        assert_eq!(found[&AT_HWCAP], 0, "the kernel fills it in");
        assert_eq!(word(&stack, stack.hwcap_slot - 8), AT_HWCAP);
        assert_eq!(c_string(&stack, found[&AT_PLATFORM]), b"x86_64");
        assert_eq!(c_string(&stack, found[&AT_EXECFN]), b"/app");
        let random = found[&AT_RANDOM];
        let offset = (random - stack.rsp) as usize;
        assert_eq!(&stack.bytes[offset..offset + 16], &[7; 16]);
        assert_eq!(word(&stack, top - 8), 0);
    }

    #[test]
    fn refuses_oversize_and_misaligned_top() {
        assert_eq!(build_initial_stack(0x1008, &[], &[], &aux(), 4096), Err(StackError::BadTop));
        assert_eq!(
            build_initial_stack(0x10_0000, &[vec![b'a'; 5000]], &[], &aux(), 4096),
            Err(StackError::TooBig { max_size: 4096 })
        );
        assert_eq!(build_initial_stack(0x100, &[], &[], &aux(), 4096), Err(StackError::BadTop));
    }

    proptest! {
        #[test]
        fn rsp_is_16_aligned(
            argv in proptest::collection::vec(proptest::collection::vec(1u8..=255, 0..40), 0..20),
            envp in proptest::collection::vec(proptest::collection::vec(1u8..=255, 0..40), 0..20),
            execfn in proptest::collection::vec(1u8..=255, 0..30),
            top_pages in 16u64..1000,
        ) {
            let top = top_pages * 4096;
            let inputs = AuxvInputs { execfn: &execfn, ..aux() };
            let stack = build_initial_stack(top, &argv, &envp, &inputs, 1 << 20).unwrap();
            prop_assert_eq!(stack.rsp % 16, 0);
            prop_assert_eq!(word(&stack, stack.rsp), argv.len() as u64);
            prop_assert_eq!(word(&stack, stack.hwcap_slot - 8), AT_HWCAP);
            for (i, arg) in argv.iter().enumerate() {
                prop_assert_eq!(&c_string(&stack, word(&stack, stack.rsp + 8 + 8 * i as u64)), arg);
            }
            let env_base = stack.rsp + 8 * (argv.len() as u64 + 2);
            for (i, var) in envp.iter().enumerate() {
                prop_assert_eq!(&c_string(&stack, word(&stack, env_base + 8 * i as u64)), var);
            }
        }
    }
}
