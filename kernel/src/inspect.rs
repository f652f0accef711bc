//! Inspection of code that becomes executable while the app runs (`mmap` or `mprotect` with
//! `PROT_EXEC`), in `mpk` mode: the same scan of every byte offset for the forbidden instructions
//! (`isolation::scan`) that the VMM ran over the app's code at load, over the range and a page on each
//! side (a sequence may straddle its edges). Hardware-free, so host tests and the fuzzer run it.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use isolation::scan::{first_refused, CodeScanner};

use crate::errno::Errno;
use crate::machine::Machine;
use crate::mm::PAGE_SIZE;
use crate::process::Process;

/// How code that becomes executable is inspected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inspection {
    /// Not at all (`ring3` and `none`: the app cannot use what inspection looks for).
    Off,
    /// Refuse what the kernel's configuration does not neutralize (`mpk`).
    Default,
    /// Refuse every forbidden instruction (`mpk` with `--strict-inspection`).
    Strict,
}

impl Process {
    /// Inspects `[addr, addr + len)` (and a page on each side) before it becomes executable; EACCES, with
    /// a line on the kernel log, if it holds a refused instruction.
    pub(crate) fn inspect_executable<M: Machine>(&self, m: &mut M, addr: u64, len: u64) -> Result<(), Errno> {
        if self.inspection == Inspection::Off {
            return Ok(());
        }
        let window_start = addr.saturating_sub(PAGE_SIZE);
        let window_end = addr.saturating_add(len).saturating_add(PAGE_SIZE).min(isolation::paging::LOWER_HALF_END);
        let mut scanner = CodeScanner::new();
        let mut findings = Vec::new();
        let mut page = [0u8; PAGE_SIZE as usize];
        for piece in self.vmas.intersections(window_start, window_end) {
            for virt in (piece.start..piece.end).step_by(PAGE_SIZE as usize) {
                // A page without a frame yet is zeros: nothing to find, and the scan restarts after it.
                if m.read_page(virt, &mut page) {
                    scanner.feed(virt, &page, &mut findings);
                }
            }
        }
        let Some(finding) = first_refused(&findings, self.inspection == Inspection::Strict) else { return Ok(()) };
        let line = alloc::format!(
            "secure-run kernel: refused to make {addr:#x}..{:#x} executable: {} at {:#x}\n",
            addr.saturating_add(len),
            finding.instruction,
            finding.offset
        );
        m.console(kernel_abi::Stream::Log, line.as_bytes());
        Err(Errno::EACCES)
    }
}
