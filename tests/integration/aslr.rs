//! Issue "ASLR": what `--aslr` and `--seed` promise, checked on real boots.

use std::collections::HashSet;

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

/// One `--print-layout` region line: `  0xSTART-0xEND perms phys ... NAME`.
fn regions(stderr: &str) -> Vec<(u64, u64, String)> {
    stderr
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let (range, rest) = line.split_once(' ')?;
            let (start, end) = range.split_once('-')?;
            let parse = |text: &str| u64::from_str_radix(text.strip_prefix("0x")?, 16).ok();
            let name = rest.rsplit("  ").next()?.trim().to_owned();
            Some((parse(start)?, parse(end)?, name))
        })
        .collect()
}

tests_in_modes!(
    [qemu_mpk]
    fn thirty_boots_never_reuse_or_overlap_bases(mode) {
        let mut kernel_bases = HashSet::new();
        let mut app_bases = HashSet::new();
        for seed in 100..130u64 {
            let result = SecureRun::new(mode)
                .options(["--aslr", "--print-layout", "--seed", &seed.to_string()])
                .run(&addresses_app(), &[]);
            assert_status(&result, 0);
            let mut regions = regions(&result.stderr);
            assert!(regions.len() >= 8, "too few regions in --print-layout:\n{}", result.stderr);
            let kernel = regions.iter().filter(|(_, _, name)| name.starts_with("kernel ") && !name.contains("physical")).map(|r| r.0).min();
            let app = regions.iter().filter(|(_, _, name)| name == "app segment").map(|r| r.0).min();
            assert!(kernel_bases.insert(kernel.expect("a kernel region")), "kernel base repeated (seed {seed})");
            assert!(app_bases.insert(app.expect("an app region")), "app base repeated (seed {seed})");
            regions.sort();
            for pair in regions.windows(2) {
                assert!(pair[0].1 <= pair[1].0, "regions overlap (seed {seed}): {:?} and {:?}", pair[0], pair[1]);
            }
        }
    }
);

tests_in_modes!(
    [qemu_mpk]
    fn print_layout_reports_the_entropy_targets(mode) {
        let result = SecureRun::new(mode).options(["--aslr", "--print-layout"]).run(&addresses_app(), &[]);
        assert_status(&result, 0);
        let line = result.stderr.lines().find(|line| line.contains("entropy (bits)")).expect("an entropy line");
        let bits = |name: &str| -> u32 {
            let after = line.split(name).nth(1).unwrap_or_else(|| panic!("no {name} in {line}"));
            after.trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
        };
        // Issue "ASLR" targets at the default memory size.
        assert!(bits("kernel base") >= 30, "{line}");
        assert!(bits("app base") >= 30, "{line}");
        assert!(bits("stack") >= 30, "{line}");
        assert!(bits("mmap base") >= 28, "{line}");
        assert!(bits("brk") >= 28, "{line}");
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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let app = guest(Toolchain::Asm, "null_write");
        let result = SecureRun::new(mode)
            .options(["--aslr", "--seed", "42", "--report", path.to_str().unwrap()])
            .run(&app, &[]);
        assert_status(&result, 139);
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
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
