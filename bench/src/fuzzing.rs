//! Fuzzing throughput on one target (`tests/guests/c/fuzz_target.c`, built with `afl-clang-fast
//! -static`), side by side: AFL++'s own forkserver with the target run natively, `secure-run --afl`
//! under afl-fuzz (KVM ring3, QEMU mpk), and one plain secure-run process per input; plus the KVM
//! executor driven directly through the forkserver protocol, with its per-execution reset cost.
//! Draws `fuzzing-campaign.svg`: execs/s and corpus size over the KVM campaign (afl-fuzz's plot_data).

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plotters::prelude::*;

use crate::stats::Summary;
use crate::suite::Cell;
use crate::Options;

/// One row of the throughput table.
#[derive(Clone, Debug)]
pub struct FuzzRow {
    pub label: String,
    /// Executions per second.
    pub execs_per_sec: Cell,
    /// What the number comes from.
    pub how: String,
}

/// The KVM executor driven directly.
#[derive(Clone, Debug)]
pub struct ExecutorRow {
    /// `--afl-snapshot`.
    pub snapshot: &'static str,
    pub executions: u64,
    pub per_execution_ms: f64,
    pub reset_us: f64,
    pub dirty_pages: u64,
}

#[derive(Clone, Debug)]
pub struct FuzzResults {
    pub rows: Vec<FuzzRow>,
    pub executor: Vec<Result<ExecutorRow, String>>,
}

/// afl-fuzz's environment for an unattended run on a shared machine.
fn afl_env(command: &mut Command) {
    for (key, value) in [
        ("AFL_NO_UI", "1"),
        ("AFL_SKIP_CPUFREQ", "1"),
        ("AFL_NO_AFFINITY", "1"),
        ("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1"),
        ("AFL_FORKSRV_INIT_TMOUT", "60000"),
    ] {
        command.env(key, value);
    }
}

/// A campaign's numbers: execs/s from fuzzer_stats, and plot_data's (seconds, execs/s, corpus) rows.
struct Campaign {
    execs_per_sec: f64,
    total_execs: u64,
    plot: Vec<(f64, f64, f64)>,
}

/// Runs `afl-fuzz -V seconds -- target... @@` from a one-seed corpus: one instance, or `instances`
/// at once (`-M main`, `-S second`, ...) sharing one output directory, each with its own target process.
fn campaigns(target: &[OsString], seconds: u64, instances: usize) -> Result<Vec<Campaign>, String> {
    let dir = std::env::temp_dir().join(format!("secure-run-bench-afl-{}-{seconds}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (inputs, findings) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(&inputs).map_err(|error| error.to_string())?;
    std::fs::write(inputs.join("seed"), b"hello").map_err(|error| error.to_string())?;
    let names: Vec<String> = if instances == 1 {
        vec!["default".into()]
    } else {
        (0..instances).map(|index| if index == 0 { "main".into() } else { format!("second{index}") }).collect()
    };
    let mut children = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let mut command = Command::new("afl-fuzz");
        command.arg("-i").arg(&inputs).arg("-o").arg(&findings);
        if instances > 1 {
            command.args([if index == 0 { "-M" } else { "-S" }, name]);
        }
        command
            .args(["-V", &seconds.to_string(), "-t", "10000", "--"])
            .args(target)
            .arg("@@")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        afl_env(&mut command);
        children.push(command.spawn().map_err(|error| format!("cannot run afl-fuzz (Debian package afl++): {error}"))?);
    }
    let outputs: Vec<_> = children.into_iter().map(std::process::Child::wait_with_output).collect();
    let mut results = Vec::new();
    for (name, output) in names.iter().zip(outputs) {
        let output = output.map_err(|error| error.to_string())?;
        let stats = std::fs::read_to_string(findings.join(name).join("fuzzer_stats")).map_err(|_| {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("").trim().to_string();
            format!("afl-fuzz wrote no stats ({}): {last}", output.status)
        })?;
        let stat = |key: &str| {
            stats.lines().find_map(|line| {
                let (key_here, value) = line.split_once(':')?;
                (key_here.trim() == key).then(|| value.trim().to_string())
            })
        };
        let total_execs: u64 = stat("execs_done").and_then(|value| value.parse().ok()).unwrap_or(0);
        let run_time: f64 = stat("run_time").and_then(|value| value.parse().ok()).unwrap_or(seconds as f64);
        let plot_data = std::fs::read_to_string(findings.join(name).join("plot_data")).unwrap_or_default();
        let plot = plot_data
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let fields: Vec<f64> =
                    line.split(',').map(|field| field.trim().trim_end_matches('%').parse().unwrap_or(0.0)).collect();
                // relative_time, cycles_done, cur_item, corpus_count, ..., execs_per_sec (index 10).
                Some((*fields.first()?, *fields.get(10)?, *fields.get(3)?))
            })
            .collect();
        if total_execs == 0 {
            return Err("afl-fuzz ran no executions".into());
        }
        // execs_done over the run time, as AFL++ itself reports it at the end (fuzzer_stats'
        // execs_per_sec is a recent-window figure in some versions).
        results.push(Campaign { execs_per_sec: total_execs as f64 / run_time.max(1.0), total_execs, plot });
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(results)
}

/// One campaign of one instance.
fn campaign(target: &[OsString], seconds: u64) -> Result<Campaign, String> {
    campaigns(target, seconds, 1)?.pop().ok_or_else(|| "no campaign".into())
}

fn secure_run_afl(options: &Options, backend: &str, isolation: &str, app: &Path) -> Vec<OsString> {
    [options.secure_run.as_os_str(), "--afl".as_ref(), "--backend".as_ref(), backend.as_ref()]
        .into_iter()
        .chain(["--isolation".as_ref(), isolation.as_ref(), app.as_os_str()])
        .map(OsString::from)
        .collect()
}

/// One plain secure-run per input: executions per second from the median run.
fn process_per_input(options: &Options, backend: &str, isolation: &str, app: &Path, runs: usize) -> Cell {
    let dir = std::env::temp_dir().join(format!("secure-run-bench-input-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join("input"), b"hello")).is_err() {
        return Cell::Failed("cannot write the input file".into());
    }
    let mount = format!("{}:/in:ro", dir.display());
    let mut rates = Vec::new();
    for _ in 0..=runs {
        let started = Instant::now();
        let status = Command::new(&options.secure_run)
            .args(["--backend", backend, "--isolation", isolation, "--mount", &mount])
            .arg(app)
            .arg("/in/input")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => rates.push(1.0 / started.elapsed().as_secs_f64()),
            Ok(status) => return Cell::Failed(format!("secure-run exited with {status}")),
            Err(error) => return Cell::Failed(format!("cannot run secure-run: {error}")),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    // The first run warms caches up.
    Summary::of(&rates[1..]).map_or_else(|| Cell::Failed("no runs".into()), Cell::Value)
}

/// The KVM executor driven through the forkserver protocol: `executions` inputs, then its own summary.
fn drive_executor(options: &Options, app: &Path, snapshot: &str, executions: u64) -> Result<ExecutorRow, String> {
    use vmm::afl::forkserver::Fuzzer;
    let dir = std::env::temp_dir().join(format!("secure-run-bench-drive-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|error| error.to_string())?;
    let input = dir.join(".cur_input");
    std::fs::write(&input, b"hello").map_err(|error| error.to_string())?;
    let mut command = Command::new(&options.secure_run);
    command
        .args(["--afl", "--afl-snapshot", snapshot, "--verbose", "--backend", "kvm", "--isolation", "ring3"])
        .arg(app)
        .arg(&input)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut fuzzer = Fuzzer::spawn(&mut command).map_err(|error| format!("cannot start secure-run: {error}"))?;
    let timeout = Duration::from_secs(60);
    let mut stderr = fuzzer.child().stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(stderr) = stderr.as_mut() {
            let _ = std::io::Read::read_to_string(stderr, &mut text);
        }
        text
    });
    let result = (|| -> std::io::Result<()> {
        fuzzer.read_word(timeout)?;
        for index in 0..executions {
            std::fs::write(&input, format!("input {index}"))?;
            fuzzer.request(false, timeout)?;
            fuzzer.read_word(timeout)?;
        }
        Ok(())
    })();
    let status = fuzzer.finish();
    let stderr = reader.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|error| format!("driving the executor failed: {error}: {}", stderr.trim()))?;
    status.map_err(|error| error.to_string())?;
    // "secure-run: afl: N executions, median 24.1ms each (request to status); reset from the snapshot:
    // median 95.9µs, 36 pages"
    let line = stderr.lines().find(|line| line.starts_with("secure-run: afl:")).ok_or("no summary from --verbose")?;
    let number_after = |key: &str| -> Option<(f64, String)> {
        let rest = line.split(key).nth(1)?.trim_start();
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let unit: String = rest[end..].chars().take_while(|c| c.is_alphabetic() || *c == 'µ').collect();
        Some((rest[..end].parse().ok()?, unit))
    };
    let in_ms = |(value, unit): (f64, String)| match unit.as_str() {
        "s" => value * 1000.0,
        "ms" => value,
        "µs" => value / 1000.0,
        "ns" => value / 1e6,
        _ => value,
    };
    let per_execution_ms = number_after("median").map(in_ms).ok_or("no median in the summary")?;
    let reset_us = number_after("snapshot: median").map(in_ms).map(|ms| ms * 1000.0).unwrap_or(0.0);
    let dirty_pages = line.rsplit(", ").next().and_then(|tail| tail.split(' ').next()?.parse().ok()).unwrap_or(0);
    Ok(ExecutorRow { snapshot: "", executions, per_execution_ms, reset_us, dirty_pages })
}

/// Runs the fuzzing benchmarks; `kvm_usable` says whether the KVM rows can run.
pub fn run(options: &Options, kvm_usable: bool, chart: &Path) -> FuzzResults {
    let campaign_seconds = if options.quick { (10, 15) } else { (30, 40) };
    let failed_all = |reason: String| FuzzResults {
        rows: vec![FuzzRow { label: "all".into(), execs_per_sec: Cell::Failed(reason.clone()), how: String::new() }],
        executor: vec![Err(reason)],
    };
    let built =
        crate::guests::build(&crate::guests::FUZZ_TARGET, &options.root.join("bench/guests"), &options.guest_dir);
    let app = match built.map_err(|error| format!("{error} (afl-clang-fast: Debian package afl++)")) {
        Ok(app) => app,
        Err(reason) => return failed_all(reason),
    };
    let mut rows = Vec::new();
    let mut value = |label: &str, how: String, result: Result<f64, String>| {
        let execs_per_sec = match result {
            Ok(rate) => Summary::of(&[rate]).map_or_else(|| Cell::Failed("no value".into()), Cell::Value),
            Err(reason) => Cell::Failed(reason),
        };
        rows.push(FuzzRow { label: label.into(), execs_per_sec, how });
    };
    eprintln!("bench: fuzzing, native AFL++ forkserver");
    let native = campaign(&[app.clone().into()], campaign_seconds.0);
    value(
        "native AFL++ forkserver",
        format!("afl-fuzz -V {}, the target run natively", campaign_seconds.0),
        native.as_ref().map(|c| c.execs_per_sec).map_err(Clone::clone),
    );
    eprintln!("bench: fuzzing, secure-run --afl, KVM ring3");
    let kvm = if kvm_usable {
        campaign(&secure_run_afl(options, "kvm", "ring3", &app), campaign_seconds.1)
    } else {
        Err("KVM is not usable here".into())
    };
    value(
        "secure-run --afl, KVM ring3",
        format!("afl-fuzz -V {}", campaign_seconds.1),
        kvm.as_ref().map(|c| c.execs_per_sec).map_err(Clone::clone),
    );
    if let Ok(kvm) = &kvm {
        if let Err(error) = campaign_chart(&kvm.plot, kvm.total_execs, chart) {
            eprintln!("bench: cannot draw {}: {error}", chart.display());
        }
    }
    eprintln!("bench: fuzzing, two secure-run --afl executors (-M/-S), KVM ring3");
    let two = if kvm_usable {
        campaigns(&secure_run_afl(options, "kvm", "ring3", &app), campaign_seconds.1, 2)
            .map(|both| both.iter().map(|campaign| campaign.execs_per_sec).sum())
    } else {
        Err("KVM is not usable here".into())
    };
    value(
        "two secure-run --afl executors (-M main, -S second), KVM ring3, together",
        format!("afl-fuzz -V {} each, at once", campaign_seconds.1),
        two,
    );
    eprintln!("bench: fuzzing, secure-run --afl, QEMU mpk");
    let qemu = campaign(&secure_run_afl(options, "qemu", "mpk", &app), campaign_seconds.1);
    value("secure-run --afl, QEMU mpk", format!("afl-fuzz -V {}", campaign_seconds.1), qemu.map(|c| c.execs_per_sec));
    let runs = if options.quick { 5 } else { 20 };
    eprintln!("bench: fuzzing, one secure-run process per input");
    for (backend, isolation, label) in
        [("kvm", "ring3", "secure-run per input, KVM ring3"), ("qemu", "mpk", "secure-run per input, QEMU mpk")]
    {
        let cell = if backend == "kvm" && !kvm_usable {
            Cell::NotApplicable("KVM is not usable here".into())
        } else {
            process_per_input(options, backend, isolation, &app, runs)
        };
        rows.push(FuzzRow {
            label: label.into(),
            execs_per_sec: cell,
            how: format!("{runs} runs, 1 / median wall time"),
        });
    }
    eprintln!("bench: fuzzing, the KVM executor driven directly");
    let executor = ["startup", "entry"]
        .into_iter()
        .map(|snapshot| {
            if !kvm_usable {
                return Err("KVM is not usable here".into());
            }
            let row = drive_executor(options, &app, snapshot, if options.quick { 50 } else { 300 })?;
            Ok(ExecutorRow { snapshot, ..row })
        })
        .collect();
    FuzzResults { rows, executor }
}

/// execs/s and corpus size over the campaign, one above the other.
fn campaign_chart(plot: &[(f64, f64, f64)], total_execs: u64, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    if plot.is_empty() {
        return Err("afl-fuzz wrote no plot_data rows".into());
    }
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let (upper, lower) = root.split_vertically(240);
    let t_max = plot.iter().map(|row| row.0).fold(1.0_f64, f64::max);
    for (area, title, pick, color) in [
        (&upper, format!("secure-run --afl, KVM ring3: execs/s ({total_execs} executions)"), 1usize, BLUE),
        (&lower, "corpus size (paths)".to_string(), 2, RED),
    ] {
        let value = |row: &(f64, f64, f64)| if pick == 1 { row.1 } else { row.2 };
        let y_max = plot.iter().map(value).fold(1.0_f64, f64::max) * 1.2;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..t_max, 0.0..y_max)?;
        chart.configure_mesh().x_desc("seconds into the campaign").draw()?;
        chart.draw_series(LineSeries::new(plot.iter().map(|row| (row.0, value(row))), color.stroke_width(2)))?;
    }
    root.present()?;
    Ok(())
}
