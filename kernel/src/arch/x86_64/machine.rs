//! The bridge between the hardware and the syscall layer: process start, syscalls, page faults.
//! (First cut: write and exit only, a fixed small stack; the full layer replaces it.)

use alloc::vec::Vec;

use isolation::paging::{PageFlags, PAGE_SIZE};
use kernel_abi::Stream;

use super::console;
use super::idt::TrapFrame;
use super::memory;
use super::start::{fatal, BootState};
use super::syscall::SyscallFrame;

pub struct AppStart {
    pub entry: u64,
    pub stack_pointer: u64,
}

const STACK_TOP: u64 = isolation::layout::FIXED_STACK_TOP;
const STACK_SIZE: u64 = 256 * 1024;

pub fn start_process(state: &BootState) -> AppStart {
    let flags = PageFlags { writable: true, executable: false, user: true, pkey: 0, global: false };
    // SAFETY: boot runs alone.
    let mem = unsafe { memory::memory() };
    if mem.map_new(STACK_TOP - STACK_SIZE, STACK_SIZE, flags).is_err() {
        fatal("cannot map the app's stack");
    }
    let info = &state.info;
    let mut words: Vec<u64> = Vec::new();
    words.push(info.argc);
    // argv[0] only for now: the strings blob is copied below the words.
    let mut strings = Vec::new();
    let args_len = info.args.size as usize;
    strings.resize(args_len, 0u8);
    // SAFETY: the args blob lies inside guest memory, mapped by the physical map.
    unsafe {
        core::ptr::copy_nonoverlapping((mem.physmap_base() + info.args.phys_start) as *const u8, strings.as_mut_ptr(), args_len)
    };
    let strings_at = (STACK_TOP - 4096 - args_len as u64) & !15;
    let mut offsets = Vec::new();
    let mut start = 0;
    for (i, byte) in strings.iter().enumerate() {
        if *byte == 0 {
            offsets.push(strings_at + start as u64);
            start = i + 1;
        }
    }
    let argc = info.argc as usize;
    for offset in offsets.iter().take(argc) {
        words.push(*offset);
    }
    words.push(0);
    for offset in offsets.iter().skip(argc) {
        words.push(*offset);
    }
    words.push(0);
    for (key, value) in [(3, info.app_phdr), (4, info.app_phent), (5, info.app_phnum), (6, PAGE_SIZE), (9, info.app_entry), (25, strings_at), (0, 0)] {
        words.push(key);
        words.push(value);
    }
    let mut stack_pointer = (strings_at - words.len() as u64 * 8) & !15;
    if words.len() % 2 == 1 {
        stack_pointer -= 8;
    }
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    // SAFETY: both ranges lie in the stack mapped above.
    unsafe {
        memory::copy_to_app(strings_at, &strings);
        memory::copy_to_app(stack_pointer, &bytes);
    }
    AppStart { entry: info.app_entry, stack_pointer }
}

/// RFLAGS bits an app may keep across a syscall: CF, PF, AF, ZF, SF, TF, IF, DF, OF, AC, ID (never
/// IOPL, NT, RF or VM, which SYSRET/IRETQ would otherwise load from a corrupted frame).
const USER_RFLAGS: u64 = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x4_0000 | 0x20_0000;

pub fn handle_syscall(frame: &mut SyscallFrame) {
    frame.rflags = (frame.rflags & USER_RFLAGS) | 0x2;
    if frame.rip >= isolation::paging::LOWER_HALF_END {
        // SYSRET to a non-canonical address would fault in the kernel with the app's stack.
        fatal("syscall return address outside the lower half");
    }
    let [a0, a1, a2, ..] = frame.args();
    frame.rax = match frame.number() {
        1 if a0 == 1 || a0 == 2 => {
            let mut buf = alloc::vec![0u8; a2 as usize];
            // SAFETY: first cut: trusts the app's pointer.
            unsafe { memory::copy_from_app(a1, &mut buf) };
            console::write(if a0 == 1 { Stream::Stdout } else { Stream::Stderr }, &buf);
            a2
        }
        60 | 231 => console::exit(a0 as i32),
        _ => (-38i64) as u64,
    };
}

/// Runs the syscall a trap frame stands for (the nested-KVM SYSCALL quirk) and resumes after it.
pub fn syscall_from_trap(frame: &mut TrapFrame) {
    let mut call = SyscallFrame {
        r15: frame.r15,
        r14: frame.r14,
        r13: frame.r13,
        r12: frame.r12,
        rbp: frame.rbp,
        rbx: frame.rbx,
        r9: frame.r9,
        r8: frame.r8,
        r10: frame.r10,
        rdx: frame.rdx,
        rsi: frame.rsi,
        rdi: frame.rdi,
        rax: frame.rax,
        rip: frame.rcx,
        rflags: frame.r11,
        rsp: frame.rsp,
    };
    handle_syscall(&mut call);
    frame.rax = call.rax;
    frame.rip = call.rip;
    frame.rflags = call.rflags;
}

pub fn handle_page_fault(_frame: &mut TrapFrame, _address: u64) -> bool {
    false
}
