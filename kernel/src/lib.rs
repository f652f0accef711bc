//! The secure-run guest kernel.
//!
//! Built for `x86_64-unknown-none` as a static PIE that the VMM relocates and places. Modules that need
//! the hardware live under `arch`; everything else (syscall decoding, the file system, the fd table, the
//! address-space model) is plain `no_std + alloc` code that also builds and is tested on the host.
//!
//! The hardware side drives the syscall layer through [`Process`]: build it from a [`ProcessConfig`],
//! take on the stack the VMM prepared with [`Process::adopt_stack`], then hand every SYSCALL to [`Process::syscall`] with a
//! [`Machine`] that copies app memory, maps pages and talks to the console. Every module outside `arch`
//! forbids `unsafe`.
#![no_std]

extern crate alloc;

pub mod afl;
pub mod epoll;
pub mod errno;
pub mod exec;
pub mod fd;
pub mod fs;
pub mod inspect;
pub mod machine;
pub mod mm;
pub mod model;
pub mod pipe;
pub mod process;
pub mod processes;
pub mod random;
pub mod sched;
pub mod signal;
pub mod slots;
pub mod syscall;
pub mod thread;
pub mod timer;
pub mod trace;
pub mod user;

pub use errno::Errno;
pub use inspect::Inspection;
pub use machine::{Fault, FpuState, Machine, MapError, SharedId, SpaceId};
pub use process::{ConfigError, Process, ProcessConfig, Segment, StackError, Uname, UNAME};
pub use signal::deliver::{Resume, Target};
pub use signal::frame::{TrapInfo, UserContext};
pub use signal::info::SigInfo;
pub use syscall::shm::ShmSegment;
pub use syscall::{SyscallResult, SYSCALLS};
