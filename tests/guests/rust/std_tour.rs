//! A Rust std program for x86_64-unknown-linux-musl (static): arguments, environment, collections,
//! formatting, file I/O in /tmp, clocks, and an explicit exit status. Its output is deterministic and the
//! same natively and under secure-run; the test compares the two byte for byte, and expects status 5.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

fn main() {
    let stdout = io::stdout();
    let mut out = stdout.lock();

    let args: Vec<String> = std::env::args().collect();
    writeln!(out, "args: {}", args.len()).unwrap();
    for (index, arg) in args.iter().enumerate().skip(1) {
        writeln!(out, "  arg {index}: {arg:?}").unwrap();
    }
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    writeln!(out, "env: {vars:?}").unwrap();
    writeln!(out, "GREETING is {:?}", std::env::var("GREETING").ok()).unwrap();

    // Collections: a word count through a HashMap, printed in order through a BTreeMap.
    let text = "the quick brown fox jumps over the lazy dog the end";
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for word in text.split_whitespace() {
        *counts.entry(word).or_default() += 1;
    }
    let ordered: BTreeMap<_, _> = counts.iter().collect();
    writeln!(out, "word counts: {ordered:?}").unwrap();
    let mut numbers: Vec<u64> = (0..100_000u64).map(|i| i.wrapping_mul(2654435761) % 1_000_003).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let sum: u64 = numbers.iter().sum();
    writeln!(out, "vec: {} distinct, sum {sum}, median {}", numbers.len(), numbers[numbers.len() / 2]).unwrap();
    let big: Vec<u8> = vec![7; 8 << 20]; // 8 MiB: an mmap-sized allocation
    writeln!(out, "big vec: {} bytes, sum {}", big.len(), big.iter().map(|&b| u64::from(b)).sum::<u64>()).unwrap();
    drop(big);

    // Floating point formatting (Rust's own formatter: identical on every target).
    let values = [0.1 + 0.2, 1.0 / 3.0, 1e21, 1.5e-7, -0.0, f64::MAX, f64::MIN_POSITIVE];
    for value in values {
        writeln!(out, "float: {value} {value:.3} {value:e} {value:?}").unwrap();
    }
    writeln!(out, "sqrt(2) = {:.15}, pi = {:.10}", 2f64.sqrt(), std::f64::consts::PI).unwrap();
    writeln!(out, "parsed: {:?}", "3.25e2".parse::<f64>()).unwrap();

    // Files in /tmp (the pid keeps parallel native runs apart; it is not printed).
    let path = std::env::temp_dir().join(format!("secure-run-rust-guest-{}", std::process::id()));
    {
        let mut file = fs::File::create(&path).unwrap();
        for line in 0..100 {
            writeln!(file, "line {line}").unwrap();
        }
    }
    let metadata = fs::metadata(&path).unwrap();
    writeln!(out, "file size: {}", metadata.len()).unwrap();
    let mut file = fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(7 * 100 - 1 - 100)).unwrap();
    let mut tail = String::new();
    file.read_to_string(&mut tail).unwrap();
    writeln!(out, "file tail: {:?}", tail.lines().last()).unwrap();
    let renamed = path.with_extension("renamed");
    fs::rename(&path, &renamed).unwrap();
    let content = fs::read_to_string(&renamed).unwrap();
    writeln!(out, "file lines: {}", content.lines().count()).unwrap();
    fs::remove_file(&renamed).unwrap();
    writeln!(out, "removed: {}", !renamed.exists()).unwrap();
    match fs::read("/nonexistent/file") {
        Ok(_) => writeln!(out, "nonexistent: readable?!").unwrap(),
        Err(error) => writeln!(out, "nonexistent: {:?}", error.kind()).unwrap(),
    }

    // Clocks.
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    let elapsed = start.elapsed();
    writeln!(out, "slept at least 20 ms: {}", elapsed >= Duration::from_millis(20)).unwrap();
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    writeln!(out, "system time after epoch: {}", since_epoch.is_ok()).unwrap();

    out.flush().unwrap();
    std::process::exit(5);
}
