//! The guest's timer interrupt on KVM: the part of the PC's i8254 PIT (channel 0, one-shot) and of the
//! master 8259 PIC (vector base, mask of line 0, end of interrupt) that the guest kernel programs. QEMU
//! has both chips; the KVM backend runs without an in-kernel interrupt controller (creating one costs
//! milliseconds per run, see docs/boot-profile.md) and injects the vector itself when the count expires.
//!
//! A pure state machine over guest-nanoseconds: port writes arm it, [`PitPic::poll`] notices expiry,
//! [`PitPic::ready`] says which vector to inject, [`PitPic::acknowledge`] records the injection. Every
//! value comes from the guest: nothing here can fail or allocate.

use kernel_abi::timer::{PIC1_COMMAND, PIC1_DATA, PIC2_COMMAND, PIC2_DATA, PIT_CHANNEL0, PIT_COMMAND, PIT_HZ};

/// Whether `port` belongs to this device.
pub const fn is_timer_port(port: u16) -> bool {
    matches!(port, PIC1_COMMAND | PIC1_DATA | PIC2_COMMAND | PIC2_DATA | PIT_CHANNEL0 | PIT_COMMAND)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PitPic {
    /// The master PIC's vector for line 0 (ICW2); 8 after reset, as the BIOS leaves it.
    vector_base: u8,
    /// Which initialisation word the master PIC expects next (0: none).
    icw_step: u8,
    /// The master PIC's interrupt mask (OCW1): bit 0 is the timer's line.
    mask: u8,
    /// The timer's interrupt was injected and its end of interrupt has not come.
    in_service: bool,
    /// The count's low byte, written, waiting for the high byte.
    count_low: Option<u8>,
    /// When the one-shot count reaches zero (guest ns).
    expires_at: Option<u64>,
    /// The count expired and the interrupt waits for injection.
    raised: bool,
}

impl Default for PitPic {
    fn default() -> Self {
        Self {
            vector_base: 8,
            icw_step: 0,
            mask: 0xff,
            in_service: false,
            count_low: None,
            expires_at: None,
            raised: false,
        }
    }
}

impl PitPic {
    /// A write of `value` to `port` at guest time `now`.
    pub fn write(&mut self, port: u16, value: u8, now: u64) {
        match port {
            PIC1_COMMAND if value & 0x10 != 0 => {
                // ICW1: initialisation; ICW2-4 follow on the data port (ICW4 only if asked for).
                self.icw_step = if value & 1 != 0 { 1 } else { 11 };
                self.mask = 0;
                self.in_service = false;
            }
            PIC1_COMMAND if value & 0x20 != 0 => self.in_service = false, // OCW2: (specific) EOI
            PIC1_COMMAND => {}
            PIC1_DATA => match self.icw_step {
                1 | 11 => {
                    self.vector_base = value & 0xf8;
                    self.icw_step += 1;
                }
                2 => self.icw_step = 3,  // ICW3, then ICW4
                12 => self.icw_step = 0, // ICW3, no ICW4
                3 => self.icw_step = 0,  // ICW4
                _ => self.mask = value,  // OCW1
            },
            // Channel 0 with a new mode: the count is written afresh (lobyte then hibyte).
            PIT_COMMAND if value >> 6 == 0 => {
                self.count_low = None;
                self.expires_at = None;
            }
            PIT_CHANNEL0 => match self.count_low.take() {
                None => self.count_low = Some(value),
                Some(low) => {
                    let count = u64::from(u16::from_le_bytes([low, value]));
                    let count = if count == 0 { 0x1_0000 } else { count };
                    self.expires_at = Some(now.saturating_add(count * 1_000_000_000 / PIT_HZ));
                    self.raised = false;
                }
            },
            // The slave PIC: its lines stay masked; its programming has no effect here.
            _ => {}
        }
    }

    /// When the count expires, if it runs.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// Notices an expired count at guest time `now`.
    pub fn poll(&mut self, now: u64) {
        if self.expires_at.is_some_and(|at| now >= at) {
            self.expires_at = None;
            self.raised = true;
        }
    }

    /// The vector to inject now, if the timer's interrupt is raised, unmasked and not in service.
    pub fn ready(&self) -> Option<u8> {
        (self.raised && self.mask & 1 == 0 && !self.in_service).then_some(self.vector_base)
    }

    /// The interrupt was injected: in service until the guest's end of interrupt.
    pub fn acknowledge(&mut self) {
        self.raised = false;
        self.in_service = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the guest kernel writes (its `timer::init` and `timer::arm`).
    fn init_and_arm(pit: &mut PitPic, ticks: u16, now: u64) {
        for (port, value) in
            [(0x20, 0x11), (0xa0, 0x11), (0x21, 0x20), (0xa1, 0x28), (0x21, 4), (0xa1, 2), (0x21, 1), (0xa1, 1)]
        {
            pit.write(port, value, now);
        }
        pit.write(0x21, 0xff, now);
        pit.write(0x43, 0x30, now);
        let [low, high] = ticks.to_le_bytes();
        pit.write(0x40, low, now);
        pit.write(0x40, high, now);
        pit.write(0x21, 0xfe, now);
    }

    #[test]
    fn a_one_shot_count_raises_the_remapped_vector_once_until_eoi() {
        let mut pit = PitPic::default();
        init_and_arm(&mut pit, 11_932, 1_000); // about 10 ms
        let at = pit.expires_at().unwrap();
        assert!((9_990_000..10_010_000).contains(&(at - 1_000)), "{at}");
        pit.poll(at - 1);
        assert_eq!(pit.ready(), None);
        pit.poll(at);
        assert_eq!(pit.ready(), Some(0x20));
        pit.acknowledge();
        assert_eq!(pit.ready(), None);
        assert_eq!(pit.expires_at(), None, "one-shot");
        // A new count while in service: raised, but held until the end of interrupt.
        pit.write(0x43, 0x30, at);
        pit.write(0x40, 1, at);
        pit.write(0x40, 0, at);
        pit.poll(at + 1_000_000);
        assert_eq!(pit.ready(), None);
        pit.write(0x20, 0x20, at);
        assert_eq!(pit.ready(), Some(0x20));
    }

    #[test]
    fn a_masked_line_holds_the_interrupt() {
        let mut pit = PitPic::default();
        init_and_arm(&mut pit, 1, 0);
        pit.write(0x21, 0xff, 0);
        pit.poll(u64::MAX);
        assert_eq!(pit.ready(), None);
        pit.write(0x21, 0xfe, 0);
        assert_eq!(pit.ready(), Some(0x20));
        assert!(is_timer_port(0x43) && !is_timer_port(0xe9));
    }

    #[test]
    fn any_write_sequence_keeps_the_state_sane() {
        // Garbage from a hostile guest: no panic, no overflow.
        let mut pit = PitPic::default();
        for (i, port) in [0x20u16, 0x21, 0x40, 0x43, 0xa0, 0xa1].iter().cycle().take(600).enumerate() {
            pit.write(*port, (i * 37) as u8, u64::MAX - i as u64);
            pit.poll(u64::MAX);
            let _ = pit.ready();
        }
    }
}
