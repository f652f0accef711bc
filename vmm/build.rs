//! Builds the guest kernel (crate `kernel`, target x86_64-unknown-none, profile `guest-kernel`: release
//! with whole-program optimization, see the workspace Cargo.toml) and hands its path to the VMM, which
//! embeds it: `cargo build --release` yields one self-contained `secure-run`.
//!
//! The kernel gets its own target directory so this nested cargo never waits on the outer one's lock.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("vmm/ lives in the workspace root").to_path_buf();
    for watched in [
        "kernel/src",
        "kernel/Cargo.toml",
        "kernel/build.rs",
        "kernel/boot-text.ld",
        "kernel/abi/src",
        "kernel/exec/src",
        "kernel/heap/src",
        "isolation/src",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=SECURE_RUN_KERNEL_TARGET_DIR");

    let target_dir = env::var_os("SECURE_RUN_KERNEL_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("guest-kernel"));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args([
            "build",
            "--profile",
            "guest-kernel",
            "-p",
            "kernel",
            "--bin",
            "kernel",
            "--target",
            "x86_64-unknown-none",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags and wrappers (clippy, coverage) are for the host crates, not the guest.
    for variable in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_TARGET"]
    {
        command.env_remove(variable);
    }
    let status = command.status().expect("cannot run cargo to build the guest kernel");
    assert!(status.success(), "building the guest kernel failed (see the errors above)");
    let kernel = target_dir.join("x86_64-unknown-none").join("guest-kernel").join("kernel");
    println!("cargo:rustc-env=SECURE_RUN_EMBEDDED_KERNEL={}", kernel.display());
}
