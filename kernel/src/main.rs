//! Entry point of the guest kernel binary.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("this is the secure-run guest kernel: it runs only inside a secure-run VM (target x86_64-unknown-none)");
    std::process::exit(2);
}
