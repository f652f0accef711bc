//! Memory as the kernel sees it: the heap, guest-physical memory (frames, the physical map, page-table
//! edits) and copies to and from the app's memory.
pub mod heap;
pub mod physical;
pub mod user;
