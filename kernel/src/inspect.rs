//! Inspection of the app's code in `mpk` mode, where the app runs at CPL0: every byte offset of what is
//! executable is scanned for the forbidden instructions (`isolation::scan`). The guarded ones (WRPKRU,
//! MOV to CR0/CR3/CR4, LGDT, LIDT, WRMSR, WRMSRNS) go to the machine, which keeps their pages
//! non-executable and single-steps the app through them ([`Machine::guard_code`], `isolation::guard`);
//! with `--strict-inspection` any forbidden instruction refuses the code instead. Runs on the program's
//! image (at boot and after execve) and on memory that becomes executable later (`mmap` or `mprotect`
//! with `PROT_EXEC`), over the range and a page on each side (a sequence may straddle its edges).
//! Hardware-free, so host tests and the fuzzer run it.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use isolation::scan::{CodeScanner, Finding, MAX_SEQUENCE_LEN};
use kernel_abi::PERM_EXEC;

use crate::errno::Errno;
use crate::machine::Machine;
use crate::mm::PAGE_SIZE;
use crate::process::Process;

/// How the app's code is inspected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inspection {
    /// Not at all (`ring3` and `none`: the app cannot use what inspection looks for).
    Off,
    /// Guard the instructions the kernel's configuration does not neutralize (`mpk`).
    Default,
    /// Refuse every forbidden instruction (`mpk` with `--strict-inspection`).
    Strict,
}

impl Process {
    /// Inspects `[addr, addr + len)` as it becomes executable (the layer changes the mappings after):
    /// in [`Inspection::Default`] the guarded instructions of the range go to the machine; in
    /// [`Inspection::Strict`] EACCES, with a line on the kernel log, if it holds any forbidden one.
    pub(crate) fn inspect_executable<M: Machine>(&self, m: &mut M, addr: u64, len: u64) -> Result<(), Errno> {
        if self.inspection == Inspection::Off {
            return Ok(());
        }
        let end = addr.saturating_add(len);
        let window_start = addr.saturating_sub(PAGE_SIZE);
        let window_end = end.saturating_add(PAGE_SIZE).min(isolation::paging::LOWER_HALF_END);
        let findings = self.scan(m, window_start, window_end, |_| true);
        if self.inspection == Inspection::Strict {
            let Some(finding) = findings.first() else { return Ok(()) };
            let line = alloc::format!(
                "secure-run kernel: refused to make {addr:#x}..{end:#x} executable: {} at {:#x}\n",
                finding.instruction,
                finding.offset
            );
            m.console(kernel_abi::Stream::Log, line.as_bytes());
            return Err(Errno::EACCES);
        }
        // Sequences starting before this cannot reach into the range: their record stands.
        let from = addr.saturating_sub(MAX_SEQUENCE_LEN as u64 - 1);
        let guarded: Vec<Finding> = findings
            .into_iter()
            .filter(|finding| finding.instruction.is_guarded() && (from..end).contains(&finding.offset))
            .collect();
        m.guard_code(&self.vmas, from, end, &guarded);
        Ok(())
    }

    /// Gives the machine the guarded instructions of the program's whole image (every executable
    /// mapping), before its first instruction runs: at boot and after execve. Nothing in other modes.
    pub fn guard_image<M: Machine>(&self, m: &mut M) {
        if self.inspection != Inspection::Default {
            return;
        }
        let Some(first) = self.vmas.iter().next().map(|vma| vma.start) else { return };
        let last = self.vmas.iter().last().map_or(first, |vma| vma.end);
        let guarded: Vec<Finding> = self
            .scan(m, first, last, |perms| perms & PERM_EXEC != 0)
            .into_iter()
            .filter(|finding| finding.instruction.is_guarded())
            .collect();
        m.guard_code(&self.vmas, first, last, &guarded);
    }

    /// Every forbidden instruction in the mappings of `[start, end)` whose permissions `include`
    /// accepts, across the seams of address-contiguous pages. A page without a frame yet reads as zeros
    /// once touched: nothing is found in it, but a sequence from the page before may end in its zeros
    /// (`0F 22` then `00` is `mov cr0, rax`), so its first bytes are scanned.
    fn scan<M: Machine>(&self, m: &mut M, start: u64, end: u64, include: impl Fn(u32) -> bool) -> Vec<Finding> {
        let mut scanner = CodeScanner::new();
        let mut findings = Vec::new();
        let mut page = [0u8; PAGE_SIZE as usize];
        for piece in self.vmas.intersections(start, end).filter(|piece| include(piece.perms)) {
            for virt in (piece.start..piece.end).step_by(PAGE_SIZE as usize) {
                if m.read_page(virt, &mut page) {
                    scanner.feed(virt, &page, &mut findings);
                } else {
                    scanner.feed(virt, &[0; MAX_SEQUENCE_LEN], &mut findings);
                }
            }
        }
        findings
    }
}
