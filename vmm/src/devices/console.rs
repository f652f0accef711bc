//! The debug console: the device behind [`CONSOLE_PORT`](kernel_abi::CONSOLE_PORT), which carries
//! [`FrameHeader`](kernel_abi::FrameHeader)-framed streams (stdout, stderr, the exit status, a crash
//! record, kernel log lines) from the guest to the VMM.
//!
//! Both backends feed the same [`ConsoleDecoder`]: QEMU a pipe read at arbitrary boundaries (its
//! `isa-debugcon`), KVM the data of each port-I/O exit through [`crate::exit::handle_exit`] (a whole
//! `REP OUTSB` buffer on hardware KVM, one byte per exit on the nested kvm_pvm, which emulates CPL0
//! string I/O). The decoder is a pure state machine with fixed memory, tested here with made-up streams.
//!
//! The guest is hostile: nothing here panics, allocates without bound or trusts a length. Only the
//! kernel holds the run's console key, so the decoder takes a frame only when its header carries it;
//! anything else on the channel (a header without the key, a byte outside any frame, an unknown
//! stream, a verdict of the wrong size, a stale doorbell, a frame cut off) is [`Tampering`]: the first
//! is remembered, and from then on nothing more is decoded or forwarded (what came before it was the
//! kernel's and has been forwarded). Output beyond the configured caps is dropped (and the drop
//! remembered).

use std::fmt;

use kernel_abi::{
    ConsoleKey, CrashRecord, RingDescriptor, RingHeader, Stream, CONSOLE_KEY_SIZE, FRAME_SYNC, RING_DOORBELL,
    RING_MAX_LEN, RING_SIZE, RING_SLOTS,
};
use rand_core::{OsRng, TryRngCore};
use zerocopy::FromBytes;

/// Default cap on the app's stdout + stderr bytes forwarded from one run.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 64 << 20;
/// Default cap on kernel log bytes forwarded from one run.
pub const DEFAULT_LOG_LIMIT: u64 = 16 << 20;
/// What a read of [`CONSOLE_PORT`](kernel_abi::CONSOLE_PORT) returns: QEMU's `isa-debugcon` default
/// `readback` value, so a guest sees the same port on both backends.
pub const READBACK: u8 = 0xe9;

/// A fresh console key from the OS's random number generator: one per boot, never derived from
/// `--seed` (which only makes the layout and the guest's randomness reproducible, and is printed).
pub fn draw_key() -> Result<ConsoleKey, rand_core::OsError> {
    let mut key = [0; CONSOLE_KEY_SIZE];
    OsRng.try_fill_bytes(&mut key)?;
    Ok(key)
}

/// Where decoded console output goes. Calls may split a frame's payload anywhere.
pub trait ConsoleSink {
    /// Bytes the app wrote to its fd 1.
    fn stdout(&mut self, bytes: &[u8]);
    /// Bytes the app wrote to its fd 2.
    fn stderr(&mut self, bytes: &[u8]);
    /// Kernel diagnostics (text lines).
    fn log(&mut self, bytes: &[u8]);
    /// A VMM diagnostic about the guest's behaviour (already rate-limited). Printed on stderr by default.
    fn notice(&mut self, message: &str) {
        eprintln!("secure-run: {message}");
    }
}

/// Guest-physical memory, as the console ring and the buffers it names are read from (and its
/// acknowledgment written to). Reads and writes outside the guest's memory fail (false).
pub trait GuestRam {
    /// The guest's memory size in bytes (RAM starts at 0).
    fn size(&self) -> u64;
    fn read(&self, phys: u64, buf: &mut [u8]) -> bool;
    fn write(&mut self, phys: u64, data: &[u8]) -> bool;
}

/// A sink that keeps everything in memory (tests, and callers that post-process output).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectingSink {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub log: Vec<u8>,
    pub notices: Vec<String>,
}

impl ConsoleSink for CollectingSink {
    fn stdout(&mut self, bytes: &[u8]) {
        self.stdout.extend_from_slice(bytes);
    }
    fn stderr(&mut self, bytes: &[u8]) {
        self.stderr.extend_from_slice(bytes);
    }
    fn log(&mut self, bytes: &[u8]) {
        self.log.extend_from_slice(bytes);
    }
    fn notice(&mut self, message: &str) {
        self.notices.push(message.to_owned());
    }
}

/// What was forged on the console channel: something only the app can have sent, since the kernel
/// sends only authenticated frames and doorbells with a new flush, and stops only after a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tampering {
    /// A well-formed header for `stream` whose key is not the run's.
    ForgedFrame { stream: Stream },
    /// A byte between frames that starts none.
    StrayByte { byte: u8 },
    /// A sync byte followed by a stream byte that names no stream.
    UnknownStream { byte: u8 },
    /// An Exit, Killed or Crash header announcing a payload of the wrong size.
    WrongSize { stream: Stream, len: u16 },
    /// A PKRU gate's report that it caught forged registers ([`Stream::GateViolation`]), which is never
    /// authenticated: the kernel caught the app jumping into a gate, or the app forged the report.
    GateViolation,
    /// A console-ring doorbell whose ring names no new flush (the kernel rings only with one).
    StaleDoorbell,
    /// The channel ended inside a frame header or a verdict's payload.
    CutOff,
    /// The VM was stopped through the exit port without an authenticated Exit or Crash frame before.
    StopWithoutVerdict,
}

impl Tampering {
    /// One word for the `--report` JSON (`tampering.kind`).
    pub const fn kind(self) -> &'static str {
        match self {
            Self::ForgedFrame { .. } => "forged_frame",
            Self::StrayByte { .. } => "stray_byte",
            Self::UnknownStream { .. } => "unknown_stream",
            Self::WrongSize { .. } => "wrong_size",
            Self::GateViolation => "gate_violation",
            Self::StaleDoorbell => "stale_doorbell",
            Self::CutOff => "cut_off",
            Self::StopWithoutVerdict => "stop_without_verdict",
        }
    }
}

fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
        Stream::Exit => "exit-status",
        Stream::Crash => "crash",
        Stream::Log => "kernel log",
        Stream::Killed => "killed-by-signal",
        Stream::GateViolation => "gate-violation",
    }
}

impl fmt::Display for Tampering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ForgedFrame { stream } => {
                write!(f, "a forged {} frame (its header lacks the run's console key)", stream_name(stream))
            }
            Self::StrayByte { byte } => write!(f, "a stray byte {byte:#04x} on the console port, outside any frame"),
            Self::UnknownStream { byte } => write!(f, "a frame header naming no stream ({byte:#04x})"),
            Self::WrongSize { stream, len } => {
                write!(f, "a {} frame header of the wrong size ({len} bytes)", stream_name(stream))
            }
            Self::GateViolation => write!(
                f,
                "a protection-key gate violation: a jump into a PKRU gate with forged registers, caught by the \
                 kernel (its report cannot carry the run's key, the app's keys being in force, so the app may \
                 also have forged the report)"
            ),
            Self::StaleDoorbell => write!(f, "a console-ring doorbell with no new flush"),
            Self::CutOff => write!(f, "a console frame cut off"),
            Self::StopWithoutVerdict => {
                write!(f, "a stop through the exit port without an authenticated exit status or crash report")
            }
        }
    }
}

/// Where the decoder is inside the byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DecodeState {
    /// Between frames: waiting for [`FRAME_SYNC`].
    Sync,
    /// After the sync byte: waiting for the stream byte.
    StreamByte,
    /// After the stream byte: waiting for the first (low) length byte.
    LengthLow { stream: Stream },
    /// Waiting for the second (high) length byte.
    LengthHigh { stream: Stream, low: u8 },
    /// Comparing the header's key with the run's: `matched` bytes so far.
    Key { stream: Stream, len: u16, matched: usize },
    /// Streaming a stdout/stderr/log payload through to the sink.
    Forward { stream: Stream, remaining: u16 },
    /// Collecting an Exit, Killed or Crash payload of the expected size.
    Collect { stream: Stream, filled: usize },
    /// Tampering was seen: everything after it is discarded (and counted as garbage).
    Tampered,
}

/// The console channel's decoder: a state machine fed arbitrary slices of the stream.
///
/// Feeding a stream in any chunking gives the same result as feeding it at once. Memory use is constant:
/// stdout/stderr/log payloads are forwarded as they arrive; only Exit, Killed and Crash payloads (at
/// most [`CrashRecord::SIZE`] bytes) are buffered.
#[derive(Clone)]
pub struct ConsoleDecoder {
    state: DecodeState,
    /// The run's console key: a header must carry it.
    key: ConsoleKey,
    small: [u8; CrashRecord::SIZE],
    output_limit: u64,
    output_forwarded: u64,
    output_truncated: bool,
    log_limit: u64,
    log_forwarded: u64,
    log_truncated: bool,
    garbage_bytes: u64,
    frames: u64,
    status: Option<i32>,
    crash: Option<CrashRecord>,
    /// The signal of the last Killed frame.
    killed_by: Option<i32>,
    /// An authenticated Exit or Crash frame arrived: the exit port may stop the run.
    verdict: bool,
    /// The first tampering seen.
    tampering: Option<Tampering>,
    /// The guest has a console ring: [`RING_DOORBELL`] between frames is its doorbell.
    ring: bool,
    /// A console-ring doorbell arrived and is not yet taken ([`ConsoleDecoder::take_doorbell`]).
    doorbell: bool,
    /// The last ring flush taken: a doorbell must name a later one.
    ring_seq: u64,
}

/// Leaves the key out: it is the run's secret, and `Debug` output ends up in logs.
impl fmt::Debug for ConsoleDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleDecoder")
            .field("state", &self.state)
            .field("frames", &self.frames)
            .field("garbage_bytes", &self.garbage_bytes)
            .field("verdict", &self.verdict)
            .field("tampering", &self.tampering)
            .finish_non_exhaustive()
    }
}

/// The expected payload size of a stream whose payload is buffered, `None` for forwarded streams.
fn collected_size(stream: Stream) -> Option<usize> {
    match stream {
        Stream::Exit | Stream::Killed => Some(4),
        Stream::Crash => Some(CrashRecord::SIZE),
        Stream::Stdout | Stream::Stderr | Stream::Log | Stream::GateViolation => None,
    }
}

impl ConsoleDecoder {
    /// A decoder for frames carrying `key`, forwarding at most `output_limit` bytes of stdout + stderr
    /// and `log_limit` bytes of log.
    pub fn new(key: ConsoleKey, output_limit: u64, log_limit: u64) -> Self {
        Self {
            state: DecodeState::Sync,
            key,
            small: [0; CrashRecord::SIZE],
            output_limit,
            output_forwarded: 0,
            output_truncated: false,
            log_limit,
            log_forwarded: 0,
            log_truncated: false,
            garbage_bytes: 0,
            frames: 0,
            status: None,
            crash: None,
            killed_by: None,
            verdict: false,
            tampering: None,
            ring: false,
            doorbell: false,
            ring_seq: 0,
        }
    }

    /// Decodes `bytes`, the next part of the console stream, forwarding payloads to `sink`.
    pub fn feed(&mut self, mut bytes: &[u8], sink: &mut dyn ConsoleSink) {
        while let Some((&byte, rest)) = bytes.split_first() {
            match self.state {
                DecodeState::Forward { stream, remaining } => {
                    // Forward as much of the payload as this slice holds, in one sink call.
                    let take = usize::from(remaining).min(bytes.len());
                    let (payload, rest) = bytes.split_at(take);
                    self.forward(stream, payload, sink);
                    // `take <= remaining`, which is a u16.
                    let left = remaining - u16::try_from(take).unwrap_or(remaining);
                    self.state = if left == 0 {
                        self.frames += 1;
                        DecodeState::Sync
                    } else {
                        DecodeState::Forward { stream, remaining: left }
                    };
                    bytes = rest;
                }
                DecodeState::Tampered => {
                    self.add_garbage(bytes.len());
                    return;
                }
                _ => {
                    self.step(byte);
                    bytes = rest;
                }
            }
        }
    }

    /// Records the first tampering; the decoder takes nothing more.
    fn tampered(&mut self, what: Tampering, pending: usize) -> DecodeState {
        self.tampering.get_or_insert(what);
        self.add_garbage(pending);
        self.doorbell = false;
        DecodeState::Tampered
    }

    /// Advances the header and small-payload states by one byte.
    fn step(&mut self, byte: u8) {
        self.state = match self.state {
            DecodeState::Sync if byte == FRAME_SYNC => DecodeState::StreamByte,
            DecodeState::Sync if byte == RING_DOORBELL && self.ring => {
                self.doorbell = true;
                DecodeState::Sync
            }
            DecodeState::Sync => self.tampered(Tampering::StrayByte { byte }, 1),
            DecodeState::StreamByte => match Stream::from_byte(byte) {
                Some(stream) => DecodeState::LengthLow { stream },
                None => self.tampered(Tampering::UnknownStream { byte }, 2),
            },
            DecodeState::LengthLow { stream } => DecodeState::LengthHigh { stream, low: byte },
            DecodeState::LengthHigh { stream, low } => {
                let len = u16::from_le_bytes([low, byte]);
                match collected_size(stream) {
                    _ if stream == Stream::GateViolation && len == 0 => self.tampered(Tampering::GateViolation, 4),
                    _ if stream == Stream::GateViolation => self.tampered(Tampering::WrongSize { stream, len }, 4),
                    Some(expected) if usize::from(len) != expected => {
                        self.tampered(Tampering::WrongSize { stream, len }, 4)
                    }
                    _ => DecodeState::Key { stream, len, matched: 0 },
                }
            }
            DecodeState::Key { stream, len, matched } => {
                if self.key.get(matched) != Some(&byte) {
                    self.tampered(Tampering::ForgedFrame { stream }, 5 + matched)
                } else if matched + 1 < CONSOLE_KEY_SIZE {
                    DecodeState::Key { stream, len, matched: matched + 1 }
                } else {
                    self.start_payload(stream, len)
                }
            }
            DecodeState::Collect { stream, filled } => {
                let expected = collected_size(stream).unwrap_or(0);
                if let Some(slot) = self.small.get_mut(filled) {
                    *slot = byte;
                }
                let filled = filled + 1;
                if filled >= expected {
                    self.finish_collected(stream, expected);
                    DecodeState::Sync
                } else {
                    DecodeState::Collect { stream, filled }
                }
            }
            // Handled in `feed`; reaching them here would be a logic error, which must still not panic
            // nor forward anything: stop decoding.
            DecodeState::Forward { .. } | DecodeState::Tampered => {
                self.add_garbage(1);
                DecodeState::Tampered
            }
        };
    }

    /// After an authenticated header of `stream` announcing `len` bytes (the right size for a verdict).
    fn start_payload(&mut self, stream: Stream, len: u16) -> DecodeState {
        match collected_size(stream) {
            None if len == 0 => {
                self.frames += 1;
                DecodeState::Sync
            }
            None => DecodeState::Forward { stream, remaining: len },
            Some(_) => DecodeState::Collect { stream, filled: 0 },
        }
    }

    fn finish_collected(&mut self, stream: Stream, size: usize) {
        let payload = self.small.get(..size).unwrap_or(&[]);
        let word = || {
            let mut raw = [0u8; 4];
            if let Some(bytes) = payload.get(..4) {
                raw.copy_from_slice(bytes);
            }
            i32::from_le_bytes(raw)
        };
        match stream {
            Stream::Exit => {
                // The last status sent wins.
                self.status = Some(word());
                self.verdict = true;
            }
            Stream::Killed => self.killed_by = Some(word()),
            Stream::Crash => {
                self.crash = CrashRecord::from_bytes(payload).or(self.crash);
                self.verdict = true;
            }
            Stream::Stdout | Stream::Stderr | Stream::Log | Stream::GateViolation => {}
        }
        self.frames += 1;
    }

    fn forward(&mut self, stream: Stream, payload: &[u8], sink: &mut dyn ConsoleSink) {
        let (forwarded, limit, truncated) = match stream {
            Stream::Log => (&mut self.log_forwarded, self.log_limit, &mut self.log_truncated),
            _ => (&mut self.output_forwarded, self.output_limit, &mut self.output_truncated),
        };
        let budget = limit.saturating_sub(*forwarded);
        let allowed = usize::try_from(budget).unwrap_or(usize::MAX).min(payload.len());
        if allowed < payload.len() {
            *truncated = true;
        }
        let Some(kept) = payload.get(..allowed).filter(|kept| !kept.is_empty()) else {
            return;
        };
        *forwarded = forwarded.saturating_add(allowed as u64);
        match stream {
            Stream::Stdout => sink.stdout(kept),
            Stream::Stderr => sink.stderr(kept),
            Stream::Log => sink.log(kept),
            Stream::Exit | Stream::Crash | Stream::Killed | Stream::GateViolation => {}
        }
    }

    /// The same decoder for a guest with a console ring (its doorbell byte is recognised).
    pub fn with_ring(self) -> Self {
        Self { ring: true, ..self }
    }

    /// Whether a console-ring doorbell arrived in the bytes fed so far (once).
    pub fn take_doorbell(&mut self) -> bool {
        core::mem::take(&mut self.doorbell)
    }

    /// Takes the console ring's flush (its doorbell arrived): forwards the bytes its descriptors name, in
    /// order, as frames' payloads would be (the same caps), and acknowledges the flush in the ring. A
    /// ring whose sequence number is not newer than the last flush taken is left alone, the doorbell
    /// taken as [`Tampering::StaleDoorbell`] (an app that rings the doorbell itself replays nothing).
    /// Nothing is taken once the channel was tampered with. Err: the ring is
    /// corrupt (a descriptor outside guest memory, a stream that cannot travel by reference, a count
    /// beyond the ring) — nothing of it is forwarded and the flush is not acknowledged.
    pub fn take_ring(
        &mut self,
        ram: &mut dyn GuestRam,
        ring_phys: u64,
        sink: &mut dyn ConsoleSink,
    ) -> Result<(), String> {
        if self.tampering.is_some() {
            return Ok(());
        }
        let mut page = [0u8; RING_SIZE];
        if ring_phys == 0 || !ram.read(ring_phys, &mut page) {
            return Err(format!("console ring at guest-physical {ring_phys:#x} is not in guest memory"));
        }
        let Ok((header, rest)) = RingHeader::read_from_prefix(&page) else {
            return Err("console ring header unreadable".into());
        };
        let seq = header.seq;
        if seq <= self.ring_seq {
            self.state = self.tampered(Tampering::StaleDoorbell, 1);
            return Ok(());
        }
        let count = usize::try_from(header.count).unwrap_or(usize::MAX);
        if count > RING_SLOTS {
            return Err(format!("console ring flush {seq} lists {count} descriptors, the ring holds {RING_SLOTS}"));
        }
        let mut descriptors = Vec::with_capacity(count);
        for (index, raw) in rest.chunks_exact(std::mem::size_of::<RingDescriptor>()).take(count).enumerate() {
            let Ok(descriptor) = RingDescriptor::read_from_bytes(raw) else {
                return Err(format!("console ring descriptor {index} unreadable"));
            };
            let stream = match u8::try_from(descriptor.stream).ok().and_then(Stream::from_byte) {
                Some(stream @ (Stream::Stdout | Stream::Stderr | Stream::Log)) => stream,
                _ => {
                    return Err(format!(
                        "console ring descriptor {index} names stream {}, which cannot travel by reference",
                        descriptor.stream
                    ))
                }
            };
            let end = descriptor.phys.checked_add(u64::from(descriptor.len));
            if descriptor.len > RING_MAX_LEN || end.is_none_or(|end| end > ram.size()) {
                return Err(format!(
                    "console ring descriptor {index} names {} bytes at guest-physical {:#x}, outside the guest's \
                     {} MiB",
                    descriptor.len,
                    descriptor.phys,
                    ram.size() >> 20
                ));
            }
            descriptors.push((stream, descriptor));
        }
        let longest = descriptors.iter().map(|(_, d)| d.len as usize).max().unwrap_or(0);
        let mut buffer = vec![0u8; longest];
        for (index, (stream, descriptor)) in descriptors.into_iter().enumerate() {
            let bytes = &mut buffer[..descriptor.len as usize];
            if !ram.read(descriptor.phys, bytes) {
                return Err(format!("console ring descriptor {index}: guest memory unreadable"));
            }
            self.forward(stream, bytes, sink);
            self.frames += 1;
        }
        self.ring_seq = seq;
        let acked_at = ring_phys + std::mem::offset_of!(RingHeader, acked) as u64;
        if !ram.write(acked_at, &seq.to_le_bytes()) {
            return Err("console ring: cannot acknowledge the flush".into());
        }
        Ok(())
    }

    fn add_garbage(&mut self, count: usize) {
        self.garbage_bytes = self.garbage_bytes.saturating_add(count as u64);
    }

    /// Ends the stream: a frame cut off in its header or its verdict's payload is tampering (the kernel
    /// stops only between frames). A stdout/stderr/log payload cut off was forwarded as far as it came.
    pub fn finish(&mut self) {
        let pending = match self.state {
            DecodeState::Sync | DecodeState::Forward { .. } | DecodeState::Tampered => return,
            DecodeState::StreamByte => 1,
            DecodeState::LengthLow { .. } => 2,
            DecodeState::LengthHigh { .. } => 3,
            DecodeState::Key { matched, .. } => 4 + matched,
            DecodeState::Collect { filled, .. } => 4 + CONSOLE_KEY_SIZE + filled,
        };
        self.state = self.tampered(Tampering::CutOff, pending);
    }

    /// The guest stopped the VM through the exit port: tampering unless an authenticated Exit or Crash
    /// frame came first.
    pub fn exit_port(&mut self) {
        if !self.verdict {
            self.state = self.tampered(Tampering::StopWithoutVerdict, 0);
        }
    }

    /// The first tampering seen, if any.
    pub fn tampering(&self) -> Option<Tampering> {
        self.tampering
    }

    /// The app's exit status, if an Exit frame arrived (the last one wins).
    pub fn status(&self) -> Option<i32> {
        self.status
    }
    /// The signal that ended the app, if a Killed frame arrived (the last one wins).
    pub fn killed_by(&self) -> Option<i32> {
        self.killed_by
    }
    /// The crash record, if a Crash frame arrived (the last one wins).
    pub fn crash(&self) -> Option<CrashRecord> {
        self.crash
    }
    /// Bytes that were not part of an authenticated frame.
    pub fn garbage_bytes(&self) -> u64 {
        self.garbage_bytes
    }
    /// Valid frames decoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }
    /// Whether stdout/stderr bytes were dropped because of the output limit.
    pub fn output_truncated(&self) -> bool {
        self.output_truncated
    }
    /// Whether log bytes were dropped because of the log limit.
    pub fn log_truncated(&self) -> bool {
        self.log_truncated
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kernel_abi::{FrameHeader, FRAME_HEADER_SIZE};
    use proptest::prelude::*;

    /// The key of the test streams: no zero or small bytes, so that no generated junk holds it by chance.
    pub(crate) const TEST_KEY: ConsoleKey =
        [0x9e, 0x37, 0x79, 0xb9, 0x7f, 0x4a, 0x7c, 0x15, 0xf3, 0x9c, 0xc0, 0x60, 0x5c, 0xed, 0xc8, 0x34];

    /// One frame of `stream` carrying `payload`, as the kernel writes it.
    pub(crate) fn frame(stream: Stream, payload: &[u8]) -> Vec<u8> {
        keyed_frame(stream, payload, TEST_KEY)
    }

    fn keyed_frame(stream: Stream, payload: &[u8], key: ConsoleKey) -> Vec<u8> {
        let len = u16::try_from(payload.len()).unwrap();
        let mut out = FrameHeader::new(stream, len, key).to_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    /// A decoder for [`TEST_KEY`] with the default caps.
    pub(crate) fn test_decoder() -> ConsoleDecoder {
        ConsoleDecoder::new(TEST_KEY, DEFAULT_OUTPUT_LIMIT, DEFAULT_LOG_LIMIT)
    }

    fn decode_chunks(chunks: &[&[u8]], limit: u64) -> (ConsoleDecoder, CollectingSink) {
        let mut decoder = ConsoleDecoder::new(TEST_KEY, limit, limit);
        let mut sink = CollectingSink::default();
        for chunk in chunks {
            decoder.feed(chunk, &mut sink);
        }
        decoder.finish();
        (decoder, sink)
    }

    fn sample_stream() -> Vec<u8> {
        let crash = CrashRecord { vector: 14, fault_address: 0xdead_0000, rip: 0x40_1000, ..Default::default() };
        let mut bytes = frame(Stream::Stdout, b"hello ");
        bytes.extend(frame(Stream::Log, b"[kernel] boot\n"));
        bytes.extend(frame(Stream::Stderr, b"oops\n"));
        bytes.extend(frame(Stream::Stdout, b""));
        bytes.extend(frame(Stream::Stdout, b"world\n"));
        bytes.extend(frame(Stream::Crash, &crash.to_bytes()));
        bytes.extend(frame(Stream::Exit, &(-139i32).to_le_bytes()));
        bytes
    }

    #[test]
    fn decodes_every_stream() {
        let (mut decoder, sink) = decode_chunks(&[&sample_stream()], DEFAULT_OUTPUT_LIMIT);
        assert_eq!(sink.stdout, b"hello world\n");
        assert_eq!(sink.stderr, b"oops\n");
        assert_eq!(sink.log, b"[kernel] boot\n");
        assert_eq!(decoder.status(), Some(-139));
        assert_eq!(decoder.crash().map(|c| (c.vector, c.fault_address, c.rip)), Some((14, 0xdead_0000, 0x40_1000)));
        assert_eq!(decoder.garbage_bytes(), 0);
        assert_eq!(decoder.frames(), 7);
        assert!(!decoder.output_truncated());
        decoder.exit_port();
        assert_eq!(decoder.tampering(), None, "the stop came after a verdict");
    }

    #[test]
    fn split_at_every_position_and_byte_by_byte_gives_the_same_result() {
        let stream = sample_stream();
        let (whole, whole_sink) = decode_chunks(&[&stream], DEFAULT_OUTPUT_LIMIT);
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            let (decoder, sink) = decode_chunks(&[a, b], DEFAULT_OUTPUT_LIMIT);
            assert_eq!(sink, whole_sink, "split at {split}");
            assert_eq!(
                (decoder.status(), decoder.crash(), decoder.garbage_bytes(), decoder.tampering()),
                (whole.status(), whole.crash(), 0, None)
            );
        }
        let singles: Vec<&[u8]> = stream.chunks(1).collect();
        let (decoder, sink) = decode_chunks(&singles, DEFAULT_OUTPUT_LIMIT);
        assert_eq!(sink, whole_sink);
        assert_eq!(decoder.status(), Some(-139));
    }

    /// `junk` between an authenticated stdout frame and an authenticated Exit frame: what the decoder
    /// makes of it.
    fn after_honest_output(junk: &[u8]) -> (ConsoleDecoder, CollectingSink) {
        let mut bytes = frame(Stream::Stdout, b"honest\n");
        bytes.extend(junk);
        bytes.extend(frame(Stream::Stdout, b"after\n"));
        bytes.extend(frame(Stream::Exit, &0i32.to_le_bytes()));
        decode_chunks(&[&bytes], DEFAULT_OUTPUT_LIMIT)
    }

    #[test]
    fn frames_without_the_key_are_tampering_and_forward_nothing() {
        let forged_crash = CrashRecord { vector: 14, ..Default::default() }.to_bytes();
        let cases: [(Vec<u8>, Stream); 5] = [
            (keyed_frame(Stream::Stdout, b"forged\n", [0; CONSOLE_KEY_SIZE]), Stream::Stdout),
            (keyed_frame(Stream::Exit, &0i32.to_le_bytes(), [0xff; CONSOLE_KEY_SIZE]), Stream::Exit),
            (keyed_frame(Stream::Crash, &forged_crash, [0; CONSOLE_KEY_SIZE]), Stream::Crash),
            // The pre-key format: a 4-byte header straight followed by its payload.
            ([vec![FRAME_SYNC, Stream::Stdout as u8, 7, 0], b"forged\n".to_vec()].concat(), Stream::Stdout),
            ([vec![FRAME_SYNC, Stream::Killed as u8, 4, 0], 9i32.to_le_bytes().to_vec()].concat(), Stream::Killed),
        ];
        for (junk, stream) in cases {
            let (decoder, sink) = after_honest_output(&junk);
            assert_eq!(decoder.tampering(), Some(Tampering::ForgedFrame { stream }), "{junk:02x?}");
            assert_eq!(sink.stdout, b"honest\n", "only what came before the forgery is forwarded");
            assert_eq!((decoder.status(), decoder.crash(), decoder.killed_by()), (None, None, None));
        }
        // A key wrong in any single byte, the last one included.
        for position in 0..CONSOLE_KEY_SIZE {
            let mut key = TEST_KEY;
            key[position] ^= 1;
            let (decoder, sink) = after_honest_output(&keyed_frame(Stream::Stdout, b"forged\n", key));
            assert_eq!(decoder.tampering(), Some(Tampering::ForgedFrame { stream: Stream::Stdout }), "{position}");
            assert_eq!(sink.stdout, b"honest\n");
        }
    }

    #[test]
    fn garbage_is_tampering_and_ends_decoding() {
        let cases: [(&[u8], Tampering); 7] = [
            (b"junk", Tampering::StrayByte { byte: b'j' }),
            (&kernel_abi::GATE_VIOLATION_FRAME, Tampering::GateViolation),
            (
                &[FRAME_SYNC, Stream::GateViolation as u8, 1, 0, 0],
                Tampering::WrongSize { stream: Stream::GateViolation, len: 1 },
            ),
            (&[RING_DOORBELL], Tampering::StrayByte { byte: RING_DOORBELL }),
            (&[FRAME_SYNC, 0x77], Tampering::UnknownStream { byte: 0x77 }),
            // A lone sync byte: the next frame's sync byte is no stream.
            (&[FRAME_SYNC], Tampering::UnknownStream { byte: FRAME_SYNC }),
            (&[FRAME_SYNC, Stream::Exit as u8, 2, 0, 1, 2], Tampering::WrongSize { stream: Stream::Exit, len: 2 }),
        ];
        for (junk, expected) in cases {
            let (decoder, sink) = after_honest_output(junk);
            assert_eq!(decoder.tampering(), Some(expected), "{junk:02x?}");
            assert_eq!(sink.stdout, b"honest\n");
            assert_eq!(decoder.status(), None, "the Exit frame after the tampering is not taken");
            assert!(decoder.garbage_bytes() >= junk.len() as u64);
        }
        let (decoder, _) = after_honest_output(&frame(Stream::Crash, &[0; 8]));
        assert_eq!(decoder.tampering(), Some(Tampering::WrongSize { stream: Stream::Crash, len: 8 }));
        let (decoder, sink) = after_honest_output(b"");
        assert_eq!((decoder.tampering(), decoder.status(), sink.stdout), (None, Some(0), b"honest\nafter\n".to_vec()));
    }

    #[test]
    fn a_frame_cut_off_at_the_end_is_tampering() {
        let honest = frame(Stream::Stdout, b"abc");
        let crash = frame(Stream::Crash, &CrashRecord::default().to_bytes());
        for cut in [1, 3, 4, 10, FRAME_HEADER_SIZE, FRAME_HEADER_SIZE + 20] {
            let bytes = [honest.as_slice(), &crash[..cut]].concat();
            let (decoder, sink) = decode_chunks(&[&bytes], DEFAULT_OUTPUT_LIMIT);
            assert_eq!(sink.stdout, b"abc");
            assert_eq!((decoder.crash(), decoder.tampering()), (None, Some(Tampering::CutOff)), "cut at {cut}");
            assert_eq!(decoder.garbage_bytes(), cut as u64);
        }
        // An authenticated stdout payload cut off is forwarded as far as it came: the kernel sent it.
        let cut = &frame(Stream::Stdout, b"abcdef")[..FRAME_HEADER_SIZE + 2];
        let (decoder, sink) = decode_chunks(&[cut], DEFAULT_OUTPUT_LIMIT);
        assert_eq!((sink.stdout.as_slice(), decoder.garbage_bytes(), decoder.tampering()), (&b"ab"[..], 0, None));
    }

    #[test]
    fn the_exit_port_needs_an_authenticated_verdict_first() {
        let stop_after = |bytes: &[u8]| {
            let mut decoder = test_decoder();
            decoder.feed(bytes, &mut CollectingSink::default());
            decoder.exit_port();
            decoder.tampering()
        };
        assert_eq!(stop_after(b""), Some(Tampering::StopWithoutVerdict));
        assert_eq!(stop_after(&frame(Stream::Stdout, b"bye\n")), Some(Tampering::StopWithoutVerdict));
        assert_eq!(stop_after(&frame(Stream::Killed, &6i32.to_le_bytes())), Some(Tampering::StopWithoutVerdict));
        assert_eq!(stop_after(&frame(Stream::Exit, &0i32.to_le_bytes())), None);
        assert_eq!(stop_after(&frame(Stream::Crash, &CrashRecord::default().to_bytes())), None);
        // A forged verdict before the stop: the forgery is what is reported.
        let forged = keyed_frame(Stream::Exit, &0i32.to_le_bytes(), [0; CONSOLE_KEY_SIZE]);
        assert_eq!(stop_after(&forged), Some(Tampering::ForgedFrame { stream: Stream::Exit }));
    }

    #[test]
    fn output_limit_truncates_and_remembers() {
        let mut bytes = Vec::new();
        for _ in 0..10 {
            bytes.extend(frame(Stream::Stdout, &[b'a'; 1000]));
            bytes.extend(frame(Stream::Stderr, &[b'b'; 1000]));
        }
        bytes.extend(frame(Stream::Exit, &0i32.to_le_bytes()));
        let (decoder, sink) = decode_chunks(&[&bytes], 2500);
        assert_eq!(sink.stdout.len() + sink.stderr.len(), 2500);
        assert_eq!(sink.stdout.len(), 1500);
        assert!(decoder.output_truncated());
        assert!(!decoder.log_truncated());
        assert_eq!(decoder.status(), Some(0));
        assert_eq!(decoder.garbage_bytes(), 0);
    }

    #[test]
    fn a_flood_of_maximal_frames_uses_constant_memory() {
        let big = frame(Stream::Log, &vec![b'z'; kernel_abi::MAX_FRAME_PAYLOAD]);
        let mut decoder = ConsoleDecoder::new(TEST_KEY, 0, 1 << 20);
        let mut sink = CollectingSink::default();
        for _ in 0..64 {
            decoder.feed(&big, &mut sink);
        }
        assert_eq!(sink.log.len(), 1 << 20);
        assert!(decoder.log_truncated());
        assert_eq!(decoder.frames(), 64);
    }

    #[test]
    fn debug_output_leaves_the_key_out() {
        let shown = format!("{:?}", test_decoder());
        // TEST_KEY's first bytes, as `Debug` would print an array.
        assert!(!shown.contains("158, 55") && !shown.contains("0x9e"), "{shown}");
        assert!(shown.contains("ConsoleDecoder"), "{shown}");
    }

    #[test]
    fn drawn_keys_differ() {
        assert_ne!(draw_key().unwrap(), draw_key().unwrap());
    }

    /// Authenticated frames, or junk a CPL0 app could write between them.
    #[derive(Clone, Debug)]
    enum Part {
        /// The frame's bytes, its stream and the payload it must forward.
        Frame(Vec<u8>, Stream, Vec<u8>),
        Junk(Vec<u8>),
    }

    fn part() -> impl Strategy<Value = Part> {
        prop_oneof![
            (
                prop_oneof![Just(Stream::Stdout), Just(Stream::Stderr), Just(Stream::Log)],
                proptest::collection::vec(any::<u8>(), 0..200)
            )
                .prop_map(|(stream, payload)| Part::Frame(frame(stream, &payload), stream, payload)),
            Just(Part::Frame(frame(Stream::Exit, &5i32.to_le_bytes()), Stream::Exit, Vec::new())),
            Just(Part::Frame(
                frame(Stream::Crash, &CrashRecord { vector: 6, ..Default::default() }.to_bytes()),
                Stream::Crash,
                Vec::new()
            )),
            proptest::collection::vec(any::<u8>(), 1..40).prop_map(Part::Junk),
            // Headers that look right but carry another key, or none.
            (0u8..8, proptest::collection::vec(any::<u8>(), 0..60)).prop_map(|(stream, rest)| {
                let mut out = vec![FRAME_SYNC, stream];
                out.extend((rest.len() as u16).to_le_bytes());
                out.extend(rest);
                Part::Junk(out)
            }),
        ]
    }

    proptest! {
        #[test]
        fn any_chunking_of_any_stream_decodes_the_same(
            parts in proptest::collection::vec(part(), 0..20),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
            limit in 0u64..2000,
        ) {
            let stream: Vec<u8> = parts.iter().flat_map(|part| match part {
                Part::Frame(bytes, ..) | Part::Junk(bytes) => bytes.clone(),
            }).collect();
            let (whole, whole_sink) = decode_chunks(&[&stream], limit);
            let mut positions: Vec<usize> = cuts.iter().map(|cut| cut.index(stream.len() + 1)).collect();
            positions.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for position in positions {
                chunks.push(&stream[start..position]);
                start = position;
            }
            chunks.push(&stream[start..]);
            let (decoder, sink) = decode_chunks(&chunks, limit);
            prop_assert_eq!(&sink, &whole_sink);
            prop_assert_eq!(decoder.status(), whole.status());
            prop_assert_eq!(decoder.crash(), whole.crash());
            prop_assert_eq!(decoder.tampering(), whole.tampering());
            prop_assert_eq!(decoder.garbage_bytes(), whole.garbage_bytes());
            prop_assert_eq!(decoder.frames(), whole.frames());
            prop_assert_eq!(decoder.output_truncated(), whole.output_truncated());
            prop_assert!((sink.stdout.len() + sink.stderr.len()) as u64 <= limit);
            prop_assert!(decoder.garbage_bytes() <= stream.len() as u64);
        }

        /// What is forwarded is exactly the authenticated output before the first junk, and any junk is
        /// tampering: no forged byte ever reaches the app's stdout or stderr.
        #[test]
        fn only_authenticated_output_before_the_first_junk_is_forwarded(
            parts in proptest::collection::vec(part(), 0..20),
        ) {
            let stream: Vec<u8> = parts.iter().flat_map(|part| match part {
                Part::Frame(bytes, ..) | Part::Junk(bytes) => bytes.clone(),
            }).collect();
            let (decoder, sink) = decode_chunks(&[&stream], u64::MAX);
            let honest = |wanted: Stream| -> Vec<u8> {
                parts
                    .iter()
                    .take_while(|part| matches!(part, Part::Frame(..)))
                    .flat_map(|part| match part {
                        Part::Frame(_, stream, out) if *stream == wanted => out.clone(),
                        _ => Vec::new(),
                    })
                    .collect()
            };
            prop_assert_eq!(&sink.stdout, &honest(Stream::Stdout));
            prop_assert_eq!(&sink.stderr, &honest(Stream::Stderr));
            prop_assert_eq!(&sink.log, &honest(Stream::Log));
            let junk = parts.iter().any(|part| matches!(part, Part::Junk(_)));
            prop_assert_eq!(decoder.tampering().is_some(), junk);
        }
    }

    /// Guest memory for the ring tests: a flat byte array.
    struct TestRam(Vec<u8>);

    impl GuestRam for TestRam {
        fn size(&self) -> u64 {
            self.0.len() as u64
        }
        fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
            let Some(bytes) = self.0.get(phys as usize..phys as usize + buf.len()) else { return false };
            buf.copy_from_slice(bytes);
            true
        }
        fn write(&mut self, phys: u64, data: &[u8]) -> bool {
            let Some(bytes) = self.0.get_mut(phys as usize..phys as usize + data.len()) else { return false };
            bytes.copy_from_slice(data);
            true
        }
    }

    const RING: u64 = 0x1000;

    /// A ring at [`RING`] holding flush `seq` of `pieces` (stream, guest-physical address, length).
    fn fill_ring(ram: &mut TestRam, seq: u64, pieces: &[(u32, u64, u32)]) {
        let header = RingHeader { seq, count: pieces.len() as u32, ..RingHeader::default() };
        ram.write(RING, &header.to_bytes()[..16]);
        for (i, &(stream, phys, len)) in pieces.iter().enumerate() {
            let at = RING + 32 + 16 * i as u64;
            ram.write(at, &RingDescriptor { phys, len, stream }.to_bytes());
        }
    }

    fn acked(ram: &TestRam) -> u64 {
        let mut raw = [0u8; 8];
        ram.read(RING + 16, &mut raw);
        u64::from_le_bytes(raw)
    }

    #[test]
    fn ring_flushes_forward_in_order_between_frames_and_are_acknowledged() {
        let mut ram = TestRam(vec![0; 0x4000]);
        ram.write(0x2000, b"hello ");
        ram.write(0x3000, b"world\n");
        ram.write(0x3100, b"oops\n");
        let mut decoder = test_decoder().with_ring();
        let mut sink = CollectingSink::default();
        decoder.feed(&frame(Stream::Stdout, b"first "), &mut sink);
        fill_ring(&mut ram, 1, &[(1, 0x2000, 6), (2, 0x3100, 5), (1, 0x3000, 6)]);
        decoder.feed(&[RING_DOORBELL], &mut sink);
        assert!(decoder.take_doorbell());
        decoder.take_ring(&mut ram, RING, &mut sink).unwrap();
        assert_eq!(acked(&ram), 1);
        decoder.feed(&frame(Stream::Stdout, b"last\n"), &mut sink);
        assert_eq!(sink.stdout, b"first hello world\nlast\n");
        assert_eq!(sink.stderr, b"oops\n");
        assert_eq!(decoder.tampering(), None);
        // The same flush again (an app ringing the doorbell itself): nothing replayed, and tampering.
        decoder.feed(&[RING_DOORBELL], &mut sink);
        assert!(decoder.take_doorbell());
        decoder.take_ring(&mut ram, RING, &mut sink).unwrap();
        assert_eq!(sink.stdout, b"first hello world\nlast\n");
        assert_eq!(decoder.tampering(), Some(Tampering::StaleDoorbell));
        // Nothing after it is taken, not even a real flush.
        fill_ring(&mut ram, 2, &[(1, 0x2000, 6)]);
        decoder.feed(&[RING_DOORBELL], &mut sink);
        assert!(!decoder.take_doorbell());
        decoder.take_ring(&mut ram, RING, &mut sink).unwrap();
        assert_eq!(sink.stdout, b"first hello world\nlast\n");
        assert_eq!(acked(&ram), 1);
    }

    #[test]
    fn ring_flushes_obey_the_output_cap_exactly() {
        let mut ram = TestRam(vec![b'x'; 0x4000]);
        let mut decoder = ConsoleDecoder::new(TEST_KEY, 10, DEFAULT_LOG_LIMIT).with_ring();
        let mut sink = CollectingSink::default();
        fill_ring(&mut ram, 1, &[(1, 0x2000, 6), (2, 0x2000, 6)]);
        decoder.take_ring(&mut ram, RING, &mut sink).unwrap();
        assert_eq!(sink.stdout.len() + sink.stderr.len(), 10);
        assert!(decoder.output_truncated());
    }

    #[test]
    fn a_corrupt_ring_is_an_error_and_forwards_nothing() {
        type Pieces = &'static [(u32, u64, u32)];
        let cases: [(Pieces, &str); 4] = [
            (&[(1, 0x3f00, 0x200)], "outside the guest"),
            (&[(1, u64::MAX - 4, 16)], "outside the guest"),
            (&[(3, 0x2000, 4)], "cannot travel by reference"),
            (&[(1, 0x2000, RING_MAX_LEN + 1)], "outside the guest"),
        ];
        for (pieces, message) in cases {
            let mut ram = TestRam(vec![0; 0x4000]);
            ram.write(0x2000, b"good");
            let mut decoder = test_decoder().with_ring();
            let mut sink = CollectingSink::default();
            // A valid first descriptor: nothing of a corrupt flush goes out, not even its good part.
            let mut all = vec![(1, 0x2000, 4)];
            all.extend_from_slice(pieces);
            fill_ring(&mut ram, 1, &all);
            let error = decoder.take_ring(&mut ram, RING, &mut sink).unwrap_err();
            assert!(error.contains(message), "{error}");
            assert!(sink.stdout.is_empty());
            assert_eq!(acked(&ram), 0);
        }
        let mut ram = TestRam(vec![0; 0x4000]);
        let header = RingHeader { seq: 1, count: RING_SLOTS as u32 + 1, ..RingHeader::default() };
        ram.write(RING, &header.to_bytes());
        let error = test_decoder().with_ring().take_ring(&mut ram, RING, &mut CollectingSink::default());
        assert!(error.unwrap_err().contains("the ring holds"));
        let error = test_decoder().with_ring().take_ring(&mut ram, 0x3fff_0000, &mut CollectingSink::default());
        assert!(error.unwrap_err().contains("not in guest memory"));
    }

    #[test]
    fn the_doorbell_byte_is_tampering_without_a_ring() {
        let mut decoder = test_decoder();
        decoder.feed(&[RING_DOORBELL], &mut CollectingSink::default());
        assert!(!decoder.take_doorbell());
        assert_eq!(decoder.garbage_bytes(), 1);
        assert_eq!(decoder.tampering(), Some(Tampering::StrayByte { byte: RING_DOORBELL }));
    }
}
