//! The console and exit ports (QEMU's isa-debugcon and isa-debug-exit; the KVM backend implements the
//! same two), and `--afl`'s snapshot port. Output travels as frames (kernel_abi::FrameHeader) so stdout,
//! stderr, the exit status, crash records and kernel diagnostics share one channel; whole buffers go out
//! with one REP OUTSB.
//!
//! Every frame header carries the run's console key (`kernel_abi::console`), which must never reach the
//! app. It lives in [`HEADER`], a kernel static (kernel data: protection key 2 in `mpk`, a supervisor
//! page in `ring3`), and goes to the port straight from there by REP OUTSB: no general-purpose register
//! and no stack ever holds it after boot, so no register the kernel returns to the app can leak it.

use kernel_abi::afl::SNAPSHOT_PORT;
use kernel_abi::{
    ConsoleKey, Stream, CONSOLE_PORT, EXIT_PORT, EXIT_PORT_VALUE, FRAME_HEADER_SIZE, FRAME_SYNC, MAX_FRAME_PAYLOAD,
    RING_DOORBELL,
};

use super::sync::CpuLocal;

/// The frame header the kernel sends, its key part filled in once at boot ([`set_key`]); [`write`]
/// rewrites only the first four bytes (sync, stream, length) for each frame.
static HEADER: CpuLocal<[u8; FRAME_HEADER_SIZE]> = CpuLocal::new([0; FRAME_HEADER_SIZE]);

/// Takes the run's console key from the boot info, before the first frame.
///
/// # Safety
/// Boot only, before the app's first instruction (which starts with every general register zero, so the
/// copy's registers keep nothing of the key).
pub unsafe fn set_key(key: &ConsoleKey) {
    // SAFETY: boot runs alone: no other reference to HEADER exists.
    let header = unsafe { HEADER.get() };
    header[FRAME_HEADER_SIZE - key.len()..].copy_from_slice(key);
}

/// Sends `len` bytes at `start` to the console port in one string instruction.
///
/// # Safety
/// `start..start + len` must be valid for reads.
unsafe fn out_bytes(start: *const u8, len: usize) {
    // SAFETY: REP OUTSB reads `len` bytes from `start` (the caller's contract) and writes them to the
    // console port; DF is clear per the Rust ABI. It touches no other memory, and leaves RSI and RCX
    // holding only the end address and zero.
    unsafe {
        core::arch::asm!(
            "rep outsb",
            in("dx") CONSOLE_PORT,
            inout("rsi") start => _,
            inout("rcx") len => _,
            options(nostack, preserves_flags, readonly)
        );
    }
}

/// Sends the header of a frame of `stream` with a `len`-byte payload: the key travels from [`HEADER`]
/// to the port without passing through a register.
fn out_header(stream: Stream, len: u16) {
    let [low, high] = len.to_le_bytes();
    let prefix = [FRAME_SYNC, stream as u8, low, high];
    let header = HEADER.as_ptr().cast::<u8>();
    // SAFETY: kernel code runs one entry at a time with interrupts off, so nothing else uses HEADER; the
    // writes stay inside its first four bytes (raw pointers: a nested frame, as from a panic in the
    // middle of a write, rewrites the prefix, never holds a reference across this). The read covers
    // exactly the static.
    unsafe {
        for (index, &byte) in prefix.iter().enumerate() {
            header.add(index).write_volatile(byte);
        }
        out_bytes(header, FRAME_HEADER_SIZE);
    }
}

/// Rings the console ring's doorbell: one byte, one port write (`kernel_abi::console`).
pub fn ring_doorbell() {
    // SAFETY: one byte to the console port, which only the VMM's console device reads.
    unsafe { x86_64::instructions::port::Port::<u8>::new(CONSOLE_PORT).write(RING_DOORBELL) };
}

/// The `--afl` snapshot point (`kernel_abi::afl`): one byte to the snapshot port. The VMM snapshots the
/// VM at this exit and resumes every execution just after the `OUT`, with new input in guest memory.
pub fn snapshot_point() {
    // SAFETY: one byte to the snapshot port, which only the VMM reads. Not `nomem` (as the `x86_64`
    // crate's port writes are): memory may have changed when the instruction completes, so no read of the
    // input may move above it.
    unsafe { core::arch::asm!("out dx, al", in("dx") SNAPSHOT_PORT, in("al") 0u8, options(nostack, preserves_flags)) };
}

/// Writes `data` to `stream`, split into frames of at most `MAX_FRAME_PAYLOAD` bytes.
pub fn write(stream: Stream, data: &[u8]) {
    for chunk in data.chunks(MAX_FRAME_PAYLOAD) {
        // chunks() never yields more than MAX_FRAME_PAYLOAD (= u16::MAX) bytes.
        out_header(stream, chunk.len() as u16);
        // SAFETY: `chunk` is a slice, valid for reads.
        unsafe { out_bytes(chunk.as_ptr(), chunk.len()) };
    }
}

/// A `core::fmt::Write` over the kernel log stream, for diagnostics.
pub struct Log;

impl core::fmt::Write for Log {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write(Stream::Log, s.as_bytes());
        Ok(())
    }
}

/// Reports the app's exit status and stops the VM.
pub fn exit(status: i32) -> ! {
    write(Stream::Exit, &status.to_le_bytes());
    stop()
}

/// Reports that `signal`'s default action ended the app (status 128 + `signal`) and stops the VM.
pub fn killed(signal: i32) -> ! {
    write(Stream::Killed, &signal.to_le_bytes());
    exit(128 + signal)
}

/// Stops the VM through the exit port; never returns. The VMM honours the stop only after an Exit or
/// Crash frame: callers send one first.
pub fn stop() -> ! {
    // SAFETY: writing the exit port makes the VMM stop the VM; nothing in this kernel depends on it.
    unsafe {
        x86_64::instructions::port::Port::<u32>::new(EXIT_PORT).write(EXIT_PORT_VALUE);
    }
    loop {
        x86_64::instructions::hlt();
    }
}
