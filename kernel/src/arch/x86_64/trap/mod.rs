//! The entries from the app into the kernel: SYSCALL (and the #PF that is a SYSCALL on the nested KVM)
//! and the exceptions, each with the Rust code that handles it.
pub mod exception;
pub mod syscall;
