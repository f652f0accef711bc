//! In-kernel epoll instances and eventfd counters: the objects behind `FileKind::Epoll` and
//! `FileKind::EventFd` descriptions, kept in `crate::slots`. The syscalls are in `crate::syscall::epoll`.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// Most descriptors one epoll instance watches.
pub const MAX_INTEREST: usize = 4096;

/// One watched descriptor: the fd and the description it named when added (a descriptor closed since,
/// or reused for another file, drops out of the set, as Linux drops a closed file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    pub fd: i32,
    pub description: usize,
    /// `EPOLL*` bits asked for, with `EPOLLET`/`EPOLLONESHOT`.
    pub events: u32,
    pub data: u64,
    /// Edge-triggered: the ready bits already reported (reported again only once they went away).
    pub reported: u32,
    /// `EPOLLONESHOT` after its event: silent until `EPOLL_CTL_MOD`.
    pub disabled: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Epoll {
    pub interest: Vec<Interest>,
}

/// An eventfd's counter and mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventFd {
    pub counter: u64,
    /// `EFD_SEMAPHORE`: a read takes 1, not the whole count.
    pub semaphore: bool,
}
