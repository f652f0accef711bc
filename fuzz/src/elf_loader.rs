//! `elf_loader`: arbitrary bytes as an app ELF, through everything the VMM does with it before a
//! backend runs: `parse_app`, the mpk-mode inspection (`vmm::policy::inspect_app`: W^X and the
//! instruction scan), `plan_layout` (fixed and randomized) with the real embedded kernel, `build` (the
//! MemoryImage: kernel relocation, segment chunks, page tables, boot info) and the QEMU backend's PVH
//! boot ELF.
//!
//! Checked: nothing panics; an accepted app satisfies every property `parse_app` documents; the layout
//! keeps kernel, app and physical map apart; every chunk of the image lies inside guest memory above the
//! trampoline, no two overlap, and the app's file bytes land exactly where its segments say.

use std::sync::LazyLock;

use isolation::layout::{VmLayout, LOWEST_ADDRESS};
use isolation::paging::{LOWER_HALF_END, PAGE_SIZE};
use kernel_abi::{IsolationMode, RegionKind, PERM_EXEC};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use vmm::arch::x86_64::layout::{IMAGE_START, TRAMPOLINE_ADDR, TRAMPOLINE_SIZE};
use vmm::elf::{self, AppElf, AppKind, KernelElf, MAX_APP_SPAN, MAX_SEGMENT_ALIGN};
use vmm::image::Bytes;
use vmm::loader::{self, LoadRequest, LoadedVm};

/// Guest memory for the built image: small, so that oversized apps fail fast (as they would at run time).
pub const MEMORY_SIZE: u64 = 64 << 20;

/// The kernel secure-run embeds, parsed once.
static KERNEL: LazyLock<KernelElf> =
    LazyLock::new(|| elf::parse_kernel(vmm::run::EMBEDDED_KERNEL).expect("the embedded kernel parses"));

/// One fuzz input: the whole input is the app file.
pub fn run(data: &[u8]) {
    let Ok(app) = elf::parse_app(data) else {
        return;
    };
    check_app(&app, data);
    inspect(&app, data);
    // One build per input (each relocates the kernel); the input's hash picks a fixed layout or a
    // randomized one, and seeds it.
    let seed = fnv1a(data);
    build_and_check(&app, data, seed & 1 == 1, seed);
}

/// FNV-1a: a deterministic seed for the randomized layout, different for different inputs.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3))
}

/// Everything `parse_app` promises about an accepted app.
fn check_app(app: &AppElf, data: &[u8]) {
    assert!(!app.segments.is_empty(), "accepted without a loadable segment");
    for segment in &app.segments {
        assert!(segment.mem_size > 0, "empty segment kept: {segment:x?}");
        assert!(segment.file_size <= segment.mem_size, "file size beyond memory size: {segment:x?}");
        let end = segment.vaddr.checked_add(segment.mem_size).expect("segment end overflows");
        assert!(end <= LOWER_HALF_END, "segment beyond the lower half: {segment:x?}");
        assert_eq!(app.segment_bytes(segment, data).len() as u64, segment.file_size, "file bytes outside the file");
        assert!(app.span.start <= segment.vaddr && end <= app.span.end(), "segment outside the span");
        if app.kind == AppKind::Exec {
            assert!(segment.vaddr >= LOWEST_ADDRESS, "ET_EXEC segment below the lowest address: {segment:x?}");
        }
    }
    for pair in app.segments.windows(2) {
        assert!(pair[0].end() <= pair[1].vaddr, "segments unsorted or overlapping: {pair:x?}");
    }
    assert!(app.span.start.is_multiple_of(PAGE_SIZE) && app.span.size.is_multiple_of(PAGE_SIZE));
    assert!(app.span.size > 0 && app.span.size <= MAX_APP_SPAN, "span {:x?}", app.span);
    assert!(app.align.is_power_of_two() && (PAGE_SIZE..=MAX_SEGMENT_ALIGN).contains(&app.align));
    assert!(
        app.segments.iter().any(|s| s.perms & PERM_EXEC != 0 && s.vaddr <= app.entry && app.entry < s.end()),
        "entry {:#x} not in an executable segment",
        app.entry
    );
    let table = app.phnum * app.phent;
    assert!(
        app.segments.iter().any(|s| s.vaddr <= app.phdr_vaddr && app.phdr_vaddr.saturating_add(table) <= s.end()),
        "program headers at {:#x} not loaded",
        app.phdr_vaddr
    );
}

/// The mpk-mode load-time inspection (what `vmm::run` does before building): must not panic, and a
/// finding of the scan must point into an executable segment's file bytes.
fn inspect(app: &AppElf, data: &[u8]) {
    let _ = vmm::policy::inspect_app(app, data, "/app", false);
    let code = app
        .segments
        .iter()
        .filter(|segment| segment.perms & PERM_EXEC != 0)
        .map(|segment| (segment.vaddr, app.segment_bytes(segment, data)));
    for finding in isolation::scan::scan_code_regions(code) {
        assert!(
            app.segments.iter().any(|s| s.perms & PERM_EXEC != 0
                && s.vaddr <= finding.offset
                && finding.offset < s.vaddr + s.file_size),
            "finding outside the code: {finding}"
        );
    }
}

fn build_and_check(app: &AppElf, data: &[u8], aslr: bool, seed: u64) {
    let kernel = &*KERNEL;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let Ok(layout) = loader::plan_layout(kernel, app, MEMORY_SIZE, aslr.then_some(&mut rng)) else {
        return;
    };
    check_layout(app, kernel, &layout);
    let argv = [b"/app".to_vec(), b"argument".to_vec()];
    let envp = [b"HOME=/".to_vec()];
    let (kernel_file, app_file) = (Bytes::from_static(vmm::run::EMBEDDED_KERNEL), Bytes::copy_from_slice(data));
    let request = LoadRequest {
        kernel,
        kernel_file: &kernel_file,
        app,
        app_file: &app_file,
        argv: &argv,
        envp: &envp,
        exe_path: b"/app",
        stdin: b"stdin bytes",
        files: &[],
        isolation: if aslr { IsolationMode::Mpk } else { IsolationMode::Ring3 },
        memory_size: MEMORY_SIZE,
        trace_syscalls: false,
        strict_inspection: aslr,
        seed,
        aslr,
        tsc_khz: 1_000_000,
        boot_unix_ns: 1,
        afl: None,
    };
    let Ok(vm) = loader::build(&request, &layout, [seed as u8; 32]) else {
        return;
    };
    check_image(app, data, &layout, &vm);
    let boot_elf = vmm::backend::pvh::build_boot_elf(&vm.image, &vm.entry).expect("the PVH boot ELF builds");
    let chunk_bytes: usize = vm.image.chunks.iter().map(|chunk| chunk.bytes.len()).sum();
    // Headers, the trampoline page and page-alignment padding per segment at most.
    let bound = chunk_bytes + 2 * TRAMPOLINE_SIZE as usize + (vm.image.chunks.len() + 2) * PAGE_SIZE as usize;
    assert!(boot_elf.len() <= bound, "boot ELF of {} bytes for {chunk_bytes} bytes of chunks", boot_elf.len());
}

fn check_layout(app: &AppElf, kernel: &KernelElf, layout: &VmLayout) {
    let spans = [layout.kernel, layout.app, layout.physmap];
    for span in spans {
        assert!(span.start.is_multiple_of(PAGE_SIZE) && span.size > 0, "bad span {span:x?}");
        assert!(span.start.checked_add(span.size).is_some_and(|end| end <= LOWER_HALF_END), "span {span:x?}");
    }
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            assert!(a.end() <= b.start || b.end() <= a.start, "layout spans overlap: {a:x?} {b:x?}");
        }
    }
    assert!(layout.kernel.size >= kernel.span.size);
    match app.kind {
        AppKind::Exec => assert_eq!(layout.app, app.span, "ET_EXEC app moved"),
        AppKind::StaticPie => {
            assert_eq!(layout.app.size, app.span.size);
            assert!(layout.app.start.is_multiple_of(app.align), "PIE base {:#x} misaligned", layout.app.start);
        }
    }
    let trampoline_end = TRAMPOLINE_ADDR + TRAMPOLINE_SIZE;
    for span in spans {
        assert!(span.end() <= TRAMPOLINE_ADDR || span.start >= trampoline_end, "span over the trampoline");
    }
}

fn check_image(app: &AppElf, data: &[u8], layout: &VmLayout, vm: &LoadedVm) {
    let image = &vm.image;
    assert_eq!(image.memory_size, MEMORY_SIZE);
    let mut previous_end = IMAGE_START;
    for chunk in &image.chunks {
        let end = chunk.guest_phys.checked_add(chunk.bytes.len() as u64).expect("chunk end overflows");
        assert!(
            chunk.guest_phys >= previous_end,
            "chunk at {:#x} overlaps the previous one or low memory",
            chunk.guest_phys
        );
        assert!(end <= MEMORY_SIZE, "chunk {:#x}..{end:#x} beyond memory", chunk.guest_phys);
        previous_end = end;
    }
    // The page-table root is one of the chunks, and the entry is the kernel's.
    assert!(image.chunks.iter().any(|chunk| chunk.guest_phys == vm.entry.page_table_root));
    assert!(layout.kernel.start <= vm.entry.rip && vm.entry.rip < layout.kernel.end(), "entry outside the kernel");
    // Each segment's file bytes, at the physical address its virtual address maps to.
    let app_region = |virt: u64| {
        vm.regions.iter().find(|region| {
            region.kind == RegionKind::AppSegment.name() && region.virt_start <= virt && virt < region.virt_end
        })
    };
    for segment in app.segments.iter().filter(|segment| segment.file_size > 0) {
        let virt = app.runtime_address(segment.vaddr, layout.app.start).expect("segment address");
        let region = app_region(virt).unwrap_or_else(|| panic!("no region for the segment at {virt:#x}"));
        let phys = region.phys_start.expect("app regions are backed") + (virt - region.virt_start);
        let chunk = image
            .chunks
            .iter()
            .find(|chunk| chunk.guest_phys == phys)
            .unwrap_or_else(|| panic!("no chunk at {phys:#x} for the segment at {:#x}", segment.vaddr));
        assert_eq!(chunk.bytes[..], *app.segment_bytes(segment, data), "segment bytes differ");
    }
    // The process areas the kernel will use stay clear of everything the VMM mapped.
    for area in vm.process.spans() {
        for span in [layout.kernel, layout.app, layout.physmap] {
            assert!(area.end() <= span.start || span.end() <= area.start, "{area:x?} overlaps {span:x?}");
        }
    }
}
