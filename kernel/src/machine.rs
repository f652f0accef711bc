//! What the syscall layer needs from the hardware side.
//!
//! The kernel's arch code implements [`Machine`] on real page tables; [`crate::model::ModelMachine`]
//! implements it over a sparse byte map for host tests and the fuzzer. The syscall layer has already
//! checked every address against its VMA list before it calls a method here; the machine may still fail,
//! which becomes EFAULT or ENOMEM.
#![forbid(unsafe_code)]

use kernel_abi::Stream;

use crate::mm::VmaList;

/// A copy from or to app memory failed at `addr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub addr: u64,
}

/// A shared memory object, named by the syscall layer: frames that several mappings map at once (the
/// pages of a file mapped `MAP_SHARED`), so a store through one is seen through every other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedId(pub u32);

impl SharedId {
    /// The `--afl` coverage map (`kernel_abi::afl`), the SysV shared-memory segment `shmat` attaches
    /// ([`crate::syscall::shm`]): frames the VMM provides, fixed for the whole run. The hardware side
    /// registers them when it builds the machine; the syscall layer only maps them, never grows, writes
    /// through or destroys this object, and numbers no other object with this id.
    pub const AFL_MAP: SharedId = SharedId(u32::MAX);
}

/// An address space: one process's app mappings (the kernel's are the same in every one), named by the
/// hardware side (the arch machine: its page-table root).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpaceId(pub u64);

/// The app's x87/SSE state as FXSAVE writes it: 512 bytes, 16-byte aligned, so the hardware side saves
/// and loads it in place (where kernel code is emulated, every copy of it costs real time).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpuState(pub [u8; 512]);

impl Default for FpuState {
    fn default() -> Self {
        Self([0; 512])
    }
}

/// Why a mapping change failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No frames (or page-table memory) left: the syscall fails with ENOMEM.
    OutOfMemory,
    /// The machine refused the request (a bug in the layer or the machine): the syscall fails with EINVAL.
    Invalid,
}

/// The hardware below the syscall layer. Addresses and lengths passed to the mapping methods are
/// page-aligned and lie inside ranges the layer owns (never kernel memory).
pub trait Machine {
    /// Copies app memory at `[addr, addr + buf.len())` into `buf`, with kernel rights (the layer has checked
    /// the app's permissions). `vmas` is the layer's VMA list, which covers the range: a machine that backs
    /// memory on first touch backs the range's pages from it (with their VMA's permissions) first.
    fn read_user(&mut self, vmas: &VmaList, addr: u64, buf: &mut [u8]) -> Result<(), Fault>;
    /// Copies `data` into app memory at `addr`, with kernel rights (the layer has checked the permissions;
    /// it maps pages writable before filling them, so read-only app pages are never written here). `vmas`
    /// as for [`Machine::read_user`].
    fn write_user(&mut self, vmas: &VmaList, addr: u64, data: &[u8]) -> Result<(), Fault>;
    /// Provides fresh zeroed memory for `[addr, addr + len)`, mapped with `perms` (`kernel_abi::PERM_*`).
    /// The range is currently unmapped, and the layer has already recorded it in its VMA list (a machine
    /// may back it then, or on first touch from that list).
    fn map_anonymous(&mut self, addr: u64, len: u64, perms: u32) -> Result<(), MapError>;
    /// Changes the permissions of the mapped range `[addr, addr + len)`. On failure nothing has changed.
    fn protect(&mut self, addr: u64, len: u64, perms: u32) -> Result<(), MapError>;
    /// Unmaps `[addr, addr + len)` (all of it is mapped) and frees its frames.
    fn unmap(&mut self, addr: u64, len: u64);
    /// Grows shared object `id` (empty until first grown) to at least `pages` pages; new pages are zero.
    fn shared_grow(&mut self, id: SharedId, pages: u64) -> Result<(), MapError>;
    /// Copies shared object `id`'s bytes at `offset` into `buf`; the range lies inside the object.
    fn shared_read(&mut self, id: SharedId, offset: u64, buf: &mut [u8]);
    /// Copies `data` into shared object `id` at `offset`; the range lies inside the object.
    fn shared_write(&mut self, id: SharedId, offset: u64, data: &[u8]);
    /// Maps pages `first_page..` of shared object `id` (which has them) at the free range
    /// `[addr, addr + len)` with `perms`. Unmapping such pages later leaves the object's frames alone.
    fn map_shared(&mut self, addr: u64, len: u64, perms: u32, id: SharedId, first_page: u64) -> Result<(), MapError>;
    /// [`Machine::map_shared`] of a range the layer has already recorded in its VMA list with a kind whose
    /// [`crate::mm::Vma::backing`] names those pages of `id` (a SysV attachment of the fixed
    /// [`SharedId::AFL_MAP`]): as for [`Machine::map_anonymous`], a machine may map the pages now or on
    /// first touch from that list (then with the VMA's permissions at that time). This default maps them
    /// now.
    fn map_shared_on_touch(
        &mut self,
        addr: u64,
        len: u64,
        perms: u32,
        id: SharedId,
        first_page: u64,
    ) -> Result<(), MapError> {
        self.map_shared(addr, len, perms, id, first_page)
    }
    /// `mpk` mode: `found` are the guarded instructions (`isolation::scan::ForbiddenInstruction::is_guarded`)
    /// whose escape byte lies in `[start, end)` of the current address space, replacing those recorded
    /// there before. The machine keeps the pages they make guarded (`isolation::guard::guarded_pages`)
    /// non-executable while the app runs elsewhere, and single-steps it through them, ending it before a
    /// guarded instruction would run (docs/security.md, "Guarded code"). What [`Machine::unmap`] removes
    /// goes from the record too; a forked space starts with a copy of it. `vmas` (the layer's list)
    /// gives the permissions a page gets back when it is guarded no more.
    fn guard_code(&mut self, vmas: &VmaList, start: u64, end: u64, found: &[isolation::scan::Finding]);
    /// Frees shared object `id`, which no mapping maps any more.
    fn shared_destroy(&mut self, id: SharedId);
    /// The address space app memory accesses go to now.
    fn current_space(&self) -> SpaceId;
    /// A new address space holding a copy of the current one's app memory (`vmas`, the current process's
    /// VMA list: what to copy): fork's. Each page reads the same in both, and a write in either space
    /// changes only that space's copy (copy-on-write, or an eager copy). Shared objects' pages stay
    /// shared. `kernel` lists the ranges (start, end) no app mapping ever reaches (the layer's reserved
    /// ranges): the hardware side may share their page tables between spaces. The current space stays
    /// current.
    fn fork_space(&mut self, vmas: &VmaList, kernel: &[(u64, u64)]) -> Result<SpaceId, MapError>;
    /// Makes `space` (the boot space or one [`Machine::fork_space`] made) current.
    fn switch_space(&mut self, space: SpaceId);
    /// Frees `space`, which is not current and whose app memory the layer has unmapped already (`kernel`
    /// as given to [`Machine::fork_space`]).
    fn destroy_space(&mut self, space: SpaceId, kernel: &[(u64, u64)]);
    /// Sends app output or kernel diagnostics to the host.
    fn console(&mut self, stream: Stream, data: &[u8]);
    /// Sends app memory `[addr, addr + len)` to the console as `stream` (the layer has checked that the app
    /// may read it; `vmas` as for [`Machine::read_user`]). This default copies through a kernel buffer; a
    /// machine that can read app memory in place sends it from there.
    fn console_from_user(&mut self, vmas: &VmaList, stream: Stream, addr: u64, len: usize) -> Result<(), Fault> {
        let mut bounce = alloc::vec![0; len];
        self.read_user(vmas, addr, &mut bounce)?;
        self.console(stream, &bounce);
        Ok(())
    }
    /// Saves the app's x87/SSE state (the FXSAVE image) into `state`.
    fn save_fpu(&mut self, state: &mut FpuState);
    /// Loads the app's x87/SSE state from `state` (made valid for FXRSTOR by the caller).
    fn restore_fpu(&mut self, state: &FpuState);
    /// Nanoseconds since boot; never decreases.
    fn monotonic_ns(&mut self) -> u64;
    /// Nanoseconds since the Unix epoch.
    fn realtime_ns(&mut self) -> u64;
    /// `arch_prctl(ARCH_SET_FS)`: the FS base the app resumes with.
    fn set_fs_base(&mut self, value: u64);
    fn fs_base(&mut self) -> u64;
    /// Copies the app page at `page` (page-aligned, inside a VMA) into `buf` as it is, whatever its
    /// protection (an inaccessible page too); false, and `buf` untouched, if it has no frame yet.
    fn read_page(&mut self, page: u64, buf: &mut [u8; 4096]) -> bool;
    /// `--afl` (`kernel_abi::afl`): the snapshot point, then this execution's input. The hardware side
    /// writes the byte that makes the VMM snapshot the VM (every execution resumes just after it, with its
    /// own input in guest memory) and returns the input the VMM wrote, in place; everything after the
    /// write runs once per execution. Called once a run, and only where the boot info gave an input
    /// region (see [`crate::Process::take_afl_snapshot`]). This default is a machine without one: no
    /// snapshot, an empty input.
    fn afl_snapshot(&mut self) -> &'static [u8] {
        &[]
    }
    /// Waits until the monotonic clock reaches `deadline_ns` (nanosleep, poll timeouts). The default spins;
    /// real hardware halts until a timer interrupt.
    fn idle_until(&mut self, deadline_ns: u64) {
        while self.monotonic_ns() < deadline_ns {
            core::hint::spin_loop();
        }
    }
}
