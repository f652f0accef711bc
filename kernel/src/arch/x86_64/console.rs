//! The console and exit ports (QEMU's isa-debugcon and isa-debug-exit; the KVM backend implements the
//! same two), and `--afl`'s snapshot port. Output travels as frames (kernel_abi::FrameHeader) so stdout,
//! stderr, the exit status, crash records and kernel diagnostics share one channel; whole buffers go out
//! with one REP OUTSB.

use kernel_abi::afl::SNAPSHOT_PORT;
use kernel_abi::{FrameHeader, Stream, CONSOLE_PORT, EXIT_PORT, EXIT_PORT_VALUE, MAX_FRAME_PAYLOAD, RING_DOORBELL};

/// Sends `bytes` to the console port in one string instruction.
fn out_bytes(bytes: &[u8]) {
    // SAFETY: REP OUTSB reads `bytes.len()` bytes from `bytes` (valid for reads) and writes them to the
    // console port; DF is clear per the Rust ABI. It touches no other memory or register.
    unsafe {
        core::arch::asm!(
            "rep outsb",
            in("dx") CONSOLE_PORT,
            inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _,
            options(nostack, preserves_flags, readonly)
        );
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
        let header = FrameHeader::new(stream, chunk.len() as u16).to_bytes();
        out_bytes(&header);
        out_bytes(chunk);
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

/// Stops the VM through the exit port; never returns.
pub fn stop() -> ! {
    // SAFETY: writing the exit port makes the VMM stop the VM; nothing in this kernel depends on it.
    unsafe {
        x86_64::instructions::port::Port::<u32>::new(EXIT_PORT).write(EXIT_PORT_VALUE);
    }
    loop {
        x86_64::instructions::hlt();
    }
}
