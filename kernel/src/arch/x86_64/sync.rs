//! Global state of a single-CPU kernel whose code runs with interrupts off (the app runs with them on).

use core::cell::UnsafeCell;

/// A global that is only ever touched by the one CPU, with interrupts disabled, from non-reentrant
/// kernel code (boot, syscall and exception handlers run to completion one at a time).
pub struct CpuLocal<T>(UnsafeCell<T>);

// SAFETY: there is one CPU and kernel code never runs concurrently with itself (it runs with interrupts
// off, an interrupt that lands in kernel text ends the VM, entries do not nest except for faults that
// end the VM), so no two references coexist across threads of execution.
unsafe impl<T> Sync for CpuLocal<T> {}

impl<T> CpuLocal<T> {
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// # Safety
    /// The caller must not let two returned references live at once (one entry at a time, no nesting).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: exclusivity is the caller's contract (see above).
        unsafe { &mut *self.0.get() }
    }

    pub const fn as_ptr(&self) -> *mut T {
        self.0.get()
    }
}
