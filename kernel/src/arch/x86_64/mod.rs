//! The x86-64 hardware side of the kernel: everything that executes privileged instructions or touches
//! memory through raw pointers is here, in small named modules.
//!
//! - `start`: the entry point and the boot sequence;
//! - `gdt`, `idt`: descriptor tables, the TSS and its IST stacks, exception entries;
//! - `syscall`: the SYSCALL entries, one per isolation mode;
//! - `pkru`: the only code that writes PKRU (checked gates);
//! - `registers`: control registers and MSRs;
//! - `console`: the framed console and exit ports;
//! - `memory`: the physical map, frame allocator, kernel heap and app-memory access;
//! - `machine`: the `Machine` the syscall layer runs against.
pub mod console;
pub mod gdt;
pub mod idt;
pub mod machine;
pub mod memory;
pub mod pkru;
pub mod registers;
pub mod start;
pub mod sync;
pub mod syscall;
