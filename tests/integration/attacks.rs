//! The `mpk` and `ring3` claims of threat-model.md, checked by attack, and its hostile-guest claims.
//!
//! - The attack corpus (`eval/src/corpus.rs`, guests in `tests/guests/attacks/`): one test per attack and
//!   mode, `attacks::<attack>::<mode>`, asserting the status, how far the attack got (stdout) and the
//!   crash report or refusal (stderr). Every attack has a `qemu_none` test too: without isolation the
//!   attack gets through or ends differently, so each isolation claim has a contrast. The same table
//!   drives `cargo run --release -p eval`, which writes the matrix to docs/security.md.
//! - `hostile_guest`: a CPL0 app forging the kernel's console frames, and absurd boot requests. The
//!   VMM must never panic, hang or trust what it reads.
//!
//! Kernel addresses come from the `secure-run --report` JSON of one run (the layout is fixed without
//! `--aslr`) and the kernel gates from the embedded kernel ELF, so nothing here hard-codes an address.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use eval::corpus::{attack, Targets};
use eval::kernel::{kernel_gates, layout_from_report, lowest_load_address, Gate};

use crate::common::*;

/// Where the attack guests are built: beside the other guests.
fn guests_out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests").join("attacks")
}

/// The attack guest `name`, built once per test process.
fn attack_guest(name: &str) -> PathBuf {
    static BUILD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serialized = BUILD_LOCK.lock().unwrap_or_else(|poison| poison.into_inner());
    eval::guests::build_attack_guest(name, &guests_out_dir()).unwrap_or_else(|error| panic!("{error}"))
}

/// The kernel's regions (from the `--report` of one run) and its gates at their run-time addresses.
fn targets() -> &'static Targets {
    static TARGETS: OnceLock<Targets> = OnceLock::new();
    TARGETS.get_or_init(|| {
        let probe = attack_guest(eval::guests::LAYOUT_PROBE);
        let (result, report) = SecureRun::new(Mode::named("qemu_none")).run_reporting(&probe, &[]);
        assert_status(&result, 0);
        let regions = layout_from_report(&report).unwrap_or_else(|error| panic!("{error}\n{report}"));
        assert!(!regions.is_empty(), "the --report lists no regions\n{report}\n{}", result.report());
        let kernel = vmm::run::EMBEDDED_KERNEL;
        let base = isolation::layout::FIXED_KERNEL_BASE - lowest_load_address(kernel).expect("kernel ELF");
        let gates = kernel_gates(kernel)
            .expect("kernel ELF")
            .into_iter()
            .map(|gate| Gate { link_address: base + gate.link_address, ..gate })
            .collect();
        Targets { regions, gates }
    })
}

/// This machine as the corpus's host-dependent expectations see it (probed once).
fn host() -> eval::Host {
    static HOST: OnceLock<eval::Host> = OnceLock::new();
    *HOST.get_or_init(|| eval::Host::current(vmm::backend::probe_kvm().cpl0_emulated))
}

/// Runs the corpus attack `name` in `mode` and asserts its expectation there.
#[track_caller]
fn check_attack(name: &str, mode: Mode) -> RunResult {
    let attack = attack(name);
    let eval_mode = eval::Mode::new(
        match mode.backend {
            run::Backend::Qemu => eval::Backend::Qemu,
            run::Backend::Kvm => eval::Backend::Kvm,
        },
        match mode.isolation {
            run::Isolation::Mpk => eval::Isolation::Mpk,
            run::Isolation::Ring3 => eval::Isolation::Ring3,
            run::Isolation::None => eval::Isolation::None,
        },
    );
    let expect = attack
        .expected(eval_mode, host())
        .unwrap_or_else(|| panic!("{name} has no expectation for {mode:?} on this host"));
    let args = attack.resolve_args(targets()).unwrap_or_else(|error| panic!("{error}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let timeout: &[&str] = if attack.options.contains(&"--timeout") { &[] } else { &["--timeout", "60"] };
    let result = SecureRun::new(mode)
        .options(attack.options)
        .options(timeout)
        .stdin(attack.stdin)
        .run(&attack_guest(attack.guest), &args);
    assert_no_panic(&result);
    if let Err(why) = expect.check(result.status, &result.stdout_text(), &result.stderr) {
        panic!("attack {name} in {mode:?}: {why}\n{}", result.report());
    }
    result
}

/// One test per mode for the corpus attack of the same name: `attacks::<name>::<mode>`.
macro_rules! attack_test {
    ($name:ident) => {
        tests_in_modes!([qemu_mpk, kvm_ring3, qemu_ring3, qemu_none] fn $name(mode) {
            check_attack(stringify!($name), mode);
        });
    };
}

// 1. Kernel memory: rodata (key 1), data (key 2).
attack_test!(read_kernel_rodata);
attack_test!(read_kernel_data);
// 2.
attack_test!(write_kernel_data);
// 3. The physical map of all RAM, page tables included (key 3).
attack_test!(read_physical_map);
// 4. Descriptor tables: read-only supervisor pages in every mode, `none` included.
attack_test!(write_gdt);
attack_test!(write_idt);
// 5.–7. Forbidden instructions in the app's own code.
attack_test!(wrpkru_in_code);
attack_test!(xrstor_in_code);
attack_test!(xrstor_in_code_strict);
attack_test!(mov_to_cr4);
attack_test!(mov_to_cr4_strict);
// 7b. Guarded code (isolation::guard): hidden instructions, crowded pages, disarming and evasion attempts.
attack_test!(hidden_mov_to_cr3);
attack_test!(hidden_wrpkru);
attack_test!(crowded_guarded_page);
attack_test!(disarm_debug_registers);
attack_test!(iretq_with_rf);
attack_test!(mov_ss_shadow);
// 8.–9. Forbidden instructions made at run time.
attack_test!(mmap_wx_wrpkru);
attack_test!(mprotect_wx_wrpkru);
// 10. The kernel's own gates with forged registers.
attack_test!(jump_to_exit_gate);
attack_test!(jump_to_entry_gate);
attack_test!(jump_to_entry_gate_under_timer);
attack_test!(jump_to_exception_entry_gate);
// 11. Kernel pointers as system-call buffers, and the direct load that shows the address is mapped.
attack_test!(kernel_pointer_syscall);
attack_test!(kernel_pointer_direct);
// 11b. A second thread changing a syscall buffer while the kernel uses it.
attack_test!(racing_thread);
// 12. Privileged instructions.
attack_test!(privileged_instructions);
// 13. rt_sigreturn with forged frames: flags, segments, RIP, FPU state.
attack_test!(forged_sigreturn_flags);
attack_test!(forged_sigreturn_segments);
attack_test!(forged_sigreturn_rip);
attack_test!(forged_sigreturn_fpu);
// 14. Forged verdicts through the console and exit ports (docs/security.md, "Verdicts").
attack_test!(forged_exit_status);
attack_test!(forged_stdout_frame);
attack_test!(forged_crash_record);
attack_test!(stop_without_verdict);
attack_test!(steal_console_key);

/// The XRSTOR attack sizes its XSAVE area from CPUID leaf 0xD at run time. Natively, in a host process,
/// XRSTOR runs under the host kernel's XCR0 — the same configuration the nested KVM's CPL3 code runs
/// under — so this checks the sizing on whatever CPU runs the suite (AVX-512 and AMX tile state make the
/// area far larger than on CPUs without them). No VM needed.
#[test]
fn xrstor_guest_sizes_its_area_for_this_cpu() {
    let result = run_native(&attack_guest("xrstor_in_code"), &[], &[], None);
    if host().os_xsave {
        assert_output(&result, 0, b"XRSTOR\nXRSTOR executed\n");
    } else {
        assert_status(&result, 128 + 4);
    }
}

/// The corpus table itself holds together (every attack has a guest and an expectation in every mode
/// above). No VM needed.
#[test]
fn corpus_covers_every_tested_mode() {
    for attack in eval::ATTACKS {
        for mode in ["qemu_mpk", "kvm_ring3", "qemu_ring3", "qemu_none"] {
            let (backend, isolation) = mode.split_once('_').expect("BACKEND_ISOLATION");
            let backend = if backend == "kvm" { eval::Backend::Kvm } else { eval::Backend::Qemu };
            let isolation = match isolation {
                "mpk" => eval::Isolation::Mpk,
                "ring3" => eval::Isolation::Ring3,
                _ => eval::Isolation::None,
            };
            for host in eval::Host::every_kind() {
                let expect = attack.expected(eval::Mode::new(backend, isolation), host);
                assert!(expect.is_some(), "{} in {mode} on {host:?}", attack.name);
            }
        }
    }
}

/// The threat model's "the VMM treats the whole guest as hostile" (threat-model.md V1), for what
/// `boot.rs` does not already cover (console floods and port garbage are there).
mod hostile_guest {
    use kernel_abi::exit_code::{TAMPERING, USAGE};

    use super::*;

    // A CPL0 app (`none`, and `mpk`, where the app is at CPL0 too) writes a crash frame of garbage values
    // in the old, key-less format to the console port, then prints a line and exits 7. The frame carries
    // no console key: secure-run reports tampering (status 159), no crash, and drops what came after,
    // without panicking.
    tests_in_modes!([qemu_none, qemu_mpk, kvm_none] fn forged_crash_frame_is_reported_as_tampering(mode) {
        let result = SecureRun::new(mode).options(["--timeout", "30"]).run(&attack_guest("forged_crash_frame"), &[]);
        assert_no_panic(&result);
        assert_status(&result, TAMPERING);
        assert_stderr_contains(&result, "secure-run: tampering: the app forged the kernel's console channel");
        assert_stderr_contains(&result, "a forged crash frame");
        assert!(!result.stderr.contains("the guest kernel faulted"), "{}", result.report());
        assert!(!result.stdout_text().contains("sent a forged crash frame"), "{}", result.report());
    });

    // The same frame one byte short: tampering too (its length is no crash record's), reported as such.
    tests_in_modes!([qemu_none, qemu_mpk] fn crash_frame_of_the_wrong_length_is_tampering(mode) {
        let result =
            SecureRun::new(mode).options(["--timeout", "30"]).run(&attack_guest("forged_crash_frame"), &["w"]);
        assert_no_panic(&result);
        assert_status(&result, TAMPERING);
        assert_stderr_contains(&result, "a crash frame header of the wrong size (183 bytes)");
        assert!(!result.stdout_text().contains("sent a forged crash frame"), "{}", result.report());
    });

    // The `--report` JSON names the tampering, and a run that forged nothing has none.
    tests_in_modes!([qemu_mpk] fn the_report_names_the_tampering(mode) {
        let (result, report) = SecureRun::new(mode).run_reporting(&attack_guest("stop_without_verdict"), &[]);
        assert_status(&result, TAMPERING);
        let json: serde_json::Value = serde_json::from_str(&report).expect("JSON");
        assert_eq!(json["exit_code"], TAMPERING, "{report}");
        assert_eq!(json["tampering"]["kind"], "stop_without_verdict", "{report}");
        assert!(json["crash"].is_null(), "{report}");
        let (result, report) = SecureRun::new(mode).run_reporting(&attack_guest(eval::guests::LAYOUT_PROBE), &[]);
        assert_status(&result, 0);
        let json: serde_json::Value = serde_json::from_str(&report).expect("JSON");
        assert!(json["tampering"].is_null(), "{report}");
    });

    #[test]
    fn absurd_boot_requests_are_usage_errors() {
        let probe = attack_guest(eval::guests::LAYOUT_PROBE);
        let probe = probe.to_str().expect("UTF-8 path");
        for options in [["--memory", "100G"], ["--memory", "1K"], ["--timeout", "-1"]] {
            let result = run(&[options[0], options[1], probe]);
            assert_no_panic(&result);
            assert_status(&result, USAGE);
        }
    }
}

/// Programs started inside the guest pass the same inspection as the first one (threat-model.md M10).
mod exec {
    use super::*;

    // In `mpk`, execve of a program whose code holds WRPKRU fails with EACCES and a line naming the
    // instruction; the calling program goes on. In `ring3` (where inspection is off: the app cannot use what
    // it looks for) the same execve starts the program.
    tests_in_modes!([qemu_mpk, qemu_ring3] fn execve_inspects_the_new_program(mode) {
        let dir = tempfile::Builder::new().prefix("secure-run-exec-").tempdir().unwrap();
        std::fs::copy(attack_guest("wrpkru_in_code"), dir.path().join("wrpkru")).unwrap();
        let caller = guest(Toolchain::GccStatic, "spawn");
        // Its argument (the address it would read once the keys are open) is never used: it stops first.
        let args = ["exec_errno", "/m/wrpkru", "0"];
        let result = SecureRun::new(mode).mount(dir.path(), "/m", true).run(&caller, &args);
        assert_no_panic(&result);
        if mode.isolation == crate::common::run::Isolation::Mpk {
            // The new program runs guarded, up to its WRPKRU.
            assert_output(&result, 132, b"WRPKRU\n");
            assert_stderr_contains(&result, "guarded instruction WRPKRU at 0x");
            // glibc's code holds XRSTOR, which --strict-inspection refuses too: a musl caller.
            let musl_caller = guest(Toolchain::MuslStatic, "spawn");
            let strict = SecureRun::new(mode)
                .options(["--strict-inspection"])
                .mount(dir.path(), "/m", true)
                .run(&musl_caller, &args);
            assert_output(&strict, 0, b"execve /m/wrpkru: EACCES\n");
            assert_stderr_contains(&strict, "execve /m/wrpkru: its code contains WRPKRU");
        } else {
            assert!(!result.stdout_text().contains("execve /m/wrpkru:"), "{}", result.report());
        }
    });
}
