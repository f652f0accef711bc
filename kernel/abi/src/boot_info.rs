//! The boot info: what the VMM tells the kernel at boot, and the regions and modes it describes.
//!
//! The VMM writes it into guest memory as bytes ([`IntoBytes`]); the kernel views those bytes as a
//! [`BootInfo`] ([`FromBytes`]) and trusts it only after checking [`BootInfo::magic`] and
//! [`BootInfo::version`].

use core::mem::size_of;

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// `"SECRUN01"` little-endian: the first field of [`BootInfo`].
pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"SECRUN01");
/// Bumped on every incompatible change of [`BootInfo`]; the kernel refuses any other value.
pub const BOOT_INFO_VERSION: u32 = 5;

/// How the app is separated from the kernel (`--isolation`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IsolationMode {
    /// App and kernel at CPL0, no separation: the baseline that shows what isolation costs.
    None = 0,
    /// App at CPL3 on user pages, kernel on supervisor pages.
    Ring3 = 1,
    /// App and kernel at CPL0, kernel memory tagged with protection keys, PKRU switched at every entry.
    Mpk = 2,
}

impl IsolationMode {
    pub fn from_u32(value: u32) -> Option<Self> {
        Some(match value {
            0 => Self::None,
            1 => Self::Ring3,
            2 => Self::Mpk,
            _ => return None,
        })
    }
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Ring3 => "ring3",
            Self::Mpk => "mpk",
        }
    }
}

/// A virtual range the VMM mapped, described so the kernel can tag, protect or unmap it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct MappedRegion {
    pub virt_start: u64,
    pub size: u64,
    pub phys_start: u64,
    /// A [`RegionKind`] value.
    pub kind: u32,
    /// [`PERM_READ`] | [`PERM_WRITE`] | [`PERM_EXEC`].
    pub perms: u32,
}
const _: () = assert!(size_of::<MappedRegion>() == 32);

pub const PERM_READ: u32 = 1;
pub const PERM_WRITE: u32 = 2;
pub const PERM_EXEC: u32 = 4;

/// What a [`MappedRegion`] holds; decides its protection key and privilege.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegionKind {
    /// Kernel code.
    KernelText = 1,
    /// Kernel read-only data.
    KernelRodata = 2,
    /// Kernel data and bss (heap, stacks, tables live here or in the physical map).
    KernelData = 3,
    /// The kernel's window on all guest-physical memory (page tables, boot info, heap, app frames).
    PhysMap = 4,
    /// One PT_LOAD segment of the app.
    AppSegment = 5,
    /// The boot trampoline (identity mapped, used only by the PVH entry; unmapped by the kernel).
    BootTrampoline = 6,
}

impl RegionKind {
    pub fn from_u32(value: u32) -> Option<Self> {
        Some(match value {
            1 => Self::KernelText,
            2 => Self::KernelRodata,
            3 => Self::KernelData,
            4 => Self::PhysMap,
            5 => Self::AppSegment,
            6 => Self::BootTrampoline,
            _ => return None,
        })
    }
    pub const fn name(self) -> &'static str {
        match self {
            Self::KernelText => "kernel text",
            Self::KernelRodata => "kernel rodata",
            Self::KernelData => "kernel data",
            Self::PhysMap => "kernel physical map",
            Self::AppSegment => "app segment",
            Self::BootTrampoline => "boot trampoline",
        }
    }
    pub const fn is_kernel(self) -> bool {
        !matches!(self, Self::AppSegment)
    }
}

/// The most regions a [`BootInfo`] can describe.
pub const MAX_REGIONS: usize = 32;

/// A range of guest-physical memory holding data the VMM prepared (argument strings, files, stdin).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct PhysBlob {
    pub phys_start: u64,
    pub size: u64,
}
const _: () = assert!(size_of::<PhysBlob>() == 16);

/// A range of guest-virtual addresses `[start, start + size)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VirtSpan {
    pub start: u64,
    pub size: u64,
}
const _: () = assert!(size_of::<VirtSpan>() == 16);

/// How many bytes of the kernel's random stream the VMM computes ahead ([`BootInfo::random`]): enough for
/// AT_RANDOM and a C library's start-up `getrandom` calls, so booting needs no ChaCha20 block in the guest.
pub const RANDOM_PREFIX_SIZE: usize = 4096;

/// What the VMM tells the kernel at boot. Lives in guest memory; its physical address comes in RDI
/// (as a virtual address inside the physical map) when the kernel's entry point runs.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct BootInfo {
    pub magic: u64,
    pub version: u32,
    /// An [`IsolationMode`] value.
    pub isolation: u32,
    /// [`FLAG_TRACE_SYSCALLS`] | [`FLAG_STRICT_INSPECTION`] | [`FLAG_AFL_SNAPSHOT_AFTER_STARTUP`] | [`FLAG_ASLR`].
    pub flags: u64,
    /// Guest-physical memory size in bytes (RAM starts at 0).
    pub memory_size: u64,
    /// Virtual address where guest-physical address 0 is mapped (the physical map).
    pub physmap_base: u64,
    /// Guest-physical address of the root page table (what CR3 holds at entry).
    pub page_table_root: u64,
    /// Guest-physical memory the kernel may allocate: `[free_phys_start, free_phys_end)`.
    pub free_phys_start: u64,
    pub free_phys_end: u64,
    /// Where the kernel's own image starts (virtual) and its load bias.
    pub kernel_virt_base: u64,
    /// The app's entry point (virtual, after relocation).
    pub app_entry: u64,
    /// The app's initial stack pointer. The VMM wrote the initial stack (argc, argv, envp, auxv, strings)
    /// at the top of [`Self::stack`], as Linux's execve would have, and mapped the pages from this
    /// pointer's page to the stack's end.
    pub stack_pointer: u64,
    /// The virtual address of the AT_HWCAP value in that stack: the one entry only the CPU knows, which
    /// the kernel fills in (CPUID.1:EDX).
    pub hwcap_slot: u64,
    /// The app's absolute path (what `/proc/self/exe` names), without a NUL.
    pub exe_path: PhysBlob,
    /// Captured standard input.
    pub stdin: PhysBlob,
    /// Packed files of `--mount` (format owned by the kernel's file system and the VMM's packer).
    pub files: PhysBlob,
    /// Keys the kernel's random stream (ChaCha20, stream 0: getrandom, /dev/urandom).
    pub seed: [u8; 32],
    /// The TSC frequency in kHz (0 if unknown).
    pub tsc_khz: u64,
    /// Wall-clock time at boot, nanoseconds since the Unix epoch.
    pub boot_unix_ns: u64,
    /// The TSC value that corresponds to `boot_unix_ns` (0: the kernel reads the TSC at entry).
    pub boot_tsc: u64,
    /// The app's stack, brk area and mmap area, planned by the VMM (`isolation::layout::plan_guest_process`);
    /// the kernel validates them against the regions before use.
    pub stack: VirtSpan,
    pub brk: VirtSpan,
    pub mmap: VirtSpan,
    /// The first bytes of the kernel's random stream, computed by the VMM from `seed` (a multiple of 4
    /// bytes; the kernel continues the same stream in ChaCha20 once they are used up).
    pub random: PhysBlob,
    /// Guest-physical address of the console ring's page (`crate::console`; 0: none, frames only).
    pub console_ring: u64,
    /// `--afl` ([`crate::afl`]): the input region, rewritten by the VMM before each execution (size 0: not
    /// fuzzing; it then lies inside the image, below `free_phys_start`).
    pub afl_input: PhysBlob,
    /// The absolute guest path at which the input appears as a file, without a NUL (size 0: the
    /// input is the app's stdin).
    pub afl_input_path: PhysBlob,
    /// The coverage map's guest-physical frames (page-aligned; size 0: none), which `shmat` of
    /// [`Self::afl_shm_id`] maps. They may lie above `memory_size`.
    pub afl_map: PhysBlob,
    /// The SysV shared-memory id (`__AFL_SHM_ID`) under which the app attaches the coverage map.
    pub afl_shm_id: u64,
    /// The run's console key ([`crate::console`]), drawn by the VMM from the OS for this boot (never from
    /// the seed). Every frame the kernel sends carries it.
    pub console_key: crate::console::ConsoleKey,
    pub region_count: u64,
    pub regions: [MappedRegion; MAX_REGIONS],
}
const _: () = assert!(size_of::<BootInfo>() == 352 + 32 * MAX_REGIONS);

pub const FLAG_TRACE_SYSCALLS: u64 = 1;
/// Refuse every forbidden instruction in app code, also those the kernel's configuration neutralizes.
pub const FLAG_STRICT_INSPECTION: u64 = 4;
/// `--afl`: take the snapshot after the app's start-up, at its first system call that could observe its
/// input ([`crate::afl`]), instead of just before its first instruction.
pub const FLAG_AFL_SNAPSHOT_AFTER_STARTUP: u64 = 8;
/// `--aslr`: programs `execve` starts get random bases too (from the kernel seed), as the first one did.
pub const FLAG_ASLR: u64 = 16;

impl BootInfo {
    /// An all-zero boot info with the magic and version set.
    pub fn empty() -> Self {
        Self { magic: BOOT_INFO_MAGIC, version: BOOT_INFO_VERSION, ..Self::new_zeroed() }
    }

    /// The regions actually in use (never more than [`MAX_REGIONS`], whatever `region_count` says).
    pub fn regions(&self) -> &[MappedRegion] {
        let count = usize::try_from(self.region_count).unwrap_or(MAX_REGIONS).min(MAX_REGIONS);
        &self.regions[..count]
    }

    pub fn isolation_mode(&self) -> Option<IsolationMode> {
        IsolationMode::from_u32(self.isolation)
    }

    /// The boot info in `bytes` (exactly its size, 8-byte aligned), if they hold one of this version.
    pub fn from_guest_bytes(bytes: &[u8]) -> Option<&Self> {
        let info = Self::ref_from_bytes(bytes).ok()?;
        (info.magic == BOOT_INFO_MAGIC && info.version == BOOT_INFO_VERSION).then_some(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_info_round_trips_through_its_bytes() {
        let mut info = BootInfo::empty();
        info.memory_size = 256 << 20;
        info.regions[3] =
            MappedRegion { virt_start: 0x40_0000, size: 0x1000, phys_start: 0x20_0000, kind: 5, perms: 5 };
        info.region_count = 4;
        info.seed[31] = 0xaa;
        // The VMM writes the bytes into guest memory, which is page aligned; an 8-byte aligned copy here.
        let mut aligned = [0u64; size_of::<BootInfo>() / 8];
        aligned.as_mut_bytes().copy_from_slice(info.as_bytes());
        let read = BootInfo::from_guest_bytes(aligned.as_bytes()).expect("a valid boot info");
        assert_eq!(read.memory_size, 256 << 20);
        assert_eq!(read.regions()[3], info.regions[3]);
        assert_eq!(read.seed[31], 0xaa);
        // Field order is the contract: the magic first, little-endian.
        assert_eq!(&info.as_bytes()[..8], b"SECRUN01");
    }

    #[test]
    fn wrong_size_magic_or_version_is_refused() {
        let info = BootInfo::empty();
        let mut aligned = [0u64; size_of::<BootInfo>() / 8 + 1];
        aligned.as_mut_bytes()[..size_of::<BootInfo>()].copy_from_slice(info.as_bytes());
        assert!(BootInfo::from_guest_bytes(&aligned.as_bytes()[..size_of::<BootInfo>()]).is_some());
        assert!(BootInfo::from_guest_bytes(aligned.as_bytes()).is_none(), "too long");
        let other = BootInfo { version: BOOT_INFO_VERSION + 1, ..info };
        aligned.as_mut_bytes()[..size_of::<BootInfo>()].copy_from_slice(other.as_bytes());
        assert!(BootInfo::from_guest_bytes(&aligned.as_bytes()[..size_of::<BootInfo>()]).is_none());
    }
}
