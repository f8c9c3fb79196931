//! A 2 GB log is read with bounded memory: verify streams it and stops at the first bad line,
//! and a 2 GB "line" without newlines is refused after MAX_LINE bytes, not buffered. (The files
//! are sparse, so they cost no disk.) This file holds one test so that the process's peak RSS
//! is this test's alone.

mod audit_support;

use audit_support::*;
use lasso::audit::{verify, DamageClass, EntryReader, MAX_LINE};
use std::fs::OpenOptions;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn two_gigabyte_log_is_checked_with_bounded_memory() {
    let env = Env::new();
    let path = env.log("big", 50, false);
    let whole = std::fs::metadata(&path).unwrap().len();
    // 2 GiB of NUL bytes after the last entry: a corrupted tail with no newline at all.
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let before = peak_rss_kib();
    let rep = verify(&path, &env.ring).unwrap();
    let d = rep.damage.unwrap();
    assert_eq!(
        (d.class, d.seq, d.line),
        (DamageClass::Modified, 51, 52),
        "{}",
        d.detail
    );
    assert!(d.detail.contains("longer than"), "{}", d.detail);
    assert_eq!(rep.entries, 51);
    let mut r = EntryReader::open(&path).unwrap();
    let mut n = 0;
    let err = loop {
        match r.next_entry() {
            Ok(Some(_)) => n += 1,
            Ok(None) => panic!("a 2 GiB line was accepted as an incomplete entry"),
            Err(e) => break e,
        }
    };
    assert_eq!(n, 51);
    assert!(err.to_string().contains("longer than"), "{err}");
    let grown_mib = (peak_rss_kib() - before) / 1024;
    assert!(
        grown_mib < 4 * (MAX_LINE as u64 >> 20),
        "peak RSS grew by {grown_mib} MiB reading a 2 GiB log"
    );
    assert!(whole < 1 << 20);
}
