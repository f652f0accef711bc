//! What `--aslr` and `--seed` promise, checked on real boots; the layout comes from the `--report` JSON
//! (docs/report.md).

use std::collections::HashSet;

use eval::kernel::layout_from_report;

use crate::common::*;

/// A static PIE, so that the app's own base is randomized too.
fn addresses_app() -> std::path::PathBuf {
    guest(Toolchain::GccStaticPie, "aslr_addresses")
}

fn addresses(mode: Mode, seed: u64) -> RunResult {
    let result = SecureRun::new(mode).options(["--aslr", "--seed", &seed.to_string()]).run(&addresses_app(), &[]);
    assert_status(&result, 0);
    result
}

/// The value of each `name value` line.
fn fields(result: &RunResult) -> Vec<(String, String)> {
    result
        .stdout_text()
        .lines()
        .filter_map(|line| line.split_once(' ').map(|(name, value)| (name.to_owned(), value.to_owned())))
        .collect()
}

tests_in_modes!(
    [qemu_mpk, kvm_ring3]
    fn different_seeds_move_everything_and_a_seed_replays_exactly(mode) {
        let first = addresses(mode, 1);
        let again = addresses(mode, 1);
        let other = addresses(mode, 2);
        assert_eq!(first.stdout, again.stdout, "the same --seed must give byte-identical output");
        let (first, other) = (fields(&first), fields(&other));
        assert_eq!(first.len(), 5, "{first:?}");
        for ((name, a), (_, b)) in first.iter().zip(&other) {
            assert_ne!(a, b, "{name} did not move between seeds 1 and 2");
        }
    }
);

tests_in_modes!(
    [qemu_mpk]
    fn thirty_boots_never_reuse_or_overlap_bases(mode) {
        let mut kernel_bases = HashSet::new();
        let mut app_bases = HashSet::new();
        for seed in 100..130u64 {
            let (result, report) = SecureRun::new(mode)
                .options(["--aslr", "--seed", &seed.to_string()])
                .run_reporting(&addresses_app(), &[]);
            assert_status(&result, 0);
            let mut regions = layout_from_report(&report).unwrap_or_else(|error| panic!("{error}\n{report}"));
            assert!(regions.len() >= 8, "too few regions in the --report:\n{report}");
            let kernel = regions.iter().filter(|region| region.name.starts_with("kernel ") && !region.name.contains("physical")).map(|region| region.start).min();
            let app = regions.iter().filter(|region| region.name == "app segment").map(|region| region.start).min();
            assert!(kernel_bases.insert(kernel.expect("a kernel region")), "kernel base repeated (seed {seed})");
            assert!(app_bases.insert(app.expect("an app region")), "app base repeated (seed {seed})");
            regions.sort_by_key(|region| (region.start, region.end));
            for pair in regions.windows(2) {
                assert!(pair[0].end <= pair[1].start, "regions overlap (seed {seed}): {:?} and {:?}", pair[0], pair[1]);
            }
        }
    }
);

tests_in_modes!(
    [qemu_mpk]
    fn print_layout_reports_the_entropy_targets(mode) {
        let (result, report) =
            SecureRun::new(mode).options(["--aslr", "--print-layout"]).run_reporting(&addresses_app(), &[]);
        assert_status(&result, 0);
        // The text for people, and the same numbers for programs in the report.
        result.stderr.lines().find(|line| line.contains("entropy (bits)")).expect("an entropy line");
        let report: serde_json::Value = serde_json::from_str(&report).unwrap();
        let entropy = &report["layout"]["entropy_bits"];
        let bits = |name: &str| -> u64 { entropy[name].as_u64().unwrap_or_else(|| panic!("no {name} in {entropy}")) };
        // The ASLR targets (threat-model.md) at the default memory size.
        assert!(bits("kernel") >= 30, "{entropy}");
        assert!(bits("app") >= 30, "{entropy}");
        assert!(bits("stack") >= 30, "{entropy}");
        assert!(bits("mmap") >= 28, "{entropy}");
        assert!(bits("brk") >= 28, "{entropy}");
    }
);

tests_in_modes!(
    [qemu_none]
    fn without_aslr_the_layout_is_fixed(mode) {
        let run = || SecureRun::new(mode).run(&addresses_app(), &[]);
        let (first, second) = (run(), run());
        assert_status(&first, 0);
        let strip_random = |result: &RunResult| {
            fields(result).into_iter().filter(|(name, _)| name != "at_random").collect::<Vec<_>>()
        };
        assert_eq!(strip_random(&first), strip_random(&second), "addresses moved without --aslr");
    }
);

tests_in_modes!(
    [qemu_mpk]
    fn a_non_pie_app_with_aslr_gets_one_warning(mode) {
        let app = guest(Toolchain::GccStatic, "aslr_addresses");
        let result = SecureRun::new(mode).options(["--aslr"]).run(&app, &[]);
        assert_status(&result, 0);
        assert_eq!(result.stderr.matches("not position-independent").count(), 1, "{}", result.stderr);
    }
);

tests_in_modes!(
    [qemu_mpk]
    fn report_json_has_the_crash_the_layout_and_the_seed(mode) {
        let app = guest(Toolchain::Asm, "null_write");
        let (result, report) = SecureRun::new(mode).options(["--aslr", "--seed", "42"]).run_reporting(&app, &[]);
        assert_status(&result, 139);
        let report: serde_json::Value = serde_json::from_str(&report).unwrap();
        assert_eq!(report["version"], 1, "docs/report.md's version");
        assert_eq!(report["exit_code"], 139);
        assert_eq!(report["seed"], 42);
        assert_eq!(report["aslr"], true);
        assert_eq!(report["isolation"], "mpk");
        assert_eq!(report["crash"]["signal_name"], "SIGSEGV");
        assert_eq!(report["crash"]["fault_address"], 0);
        assert_eq!(report["crash"]["page_fault"]["access"], "write");
        let regions = report["layout"]["regions"].as_array().expect("layout regions");
        assert!(regions.iter().any(|region| region["name"] == "kernel text" && region["pkey"] == 1), "{regions:?}");
        assert!(report["layout"]["entropy_bits"]["kernel"].as_u64().unwrap() >= 30);
    }
);
