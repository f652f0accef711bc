//! Syscall tests: clocks and sleeping.

use super::*;

#[test]
fn time_and_sleep() {
    let mut h = Harness::new();
    let ts = h.buf(16);
    assert_eq!(h.call(CLOCK_GETTIME, &[1, ts]), 0);
    let first = h.u64_at(ts + 8);
    let req = h.put(&[0i64.to_le_bytes(), 5_000_000i64.to_le_bytes()].concat());
    assert_eq!(h.call(NANOSLEEP, &[req, 0]), 0);
    assert_eq!(h.call(CLOCK_GETTIME, &[1, ts]), 0);
    assert!(h.u64_at(ts + 8) >= first + 5_000_000);
    let bad = h.put(&[0i64.to_le_bytes(), 2_000_000_000i64.to_le_bytes()].concat());
    assert_eq!(h.err(NANOSLEEP, &[bad, 0]), Errno::EINVAL);
    assert_eq!(h.err(CLOCK_GETTIME, &[99, ts]), Errno::EINVAL);
    assert_eq!(h.call(CLOCK_GETRES, &[0, ts]), 0);
    assert_eq!(h.u64_at(ts + 8), 1);
    assert!(h.call(TIME, &[0]) > 1_600_000_000);
    assert_eq!(h.call(GETTIMEOFDAY, &[ts, 0]), 0);
    assert_eq!(h.call(CLOCK_NANOSLEEP, &[1, 0, req, 0]), 0);
    assert_eq!(h.err(CLOCK_NANOSLEEP, &[2, 0, req, 0]), Errno::EINVAL);
}
