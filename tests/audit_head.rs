//! The head file as `lasso audit verify` reads it: the newest valid of its two slots bounds
//! the log, a torn slot falls back to the other, and the single-record head of older lasso
//! still verifies and still exposes a cut.

mod audit_support;

use audit_support::*;
use lasso::audit::{verify, DamageClass, HeadState, LogFiles};
use std::fs;

const SLOT1: usize = 4096;

fn head_seq(env: &Env, id: &str) -> Option<u64> {
    let files = LogFiles::new(&env.log_dir(), id).unwrap();
    match lasso::audit::read_head(&files, &env.ring).unwrap() {
        HeadState::Valid(h) => Some(h.seq),
        _ => None,
    }
}

/// A flushed, unsealed log of entries 0..=8 whose head's two slots name seq 4 and seq 8.
fn two_slot_log(env: &Env) -> std::path::PathBuf {
    let w = env.writer("sb1");
    for i in 0..4 {
        w.append(event(i)).unwrap();
    }
    w.sync().unwrap();
    for i in 4..8 {
        w.append(event(i)).unwrap();
    }
    w.sync().unwrap();
    let path = w.path();
    // Unsealed, as after a crash (the drop's flush finds nothing new to name).
    drop(w);
    path
}

#[test]
fn a_cut_below_the_newest_slot_is_truncated_even_when_the_older_slot_allows_it() {
    let env = Env::new();
    let path = two_slot_log(&env);
    assert_eq!(head_seq(&env, "sb1"), Some(8));
    let mut ls = lines(&path);
    assert_eq!(ls.len(), 9);
    ls.truncate(7);
    write_lines(&path, &ls);
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!(
        (d.class, d.seq),
        (DamageClass::Truncated, 7),
        "{}",
        d.detail
    );
    assert!(d.detail.contains("names seq 8"), "{}", d.detail);
}

#[test]
fn a_torn_newest_slot_falls_back_to_the_older_one_and_the_log_still_verifies() {
    let env = Env::new();
    let path = two_slot_log(&env);
    let head = env.log_dir().join("sb1.jsonl.head");
    let mut bytes = fs::read(&head).unwrap();
    assert_eq!(bytes.len(), SLOT1 + 1024, "two slots");
    // The slot naming seq 8 (the last update): a power loss tore it.
    let at = |i: usize| &bytes[i * SLOT1..i * SLOT1 + 1024];
    let newest = (0..2)
        .find(|&i| String::from_utf8_lossy(at(i)).contains("\"seq\":8,"))
        .expect("a slot names seq 8");
    bytes[newest * SLOT1 + 30..newest * SLOT1 + 90].fill(0);
    fs::write(&head, &bytes).unwrap();
    // The older slot: seq 4 (or later, had the background flush run between the two syncs).
    let older = head_seq(&env, "sb1").unwrap();
    assert!((4..8).contains(&older), "{older}");
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!(d.class, DamageClass::Unsealed, "{}", d.detail);
    // The older slot still bounds the log.
    let mut ls = lines(&path);
    ls.truncate(older as usize);
    write_lines(&path, &ls);
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!(
        (d.class, d.seq),
        (DamageClass::Truncated, older),
        "{}",
        d.detail
    );
}

/// Garbling the newest slot and cutting the log back to what the older slot names leaves a
/// log the older slot allows: the verdict must still say that a slot does not verify and that
/// a cut-off tail cannot be ruled out (a torn write after a crash looks the same).
#[test]
fn a_damaged_newest_slot_hiding_a_cut_tail_is_named_in_the_verdict() {
    let env = Env::new();
    let path = two_slot_log(&env);
    let head = env.log_dir().join("sb1.jsonl.head");
    let mut bytes = fs::read(&head).unwrap();
    let newest = (0..2)
        .find(|&i| {
            String::from_utf8_lossy(&bytes[i * SLOT1..i * SLOT1 + 1024]).contains("\"seq\":8,")
        })
        .expect("a slot names seq 8");
    bytes[newest * SLOT1 + 10..newest * SLOT1 + 20].fill(b'x');
    fs::write(&head, &bytes).unwrap();
    let older = head_seq(&env, "sb1").unwrap();
    let mut ls = lines(&path);
    ls.truncate(older as usize + 1);
    write_lines(&path, &ls);
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!(d.class, DamageClass::Unsealed, "{}", d.detail);
    assert!(d.detail.contains("does not verify"), "{}", d.detail);
    assert!(d.detail.contains("cannot be ruled out"), "{}", d.detail);
}

#[test]
fn the_single_record_head_of_older_lasso_still_verifies_and_exposes_a_cut() {
    let env = Env::new();
    let path = env.log("sb1", 8, true);
    let head = env.log_dir().join("sb1.jsonl.head");
    // Older lasso's head: the one record alone (what slot 0 holds, without the padding).
    let bytes = fs::read(&head).unwrap();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let record = bytes[..end].to_vec();
    assert!(
        record.ends_with(b"}\n"),
        "{}",
        String::from_utf8_lossy(&record)
    );
    fs::write(&head, &record).unwrap();
    let rep = verify(&path, &env.ring).unwrap();
    assert!(rep.is_intact() && rep.sealed, "{rep}");
    let mut ls = lines(&path);
    ls.truncate(6);
    write_lines(&path, &ls);
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!(
        (d.class, d.seq),
        (DamageClass::Truncated, 6),
        "{}",
        d.detail
    );
}

#[test]
fn a_head_whose_every_slot_is_garbage_is_modified() {
    let env = Env::new();
    let path = two_slot_log(&env);
    let head = env.log_dir().join("sb1.jsonl.head");
    let mut bytes = fs::read(&head).unwrap();
    bytes[40] ^= 1;
    bytes[SLOT1 + 40] ^= 1;
    fs::write(&head, &bytes).unwrap();
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!(d.class, DamageClass::Modified, "{}", d.detail);
    assert!(d.detail.contains("head file"), "{}", d.detail);
}

#[test]
fn a_returned_seal_is_named_by_the_head_even_racing_the_background_flush() {
    // The seal's last flush and the flusher's own run one at a time, in order: a flush of the
    // flusher that took its snapshot earlier can never land after the seal's head.
    let env = Env::new();
    for n in 0..40 {
        let id = format!("race{n}");
        let w = env.writer(&id);
        for i in 0..(n % 5) {
            w.append(event(i)).unwrap();
        }
        if n % 2 == 0 {
            // Let the flusher's first pass (its directory sync) overlap the seal.
            std::thread::yield_now();
        }
        let sealed = w.seal().unwrap();
        let files = LogFiles::new(&env.log_dir(), &id).unwrap();
        match lasso::audit::read_head(&files, &env.ring).unwrap() {
            HeadState::Valid(h) => {
                assert!(h.sealed && h.seq == sealed.seq, "{id}: {h:?} vs {sealed:?}");
            }
            other => panic!("{id}: {other:?}"),
        }
        assert!(verify(&sealed.path(), &env.ring).unwrap().is_intact());
    }
}
