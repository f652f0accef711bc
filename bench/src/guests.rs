//! The benchmark guests, built from `bench/guests/` with gcc at run time into the target directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// How a guest is compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Assembly, no libc: `gcc -nostdlib -static`.
    Asm,
    /// C without libc (`nolibc.h` provides `_start`), general registers only.
    NoLibc,
    /// C with glibc: `gcc -O2 -static`.
    Glibc,
    /// C with glibc and AFL++'s coverage instrumentation: `afl-clang-fast -O1 -static`.
    AflGlibc,
}

impl Flavor {
    pub const fn label(self) -> &'static str {
        match self {
            Self::Asm => "asm, no libc",
            Self::NoLibc => "C, no libc",
            Self::Glibc => "C, glibc static",
            Self::AflGlibc => "C, glibc static, afl-clang-fast",
        }
    }
}

/// One guest program to build.
#[derive(Clone, Copy, Debug)]
pub struct GuestSpec {
    pub name: &'static str,
    pub source: &'static str,
    pub flavor: Flavor,
}

/// The README's bundled example itself (relative to `bench/guests/`): what users run first is what is measured.
pub const HELLO_ASM: GuestSpec = GuestSpec { name: "hello_asm", source: "../../examples/hello.S", flavor: Flavor::Asm };
pub const HELLO_C: GuestSpec = GuestSpec { name: "hello_c", source: "hello_c.c", flavor: Flavor::Glibc };
pub const BOOT_PROBE: GuestSpec = GuestSpec { name: "boot_probe", source: "boot_probe.c", flavor: Flavor::NoLibc };
pub const SYSCALL_LOOP: GuestSpec =
    GuestSpec { name: "syscall_loop", source: "syscall_loop.c", flavor: Flavor::NoLibc };
pub const SHA256_NOLIBC: GuestSpec = GuestSpec { name: "sha256_nolibc", source: "sha256.c", flavor: Flavor::NoLibc };
pub const SHA256_GLIBC: GuestSpec = GuestSpec { name: "sha256_glibc", source: "sha256.c", flavor: Flavor::Glibc };
/// The guarded-code rows: sha256 with a MOV to CR3 it never executes, on a page of its own or on its hot
/// loop's page (`bench/guests/sha256.c`).
pub const SHA256_GUARDED_COLD: GuestSpec =
    GuestSpec { name: "sha256_guarded_cold", source: "sha256_guarded_cold.c", flavor: Flavor::NoLibc };
pub const SHA256_GUARDED_HOT: GuestSpec =
    GuestSpec { name: "sha256_guarded_hot", source: "sha256_guarded_hot.c", flavor: Flavor::NoLibc };
pub const WRITES_NOLIBC: GuestSpec = GuestSpec { name: "writes_nolibc", source: "writes.c", flavor: Flavor::NoLibc };
pub const WRITES_GLIBC: GuestSpec = GuestSpec { name: "writes_glibc", source: "writes.c", flavor: Flavor::Glibc };

pub const THREADS: GuestSpec = GuestSpec { name: "threads", source: "threads.c", flavor: Flavor::Glibc };

/// The `--afl` tests' fuzzing target, instrumented (built by the fuzzing rows only, not in [`ALL`]).
pub const FUZZ_TARGET: GuestSpec =
    GuestSpec { name: "fuzz_target_afl", source: "../../tests/guests/c/fuzz_target.c", flavor: Flavor::AflGlibc };

/// The test suite's console-output guest (bulk writes, or stdio's putchar).
pub const OUTPUT: GuestSpec =
    GuestSpec { name: "output", source: "../../tests/guests/c/output.c", flavor: Flavor::Glibc };

pub const ALL: [GuestSpec; 12] = [
    HELLO_ASM,
    HELLO_C,
    BOOT_PROBE,
    SYSCALL_LOOP,
    SHA256_NOLIBC,
    SHA256_GLIBC,
    SHA256_GUARDED_COLD,
    SHA256_GUARDED_HOT,
    WRITES_NOLIBC,
    WRITES_GLIBC,
    THREADS,
    OUTPUT,
];

/// The compiler for a flavor.
fn compiler(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::AflGlibc => "afl-clang-fast",
        Flavor::Asm | Flavor::NoLibc | Flavor::Glibc => "gcc",
    }
}

/// The compiler flags for a flavor (`-fno-pie -no-pie`: ET_EXEC like a plain `gcc -static`).
pub fn compiler_flags(flavor: Flavor) -> &'static [&'static str] {
    match flavor {
        Flavor::Asm => &["-nostdlib", "-static"],
        Flavor::NoLibc => &[
            "-O2",
            "-static",
            "-nostdlib",
            "-ffreestanding",
            "-fno-builtin",
            "-fno-stack-protector",
            "-mgeneral-regs-only",
            "-fno-pie",
            "-no-pie",
            "-DBENCH_NOLIBC",
        ],
        Flavor::Glibc => &["-O2", "-static"],
        Flavor::AflGlibc => &["-O1", "-static"],
    }
}

/// Builds `spec` from `sources` into `out_dir`; the error is the compiler's message.
pub fn build(spec: &GuestSpec, sources: &Path, out_dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(out_dir).map_err(|error| format!("cannot create {}: {error}", out_dir.display()))?;
    let output = out_dir.join(spec.name);
    let program = compiler(spec.flavor);
    let result = Command::new(program)
        .env("AFL_QUIET", "1")
        .args(compiler_flags(spec.flavor))
        .arg("-o")
        .arg(&output)
        .arg(sources.join(spec.source))
        .output()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    if !result.status.success() {
        let message = String::from_utf8_lossy(&result.stderr);
        return Err(format!("{program} failed: {}", message.lines().next().unwrap_or("").trim()));
    }
    Ok(output)
}
