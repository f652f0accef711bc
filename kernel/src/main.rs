//! The guest kernel binary: the hardware side (boot, CPU tables, entries, memory) lives in `arch`, the
//! hardware-free syscall layer in the `kernel` library.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod arch;

/// Bytes placed before the GOT (in `.data.rel.ro`, which precedes it): the code-to-GOT distance is in
/// every `call *GOT(%rip)` displacement, where its bytes can spell a forbidden instruction by chance
/// that a CPL0 app could jump into (threat-model.md M6). When
/// `run::tests::embedded_kernel_has_privileged_instructions_only_at_listed_sites` (vmm/src/run.rs) names
/// one inside such a displacement, change this length: it moves the GOT and no code.
#[cfg(target_os = "none")]
#[used]
#[link_section = ".data.rel.ro.secure_run_got_shift"]
static GOT_SHIFT: [u8; 0x40] = [0; 0x40];

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("this is the secure-run guest kernel: it runs only inside a secure-run VM (target x86_64-unknown-none)");
    std::process::exit(2);
}
