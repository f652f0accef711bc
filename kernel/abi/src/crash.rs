//! The crash record: what the kernel reports when the app (or the kernel itself) faults.

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The CPU exception that ended the app, as the kernel saw it. Sent as a [`crate::Stream::Crash`] frame; the VMM
/// names the region and the signal.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct CrashRecord {
    /// Exception vector (14 = #PF, 13 = #GP, 6 = #UD, 0 = #DE, ...), or [`CRASH_GATE_VIOLATION`],
    /// [`CRASH_KERNEL_PANIC`], [`CRASH_GUARDED_INSTRUCTION`].
    pub vector: u64,
    pub error_code: u64,
    /// CR2 for a page fault (the faulting address), else 0.
    pub fault_address: u64,
    /// Protection-key number of the faulting page (page faults with the PK bit), else 0.
    pub pkey: u64,
    /// Nonzero when the fault happened in kernel code (a kernel bug, not the app's fault).
    pub in_kernel: u64,
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}
const _: () = assert!(size_of::<CrashRecord>() == 23 * 8);

/// [`CrashRecord::vector`] when a PKRU gate found an unexpected value after WRPKRU (an attempt to use
/// the gate's WRPKRU with forged registers).
pub const CRASH_GATE_VIOLATION: u64 = 0x100;
/// [`CrashRecord::vector`] when the `mpk` kernel's single-step guard stopped the app before a guarded
/// instruction ran: `error_code` names it (`isolation::guard::Stop::code`), `fault_address` is its address.
pub const CRASH_GUARDED_INSTRUCTION: u64 = 0x102;
/// [`CrashRecord::vector`] when the kernel panicked (its message precedes it on [`Stream::Log`](crate::Stream::Log)).
pub const CRASH_KERNEL_PANIC: u64 = 0x101;

impl CrashRecord {
    /// Every field zero (`Default`, usable in const contexts).
    pub const ZERO: Self = zerocopy::transmute!([0u8; size_of::<CrashRecord>()]);

    pub const SIZE: usize = size_of::<CrashRecord>();

    /// The record's bytes as they go over the console (little-endian fields in order).
    pub const fn to_bytes(&self) -> [u8; Self::SIZE] {
        zerocopy::transmute!(*self)
    }

    /// The inverse of [`CrashRecord::to_bytes`]; `None` unless exactly [`CrashRecord::SIZE`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Self::read_from_bytes(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_record_round_trips() {
        let record = CrashRecord { vector: 14, fault_address: 0xdead, r15: 7, ..Default::default() };
        assert_eq!(CrashRecord::from_bytes(&record.to_bytes()), Some(record));
        assert_eq!(CrashRecord::from_bytes(&[0; 10]), None);
        assert_eq!(CrashRecord::ZERO, CrashRecord::default());
        // The wire order: vector first, r15 last.
        assert_eq!(record.to_bytes()[..8], 14u64.to_le_bytes());
        assert_eq!(record.to_bytes()[CrashRecord::SIZE - 8..], 7u64.to_le_bytes());
    }
}
