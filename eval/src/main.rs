//! `secure-run-eval` (`cargo run --release -p eval`): runs the attack corpus in every (backend,
//! isolation) mode this machine offers, prints the attack × mode matrix, and writes it to
//! `docs/security.md`. Exit status 0 when every outcome is the expected one, 1 otherwise.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use eval::corpus::Targets;
use eval::guests::{build_attack_guest, repo_root, LAYOUT_PROBE};
use eval::kernel::{kernel_gates, layout_from_report, lowest_load_address, Gate};
use eval::{classify, Backend, Isolation, Mode, Outcome, ATTACKS};

const COMMAND: &str = "cargo run --release -p eval";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("secure-run-eval: {message}");
            ExitCode::from(2)
        }
    }
}

/// What the machine offers.
struct Machine {
    modes: Vec<Mode>,
    notes: Vec<String>,
    /// KVM here is `kvm_pvm` (guest CPL3 code runs under the host's CR4, see `eval::Host`).
    kvm_is_pvm: bool,
}

fn probe() -> Machine {
    let mut notes = Vec::new();
    let mut modes = Vec::new();
    match vmm::backend::qemu_available() {
        Ok(_) => modes.extend([Isolation::Mpk, Isolation::Ring3, Isolation::None].map(|i| Mode::new(Backend::Qemu, i))),
        Err(why) => notes.push(format!("no QEMU: {why}")),
    }
    let kvm = vmm::backend::probe_kvm();
    notes.extend(kvm.notes.iter().cloned());
    if kvm.usable {
        if kvm.pku {
            modes.push(Mode::new(Backend::Kvm, Isolation::Mpk));
        } else {
            notes.push("KVM offers no protection keys: no kvm_mpk".to_owned());
        }
        modes.push(Mode::new(Backend::Kvm, Isolation::Ring3));
        if kvm.cpl0_emulated {
            notes.push("KVM emulates CPL0 code here: kvm_none left out (qemu_none is the baseline)".to_owned());
        } else {
            modes.push(Mode::new(Backend::Kvm, Isolation::None));
        }
    }
    modes.sort_by_key(|mode| (mode.isolation as u8, mode.backend as u8));
    Machine { modes, notes, kvm_is_pvm: kvm.usable && kvm.cpl0_emulated }
}

/// The secure-run binary: `$SECURE_RUN`, else built (release) into the same target directory.
fn secure_run() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("SECURE_RUN") {
        return Ok(PathBuf::from(path));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(repo_root())
        .args(["build", "--release", "-p", "vmm", "--bin", "secure-run"])
        .status()
        .map_err(|error| format!("cannot run cargo to build secure-run: {error}"))?;
    if !status.success() {
        return Err("building secure-run failed".to_owned());
    }
    let exe = std::env::current_exe().map_err(|error| error.to_string())?;
    Ok(exe.with_file_name("secure-run"))
}

struct Finished {
    status: i32,
    stdout: String,
    stderr: String,
}

fn execute(secure_run: &Path, args: &[String], stdin: &[u8]) -> Result<Finished, String> {
    let mut child = Command::new(secure_run)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", secure_run.display()))?;
    let mut pipe = child.stdin.take().expect("stdin is piped");
    // A guest that never reads closes the pipe: not an error.
    let _ = pipe.write_all(stdin);
    drop(pipe);
    let output = child.wait_with_output().map_err(|error| error.to_string())?;
    Ok(Finished {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// The kernel's regions (from the `--report` of one run of the layout probe, written into `guests`) and
/// its gates at their run-time addresses.
fn targets(secure_run: &Path, guests: &Path, mode: Mode) -> Result<Targets, String> {
    let probe = build_attack_guest(LAYOUT_PROBE, guests)?;
    let report = guests.join("layout-probe-report.json");
    // The kernel's layout is the same in every isolation mode without --aslr.
    let mut args: Vec<String> = ["--backend", mode.backend.name(), "--isolation", "none"].map(str::to_owned).to_vec();
    args.extend(["--report".to_owned(), report.display().to_string(), probe.display().to_string()]);
    let run = execute(secure_run, &args, b"")?;
    let json = std::fs::read_to_string(&report)
        .map_err(|error| format!("the layout probe wrote no --report ({error}):\n{}", run.stderr))?;
    let regions = layout_from_report(&json)?;
    if regions.is_empty() {
        return Err(format!("the --report of the layout probe lists no regions:\n{json}"));
    }
    let kernel = vmm::run::EMBEDDED_KERNEL;
    let base = isolation::layout::FIXED_KERNEL_BASE - lowest_load_address(kernel)?;
    let gates =
        kernel_gates(kernel)?.into_iter().map(|gate| Gate { link_address: base + gate.link_address, ..gate }).collect();
    Ok(Targets { regions, gates })
}

fn run() -> Result<bool, String> {
    let machine = probe();
    if machine.modes.is_empty() {
        return Err(format!("no backend can run here: {}", machine.notes.join("; ")));
    }
    let secure_run = secure_run()?;
    let guests = std::env::temp_dir().join(format!("secure-run-eval-guests-{}", std::process::id()));
    let targets = targets(&secure_run, &guests, machine.modes[0])?;

    let host = eval::Host::current(machine.kvm_is_pvm);
    let mut rows = Vec::new();
    let mut all_expected = true;
    for attack in ATTACKS {
        let binary = build_attack_guest(attack.guest, &guests)?;
        let attack_args = attack.resolve_args(&targets)?;
        let mut cells = Vec::new();
        for &mode in &machine.modes {
            let mut args: Vec<String> = mode.args().iter().map(|arg| (*arg).to_owned()).collect();
            args.extend(attack.options.iter().map(|option| (*option).to_owned()));
            if !attack.options.contains(&"--timeout") {
                args.extend(["--timeout".to_owned(), "60".to_owned()]);
            }
            args.push(binary.display().to_string());
            args.extend(attack_args.iter().cloned());
            let finished = execute(&secure_run, &args, attack.stdin)?;
            let outcome = classify(finished.status, &finished.stdout, &finished.stderr);
            let verdict = match attack.expected(mode, host) {
                Some(expect) => expect.check(finished.status, &finished.stdout, &finished.stderr),
                None => Err("no expectation".to_owned()),
            };
            if let Err(why) = &verdict {
                all_expected = false;
                eprintln!(
                    "UNEXPECTED {} in {}: {why}\n{}{}",
                    attack.name,
                    mode.name(),
                    finished.stdout,
                    finished.stderr
                );
            }
            eprintln!("{:<24} {:<11} {outcome}", attack.name, mode.name());
            cells.push(Cell { outcome, expected: verdict.is_ok(), host_dependent: attack.depends_on_host(mode) });
        }
        rows.push((attack, cells));
    }
    let _ = std::fs::remove_dir_all(&guests);

    let markdown = render(&machine, host, &rows);
    println!("{markdown}");
    let path = repo_root().join("docs").join("security.md");
    std::fs::write(&path, &markdown).map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    eprintln!("secure-run-eval: wrote {}", path.display());
    Ok(all_expected)
}

/// One attack in one mode.
struct Cell {
    outcome: Outcome,
    /// The outcome is the corpus's expectation for this mode on this host.
    expected: bool,
    /// The expectation for this mode depends on the host ([`eval::Attack::depends_on_host`]).
    host_dependent: bool,
}

type Row = (&'static eval::Attack, Vec<Cell>);

fn render(machine: &Machine, host: eval::Host, rows: &[Row]) -> String {
    let mut text = String::new();
    text.push_str("# Security evaluation: the attack matrix\n\n");
    text.push_str(&format!(
        "Generated by `{COMMAND}` on {} ({}). Do not edit by hand: rerun the command.\n\n",
        today(),
        machine_description(host)
    ));
    text.push_str(
        "Each attack is a small program in `tests/guests/attacks/` that tries ONE thing; each cell is how \
         the run ended in that `BACKEND_ISOLATION` mode. `none` is the baseline without isolation: what \
         gets through there (**ran to completion**) is what `mpk` and `ring3` stop. A ✗ marks an outcome \
         that differs from the corpus's expectation (`eval/src/corpus.rs`); the same expectations are the \
         integration tests `attacks::<attack>::<mode>` (`tests/integration/attacks.rs`).\n\n",
    );
    if !machine.notes.is_empty() {
        text.push_str("Machine notes:\n");
        for note in &machine.notes {
            text.push_str(&format!("- {note}\n"));
        }
        text.push('\n');
    }
    text.push_str("| attack | what it tries |");
    for mode in &machine.modes {
        text.push_str(&format!(" `{}` |", mode.name()));
    }
    text.push_str("\n|---|---|");
    for _ in &machine.modes {
        text.push_str("---|");
    }
    text.push('\n');
    for (attack, cells) in rows {
        text.push_str(&format!("| `{}` | {} |", attack.name, attack.what.replace('|', "\\|")));
        for cell in cells {
            let dependent = if cell.host_dependent { " ‡" } else { "" };
            let unexpected = if cell.expected { "" } else { " ✗" };
            text.push_str(&format!(" {}{dependent}{unexpected} |", cell.outcome));
        }
        text.push('\n');
    }
    let escapes: Vec<String> = machine
        .modes
        .iter()
        .enumerate()
        .map(|(column, mode)| {
            let count = rows.iter().filter(|(_, cells)| cells[column].outcome.escaped()).count();
            format!("`{}` {count}", mode.name())
        })
        .collect();
    text.push_str(&format!("\nAttacks that ran to completion, per mode: {}.\n", escapes.join(", ")));
    text.push_str(
        "\n‡ The expected outcome of this cell depends on the host, and was computed for this one (`eval::Host`, \
         from CPUID and the KVM kind; never from the machine the corpus was written on). On this host:\n",
    );
    for condition in eval::HostCondition::ALL {
        let holds = if host.holds(condition) { "yes" } else { "no" };
        text.push_str(&format!("- {}: **{holds}**\n", condition.describe()));
    }
    text.push_str(
        "\nWhere a condition does not hold (a hardware KVM, or a host OS without protection keys or XSAVE), \
         the same attack raises #UD in `kvm_ring3` (SIGILL, status 132) as in `qemu_ring3`.\n",
    );
    text.push_str(
        "\n`privileged_instructions` and `kernel_pointer_syscall` run to completion by design in some modes: at \
         CPL0 (`mpk`, `none`) CLI/STI, reading CR0 and port I/O are the app's to use and change no key or \
         paging state; `kernel_pointer_syscall` completes after the kernel refused both calls with EFAULT, \
         and `racing_thread` after every writev moved the app's bytes or failed with EFAULT (none moved \
         kernel bytes). \
         In `kvm_ring3` on a nested KVM that runs CPL3 code natively, WRPKRU and XRSTOR execute under the \
         host's configuration (WRPKRU only where the host OS turned protection keys on, else #UD); in \
         `ring3` no key protects the kernel (supervisor pages do), so that is not an escape. \
         `jump_to_entry_gate` in `mpk`: the gate's check accepts EAX = 0 (the kernel's PKRU), so \
         the jump is a system call with forged registers; the app loops re-entering until `--timeout`. \
         `forged_sigreturn_flags` and `forged_sigreturn_segments` run to completion in every mode by \
         design: the kernel ignored the forged fields, and the app prints what it resumed with (IOPL 0, \
         its own CPL), which the expectation checks.\n",
    );
    text.push_str(GUARDED_CODE);
    text.push_str(VERDICTS);
    text
}

/// The "Guarded code" section of docs/security.md: how `mpk` runs code that holds a forbidden sequence.
const GUARDED_CODE: &str = "
## Guarded code

In `mpk` the app runs at CPL0, so WRPKRU, MOV to CR0/CR3/CR4, LGDT, LIDT, WRMSR and WRMSRNS would defeat \
the isolation if they ever ran. A byte pair such as `0F 22` occurs by chance about once per 64 KiB of \
code, so nearly every large program (bash, zsh, busybox, every Go binary) holds one inside other \
instructions or data. Refusing them would make the default mode refuse most real software; instead the \
kernel makes sure none of them runs (threat-model.md M4, `kernel/src/arch/x86_64/guard.rs`, \
`isolation/src/guard.rs`):

- **Found everywhere.** Every executable byte is scanned at every offset at load, at `execve` and \
  whenever memory becomes executable (`mmap`/`mprotect` with PROT_EXEC): `hidden_mov_to_cr3` and \
  `hidden_wrpkru` hide one in the immediate of a benign MOV and jump into it.
- **Non-executable until reached.** The pages that hold an occurrence (and the page before, where its \
  prefixes may start) stay non-executable. When the app's execution reaches one, the instruction fetch \
  faults; the kernel makes the page executable and resumes the app with RFLAGS.TF set, a debug trap \
  after every instruction. Before each instruction runs, the kernel decodes it from the app's memory \
  and ends the app if it is a guarded one: a crash report naming the instruction and its address (SIGSEGV, \
  as a privileged instruction at CPL3; SIGILL for WRPKRU, as without keys), `crash.guarded` in \
  `--report`. Leaving the guarded pages turns TF off and makes them non-executable again, so the rest of \
  the program runs at full speed.
- **Single-stepping, not breakpoints.** Hardware breakpoints on the occurrences (DR0–DR3) would be both \
  limited (four per page) and escapable: IRETQ with RF set in the popped RFLAGS suppresses an instruction \
  breakpoint on its target (`iretq_with_rf`). The single-step trap has no such bypass and no count limit \
  (`crowded_guarded_page`: seven occurrences on one page). The kernel uses no debug register, so the app's \
  own MOV to DR disarms nothing (`disarm_debug_registers`).
- **What could delay the trap** is decoded too: MOV SS and POP SS (the trap comes after the next \
  instruction, which the kernel checks before it lets MOV SS run: `mov_ss_shadow`); XBEGIN (a debug \
  exception inside a transaction aborts it to the fallback without a trap, so the kernel performs the \
  abort and checks the fallback); prefixes (legacy, REX, REX2, up to the 15-byte limit); \
  IA32_DEBUGCTL.BTF (branch-only stepping: WRMSR is itself guarded, and the kernel clears DEBUGCTL each \
  time stepping begins); a jump from a stepped page into kernel text traps before the first kernel \
  instruction, and a debug trap in kernel text (other than the SYSCALL entry) ends the run.
- **`--strict-inspection`** refuses every occurrence at load instead (`mov_to_cr4_strict`), as ERIM does.

**Cost.** Each instruction on a guarded page costs a debug trap, a kernel entry and exit and a decode; \
code elsewhere costs nothing, and a page of its own holding an occurrence costs nothing either. A \
program whose hot loop shares a page with an occurrence runs that loop orders of magnitude slower; one \
that only passes through such pages (the tests' bash script) pays in proportion to the instructions it \
runs there. docs/performance.md measures each case (\"Guarded code\"). A later refinement could step \
whole branch-free runs at once with a breakpoint at their end. **Limits.** Where the \
CPU has RTM, an XBEGIN in the shadow of MOV SS ends the app (no compiler emits it). The scheme is proven \
on QEMU TCG here; this project's KVM offers no protection keys to guests, so `kvm_mpk` is untested here.
";

/// The "Verdicts" section of docs/security.md: what the console key guarantees, and where it does not.
const VERDICTS: &str = "
## Verdicts

In `mpk` and `none` the app runs at CPL0 and can write the VMM's two ports itself: the console port \
(0xe9, where the kernel sends stdout, stderr, the exit status and crash records as frames) and the exit \
port (0xf4). So that no app (and no fuzzing input) can forge the run's verdict, hide a crash or inject \
output as the kernel's, **the VMM never trusts a verdict the app could have produced itself**:

- **A per-boot secret.** For each boot the VMM draws a 128-bit console key from the OS's random number \
  generator (`getrandom`), never from `--seed` (which only reproduces the layout and the guest's \
  randomness, and is printed), and writes it into the boot info. The kernel copies it at its first \
  instruction into a static of its own data (protection key 2 in `mpk`, a supervisor page in `ring3`). \
  The boot info itself lies in the physical map (key 3 in `mpk`, supervisor in `ring3`), below the memory \
  the kernel hands out, so the app cannot read that copy either. The VMM keeps the key for the whole run; \
  under `--afl` one key serves the whole campaign: every execution restores the same kernel from the \
  snapshot, and the app learns the key in none of them, so an input cannot use what another one saw.
- **Every frame carries it.** A frame header is sync byte, stream, length and the 16 key bytes. The \
  kernel sends the header straight from its static with REP OUTSB, so no general-purpose register and no \
  stack ever holds the key after boot (the kernel is built without SSE); the app's registers at its first \
  instruction are all zero, and every return to the app restores all of them from the app's own values. \
  The key is a token, not a MAC: the kernel sends a header and its payload with interrupts off on the only \
  vCPU, so no app byte can come between them, and a forger has one guess: 128 bits make that 2^-128 (and \
  2^-88 over 2^40 fuzzing executions).
- **Anything else is tampering.** The VMM's decoder (`vmm/src/devices/console.rs`, both backends) takes a \
  frame only with the key, and the exit port only after an authenticated Exit or Crash frame. A header \
  with a wrong key, a byte outside any frame, an unknown stream, a verdict of the wrong size, a frame cut \
  off, a console-ring doorbell with no new flush (the kernel rings only with one, and waits for its \
  acknowledgment before the app runs again; the ring lies where the app cannot write it in `mpk` and \
  `ring3`), or a stop without a verdict is tampering: the VMM stops the guest at once, prints one line \
  (`secure-run: tampering: the app forged the kernel's console channel (...)`), sets `tampering` in the \
  `--report` JSON and exits 159 (128 + SIGSYS, counted as a crash like the other 128 + signal statuses; \
  under `--afl` the execution reports SIGSYS, a crash for afl-fuzz). Output that arrived authenticated \
  before is forwarded; nothing the app forged, and nothing after it, is.
- **Gate violations.** A PKRU gate that catches forged registers runs with the forger's PKRU in force, \
  where the key is out of reach, so its report is a key-less header of its own stream: the VMM reports it \
  as tampering of the kind `gate_violation` (the app either jumped into the gate or forged the report; \
  both are attacks on the kernel).
- **`ring3`**: the app is at CPL3 and an OUT faults (#GP, SIGSEGV): `forged_exit_status`, \
  `forged_stdout_frame`, `forged_crash_record` and `stop_without_verdict` end there.
- **`none` gives no verdict guarantee.** Without isolation the app reads the key (`steal_console_key` \
  finds the boot info in the physical map) and forges an authenticated stdout line and exit status 0, \
  which the VMM takes. Forgeries without the key are still caught there (the first four attacks above).
";

fn today() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|date| !date.is_empty())
        .unwrap_or_else(|| "unknown date".to_owned())
}

fn machine_description(host: eval::Host) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |count| count.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".to_owned(), |text| text.trim().to_owned());
    let on_off = |on: bool| if on { "on" } else { "off" };
    let kvm = if host.kvm_cpl3_under_host_cr4 { "kvm_pvm" } else { "hardware or no KVM" };
    format!(
        "{cpu}, {cores} cores, Linux {kernel}, KVM {kvm}, host protection keys {}, host XSAVE {}",
        on_off(host.os_protection_keys),
        on_off(host.os_xsave)
    )
}
