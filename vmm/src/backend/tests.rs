//! Both backends, for real: tiny hand-written guests (64-bit code assembled into this test binary) in a
//! hand-built memory image with page tables from `isolation::paging`. These tests need `/dev/kvm` and
//! `qemu-system-x86_64`, and FAIL (never skip) when either is missing.

use std::time::Duration;

use isolation::paging::{map, PageFlags, PhysMemory, HUGE_PAGE_SIZE, PAGE_SIZE};
use kernel_abi::CrashRecord;

use super::*;
use crate::arch::x86_64::layout::TRAMPOLINE_ADDR;
use crate::devices::console::tests::TEST_KEY;
use crate::devices::console::{CollectingSink, Tampering};
use crate::exit::StopReason;
use crate::image::Chunk;

const MEMORY_SIZE: u64 = 32 << 20;
const CODE_ADDR: u64 = 0x20_0000;
const DATA_ADDR: u64 = 0x20_1000;
/// Where the image holds the console key ([`TEST_KEY`]) the guests send, in the data page.
const KEY_ADDR: u64 = DATA_ADDR + 0x800;
const TABLES_ADDR: u64 = 0x30_0000;
const TABLES_SIZE: u64 = 0x1_0000;
/// A pattern chunk at the very top of guest memory, and zero memory below it, that guests check.
const TOP_PATTERN_ADDR: u64 = MEMORY_SIZE - (1 << 20);
const ZERO_CHECK_ADDR: u64 = MEMORY_SIZE - (2 << 20);
/// What the page tables map for the memory checker (2 MiB pages).
const CHECK_MAPPED_ADDR: u64 = MEMORY_SIZE - (4 << 20);

// Test guests: position-independent 64-bit code copied to CODE_ADDR. Each ends the VM itself or spins.
core::arch::global_asm!(
    ".pushsection .rodata.secure_run_test_guests,\"a\"",
    ".code64",
    // Sends the 16 bytes of the console key (TEST_KEY, at KEY_ADDR) after a frame's first 4 header bytes.
    ".macro key_out",
    "mov esi, {key}",
    "mov ecx, 16",
    "mov edx, 0xe9",
    "rep outsb",
    ".endm",
    // Stdout "hi\n", then Exit with status = EDI (the boot-info register), then the exit port.
    ".globl secure_run_test_hello_start",
    ".hidden secure_run_test_hello_start",
    "secure_run_test_hello_start:",
    "lea rsi, [rip + .Lt_hello_2]",
    "mov ecx, 4",
    "mov edx, 0xe9",
    "rep outsb",
    "key_out",
    "lea rsi, [rip + .Lt_hello_2 + 4]",
    "mov ecx, 3",
    "rep outsb",
    "mov dword ptr [{data}], 0x000403a5",
    "mov dword ptr [{data} + 4], edi",
    "mov esi, {data}",
    "mov ecx, 4",
    "mov edx, 0xe9",
    "rep outsb",
    "key_out",
    "mov esi, {data} + 4",
    "mov ecx, 4",
    "rep outsb",
    "xor eax, eax",
    "out 0xf4, eax",
    ".Lt_hello_1: hlt",
    "jmp .Lt_hello_1",
    ".Lt_hello_2: .byte 0xa5, 1, 3, 0, 0x68, 0x69, 0x0a",
    ".globl secure_run_test_hello_end",
    ".hidden secure_run_test_hello_end",
    "secure_run_test_hello_end:",
    // An endless loop.
    ".globl secure_run_test_spin_start",
    ".hidden secure_run_test_spin_start",
    "secure_run_test_spin_start:",
    ".Lt_spin_1: jmp .Lt_spin_1",
    ".globl secure_run_test_spin_end",
    ".hidden secure_run_test_spin_end",
    "secure_run_test_spin_end:",
    // Accesses to ports without devices, stdout "ok" + the byte the console port reads back, then junk
    // on the console (tampering: the run stops there), then an Exit frame with the dword an unassigned
    // port reads, which must not count.
    ".globl secure_run_test_garbage_start",
    ".hidden secure_run_test_garbage_start",
    "secure_run_test_garbage_start:",
    "mov edx, 0x2f8",
    "mov al, 0x55",
    "out dx, al",
    "out 0x80, al",
    "in al, dx",
    "in eax, dx",
    "mov r8d, eax",
    "mov edx, 0xe9",
    "in al, dx",
    "mov dword ptr [{data}], 0x000301a5",
    "mov dword ptr [{data} + 4], 0x00006b6f",
    "mov byte ptr [{data} + 6], al",
    "mov esi, {data}",
    "mov ecx, 4",
    "rep outsb",
    "key_out",
    "mov esi, {data} + 4",
    "mov ecx, 3",
    "rep outsb",
    "lea rsi, [rip + .Lt_garbage_2]",
    "mov ecx, 3",
    "rep outsb",
    "mov dword ptr [{data}], 0x000403a5",
    "mov dword ptr [{data} + 4], r8d",
    "mov esi, {data}",
    "mov ecx, 4",
    "mov edx, 0xe9",
    "rep outsb",
    "key_out",
    "mov esi, {data} + 4",
    "mov ecx, 4",
    "rep outsb",
    "xor eax, eax",
    "out 0xf4, al",
    ".Lt_garbage_1: hlt",
    "jmp .Lt_garbage_1",
    ".Lt_garbage_2: .byte 0x00, 0xff, 0x13",
    ".Lt_garbage_3:",
    ".globl secure_run_test_garbage_end",
    ".hidden secure_run_test_garbage_end",
    "secure_run_test_garbage_end:",
    // A read of an unmapped address: #PF with an empty IDT, a triple fault.
    ".globl secure_run_test_fault_start",
    ".hidden secure_run_test_fault_start",
    "secure_run_test_fault_start:",
    "mov rax, 0x7f0000000000",
    "mov rax, [rax]",
    ".Lt_fault_1: jmp .Lt_fault_1",
    ".globl secure_run_test_fault_end",
    ".hidden secure_run_test_fault_end",
    "secure_run_test_fault_end:",
    // INT3 at CPL0: the nested KVM's emulator lacks it (internal error); elsewhere a triple fault.
    ".globl secure_run_test_int3_start",
    ".hidden secure_run_test_int3_start",
    "secure_run_test_int3_start:",
    "int3",
    "1: jmp 1b",
    ".globl secure_run_test_int3_end",
    ".hidden secure_run_test_int3_end",
    "secure_run_test_int3_end:",
    // Checks that memory is as the image left it: the top pattern intact, the area below it zero.
    // Exit status = bytes that differ from the expectation in each area (0 when all is well).
    ".globl secure_run_test_memory_start",
    ".hidden secure_run_test_memory_start",
    "secure_run_test_memory_start:",
    "mov rdi, {pattern}",
    "mov ecx, {pattern_len}",
    "mov al, 0x5a",
    "repe scasb",
    "mov r8d, ecx",
    "mov rdi, {zero}",
    "mov ecx, {zero_len}",
    "xor eax, eax",
    "repe scasb",
    "add r8d, ecx",
    "mov dword ptr [{data}], 0x000403a5",
    "mov dword ptr [{data} + 4], r8d",
    "mov esi, {data}",
    "mov ecx, 4",
    "mov edx, 0xe9",
    "rep outsb",
    "key_out",
    "mov esi, {data} + 4",
    "mov ecx, 4",
    "rep outsb",
    "out 0xf4, al",
    "1: hlt",
    "jmp 1b",
    ".globl secure_run_test_memory_end",
    ".hidden secure_run_test_memory_end",
    "secure_run_test_memory_end:",
    // Exit status = CPUID.(EAX=7,ECX=0):ECX.PKU (bit 3).
    ".globl secure_run_test_cpuid_start",
    ".hidden secure_run_test_cpuid_start",
    "secure_run_test_cpuid_start:",
    "mov eax, 7",
    "xor ecx, ecx",
    "cpuid",
    "shr ecx, 3",
    "and ecx, 1",
    "mov r8d, ecx",
    "mov dword ptr [{data}], 0x000403a5",
    "mov dword ptr [{data} + 4], r8d",
    "mov esi, {data}",
    "mov ecx, 4",
    "mov edx, 0xe9",
    "rep outsb",
    "key_out",
    "mov esi, {data} + 4",
    "mov ecx, 4",
    "rep outsb",
    "out 0xf4, al",
    ".Lt_cpuid_1: hlt",
    "jmp .Lt_cpuid_1",
    ".globl secure_run_test_cpuid_end",
    ".hidden secure_run_test_cpuid_end",
    "secure_run_test_cpuid_end:",
    ".popsection",
    data = const DATA_ADDR,
    key = const KEY_ADDR,
    pattern = const TOP_PATTERN_ADDR,
    pattern_len = const MEMORY_SIZE - TOP_PATTERN_ADDR,
    zero = const ZERO_CHECK_ADDR,
    zero_len = const TOP_PATTERN_ADDR - ZERO_CHECK_ADDR,
);

macro_rules! guest_code {
    ($start:ident, $end:ident) => {{
        extern "C" {
            static $start: u8;
            static $end: u8;
        }
        let start = &raw const $start;
        let len = &raw const $end as usize - start as usize;
        // SAFETY: the two symbols bracket bytes the `global_asm!` above emitted, in order, into one
        // allocated read-only section of this binary; they are never written and `u8` has no invalid values.
        unsafe { std::slice::from_raw_parts(start, len) }.to_vec()
    }};
}

/// Page tables in a Vec, placed at TABLES_ADDR.
struct Tables {
    bytes: Vec<u8>,
    used: u64,
}

impl PhysMemory for Tables {
    fn read_u64(&self, phys: u64) -> u64 {
        let at = (phys - TABLES_ADDR) as usize;
        u64::from_le_bytes(self.bytes[at..at + 8].try_into().unwrap())
    }
    fn write_u64(&mut self, phys: u64, value: u64) {
        let at = (phys - TABLES_ADDR) as usize;
        self.bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }
    fn alloc_zeroed_frame(&mut self) -> Option<u64> {
        (self.used < TABLES_SIZE).then(|| {
            self.used += PAGE_SIZE;
            TABLES_ADDR + self.used - PAGE_SIZE
        })
    }
}

/// An image running `code` at CODE_ADDR (identity mapped), with a writable data page, the trampoline
/// page identity mapped and executable, and the top 4 MiB of memory mapped for the memory checker.
fn guest_image(code: Vec<u8>, rdi: u64) -> (MemoryImage, VcpuEntry) {
    let mut tables = Tables { bytes: vec![0; TABLES_SIZE as usize], used: 0 };
    let root = tables.alloc_zeroed_frame().unwrap();
    let text = PageFlags { executable: true, ..Default::default() };
    let data = PageFlags { writable: true, ..Default::default() };
    map(&mut tables, root, TRAMPOLINE_ADDR, TRAMPOLINE_ADDR, PAGE_SIZE, text, false).unwrap();
    map(&mut tables, root, CODE_ADDR, CODE_ADDR, PAGE_SIZE, text, false).unwrap();
    map(&mut tables, root, DATA_ADDR, DATA_ADDR, PAGE_SIZE, data, false).unwrap();
    map(&mut tables, root, CHECK_MAPPED_ADDR, CHECK_MAPPED_ADDR, MEMORY_SIZE - CHECK_MAPPED_ADDR, data, true).unwrap();
    assert_eq!(CHECK_MAPPED_ADDR % HUGE_PAGE_SIZE, 0);
    tables.bytes.truncate(tables.used as usize);
    let image = MemoryImage {
        memory_size: MEMORY_SIZE,
        chunks: vec![
            Chunk { guest_phys: CODE_ADDR, bytes: code.into() },
            Chunk { guest_phys: KEY_ADDR, bytes: TEST_KEY.to_vec().into() },
            Chunk { guest_phys: TABLES_ADDR, bytes: tables.bytes.into() },
            Chunk { guest_phys: TOP_PATTERN_ADDR, bytes: vec![0x5a; (MEMORY_SIZE - TOP_PATTERN_ADDR) as usize].into() },
        ],
        console_ring: 0,
        afl: None,
    };
    (image, VcpuEntry { rip: CODE_ADDR, rdi, page_table_root: root })
}

/// Fails (never skips) when the facility is missing.
fn require(backend: Backend) {
    match backend {
        Backend::Kvm => {
            let caps = probe_kvm();
            assert!(caps.usable, "these tests need a working /dev/kvm: {:?}", caps.notes);
        }
        Backend::Qemu => {
            if let Err(error) = qemu_available() {
                panic!("these tests need qemu-system-x86_64: {error}");
            }
        }
    }
}

fn run_guest(backend: Backend, code: Vec<u8>, rdi: u64, config: &RunConfig) -> (GuestOutcome, CollectingSink) {
    require(backend);
    let (image, entry) = guest_image(code, rdi);
    let mut sink = CollectingSink::default();
    let outcome =
        run(backend, &image, &entry, config, &mut sink).unwrap_or_else(|error| panic!("{backend:?}: {error}"));
    eprintln!(
        "{backend:?}: {:?}; first exit/output after {:?}, wall {:?}, {} exits; notices {:?}",
        outcome.stop, outcome.first_exit_after, outcome.wall_time, outcome.exits, sink.notices
    );
    (outcome, sink)
}

fn with_timeout(seconds: u64) -> RunConfig {
    RunConfig { timeout: Some(Duration::from_secs(seconds)), console_key: TEST_KEY, ..RunConfig::default() }
}

fn hello(backend: Backend, config: &RunConfig) {
    let (outcome, sink) =
        run_guest(backend, guest_code!(secure_run_test_hello_start, secure_run_test_hello_end), 7, config);
    assert_eq!(outcome.stop, StopReason::ExitPort, "{backend:?}");
    assert_eq!(String::from_utf8_lossy(&sink.stdout), "hi\n");
    assert_eq!(outcome.status, Some(7));
    assert_eq!((outcome.garbage_bytes, outcome.output_truncated, outcome.crash), (0, false, None::<CrashRecord>));
}

#[test]
fn kvm_runs_hello() {
    hello(Backend::Kvm, &with_timeout(20));
}

#[test]
fn qemu_pc_runs_hello() {
    hello(Backend::Qemu, &RunConfig { qemu_machine: QemuMachine::Pc, ..with_timeout(20) });
}

#[test]
fn qemu_microvm_runs_hello() {
    hello(Backend::Qemu, &RunConfig { qemu_machine: QemuMachine::Microvm, ..with_timeout(20) });
}

fn guest_sees_pku(backend: Backend, machine: QemuMachine) -> bool {
    let config = RunConfig { qemu_machine: machine, ..with_timeout(20) };
    let (outcome, _) =
        run_guest(backend, guest_code!(secure_run_test_cpuid_start, secure_run_test_cpuid_end), 0, &config);
    assert_eq!(outcome.stop, StopReason::ExitPort);
    outcome.status == Some(1)
}

#[test]
fn qemu_offers_protection_keys_on_both_machines() {
    assert!(guest_sees_pku(Backend::Qemu, QemuMachine::Pc));
    assert!(guest_sees_pku(Backend::Qemu, QemuMachine::Microvm));
}

#[test]
fn kvm_guest_cpuid_matches_the_pku_probe() {
    assert_eq!(guest_sees_pku(Backend::Kvm, QemuMachine::default()), probe_kvm().pku);
}

/// Start-up cost, printed (run with --nocapture): from opening /dev/kvm or spawning QEMU to the first
/// console byte, over a few runs of the hello guest.
#[test]
fn measure_startup() {
    for (backend, machine) in
        [(Backend::Kvm, QemuMachine::Microvm), (Backend::Qemu, QemuMachine::Microvm), (Backend::Qemu, QemuMachine::Pc)]
    {
        require(backend);
        let (image, entry) = guest_image(guest_code!(secure_run_test_hello_start, secure_run_test_hello_end), 7);
        let config = RunConfig { qemu_machine: machine, ..with_timeout(20) };
        let mut first = Vec::new();
        let mut wall = Vec::new();
        for _ in 0..5 {
            let outcome = run(backend, &image, &entry, &config, &mut CollectingSink::default()).unwrap();
            assert_eq!(outcome.status, Some(7));
            first.push(outcome.first_exit_after.unwrap());
            wall.push(outcome.wall_time);
        }
        first.sort();
        wall.sort();
        eprintln!(
            "{backend:?}/{machine:?}: first exit median {:?} (min {:?}), wall median {:?}",
            first[2], first[0], wall[2]
        );
    }
}

fn spin_times_out(backend: Backend) {
    let started = std::time::Instant::now();
    let (outcome, _) =
        run_guest(backend, guest_code!(secure_run_test_spin_start, secure_run_test_spin_end), 0, &with_timeout(1));
    assert_eq!(outcome.stop, StopReason::Timeout);
    assert_eq!(outcome.status, None);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(4), "{backend:?} took {elapsed:?}");
}

#[test]
fn kvm_endless_loop_times_out() {
    spin_times_out(Backend::Kvm);
}

#[test]
fn qemu_endless_loop_times_out() {
    spin_times_out(Backend::Qemu);
}

fn garbage(backend: Backend) {
    let (outcome, sink) = run_guest(
        backend,
        guest_code!(secure_run_test_garbage_start, secure_run_test_garbage_end),
        0,
        &with_timeout(20),
    );
    assert_eq!(outcome.stop, StopReason::Tampering, "{backend:?}");
    assert_eq!(outcome.tampering, Some(Tampering::StrayByte { byte: 0 }), "{backend:?}");
    // The console port reads back 0xe9 (isa-debugcon's default); the frame before the junk arrives.
    assert_eq!(sink.stdout, b"ok\xe9");
    assert_eq!(outcome.status, None, "the Exit frame after the junk is not taken");
}

#[test]
fn kvm_stops_at_garbage() {
    garbage(Backend::Kvm);
}

#[test]
fn qemu_stops_at_garbage() {
    garbage(Backend::Qemu);
}

fn reports_triple_fault(backend: Backend) {
    let code = guest_code!(secure_run_test_fault_start, secure_run_test_fault_end);
    let (outcome, _) = run_guest(backend, code, 0, &with_timeout(20));
    assert_eq!(outcome.stop, StopReason::TripleFault);
}

#[test]
fn kvm_reports_triple_fault() {
    reports_triple_fault(Backend::Kvm);
}

#[test]
fn qemu_reports_triple_fault() {
    reports_triple_fault(Backend::Qemu);
}

#[test]
fn kvm_int3_is_an_internal_error_or_a_triple_fault() {
    let (outcome, _) = run_guest(
        Backend::Kvm,
        guest_code!(secure_run_test_int3_start, secure_run_test_int3_end),
        0,
        &with_timeout(20),
    );
    match outcome.stop {
        // On the nested kvm_pvm: the emulator lacks INT3 at CPL0. The message names RIP and the byte.
        StopReason::InternalError { message } if probe_kvm().cpl0_emulated => {
            assert!(
                message.contains(&format!("{CODE_ADDR:#x}")) && message.contains("instruction bytes cc"),
                "{message}"
            );
        }
        // Real hardware: #BP through an empty IDT.
        StopReason::TripleFault if !probe_kvm().cpl0_emulated => {}
        other => panic!("{other:?}"),
    }
}

fn memory_is_intact(backend: Backend, machine: QemuMachine) {
    let config = RunConfig { qemu_machine: machine, ..with_timeout(30) };
    let (outcome, _) =
        run_guest(backend, guest_code!(secure_run_test_memory_start, secure_run_test_memory_end), 0, &config);
    assert_eq!(outcome.stop, StopReason::ExitPort);
    assert_eq!(outcome.status, Some(0), "{backend:?} {machine:?}: bytes changed at the top of guest memory");
}

#[test]
fn kvm_memory_is_as_the_image_left_it() {
    memory_is_intact(Backend::Kvm, QemuMachine::Pc);
}

#[test]
fn qemu_memory_is_as_the_image_left_it() {
    memory_is_intact(Backend::Qemu, QemuMachine::Pc);
}

#[test]
fn qemu_microvm_memory_is_as_the_image_left_it() {
    memory_is_intact(Backend::Qemu, QemuMachine::Microvm);
}

#[test]
fn probes_describe_this_host() {
    let caps = probe_kvm();
    eprintln!("{caps:?}");
    assert!(caps.usable, "{:?}", caps.notes);
    assert_eq!(caps.cpl0_emulated, std::path::Path::new("/sys/module/kvm_pvm").exists());
    if caps.cpl0_emulated {
        // docs/design.md ("This project's machines"): the nested KVM here offers no protection keys.
        assert!(!caps.pku);
    }
    assert!(qemu_available().unwrap().ends_with("qemu-system-x86_64"));
}

#[test]
fn kvm_refuses_a_guest_that_needs_pku_when_kvm_has_none() {
    require(Backend::Kvm);
    if probe_kvm().pku {
        return; // a host with PKU runs it; nothing to refuse
    }
    let (image, entry) = guest_image(vec![0xf4], 0);
    let config = RunConfig { needs_pku: true, ..RunConfig::default() };
    let result = run(Backend::Kvm, &image, &entry, &config, &mut CollectingSink::default());
    assert!(matches!(result, Err(BackendError::PkuUnavailable)), "{result:?}");
}

#[test]
fn invalid_images_are_refused_with_reasons() {
    let (image, entry) = guest_image(vec![0xf4], 0);
    let bad = |image: MemoryImage, entry: VcpuEntry| {
        let error = validate_image(&image, &entry).unwrap_err();
        assert!(matches!(error, BackendError::InvalidImage(_)));
        error.to_string()
    };
    validate_image(&image, &entry).unwrap();
    let mut overlap = image.clone();
    overlap.chunks.push(Chunk { guest_phys: CODE_ADDR, bytes: vec![1].into() });
    assert!(bad(overlap, entry).contains("overlap"));
    let mut low = image.clone();
    low.chunks.push(Chunk { guest_phys: TRAMPOLINE_ADDR, bytes: vec![1].into() });
    bad(low, entry);
    let mut outside = image.clone();
    outside.chunks.push(Chunk { guest_phys: u64::MAX - 1, bytes: vec![1; 4].into() });
    bad(outside, entry);
    bad(MemoryImage { memory_size: MEMORY_SIZE + 1, ..image.clone() }, entry);
    bad(image.clone(), VcpuEntry { page_table_root: MEMORY_SIZE, ..entry });
}
