//! `syscall_args`: arbitrary sequences of (syscall number, six arguments) through the kernel's real
//! syscall layer (`kernel::Process::syscall`), compiled for the host over the model machine
//! (`kernel::model::ModelMachine`), with app memory planted with bytes and pointers in between. After
//! each call the way back to the app runs as the trap code takes it (expired timers, then signal
//! delivery and sigreturn onto and off the app's stack).
//!
//! Checked after every call: nothing panics; the machine was never asked to touch a page the app does not
//! have (the model counts those) nor anything in the kernel's reserved ranges (checked here, on every
//! copy and mapping change); the kernel's own invariants hold (VMAs sorted and disjoint, fd and node
//! reference counts, brk inside its span); no VMA reaches into a reserved range or past the lower half; with
//! W^X enforced no VMA is writable and executable; and the VMA list and the machine's page map agree
//! page for page, permissions included.

use std::sync::LazyLock;

use isolation::layout::{ProcessLayout, Span};
use isolation::paging::{LOWER_HALF_END, PAGE_SIZE};
use kernel::mm::VmaList;
use kernel::model::ModelMachine;
use kernel::{
    Fault, Inspection, Machine, MapError, Process, ProcessConfig, Resume, Segment, SharedId, SyscallResult,
    UserContext, SYSCALLS,
};
use kernel_abi::{Stream, PERM_EXEC, PERM_READ, PERM_WRITE};

use super::input::Reader;

pub const TEXT: u64 = 0x40_0000;
pub const TEXT_LEN: u64 = 0x2000;
pub const RODATA: u64 = 0x50_0000;
pub const RODATA_LEN: u64 = 0x1000;
pub const SCRATCH: u64 = 0x60_0000;
pub const SCRATCH_LEN: u64 = 0x1_0000;
pub const BRK_START: u64 = 0x100_0000;
pub const BRK_LEN: u64 = 16 << 20;
pub const MMAP_START: u64 = 0x7000_0000_0000;
pub const MMAP_LEN: u64 = 1 << 30;
pub const STACK_START: u64 = 0x7fff_0000_0000;
pub const STACK_LEN: u64 = 64 << 10;
/// The kernel image and its physical map, and the boot trampoline: what the app must never reach.
pub const KERNEL: Span = Span::new(0x7e00_0000_0000, 1 << 30);
pub const PHYSMAP: Span = Span::new(0x7d00_0000_0000, 64 << 20);
pub const TRAMPOLINE: Span = Span::new(0x10_0000, 0x1000);
const RESERVED: [Span; 3] = [KERNEL, PHYSMAP, TRAMPOLINE];
/// Pages the model may map at once: small, so that one input cannot allocate much.
const MAX_PAGES: usize = 2048;
/// Records (syscalls or memory plants) per input.
const MAX_RECORDS: usize = 64;

/// The files the app finds (a read-only file and directory, a writable file), packed once.
static FILES: LazyLock<&'static [u8]> = LazyLock::new(|| {
    use kernel_abi::archive::{encode_entry, encode_header, EntryKind};
    let mut out = Vec::new();
    encode_header(&mut |d| out.extend_from_slice(d));
    let mut add = |kind, mode, read_only, path: &[u8], data: &[u8]| {
        encode_entry(&mut |d| out.extend_from_slice(d), kind, mode, read_only, path, data)
            .expect("the fuzz archive encodes");
    };
    add(EntryKind::Directory, 0o755, true, b"/data", b"");
    add(EntryKind::File, 0o644, true, b"/data/hello.txt", b"hello, world\n");
    add(EntryKind::Directory, 0o755, false, b"/work", b"");
    add(EntryKind::File, 0o644, false, b"/work/w.txt", b"writable");
    out.leak()
});

/// Paths planted in scratch memory at startup, so that path arguments sometimes resolve.
const PLANTED: [(u64, &[u8]); 6] = [
    (0, b"/tmp/fuzz\0"),
    (0x100, b"/data/hello.txt\0"),
    (0x200, b"/work/w.txt\0"),
    (0x300, b"/dev/urandom\0"),
    (0x400, b"/proc/self/exe\0"),
    (0x500, b".\0"),
];

fn overlaps(span: &Span, start: u64, len: u64) -> bool {
    let end = start.saturating_add(len.max(1));
    start < span.end() && span.start < end
}

/// The model machine, plus a hard stop on any access to the kernel's reserved ranges: the layer must
/// never copy from, copy to, map, protect or unmap those, whatever the app passed.
pub struct GuardedMachine {
    pub model: ModelMachine,
}

impl GuardedMachine {
    fn guard(&self, what: &str, addr: u64, len: u64) {
        for span in &RESERVED {
            assert!(!overlaps(span, addr, len), "the kernel {what} {addr:#x}+{len:#x}, inside reserved {span:x?}");
        }
    }
}

impl Machine for GuardedMachine {
    fn read_user(&mut self, vmas: &VmaList, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.guard("read app memory at", addr, buf.len() as u64);
        self.model.read_user(vmas, addr, buf)
    }
    fn write_user(&mut self, vmas: &VmaList, addr: u64, data: &[u8]) -> Result<(), Fault> {
        self.guard("wrote app memory at", addr, data.len() as u64);
        self.model.write_user(vmas, addr, data)
    }
    fn map_anonymous(&mut self, addr: u64, len: u64, perms: u32) -> Result<(), MapError> {
        self.guard("mapped", addr, len);
        self.model.map_anonymous(addr, len, perms)
    }
    fn protect(&mut self, addr: u64, len: u64, perms: u32) -> Result<(), MapError> {
        self.guard("reprotected", addr, len);
        self.model.protect(addr, len, perms)
    }
    fn unmap(&mut self, addr: u64, len: u64) {
        self.guard("unmapped", addr, len);
        self.model.unmap(addr, len)
    }
    fn shared_grow(&mut self, id: SharedId, pages: u64) -> Result<(), MapError> {
        self.model.shared_grow(id, pages)
    }
    fn shared_read(&mut self, id: SharedId, offset: u64, buf: &mut [u8]) {
        self.model.shared_read(id, offset, buf)
    }
    fn shared_write(&mut self, id: SharedId, offset: u64, data: &[u8]) {
        self.model.shared_write(id, offset, data)
    }
    fn map_shared(&mut self, addr: u64, len: u64, perms: u32, id: SharedId, first_page: u64) -> Result<(), MapError> {
        self.guard("mapped shared", addr, len);
        self.model.map_shared(addr, len, perms, id, first_page)
    }
    fn guard_code(&mut self, vmas: &VmaList, start: u64, end: u64, found: &[isolation::scan::Finding]) {
        self.guard("guarded code at", start, end.saturating_sub(start));
        self.model.guard_code(vmas, start, end, found)
    }
    fn shared_destroy(&mut self, id: SharedId) {
        self.model.shared_destroy(id)
    }
    fn current_space(&self) -> kernel::SpaceId {
        self.model.current_space()
    }
    fn fork_space(&mut self, vmas: &VmaList, kernel: &[(u64, u64)]) -> Result<kernel::SpaceId, MapError> {
        // Page tables below the kernel's ranges are shared between spaces: no app mapping may lie there.
        for &(start, end) in kernel {
            assert!(
                vmas.iter().all(|vma| vma.end <= start || end <= vma.start),
                "fork was told {start:#x}..{end:#x} is the kernel's, but the app maps part of it"
            );
        }
        self.model.fork_space(vmas, kernel)
    }
    fn switch_space(&mut self, space: kernel::SpaceId) {
        self.model.switch_space(space)
    }
    fn destroy_space(&mut self, space: kernel::SpaceId, kernel: &[(u64, u64)]) {
        self.model.destroy_space(space, kernel)
    }
    fn console(&mut self, stream: Stream, data: &[u8]) {
        self.model.console(stream, data)
    }
    fn save_fpu(&mut self, state: &mut kernel::FpuState) {
        self.model.save_fpu(state)
    }
    fn restore_fpu(&mut self, state: &kernel::FpuState) {
        self.model.restore_fpu(state)
    }
    fn monotonic_ns(&mut self) -> u64 {
        self.model.monotonic_ns()
    }
    fn realtime_ns(&mut self) -> u64 {
        self.model.realtime_ns()
    }
    fn set_fs_base(&mut self, value: u64) {
        self.model.set_fs_base(value)
    }
    fn fs_base(&mut self) -> u64 {
        self.model.fs_base()
    }
    fn read_page(&mut self, page: u64, buf: &mut [u8; 4096]) -> bool {
        self.guard("inspected", page, 4096);
        self.model.read_page(page, buf)
    }
    fn idle_until(&mut self, deadline_ns: u64) {
        self.model.idle_until(deadline_ns)
    }
}

/// The kernel and machine after boot: segments mapped, files loaded, stack set up.
pub fn boot(trace: bool, enforce_wx: bool, inspection: Inspection) -> (Process, GuardedMachine) {
    let layout = ProcessLayout {
        stack: Span::new(STACK_START, STACK_LEN),
        brk: Span::new(BRK_START, BRK_LEN),
        mmap: Span::new(MMAP_START, MMAP_LEN),
        entropy: Default::default(),
    };
    let mut config = ProcessConfig::new([7; 32], layout);
    config.segments = vec![
        Segment { start: TEXT, len: TEXT_LEN, perms: PERM_READ | PERM_EXEC },
        Segment { start: RODATA, len: RODATA_LEN, perms: PERM_READ },
        Segment { start: SCRATCH, len: SCRATCH_LEN, perms: PERM_READ | PERM_WRITE },
    ];
    config.reserved = RESERVED.to_vec();
    config.exe_path = b"/app".to_vec();
    config.stdin = b"input line\nsecond line\n";
    config.files = *FILES;
    config.trace = trace;
    config.enforce_wx = enforce_wx;
    config.inspection = inspection;
    config.fs_capacity = 1 << 20;
    config.memory_size = 64 << 20;
    let mut model = ModelMachine::new();
    model.max_pages = MAX_PAGES;
    model.console_limit = 64 << 10;
    for segment in &config.segments {
        model.premap(segment.start, segment.len, segment.perms);
    }
    for (offset, bytes) in PLANTED {
        model.poke(SCRATCH + offset, bytes).expect("scratch is mapped");
    }
    let mut machine = GuardedMachine { model };
    // The VMM maps the stack's top page and writes the initial stack there; the kernel adopts it.
    let stack_top = STACK_START + STACK_LEN;
    machine.model.premap(stack_top - 4096, 4096, PERM_READ | PERM_WRITE);
    let mut kernel = Process::new(&config).expect("the fuzz configuration is valid");
    kernel.adopt_stack(&mut machine, stack_top - 256, stack_top - 128, 0).expect("the stack is adopted");
    (kernel, machine)
}

/// One argument: a selector byte, then the bytes that selector needs.
fn argument(input: &mut Reader<'_>, kernel: &Process, last: i64) -> u64 {
    let selector = input.u8();
    match selector % 16 {
        0 => u64::from(input.u8()),
        1 => (-i64::from(input.u8())) as u64,
        2 => SCRATCH + u64::from(input.u16()) % SCRATCH_LEN,
        3 => TEXT + u64::from(input.u16()) % (TEXT_LEN + PAGE_SIZE),
        4 => RODATA + u64::from(input.u16()) % (RODATA_LEN + PAGE_SIZE),
        5 => KERNEL.start + u64::from(input.u32()),
        6 => STACK_START + STACK_LEN - u64::from(input.u16()),
        7 => kernel.brk() + u64::from(input.u16()),
        8 => MMAP_START + MMAP_LEN - u64::from(input.u16()) * PAGE_SIZE,
        9 => input.u64(),
        10 => u64::from(input.u16()) * PAGE_SIZE,
        11 => {
            let byte = input.u8();
            let power = 1u64 << (byte % 64);
            if byte & 0x40 != 0 {
                power - 1
            } else {
                power
            }
        }
        12 => u64::from(input.u32()),
        13 => [PHYSMAP.start, TRAMPOLINE.start, KERNEL.end() - 8, PHYSMAP.end() - 1][usize::from(input.u8() % 4)],
        14 => last as u64,
        _ => {
            let near = u64::from(input.u16());
            if selector & 0x10 != 0 {
                LOWER_HALF_END - near
            } else {
                u64::MAX - near
            }
        }
    }
}

fn syscall_number(input: &mut Reader<'_>) -> u64 {
    match input.u8() {
        0xf0..=0xfd => u64::from(input.u16()),
        0xfe | 0xff => input.u64(),
        index => SYSCALLS[usize::from(index) % SYSCALLS.len()].nr,
    }
}

/// One fuzz input: a configuration byte, then records.
pub fn run(data: &[u8]) {
    let mut input = Reader::new(data);
    let config = input.u8();
    let enforce_wx = config & 2 == 0;
    let inspection = match (enforce_wx, config & 4 != 0) {
        (false, _) => Inspection::Off,
        (true, false) => Inspection::Default,
        (true, true) => Inspection::Strict,
    };
    let (mut kernel, mut machine) = boot(config & 1 != 0, enforce_wx, inspection);
    check(&kernel, &machine, enforce_wx, "boot");
    let mut last = 0i64;
    // The app's registers at each system call: signal frames go on its stack, sigreturn reads them back.
    let mut ctx = UserContext { rsp: STACK_START + STACK_LEN - 256, rip: TEXT, ..UserContext::default() };
    for _ in 0..MAX_RECORDS {
        if input.is_empty() {
            break;
        }
        match input.u8() % 8 {
            // Plant bytes in scratch memory (paths, iovecs, structs).
            6 => {
                let offset = u64::from(input.u16()) % SCRATCH_LEN;
                let len = usize::from(input.u8()).min((SCRATCH_LEN - offset) as usize);
                let bytes = input.bytes(len);
                plant(&kernel, &mut machine, SCRATCH + offset, bytes);
            }
            // Plant a pointer-like value (e.g. an iovec base) in scratch memory.
            7 => {
                let offset = u64::from(input.u16()) % (SCRATCH_LEN - 8);
                let value = argument(&mut input, &kernel, last);
                plant(&kernel, &mut machine, SCRATCH + offset, &value.to_le_bytes());
            }
            _ => {
                let nr = syscall_number(&mut input);
                let mut args = [0u64; 6];
                for arg in &mut args {
                    *arg = argument(&mut input, &kernel, last);
                }
                let result = kernel.syscall(&mut machine, nr, &args, ctx.rsp);
                let after = format!("syscall {nr} {args:#x?} = {result:?}");
                check(&kernel, &machine, enforce_wx, &after);
                match result {
                    SyscallResult::Return(value) => last = value,
                    SyscallResult::Exit(_) | SyscallResult::Killed(_) => break,
                }
                // The way back to the app, as the trap code takes it: expired timers, then signals.
                ctx.rax = last as u64;
                kernel.timer_interrupt(&mut machine);
                if kernel.has_return_work() {
                    let resume = kernel.return_to_app(&mut machine, &mut ctx, Some(nr));
                    check(&kernel, &machine, enforce_wx, &format!("the return from {after}"));
                    if let Resume::Killed { .. } | Resume::Exit(_) = resume {
                        break;
                    }
                }
            }
        }
    }
}

/// Writes app memory as the app itself would, if it is still mapped (the app may have unmapped scratch).
fn plant(kernel: &Process, machine: &mut GuardedMachine, addr: u64, bytes: &[u8]) {
    if kernel.vmas().covers(addr, bytes.len() as u64, 0) {
        machine.model.poke(addr, bytes).expect("memory the VMAs cover is mapped");
    }
}

/// The invariants that must hold between any two syscalls.
pub fn check(kernel: &Process, machine: &GuardedMachine, enforce_wx: bool, after: &str) {
    if let Err(broken) = kernel.check_invariants() {
        panic!("{broken} after {after}");
    }
    assert_eq!(machine.model.violations, 0, "the machine was asked to touch unmapped memory after {after}");
    let mut mapped_pages = 0usize;
    for vma in kernel.vmas().iter() {
        assert!(vma.end <= LOWER_HALF_END, "VMA {vma:x?} beyond the lower half after {after}");
        for span in &RESERVED {
            assert!(!overlaps(span, vma.start, vma.len()), "VMA {vma:x?} inside reserved {span:x?} after {after}");
        }
        if enforce_wx {
            let wx = PERM_WRITE | PERM_EXEC;
            assert!(vma.perms & wx != wx, "VMA {vma:x?} is writable and executable after {after}");
        }
        let mut page = vma.start;
        while page < vma.end {
            let perms = machine.model.perms_at(page);
            assert_eq!(perms, Some(vma.perms), "page {page:#x} of VMA {vma:x?} is mapped {perms:?} after {after}");
            page += PAGE_SIZE;
            mapped_pages += 1;
        }
    }
    assert_eq!(machine.model.pages.len(), mapped_pages, "the machine maps pages outside every VMA after {after}");
}
