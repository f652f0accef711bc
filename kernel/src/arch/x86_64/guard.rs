//! Guarded code (`mpk` mode): the pages that hold a guarded forbidden instruction are non-executable
//! while the app runs elsewhere, and the app is single-stepped (RFLAGS.TF) while it runs on them, each
//! instruction decoded before it runs (`isolation::guard`, which also says why single-stepping and not
//! breakpoints). This module keeps the record per address space and is the step gate every return to
//! the app passes ([`ArchMachine::step_gate`], called by `trap::return_to_app`).
//!
//! Invariant: a guarded page is executable only while it is *active*, that is, while the app's next
//! instruction starts on it or runs into it (at most two pages) and TF is set in the frame the app
//! resumes from. The app cannot leave the active pages without a trap: a single-step #DB comes after
//! every instruction (POPF or IRETQ clearing TF still trap once, since TF was set when they began), an
//! exception or interrupt enters the kernel, and MOV SS, the one instruction that delays the trap, is
//! checked together with the instruction after it. Where no guarded page is active the app runs at full
//! speed; reaching a guarded page faults on the instruction fetch and activates it.
//!
//! Stepping means a trap after every instruction only while IA32_DEBUGCTL.BTF is clear. The app cannot
//! set it while stepped: WRMSR is a guarded instruction, and a jump into kernel text traps before the
//! first kernel instruction runs (a #DB in kernel text ends the run). Outside guarded pages it may reach
//! a WRMSR in kernel text, so the gate clears DEBUGCTL each time stepping begins.
//!
//! While guards exist in an address space, TF is the kernel's there: a return to the app sets or
//! clears it by the rule above (an app that sets TF itself gets its SIGTRAP until it next enters the
//! kernel).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use isolation::guard::{guarded_pages, next_instruction, NextInstruction, Stop, MAX_INSTRUCTION_LEN};
use isolation::paging::PAGE_SIZE;
use isolation::scan::{Finding, ForbiddenInstruction};
use kernel::mm::vma::VmaList;
use kernel_abi::PERM_EXEC;

use super::frame::TrapFrame;
use super::halt::fatal;
use super::machine::ArchMachine;
use super::registers::{clear_debugctl, invalidate_page};

/// RFLAGS.TF: a single-step trap after every instruction.
pub const RFLAGS_TF: u64 = 1 << 8;
/// RFLAGS.RF: no instruction breakpoint on the next instruction.
pub const RFLAGS_RF: u64 = 1 << 16;
/// XBEGIN's abort status when a debug exception aborted the transaction (EAX bit 4).
const XABORT_DEBUG: u64 = 1 << 4;
/// The longest chain of MOV SS the gate follows before it stops the app (real code has one).
const MAX_MOV_SS_CHAIN: usize = 8;

/// One address space's guarded instructions and the pages they make guarded.
#[derive(Clone, Debug, Default)]
pub struct CodeGuards {
    /// The guarded instructions, by the address of their escape byte.
    found: BTreeMap<u64, ForbiddenInstruction>,
    /// The guarded pages, each with the number of instructions that guard it.
    pages: BTreeMap<u64, u32>,
    /// The guarded pages executable now, for the app's next instruction.
    active: [Option<u64>; 2],
}

impl CodeGuards {
    fn is_guarded(&self, page: u64) -> bool {
        self.pages.contains_key(&page)
    }

    fn is_active(&self, page: u64) -> bool {
        self.active.contains(&Some(page))
    }

    pub fn found_is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Whether the app is being stepped through guarded pages.
    pub fn stepping(&self) -> bool {
        self.active.iter().any(Option::is_some)
    }

    fn add(&mut self, escape: u64, instruction: ForbiddenInstruction) {
        if self.found.insert(escape, instruction).is_none() {
            for page in distinct(guarded_pages(escape, PAGE_SIZE)) {
                *self.pages.entry(page).or_default() += 1;
            }
        }
    }

    /// Forgets the instructions in `[start, end)`; returns the pages they guarded.
    fn remove_range(&mut self, start: u64, end: u64) -> Vec<u64> {
        let gone: Vec<u64> = self.found.range(start..end).map(|(&escape, _)| escape).collect();
        let mut pages = Vec::new();
        for escape in gone {
            self.found.remove(&escape);
            for page in distinct(guarded_pages(escape, PAGE_SIZE)) {
                pages.push(page);
                if let Some(count) = self.pages.get_mut(&page) {
                    *count -= 1;
                    if *count == 0 {
                        self.pages.remove(&page);
                    }
                }
            }
        }
        for slot in &mut self.active {
            if slot.is_some_and(|page| !self.pages.contains_key(&page)) {
                *slot = None;
            }
        }
        pages
    }
}

/// The pages of `pages` without a repeat.
fn distinct([first, second]: [u64; 2]) -> impl Iterator<Item = u64> {
    core::iter::once(first).chain((second != first).then_some(second))
}

impl ArchMachine {
    /// [`kernel::Machine::guard_code`]: replaces the record of `[start, end)` and updates the pages
    /// whose guard changed.
    pub(super) fn record_guards(&mut self, vmas: &VmaList, start: u64, end: u64, found: &[Finding]) {
        let unguarded = self.guards.remove_range(start, end);
        for finding in found {
            if !finding.instruction.is_guarded() || !(start..end).contains(&finding.offset) {
                fatal("a guard for an instruction that is not guarded, or outside its range");
            }
            self.guards.add(finding.offset, finding.instruction);
        }
        for page in unguarded {
            if !self.guards.is_guarded(page) && vmas.find(page).is_some_and(|vma| vma.perms & PERM_EXEC != 0) {
                self.set_page_executable(page, true);
            }
        }
        let first = start.saturating_sub(isolation::guard::MAX_PREFIXES) & !(PAGE_SIZE - 1);
        self.restrict_guarded(first, end);
    }

    /// Makes the guarded pages of `[start, end)` that are not active non-executable again: after every
    /// change that maps pages with their VMA's permissions.
    pub(super) fn restrict_guarded(&mut self, start: u64, end: u64) {
        if self.guards.pages.is_empty() {
            return;
        }
        let first = start & !(PAGE_SIZE - 1);
        let pages: Vec<u64> = self
            .guards
            .pages
            .range(first..end)
            .map(|(&page, _)| page)
            .filter(|&page| !self.guards.is_active(page))
            .collect();
        for page in pages {
            self.set_page_executable(page, false);
        }
    }

    /// Forgets the guarded instructions of an unmapped range.
    pub(super) fn forget_guards(&mut self, start: u64, end: u64) {
        if !self.guards.found.is_empty() {
            self.guards.remove_range(start, end);
        }
    }

    fn set_page_executable(&mut self, page: u64, executable: bool) {
        // A page without a frame yet gets its flags when it is backed (`restrict_guarded` then).
        let root = self.memory.root();
        isolation::paging::set_executable(&mut self.memory, root, page, executable, |_, page| invalidate_page(page));
    }

    /// Whether the app is being stepped through guarded pages (the syscall return then takes IRETQ,
    /// which sets TF with the jump back; POPFQ would trap in the kernel).
    pub fn stepping(&self) -> bool {
        self.guards.stepping()
    }

    /// Whether a #PF (`error_code`, at `address`) is an instruction fetch from a guarded page the app may
    /// execute: the step gate then activates it.
    pub fn guarded_fetch(&self, vmas: &VmaList, error_code: u64, address: u64) -> bool {
        use isolation::paging::fault;
        error_code & (fault::FETCH | fault::PRESENT) == fault::FETCH | fault::PRESENT
            && error_code & fault::PROTECTION_KEY == 0
            && self.guards.is_guarded(address & !(PAGE_SIZE - 1))
            && vmas.find(address).is_some_and(|vma| vma.perms & PERM_EXEC != 0)
    }

    /// The step gate, on every return to the app: activates the guarded pages the next instruction
    /// needs (and deactivates the rest), sets TF while any is active, and stops the app before a guarded
    /// instruction would run. A transaction the next instruction would begin is aborted here, as a
    /// debug exception inside it would abort it (RTM only; without it XBEGIN raises #UD).
    pub fn step_gate(&mut self, vmas: &VmaList, frame: &mut TrapFrame) -> Result<(), (Stop, u64)> {
        if self.guards.found.is_empty() {
            return Ok(());
        }
        let page = |addr: u64| addr & !(PAGE_SIZE - 1);
        let reaches_guarded = self.guards.is_guarded(page(frame.rip))
            || self.guards.is_guarded(page(frame.rip.wrapping_add(MAX_INSTRUCTION_LEN as u64 - 1)));
        let was_stepping = self.guards.stepping();
        if !was_stepping && frame.rflags & RFLAGS_TF == 0 && !reaches_guarded {
            return Ok(());
        }
        loop {
            let rip = frame.rip;
            let wanted = self.pages_for(vmas, rip);
            for slot in 0..2 {
                if let Some(page) = self.guards.active[slot] {
                    if !wanted.contains(&Some(page)) {
                        self.guards.active[slot] = None;
                        self.set_page_executable(page, false);
                    }
                }
            }
            for page in wanted.into_iter().flatten() {
                if !self.guards.is_active(page) {
                    let Some(slot) = self.guards.active.iter().position(Option::is_none) else {
                        fatal("more than two active guarded pages")
                    };
                    self.guards.active[slot] = Some(page);
                    self.set_page_executable(page, true);
                }
            }
            if !self.guards.stepping() {
                frame.rflags &= !RFLAGS_TF;
                return Ok(());
            }
            if !was_stepping {
                // Outside guarded pages the app may have set DEBUGCTL.BTF through a WRMSR in kernel text.
                clear_debugctl();
            }
            match self.decode(rip) {
                NextInstruction::Guarded(instruction) => return Err((Stop::Guarded(instruction), rip)),
                NextInstruction::MovSs { len } => self.check_after_mov_ss(rip.wrapping_add(len as u64))?,
                NextInstruction::Xbegin { len, rel } if self.rtm => {
                    frame.rax = XABORT_DEBUG;
                    frame.rip = rip.wrapping_add(len as u64).wrapping_add(rel as u64);
                    continue;
                }
                NextInstruction::Xbegin { .. } | NextInstruction::Other => {}
            }
            frame.rflags |= RFLAGS_TF;
            return Ok(());
        }
    }

    /// MOV SS delays the trap past the instruction at `next`: that one must not be guarded either (and
    /// if it is MOV SS again, the one after it).
    fn check_after_mov_ss(&mut self, mut next: u64) -> Result<(), (Stop, u64)> {
        for _ in 0..MAX_MOV_SS_CHAIN {
            match self.decode(next) {
                NextInstruction::Guarded(instruction) => return Err((Stop::Guarded(instruction), next)),
                NextInstruction::MovSs { len } => next = next.wrapping_add(len as u64),
                NextInstruction::Xbegin { .. } if self.rtm => return Err((Stop::HiddenByMovSs, next)),
                NextInstruction::Xbegin { .. } | NextInstruction::Other => return Ok(()),
            }
        }
        // A chain this long is no compiler's: its end would run unchecked.
        Err((Stop::HiddenByMovSs, next))
    }

    /// The guarded, executable pages the instruction at `rip` may occupy (it starts on one and may run
    /// into the next).
    fn pages_for(&self, vmas: &VmaList, rip: u64) -> [Option<u64>; 2] {
        let page = |addr: u64| addr & !(PAGE_SIZE - 1);
        let usable = |addr: u64| {
            let page = page(addr);
            (self.guards.is_guarded(page) && vmas.find(page).is_some_and(|vma| vma.perms & PERM_EXEC != 0))
                .then_some(page)
        };
        let first = usable(rip);
        let last = usable(rip.wrapping_add(MAX_INSTRUCTION_LEN as u64 - 1)).filter(|&last| Some(last) != first);
        [first, last]
    }

    /// The instruction at `addr` in the current space, as the guard sees it; memory without a frame
    /// reads as zeros (what it holds once backed).
    fn decode(&self, addr: u64) -> NextInstruction {
        let mut bytes = [0u8; MAX_INSTRUCTION_LEN];
        let mut at = addr;
        let mut filled = 0;
        while filled < bytes.len() {
            let in_page = (PAGE_SIZE - (at & (PAGE_SIZE - 1))) as usize;
            let n = in_page.min(bytes.len() - filled);
            if at >= isolation::paging::LOWER_HALF_END {
                break;
            }
            if let Some((phys, _)) = self.memory.translate(at) {
                self.memory.read_phys(phys, &mut bytes[filled..filled + n]);
            }
            filled += n;
            at = at.wrapping_add(n as u64);
        }
        next_instruction(&bytes[..filled])
    }

    /// Keeps the current space's guards under `space` while another becomes current.
    pub(super) fn stash_guards(&mut self, space: u64, next: u64) {
        let next_guards = self.other_guards.remove(&next).unwrap_or_default();
        let old = core::mem::replace(&mut self.guards, next_guards);
        if !old.found.is_empty() {
            self.other_guards.insert(space, old);
        }
    }
}
