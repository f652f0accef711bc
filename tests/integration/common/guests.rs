//! Builds the guest programs in `tests/guests/` once per test run.
//!
//! Each (toolchain, guest) pair is built at most once per test process, on first use, into
//! `$CARGO_TARGET_TMPDIR/guests/<toolchain>/<name>`, and rebuilt only when its source, the shared C header
//! or this file is newer than the binary. A missing tool fails the test with the Debian package to
//! install: a guest that cannot be built must never turn into a silently skipped test.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

/// How a guest is built. The variants of one C source must all print the same thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Toolchain {
    /// `tests/guests/asm/*.S`: `gcc -nostdlib -static`, no libc, entry `_start`.
    Asm,
    /// `tests/guests/c/*.c`: `gcc -O2 -static` (glibc, ET_EXEC at a fixed address).
    GccStatic,
    /// `tests/guests/c/*.c`: `gcc -O2 -static-pie` (glibc, ET_DYN without an interpreter).
    GccStaticPie,
    /// `tests/guests/c/*.c`: `musl-gcc -O2 -static` (Debian's musl-tools).
    MuslStatic,
    /// `tests/guests/c/*.c`: plain `gcc -O2`, dynamically linked. Only for "refuses dynamic programs".
    GccDynamic,
    /// `tests/guests/asm/*.S`: `gcc -c`, a relocatable object (ET_REL). Only for "refuses objects".
    AsmObject,
    /// `tests/guests/rust/*.rs`: `rustc --target x86_64-unknown-linux-musl -O` (static PIE).
    RustMusl,
    /// `tests/guests/c/*.c`: `afl-clang-fast -O1 -static` (AFL++'s coverage instrumentation, glibc).
    AflClangFast,
}

/// The three builds every C guest gets.
pub const C_VARIANTS: [Toolchain; 3] = [Toolchain::GccStatic, Toolchain::GccStaticPie, Toolchain::MuslStatic];

impl Toolchain {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Asm => "asm",
            Self::GccStatic => "gcc-static",
            Self::GccStaticPie => "gcc-static-pie",
            Self::MuslStatic => "musl-static",
            Self::GccDynamic => "gcc-dynamic",
            Self::AsmObject => "asm-object",
            Self::RustMusl => "rust-musl",
            Self::AflClangFast => "afl-clang-fast",
        }
    }

    /// The source file of guest `name` for this toolchain.
    pub fn source(self, name: &str) -> PathBuf {
        let (dir, extension) = match self {
            Self::Asm | Self::AsmObject => ("asm", "S"),
            Self::GccStatic | Self::GccStaticPie | Self::MuslStatic | Self::GccDynamic | Self::AflClangFast => {
                ("c", "c")
            }
            Self::RustMusl => ("rust", "rs"),
        };
        guests_dir().join(dir).join(format!("{name}.{extension}"))
    }

    /// The compiler command line that turns `source` into `output`.
    fn command(self, source: &Path, output: &Path) -> Command {
        let (program, flags): (&str, &[&str]) = match self {
            Self::Asm => ("gcc", &["-nostdlib", "-static"]),
            Self::AsmObject => ("gcc", &["-c"]),
            Self::GccStatic => ("gcc", &["-O2", "-Wall", "-Wextra", "-static"]),
            Self::GccStaticPie => ("gcc", &["-O2", "-Wall", "-Wextra", "-static-pie"]),
            Self::MuslStatic => ("musl-gcc", &["-O2", "-Wall", "-Wextra", "-static"]),
            Self::GccDynamic => ("gcc", &["-O2", "-Wall", "-Wextra"]),
            Self::RustMusl => {
                ("rustc", &["--edition", "2021", "--target", "x86_64-unknown-linux-musl", "-O", "-C", "debuginfo=0"])
            }
            Self::AflClangFast => ("afl-clang-fast", &["-O1", "-static"]),
        };
        let mut command = Command::new(program);
        command.env("AFL_QUIET", "1");
        // From the repository root, so that rustup honours rust-toolchain.toml.
        command.current_dir(repo_root()).args(flags).arg("-o").arg(output).arg(source);
        command
    }

    /// What to install when the build fails to start or to link.
    fn install_hint(self) -> &'static str {
        match self {
            Self::Asm | Self::AsmObject | Self::GccDynamic => "install the Debian package `gcc`",
            Self::GccStatic | Self::GccStaticPie => {
                "install the Debian packages `gcc` and `libc6-dev` (static glibc: libc.a)"
            }
            Self::MuslStatic => "install the Debian package `musl-tools` (provides musl-gcc)",
            Self::RustMusl => {
                "install rustup and run `rustup target add x86_64-unknown-linux-musl` (rust-toolchain.toml lists it)"
            }
            Self::AflClangFast => "install the Debian package `afl++` (scripts/setup does)",
        }
    }
}

/// The repository root (the parent of the `vmm` package).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("vmm/ has a parent directory")
}

/// `tests/guests/`.
pub fn guests_dir() -> PathBuf {
    repo_root().join("tests").join("guests")
}

/// The built guest `name` for `toolchain`, building it first if needed. Panics (failing the test) with
/// the compiler's output and an install hint when the build fails.
pub fn guest(toolchain: Toolchain, name: &str) -> PathBuf {
    type Slot = Arc<OnceLock<Result<PathBuf, String>>>;
    static BUILDS: OnceLock<Mutex<HashMap<(Toolchain, String), Slot>>> = OnceLock::new();
    let slot: Slot = {
        let mut builds = BUILDS.get_or_init(Default::default).lock().unwrap_or_else(|poison| poison.into_inner());
        builds.entry((toolchain, name.to_owned())).or_default().clone()
    };
    // Different guests build in parallel; the same guest builds once, other users wait for it.
    match slot.get_or_init(|| build(toolchain, name)) {
        Ok(path) => path.clone(),
        Err(message) => panic!("{message}"),
    }
}

fn build(toolchain: Toolchain, name: &str) -> Result<PathBuf, String> {
    let source = toolchain.source(name);
    if !source.is_file() {
        return Err(format!("guest source {} does not exist", source.display()));
    }
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests").join(toolchain.name());
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let output = out_dir.join(name);
    let mut inputs = vec![source.clone(), repo_root().join("tests/integration/common/guests.rs")];
    if source.extension().is_some_and(|extension| extension == "c") {
        inputs.push(guests_dir().join("c/guest.h"));
    }
    if is_up_to_date(&output, &inputs) {
        return Ok(output);
    }
    // Build beside the final name and rename: a concurrent test process never sees half a binary.
    let partial = out_dir.join(format!(".{name}.{}.partial", std::process::id()));
    let mut command = toolchain.command(&source, &partial);
    let result = command.output();
    let failure = |what: String| {
        let _ = std::fs::remove_file(&partial);
        format!("cannot build guest {name} ({}): {what}\nhint: {}", toolchain.name(), toolchain.install_hint())
    };
    let output_of_build = match result {
        Err(error) if error.kind() == ErrorKind::NotFound => {
            return Err(failure(format!("`{}` is not installed", command.get_program().to_string_lossy())))
        }
        Err(error) => return Err(failure(format!("cannot run {command:?}: {error}"))),
        Ok(output_of_build) => output_of_build,
    };
    if !output_of_build.status.success() {
        return Err(failure(format!(
            "{command:?} failed with {}\n{}{}",
            output_of_build.status,
            String::from_utf8_lossy(&output_of_build.stdout),
            String::from_utf8_lossy(&output_of_build.stderr)
        )));
    }
    std::fs::rename(&partial, &output).map_err(|e| failure(format!("cannot rename the output: {e}")))?;
    Ok(output)
}

fn is_up_to_date(output: &Path, inputs: &[PathBuf]) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|metadata| metadata.modified()).ok();
    let Some(built) = modified(output) else { return false };
    inputs.iter().all(|input| modified(input).is_some_and(|time: SystemTime| time <= built))
}
