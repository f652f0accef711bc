//! The contract between the secure-run VMM and its guest kernel.
//!
//! Everything that crosses the VM boundary is defined here, once: the versioned [`BootInfo`] the VMM
//! writes into guest memory, the I/O ports the kernel talks through, the framing of the console channel,
//! and the [`CrashRecord`] the kernel sends when the app faults. The kernel trusts the boot info only after
//! checking [`BootInfo::magic`] and [`BootInfo::version`]; the VMM trusts nothing the guest sends.
#![no_std]
#![forbid(unsafe_code)]

use core::mem::size_of;

pub mod archive;

/// Port of the console channel (QEMU's `isa-debugcon`): a stream of [`FrameHeader`]-prefixed frames.
pub const CONSOLE_PORT: u16 = 0xe9;
/// Port that stops the VM (QEMU's `isa-debug-exit`). The app's status travels in a [`Stream::Exit`]
/// frame before it; QEMU's own exit status only says "the guest asked to stop".
pub const EXIT_PORT: u16 = 0xf4;
/// The value written to [`EXIT_PORT`]. QEMU then exits with `(EXIT_PORT_VALUE << 1) | 1`.
pub const EXIT_PORT_VALUE: u32 = 0;
/// What QEMU's process exits with after the guest wrote [`EXIT_PORT_VALUE`] to [`EXIT_PORT`].
pub const QEMU_EXIT_STATUS: i32 = ((EXIT_PORT_VALUE as i32) << 1) | 1;

/// `"SECRUN01"` little-endian: the first field of [`BootInfo`].
pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"SECRUN01");
/// Bumped on every incompatible change of [`BootInfo`]; the kernel refuses any other value.
pub const BOOT_INFO_VERSION: u32 = 2;

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
    /// A [`CrashRecord`], exactly `size_of::<CrashRecord>()` bytes.
    Crash = 4,
    /// Kernel diagnostics (syscall trace, warnings): text lines, shown on secure-run's stderr.
    Log = 5,
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
            _ => return None,
        })
    }
}

/// Every console frame starts with these 4 bytes: a sync byte, the stream, and the payload length.
/// The sync byte lets the VMM notice (and count) garbage instead of misreading it as a frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub sync: u8,
    pub stream: u8,
    pub len: [u8; 2],
}
const _: () = assert!(size_of::<FrameHeader>() == 4);

/// [`FrameHeader::sync`].
pub const FRAME_SYNC: u8 = 0xa5;
/// The largest payload of one frame.
pub const MAX_FRAME_PAYLOAD: usize = u16::MAX as usize;

impl FrameHeader {
    pub const fn new(stream: Stream, len: u16) -> Self {
        Self { sync: FRAME_SYNC, stream: stream as u8, len: len.to_le_bytes() }
    }
    pub const fn to_bytes(self) -> [u8; 4] {
        [self.sync, self.stream, self.len[0], self.len[1]]
    }
}

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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysBlob {
    pub phys_start: u64,
    pub size: u64,
}
const _: () = assert!(size_of::<PhysBlob>() == 16);

/// A range of guest-virtual addresses `[start, start + size)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    pub magic: u64,
    pub version: u32,
    /// An [`IsolationMode`] value.
    pub isolation: u32,
    /// [`FLAG_TRACE_SYSCALLS`] | [`FLAG_STRICT_INSPECTION`].
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
    pub region_count: u64,
    pub regions: [MappedRegion; MAX_REGIONS],
}
const _: () = assert!(size_of::<BootInfo>() == 272 + 32 * MAX_REGIONS);

pub const FLAG_TRACE_SYSCALLS: u64 = 1;
/// Refuse every forbidden instruction in app code, also those the kernel's configuration neutralizes.
pub const FLAG_STRICT_INSPECTION: u64 = 4;

impl BootInfo {
    /// An all-zero boot info with the magic and version set.
    pub const fn empty() -> Self {
        Self {
            magic: BOOT_INFO_MAGIC,
            version: BOOT_INFO_VERSION,
            isolation: 0,
            flags: 0,
            memory_size: 0,
            physmap_base: 0,
            page_table_root: 0,
            free_phys_start: 0,
            free_phys_end: 0,
            kernel_virt_base: 0,
            app_entry: 0,
            stack_pointer: 0,
            hwcap_slot: 0,
            exe_path: PhysBlob { phys_start: 0, size: 0 },
            stdin: PhysBlob { phys_start: 0, size: 0 },
            files: PhysBlob { phys_start: 0, size: 0 },
            seed: [0; 32],
            tsc_khz: 0,
            boot_unix_ns: 0,
            boot_tsc: 0,
            stack: VirtSpan { start: 0, size: 0 },
            brk: VirtSpan { start: 0, size: 0 },
            mmap: VirtSpan { start: 0, size: 0 },
            random: PhysBlob { phys_start: 0, size: 0 },
            region_count: 0,
            regions: [MappedRegion { virt_start: 0, size: 0, phys_start: 0, kind: 0, perms: 0 }; MAX_REGIONS],
        }
    }

    /// The regions actually in use (never more than [`MAX_REGIONS`], whatever `region_count` says).
    pub fn regions(&self) -> &[MappedRegion] {
        let count = usize::try_from(self.region_count).unwrap_or(MAX_REGIONS).min(MAX_REGIONS);
        &self.regions[..count]
    }

    pub fn isolation_mode(&self) -> Option<IsolationMode> {
        IsolationMode::from_u32(self.isolation)
    }
}

/// The CPU exception that ended the app, as the kernel saw it. Sent as a [`Stream::Crash`] frame; the VMM
/// names the region and the signal.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashRecord {
    /// Exception vector (14 = #PF, 13 = #GP, 6 = #UD, 0 = #DE, ...), or [`CRASH_GATE_VIOLATION`].
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
/// [`CrashRecord::vector`] when the kernel panicked (its message precedes it on [`Stream::Log`]).
pub const CRASH_KERNEL_PANIC: u64 = 0x101;

impl CrashRecord {
    /// Every field zero (`Default`, usable in const contexts).
    pub const ZERO: Self = Self {
        vector: 0,
        error_code: 0,
        fault_address: 0,
        pkey: 0,
        in_kernel: 0,
        rip: 0,
        rsp: 0,
        rflags: 0,
        rax: 0,
        rbx: 0,
        rcx: 0,
        rdx: 0,
        rsi: 0,
        rdi: 0,
        rbp: 0,
        r8: 0,
        r9: 0,
        r10: 0,
        r11: 0,
        r12: 0,
        r13: 0,
        r14: 0,
        r15: 0,
    };

    pub const SIZE: usize = size_of::<CrashRecord>();

    /// Little-endian bytes, field by field (what goes over the console).
    pub const fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        let fields = self.fields();
        let mut i = 0;
        // A const fn: no iterators or copy_from_slice (the kernel builds a record at compile time).
        while i < Self::SIZE {
            out[i] = fields[i / 8].to_le_bytes()[i % 8];
            i += 1;
        }
        out
    }

    /// The inverse of [`CrashRecord::to_bytes`]; `None` unless exactly [`CrashRecord::SIZE`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::SIZE {
            return None;
        }
        let mut values = [0u64; 23];
        for (value, chunk) in values.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(chunk);
            *value = u64::from_le_bytes(raw);
        }
        let [vector, error_code, fault_address, pkey, in_kernel, rip, rsp, rflags, rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15] =
            values;
        Some(Self {
            vector,
            error_code,
            fault_address,
            pkey,
            in_kernel,
            rip,
            rsp,
            rflags,
            rax,
            rbx,
            rcx,
            rdx,
            rsi,
            rdi,
            rbp,
            r8,
            r9,
            r10,
            r11,
            r12,
            r13,
            r14,
            r15,
        })
    }

    const fn fields(&self) -> [u64; 23] {
        [
            self.vector,
            self.error_code,
            self.fault_address,
            self.pkey,
            self.in_kernel,
            self.rip,
            self.rsp,
            self.rflags,
            self.rax,
            self.rbx,
            self.rcx,
            self.rdx,
            self.rsi,
            self.rdi,
            self.rbp,
            self.r8,
            self.r9,
            self.r10,
            self.r11,
            self.r12,
            self.r13,
            self.r14,
            self.r15,
        ]
    }
}

/// secure-run's own exit codes (the app's status passes through unchanged otherwise).
pub mod exit_code {
    /// Bad command line.
    pub const USAGE: i32 = 2;
    /// `--timeout` expired.
    pub const TIMEOUT: i32 = 124;
    /// The VMM or a backend failed.
    pub const VMM_ERROR: i32 = 125;
    /// The app cannot be executed (not an ELF, wrong machine, dynamically linked, refused by inspection).
    pub const CANNOT_EXECUTE: i32 = 126;
    /// The app file does not exist.
    pub const NOT_FOUND: i32 = 127;
    /// A fault kills the app like this signal would: 128 + signal.
    pub const fn killed_by(signal: i32) -> i32 {
        128 + signal
    }
}

/// Linux signal numbers used in crash exit codes.
pub mod signal {
    pub const SIGILL: i32 = 4;
    pub const SIGTRAP: i32 = 5;
    pub const SIGABRT: i32 = 6;
    pub const SIGBUS: i32 = 7;
    pub const SIGFPE: i32 = 8;
    pub const SIGKILL: i32 = 9;
    pub const SIGSEGV: i32 = 11;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_record_round_trips() {
        let record = CrashRecord { vector: 14, fault_address: 0xdead, r15: 7, ..Default::default() };
        assert_eq!(CrashRecord::from_bytes(&record.to_bytes()), Some(record));
        assert_eq!(CrashRecord::from_bytes(&[0; 10]), None);
    }

    #[test]
    fn stream_bytes_decode() {
        for stream in [Stream::Stdout, Stream::Stderr, Stream::Exit, Stream::Crash, Stream::Log] {
            assert_eq!(Stream::from_byte(stream as u8), Some(stream));
        }
        assert_eq!(Stream::from_byte(0), None);
        assert_eq!(Stream::from_byte(6), None);
    }

    #[test]
    fn qemu_exit_status_matches_isa_debug_exit() {
        assert_eq!(QEMU_EXIT_STATUS, 1);
    }
}
