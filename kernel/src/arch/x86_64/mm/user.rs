//! Copies to and from the app's memory, with SMAP lifted around them where it is on.

use core::sync::atomic::{AtomicBool, Ordering};

/// SMAP is on (ring3 mode on a CPU that has it): kernel accesses to app pages need EFLAGS.AC.
static SMAP: AtomicBool = AtomicBool::new(false);

/// Records whether SMAP is on; boot, once CR4 is set.
pub fn set_smap(on: bool) {
    SMAP.store(on, Ordering::Relaxed);
}

/// Runs `f` with SMAP lifted (EFLAGS.AC set via POPFQ: STAC/CLAC stop the VM on the nested KVM here).
pub fn with_app_access<R>(f: impl FnOnce() -> R) -> R {
    if !SMAP.load(Ordering::Relaxed) {
        return f();
    }
    // SAFETY: only EFLAGS.AC changes.
    unsafe { core::arch::asm!("pushfq", "or dword ptr [rsp], {ac}", "popfq", ac = const 1 << 18) };
    let result = f();
    // SAFETY: only EFLAGS.AC changes.
    unsafe { core::arch::asm!("pushfq", "and dword ptr [rsp], {not_ac}", "popfq", not_ac = const !(1u32 << 18)) };
    result
}

/// Copies app memory at `addr` into `buf`. The caller validated the range against the app's mappings.
///
/// # Safety
/// `[addr, addr + buf.len())` must be mapped app memory.
pub unsafe fn copy_from_app(addr: u64, buf: &mut [u8]) {
    // SAFETY: the caller guarantees the source is mapped app memory; with SMAP the access flag is set
    // around the copy.
    with_app_access(|| unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) });
}

/// Sends app memory `[addr, addr + len)` to the console as `stream`, without copying it first.
///
/// # Safety
/// As for [`copy_from_app`].
pub unsafe fn console_from_app(stream: kernel_abi::Stream, addr: u64, len: usize) {
    with_app_access(|| {
        // SAFETY: the caller guarantees the range is mapped app memory; the app is stopped while the kernel
        // runs (one vCPU), so nothing changes it while the slice lives.
        let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
        crate::arch::x86_64::console::write(stream, bytes)
    });
}

/// Copies `data` into app memory at `addr`.
///
/// # Safety
/// `[addr, addr + data.len())` must be mapped, writable app memory.
pub unsafe fn copy_to_app(addr: u64, data: &[u8]) {
    // SAFETY: as for `copy_from_app`.
    with_app_access(|| unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) });
}
