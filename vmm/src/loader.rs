//! Builds the guest's initial memory: the layout is planned, the kernel relocated, the app's segments,
//! the boot info, the argument strings, stdin and the packed files placed in guest-physical memory, and
//! the initial page tables written — one [`MemoryImage`] and [`VcpuEntry`] that either backend can run.
//!
//! Physical placement (independent of the virtual layout):
//! ```text
//!  0 .. 1 MiB              never used (legacy holes on the PC machine)
//!  1 MiB                   PVH boot trampoline (QEMU only; identity mapped)
//!  1 MiB + 4 KiB ..        boot info, argument strings, kernel image, app image, stdin, files
//!  ..                      page tables
//!  .. memory_size          free: the kernel's heap and the app's memory
//! ```

use std::collections::BTreeMap;

use isolation::layout::{self, ProcessLayout, Span, VmLayout, VmLayoutRequest};
use isolation::paging::{self, PageFlags, PhysMemory, HUGE_PAGE_SIZE, PAGE_SIZE};
use kernel_abi::{
    BootInfo, IsolationMode, MappedRegion, PhysBlob, RegionKind, VirtSpan, MAX_REGIONS, PERM_EXEC, PERM_READ,
    PERM_WRITE, RANDOM_PREFIX_SIZE,
};
use rand_core::{RngCore, SeedableRng};
use zerocopy::IntoBytes;

use crate::elf::{AppElf, KernelElf, Segment};
use crate::image::{Bytes, Chunk, MemoryImage, VcpuEntry, LOW_MEMORY_END, TRAMPOLINE_ADDR, TRAMPOLINE_SIZE};
use crate::initial_stack::{build_initial_stack, AuxvInputs};

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
    Stack(#[from] crate::initial_stack::StackError),
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
}

/// One mapped region, for `--print-layout` and crash reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RegionReport {
    pub name: String,
    pub kind: String,
    pub virt_start: u64,
    pub virt_end: u64,
    /// Guest-physical start; `None` for reservations the kernel backs on demand.
    pub phys_start: Option<u64>,
    pub perms: String,
    /// Protection key (in `mpk` mode).
    pub pkey: Option<u8>,
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

/// Guest-physical bump allocation of page-aligned ranges.
struct PhysAllocator {
    next: u64,
    end: u64,
}

impl PhysAllocator {
    fn alloc(&mut self, size: u64) -> Result<u64, LoadError> {
        let start = self.next;
        let end = start
            .checked_add(round_up(size, PAGE_SIZE))
            .filter(|end| *end <= self.end)
            .ok_or(LoadError::OutOfMemory { needed_mib: start.saturating_add(size).div_ceil(1 << 20) })?;
        self.next = end;
        Ok(start)
    }
}

/// Page tables under construction: the table frames, as the bytes the guest will see. They are the
/// last allocations, so they lie one after another from `base`: one buffer and one chunk.
struct TableBuilder {
    base: u64,
    bytes: Vec<u8>,
    allocator: PhysAllocator,
}

impl TableBuilder {
    fn new(allocator: PhysAllocator) -> Self {
        // Enough for the usual dozen or so tables without growing.
        const USUAL_FRAMES: usize = 16;
        Self { base: allocator.next, bytes: Vec::with_capacity(USUAL_FRAMES * PAGE_SIZE as usize), allocator }
    }

    /// Where in `bytes` the entry at `phys` is, if it is in a table.
    fn entry(&self, phys: u64) -> Option<std::ops::Range<usize>> {
        let at = usize::try_from(phys.checked_sub(self.base)? & !7).ok()?;
        (at + 8 <= self.bytes.len()).then_some(at..at + 8)
    }
}

impl PhysMemory for TableBuilder {
    fn read_u64(&self, phys: u64) -> u64 {
        let entry = self.entry(phys).and_then(|range| self.bytes[range].try_into().ok());
        entry.map_or(0, u64::from_le_bytes)
    }
    fn write_u64(&mut self, phys: u64, value: u64) {
        if let Some(range) = self.entry(phys) {
            self.bytes[range].copy_from_slice(&value.to_le_bytes());
        }
    }
    fn alloc_zeroed_frame(&mut self) -> Option<u64> {
        let frame = self.allocator.alloc(PAGE_SIZE).ok()?;
        // A bump allocator: each frame follows the previous one.
        debug_assert_eq!(frame, self.base + self.bytes.len() as u64);
        self.bytes.resize(self.bytes.len() + PAGE_SIZE as usize, 0);
        Some(frame)
    }
}

fn round_up(value: u64, align: u64) -> u64 {
    value.div_ceil(align).saturating_mul(align)
}

fn perms_string(perms: u32) -> String {
    let flag = |bit, c| if perms & bit != 0 { c } else { '-' };
    [flag(PERM_READ, 'r'), flag(PERM_WRITE, 'w'), flag(PERM_EXEC, 'x')].iter().collect()
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

/// How much of the app's stack below its initial contents the VMM backs too (with zeroed frames it never
/// writes): nearly every program touches its first stack pages at once (glibc's start-up alone puts a
/// 4 KiB buffer there), and where kernel code is emulated each page the kernel backs on first touch costs
/// hundreds of microseconds, while mapping it here costs the VMM a page-table entry.
const STACK_BACKED_BELOW: u64 = 32 * 1024;

/// The pages `[vaddr, vaddr + size)` covers, rounded outwards.
fn page_span(vaddr: u64, size: u64) -> Span {
    let start = vaddr & !(PAGE_SIZE - 1);
    Span::new(start, round_up(vaddr.saturating_add(size), PAGE_SIZE) - start)
}

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

/// Builds the guest's memory for `request` with the given layout.
pub fn build(request: &LoadRequest<'_>, layout: &VmLayout, kernel_seed: [u8; 32]) -> Result<LoadedVm, LoadError> {
    let memory_size = request.memory_size;
    let mut phys = PhysAllocator { next: LOW_MEMORY_END + TRAMPOLINE_SIZE, end: memory_size };
    let mut chunks = Vec::new();
    let mut regions: Vec<MappedRegion> = Vec::new();
    // (virtual span, physical start, flags, huge pages)
    let mut mappings: Vec<(Span, u64, PageFlags, bool)> = Vec::new();

    let boot_info_phys = phys.alloc(std::mem::size_of::<BootInfo>() as u64)?;

    let exe_path_phys = phys.alloc(request.exe_path.len() as u64)?;

    // The kernel, relocated for its virtual base, contiguous in physical memory. Its chunks are its
    // segments' initialized bytes: guest RAM starts zeroed, and copying the bss (most of the span) would
    // only fault in pages twice, in the image and in guest memory.
    let kernel_base = layout.kernel.start;
    let kernel_pieces = request.kernel.load_segments(request.kernel_file, kernel_base).map_err(LoadError::Kernel)?;
    let kernel_phys = phys.alloc(request.kernel.span.size)?;
    let kernel_span_start = request.kernel.span.start;
    let mut kernel_pages: BTreeMap<u64, u32> = BTreeMap::new();
    for segment in &request.kernel.segments {
        let pages = page_span(segment.vaddr - kernel_span_start, segment.mem_size);
        for page in (pages.start..pages.end()).step_by(PAGE_SIZE as usize) {
            *kernel_pages.entry(page).or_default() |= segment.perms;
        }
        regions.push(MappedRegion {
            virt_start: kernel_base + pages.start,
            size: pages.size,
            phys_start: kernel_phys + pages.start,
            kind: region_kind_for_kernel(segment) as u32,
            perms: segment.perms,
        });
    }
    for (page, perms) in &kernel_pages {
        let flags = PageFlags {
            writable: perms & PERM_WRITE != 0,
            executable: perms & PERM_EXEC != 0,
            user: false,
            pkey: 0,
            global: false,
        };
        mappings.push((Span::new(kernel_base + page, PAGE_SIZE), kernel_phys + page, flags, false));
    }
    chunks.extend(
        kernel_pieces.into_iter().map(|piece| Chunk { guest_phys: kernel_phys + piece.offset, bytes: piece.bytes }),
    );

    // The app: its whole page span contiguous in physical memory, file bytes placed (shared with the
    // file's buffer, not copied), bss left zero.
    let app = request.app;
    let app_base = layout.app.start;
    let app_phys = phys.alloc(app.span.size)?;
    let mut app_pages: BTreeMap<u64, u32> = BTreeMap::new();
    for segment in &app.segments {
        let offset = segment.vaddr - app.span.start;
        let bytes = app.segment_bytes(segment, request.app_file);
        if !bytes.is_empty() {
            chunks.push(Chunk { guest_phys: app_phys + offset, bytes: request.app_file.slice_ref(bytes) });
        }
        let pages = page_span(offset, segment.mem_size);
        for page in (pages.start..pages.end()).step_by(PAGE_SIZE as usize) {
            *app_pages.entry(page).or_default() |= segment.perms;
        }
        regions.push(MappedRegion {
            virt_start: app_base + pages.start,
            size: pages.size,
            phys_start: app_phys + pages.start,
            kind: RegionKind::AppSegment as u32,
            perms: segment.perms,
        });
    }
    for (page, perms) in &app_pages {
        let flags = PageFlags {
            writable: perms & PERM_WRITE != 0,
            executable: perms & PERM_EXEC != 0,
            user: true,
            pkey: 0,
            global: false,
        };
        mappings.push((Span::new(app_base + page, PAGE_SIZE), app_phys + page, flags, false));
    }

    let stdin_phys = phys.alloc(request.stdin.len() as u64)?;
    let files_phys = phys.alloc(request.files.len() as u64)?;
    let random = random_prefix(kernel_seed);
    let random_phys = phys.alloc(random.len() as u64)?;
    for (at, bytes) in [
        (exe_path_phys, request.exe_path),
        (stdin_phys, request.stdin),
        (files_phys, request.files),
        (random_phys, &random[..]),
    ] {
        if !bytes.is_empty() {
            chunks.push(Chunk { guest_phys: at, bytes: Bytes::copy_from_slice(bytes) });
        }
    }

    // The kernel's window on all of guest memory, in 2 MiB pages.
    let physmap_flags = PageFlags { writable: true, executable: false, user: false, pkey: 0, global: false };
    mappings.push((layout.physmap, 0, physmap_flags, true));
    regions.push(MappedRegion {
        virt_start: layout.physmap.start,
        size: layout.physmap.size,
        phys_start: 0,
        kind: RegionKind::PhysMap as u32,
        perms: PERM_READ | PERM_WRITE,
    });
    // The PVH trampoline, identity mapped so it keeps running when it turns paging on.
    let trampoline_flags = PageFlags { writable: false, executable: true, user: false, pkey: 0, global: false };
    mappings.push((Span::new(TRAMPOLINE_ADDR, TRAMPOLINE_SIZE), TRAMPOLINE_ADDR, trampoline_flags, false));
    regions.push(MappedRegion {
        virt_start: TRAMPOLINE_ADDR,
        size: TRAMPOLINE_SIZE,
        phys_start: TRAMPOLINE_ADDR,
        kind: RegionKind::BootTrampoline as u32,
        perms: PERM_READ | PERM_EXEC,
    });
    if regions.len() > MAX_REGIONS {
        return Err(LoadError::TooManyRegions);
    }

    // The process: stack, brk and mmap spans, and the initial stack at the stack's top, in frames of its
    // own (the rest of the stack, brk and mmap are backed by the kernel on first touch).
    let process = layout::plan_guest_process(&regions, kernel_seed, request.aslr).map_err(LoadError::Layout)?;
    let relocate = |vaddr: u64| app.runtime_address(vaddr, app_base).unwrap_or(0);
    let app_entry = relocate(app.entry);
    let aux = AuxvInputs {
        phdr: relocate(app.phdr_vaddr),
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
    let stack_phys = phys.alloc(backed.size)?;
    chunks.push(Chunk { guest_phys: stack_phys + (stack.rsp - backed.start), bytes: stack.bytes.into() });
    let stack_flags = PageFlags { writable: true, executable: false, user: true, pkey: 0, global: false };
    mappings.push((backed, stack_phys, stack_flags, false));

    let mut tables = TableBuilder::new(phys);
    let root = tables.alloc_zeroed_frame().ok_or(LoadError::OutOfMemory { needed_mib: memory_size >> 20 })?;
    for (span, phys_start, flags, huge) in &mappings {
        paging::map(&mut tables, root, span.start, *phys_start, span.size, *flags, *huge).map_err(LoadError::Paging)?;
    }
    let free_start = tables.allocator.next;
    // The kernel needs room for its heap and the app's stack and data.
    const MIN_FREE: u64 = 8 << 20;
    if memory_size.saturating_sub(free_start) < MIN_FREE {
        return Err(LoadError::OutOfMemory { needed_mib: (free_start + MIN_FREE).div_ceil(1 << 20) });
    }
    chunks.push(Chunk { guest_phys: tables.base, bytes: tables.bytes.into() });

    let mut info = BootInfo::empty();
    info.isolation = request.isolation as u32;
    info.flags = if request.trace_syscalls { kernel_abi::FLAG_TRACE_SYSCALLS } else { 0 }
        | if request.strict_inspection { kernel_abi::FLAG_STRICT_INSPECTION } else { 0 };
    info.memory_size = memory_size;
    info.physmap_base = layout.physmap.start;
    info.page_table_root = root;
    info.free_phys_start = free_start;
    info.free_phys_end = memory_size;
    info.kernel_virt_base = kernel_base;
    info.app_entry = app_entry;
    info.stack_pointer = stack.rsp;
    info.hwcap_slot = stack.hwcap_slot;
    info.exe_path = PhysBlob { phys_start: exe_path_phys, size: request.exe_path.len() as u64 };
    info.stdin = PhysBlob { phys_start: stdin_phys, size: request.stdin.len() as u64 };
    info.files = PhysBlob { phys_start: files_phys, size: request.files.len() as u64 };
    info.seed = kernel_seed;
    info.tsc_khz = request.tsc_khz;
    info.boot_unix_ns = request.boot_unix_ns;
    let virt = |span: Span| VirtSpan { start: span.start, size: span.size };
    info.stack = virt(process.stack);
    info.brk = virt(process.brk);
    info.mmap = virt(process.mmap);
    info.random = PhysBlob { phys_start: random_phys, size: random.len() as u64 };
    info.region_count = regions.len() as u64;
    info.regions[..regions.len()].copy_from_slice(&regions);
    chunks.push(Chunk { guest_phys: boot_info_phys, bytes: Bytes::copy_from_slice(info.as_bytes()) });
    chunks.sort_by_key(|chunk| chunk.guest_phys);

    let mpk = request.isolation == IsolationMode::Mpk;
    let mut reports: Vec<RegionReport> = regions
        .iter()
        .filter_map(|region| {
            let kind = RegionKind::from_u32(region.kind)?;
            let name = match kind {
                RegionKind::BootTrampoline => "boot trampoline (unmapped before the app starts)",
                other => other.name(),
            };
            Some(RegionReport {
                name: name.to_string(),
                kind: kind.name().to_string(),
                virt_start: region.virt_start,
                virt_end: region.virt_start + region.size,
                phys_start: Some(region.phys_start),
                perms: perms_string(region.perms),
                pkey: mpk.then(|| isolation::pkeys::pkey_for(kind)),
            })
        })
        .collect();
    for (name, span) in [("app stack", process.stack), ("app brk heap", process.brk), ("app mmap area", process.mmap)] {
        reports.push(RegionReport {
            name: name.to_string(),
            kind: name.to_string(),
            virt_start: span.start,
            virt_end: span.end(),
            phys_start: None,
            perms: perms_string(PERM_READ | PERM_WRITE),
            pkey: mpk.then_some(isolation::pkeys::PKEY_APP),
        });
    }
    reports.sort_by_key(|report| report.virt_start);
    Ok(LoadedVm {
        image: MemoryImage { memory_size, chunks },
        entry: VcpuEntry {
            rip: request.kernel.entry_address(kernel_base).unwrap_or(kernel_base),
            rdi: layout.physmap.start + boot_info_phys,
            page_table_root: root,
        },
        layout: *layout,
        process,
        regions: reports,
        kernel_seed,
    })
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
