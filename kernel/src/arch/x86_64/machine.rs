//! The bridge between the hardware and the syscall layer: process start, syscalls, page faults.
//! (First cut: write and exit only, a fixed small stack; the full layer replaces it.)

use alloc::vec::Vec;

use isolation::paging::{PageFlags, PAGE_SIZE};
use kernel_abi::{IsolationMode, Stream};

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
    let user = state.mode != IsolationMode::Ring3 || true;
    let flags = PageFlags { writable: true, executable: false, user, pkey: 0, global: false };
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

pub fn handle_syscall(frame: &mut SyscallFrame) {
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

pub fn handle_page_fault(_frame: &mut TrapFrame, _address: u64) -> bool {
    false
}
