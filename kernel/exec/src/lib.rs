//! What a program must be to run under secure-run, and how it starts: [`elf`] validates app (and kernel)
//! ELF files, [`initial_stack`] lays out argc, argv, envp and the auxiliary vector. The VMM uses both for
//! the first app of a run, the guest kernel for every program `execve` starts: one set of rules.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod elf;
pub mod initial_stack;
