//! Builds the guest's initial memory: the kernel relocated, the app's segments, the app's initial stack,
//! the argument strings, stdin, the packed files and the random prefix placed in guest-physical memory,
//! the initial page tables written and the boot info filled in — one [`MemoryImage`] and [`VcpuEntry`]
//! that either backend can run.
//!
//! [`build`] runs named steps over one `ImageBuilder`; each step allocates guest-physical memory upwards
//! from [`IMAGE_START`], in the order `crate::arch::x86_64::layout` draws, and records what it placed:
//! chunks of bytes, the regions the boot info lists, and the mappings the page tables will hold.
//! 1. the boot info's page (filled last) and the app's path (`place_blob`);
//! 2. `place_kernel`: the kernel, relocated for its virtual base;
//! 3. `place_app`: the app's segments;
//! 4. stdin, the packed files and the random prefix (`place_blob`);
//! 5. `map_physmap_and_trampoline`: the kernel's physical map and the identity-mapped trampoline;
//! 6. `place_initial_stack`: the process areas, and the app's initial stack at the stack's top;
//! 7. `write_page_tables`: the tables for every mapping, the last allocation;
//! 8. `fill_boot_info`: everything the kernel needs to find, in its versioned boot info;
//! 9. `region_reports`: the regions as `--print-layout` and `--report` show
//!    them.

mod phys;
mod regions;

use std::collections::BTreeMap;

use isolation::layout::{self, ProcessLayout, Span, VmLayout, VmLayoutRequest};
use isolation::paging::{self, PageFlags, PhysMemory, HUGE_PAGE_SIZE, PAGE_SIZE};
use kernel_abi::{
    BootInfo, IsolationMode, MappedRegion, PhysBlob, RegionKind, VirtSpan, MAX_REGIONS, PERM_EXEC, PERM_READ,
    PERM_WRITE, RANDOM_PREFIX_SIZE,
};
use rand_core::{RngCore, SeedableRng};
use zerocopy::IntoBytes;

use crate::arch::x86_64::layout::{IMAGE_START, TRAMPOLINE_ADDR, TRAMPOLINE_SIZE};
use crate::elf::{AppElf, KernelElf, Segment};
use crate::image::{Bytes, Chunk, MemoryImage, VcpuEntry};
use exec::initial_stack::{build_initial_stack, AuxvInputs};
use phys::{round_up, PhysAllocator, TableBuilder};

pub use exec::initial_stack::StackError;
pub use regions::RegionReport;

/// Why the guest's memory could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no address-space layout fits: {0}")]
    Layout(layout::LayoutError),
    #[error("guest memory too small: the images need {needed_mib} MiB plus room to run; use a larger --memory")]
    OutOfMemory { needed_mib: u64 },
    #[error("the kernel image cannot be placed: {0}")]
    Kernel(#[source] crate::elf::ElfError),
    #[error("too many segments: at most {MAX_REGIONS} regions fit in the boot info")]
    TooManyRegions,
    #[error("building the page tables failed: {0:?}")]
    Paging(paging::PagingError),
    #[error("cannot build the app's initial stack: {0}")]
    Stack(#[from] StackError),
}

/// What to load.
pub struct LoadRequest<'a> {
    pub kernel: &'a KernelElf,
    /// The file `kernel` was parsed from; the image shares its buffer where it can.
    pub kernel_file: &'a Bytes,
    pub app: &'a AppElf,
    /// The file `app` was parsed from; the app's chunks share its buffer.
    pub app_file: &'a Bytes,
    /// argv then envp strings, without their NULs.
    pub argv: &'a [Vec<u8>],
    pub envp: &'a [Vec<u8>],
    /// The app's absolute path (`/proc/self/exe`).
    pub exe_path: &'a [u8],
    pub stdin: &'a [u8],
    /// The packed `--mount` files (kernel_abi::archive format).
    pub files: &'a [u8],
    pub isolation: IsolationMode,
    pub memory_size: u64,
    pub trace_syscalls: bool,
    pub strict_inspection: bool,
    /// Seeds the layout (with ASLR) and the kernel's CSPRNG.
    pub seed: u64,
    pub aslr: bool,
    pub tsc_khz: u64,
    pub boot_unix_ns: u64,
    /// `--afl`: the input region, the input's guest path and the coverage map (`kernel_abi::afl`).
    pub afl: Option<AflLoad<'a>>,
}

/// What `--afl` adds to the guest.
#[derive(Clone, Copy, Debug)]
pub struct AflLoad<'a> {
    /// The most input bytes one execution can get (the region is this plus the length header).
    pub input_capacity: u64,
    /// The absolute guest path at which the input appears (`None`: as stdin).
    pub input_path: Option<&'a [u8]>,
    /// The coverage map's size in bytes (0: no map).
    pub map_size: u64,
    /// Place the map above RAM (the KVM backend registers the host's segment there), else inside the image.
    pub map_above_ram: bool,
    /// The SysV id the app attaches the map under.
    pub shm_id: u64,
    /// Snapshot after the app's start-up rather than at its first instruction (`kernel_abi::afl`).
    pub snapshot_after_startup: bool,
}

/// Where `--afl`'s pieces lie in guest-physical memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AflRegions {
    /// The input region (length header, then the bytes).
    pub input: PhysBlob,
    /// The coverage map's frames (above RAM, or inside it).
    pub map: PhysBlob,
}

impl AflRegions {
    /// The most input bytes the input region holds.
    pub fn input_capacity(&self) -> usize {
        (self.input.size as usize).saturating_sub(kernel_abi::afl::INPUT_HEADER)
    }

    /// What the input region holds for `input`, truncated to the capacity: its length, then its bytes.
    pub fn input_region_bytes(&self, input: &[u8]) -> Vec<u8> {
        let input = &input[..input.len().min(self.input_capacity())];
        let mut bytes = Vec::with_capacity(kernel_abi::afl::INPUT_HEADER + input.len());
        bytes.extend_from_slice(&(input.len() as u64).to_le_bytes());
        bytes.extend_from_slice(input);
        bytes
    }
}

/// The loaded guest.
pub struct LoadedVm {
    pub image: MemoryImage,
    pub entry: VcpuEntry,
    pub layout: VmLayout,
    /// The stack, brk and mmap area the kernel will choose (same function, same seed).
    pub process: ProcessLayout,
    pub regions: Vec<RegionReport>,
    /// The seed the kernel received (derived from `LoadRequest::seed`).
    pub kernel_seed: [u8; 32],
}

/// How much of the app's stack below its initial contents the VMM backs too (with zeroed frames it never
/// writes): nearly every program touches its first stack pages at once (glibc's start-up alone puts a
/// 4 KiB buffer there), and where kernel code is emulated each page the kernel backs on first touch costs
/// hundreds of microseconds, while mapping it here costs the VMM a page-table entry.
const STACK_BACKED_BELOW: u64 = 32 * 1024;

/// The free memory the kernel needs after the image, for its heap and the app's stack and data.
const MIN_FREE: u64 = 8 << 20;

/// The layout the VMM plans for this request (fixed without ASLR, else drawn from `rng`).
pub fn plan_layout(
    kernel: &KernelElf,
    app: &AppElf,
    memory_size: u64,
    rng: Option<&mut impl RngCore>,
) -> Result<VmLayout, LoadError> {
    let request = VmLayoutRequest {
        kernel_size: kernel.span.size,
        app: app.placement(),
        physmap_size: round_up(memory_size, HUGE_PAGE_SIZE),
        reserved: Some(Span::new(TRAMPOLINE_ADDR, TRAMPOLINE_SIZE)),
    };
    layout::plan_vm_layout(&request, rng).map_err(LoadError::Layout)
}

/// Builds the guest's memory for `request` with the given layout (the steps of the module docs).
pub fn build(request: &LoadRequest<'_>, layout: &VmLayout, kernel_seed: [u8; 32]) -> Result<LoadedVm, LoadError> {
    let mut image = ImageBuilder::new(request.memory_size);
    let boot_info_phys = image.phys.alloc(std::mem::size_of::<BootInfo>() as u64)?;
    // A zero page of the image: guest memory starts zeroed on both backends.
    let console_ring = image.phys.alloc(kernel_abi::RING_SIZE as u64)?;
    let exe_path = image.place_blob(request.exe_path)?;
    place_kernel(&mut image, request.kernel, request.kernel_file, layout.kernel.start)?;
    place_app(&mut image, request.app, request.app_file, layout.app.start)?;
    let blobs = Blobs {
        exe_path,
        stdin: image.place_blob(request.stdin)?,
        files: image.place_blob(request.files)?,
        random: image.place_blob(&random_prefix(kernel_seed))?,
    };
    let afl = request.afl.map(|afl| place_afl(&mut image, &afl, request.memory_size)).transpose()?;
    map_physmap_and_trampoline(&mut image, layout.physmap)?;
    let process = layout::plan_guest_process(&image.regions, kernel_seed, request.aslr).map_err(LoadError::Layout)?;
    let app_entry = request.app.runtime_address(request.app.entry, layout.app.start).unwrap_or(0);
    let stack = place_initial_stack(&mut image, request, layout.app.start, app_entry, &process, kernel_seed)?;

    let ImageBuilder { phys, mut chunks, regions, mappings } = image;
    let tables = write_page_tables(phys, &mappings, request.memory_size)?;
    let entry = VcpuEntry {
        rip: request.kernel.entry_address(layout.kernel.start).unwrap_or(layout.kernel.start),
        rdi: layout.physmap.start + boot_info_phys,
        page_table_root: tables.root,
    };
    let mut info = fill_boot_info(request, layout, &process, &regions, &blobs, &stack, &tables, app_entry, kernel_seed);
    info.console_ring = console_ring;
    if let (Some(request), Some((regions, path))) = (&request.afl, &afl) {
        info.afl_input = regions.input;
        info.afl_input_path = *path;
        info.afl_map = regions.map;
        info.afl_shm_id = request.shm_id;
        if request.snapshot_after_startup {
            info.flags |= kernel_abi::FLAG_AFL_SNAPSHOT_AFTER_STARTUP;
        }
    }
    chunks.push(Chunk { guest_phys: boot_info_phys, bytes: Bytes::copy_from_slice(info.as_bytes()) });
    chunks.push(Chunk { guest_phys: tables.base, bytes: tables.bytes.into() });
    chunks.sort_by_key(|chunk| chunk.guest_phys);
    Ok(LoadedVm {
        image: MemoryImage {
            memory_size: request.memory_size,
            chunks,
            console_ring,
            afl: afl.map(|(regions, _)| regions),
        },
        entry,
        layout: *layout,
        regions: regions::region_reports(&regions, &process, request.isolation == IsolationMode::Mpk),
        process,
        kernel_seed,
    })
}

/// The guest's memory while [`build`] puts it together.
struct ImageBuilder {
    /// Where the next placement goes.
    phys: PhysAllocator,
    /// Bytes placed so far (any order: [`build`] sorts them).
    chunks: Vec<Chunk>,
    /// The regions the boot info lists, in the order the kernel sees them.
    regions: Vec<MappedRegion>,
    /// What the initial page tables map, in the order the tables are written (which decides where each
    /// table frame lies).
    mappings: Vec<Mapping>,
}

/// One range the initial page tables map.
struct Mapping {
    span: Span,
    phys_start: u64,
    flags: PageFlags,
    /// In 2 MiB pages.
    huge: bool,
}

impl ImageBuilder {
    fn new(memory_size: u64) -> Self {
        Self {
            phys: PhysAllocator { next: IMAGE_START, end: memory_size },
            chunks: Vec::new(),
            regions: Vec::new(),
            mappings: Vec::new(),
        }
    }

    /// Copies `bytes` into pages of their own, unmapped (the kernel reads them through its physical
    /// map), and says where they are.
    fn place_blob(&mut self, bytes: &[u8]) -> Result<PhysBlob, LoadError> {
        let phys_start = self.phys.alloc(bytes.len() as u64)?;
        if !bytes.is_empty() {
            self.chunks.push(Chunk { guest_phys: phys_start, bytes: Bytes::copy_from_slice(bytes) });
        }
        Ok(PhysBlob { phys_start, size: bytes.len() as u64 })
    }

    /// Lists the `segments` of an image whose span starts at `span_start` as regions at `base`, backed
    /// contiguously from `phys`, and maps each page they touch with the union of their permissions (two
    /// segments may share a boundary page), at CPL3 when `user`.
    fn map_segments(
        &mut self,
        segments: &[Segment],
        span_start: u64,
        base: u64,
        phys: u64,
        user: bool,
        kind: impl Fn(&Segment) -> RegionKind,
    ) {
        let mut pages: BTreeMap<u64, u32> = BTreeMap::new();
        for segment in segments {
            let span = page_span(segment.vaddr - span_start, segment.mem_size);
            for page in (span.start..span.end()).step_by(PAGE_SIZE as usize) {
                *pages.entry(page).or_default() |= segment.perms;
            }
            self.regions.push(MappedRegion {
                virt_start: base + span.start,
                size: span.size,
                phys_start: phys + span.start,
                kind: kind(segment) as u32,
                perms: segment.perms,
            });
        }
        for (page, perms) in pages {
            let flags = PageFlags {
                writable: perms & PERM_WRITE != 0,
                executable: perms & PERM_EXEC != 0,
                user,
                pkey: 0,
                global: false,
            };
            self.mappings.push(Mapping {
                span: Span::new(base + page, PAGE_SIZE),
                phys_start: phys + page,
                flags,
                huge: false,
            });
        }
    }
}

/// The blobs the kernel finds through its boot info.
struct Blobs {
    exe_path: PhysBlob,
    stdin: PhysBlob,
    files: PhysBlob,
    random: PhysBlob,
}

/// The input region (zero: an empty input until the backend writes one), the input's path, and the
/// coverage map: inside the image, or at the first 2 MiB boundary above RAM.
fn place_afl(
    image: &mut ImageBuilder,
    afl: &AflLoad<'_>,
    memory_size: u64,
) -> Result<(AflRegions, PhysBlob), LoadError> {
    let size = afl.input_capacity.saturating_add(kernel_abi::afl::INPUT_HEADER as u64);
    let input = PhysBlob { phys_start: image.phys.alloc(size)?, size };
    let path = image.place_blob(afl.input_path.unwrap_or_default())?;
    let map_size = round_up(afl.map_size, PAGE_SIZE);
    let map_start = match (map_size, afl.map_above_ram) {
        (0, _) => 0,
        (_, true) => round_up(memory_size, HUGE_PAGE_SIZE),
        (_, false) => image.phys.alloc(map_size)?,
    };
    Ok((AflRegions { input, map: PhysBlob { phys_start: map_start, size: map_size } }, path))
}

/// The kernel, relocated for its virtual `base`, contiguous in physical memory, on supervisor pages.
/// Its chunks are its segments' initialized bytes: guest RAM starts zeroed, and copying the bss (most of
/// the span) would only fault in pages twice, in the image and in guest memory.
fn place_kernel(image: &mut ImageBuilder, kernel: &KernelElf, file: &Bytes, base: u64) -> Result<(), LoadError> {
    let pieces = crate::elf::load_kernel_segments(kernel, file, base).map_err(LoadError::Kernel)?;
    let phys = image.phys.alloc(kernel.span.size)?;
    image.map_segments(&kernel.segments, kernel.span.start, base, phys, false, region_kind_for_kernel);
    image.chunks.extend(pieces.into_iter().map(|piece| Chunk { guest_phys: phys + piece.offset, bytes: piece.bytes }));
    Ok(())
}

fn region_kind_for_kernel(segment: &Segment) -> RegionKind {
    if segment.perms & PERM_EXEC != 0 {
        RegionKind::KernelText
    } else if segment.perms & PERM_WRITE != 0 {
        RegionKind::KernelData
    } else {
        RegionKind::KernelRodata
    }
}

/// The app at `base`: its whole page span contiguous in physical memory, on user pages, its file bytes
/// placed (shared with the file's buffer, not copied), its bss left zero.
fn place_app(image: &mut ImageBuilder, app: &AppElf, file: &Bytes, base: u64) -> Result<(), LoadError> {
    let phys = image.phys.alloc(app.span.size)?;
    for segment in &app.segments {
        let bytes = app.segment_bytes(segment, file);
        if !bytes.is_empty() {
            let guest_phys = phys + (segment.vaddr - app.span.start);
            image.chunks.push(Chunk { guest_phys, bytes: file.slice_ref(bytes) });
        }
    }
    image.map_segments(&app.segments, app.span.start, base, phys, true, |_| RegionKind::AppSegment);
    Ok(())
}

/// The kernel's window on all of guest memory (2 MiB pages at `physmap`), and the PVH trampoline page,
/// identity mapped so that it keeps running when it turns paging on. These complete the regions the
/// boot info lists.
fn map_physmap_and_trampoline(image: &mut ImageBuilder, physmap: Span) -> Result<(), LoadError> {
    let physmap_flags = PageFlags { writable: true, executable: false, user: false, pkey: 0, global: false };
    image.mappings.push(Mapping { span: physmap, phys_start: 0, flags: physmap_flags, huge: true });
    image.regions.push(MappedRegion {
        virt_start: physmap.start,
        size: physmap.size,
        phys_start: 0,
        kind: RegionKind::PhysMap as u32,
        perms: PERM_READ | PERM_WRITE,
    });
    let trampoline = Span::new(TRAMPOLINE_ADDR, TRAMPOLINE_SIZE);
    let trampoline_flags = PageFlags { writable: false, executable: true, user: false, pkey: 0, global: false };
    image.mappings.push(Mapping {
        span: trampoline,
        phys_start: TRAMPOLINE_ADDR,
        flags: trampoline_flags,
        huge: false,
    });
    image.regions.push(MappedRegion {
        virt_start: TRAMPOLINE_ADDR,
        size: TRAMPOLINE_SIZE,
        phys_start: TRAMPOLINE_ADDR,
        kind: RegionKind::BootTrampoline as u32,
        perms: PERM_READ | PERM_EXEC,
    });
    if image.regions.len() > MAX_REGIONS {
        return Err(LoadError::TooManyRegions);
    }
    Ok(())
}

/// Where the app's initial stack ended up.
struct StackTop {
    /// The app's RSP at entry.
    rsp: u64,
    /// The address of the AT_HWCAP value the kernel fills in.
    hwcap_slot: u64,
}

/// The app's initial stack (argc, argv, envp, auxv) at the top of the `process` stack span, in frames of
/// its own together with [`STACK_BACKED_BELOW`] more bytes below it; the rest of the stack, the brk heap
/// and the mmap area are backed by the kernel on first touch.
fn place_initial_stack(
    image: &mut ImageBuilder,
    request: &LoadRequest<'_>,
    app_base: u64,
    app_entry: u64,
    process: &ProcessLayout,
    kernel_seed: [u8; 32],
) -> Result<StackTop, LoadError> {
    let app = request.app;
    let aux = AuxvInputs {
        phdr: app.runtime_address(app.phdr_vaddr, app_base).unwrap_or(0),
        phnum: app.phnum,
        phent: app.phent,
        entry: app_entry,
        random: at_random(kernel_seed),
        execfn: request.argv.first().map(Vec::as_slice).unwrap_or_default(),
    };
    let max_size = usize::try_from(process.stack.size / 4).unwrap_or(usize::MAX);
    let stack = build_initial_stack(process.stack.end(), request.argv, request.envp, &aux, max_size)?;
    let stack_pages = page_span(stack.rsp, stack.bytes.len() as u64);
    let backed_start = stack_pages.start.saturating_sub(STACK_BACKED_BELOW).max(process.stack.start);
    let backed = Span::new(backed_start, stack_pages.end() - backed_start);
    let phys = image.phys.alloc(backed.size)?;
    image.chunks.push(Chunk { guest_phys: phys + (stack.rsp - backed.start), bytes: stack.bytes.into() });
    let flags = PageFlags { writable: true, executable: false, user: true, pkey: 0, global: false };
    image.mappings.push(Mapping { span: backed, phys_start: phys, flags, huge: false });
    Ok(StackTop { rsp: stack.rsp, hwcap_slot: stack.hwcap_slot })
}

/// The written page tables.
struct PageTables {
    root: u64,
    /// Guest-physical address of the first table frame; the frames follow one another.
    base: u64,
    bytes: Vec<u8>,
    /// The first byte after the image: from here up is the kernel's free memory.
    free_start: u64,
}

/// The 4-level page tables for `mappings`, in frames allocated from `phys` (after everything else), with
/// the same `isolation::paging` code the kernel edits them with at run time. Refuses a `memory_size` that
/// leaves the kernel less than [`MIN_FREE`] after them.
fn write_page_tables(phys: PhysAllocator, mappings: &[Mapping], memory_size: u64) -> Result<PageTables, LoadError> {
    let mut tables = TableBuilder::new(phys);
    let root = tables.alloc_zeroed_frame().ok_or(LoadError::OutOfMemory { needed_mib: memory_size >> 20 })?;
    for mapping in mappings {
        let Mapping { span, phys_start, flags, huge } = mapping;
        paging::map(&mut tables, root, span.start, *phys_start, span.size, *flags, *huge).map_err(LoadError::Paging)?;
    }
    let free_start = tables.allocator.next;
    if memory_size.saturating_sub(free_start) < MIN_FREE {
        return Err(LoadError::OutOfMemory { needed_mib: (free_start + MIN_FREE).div_ceil(1 << 20) });
    }
    Ok(PageTables { root, base: tables.base, bytes: tables.bytes, free_start })
}

/// The boot info: where everything is, what the kernel must set up, and the seed of its randomness.
#[allow(clippy::too_many_arguments)]
fn fill_boot_info(
    request: &LoadRequest<'_>,
    layout: &VmLayout,
    process: &ProcessLayout,
    regions: &[MappedRegion],
    blobs: &Blobs,
    stack: &StackTop,
    tables: &PageTables,
    app_entry: u64,
    kernel_seed: [u8; 32],
) -> BootInfo {
    let mut info = BootInfo::empty();
    info.isolation = request.isolation as u32;
    info.flags = if request.trace_syscalls { kernel_abi::FLAG_TRACE_SYSCALLS } else { 0 }
        | if request.strict_inspection { kernel_abi::FLAG_STRICT_INSPECTION } else { 0 }
        | if request.aslr { kernel_abi::FLAG_ASLR } else { 0 };
    info.memory_size = request.memory_size;
    info.physmap_base = layout.physmap.start;
    info.page_table_root = tables.root;
    info.free_phys_start = tables.free_start;
    info.free_phys_end = request.memory_size;
    info.kernel_virt_base = layout.kernel.start;
    info.app_entry = app_entry;
    info.stack_pointer = stack.rsp;
    info.hwcap_slot = stack.hwcap_slot;
    info.exe_path = blobs.exe_path;
    info.stdin = blobs.stdin;
    info.files = blobs.files;
    info.seed = kernel_seed;
    info.tsc_khz = request.tsc_khz;
    info.boot_unix_ns = request.boot_unix_ns;
    let virt = |span: Span| VirtSpan { start: span.start, size: span.size };
    info.stack = virt(process.stack);
    info.brk = virt(process.brk);
    info.mmap = virt(process.mmap);
    info.random = blobs.random;
    info.region_count = regions.len() as u64;
    info.regions[..regions.len()].copy_from_slice(regions);
    info
}

/// The pages `[vaddr, vaddr + size)` covers, rounded outwards.
fn page_span(vaddr: u64, size: u64) -> Span {
    let start = vaddr & !(PAGE_SIZE - 1);
    Span::new(start, round_up(vaddr.saturating_add(size), PAGE_SIZE) - start)
}

/// Fills `bytes` from the start of one stream of the kernel seed.
fn seed_stream_bytes(kernel_seed: [u8; 32], stream: u64, bytes: &mut [u8]) {
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(kernel_seed);
    rng.set_stream(stream);
    rng.fill_bytes(bytes);
}

/// The first [`RANDOM_PREFIX_SIZE`] bytes of the kernel's random stream: computed here because a ChaCha20
/// block costs milliseconds in a guest whose kernel code is emulated (nested KVM), and every C library
/// asks for random bytes while starting.
fn random_prefix(kernel_seed: [u8; 32]) -> Vec<u8> {
    let mut bytes = vec![0; RANDOM_PREFIX_SIZE];
    seed_stream_bytes(kernel_seed, kernel_abi::seed::KERNEL_STREAM, &mut bytes);
    bytes
}

/// The 16 bytes AT_RANDOM points at (the C library's stack-protector and pointer-guard seed).
fn at_random(kernel_seed: [u8; 32]) -> [u8; 16] {
    let mut bytes = [0; 16];
    seed_stream_bytes(kernel_seed, kernel_abi::seed::AT_RANDOM_STREAM, &mut bytes);
    bytes
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// The kernel's chunks leave out its bss (guest RAM starts zeroed, so it needs none) but its whole
    /// span stays reserved: no other chunk lands in it. Together they are the relocated kernel, and the
    /// app's chunks share the app file's buffer.
    #[test]
    fn kernel_chunks_leave_out_the_bss_but_keep_the_span() {
        const MEMORY: u64 = 64 << 20;
        let kernel_file = Bytes::from_static(crate::run::EMBEDDED_KERNEL);
        let kernel = crate::elf::parse_kernel(&kernel_file).unwrap();
        let app_file = Bytes::from(crate::elf::tests::exec());
        let app = crate::elf::parse_app(&app_file).unwrap();
        let layout = plan_layout(&kernel, &app, MEMORY, None::<&mut rand_chacha::ChaCha20Rng>).unwrap();
        let request = LoadRequest {
            kernel: &kernel,
            kernel_file: &kernel_file,
            app: &app,
            app_file: &app_file,
            argv: &[b"/app".to_vec()],
            envp: &[],
            exe_path: b"/app",
            stdin: b"",
            files: &[],
            isolation: IsolationMode::Ring3,
            memory_size: MEMORY,
            trace_syscalls: false,
            strict_inspection: false,
            seed: 1,
            aslr: false,
            tsc_khz: 1,
            boot_unix_ns: 1,
            afl: None,
        };
        let vm = build(&request, &layout, [1; 32]).unwrap();
        let kernel_kinds =
            [RegionKind::KernelText, RegionKind::KernelRodata, RegionKind::KernelData].map(RegionKind::name);
        let kernel_phys = vm
            .regions
            .iter()
            .filter(|region| kernel_kinds.contains(&region.kind.as_str()))
            .filter_map(|region| region.phys_start)
            .min()
            .unwrap();
        let span_end = kernel_phys + kernel.span.size;
        let in_kernel = |chunk: &&Chunk| (kernel_phys..span_end).contains(&chunk.guest_phys);
        let mut loaded = vec![0u8; kernel.span.size as usize];
        let mut copied = 0;
        for chunk in vm.image.chunks.iter().filter(in_kernel) {
            let at = (chunk.guest_phys - kernel_phys) as usize;
            loaded[at..at + chunk.bytes.len()].copy_from_slice(&chunk.bytes);
            copied += chunk.bytes.len() as u64;
        }
        let expected = crate::elf::tests::load_image(&kernel, crate::run::EMBEDDED_KERNEL, layout.kernel.start);
        assert_eq!(loaded, expected.unwrap());
        assert!(kernel.segments.iter().any(|segment| segment.mem_size > segment.file_size), "the kernel has a bss");
        let file_bytes: u64 = kernel.segments.iter().map(|segment| segment.file_size).sum();
        // Only relocations into the bss may add to the file bytes.
        assert!(copied <= file_bytes + 8 * kernel.relocations.len() as u64, "{copied:#x} bytes: the bss too?");
        for chunk in vm.image.chunks.iter().filter(|chunk| !in_kernel(chunk)) {
            let end = chunk.guest_phys + chunk.bytes.len() as u64;
            assert!(
                end <= kernel_phys || chunk.guest_phys >= span_end,
                "chunk at {:#x} in the kernel",
                chunk.guest_phys
            );
        }
        let file = app_file.as_ptr_range();
        for segment in app.segments.iter().filter(|segment| segment.file_size > 0) {
            let bytes = app.segment_bytes(segment, &app_file);
            let chunk = vm.image.chunks.iter().find(|chunk| chunk.bytes[..] == *bytes).unwrap();
            assert!(file.contains(&chunk.bytes.as_ptr()), "the segment at {:#x} was copied", segment.vaddr);
        }
    }

    #[test]
    fn boot_info_bytes_match_the_repr_c_layout() {
        let mut info = BootInfo::empty();
        info.tsc_khz = 0x1122;
        info.region_count = 1;
        info.regions[0] = MappedRegion { virt_start: 7, size: 8, phys_start: 9, kind: 5, perms: 3 };
        info.seed[0] = 0xab;
        info.mmap = VirtSpan { start: 0x5000, size: 0x6000 };
        info.random = PhysBlob { phys_start: 0x7000, size: 0x1000 };
        let bytes = info.as_bytes().to_vec();
        assert_eq!(bytes.len(), std::mem::size_of::<BootInfo>());
        let word = |offset: usize| u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap());
        assert_eq!(word(offset_of!(BootInfo, magic)), kernel_abi::BOOT_INFO_MAGIC);
        assert_eq!(word(offset_of!(BootInfo, tsc_khz)), 0x1122);
        assert_eq!(word(offset_of!(BootInfo, region_count)), 1);
        assert_eq!(word(offset_of!(BootInfo, mmap) + offset_of!(VirtSpan, size)), 0x6000);
        assert_eq!(word(offset_of!(BootInfo, random)), 0x7000);
        assert_eq!(bytes[offset_of!(BootInfo, seed)], 0xab);
        let region = offset_of!(BootInfo, regions);
        assert_eq!(word(region + offset_of!(MappedRegion, phys_start)), 9);
        assert_eq!(bytes[region + offset_of!(MappedRegion, kind)], 5);
        assert_eq!(bytes[region + offset_of!(MappedRegion, perms)], 3);
    }
}
