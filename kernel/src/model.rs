//! A [`Machine`] made of plain data, for host tests and the fuzzer: app memory is a sparse map of 4 KiB
//! pages with permissions, the console is captured, clocks are counters.
//!
//! The model is strict where the real machine would be dangerous: copying from or to a page that is not
//! mapped, or mapping over a mapped page, counts as a [`ModelMachine::violations`] (the syscall layer must
//! have prevented it) and fails.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use kernel_abi::Stream;

use crate::machine::{Fault, Machine, MapError, SharedId};
use crate::mm::VmaList;

const PAGE: u64 = 4096;

#[derive(Clone)]
pub struct Page {
    /// The page's own bytes (unused for a page of a shared object).
    pub data: Box<[u8; PAGE as usize]>,
    pub perms: u32,
    /// The shared object and page index this page maps, if any: its bytes are the object's.
    pub shared: Option<(SharedId, usize)>,
}

#[derive(Clone, Default)]
pub struct ModelMachine {
    pub pages: BTreeMap<u64, Page>,
    /// Most pages that may be mapped at once (map_anonymous fails with OutOfMemory beyond).
    pub max_pages: usize,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub log: Vec<u8>,
    pub monotonic: u64,
    pub realtime_base: u64,
    pub fs_base: u64,
    /// Accesses the syscall layer should never have made.
    pub violations: u32,
    /// Cap on captured console bytes (the fuzzer must not grow without bound).
    pub console_limit: usize,
    /// The app's FPU state (FXSAVE image).
    pub fpu: Option<Box<[u8; 512]>>,
    /// Shared memory objects and their pages.
    pub shared: BTreeMap<SharedId, Vec<Box<[u8; PAGE as usize]>>>,
    /// What [`Machine::afl_snapshot`] returns: the `--afl` input of the execution after the snapshot.
    pub afl_input: &'static [u8],
    /// How many times the snapshot point was reached ([`Machine::afl_snapshot`]).
    pub afl_snapshots: u32,
    /// The current address space ([`Machine::fork_space`]); `pages` are its pages.
    pub space: u64,
    /// The pages of the other address spaces.
    pub spaces: BTreeMap<u64, BTreeMap<u64, Page>>,
    /// The id the next forked space gets (0 is the boot space).
    pub next_space: u64,
    /// The guarded instructions of the current space by address ([`Machine::guard_code`]).
    pub guarded: BTreeMap<u64, isolation::scan::ForbiddenInstruction>,
    /// Those of the other address spaces.
    pub space_guarded: BTreeMap<u64, BTreeMap<u64, isolation::scan::ForbiddenInstruction>>,
}

impl ModelMachine {
    pub fn new() -> Self {
        Self { max_pages: 1 << 16, console_limit: 1 << 20, realtime_base: 1_700_000_000_000_000_000, ..Self::default() }
    }

    fn pages_of(addr: u64, len: u64) -> impl Iterator<Item = u64> {
        let first = addr / PAGE;
        let last = addr.saturating_add(len.max(1) - 1) / PAGE;
        (first..=last).map(|p| p * PAGE)
    }

    /// Maps pages directly (test setup: app segments the VMM would have mapped).
    pub fn premap(&mut self, addr: u64, len: u64, perms: u32) {
        for page in Self::pages_of(addr, len) {
            self.pages.insert(page, Page { data: Box::new([0; PAGE as usize]), perms, shared: None });
        }
    }

    /// Provides shared object `id` with `pages` zeroed pages, as the hardware side registers memory it did
    /// not allocate (the `--afl` coverage map, [`SharedId::AFL_MAP`]); tests read and write it in `shared`.
    pub fn add_fixed_object(&mut self, id: SharedId, pages: usize) {
        self.shared.insert(id, (0..pages).map(|_| Box::new([0; PAGE as usize])).collect());
    }

    pub fn perms_at(&self, addr: u64) -> Option<u32> {
        self.pages.get(&(addr & !(PAGE - 1))).map(|p| p.perms)
    }

    /// The bytes of the page mapped at `page` (its own, or its shared object's).
    fn page_bytes(&mut self, page: u64) -> Option<&mut [u8; PAGE as usize]> {
        let mapped = self.pages.get_mut(&page)?;
        match mapped.shared {
            None => Some(&mut mapped.data),
            Some((id, index)) => self.shared.get_mut(&id)?.get_mut(index).map(|page| &mut **page),
        }
    }

    /// Reads mapped memory (what `read_user` copies; tests also read results with it).
    pub fn peek(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let mut at = addr;
        for byte in buf.iter_mut() {
            let Some(page) = self.page_bytes(at & !(PAGE - 1)) else {
                self.violations += 1;
                return Err(Fault { addr: at });
            };
            *byte = page[(at % PAGE) as usize];
            at = at.wrapping_add(1);
        }
        Ok(())
    }

    /// Writes mapped memory (what `write_user` copies; tests also plant the app's data with it).
    pub fn poke(&mut self, addr: u64, data: &[u8]) -> Result<(), Fault> {
        let mut at = addr;
        for &byte in data {
            let Some(page) = self.page_bytes(at & !(PAGE - 1)) else {
                self.violations += 1;
                return Err(Fault { addr: at });
            };
            page[(at % PAGE) as usize] = byte;
            at = at.wrapping_add(1);
        }
        Ok(())
    }

    /// Byte `offset` of shared object `id`, counting a violation if the object lacks it.
    fn shared_byte(&mut self, id: SharedId, offset: u64) -> Option<&mut u8> {
        let page = usize::try_from(offset / PAGE).ok()?;
        let byte = self
            .shared
            .get_mut(&id)
            .and_then(|pages| pages.get_mut(page))
            .map(|page| &mut page[(offset % PAGE) as usize]);
        if byte.is_none() {
            self.violations += 1;
        }
        byte
    }

    fn capture(buffer: &mut Vec<u8>, data: &[u8], limit: usize) {
        let room = limit.saturating_sub(buffer.len());
        buffer.extend_from_slice(&data[..data.len().min(room)]);
    }
}

impl Machine for ModelMachine {
    // The model maps eagerly (`map_anonymous`), so it needs no VMA list to back pages.
    fn read_user(&mut self, _vmas: &VmaList, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.peek(addr, buf)
    }

    fn write_user(&mut self, _vmas: &VmaList, addr: u64, data: &[u8]) -> Result<(), Fault> {
        self.poke(addr, data)
    }

    fn map_anonymous(&mut self, addr: u64, len: u64, perms: u32) -> Result<(), MapError> {
        if !addr.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) || len == 0 {
            self.violations += 1;
            return Err(MapError::Invalid);
        }
        if Self::pages_of(addr, len).any(|p| self.pages.contains_key(&p)) {
            self.violations += 1;
            return Err(MapError::Invalid);
        }
        if self.pages.len() as u64 + len / PAGE > self.max_pages as u64 {
            return Err(MapError::OutOfMemory);
        }
        self.premap(addr, len, perms);
        Ok(())
    }

    fn protect(&mut self, addr: u64, len: u64, perms: u32) -> Result<(), MapError> {
        if Self::pages_of(addr, len).any(|page| !self.pages.contains_key(&page)) {
            self.violations += 1;
            return Err(MapError::Invalid);
        }
        for page in Self::pages_of(addr, len) {
            if let Some(p) = self.pages.get_mut(&page) {
                p.perms = perms;
            }
        }
        Ok(())
    }

    fn unmap(&mut self, addr: u64, len: u64) {
        self.guarded.retain(|&at, _| !(addr..addr.saturating_add(len)).contains(&at));
        for page in Self::pages_of(addr, len) {
            if self.pages.remove(&page).is_none() {
                self.violations += 1;
            }
        }
    }

    fn shared_grow(&mut self, id: SharedId, pages: u64) -> Result<(), MapError> {
        if id == SharedId::AFL_MAP {
            self.violations += 1; // fixed memory: never grown
            return Err(MapError::Invalid);
        }
        let pages = usize::try_from(pages).map_err(|_| MapError::OutOfMemory)?;
        let object = self.shared.entry(id).or_default();
        while object.len() < pages {
            object.push(Box::new([0; PAGE as usize]));
        }
        Ok(())
    }

    fn shared_read(&mut self, id: SharedId, offset: u64, buf: &mut [u8]) {
        for (i, out) in buf.iter_mut().enumerate() {
            *out = self.shared_byte(id, offset + i as u64).map_or(0, |byte| *byte);
        }
    }

    fn shared_write(&mut self, id: SharedId, offset: u64, data: &[u8]) {
        for (i, &value) in data.iter().enumerate() {
            if let Some(byte) = self.shared_byte(id, offset + i as u64) {
                *byte = value;
            }
        }
    }

    fn map_shared(&mut self, addr: u64, len: u64, perms: u32, id: SharedId, first_page: u64) -> Result<(), MapError> {
        let pages = self.shared.get(&id).map_or(0, Vec::len) as u64;
        let valid = addr.is_multiple_of(PAGE) && len.is_multiple_of(PAGE) && len > 0;
        if !valid
            || first_page.saturating_add(len / PAGE) > pages
            || Self::pages_of(addr, len).any(|p| self.pages.contains_key(&p))
        {
            self.violations += 1;
            return Err(MapError::Invalid);
        }
        for (i, page) in Self::pages_of(addr, len).enumerate() {
            let shared = Some((id, (first_page as usize) + i));
            self.pages.insert(page, Page { data: Box::new([0; PAGE as usize]), perms, shared });
        }
        Ok(())
    }

    fn current_space(&self) -> crate::machine::SpaceId {
        crate::machine::SpaceId(self.space)
    }

    fn fork_space(&mut self, _vmas: &VmaList, _kernel: &[(u64, u64)]) -> Result<crate::machine::SpaceId, MapError> {
        if self.spaces.values().map(BTreeMap::len).sum::<usize>() + 2 * self.pages.len() > self.max_pages {
            return Err(MapError::OutOfMemory);
        }
        self.next_space += 1;
        let id = self.next_space;
        // An eager copy: private pages get their own bytes, shared ones keep naming their object.
        self.spaces.insert(id, self.pages.clone());
        self.space_guarded.insert(id, self.guarded.clone());
        Ok(crate::machine::SpaceId(id))
    }

    fn switch_space(&mut self, space: crate::machine::SpaceId) {
        if space.0 == self.space {
            return;
        }
        let Some(pages) = self.spaces.remove(&space.0) else {
            self.violations += 1;
            return;
        };
        let old = core::mem::replace(&mut self.pages, pages);
        self.spaces.insert(self.space, old);
        let guarded = self.space_guarded.remove(&space.0).unwrap_or_default();
        let old_guarded = core::mem::replace(&mut self.guarded, guarded);
        self.space_guarded.insert(self.space, old_guarded);
        self.space = space.0;
    }

    fn destroy_space(&mut self, space: crate::machine::SpaceId, _kernel: &[(u64, u64)]) {
        match self.spaces.remove(&space.0) {
            // The layer unmapped the app's memory first.
            Some(pages) if pages.is_empty() && space.0 != self.space => {}
            _ => self.violations += 1,
        }
        self.space_guarded.remove(&space.0);
    }

    fn guard_code(&mut self, _vmas: &VmaList, start: u64, end: u64, found: &[isolation::scan::Finding]) {
        self.guarded.retain(|&at, _| !(start..end).contains(&at));
        for finding in found {
            if !(start..end).contains(&finding.offset) || !finding.instruction.is_guarded() {
                self.violations += 1;
            }
            self.guarded.insert(finding.offset, finding.instruction);
        }
    }

    fn shared_destroy(&mut self, id: SharedId) {
        if id == SharedId::AFL_MAP
            || self.pages.values().any(|page| page.shared.is_some_and(|(object, _)| object == id))
            || self
                .spaces
                .values()
                .flat_map(BTreeMap::values)
                .any(|page| page.shared.is_some_and(|(object, _)| object == id))
            || self.shared.remove(&id).is_none()
        {
            self.violations += 1;
        }
    }

    fn console(&mut self, stream: Stream, data: &[u8]) {
        let limit = self.console_limit;
        match stream {
            Stream::Stdout => Self::capture(&mut self.stdout, data, limit),
            Stream::Stderr => Self::capture(&mut self.stderr, data, limit),
            _ => Self::capture(&mut self.log, data, limit),
        }
    }

    fn save_fpu(&mut self, state: &mut crate::FpuState) {
        state.0 = self.fpu.as_deref().copied().unwrap_or([0; 512]);
    }

    fn restore_fpu(&mut self, state: &crate::FpuState) {
        self.fpu = Some(Box::new(state.0));
    }

    fn monotonic_ns(&mut self) -> u64 {
        self.monotonic = self.monotonic.saturating_add(1000);
        self.monotonic
    }

    fn realtime_ns(&mut self) -> u64 {
        self.realtime_base.saturating_add(self.monotonic)
    }

    fn set_fs_base(&mut self, value: u64) {
        self.fs_base = value;
    }

    fn fs_base(&mut self) -> u64 {
        self.fs_base
    }

    fn read_page(&mut self, page: u64, buf: &mut [u8; 4096]) -> bool {
        match self.page_bytes(page) {
            Some(bytes) => {
                buf.copy_from_slice(&bytes[..]);
                true
            }
            None => false,
        }
    }

    fn idle_until(&mut self, deadline_ns: u64) {
        self.monotonic = self.monotonic.max(deadline_ns);
    }

    fn afl_snapshot(&mut self) -> &'static [u8] {
        self.afl_snapshots += 1;
        self.afl_input
    }
}
