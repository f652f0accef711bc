//! The guest kernel binary: the hardware side (boot, CPU tables, entries, memory) lives in `arch`, the
//! hardware-free syscall layer in the `kernel` library.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod arch;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("this is the secure-run guest kernel: it runs only inside a secure-run VM (target x86_64-unknown-none)");
    std::process::exit(2);
}
