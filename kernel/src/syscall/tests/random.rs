//! Syscall tests: random syscalls: no panic, invariants kept.

use super::*;

/// Arguments the fuzzer picks from: pointers into scratch, text, strings, the kernel, and edge values.
fn interesting_arg() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..8,
        Just(u64::MAX),
        Just(AT_FDCWD as u64),
        Just(KERNEL_ADDR),
        Just(TEXT),
        (0u64..SCRATCH_LEN).prop_map(|o| SCRATCH + o),
        Just(SCRATCH),
        Just(SCRATCH + 0x800),
        Just(MMAP_START + MMAP_LEN - 4096),
        Just(BRK_START + 8192),
        any::<u64>(),
        (0u64..64).prop_map(|p| p * 4096),
    ]
}

fn interesting_nr() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => proptest::sample::select(SYSCALLS.iter().map(|s| s.nr).filter(|&n| n != EXIT && n != EXIT_GROUP).collect::<Vec<_>>()),
        1 => any::<u64>(),
        1 => 0u64..500,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn random_syscalls_never_panic_and_keep_invariants(
        calls in proptest::collection::vec((interesting_nr(), proptest::array::uniform6(interesting_arg())), 1..40)
    ) {
        let mut h = Harness::new();
        // Plant some paths in scratch so path arguments sometimes resolve.
        h.m.poke(SCRATCH, b"/tmp/fuzz\0").unwrap();
        h.m.poke(SCRATCH + 0x800, b"/data/hello.txt\0").unwrap();
        for (nr, args) in calls {
            let result = h.k.syscall(&mut h.m, nr, &args, APP_SP);
            prop_assert!(h.k.check_invariants().is_ok(), "{:?} after {nr} {args:x?}", h.k.check_invariants());
            prop_assert_eq!(h.m.violations, 0, "machine violation after {} {:x?}", nr, args);
            for vma in h.k.vmas().iter() {
                prop_assert!(vma.end <= 0x7e00_0000_0000 || vma.start >= 0x7e00_0000_0000 + (1 << 30));
            }
            if !matches!(result, SyscallResult::Return(_)) {
                break;
            }
        }
    }
}
