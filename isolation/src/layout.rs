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

fn aligned(value: u64, align: u64) -> bool {
    align.is_power_of_two() && value % align == 0
}

fn in_range(span: &Span) -> bool {
    span.start >= LOWEST_ADDRESS && span.end() <= HIGHEST_ADDRESS && span.size > 0
}

fn free_of(span: &Span, taken: &[Span]) -> bool {
    in_range(span) && taken.iter().all(|t| !span.conflicts(t, GUARD_GAP))
}

/// Plans the kernel, app and physical-map bases: fixed without `rng`, random with it.
pub fn plan_vm_layout<R: RngCore>(request: &VmLayoutRequest, rng: Option<&mut R>) -> Result<VmLayout, LayoutError> {
    if !aligned(request.kernel_size, PAGE_SIZE)
        || request.kernel_size == 0
        || !aligned(request.physmap_size, HUGE_PAGE_SIZE)
        || request.physmap_size == 0
    {
        return Err(LayoutError::InvalidRequest);
    }
    let mut taken: heapless_spans::Spans = heapless_spans::Spans::default();
    if let Some(reserved) = request.reserved {
        taken.push(reserved);
    }
    if let AppPlacement::Fixed(span) = request.app {
        if !aligned(span.start, PAGE_SIZE) || !aligned(span.size, PAGE_SIZE) {
            return Err(LayoutError::InvalidRequest);
        }
        if !in_range(&span) {
            return Err(LayoutError::OutOfRange);
        }
        taken.push(span);
    }
    if rng.is_some() {
        // Randomized planning lands with the ASLR work; until then `--aslr` is refused by the VMM.
        return Err(LayoutError::InvalidRequest);
    }
    let kernel = Span::new(FIXED_KERNEL_BASE, request.kernel_size);
    let physmap = Span::new(FIXED_PHYSMAP_BASE, request.physmap_size);
    let app = match request.app {
        AppPlacement::Fixed(span) => span,
        AppPlacement::Relocatable { size, align } => {
            if !aligned(size, PAGE_SIZE) || size == 0 || !aligned(align, PAGE_SIZE) {
                return Err(LayoutError::InvalidRequest);
            }
            let start = FIXED_APP_BASE.checked_next_multiple_of(align).ok_or(LayoutError::NoRoom)?;
            Span::new(start, size)
        }
    };
    for span in [kernel, physmap] {
        if !free_of(&span, taken.as_slice()) {
            return Err(LayoutError::NoRoom);
        }
        taken.push(span);
    }
    if matches!(request.app, AppPlacement::Relocatable { .. }) && !free_of(&app, taken.as_slice()) {
        return Err(LayoutError::NoRoom);
    }
    Ok(VmLayout { kernel, app, physmap, entropy: VmEntropy::default() })
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

/// Plans the stack, brk and mmap area: fixed without `rng`, random with it.
pub fn plan_process_layout<R: RngCore>(
    request: &ProcessLayoutRequest<'_>,
    rng: Option<&mut R>,
) -> Result<ProcessLayout, LayoutError> {
    for size in [request.stack_size, request.brk_size, request.mmap_size] {
        if size == 0 || !aligned(size, PAGE_SIZE) {
            return Err(LayoutError::InvalidRequest);
        }
    }
    if rng.is_some() {
        return Err(LayoutError::InvalidRequest);
    }
    let brk_start = request
        .app_end
        .checked_next_multiple_of(PAGE_SIZE)
        .and_then(|end| end.checked_add(GUARD_GAP))
        .ok_or(LayoutError::NoRoom)?;
    let stack = Span::new(FIXED_STACK_TOP.checked_sub(request.stack_size).ok_or(LayoutError::NoRoom)?, request.stack_size);
    let mmap = Span::new(FIXED_MMAP_TOP.checked_sub(request.mmap_size).ok_or(LayoutError::NoRoom)?, request.mmap_size);
    let brk = Span::new(brk_start, request.brk_size);
    let mut taken = heapless_spans::Spans::default();
    for span in request.occupied {
        taken.push(*span);
    }
    for span in [stack, mmap, brk] {
        if !free_of(&span, taken.as_slice()) {
            return Err(LayoutError::NoRoom);
        }
        taken.push(span);
    }
    Ok(ProcessLayout { stack, brk, mmap, entropy: ProcessEntropy::default() })
}

mod heapless_spans {
    use super::Span;
    use alloc::vec::Vec;

    /// The spans placed so far.
    #[derive(Default)]
    pub struct Spans(Vec<Span>);

    impl Spans {
        pub fn push(&mut self, span: Span) {
            self.0.push(span);
        }
        pub fn as_slice(&self) -> &[Span] {
            &self.0
        }
    }
}
