//! What a VM exit does: [`handle_exit`], a pure function of the exit and the [`ExitState`] (the console
//! device and counters), so the `KVM_RUN` loop around it stays a few lines and everything here is
//! tested with made-up exits, without a hypervisor. The QEMU backend, which sees no exits, feeds the
//! console through the same state ([`ExitState::feed_console`]) and ends with the same [`GuestOutcome`].
//!
//! The guest talks through two ports (see `kernel_abi`): [`CONSOLE_PORT`], the console device
//! ([`crate::devices::console`]), and [`EXIT_PORT`], which stops the VM — as the kernel's end only after
//! an authenticated verdict, else as tampering ([`Tampering`]). Any other port or address is
//! answered with all-ones or ignored. The guest is hostile: nothing here panics whatever it does, and
//! the warnings it can trigger are rate-limited.

use std::fmt;

use kernel_abi::afl::SNAPSHOT_PORT;
use kernel_abi::{CrashRecord, CONSOLE_PORT, EXIT_PORT};

use crate::devices::console::{self, ConsoleDecoder, ConsoleSink, GuestRam, Tampering};
use crate::devices::timer::{self, PitPic};

/// How many guest-triggered warnings one run reports before it reports only counts.
pub const WARNING_LIMIT: u32 = 8;

/// What a VM exit was, in the backend-neutral terms [`handle_exit`] decides on.
#[derive(Debug)]
pub enum GuestExitEvent<'a> {
    /// An OUT (or `REP OUTS`, whose whole buffer arrives at once) to `port`.
    IoOut { port: u16, data: &'a [u8] },
    /// An IN from `port`; the handler fills `data` (the access size, or count × size for `REP INS`).
    IoIn { port: u16, data: &'a mut [u8] },
    /// A read of guest-physical memory that is not RAM; the handler fills `data`.
    MmioRead { address: u64, data: &'a mut [u8] },
    /// A write to guest-physical memory that is not RAM.
    MmioWrite { address: u64, data: &'a [u8] },
    /// HLT. Nothing ever interrupts the guest (no interrupt controller, nothing injected), so a halted
    /// vCPU stays halted.
    Hlt,
    /// Triple fault (KVM_EXIT_SHUTDOWN).
    Shutdown,
    /// The hypervisor could not run the guest (KVM_EXIT_INTERNAL_ERROR); on a nested KVM that emulates
    /// CPL0 this is an instruction its emulator lacks.
    InternalError { suberror: u32, rip: Option<u64>, instruction: Option<Vec<u8>> },
    /// KVM_EXIT_FAIL_ENTRY: the vCPU state was refused.
    FailEntry { reason: u64 },
    /// KVM_RUN returned early (a signal); the run loop decides whether to stop.
    Interrupted,
    /// Any other exit, described.
    Unknown(String),
}

/// What the run loop does after an exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    Stop(StopReason),
}

/// Why the VM stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The guest wrote to [`EXIT_PORT`]: the normal end.
    ExitPort,
    /// The vCPU halted for good.
    Halted,
    /// Triple fault.
    TripleFault,
    /// The run's timeout expired.
    Timeout,
    /// The hypervisor failed to run the guest.
    InternalError { message: String },
    /// An exit the VMM does not handle.
    UnexpectedExit { description: String },
    /// QEMU exited on its own (not through the guest's exit port): `code` is its exit status (`None` if
    /// killed by a signal), `stderr` the start of what it printed.
    QemuExited { code: Option<i32>, stderr: String },
    /// The console ring named memory or streams it may not (a kernel bug, or an app in `none` mode
    /// writing the kernel's memory).
    ConsoleRing { message: String },
    /// The console channel was tampered with ([`GuestOutcome::tampering`] says how): the VMM stopped the
    /// guest at once.
    Tampering,
    /// The kernel reached the `--afl` snapshot point (`kernel_abi::afl`); only where the run asked for it
    /// ([`ExitState::expecting_snapshot`]).
    SnapshotPoint,
    /// The run was cancelled from outside (`RunConfig::cancel`): under `--afl`, afl-fuzz's hang timeout.
    Cancelled,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExitPort => write!(f, "the guest stopped the VM"),
            Self::Halted => write!(f, "the guest halted the CPU without stopping the VM"),
            Self::TripleFault => write!(f, "the guest triple-faulted"),
            Self::Timeout => write!(f, "the timeout expired"),
            Self::InternalError { message } => write!(f, "the hypervisor could not run the guest: {message}"),
            Self::UnexpectedExit { description } => write!(f, "unexpected VM exit: {description}"),
            Self::QemuExited { code: Some(code), stderr } => write!(f, "QEMU exited with status {code}: {stderr}"),
            Self::QemuExited { code: None, stderr } => write!(f, "QEMU was killed by a signal: {stderr}"),
            Self::ConsoleRing { message } => write!(f, "the guest's console ring is corrupt: {message}"),
            Self::Tampering => write!(f, "the console channel was tampered with"),
            Self::SnapshotPoint => write!(f, "the kernel reached the snapshot point"),
            Self::Cancelled => write!(f, "the run was cancelled"),
        }
    }
}

/// What one run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestOutcome {
    /// The app's status from the last Exit frame.
    pub status: Option<i32>,
    /// The last Crash frame.
    pub crash: Option<CrashRecord>,
    /// The signal of the last Killed frame: a signal's default action ended the app.
    pub killed_by: Option<i32>,
    pub stop: StopReason,
    /// What the app forged on the console channel, if anything: the run's verdict is then tampering,
    /// whatever else arrived.
    pub tampering: Option<Tampering>,
    /// Console bytes outside authenticated frames.
    pub garbage_bytes: u64,
    /// stdout/stderr bytes were dropped at the output limit.
    pub output_truncated: bool,
    /// Log bytes were dropped at the log limit.
    pub log_truncated: bool,
    /// Accesses to ports and addresses without a device (ignored, or answered with all-ones).
    pub unhandled_accesses: u64,
    /// VM exits handled (KVM) — 0 on QEMU, which does not report them.
    pub exits: u64,
    /// From the start of the run (opening the hypervisor, or on KVM taking over the probe's VM) to the
    /// first console byte or exit.
    pub first_exit_after: Option<std::time::Duration>,
    /// From the start of the run to the end.
    pub wall_time: std::time::Duration,
}

/// The device state that exits act on: the console decoder and counters.
pub struct ExitState<'s> {
    pub decoder: ConsoleDecoder,
    /// The timer interrupt (KVM only: QEMU has its own PIT and PIC).
    pub timer: PitPic,
    /// Guest time of the exit being handled (ns since the VM started), set by the run loop.
    pub now: u64,
    sink: &'s mut dyn ConsoleSink,
    /// Guest memory and the console ring's guest-physical address, where the guest has a ring.
    ring: Option<(&'s mut dyn GuestRam, u64)>,
    unhandled_accesses: u64,
    warnings: u32,
    exits: u64,
    /// The first write to [`SNAPSHOT_PORT`] stops the run ([`StopReason::SnapshotPoint`]).
    snapshot_pending: bool,
}

impl<'s> ExitState<'s> {
    pub fn new(decoder: ConsoleDecoder, sink: &'s mut dyn ConsoleSink) -> Self {
        Self {
            decoder,
            timer: PitPic::default(),
            now: 0,
            sink,
            ring: None,
            unhandled_accesses: 0,
            warnings: 0,
            exits: 0,
            snapshot_pending: false,
        }
    }

    /// The same state, stopping at the kernel's first write to [`SNAPSHOT_PORT`] (any later write is an
    /// access to a port without a device).
    pub fn expecting_snapshot(self) -> Self {
        Self { snapshot_pending: true, ..self }
    }

    /// The same state, taking console-ring flushes from `ram` (the ring's page at `ring_phys`).
    pub fn with_ring(self, ram: &'s mut dyn GuestRam, ring_phys: u64) -> Self {
        if ring_phys == 0 {
            return self;
        }
        Self { decoder: self.decoder.with_ring(), ring: Some((ram, ring_phys)), ..self }
    }

    /// Feeds console bytes (an exit's, or QEMU's pipe), taking the ring flush a doorbell in them asks for.
    /// Err: the ring is corrupt or the channel was tampered with; the run must stop.
    pub fn feed_console(&mut self, bytes: &[u8]) -> Result<(), StopReason> {
        self.decoder.feed(bytes, self.sink);
        if self.decoder.take_doorbell() {
            // A doorbell is only recognised where there is a ring.
            if let Some((ram, ring_phys)) = &mut self.ring {
                self.decoder
                    .take_ring(&mut **ram, *ring_phys, self.sink)
                    .map_err(|message| StopReason::ConsoleRing { message })?;
            }
        }
        match self.decoder.tampering() {
            Some(_) => Err(StopReason::Tampering),
            None => Ok(()),
        }
    }

    /// Reports a VMM diagnostic now (not rate-limited: for the VMM's own, non-guest-triggered notices).
    pub fn notice(&mut self, message: &str) {
        self.sink.notice(message);
    }

    /// Accesses to ports and addresses without a device so far.
    pub fn unhandled_accesses(&self) -> u64 {
        self.unhandled_accesses
    }

    /// Exits handled so far.
    pub fn exits(&self) -> u64 {
        self.exits
    }

    /// A guest-triggered warning: the first [`WARNING_LIMIT`] are reported, then one line saying so.
    fn warn(&mut self, message: fmt::Arguments<'_>) {
        if self.warnings < WARNING_LIMIT {
            self.sink.notice(&message.to_string());
        } else if self.warnings == WARNING_LIMIT {
            self.sink.notice("further warnings about this guest's device accesses are suppressed");
        }
        self.warnings = self.warnings.saturating_add(1);
    }

    fn unhandled(&mut self, message: fmt::Arguments<'_>) {
        self.unhandled_accesses = self.unhandled_accesses.saturating_add(1);
        self.warn(message);
    }

    /// Ends the console stream and builds the outcome.
    pub fn into_outcome(
        mut self,
        stop: StopReason,
        first_exit_after: Option<std::time::Duration>,
        wall_time: std::time::Duration,
    ) -> GuestOutcome {
        self.decoder.finish();
        // Both backends end here: KVM saw the exit port's write, QEMU exited because of it.
        if stop == StopReason::ExitPort {
            self.decoder.exit_port();
        }
        GuestOutcome {
            tampering: self.decoder.tampering(),
            status: self.decoder.status(),
            crash: self.decoder.crash(),
            killed_by: self.decoder.killed_by(),
            stop,
            garbage_bytes: self.decoder.garbage_bytes(),
            output_truncated: self.decoder.output_truncated(),
            log_truncated: self.decoder.log_truncated(),
            unhandled_accesses: self.unhandled_accesses,
            exits: self.exits,
            first_exit_after,
            wall_time,
        }
    }
}

/// Decides what one VM exit does. Never panics, whatever the guest did.
pub fn handle_exit(exit: GuestExitEvent<'_>, state: &mut ExitState<'_>) -> Action {
    state.exits = state.exits.saturating_add(1);
    match exit {
        GuestExitEvent::IoOut { port: CONSOLE_PORT, data } => match state.feed_console(data) {
            Ok(()) => Action::Continue,
            Err(stop) => Action::Stop(stop),
        },
        GuestExitEvent::IoOut { port: EXIT_PORT, .. } => Action::Stop(StopReason::ExitPort),
        GuestExitEvent::IoOut { port: SNAPSHOT_PORT, .. } if state.snapshot_pending => {
            state.snapshot_pending = false;
            Action::Stop(StopReason::SnapshotPoint)
        }
        GuestExitEvent::IoOut { port, data } if timer::is_timer_port(port) => {
            for &byte in data.iter() {
                state.timer.write(port, byte, state.now);
            }
            Action::Continue
        }
        GuestExitEvent::IoOut { port, data } => {
            state.unhandled(format_args!("guest wrote {} byte(s) to port {port:#x}, which has no device", data.len()));
            Action::Continue
        }
        GuestExitEvent::IoIn { port: CONSOLE_PORT, data } => {
            data.fill(console::READBACK);
            Action::Continue
        }
        GuestExitEvent::IoIn { port, data } => {
            data.fill(0xff);
            state.unhandled(format_args!("guest read port {port:#x}, which has no device"));
            Action::Continue
        }
        GuestExitEvent::MmioRead { address, data } => {
            data.fill(0xff);
            state.unhandled(format_args!("guest read guest-physical {address:#x}, outside its memory"));
            Action::Continue
        }
        GuestExitEvent::MmioWrite { address, .. } => {
            state.unhandled(format_args!("guest wrote guest-physical {address:#x}, outside its memory"));
            Action::Continue
        }
        GuestExitEvent::Hlt => Action::Stop(StopReason::Halted),
        GuestExitEvent::Shutdown => Action::Stop(StopReason::TripleFault),
        GuestExitEvent::InternalError { suberror, rip, instruction } => {
            Action::Stop(StopReason::InternalError { message: describe_internal_error(suberror, rip, instruction) })
        }
        GuestExitEvent::FailEntry { reason } => Action::Stop(StopReason::InternalError {
            message: format!("KVM refused to enter the vCPU (hardware entry failure reason {reason:#x})"),
        }),
        GuestExitEvent::Interrupted => Action::Continue,
        GuestExitEvent::Unknown(description) => Action::Stop(StopReason::UnexpectedExit { description }),
    }
}

fn describe_internal_error(suberror: u32, rip: Option<u64>, instruction: Option<Vec<u8>>) -> String {
    // Linux include/uapi/linux/kvm.h, KVM_INTERNAL_ERROR_*.
    let what = match suberror {
        1 => "instruction emulation failed",
        2 => "simultaneous exceptions",
        3 => "delivery event failed",
        4 => "unexpected exit reason",
        _ => "unknown suberror",
    };
    let mut message = format!("KVM internal error {suberror} ({what})");
    if let Some(rip) = rip {
        message.push_str(&format!(" at RIP {rip:#x}"));
    }
    if let Some(bytes) = instruction.filter(|bytes| !bytes.is_empty()) {
        let hex: Vec<String> = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        message.push_str(&format!(", instruction bytes {}", hex.join(" ")));
    }
    if suberror == 1 {
        message.push_str(
            "; on a nested KVM that emulates CPL0 code (kvm_pvm) this is an instruction its emulator lacks \
             (SSE, x87, INT3, ...): use --backend qemu or --isolation ring3",
        );
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::console::tests::{frame, test_decoder};
    use crate::devices::console::CollectingSink;
    use kernel_abi::Stream;

    struct Null;
    impl ConsoleSink for Null {
        fn stdout(&mut self, _: &[u8]) {}
        fn stderr(&mut self, _: &[u8]) {}
        fn log(&mut self, _: &[u8]) {}
        fn notice(&mut self, _: &str) {}
    }

    #[test]
    fn exit_port_stops_and_console_port_feeds_the_decoder() {
        let mut sink = CollectingSink::default();
        let mut state = ExitState::new(test_decoder(), &mut sink);
        let hello = frame(Stream::Stdout, b"hi\n");
        assert_eq!(
            handle_exit(GuestExitEvent::IoOut { port: CONSOLE_PORT, data: &hello }, &mut state),
            Action::Continue
        );
        let status = frame(Stream::Exit, &7i32.to_le_bytes());
        for byte in &status {
            let exit = GuestExitEvent::IoOut { port: CONSOLE_PORT, data: std::slice::from_ref(byte) };
            assert_eq!(handle_exit(exit, &mut state), Action::Continue);
        }
        for data in [&[0u8][..], &[0, 0, 0, 0], &[1, 2]] {
            let exit = GuestExitEvent::IoOut { port: EXIT_PORT, data };
            assert_eq!(handle_exit(exit, &mut state), Action::Stop(StopReason::ExitPort));
        }
        let outcome = state.into_outcome(StopReason::ExitPort, None, std::time::Duration::ZERO);
        assert_eq!(outcome.status, Some(7));
        assert_eq!(outcome.exits, 1 + status.len() as u64 + 3);
        assert_eq!(outcome.tampering, None);
        assert_eq!(sink.stdout, b"hi\n");
    }

    #[test]
    fn forged_console_bytes_stop_the_run_as_tampering() {
        let mut sink = CollectingSink::default();
        let mut state = ExitState::new(test_decoder(), &mut sink);
        let hello = frame(Stream::Stdout, b"hi\n");
        assert_eq!(
            handle_exit(GuestExitEvent::IoOut { port: CONSOLE_PORT, data: &hello }, &mut state),
            Action::Continue
        );
        // A 4-byte header of the old format, as an app would forge it.
        let forged = [0xa5, Stream::Stdout as u8, 2, 0, b'x', b'\n'];
        assert_eq!(
            handle_exit(GuestExitEvent::IoOut { port: CONSOLE_PORT, data: &forged }, &mut state),
            Action::Stop(StopReason::Tampering)
        );
        let outcome = state.into_outcome(StopReason::Tampering, None, std::time::Duration::ZERO);
        assert_eq!(outcome.tampering, Some(Tampering::ForgedFrame { stream: Stream::Stdout }));
        assert_eq!(sink.stdout, b"hi\n");
    }

    #[test]
    fn a_stop_without_an_authenticated_verdict_is_tampering() {
        let mut sink = Null;
        let mut state = ExitState::new(test_decoder(), &mut sink);
        let bye = frame(Stream::Stdout, b"bye\n");
        assert_eq!(handle_exit(GuestExitEvent::IoOut { port: CONSOLE_PORT, data: &bye }, &mut state), Action::Continue);
        assert_eq!(
            handle_exit(GuestExitEvent::IoOut { port: EXIT_PORT, data: &[0] }, &mut state),
            Action::Stop(StopReason::ExitPort)
        );
        let outcome = state.into_outcome(StopReason::ExitPort, None, std::time::Duration::ZERO);
        assert_eq!(outcome.tampering, Some(Tampering::StopWithoutVerdict));
        // Any other end (a halt, a timeout) is no verdict either, but the app cannot forge it as the
        // kernel's end: it is reported as what it is.
        let mut sink = Null;
        let state = ExitState::new(test_decoder(), &mut sink);
        assert_eq!(state.into_outcome(StopReason::Halted, None, std::time::Duration::ZERO).tampering, None);
    }

    #[test]
    fn unknown_ports_read_all_ones_and_warnings_are_rate_limited() {
        let mut sink = CollectingSink::default();
        let mut state = ExitState::new(test_decoder(), &mut sink);
        for port in 0..100u16 {
            let mut data = [0u8; 4];
            assert_eq!(
                handle_exit(GuestExitEvent::IoIn { port: 0x70 + port, data: &mut data }, &mut state),
                Action::Continue
            );
            assert_eq!(data, [0xff; 4]);
            assert_eq!(handle_exit(GuestExitEvent::IoOut { port: 0x80, data: &[1] }, &mut state), Action::Continue);
        }
        let mut data = [0u8; 2];
        assert_eq!(
            handle_exit(GuestExitEvent::IoIn { port: CONSOLE_PORT, data: &mut data }, &mut state),
            Action::Continue
        );
        assert_eq!(data, [0xe9; 2]);
        let mut data = [0u8; 8];
        let read = GuestExitEvent::MmioRead { address: 1 << 40, data: &mut data };
        assert_eq!(handle_exit(read, &mut state), Action::Continue);
        assert_eq!(data, [0xff; 8]);
        assert_eq!(state.unhandled_accesses(), 201);
        let outcome = state.into_outcome(StopReason::ExitPort, None, std::time::Duration::ZERO);
        assert_eq!(outcome.unhandled_accesses, 201);
        assert_eq!(sink.notices.len(), WARNING_LIMIT as usize + 1);
    }

    #[test]
    fn only_the_first_snapshot_port_write_of_a_run_that_expects_one_stops_it() {
        let mut sink = Null;
        let mut state = ExitState::new(test_decoder(), &mut sink);
        let write = || GuestExitEvent::IoOut { port: SNAPSHOT_PORT, data: &[0] };
        assert_eq!(handle_exit(write(), &mut state), Action::Continue, "a plain run has no snapshot point");
        let mut state = state.expecting_snapshot();
        assert_eq!(handle_exit(write(), &mut state), Action::Stop(StopReason::SnapshotPoint));
        assert_eq!(handle_exit(write(), &mut state), Action::Continue, "a later write is the app's");
        assert_eq!(state.unhandled_accesses(), 2);
    }

    #[test]
    fn a_killed_frame_names_the_signal_apart_from_the_status() {
        let mut sink = Null;
        let mut state = ExitState::new(test_decoder(), &mut sink);
        let mut bytes = frame(Stream::Killed, &6i32.to_le_bytes());
        bytes.extend(frame(Stream::Exit, &134i32.to_le_bytes()));
        assert_eq!(
            handle_exit(GuestExitEvent::IoOut { port: CONSOLE_PORT, data: &bytes }, &mut state),
            Action::Continue
        );
        let outcome = state.into_outcome(StopReason::ExitPort, None, std::time::Duration::ZERO);
        assert_eq!((outcome.killed_by, outcome.status), (Some(6), Some(134)));
    }

    #[test]
    fn fatal_exits_stop_with_reasons() {
        let mut sink = Null;
        let mut state = ExitState::new(test_decoder(), &mut sink);
        assert_eq!(handle_exit(GuestExitEvent::Hlt, &mut state), Action::Stop(StopReason::Halted));
        assert_eq!(handle_exit(GuestExitEvent::Shutdown, &mut state), Action::Stop(StopReason::TripleFault));
        assert_eq!(handle_exit(GuestExitEvent::Interrupted, &mut state), Action::Continue);
        let internal = GuestExitEvent::InternalError { suberror: 1, rip: Some(0x1234), instruction: Some(vec![0xcc]) };
        match handle_exit(internal, &mut state) {
            Action::Stop(StopReason::InternalError { message }) => {
                assert!(
                    message.contains("0x1234") && message.contains("cc") && message.contains("emulat"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            handle_exit(GuestExitEvent::FailEntry { reason: 0x21 }, &mut state),
            Action::Stop(StopReason::InternalError { .. })
        ));
        assert!(matches!(
            handle_exit(GuestExitEvent::Unknown("KVM_EXIT_DEBUG".into()), &mut state),
            Action::Stop(StopReason::UnexpectedExit { .. })
        ));
    }
}
