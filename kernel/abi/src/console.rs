//! The console channel: the ports the kernel talks through and the framing of what it sends.
//!
//! Port 0xe9 is QEMU's `isa-debugcon`, 0xf4 its `isa-debug-exit`; the KVM backend implements the same two.
//! Output travels as frames ([`FrameHeader`] then payload), so stdout, stderr, the exit status, crash
//! records and kernel diagnostics share one channel.
//!
//! Verdicts are authenticated: in `mpk` and `none` the app runs at CPL0 and can write both ports itself,
//! so every frame header carries the run's [`ConsoleKey`], a secret the VMM draws from the OS for each
//! boot and hands to the kernel in the boot info (it never reaches the app: docs/security.md,
//! "Verdicts"). The VMM takes a frame only with the right key, and a stop through [`EXIT_PORT`] only
//! after an authenticated [`Stream::Exit`] or [`Stream::Crash`] frame; anything else on the channel is
//! tampering, which ends the run as a crash. The key is a token, not a MAC: the kernel sends a header
//! and its payload with interrupts off on the only vCPU, so no app byte can come between them.
//!
//! Bulk output (the app's writes, trace lines) goes by reference instead: the kernel lists the
//! guest-physical pieces of the buffer in the console ring ([`RingHeader`], [`RingDescriptor`]: one page
//! whose address the boot info gives, in memory the app cannot reach in `mpk` and `ring3`), with a new
//! sequence number, and writes the one byte [`RING_DOORBELL`] to [`CONSOLE_PORT`] between frames. The VMM
//! reads the listed bytes from guest memory, forwards them in order as if they had come in frames, and
//! acknowledges by writing the sequence number into [`RingHeader::acked`]; the kernel waits for that
//! before it reuses the ring or returns to the app. One port exit per flush instead of one per byte where
//! string I/O exits per byte. The doorbell carries no key: the ring lives where the app cannot write it
//! in `mpk` and `ring3`, and the kernel rings only with a new flush, which it waits to see acknowledged
//! before the app runs again, so a doorbell whose ring names no newer flush is the app's: tampering,
//! and nothing is replayed.

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Port of the console channel (QEMU's `isa-debugcon`): a stream of [`FrameHeader`]-prefixed frames.
pub const CONSOLE_PORT: u16 = 0xe9;
/// Port that stops the VM (QEMU's `isa-debug-exit`). The app's status travels in a [`Stream::Exit`]
/// frame before it; QEMU's own exit status only says "the guest asked to stop".
pub const EXIT_PORT: u16 = 0xf4;
/// The value written to [`EXIT_PORT`]. QEMU then exits with `(EXIT_PORT_VALUE << 1) | 1`.
pub const EXIT_PORT_VALUE: u32 = 0;
/// What QEMU's process exits with after the guest wrote [`EXIT_PORT_VALUE`] to [`EXIT_PORT`].
pub const QEMU_EXIT_STATUS: i32 = ((EXIT_PORT_VALUE as i32) << 1) | 1;

/// The streams multiplexed over [`CONSOLE_PORT`].
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The app's fd 1.
    Stdout = 1,
    /// The app's fd 2.
    Stderr = 2,
    /// The app's exit status: exactly 4 bytes, `i32` little-endian.
    Exit = 3,
    /// A [`CrashRecord`](crate::CrashRecord), exactly `size_of::<CrashRecord>()` bytes.
    Crash = 4,
    /// Kernel diagnostics (syscall trace, warnings): text lines, shown on secure-run's stderr.
    Log = 5,
    /// The signal whose default action ended the app: exactly 4 bytes, `i32` little-endian, sent just
    /// before the [`Stream::Exit`] frame (status 128 + signal) of such an end, so the VMM can tell it
    /// from an `exit(128 + signal)`.
    Killed = 6,
    /// A PKRU gate caught forged registers ([`GATE_VIOLATION_FRAME`]: a bare header, no key, no payload).
    /// The kernel sends it with the app's PKRU in force, where it cannot reach its key, so it is never
    /// authenticated, and the VMM takes it as tampering of its own kind: either the kernel caught the app
    /// jumping into a gate, or the app forged the header; both are the app attacking the kernel.
    GateViolation = 7,
}

impl Stream {
    /// Decodes a stream byte; `None` for anything the kernel never sends.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::Stdout,
            2 => Self::Stderr,
            3 => Self::Exit,
            4 => Self::Crash,
            5 => Self::Log,
            6 => Self::Killed,
            7 => Self::GateViolation,
            _ => return None,
        })
    }
}

/// The size of [`ConsoleKey`]: 128 bits. A forger gets one guess per run (the first wrong byte ends the
/// run as tampering), so 2^-128 is its chance; that also leaves the key far beyond guessing over any
/// fuzzing campaign's number of executions (2^40 executions still leave 2^-88).
pub const CONSOLE_KEY_SIZE: usize = 16;
/// The per-boot secret every frame header carries (see the module docs).
pub type ConsoleKey = [u8; CONSOLE_KEY_SIZE];

/// Every console frame starts with these 20 bytes: a sync byte, the stream, the payload length and the
/// run's [`ConsoleKey`]. The sync byte lets the VMM tell garbage from a frame; the key, that the kernel
/// sent it. The key comes last so that a forged header names the stream it tried to forge.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct FrameHeader {
    pub sync: u8,
    pub stream: u8,
    pub len: [u8; 2],
    pub key: ConsoleKey,
}
const _: () = assert!(size_of::<FrameHeader>() == 4 + CONSOLE_KEY_SIZE);
/// [`FrameHeader`]'s size.
pub const FRAME_HEADER_SIZE: usize = size_of::<FrameHeader>();

/// [`FrameHeader::sync`].
pub const FRAME_SYNC: u8 = 0xa5;
/// What a PKRU gate sends when it catches forged registers ([`Stream::GateViolation`]).
pub const GATE_VIOLATION_FRAME: [u8; 4] = [FRAME_SYNC, Stream::GateViolation as u8, 0, 0];
/// The largest payload of one frame.
pub const MAX_FRAME_PAYLOAD: usize = u16::MAX as usize;

/// The console ring's header, at the start of its page.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct RingHeader {
    /// The sequence number of the flush the descriptors belong to (the doorbell names it).
    pub seq: u64,
    /// How many descriptors follow (at most [`RING_SLOTS`]).
    pub count: u32,
    pub reserved: u32,
    /// Written by the VMM: the last sequence number it has taken.
    pub acked: u64,
    pub reserved2: u64,
}
const _: () = assert!(size_of::<RingHeader>() == 32);

/// One piece of output in the console ring: `len` bytes of guest-physical memory at `phys` for `stream`
/// (only [`Stream::Stdout`], [`Stream::Stderr`] and [`Stream::Log`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct RingDescriptor {
    pub phys: u64,
    pub len: u32,
    pub stream: u32,
}
const _: () = assert!(size_of::<RingDescriptor>() == 16);

impl RingHeader {
    pub const fn to_bytes(self) -> [u8; 32] {
        zerocopy::transmute!(self)
    }
}

impl RingDescriptor {
    pub const fn to_bytes(self) -> [u8; 16] {
        zerocopy::transmute!(self)
    }
}

/// The byte that, between frames on [`CONSOLE_PORT`], asks the VMM to take the console ring's flush.
pub const RING_DOORBELL: u8 = 0x5a;
const _: () = assert!(RING_DOORBELL != FRAME_SYNC);

/// The console ring's size: one page.
pub const RING_SIZE: usize = 4096;
/// Descriptors in the ring after its header.
pub const RING_SLOTS: usize = (RING_SIZE - size_of::<RingHeader>()) / size_of::<RingDescriptor>();
/// The most bytes one descriptor names (one page piece of a buffer at most, in practice).
pub const RING_MAX_LEN: u32 = 1 << 20;

impl FrameHeader {
    pub const fn new(stream: Stream, len: u16, key: ConsoleKey) -> Self {
        Self { sync: FRAME_SYNC, stream: stream as u8, len: len.to_le_bytes(), key }
    }
    pub const fn to_bytes(self) -> [u8; FRAME_HEADER_SIZE] {
        zerocopy::transmute!(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_bytes_decode() {
        for stream in [
            Stream::Stdout,
            Stream::Stderr,
            Stream::Exit,
            Stream::Crash,
            Stream::Log,
            Stream::Killed,
            Stream::GateViolation,
        ] {
            assert_eq!(Stream::from_byte(stream as u8), Some(stream));
        }
        assert_eq!(Stream::from_byte(0), None);
        assert_eq!(Stream::from_byte(8), None);
    }

    #[test]
    fn frame_header_bytes_are_sync_stream_length_key() {
        let key: ConsoleKey = core::array::from_fn(|i| i as u8 + 1);
        let bytes = FrameHeader::new(Stream::Stderr, 0x1234, key).to_bytes();
        assert_eq!(bytes[..4], [FRAME_SYNC, 2, 0x34, 0x12]);
        assert_eq!(bytes[4..], key);
    }

    #[test]
    fn qemu_exit_status_matches_isa_debug_exit() {
        assert_eq!(QEMU_EXIT_STATUS, 1);
    }
}
