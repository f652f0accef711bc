//! Where everything goes in the guest's single virtual address space.
//!
//! ```text
//!  0x0000_0000_0001_0000  lowest mappable address (the first 64 KiB stay unmapped, like Linux)
//!        ...              app image (ET_EXEC: its link address; static PIE: planned)
//!        ...              brk heap (kernel, right above the app image)
//!        ...              mmap area, stack (kernel, from the boot seed)
//!        ...              kernel image, kernel physical map (VMM)
//!  0x0000_8000_0000_0000  end of the canonical lower half
//! ```
//!
//! Without randomization every base is a documented constant ([`FIXED_KERNEL_BASE`] and friends).
//! The VMM plans the kernel, the app and the physical map ([`plan_vm_layout`]); the kernel plans the
//! app's stack, brk and mmap area around them ([`plan_process_layout`]). Regions never overlap and keep
//! [`GUARD_GAP`] between them.
//!
//! # Randomized planning (`--aslr`)
//!
//! With an rng, each base is drawn uniformly among *all* valid positions over
//! `[LOWEST_ADDRESS, HIGHEST_ADDRESS)` given the spans placed before it: the free intervals left by the
//! spans already taken (each widened by [`GUARD_GAP`] on both sides) are enumerated, the aligned starts
//! in each are counted, and one index below the total is drawn without modulo bias. The work is bounded by
//! the number of spans taken (no retry-until-it-fits loop), and when nothing fits the answer is
//! [`LayoutError::NoRoom`].
//!
//! Placement order, which is also what each entropy figure is conditioned on:
//! - [`plan_vm_layout`]: the `reserved` span and a Fixed app are taken first, then the kernel (page
//!   aligned), then a relocatable app (its `align`; it ends at or below [`RELOCATABLE_APP_CEILING`] when it
//!   can, so the brk window above it is never cut short), then the physical map (2 MiB aligned, since it
//!   is mapped with 2 MiB pages).
//! - [`plan_process_layout`]: the `occupied` spans are taken first, then brk (a page in the
//!   [`BRK_START_WINDOW`] above the app, like Linux keeps brk above the image; anywhere if that window is
//!   full), then the mmap area, then the stack (both page aligned, anywhere).
//!
//! Each `*_bits` figure is `floor(log2(number of positions the base could have taken))` given the spans
//! placed before it, and 0 for a base that was not randomized. At the default sizes
//! ([`DEFAULT_STACK_SIZE`], [`DEFAULT_BRK_SIZE`], [`DEFAULT_MMAP_SIZE`], a 2 MiB kernel, a 256 MiB physical
//! map, an app of a few MiB) the kernel, app, mmap and stack bases get about 34 bits and brk 29 to 30 bits.

use alloc::vec::Vec;

use rand_core::RngCore;

use crate::paging::{HUGE_PAGE_SIZE, LOWER_HALF_END, PAGE_SIZE};

/// Nothing is ever mapped below this address (null-pointer dereferences fault).
pub const LOWEST_ADDRESS: u64 = 0x1_0000;
/// Nothing is mapped at or above this address (the last page of the lower half stays unmapped).
pub const HIGHEST_ADDRESS: u64 = LOWER_HALF_END - PAGE_SIZE;
/// Unmapped space kept between any two regions.
pub const GUARD_GAP: u64 = 16 * PAGE_SIZE;

pub const FIXED_KERNEL_BASE: u64 = 0x0000_7e00_0000_0000;
pub const FIXED_PHYSMAP_BASE: u64 = 0x0000_7d00_0000_0000;
pub const FIXED_APP_BASE: u64 = 0x0000_5555_5555_4000;
pub const FIXED_STACK_TOP: u64 = 0x0000_7fff_ffff_f000;
pub const FIXED_MMAP_TOP: u64 = 0x0000_7ff0_0000_0000;

/// Default stack reservation: 8 MiB, Linux's default `RLIMIT_STACK`.
pub const DEFAULT_STACK_SIZE: u64 = 8 << 20;
/// Default brk reservation: 1 GiB.
pub const DEFAULT_BRK_SIZE: u64 = 1 << 30;
/// Default size of the mmap area: 64 GiB.
pub const DEFAULT_MMAP_SIZE: u64 = 64 << 30;
/// With randomization, brk starts at one of the pages of this window, which begins [`GUARD_GAP`] above
/// the app image's end: 2^30 candidate pages, so 30 bits when nothing else lies in the window.
pub const BRK_START_WINDOW: u64 = 1 << 42;
/// With randomization, a relocatable app ends at or below this address (when it fits), leaving room above
/// it for the whole [`BRK_START_WINDOW`] and a brk reservation of up to [`BRK_START_WINDOW`] bytes.
pub const RELOCATABLE_APP_CEILING: u64 = HIGHEST_ADDRESS - 2 * BRK_START_WINDOW;

/// A half-open virtual range `[start, start + size)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: u64,
    pub size: u64,
}

impl Span {
    pub const fn new(start: u64, size: u64) -> Self {
        Self { start, size }
    }
    /// The first address past the span (saturating, so a hostile span cannot wrap).
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
    /// True when the spans, each widened by `gap` on both sides, intersect.
    pub const fn conflicts(&self, other: &Span, gap: u64) -> bool {
        self.start < other.end().saturating_add(gap) && other.start < self.end().saturating_add(gap)
    }
}

/// How the app image may be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppPlacement {
    /// ET_EXEC: exactly here (page-aligned span of its PT_LOAD segments).
    Fixed(Span),
    /// Static PIE: anywhere with this size (page multiple) and alignment (power of two ≥ 4 KiB).
    Relocatable { size: u64, align: u64 },
}

/// What the VMM asks of [`plan_vm_layout`].
#[derive(Clone, Copy, Debug)]
pub struct VmLayoutRequest {
    /// Virtual span of the kernel image (page multiple).
    pub kernel_size: u64,
    pub app: AppPlacement,
    /// Size of the kernel's physical map: the guest memory size, a multiple of 2 MiB.
    pub physmap_size: u64,
    /// A range that must stay free (the identity-mapped boot trampoline), if any.
    pub reserved: Option<Span>,
}

/// Bits of entropy of each base: log2 of the number of positions it could have taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmEntropy {
    pub kernel_bits: u32,
    pub app_bits: u32,
    pub physmap_bits: u32,
}

/// The VMM's part of the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmLayout {
    pub kernel: Span,
    pub app: Span,
    pub physmap: Span,
    pub entropy: VmEntropy,
}

impl VmLayout {
    /// The planned spans: kernel, app, physical map.
    pub const fn spans(&self) -> [Span; 3] {
        [self.kernel, self.app, self.physmap]
    }
}

/// Why no layout was possible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// A size is zero, not page-aligned, or an alignment is not a power of two ≥ 4 KiB.
    InvalidRequest,
    /// A fixed region lies outside `[LOWEST_ADDRESS, HIGHEST_ADDRESS)`.
    OutOfRange,
    /// The regions do not fit without overlapping.
    NoRoom,
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::InvalidRequest => "invalid layout request (zero or misaligned size or alignment)",
            Self::OutOfRange => "a fixed region lies outside the usable address space",
            Self::NoRoom => "the regions do not fit in the address space without overlapping",
        })
    }
}

impl core::error::Error for LayoutError {}

fn aligned(value: u64, align: u64) -> bool {
    // A power of two is never 0, so `align - 1` cannot underflow.
    align.is_power_of_two() && value & (align - 1) == 0
}

/// An alignment: a power of two of at least a page.
fn valid_alignment(align: u64) -> bool {
    align.is_power_of_two() && align >= PAGE_SIZE
}

/// A region size: non-zero and a multiple of `unit`.
fn valid_size(size: u64, unit: u64) -> bool {
    size != 0 && aligned(size, unit)
}

fn in_range(span: &Span) -> bool {
    span.start >= LOWEST_ADDRESS && span.end() <= HIGHEST_ADDRESS && span.size > 0
}

fn free_of(span: &Span, taken: &[Span]) -> bool {
    in_range(span) && taken.iter().all(|t| !span.conflicts(t, GUARD_GAP))
}

/// Plans the kernel, app and physical-map bases: fixed without `rng`, random with it.
///
/// Order of random placement (see the module doc): kernel, relocatable app, physical map.
pub fn plan_vm_layout<R: RngCore>(request: &VmLayoutRequest, rng: Option<&mut R>) -> Result<VmLayout, LayoutError> {
    if !valid_size(request.kernel_size, PAGE_SIZE) || !valid_size(request.physmap_size, HUGE_PAGE_SIZE) {
        return Err(LayoutError::InvalidRequest);
    }
    let mut taken: Vec<Span> = Vec::new();
    taken.extend(request.reserved);
    match request.app {
        AppPlacement::Fixed(span) => {
            if !aligned(span.start, PAGE_SIZE) || !valid_size(span.size, PAGE_SIZE) {
                return Err(LayoutError::InvalidRequest);
            }
            if !in_range(&span) {
                return Err(LayoutError::OutOfRange);
            }
            if !free_of(&span, &taken) {
                return Err(LayoutError::NoRoom);
            }
            taken.push(span);
        }
        AppPlacement::Relocatable { size, align } => {
            if !valid_size(size, PAGE_SIZE) || !valid_alignment(align) {
                return Err(LayoutError::InvalidRequest);
            }
        }
    }
    match rng {
        None => plan_fixed_vm_layout(request, taken),
        Some(rng) => plan_random_vm_layout(request, taken, rng),
    }
}

fn plan_fixed_vm_layout(request: &VmLayoutRequest, mut taken: Vec<Span>) -> Result<VmLayout, LayoutError> {
    let kernel = Span::new(FIXED_KERNEL_BASE, request.kernel_size);
    let physmap = Span::new(FIXED_PHYSMAP_BASE, request.physmap_size);
    let app = match request.app {
        AppPlacement::Fixed(span) => span,
        AppPlacement::Relocatable { size, align } => {
            let start = FIXED_APP_BASE.checked_next_multiple_of(align).ok_or(LayoutError::NoRoom)?;
            Span::new(start, size)
        }
    };
    for span in [kernel, physmap] {
        if !free_of(&span, &taken) {
            return Err(LayoutError::NoRoom);
        }
        taken.push(span);
    }
    if matches!(request.app, AppPlacement::Relocatable { .. }) && !free_of(&app, &taken) {
        return Err(LayoutError::NoRoom);
    }
    Ok(VmLayout { kernel, app, physmap, entropy: VmEntropy::default() })
}

fn plan_random_vm_layout<R: RngCore>(
    request: &VmLayoutRequest,
    mut taken: Vec<Span>,
    rng: &mut R,
) -> Result<VmLayout, LayoutError> {
    let (kernel, kernel_bits) = place_random(&taken, request.kernel_size, PAGE_SIZE, None, rng)?;
    taken.push(kernel);
    let (app, app_bits) = match request.app {
        AppPlacement::Fixed(span) => (span, 0),
        AppPlacement::Relocatable { size, align } => {
            let below_ceiling =
                RELOCATABLE_APP_CEILING.checked_sub(size).map(|max| StartWindow { min: LOWEST_ADDRESS, max });
            let placed = place_random(&taken, size, align, below_ceiling, rng)?;
            taken.push(placed.0);
            placed
        }
    };
    let (physmap, physmap_bits) = place_random(&taken, request.physmap_size, HUGE_PAGE_SIZE, None, rng)?;
    Ok(VmLayout { kernel, app, physmap, entropy: VmEntropy { kernel_bits, app_bits, physmap_bits } })
}

/// What the kernel asks of [`plan_process_layout`].
#[derive(Clone, Copy, Debug)]
pub struct ProcessLayoutRequest<'a> {
    /// Everything mapped already (kernel, physical map, app image, trampoline).
    pub occupied: &'a [Span],
    /// The app image's end: brk starts above it.
    pub app_end: u64,
    /// Reserved stack size (page multiple).
    pub stack_size: u64,
    /// Reserved brk size (page multiple).
    pub brk_size: u64,
    /// Size of the mmap area (page multiple).
    pub mmap_size: u64,
}

/// Bits of entropy of the stack, brk and mmap bases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessEntropy {
    pub stack_bits: u32,
    pub brk_bits: u32,
    pub mmap_bits: u32,
}

/// The kernel's part of the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessLayout {
    /// The stack reservation; the initial stack pointer starts at its end.
    pub stack: Span,
    /// The brk area: the break starts at `brk.start` and may grow to `brk.end()`.
    pub brk: Span,
    pub mmap: Span,
    pub entropy: ProcessEntropy,
}

impl ProcessLayout {
    /// The planned spans: stack, brk, mmap area.
    pub const fn spans(&self) -> [Span; 3] {
        [self.stack, self.brk, self.mmap]
    }
}

/// Plans the stack, brk and mmap area: fixed without `rng`, random with it.
///
/// Order of random placement (see the module doc): brk (in the [`BRK_START_WINDOW`] above `app_end`
/// when anything fits there, else anywhere), mmap area, stack.
pub fn plan_process_layout<R: RngCore>(
    request: &ProcessLayoutRequest<'_>,
    rng: Option<&mut R>,
) -> Result<ProcessLayout, LayoutError> {
    for size in [request.stack_size, request.brk_size, request.mmap_size] {
        if !valid_size(size, PAGE_SIZE) {
            return Err(LayoutError::InvalidRequest);
        }
    }
    // The first page-aligned address that keeps GUARD_GAP above the app image.
    let brk_floor = request.app_end.checked_next_multiple_of(PAGE_SIZE).and_then(|end| end.checked_add(GUARD_GAP));
    let mut taken: Vec<Span> = request.occupied.to_vec();
    let Some(rng) = rng else {
        let brk_start = brk_floor.ok_or(LayoutError::NoRoom)?;
        let stack =
            Span::new(FIXED_STACK_TOP.checked_sub(request.stack_size).ok_or(LayoutError::NoRoom)?, request.stack_size);
        let mmap =
            Span::new(FIXED_MMAP_TOP.checked_sub(request.mmap_size).ok_or(LayoutError::NoRoom)?, request.mmap_size);
        let brk = Span::new(brk_start, request.brk_size);
        for span in [stack, mmap, brk] {
            if !free_of(&span, &taken) {
                return Err(LayoutError::NoRoom);
            }
            taken.push(span);
        }
        return Ok(ProcessLayout { stack, brk, mmap, entropy: ProcessEntropy::default() });
    };
    let brk_window = brk_floor.map(|min| StartWindow { min, max: min.saturating_add(BRK_START_WINDOW - PAGE_SIZE) });
    let (brk, brk_bits) = place_random(&taken, request.brk_size, PAGE_SIZE, brk_window, rng)?;
    taken.push(brk);
    let (mmap, mmap_bits) = place_random(&taken, request.mmap_size, PAGE_SIZE, None, rng)?;
    taken.push(mmap);
    let (stack, stack_bits) = place_random(&taken, request.stack_size, PAGE_SIZE, None, rng)?;
    Ok(ProcessLayout { stack, brk, mmap, entropy: ProcessEntropy { stack_bits, brk_bits, mmap_bits } })
}

/// Where a span should start if it can: `min <= start <= max`.
#[derive(Clone, Copy, Debug)]
struct StartWindow {
    min: u64,
    max: u64,
}

/// `count` candidate starts `first`, `first + align`, ... inside one free interval.
#[derive(Clone, Copy, Debug)]
struct Run {
    first: u64,
    count: u64,
}

/// The intervals of `[LOWEST_ADDRESS, HIGHEST_ADDRESS)` that no taken span, widened by [`GUARD_GAP`] on
/// both sides, touches; sorted and disjoint. A span lying inside one of them conflicts with nothing taken.
fn free_intervals(taken: &[Span]) -> Vec<(u64, u64)> {
    let mut blocked: Vec<(u64, u64)> =
        taken.iter().map(|t| (t.start.saturating_sub(GUARD_GAP), t.end().saturating_add(GUARD_GAP))).collect();
    blocked.sort_unstable();
    let mut free = Vec::new();
    let mut cursor = LOWEST_ADDRESS;
    for (start, end) in blocked {
        if cursor >= HIGHEST_ADDRESS {
            break;
        }
        if start > cursor {
            free.push((cursor, start.min(HIGHEST_ADDRESS)));
        }
        cursor = cursor.max(end);
    }
    if cursor < HIGHEST_ADDRESS {
        free.push((cursor, HIGHEST_ADDRESS));
    }
    free
}

/// Every aligned start for a span of `size` that fits in a free interval and in `window`, as runs, with
/// their total number.
fn candidate_runs(taken: &[Span], size: u64, align: u64, window: StartWindow) -> (Vec<Run>, u64) {
    let mut runs = Vec::new();
    let mut total: u64 = 0;
    for (free_start, free_end) in free_intervals(taken) {
        let Some(first) = free_start.max(window.min).checked_next_multiple_of(align) else { continue };
        let Some(last) = free_end.checked_sub(size).map(|last| last.min(window.max)) else { continue };
        if first > last {
            continue;
        }
        // At most 2^47 / 4096 starts in all, so the sum cannot overflow; stay checked all the same.
        let count = (last - first) / align + 1;
        let Some(sum) = total.checked_add(count) else { break };
        total = sum;
        runs.push(Run { first, count });
    }
    (runs, total)
}

/// Draws a start uniformly among the valid ones, in `preferred` if anything fits there, else anywhere;
/// returns the span and `floor(log2(number of candidates))`.
fn place_random<R: RngCore>(
    taken: &[Span],
    size: u64,
    align: u64,
    preferred: Option<StartWindow>,
    rng: &mut R,
) -> Result<(Span, u32), LayoutError> {
    const ANYWHERE: StartWindow = StartWindow { min: LOWEST_ADDRESS, max: HIGHEST_ADDRESS };
    let (mut runs, mut total) = (Vec::new(), 0);
    if let Some(window) = preferred {
        (runs, total) = candidate_runs(taken, size, align, window);
    }
    if total == 0 {
        (runs, total) = candidate_runs(taken, size, align, ANYWHERE);
    }
    if total == 0 {
        return Err(LayoutError::NoRoom);
    }
    let mut index = uniform_below(rng, total);
    for run in runs {
        if index < run.count {
            let start =
                index.checked_mul(align).and_then(|offset| run.first.checked_add(offset)).ok_or(LayoutError::NoRoom)?;
            return Ok((Span::new(start, size), total.ilog2()));
        }
        index -= run.count;
    }
    // Unreachable: the index is below the sum of the counts.
    Err(LayoutError::NoRoom)
}

/// Draws at most this many times before settling for a (then negligibly) biased value.
const MAX_DRAWS: u32 = 16;

/// A uniform value in `[0, bound)` (`bound > 0`), by rejection sampling: a 64-bit draw is kept only below
/// the largest multiple of `bound`, so that every remainder is equally likely. With a real generator a
/// draw is rejected with probability below `bound / 2^64` (under 2^-28 here), so the fallback after
/// [`MAX_DRAWS`] draws never happens in practice; it only keeps a broken generator from hanging the planner.
fn uniform_below<R: RngCore>(rng: &mut R, bound: u64) -> u64 {
    let bound = bound.max(1);
    // 2^64 mod bound: the number of draws at the top of the range that would favour small remainders.
    let excess = (u64::MAX % bound + 1) % bound;
    let mut draw = rng.next_u64();
    for _ in 1..MAX_DRAWS {
        if draw <= u64::MAX - excess {
            break;
        }
        draw = rng.next_u64();
    }
    draw % bound
}

/// Where `execve` puts a new program in a process: its image (at its link address, or for a static PIE at
/// the fixed app base without `rng`, anywhere below the relocatable-app ceiling with it, as at boot), then
/// its stack, brk and mmap spans, all clear of `occupied` (the kernel's ranges) by the guard gap. The
/// same rules as [`plan_vm_layout`] and [`plan_process_layout`] give the first program.
pub fn plan_exec<R: RngCore>(
    occupied: &[Span],
    app: AppPlacement,
    rng: Option<&mut R>,
) -> Result<(Span, ProcessLayout), LayoutError> {
    let mut taken: Vec<Span> = occupied.to_vec();
    let mut rng = rng;
    let image = match app {
        AppPlacement::Fixed(span) => {
            if !aligned(span.start, PAGE_SIZE) || !valid_size(span.size, PAGE_SIZE) {
                return Err(LayoutError::InvalidRequest);
            }
            if !in_range(&span) {
                return Err(LayoutError::OutOfRange);
            }
            span
        }
        AppPlacement::Relocatable { size, align } => {
            if !valid_size(size, PAGE_SIZE) || !valid_alignment(align) {
                return Err(LayoutError::InvalidRequest);
            }
            match rng.as_deref_mut() {
                None => Span::new(FIXED_APP_BASE.checked_next_multiple_of(align).ok_or(LayoutError::NoRoom)?, size),
                Some(rng) => {
                    let below_ceiling =
                        RELOCATABLE_APP_CEILING.checked_sub(size).map(|max| StartWindow { min: LOWEST_ADDRESS, max });
                    place_random(&taken, size, align, below_ceiling, rng)?.0
                }
            }
        }
    };
    if !free_of(&image, &taken) {
        return Err(LayoutError::NoRoom);
    }
    taken.push(image);
    let request = ProcessLayoutRequest {
        occupied: &taken,
        app_end: image.end(),
        stack_size: DEFAULT_STACK_SIZE,
        brk_size: DEFAULT_BRK_SIZE,
        mmap_size: DEFAULT_MMAP_SIZE,
    };
    Ok((image, plan_process_layout(&request, rng)?))
}

/// The app's stack, brk and mmap area as the kernel plans them at boot, from what the boot info says:
/// the mapped regions and the kernel seed. The VMM calls the same function to show the layout with
/// `--print-layout` — one computation, so what is shown is what the kernel does. The layout draws come
/// first from a ChaCha20 stream keyed by `seed`; the kernel's other randomness uses a separate stream.
pub fn plan_guest_process(
    mapped: &[kernel_abi::MappedRegion],
    seed: [u8; 32],
    randomize: bool,
) -> Result<ProcessLayout, LayoutError> {
    use rand_core::SeedableRng;
    let mut occupied = alloc::vec::Vec::with_capacity(mapped.len());
    let mut app_end = 0u64;
    for region in mapped {
        occupied.push(Span::new(region.virt_start, region.size));
        if region.kind == kernel_abi::RegionKind::AppSegment as u32 {
            app_end = app_end.max(region.virt_start.saturating_add(region.size));
        }
    }
    let request = ProcessLayoutRequest {
        occupied: &occupied,
        app_end,
        stack_size: DEFAULT_STACK_SIZE,
        brk_size: DEFAULT_BRK_SIZE,
        mmap_size: DEFAULT_MMAP_SIZE,
    };
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    // The kernel's stream feeds getrandom, another AT_RANDOM: the layout draws must not be visible there.
    rng.set_stream(kernel_abi::seed::LAYOUT_STREAM);
    plan_process_layout(&request, randomize.then_some(&mut rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_core::RngCore;

    const MIB: u64 = 1 << 20;
    const NO_RNG: Option<&mut ChaCha8Rng> = None;

    fn default_vm_request() -> VmLayoutRequest {
        VmLayoutRequest {
            kernel_size: 2 * MIB,
            app: AppPlacement::Relocatable { size: 4 * MIB, align: PAGE_SIZE },
            physmap_size: 256 * MIB,
            reserved: Some(Span::new(0x8000, 0x8000)),
        }
    }

    fn process_request(occupied: &[Span], app_end: u64) -> ProcessLayoutRequest<'_> {
        ProcessLayoutRequest {
            occupied,
            app_end,
            stack_size: DEFAULT_STACK_SIZE,
            brk_size: DEFAULT_BRK_SIZE,
            mmap_size: DEFAULT_MMAP_SIZE,
        }
    }

    #[test]
    fn exec_places_a_program_clear_of_the_kernel_fixed_or_random() {
        let kernel = [Span::new(0x7e00_0000_0000, 64 * MIB), Span::new(0x10_0000_0000, 256 * MIB)];
        let pie = AppPlacement::Relocatable { size: 2 * MIB, align: PAGE_SIZE };
        let (image, fixed) = plan_exec(&kernel, pie, NO_RNG).unwrap();
        assert_eq!(plan_exec(&kernel, pie, NO_RNG).unwrap(), (image, fixed), "without a generator: fixed");
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (random_image, random) = plan_exec(&kernel, pie, Some(&mut rng)).unwrap();
        assert_ne!(random_image, image);
        let mut all = vec![random_image, random.stack, random.brk, random.mmap];
        all.extend(kernel);
        assert_disjoint(&all);
        assert!(random.brk.start >= random_image.end());
        let overlapping = AppPlacement::Fixed(Span::new(0x7e00_0000_0000, 2 * MIB));
        assert_eq!(plan_exec(&kernel, overlapping, NO_RNG), Err(LayoutError::NoRoom));
    }

    fn assert_disjoint(spans: &[Span]) {
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                assert!(!a.conflicts(b, GUARD_GAP), "{a:x?} and {b:x?} are closer than the guard gap");
            }
        }
    }

    #[test]
    fn fixed_vm_layout_uses_documented_constants() {
        let layout = plan_vm_layout(&default_vm_request(), NO_RNG).unwrap();
        assert_eq!(layout.kernel, Span::new(FIXED_KERNEL_BASE, 2 * MIB));
        assert_eq!(layout.physmap, Span::new(FIXED_PHYSMAP_BASE, 256 * MIB));
        assert_eq!(layout.app, Span::new(FIXED_APP_BASE, 4 * MIB));
        assert_eq!(layout.entropy, VmEntropy::default());
    }

    #[test]
    fn fixed_vm_layout_aligns_the_app_and_keeps_a_fixed_app() {
        let mut request = default_vm_request();
        request.app = AppPlacement::Relocatable { size: 4 * MIB, align: HUGE_PAGE_SIZE };
        let layout = plan_vm_layout(&request, NO_RNG).unwrap();
        assert_eq!(layout.app.start, FIXED_APP_BASE.next_multiple_of(HUGE_PAGE_SIZE));
        let fixed = Span::new(0x40_0000, 0x20_0000);
        request.app = AppPlacement::Fixed(fixed);
        assert_eq!(plan_vm_layout(&request, NO_RNG).unwrap().app, fixed);
    }

    #[test]
    fn fixed_process_layout_uses_documented_constants() {
        let app = Span::new(FIXED_APP_BASE, 4 * MIB);
        let occupied = [app];
        let layout = plan_process_layout(&process_request(&occupied, app.end()), NO_RNG).unwrap();
        assert_eq!(layout.stack, Span::new(FIXED_STACK_TOP - DEFAULT_STACK_SIZE, DEFAULT_STACK_SIZE));
        assert_eq!(layout.mmap, Span::new(FIXED_MMAP_TOP - DEFAULT_MMAP_SIZE, DEFAULT_MMAP_SIZE));
        assert_eq!(layout.brk, Span::new(app.end() + GUARD_GAP, DEFAULT_BRK_SIZE));
        assert_eq!(layout.entropy, ProcessEntropy::default());
    }

    #[test]
    fn invalid_vm_requests_are_refused() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let base = default_vm_request();
        let cases = [
            (VmLayoutRequest { kernel_size: 0, ..base }, LayoutError::InvalidRequest),
            (VmLayoutRequest { kernel_size: 4095, ..base }, LayoutError::InvalidRequest),
            (VmLayoutRequest { physmap_size: 0, ..base }, LayoutError::InvalidRequest),
            (VmLayoutRequest { physmap_size: PAGE_SIZE, ..base }, LayoutError::InvalidRequest),
            (
                VmLayoutRequest { app: AppPlacement::Relocatable { size: 0, align: PAGE_SIZE }, ..base },
                LayoutError::InvalidRequest,
            ),
            (
                VmLayoutRequest { app: AppPlacement::Relocatable { size: PAGE_SIZE, align: 3 * PAGE_SIZE }, ..base },
                LayoutError::InvalidRequest,
            ),
            (
                VmLayoutRequest { app: AppPlacement::Relocatable { size: PAGE_SIZE, align: 16 }, ..base },
                LayoutError::InvalidRequest,
            ),
            (
                VmLayoutRequest { app: AppPlacement::Fixed(Span::new(0x40_0010, PAGE_SIZE)), ..base },
                LayoutError::InvalidRequest,
            ),
            (VmLayoutRequest { app: AppPlacement::Fixed(Span::new(0, PAGE_SIZE)), ..base }, LayoutError::OutOfRange),
            (
                VmLayoutRequest { app: AppPlacement::Fixed(Span::new(HIGHEST_ADDRESS, PAGE_SIZE)), ..base },
                LayoutError::OutOfRange,
            ),
            (
                VmLayoutRequest { app: AppPlacement::Fixed(Span::new(0x1_0000, u64::MAX - 0xfff)), ..base },
                LayoutError::OutOfRange,
            ),
            (VmLayoutRequest { app: AppPlacement::Fixed(Span::new(0x1_0000, PAGE_SIZE)), ..base }, LayoutError::NoRoom),
            (VmLayoutRequest { physmap_size: 1 << 47, ..base }, LayoutError::NoRoom),
            (
                VmLayoutRequest { app: AppPlacement::Relocatable { size: PAGE_SIZE, align: 1 << 62 }, ..base },
                LayoutError::NoRoom,
            ),
        ];
        for (request, error) in cases {
            assert_eq!(plan_vm_layout(&request, Some(&mut rng)), Err(error), "{request:x?}");
        }
    }

    #[test]
    fn invalid_process_requests_are_refused() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let base = process_request(&[], FIXED_APP_BASE);
        for request in [
            ProcessLayoutRequest { stack_size: 0, ..base },
            ProcessLayoutRequest { brk_size: 100, ..base },
            ProcessLayoutRequest { mmap_size: PAGE_SIZE + 1, ..base },
        ] {
            assert_eq!(plan_process_layout(&request, Some(&mut rng)), Err(LayoutError::InvalidRequest));
            assert_eq!(plan_process_layout(&request, NO_RNG), Err(LayoutError::InvalidRequest));
        }
        let too_big = ProcessLayoutRequest { mmap_size: 1 << 47, ..base };
        assert_eq!(plan_process_layout(&too_big, Some(&mut rng)), Err(LayoutError::NoRoom));
        // A hostile app end neither wraps nor panics: brk then goes anywhere.
        let hostile = ProcessLayoutRequest { app_end: u64::MAX, ..base };
        assert!(plan_process_layout(&hostile, Some(&mut rng)).is_ok());
        assert_eq!(plan_process_layout(&hostile, NO_RNG), Err(LayoutError::NoRoom));
    }

    #[test]
    fn same_seed_same_layout_and_different_seeds_differ() {
        let request = default_vm_request();
        let plan = |seed| plan_vm_layout(&request, Some(&mut ChaCha8Rng::seed_from_u64(seed))).unwrap();
        assert_eq!(plan(7), plan(7));
        let (a, b) = (plan(7), plan(8));
        assert!(a.kernel != b.kernel && a.app != b.app && a.physmap != b.physmap);

        let occupied = a.spans();
        let process = process_request(&occupied, a.app.end());
        let plan = |seed| plan_process_layout(&process, Some(&mut ChaCha8Rng::seed_from_u64(seed))).unwrap();
        assert_eq!(plan(7), plan(7));
        let (c, d) = (plan(7), plan(8));
        assert!(c.stack != d.stack && c.brk != d.brk && c.mmap != d.mmap);
    }

    #[test]
    fn entropy_at_default_sizes_meets_the_targets() {
        for seed in 0..64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let vm = plan_vm_layout(&default_vm_request(), Some(&mut rng)).unwrap();
            assert!(vm.entropy.kernel_bits >= 30, "{vm:x?}");
            assert!(vm.entropy.app_bits >= 30, "{vm:x?}");
            assert!(vm.entropy.physmap_bits >= 20, "{vm:x?}");
            let occupied = vm.spans();
            let process = plan_process_layout(&process_request(&occupied, vm.app.end()), Some(&mut rng)).unwrap();
            assert!(process.entropy.brk_bits >= 28, "{process:x?}");
            assert!(process.entropy.mmap_bits >= 28, "{process:x?}");
            assert!(process.entropy.stack_bits >= 30, "{process:x?}");
            assert!(
                process.brk.start > vm.app.end() && process.brk.start - vm.app.end() <= BRK_START_WINDOW + GUARD_GAP
            );
        }
        // An ET_EXEC app at the usual link address keeps the full brk window too.
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let request =
            VmLayoutRequest { app: AppPlacement::Fixed(Span::new(0x40_0000, 4 * MIB)), ..default_vm_request() };
        let vm = plan_vm_layout(&request, Some(&mut rng)).unwrap();
        assert_eq!(vm.entropy.app_bits, 0);
        let occupied = vm.spans();
        let process = plan_process_layout(&process_request(&occupied, vm.app.end()), Some(&mut rng)).unwrap();
        assert!(process.entropy.brk_bits >= 28, "{process:x?}");
    }

    #[test]
    fn draws_cover_the_whole_address_space() {
        // The top and bottom eighths of the range are both reached: the draw is not confined to a window.
        let (mut low, mut high) = (false, false);
        for seed in 0..200 {
            let layout = plan_vm_layout(&default_vm_request(), Some(&mut ChaCha8Rng::seed_from_u64(seed))).unwrap();
            low |= layout.kernel.start < HIGHEST_ADDRESS / 8;
            high |= layout.kernel.start > HIGHEST_ADDRESS / 8 * 7;
        }
        assert!(low && high);
    }

    #[test]
    fn a_single_free_position_is_found_with_zero_bits() {
        // Fill everything but exactly one kernel-sized hole (with its guard gaps).
        let hole = Span::new(0x1000_0000, 2 * MIB);
        let occupied = [
            Span::new(LOWEST_ADDRESS, hole.start - GUARD_GAP - LOWEST_ADDRESS),
            Span::new(hole.end() + GUARD_GAP, HIGHEST_ADDRESS - hole.end() - GUARD_GAP),
        ];
        let (span, bits) =
            place_random(&occupied, hole.size, PAGE_SIZE, None, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        assert_eq!((span, bits), (hole, 0));
        assert_eq!(
            place_random(&occupied, hole.size + PAGE_SIZE, PAGE_SIZE, None, &mut ChaCha8Rng::seed_from_u64(3)),
            Err(LayoutError::NoRoom)
        );
    }

    #[test]
    fn a_broken_generator_cannot_hang_the_planner() {
        struct AlwaysMax;
        impl RngCore for AlwaysMax {
            fn next_u32(&mut self) -> u32 {
                u32::MAX
            }
            fn next_u64(&mut self) -> u64 {
                u64::MAX
            }
            fn fill_bytes(&mut self, dest: &mut [u8]) {
                dest.fill(0xff);
            }
        }
        let layout = plan_vm_layout(&default_vm_request(), Some(&mut AlwaysMax)).unwrap();
        assert_disjoint(&layout.spans());
    }

    #[test]
    fn uniform_below_is_unbiased_on_a_small_bound() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[uniform_below(&mut rng, 3) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
    }

    fn size_strategy(unit: u64) -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => (1u64..=4096).prop_map(move |n| n * unit),
            1 => (1u64..=(1 << 35)).prop_map(move |n| n.saturating_mul(unit)),
            1 => any::<u64>(),
            1 => Just(0u64),
        ]
    }

    fn align_strategy() -> impl Strategy<Value = u64> {
        prop_oneof![4 => (12u32..=30).prop_map(|s| 1u64 << s), 1 => (0u32..64).prop_map(|s| 1u64 << s), 1 => (1u64..64).prop_map(|n| n * PAGE_SIZE), 1 => any::<u64>()]
    }

    fn span_strategy() -> impl Strategy<Value = Span> {
        prop_oneof![
            3 => ((LOWEST_ADDRESS / PAGE_SIZE)..(HIGHEST_ADDRESS / PAGE_SIZE), 1u64..=(1 << 20))
                .prop_map(|(page, pages)| Span::new(page * PAGE_SIZE, pages * PAGE_SIZE)),
            1 => (any::<u64>(), any::<u64>()).prop_map(|(start, size)| Span::new(start, size)),
        ]
    }

    fn app_strategy() -> impl Strategy<Value = AppPlacement> {
        prop_oneof![
            (size_strategy(PAGE_SIZE), align_strategy())
                .prop_map(|(size, align)| AppPlacement::Relocatable { size, align }),
            span_strategy().prop_map(AppPlacement::Fixed),
        ]
    }

    fn check_vm_layout(request: &VmLayoutRequest, layout: &VmLayout) {
        for span in layout.spans() {
            assert!(in_range(&span), "{span:x?}");
        }
        assert!(aligned(layout.kernel.start, PAGE_SIZE) && layout.kernel.size == request.kernel_size);
        assert!(aligned(layout.physmap.start, HUGE_PAGE_SIZE) && layout.physmap.size == request.physmap_size);
        match request.app {
            AppPlacement::Fixed(span) => assert_eq!(layout.app, span),
            AppPlacement::Relocatable { size, align } => {
                assert!(aligned(layout.app.start, align) && layout.app.size == size)
            }
        }
        let mut all = layout.spans().to_vec();
        all.extend(request.reserved);
        assert_disjoint(&all);
        assert!(layout.entropy.kernel_bits <= 35 && layout.entropy.app_bits <= 35);
    }

    proptest! {
        #[test]
        fn vm_layouts_are_valid_or_refused(
            kernel_size in size_strategy(PAGE_SIZE),
            physmap_size in size_strategy(HUGE_PAGE_SIZE),
            app in app_strategy(),
            reserved in proptest::option::of(span_strategy()),
            seed in any::<u64>(),
        ) {
            let request = VmLayoutRequest { kernel_size, app, physmap_size, reserved };
            if let Ok(layout) = plan_vm_layout(&request, Some(&mut ChaCha8Rng::seed_from_u64(seed))) {
                check_vm_layout(&request, &layout);
            }
            if let Ok(layout) = plan_vm_layout(&request, NO_RNG) {
                check_vm_layout(&request, &layout);
            }
        }

        #[test]
        fn modest_valid_vm_requests_always_succeed(
            kernel_pages in 1u64..=4096,
            physmap_huge_pages in 1u64..=4096,
            app_pages in 1u64..=(1 << 18),
            align_shift in 12u32..=30,
            seed in any::<u64>(),
        ) {
            let request = VmLayoutRequest {
                kernel_size: kernel_pages * PAGE_SIZE,
                app: AppPlacement::Relocatable { size: app_pages * PAGE_SIZE, align: 1 << align_shift },
                physmap_size: physmap_huge_pages * HUGE_PAGE_SIZE,
                reserved: Some(Span::new(0x8000, 0x8000)),
            };
            let layout = plan_vm_layout(&request, Some(&mut ChaCha8Rng::seed_from_u64(seed)));
            prop_assert!(layout.is_ok());
            check_vm_layout(&request, &layout.unwrap());
        }

        #[test]
        fn candidates_are_exactly_the_valid_positions(
            spans in proptest::collection::vec((0u64..256, 1u64..16), 0..6),
            size_pages in 1u64..24,
            align_shift in 12u32..=15,
        ) {
            // A 1 MiB arena at `base`, everything around it blocked, a few spans inside it: compare the
            // enumerated starts with a brute-force test of every start in the arena.
            let base = 0x1234_0000_0000;
            let arena = 256 * PAGE_SIZE;
            let mut taken = vec![
                Span::new(LOWEST_ADDRESS, base - GUARD_GAP - LOWEST_ADDRESS),
                Span::new(base + arena + GUARD_GAP, HIGHEST_ADDRESS - base - arena - GUARD_GAP),
            ];
            taken.extend(spans.iter().map(|&(page, pages)| Span::new(base + page * PAGE_SIZE, pages * PAGE_SIZE)));
            let (size, align) = (size_pages * PAGE_SIZE, 1u64 << align_shift);
            let (runs, total) = candidate_runs(&taken, size, align, StartWindow { min: 0, max: u64::MAX });
            let mut enumerated: Vec<u64> =
                runs.iter().flat_map(|run| (0..run.count).map(move |i| run.first + i * align)).collect();
            prop_assert_eq!(enumerated.len() as u64, total);
            enumerated.sort_unstable();
            let brute: Vec<u64> = (base..base + arena)
                .step_by(align as usize)
                .filter(|&start| free_of(&Span::new(start, size), &taken))
                .collect();
            prop_assert_eq!(enumerated, brute);
        }

        #[test]
        fn process_layouts_are_valid_or_refused(
            occupied in proptest::collection::vec(span_strategy(), 0..8),
            app_end in prop_oneof![3 => LOWEST_ADDRESS..HIGHEST_ADDRESS, 1 => any::<u64>()],
            stack_size in size_strategy(PAGE_SIZE),
            brk_size in size_strategy(PAGE_SIZE),
            mmap_size in size_strategy(PAGE_SIZE),
            seed in any::<u64>(),
        ) {
            let request = ProcessLayoutRequest { occupied: &occupied, app_end, stack_size, brk_size, mmap_size };
            let random = plan_process_layout(&request, Some(&mut ChaCha8Rng::seed_from_u64(seed)));
            let fixed = plan_process_layout(&request, NO_RNG);
            for layout in [random, fixed].into_iter().flatten() {
                for span in layout.spans() {
                    prop_assert!(in_range(&span) && aligned(span.start, PAGE_SIZE), "{:x?}", span);
                }
                prop_assert_eq!(layout.stack.size, stack_size);
                prop_assert_eq!(layout.brk.size, brk_size);
                prop_assert_eq!(layout.mmap.size, mmap_size);
                assert_disjoint(&layout.spans());
                for span in layout.spans() {
                    for other in &occupied {
                        prop_assert!(!span.conflicts(other, GUARD_GAP), "{:x?} {:x?}", span, other);
                    }
                }
            }
        }
    }
}
