//! The boot path: assembly guests (no libc, no SSE) on both backends, in the modes of `boot_test!`.
//! Output and status pass through exactly; faults, timeouts, output floods and a guest that drives the
//! VMM's ports itself all end in a documented status, never in a hang or a panic of secure-run.

use std::time::Duration;

use kernel_abi::exit_code::{TAMPERING, TIMEOUT};
use kernel_abi::MAX_FRAME_PAYLOAD;

use crate::common::*;

/// The line `flood.S` repeats.
const FLOOD_LINE: &[u8; 64] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+\n";

/// The first `len` bytes `flood.S` writes.
pub fn flood_pattern(len: usize) -> Vec<u8> {
    FLOOD_LINE.iter().copied().cycle().take(len).collect()
}

/// The VMM's default cap on the app's output (stdout and stderr), in bytes.
const DEFAULT_MAX_OUTPUT: usize = 64 << 20;
/// How far past a cap the delivered output may go: the cap may be checked per console frame.
const CAP_SLACK: usize = MAX_FRAME_PAYLOAD;

fn asm(name: &str) -> std::path::PathBuf {
    guest(Toolchain::Asm, name)
}

boot_test!(
    fn hello(mode) {
        let result = SecureRun::new(mode).run(&asm("hello"), &[]);
        assert_output(&result, 0, b"Hello, World!\n");
        assert_no_panic(&result);
    }
);

boot_test!(
    fn syscalls_preserve_registers(mode) {
        // Exit 0 only if 1000 getpid calls changed no register but RAX, RCX and R11 (see the guest).
        let result = SecureRun::new(mode).run(&asm("syscall_regs"), &[]);
        assert_output(&result, 0, b"");
        assert_no_panic(&result);
    }
);

boot_test!(
    fn exit_status_passes_through(mode) {
        assert_output(&SecureRun::new(mode).run(&asm("exit42"), &[]), 42, b"");
    }
);

boot_test!(
    fn exit_group_status_passes_through(mode) {
        assert_output(&SecureRun::new(mode).run(&asm("exit_group42"), &[]), 42, b"");
    }
);

boot_test!(
    fn null_write_is_reported_as_sigsegv_at_0x0(mode) {
        let result = SecureRun::new(mode).run(&asm("null_write"), &[]);
        assert_output(&result, 139, b"");
        assert_stderr_contains(&result, "SIGSEGV");
        assert!(mentions_address_zero(&result.stderr), "the crash report should name the fault address 0x0\n{}", result.report());
        assert_no_panic(&result);
    }
);

/// Whether `text` has a hexadecimal number that is zero (`0x0`, `0x0000000000000000`), not just a number
/// that starts with `0x0` like `0x0040100a`.
fn mentions_address_zero(text: &str) -> bool {
    text.match_indices("0x").any(|(index, _)| {
        let digits: String = text[index + 2..].chars().take_while(char::is_ascii_hexdigit).collect();
        !digits.is_empty() && digits.chars().all(|digit| digit == '0')
    })
}

boot_test!(
    fn endless_loop_hits_the_timeout(mode) {
        let result = SecureRun::new(mode).options(["--timeout", "2"]).run(&asm("loop"), &[]);
        assert_status(&result, TIMEOUT);
        assert!(result.elapsed >= Duration::from_millis(1900), "the 2 s timeout fired early\n{}", result.report());
        // About 2 s plus boot and teardown; generous because the machines are noisy.
        assert!(result.elapsed < Duration::from_secs(20), "the 2 s timeout took too long\n{}", result.report());
        assert_no_panic(&result);
    }
);

/// Flood runs write at most this much. KVM in `none` mode emulates every CPL0 instruction (docs/design.md):
/// about 25 s per MiB of output here, against about 2.5 s on QEMU.
const FLOOD_HARD_TIMEOUT: Duration = Duration::from_secs(180);

// 1 MiB through the console costs ~30 s on the nested KVM (one exit per byte): one KVM mode suffices.
tests_in_modes!(
    [qemu_none, kvm_none, qemu_mpk_aslr]
    fn one_mib_of_output_arrives_intact(mode) {
        let result = SecureRun::new(mode).hard_timeout(FLOOD_HARD_TIMEOUT).run(&asm("flood"), &["1024"]);
        assert_status(&result, 0);
        assert!(
            result.stdout == flood_pattern(1 << 20),
            "1 MiB of stdout should arrive byte for byte\n{}",
            result.report()
        );
    }
);

// 1 MiB through the console costs ~30 s on the nested KVM (one exit per byte): one KVM mode suffices.
tests_in_modes!(
    [qemu_none, kvm_none, qemu_mpk_aslr]
    fn output_past_max_output_is_dropped(mode) {
        // The app writes 1 MiB with a 256 KiB cap: secure-run drops the rest, says so on stderr, and
        // still reports the app's status.
        let cap = 256 << 10;
        let result = SecureRun::new(mode)
            .options(["--max-output", &cap.to_string()])
            .hard_timeout(FLOOD_HARD_TIMEOUT)
            .run(&asm("flood"), &["1024"]);
        assert_capped_flood(&result, cap);
        assert_stderr_contains(&result, "--max-output");
    }
);

// QEMU only: 72 MiB would take half an hour on KVM in `none` mode. The cap itself is the VMM's,
// shared by both backends, and `output_past_max_output_is_dropped` covers it on KVM.
tests_in_modes!(
    [qemu_none]
    fn output_past_the_default_cap_is_dropped(mode) {
        // 72 MiB against the default 64 MiB cap.
        let result =
            SecureRun::new(mode).hard_timeout(Duration::from_secs(400)).run(&asm("flood"), &["73728"]);
        assert_capped_flood(&result, DEFAULT_MAX_OUTPUT);
    }
);

#[track_caller]
fn assert_capped_flood(result: &RunResult, cap: usize) {
    assert_status(result, 0);
    assert_no_panic(result);
    assert!(
        result.stdout.len() <= cap + CAP_SLACK,
        "stdout is {} bytes, more than the cap of {cap} (+{CAP_SLACK} slack)\n{}",
        result.stdout.len(),
        result.report()
    );
    assert!(result.stdout.len() >= cap / 2, "the output stopped well before the cap of {cap}\n{}", result.report());
    assert!(
        result.stdout == flood_pattern(result.stdout.len()),
        "the delivered output is not what the app wrote\n{}",
        result.report()
    );
}

// Port I/O needs an app at CPL0; in ring3 it faults (see attacks.rs).
tests_in_modes!(
    [qemu_none, kvm_none, qemu_mpk_aslr]
    fn port_garbage_from_the_app_cannot_hurt_the_vmm(mode) {
        // With the app at CPL0 it can talk to the VMM's ports directly. Its first byte on the console
        // port that is no authenticated frame ends the run as tampering (status 159), promptly, without
        // a panic, and nothing after it is forwarded: the honest write at the end never arrives.
        let result = SecureRun::new(mode).options(["--timeout", "30"]).run(&asm("port_garbage"), &[]);
        assert_no_panic(&result);
        assert_status(&result, TAMPERING);
        assert_stderr_contains(&result, "secure-run: tampering:");
        assert!(!result.stdout_text().contains("survived the garbage"), "{}", result.report());
    }
);

// Port I/O needs an app at CPL0; in ring3 it faults (see attacks.rs).
tests_in_modes!(
    [qemu_none, kvm_none, qemu_mpk_aslr]
    fn guest_stopping_without_a_status_is_tampering(mode) {
        // The app writes the exit port itself, in the middle of a forged frame, with no status frame.
        let result = SecureRun::new(mode).options(["--timeout", "30"]).run(&asm("port_stop_silent"), &[]);
        assert_status(&result, TAMPERING);
        assert!(result.stdout.starts_with(b"stopping\n"), "output before the stop should arrive\n{}", result.report());
        assert_stderr_contains(&result, "secure-run: tampering:");
        assert_no_panic(&result);
    }
);

#[test]
fn zero_address_detection() {
    assert!(mentions_address_zero("SIGSEGV: write to 0x0 (unmapped)"));
    assert!(mentions_address_zero("address 0x0000000000000000, rip 0x401000"));
    assert!(!mentions_address_zero("rip 0x0040100a"));
    assert!(!mentions_address_zero("0x"));
}
