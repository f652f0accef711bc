//! What ends the VM from inside the kernel: a crash record, a fatal kernel error, a panic.

use core::fmt::Write;

use kernel_abi::{CrashRecord, Stream};

use super::console;

/// Reports the crash and stops the VM.
pub fn crash(record: &CrashRecord) -> ! {
    console::write(Stream::Crash, &record.to_bytes());
    console::stop()
}

/// A kernel invariant failed: report it and stop the VM.
pub fn fatal(message: &str) -> ! {
    let _ = writeln!(console::Log, "kernel: fatal: {message}");
    crash(&CrashRecord { vector: kernel_abi::CRASH_KERNEL_PANIC, in_kernel: 1, ..CrashRecord::default() })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = writeln!(console::Log, "kernel: panic: {info}");
    crash(&CrashRecord { vector: kernel_abi::CRASH_KERNEL_PANIC, in_kernel: 1, ..CrashRecord::default() })
}
