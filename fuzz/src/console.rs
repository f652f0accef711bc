//! `console`: an arbitrary console byte stream (what a hostile guest writes to port 0xe9) through
//! `vmm::devices::console::ConsoleDecoder`, fed whole and in arbitrary chunkings, and through
//! `vmm::exit::handle_exit` as port-I/O exits mixed with other exits.
//!
//! The first byte's low bit makes the stream keyed: every sync byte with three bytes after it gets the
//! decoder's key inserted after those three, so that the fuzzer reaches authenticated frames (and their
//! payloads) as well as the forgeries around them.
//!
//! Checked: nothing panics; every chunking gives exactly the result of one feed (payloads, status, crash
//! record, tampering, garbage and frame counts, truncation flags); forwarded output stays within the
//! configured limits and, with the garbage, within the input's size; an unkeyed stream never forwards a
//! byte nor yields a status or crash; `handle_exit` stops exactly on the exit port, HLT, shutdown,
//! hypervisor failures and tampering.

use kernel_abi::{ConsoleKey, CrashRecord, CONSOLE_PORT, EXIT_PORT, FRAME_SYNC};
use vmm::devices::console::{CollectingSink, ConsoleDecoder, Tampering};
use vmm::exit::{handle_exit, Action, ExitState, GuestExitEvent};

use super::input::Reader;

/// Everything a decoded stream produced.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    sink: CollectingSink,
    status: Option<i32>,
    crash: Option<CrashRecord>,
    tampering: Option<Tampering>,
    garbage: u64,
    frames: u64,
    output_truncated: bool,
    log_truncated: bool,
}

/// The decoder's key in this target.
const KEY: ConsoleKey = [0x6b; 16];

/// `stream` with [`KEY`] inserted after the first four bytes of every sync byte that has them.
fn keyed(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stream.len() * 2);
    let mut rest = stream;
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == FRAME_SYNC && rest.len() >= 4 {
            out.extend_from_slice(&rest[..4]);
            out.extend_from_slice(&KEY);
            rest = &rest[4..];
        } else {
            out.push(byte);
            rest = tail;
        }
    }
    out
}

fn decode<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, output_limit: u64, log_limit: u64) -> Decoded {
    let mut decoder = ConsoleDecoder::new(KEY, output_limit, log_limit);
    let mut sink = CollectingSink::default();
    for chunk in chunks {
        decoder.feed(chunk, &mut sink);
    }
    decoder.finish();
    Decoded {
        sink,
        status: decoder.status(),
        crash: decoder.crash(),
        tampering: decoder.tampering(),
        garbage: decoder.garbage_bytes(),
        frames: decoder.frames(),
        output_truncated: decoder.output_truncated(),
        log_truncated: decoder.log_truncated(),
    }
}

/// A limit from one byte: mostly small (so truncation happens), sometimes none.
fn limit(byte: u8) -> u64 {
    match byte {
        0xff => u64::MAX,
        0xf0..=0xfe => 0,
        _ => u64::from(byte) * 7,
    }
}

/// One fuzz input: the keyed flag, two limits, eight chunk lengths, then the stream.
pub fn run(data: &[u8]) {
    let mut input = Reader::new(data);
    let keyed_stream = input.u8() & 1 != 0;
    let (output_limit, log_limit) = (limit(input.u8()), limit(input.u8()));
    let lengths: Vec<usize> = (0..8).map(|_| usize::from(input.u8())).collect();
    let raw = input.rest();
    let owned = if keyed_stream { keyed(raw) } else { raw.to_vec() };
    let stream = owned.as_slice();

    let whole = decode([stream], output_limit, log_limit);
    let output = (whole.sink.stdout.len() + whole.sink.stderr.len()) as u64;
    assert!(output <= output_limit, "{output} output bytes forwarded over a limit of {output_limit}");
    assert!(whole.sink.log.len() as u64 <= log_limit, "log over its limit of {log_limit}");
    let forwarded = output + whole.sink.log.len() as u64;
    assert!(forwarded + whole.garbage <= stream.len() as u64, "more bytes out than in: {whole:?}");
    assert!(whole.frames <= stream.len() as u64 / 4 + 1, "more frames than headers fit");
    assert!(whole.sink.notices.is_empty(), "the decoder itself raised notices");
    if !stream.windows(KEY.len()).any(|window| window == KEY) {
        // Without the key nothing is authenticated: nothing forwarded, no verdict, and any byte at all
        // is tampering.
        let nothing = (whole.sink.stdout.is_empty(), whole.sink.stderr.is_empty(), whole.sink.log.is_empty());
        assert_eq!(nothing, (true, true, true), "output forwarded from an unkeyed stream: {whole:?}");
        assert_eq!((whole.status, whole.crash), (None, None), "a verdict from an unkeyed stream");
        assert_eq!(whole.tampering.is_some(), !stream.is_empty(), "{whole:?}");
    }

    // The same stream cut at the chosen lengths (cycled; empty chunks included), then one byte at a time.
    let mut lengths = lengths;
    if lengths.iter().all(|&length| length == 0) {
        lengths[0] = 1;
    }
    let mut chunks = Vec::new();
    let mut rest = stream;
    for length in lengths.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*length).min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    assert_eq!(decode(chunks.iter().copied(), output_limit, log_limit), whole, "chunking {lengths:?} differs");
    if stream.len() <= 4096 {
        assert_eq!(decode(stream.chunks(1), output_limit, log_limit), whole, "byte-by-byte feeding differs");
    }

    // The same stream as KVM exits, interleaved with other exits picked by the chunk lengths.
    let mut sink = CollectingSink::default();
    let mut state = ExitState::new(ConsoleDecoder::new(KEY, output_limit, log_limit), &mut sink);
    let mut stopped = false;
    for (index, chunk) in chunks.iter().enumerate() {
        let selector = lengths[index % lengths.len()];
        let mut buffer = [0u8; 8];
        let other = match selector % 8 {
            0 => Some(GuestExitEvent::IoOut { port: [0x20, EXIT_PORT, 0x3f8, 0x80][selector / 8 % 4], data: chunk }),
            1 => Some(GuestExitEvent::IoIn { port: CONSOLE_PORT, data: &mut buffer }),
            2 => Some(GuestExitEvent::IoIn { port: selector as u16, data: &mut buffer[..selector % 9] }),
            3 => Some(GuestExitEvent::MmioRead { address: selector as u64, data: &mut buffer }),
            4 => Some(GuestExitEvent::MmioWrite { address: !(selector as u64), data: chunk }),
            5 => Some(GuestExitEvent::Interrupted),
            _ => None,
        };
        if let Some(event) = other {
            let is_exit_port = matches!(event, GuestExitEvent::IoOut { port: EXIT_PORT, .. });
            let action = handle_exit(event, &mut state);
            assert_eq!(action != Action::Continue, is_exit_port, "unexpected action {action:?}");
        }
        let action = handle_exit(GuestExitEvent::IoOut { port: CONSOLE_PORT, data: chunk }, &mut state);
        // The run loop stops at the first tampering; the decoder takes nothing after it anyway.
        if action != Action::Continue {
            assert_eq!(action, Action::Stop(vmm::exit::StopReason::Tampering));
            stopped = true;
        }
    }
    assert_eq!(stopped, whole.tampering.is_some() && whole.tampering != Some(Tampering::CutOff));
    assert!(state.exits() >= chunks.len() as u64);
    let outcome = state.into_outcome(vmm::exit::StopReason::Timeout, None, std::time::Duration::ZERO);
    assert_eq!(
        (outcome.status, outcome.crash, outcome.garbage_bytes, outcome.output_truncated, outcome.log_truncated),
        (whole.status, whole.crash, whole.garbage, whole.output_truncated, whole.log_truncated),
        "decoding through handle_exit differs"
    );
    assert_eq!(outcome.tampering, whole.tampering);
    assert_eq!((&sink.stdout, &sink.stderr, &sink.log), (&whole.sink.stdout, &whole.sink.stderr, &whole.sink.log));
    // Warnings are rate-limited: at most WARNING_LIMIT of them and one line saying the rest are suppressed.
    assert!(sink.notices.len() <= vmm::exit::WARNING_LIMIT as usize + 1, "{} notices", sink.notices.len());
}
