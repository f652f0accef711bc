//! The guest's regions as people read them: what `--print-layout`, `--report` and the crash reports
//! show, made from the regions the boot info lists and the process areas the kernel backs on demand.

use isolation::layout::ProcessLayout;
use kernel_abi::{MappedRegion, RegionKind, PERM_EXEC, PERM_READ, PERM_WRITE};

/// One mapped region, for `--print-layout`, `--report` and crash reports (docs/report.md).
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

/// The report of every region: the mapped `regions` (those of a kind this VMM knows), then the app's
/// stack, brk heap and mmap area from `process`, sorted by virtual address. `mpk` adds the protection
/// key of each.
pub(super) fn region_reports(regions: &[MappedRegion], process: &ProcessLayout, mpk: bool) -> Vec<RegionReport> {
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
    reports
}

/// `rwx` with `-` for each permission missing.
fn perms_string(perms: u32) -> String {
    let flag = |bit, c| if perms & bit != 0 { c } else { '-' };
    [flag(PERM_READ, 'r'), flag(PERM_WRITE, 'w'), flag(PERM_EXEC, 'x')].iter().collect()
}
