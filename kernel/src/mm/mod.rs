//! The app's address-space model: which ranges are mapped, with which permissions.
#![forbid(unsafe_code)]
pub mod shared;
pub mod vma;

pub use shared::{SharedFile, SharedFiles};
pub use vma::{Backing, Vma, VmaKind, VmaList};

pub use isolation::paging::PAGE_SIZE;

/// Rounds up to a page boundary; `None` on overflow.
pub const fn page_align_up(value: u64) -> Option<u64> {
    match value.checked_add(PAGE_SIZE - 1) {
        Some(v) => Some(v & !(PAGE_SIZE - 1)),
        None => None,
    }
}

pub const fn page_aligned(value: u64) -> bool {
    value.is_multiple_of(PAGE_SIZE)
}
