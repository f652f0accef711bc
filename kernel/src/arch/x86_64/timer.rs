//! The timer interrupt: channel 0 of the PC's interval timer (the i8254 PIT, 1.193182 MHz) in one-shot
//! mode, through the master 8259 interrupt controller remapped to vector [`TIMER_VECTOR`]. Port I/O
//! only, so the same code runs on QEMU (its PIT and PIC) and on KVM (where the VMM emulates both), with
//! nothing to map. It is armed only while the process has a timer running: a program that never waits
//! takes no interrupt at all.
//!
//! Interrupts are enabled only while the app runs (the kernel keeps IF clear), so the interrupt always
//! arrives from the app; the kernel's own waits watch the clock instead.

use kernel_abi::timer::{PIC1_COMMAND, PIC1_DATA, PIC2_COMMAND, PIC2_DATA, PIT_CHANNEL0, PIT_COMMAND, PIT_HZ};
use x86_64::instructions::port::Port;

/// The timer's vector: the first after the 32 exceptions.
pub const TIMER_VECTOR: u8 = 0x20;
/// The vectors the master and slave PIC deliver (IRQ 0-7, 8-15); IRQ 7 and 15 may arrive spurious.
pub const PIC_VECTORS: core::ops::Range<u8> = 0x20..0x30;
/// The longest one-shot count (16 bits): about 55 ms; longer waits re-arm on each interrupt.
const MAX_COUNT: u64 = 0xffff;

const EOI: u8 = 0x20;

fn out(port: u16, value: u8) {
    // SAFETY: the PIC and PIT ports only program the timer interrupt; nothing else lives there.
    unsafe { Port::<u8>::new(port).write(value) };
}

/// Remaps the PICs to vectors 0x20-0x2f and masks every line (the firmware may have left IRQ 0 on vector
/// 8, the double fault's). Boot only.
pub fn init() {
    out(PIC1_COMMAND, 0x11); // ICW1: edge triggered, cascade, ICW4 follows
    out(PIC2_COMMAND, 0x11);
    out(PIC1_DATA, PIC_VECTORS.start); // ICW2: vector offsets
    out(PIC2_DATA, PIC_VECTORS.start + 8);
    out(PIC1_DATA, 4); // ICW3: slave on IRQ 2
    out(PIC2_DATA, 2);
    out(PIC1_DATA, 1); // ICW4: 8086 mode
    out(PIC2_DATA, 1);
    out(PIC1_DATA, 0xff);
    out(PIC2_DATA, 0xff);
}

/// PIT ticks for `ns` nanoseconds, at least 1, at most the 16-bit maximum.
pub fn ticks_for(ns: u64) -> u16 {
    let ticks = (u128::from(ns) * u128::from(PIT_HZ) / 1_000_000_000) as u64;
    ticks.clamp(1, MAX_COUNT) as u16
}

/// Nanoseconds `ticks` PIT ticks take.
pub fn ns_for(ticks: u16) -> u64 {
    u64::from(ticks) * 1_000_000_000 / PIT_HZ
}

/// Starts a one-shot count of `ticks` (mode 0, interrupt on terminal count) and unmasks IRQ 0.
pub fn arm(ticks: u16) {
    out(PIT_COMMAND, 0x30); // channel 0, lobyte/hibyte, mode 0, binary
    let [low, high] = ticks.to_le_bytes();
    out(PIT_CHANNEL0, low);
    out(PIT_CHANNEL0, high);
    out(PIC1_DATA, 0xfe);
}

/// Masks IRQ 0 (no timer running).
pub fn disarm() {
    out(PIC1_DATA, 0xff);
}

/// Ends the interrupt at the PIC (IRQ 0-7).
pub fn end_of_interrupt() {
    out(PIC1_COMMAND, EOI);
}
