//! The x86-64 hardware side of the kernel: everything that executes privileged instructions or touches
//! memory through raw pointers is here, in small named modules, layered so that each uses only those
//! below it (the entries' assembly names the Rust handlers beside it):
//!
//! ```text
//!  start                boot sequence, entering the app
//!    │
//!  trap/{syscall,       the entries from the app (SYSCALL, exceptions) and their handlers
//!        exception}
//!    │
//!  machine, guard       ArchMachine: the kernel::Machine the syscall layer runs on; demand paging;
//!    │                  the single-step guard of code holding guarded instructions (mpk)
//!  mm/{physical, user,  guest-physical memory and page tables, copies to/from the app, the heap
//!      heap}
//!    │
//!  tables, registers,   descriptor tables, IST stacks, the gate-violation stop; CR/MSR/TSC access;
//!  halt, timer          fatal errors and crash reports; the timer interrupt (PIT and PIC ports)
//!    │
//!  frame, pkru,         register frames; the PKRU gates (macros); console ports; CPU-local globals
//!  console, sync
//! ```
pub mod console;
pub mod frame;
pub mod guard;
pub mod halt;
pub mod machine;
pub mod mm;
pub mod pkru;
pub mod registers;
pub mod start;
pub mod sync;
pub mod tables;
pub mod timer;
pub mod trap;
