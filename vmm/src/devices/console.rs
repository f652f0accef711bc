//! The debug console: the device behind [`CONSOLE_PORT`](kernel_abi::CONSOLE_PORT), which carries
//! [`FrameHeader`](kernel_abi::FrameHeader)-framed streams (stdout, stderr, the exit status, a crash
//! record, kernel log lines) from the guest to the VMM.
//!
//! Both backends feed the same [`ConsoleDecoder`]: QEMU a pipe read at arbitrary boundaries (its
//! `isa-debugcon`), KVM the data of each port-I/O exit through [`crate::exit::handle_exit`] (a whole
//! `REP OUTSB` buffer on hardware KVM, one byte per exit on the nested kvm_pvm, which emulates CPL0
//! string I/O). The decoder is a pure state machine with fixed memory, tested here with made-up streams.
//!
//! The guest is hostile: nothing here panics, allocates without bound or trusts a length. Garbage is
//! counted and skipped, and output beyond the configured caps is dropped (and the drop remembered).

use kernel_abi::{
    CrashRecord, RingDescriptor, RingHeader, Stream, FRAME_SYNC, RING_DOORBELL, RING_MAX_LEN, RING_SIZE, RING_SLOTS,
};
use zerocopy::FromBytes;

/// Default cap on the app's stdout + stderr bytes forwarded from one run.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 64 << 20;
/// Default cap on kernel log bytes forwarded from one run.
pub const DEFAULT_LOG_LIMIT: u64 = 16 << 20;
/// What a read of [`CONSOLE_PORT`](kernel_abi::CONSOLE_PORT) returns: QEMU's `isa-debugcon` default
/// `readback` value, so a guest sees the same port on both backends.
pub const READBACK: u8 = 0xe9;
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
    /// Streaming a stdout/stderr/log payload through to the sink.
    Forward { stream: Stream, remaining: u16 },
    /// Collecting an Exit or Crash payload of the expected size.
    Collect { stream: Stream, filled: usize },
    /// Skipping the payload of a frame with a wrong-size Exit or Crash payload.
    Skip { remaining: u16 },
}

/// The console channel's decoder: a state machine fed arbitrary slices of the stream.
///
/// Feeding a stream in any chunking gives the same result as feeding it at once. Memory use is constant:
/// stdout/stderr/log payloads are forwarded as they arrive; only Exit and Crash payloads (at most
/// [`CrashRecord::SIZE`] bytes) are buffered.
#[derive(Clone, Debug)]
pub struct ConsoleDecoder {
    state: DecodeState,
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
    /// The guest has a console ring: [`RING_DOORBELL`] between frames is its doorbell, not garbage.
    ring: bool,
    /// A console-ring doorbell arrived and is not yet taken ([`ConsoleDecoder::take_doorbell`]).
    doorbell: bool,
    /// The last ring flush taken: a doorbell must name a later one.
    ring_seq: u64,
}

impl Default for ConsoleDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_OUTPUT_LIMIT, DEFAULT_LOG_LIMIT)
    }
}

/// The expected payload size of a stream whose payload is buffered, `None` for forwarded streams.
fn collected_size(stream: Stream) -> Option<usize> {
    match stream {
        Stream::Exit | Stream::Killed => Some(4),
        Stream::Crash => Some(CrashRecord::SIZE),
        Stream::Stdout | Stream::Stderr | Stream::Log => None,
    }
}

impl ConsoleDecoder {
    /// A decoder forwarding at most `output_limit` bytes of stdout + stderr and `log_limit` bytes of log.
    pub fn new(output_limit: u64, log_limit: u64) -> Self {
        Self {
            state: DecodeState::Sync,
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
                DecodeState::Skip { remaining } => {
                    let take = usize::from(remaining).min(bytes.len());
                    self.add_garbage(take);
                    let left = remaining - u16::try_from(take).unwrap_or(remaining);
                    self.state = if left == 0 { DecodeState::Sync } else { DecodeState::Skip { remaining: left } };
                    bytes = &bytes[take..];
                }
                _ => {
                    self.step(byte);
                    bytes = rest;
                }
            }
        }
    }

    /// Advances the header and small-payload states by one byte.
    fn step(&mut self, byte: u8) {
        self.state = match self.state {
            DecodeState::Sync => {
                if byte == FRAME_SYNC {
                    DecodeState::StreamByte
                } else if byte == RING_DOORBELL && self.ring {
                    self.doorbell = true;
                    DecodeState::Sync
                } else {
                    self.add_garbage(1);
                    DecodeState::Sync
                }
            }
            DecodeState::StreamByte => match Stream::from_byte(byte) {
                Some(stream) => DecodeState::LengthLow { stream },
                None => {
                    // The sync byte was garbage; this byte may start the real frame.
                    self.add_garbage(1);
                    self.state = DecodeState::Sync;
                    return self.step(byte);
                }
            },
            DecodeState::LengthLow { stream } => DecodeState::LengthHigh { stream, low: byte },
            DecodeState::LengthHigh { stream, low } => {
                let len = u16::from_le_bytes([low, byte]);
                self.start_payload(stream, len)
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
            // Multi-byte states are handled in `feed`; reaching them here would be a logic error, which
            // must still not panic: treat the byte as garbage and resynchronise.
            DecodeState::Forward { .. } | DecodeState::Skip { .. } => {
                self.add_garbage(1);
                DecodeState::Sync
            }
        };
    }

    fn start_payload(&mut self, stream: Stream, len: u16) -> DecodeState {
        match collected_size(stream) {
            None if len == 0 => {
                self.frames += 1;
                DecodeState::Sync
            }
            None => DecodeState::Forward { stream, remaining: len },
            Some(expected) if usize::from(len) == expected => DecodeState::Collect { stream, filled: 0 },
            Some(_) => {
                // A well-formed header with a payload of the wrong size: skip header and payload.
                self.add_garbage(4);
                if len == 0 {
                    DecodeState::Sync
                } else {
                    DecodeState::Skip { remaining: len }
                }
            }
        }
    }

    fn finish_collected(&mut self, stream: Stream, size: usize) {
        let payload = self.small.get(..size).unwrap_or(&[]);
        match stream {
            Stream::Exit => {
                let mut raw = [0u8; 4];
                if let Some(bytes) = payload.get(..4) {
                    raw.copy_from_slice(bytes);
                }
                // The last status sent wins.
                self.status = Some(i32::from_le_bytes(raw));
            }
            Stream::Killed => {
                let mut raw = [0u8; 4];
                if let Some(bytes) = payload.get(..4) {
                    raw.copy_from_slice(bytes);
                }
                self.killed_by = Some(i32::from_le_bytes(raw));
            }
            Stream::Crash => self.crash = CrashRecord::from_bytes(payload).or(self.crash),
            Stream::Stdout | Stream::Stderr | Stream::Log => {}
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
            Stream::Exit | Stream::Crash | Stream::Killed => {}
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
    /// counted as garbage (an app that rings the doorbell itself replays nothing). Err: the ring is
    /// corrupt (a descriptor outside guest memory, a stream that cannot travel by reference, a count
    /// beyond the ring) — nothing of it is forwarded and the flush is not acknowledged.
    pub fn take_ring(
        &mut self,
        ram: &mut dyn GuestRam,
        ring_phys: u64,
        sink: &mut dyn ConsoleSink,
    ) -> Result<(), String> {
        let mut page = [0u8; RING_SIZE];
        if ring_phys == 0 || !ram.read(ring_phys, &mut page) {
            return Err(format!("console ring at guest-physical {ring_phys:#x} is not in guest memory"));
        }
        let Ok((header, rest)) = RingHeader::read_from_prefix(&page) else {
            return Err("console ring header unreadable".into());
        };
        let seq = header.seq;
        if seq <= self.ring_seq {
            self.add_garbage(1);
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

    /// Ends the stream: a frame cut off in its header or its Exit/Crash payload counts as garbage.
    /// (A stdout/stderr/log payload cut off was forwarded as far as it came.)
    pub fn finish(&mut self) {
        let pending = match self.state {
            DecodeState::Sync | DecodeState::Forward { .. } | DecodeState::Skip { .. } => 0,
            DecodeState::StreamByte => 1,
            DecodeState::LengthLow { .. } => 2,
            DecodeState::LengthHigh { .. } => 3,
            DecodeState::Collect { filled, .. } => 4 + filled,
        };
        self.add_garbage(pending);
        self.state = DecodeState::Sync;
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
    /// Bytes that were not part of a valid frame.
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
    use kernel_abi::FrameHeader;
    use proptest::prelude::*;

    /// One frame of `stream` carrying `payload`, as the kernel writes it.
    pub(crate) fn frame(stream: Stream, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(payload.len()).unwrap();
        let mut out = FrameHeader::new(stream, len).to_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    fn decode_chunks(chunks: &[&[u8]], limit: u64) -> (ConsoleDecoder, CollectingSink) {
        let mut decoder = ConsoleDecoder::new(limit, limit);
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
        let (decoder, sink) = decode_chunks(&[&sample_stream()], DEFAULT_OUTPUT_LIMIT);
        assert_eq!(sink.stdout, b"hello world\n");
        assert_eq!(sink.stderr, b"oops\n");
        assert_eq!(sink.log, b"[kernel] boot\n");
        assert_eq!(decoder.status(), Some(-139));
        assert_eq!(decoder.crash().map(|c| (c.vector, c.fault_address, c.rip)), Some((14, 0xdead_0000, 0x40_1000)));
        assert_eq!(decoder.garbage_bytes(), 0);
        assert_eq!(decoder.frames(), 7);
        assert!(!decoder.output_truncated());
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
                (decoder.status(), decoder.crash(), decoder.garbage_bytes()),
                (whole.status(), whole.crash(), 0)
            );
        }
        let singles: Vec<&[u8]> = stream.chunks(1).collect();
        let (decoder, sink) = decode_chunks(&singles, DEFAULT_OUTPUT_LIMIT);
        assert_eq!(sink, whole_sink);
        assert_eq!(decoder.status(), Some(-139));
    }

    #[test]
    fn garbage_is_counted_and_skipped() {
        let mut bytes = b"junk".to_vec(); // 4 garbage bytes
        bytes.extend([FRAME_SYNC, 0x77]); // unknown stream: the sync byte and 0x77 are garbage
        bytes.extend([FRAME_SYNC, FRAME_SYNC]); // sync then sync: the first is garbage, the second starts a frame
        bytes.extend([Stream::Stdout as u8, 3, 0]);
        bytes.extend(b"ok\n");
        bytes.extend(frame(Stream::Exit, &[1, 2])); // wrong size: 4 + 2 garbage
        bytes.extend(frame(Stream::Crash, &[0; 8])); // wrong size: 4 + 8 garbage
        bytes.extend(frame(Stream::Exit, &3i32.to_le_bytes()));
        let (decoder, sink) = decode_chunks(&[&bytes], DEFAULT_OUTPUT_LIMIT);
        assert_eq!(sink.stdout, b"ok\n");
        assert_eq!(decoder.status(), Some(3));
        assert_eq!(decoder.crash(), None);
        assert_eq!(decoder.garbage_bytes(), 4 + 2 + 1 + 6 + 12);
    }

    #[test]
    fn wrong_size_payload_containing_sync_bytes_is_skipped_whole() {
        let mut bytes = frame(Stream::Exit, &[FRAME_SYNC, Stream::Exit as u8, 4, 0, 9, 9]);
        bytes.extend(frame(Stream::Stdout, b"x"));
        let (decoder, sink) = decode_chunks(&[&bytes], DEFAULT_OUTPUT_LIMIT);
        assert_eq!(decoder.status(), None);
        assert_eq!(sink.stdout, b"x");
        assert_eq!(decoder.garbage_bytes(), 10);
    }

    #[test]
    fn truncated_frame_at_the_end_is_garbage() {
        let mut bytes = frame(Stream::Stdout, b"abc");
        bytes.extend(&frame(Stream::Crash, &CrashRecord::default().to_bytes())[..20]);
        let (decoder, sink) = decode_chunks(&[&bytes], DEFAULT_OUTPUT_LIMIT);
        assert_eq!(sink.stdout, b"abc");
        assert_eq!(decoder.crash(), None);
        assert_eq!(decoder.garbage_bytes(), 20);
        // A stdout payload cut off is forwarded as far as it came, without garbage.
        let cut = &frame(Stream::Stdout, b"abcdef")[..6];
        let (decoder, sink) = decode_chunks(&[cut], DEFAULT_OUTPUT_LIMIT);
        assert_eq!((sink.stdout.as_slice(), decoder.garbage_bytes()), (&b"ab"[..], 0));
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
        let mut decoder = ConsoleDecoder::new(0, 1 << 20);
        let mut sink = CollectingSink::default();
        for _ in 0..64 {
            decoder.feed(&big, &mut sink);
        }
        assert_eq!(sink.log.len(), 1 << 20);
        assert!(decoder.log_truncated());
        assert_eq!(decoder.frames(), 64);
    }

    proptest! {
        #[test]
        fn any_chunking_of_any_stream_decodes_the_same(
            parts in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..40),
                    (0u8..7, proptest::collection::vec(any::<u8>(), 0..200)).prop_map(|(stream, payload)| {
                        let mut out = vec![FRAME_SYNC, stream];
                        out.extend((payload.len() as u16).to_le_bytes());
                        out.extend(payload);
                        out
                    }),
                    Just(frame(Stream::Exit, &5i32.to_le_bytes())),
                    Just(frame(Stream::Crash, &CrashRecord { vector: 6, ..Default::default() }.to_bytes())),
                ],
                0..20,
            ),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
            limit in 0u64..2000,
        ) {
            let stream: Vec<u8> = parts.concat();
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
            prop_assert_eq!(decoder.garbage_bytes(), whole.garbage_bytes());
            prop_assert_eq!(decoder.frames(), whole.frames());
            prop_assert_eq!(decoder.output_truncated(), whole.output_truncated());
            prop_assert!((sink.stdout.len() + sink.stderr.len()) as u64 <= limit);
            // Every byte is accounted for: no more garbage than input.
            prop_assert!(decoder.garbage_bytes() <= stream.len() as u64);
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
        let mut decoder = ConsoleDecoder::default().with_ring();
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
        // The same flush again (an app ringing the doorbell itself): nothing replayed.
        decoder.feed(&[RING_DOORBELL], &mut sink);
        assert!(decoder.take_doorbell());
        decoder.take_ring(&mut ram, RING, &mut sink).unwrap();
        assert_eq!(sink.stdout, b"first hello world\nlast\n");
        assert_eq!(decoder.garbage_bytes(), 1);
    }

    #[test]
    fn ring_flushes_obey_the_output_cap_exactly() {
        let mut ram = TestRam(vec![b'x'; 0x4000]);
        let mut decoder = ConsoleDecoder::new(10, DEFAULT_LOG_LIMIT).with_ring();
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
            let mut decoder = ConsoleDecoder::default().with_ring();
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
        let error = ConsoleDecoder::default().with_ring().take_ring(&mut ram, RING, &mut CollectingSink::default());
        assert!(error.unwrap_err().contains("the ring holds"));
        let error =
            ConsoleDecoder::default().with_ring().take_ring(&mut ram, 0x3fff_0000, &mut CollectingSink::default());
        assert!(error.unwrap_err().contains("not in guest memory"));
    }

    #[test]
    fn the_doorbell_byte_is_garbage_without_a_ring() {
        let mut decoder = ConsoleDecoder::default();
        decoder.feed(&[RING_DOORBELL], &mut CollectingSink::default());
        assert!(!decoder.take_doorbell());
        assert_eq!(decoder.garbage_bytes(), 1);
    }
}
