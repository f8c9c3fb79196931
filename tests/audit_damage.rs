//! Every class of damage to a log is detected and named, at the first bad seq.

mod audit_support;

use audit_support::*;
use lasso::audit::{verify, DamageClass, KeyRing, Writer};
use std::fs;

fn class_of(env: &Env, path: &std::path::Path) -> Option<DamageClass> {
    verify(path, &env.ring).unwrap().damage.map(|d| d.class)
}

#[test]
fn intact_sealed_log_verifies() {
    let env = Env::new();
    let path = env.log("sb1", 20, true);
    let rep = verify(&path, &env.ring).unwrap();
    assert!(rep.is_intact(), "{rep}");
    assert!(rep.sealed);
    assert_eq!(rep.entries, 22);
}

#[test]
fn changed_byte_in_reason_is_modified() {
    let env = Env::new();
    let path = env.log("sb1", 10, true);
    let mut ls = lines(&path);
    let s = String::from_utf8(ls[2].clone()).unwrap();
    assert!(s.contains("denied"));
    ls[2] = s.replace("denied", "allowd").into_bytes();
    write_lines(&path, &ls);
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.seq, d.line), (DamageClass::Modified, 2, 3));
}

#[test]
fn blocked_turned_allowed_with_recomputed_json_is_modified() {
    let env = Env::new();
    let path = env.log("sb1", 4, true);
    let mut ls = lines(&path);
    let s = String::from_utf8(ls[2].clone()).unwrap();
    assert!(s.contains("\"outcome\":\"blocked\""));
    ls[2] = s
        .replace("\"outcome\":\"blocked\"", "\"outcome\":\"allowed\"")
        .into_bytes();
    write_lines(&path, &ls);
    assert_eq!(class_of(&env, &path), Some(DamageClass::Modified));
}

#[test]
fn corrupted_json_line_is_modified_with_its_line_number() {
    let env = Env::new();
    let path = env.log("sb1", 6, true);
    let mut ls = lines(&path);
    ls[4] = b"{\"not json\n".to_vec();
    write_lines(&path, &ls);
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.seq, d.line), (DamageClass::Modified, 4, 5));
    assert!(d.detail.contains("not a well-formed entry"), "{}", d.detail);
}

#[test]
fn forged_line_between_entries_is_inserted() {
    let env = Env::new();
    let path = env.log("sb1", 6, true);
    let mut ls = lines(&path);
    let mut forged = ls[3].clone();
    let n = forged.len();
    forged[n - 10] = if forged[n - 10] == b'a' { b'b' } else { b'a' };
    ls.insert(3, forged);
    write_lines(&path, &ls);
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.seq), (DamageClass::Inserted, 3));
}

#[test]
fn duplicated_line_is_inserted() {
    let env = Env::new();
    let path = env.log("sb1", 6, true);
    let mut ls = lines(&path);
    let copy = ls[2].clone();
    ls.insert(5, copy);
    write_lines(&path, &ls);
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.seq), (DamageClass::Inserted, 5));
}

#[test]
fn entry_spliced_from_another_sandbox_log_is_inserted() {
    let env = Env::new();
    let path = env.log("sb1", 6, true);
    let other = env.log("sb2", 6, true);
    let mut ls = lines(&path);
    ls[3] = lines(&other)[3].clone();
    write_lines(&path, &ls);
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.seq), (DamageClass::Inserted, 3));
}

#[test]
fn entry_from_another_log_of_the_same_sandbox_id_is_inserted() {
    // Same key, same sandbox id, same seq (say, a log of an earlier run kept elsewhere): only the
    // prev link tells the entries apart.
    let env = Env::new();
    let path = env.log("sb1", 6, true);
    let elsewhere = tempfile::tempdir().unwrap();
    let w = Writer::create(elsewhere.path(), &env.ring, genesis("sb1")).unwrap();
    for i in 0..6 {
        w.append(event(i)).unwrap();
    }
    let other = w.seal().unwrap().path();
    let mut ls = lines(&path);
    ls[3] = lines(&other)[3].clone();
    write_lines(&path, &ls);
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.seq), (DamageClass::Inserted, 3));
    assert!(d.detail.contains("another chain"), "{}", d.detail);
}

#[test]
fn deleted_middle_line_is_deleted() {
    let env = Env::new();
    let path = env.log("sb1", 8, true);
    let mut ls = lines(&path);
    ls.remove(4);
    write_lines(&path, &ls);
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.seq), (DamageClass::Deleted, 4));
}

#[test]
fn swapped_lines_are_reordered() {
    let env = Env::new();
    let path = env.log("sb1", 8, true);
    let mut ls = lines(&path);
    ls.swap(2, 3);
    write_lines(&path, &ls);
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.seq), (DamageClass::Reordered, 2));
}

#[test]
fn cut_off_tail_of_a_flushed_unsealed_log_is_truncated() {
    let env = Env::new();
    let path = env.log("sb1", 8, false);
    let mut ls = lines(&path);
    ls.truncate(7);
    write_lines(&path, &ls);
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.seq), (DamageClass::Truncated, 7));
}

#[test]
fn cut_off_tail_with_its_seal_is_truncated() {
    let env = Env::new();
    let path = env.log("sb1", 8, true);
    let mut ls = lines(&path);
    ls.truncate(6);
    write_lines(&path, &ls);
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.seq), (DamageClass::Truncated, 6));
}

#[test]
fn cut_off_tail_and_deleted_head_is_still_not_intact() {
    let env = Env::new();
    let path = env.log("sb1", 8, true);
    let mut ls = lines(&path);
    ls.truncate(6);
    write_lines(&path, &ls);
    fs::remove_file(env.log_dir().join("sb1.jsonl.head")).unwrap();
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.seq), (DamageClass::Unsealed, 6));
    assert!(d.detail.contains("head file is missing"), "{}", d.detail);
}

#[test]
fn line_appended_after_the_seal_is_inserted() {
    let env = Env::new();
    let path = env.log("sb1", 3, true);
    let mut ls = lines(&path);
    let copy = ls[1].clone();
    ls.push(copy);
    write_lines(&path, &ls);
    assert_eq!(class_of(&env, &path), Some(DamageClass::Inserted));
}

#[test]
fn writer_that_died_without_seal_leaves_an_unsealed_log_that_verifies_up_to_its_end() {
    let env = Env::new();
    let path = env.log("sb1", 5, false);
    let rep = verify(&path, &env.ring).unwrap();
    let d = rep.damage.unwrap();
    assert_eq!((d.class, d.seq), (DamageClass::Unsealed, 6));
    assert_eq!(rep.entries, 6);
}

#[test]
fn torn_last_line_is_a_torn_tail() {
    // A writer that dies inside the write(2) of entry 6 (never flushed, so the head does not
    // name it) leaves part of that line.
    let env = Env::new();
    let path = env.log("sb1", 5, false);
    let mut ls = lines(&path);
    let half = ls[3][..ls[3].len() / 2].to_vec();
    ls.push(half);
    write_lines(&path, &ls);
    let rep = verify(&path, &env.ring).unwrap();
    let d = rep.damage.unwrap();
    assert_eq!((d.class, d.seq, d.line), (DamageClass::TornTail, 6, 7));
    assert_eq!(rep.entries, 6);
}

#[test]
fn log_from_another_key_is_unknown_key() {
    let env = Env::new();
    let path = env.log("sb1", 3, true);
    let stranger = Env::new();
    let d = verify(&path, &stranger.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.seq), (DamageClass::UnknownKey, 0));
    assert!(d.detail.contains(env.ring.current().id()), "{}", d.detail);
}

#[test]
fn forged_log_that_names_our_key_is_wrong_key() {
    let env = Env::new();
    let forger = Env::new();
    let path = forger.log("sb1", 3, true);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(
        &path,
        text.replace(forger.ring.current().id(), env.ring.current().id()),
    )
    .unwrap();
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.seq), (DamageClass::WrongKey, 0));
}

#[test]
fn altered_key_id_in_genesis_is_modified_not_unknown() {
    let env = Env::new();
    let path = env.log("sb1", 3, true);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(
        &path,
        text.replacen(env.ring.current().id(), "0123456789abcdef", 1),
    )
    .unwrap();
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.seq), (DamageClass::Modified, 0));
}

#[test]
fn rotated_key_still_verifies_old_logs() {
    let mut env = Env::new();
    let path = env.log("sb1", 3, true);
    env.ring.rotate().unwrap();
    let ring = KeyRing::load(&env.config_dir()).unwrap();
    assert!(verify(&path, &ring).unwrap().is_intact());
}

#[test]
fn tampered_head_file_is_reported() {
    let env = Env::new();
    let path = env.log("sb1", 3, false);
    let head = env.log_dir().join("sb1.jsonl.head");
    let text = fs::read_to_string(&head).unwrap();
    fs::write(&head, text.replace("\"seq\":3", "\"seq\":2")).unwrap();
    let d = verify(&path, &env.ring).unwrap().damage.unwrap();
    assert_eq!(d.class, DamageClass::Modified);
    assert!(d.detail.contains("head file"), "{}", d.detail);
}

#[test]
fn rotation_continues_the_chain_across_segments() {
    let env = Env::new();
    let w = env.writer_with("sb1", 2048);
    for i in 0..60 {
        w.append(event(i)).unwrap();
    }
    let sealed = w.seal().unwrap();
    assert!(
        sealed.segment >= 3,
        "expected several segments, got {}",
        sealed.segment
    );
    let rep = verify(&sealed.path(), &env.ring).unwrap();
    assert!(rep.is_intact(), "{rep}");
    assert_eq!(rep.segments, sealed.segment + 1);
    // Every segment after the first adds a genesis, every one before the last a seal.
    assert_eq!(rep.entries, 1 + 60 + 1 + 2 * u64::from(sealed.segment));
}

#[test]
fn deleted_middle_segment_is_deleted_and_deleted_last_segment_is_truncated() {
    let env = Env::new();
    let w = env.writer_with("sb1", 2048);
    for i in 0..60 {
        w.append(event(i)).unwrap();
    }
    let sealed = w.seal().unwrap();
    let files = sealed.files.clone();
    let last = files.segment_path(sealed.segment);
    let saved = fs::read(&last).unwrap();
    fs::remove_file(&last).unwrap();
    let d = verify(&sealed.path(), &env.ring).unwrap().damage.unwrap();
    assert_eq!(
        (d.class, d.segment),
        (DamageClass::Truncated, sealed.segment - 1)
    );
    fs::write(&last, saved).unwrap();
    fs::remove_file(files.segment_path(1)).unwrap();
    let d = verify(&sealed.path(), &env.ring).unwrap().damage.unwrap();
    assert_eq!((d.class, d.segment), (DamageClass::Deleted, 1));
}

#[test]
fn a_rotated_log_reopened_continues_after_its_last_segment_and_a_new_one_starts_at_zero() {
    let env = Env::new();
    env.log("other", 2, true);
    let w = env.writer_with("sb1", 2048);
    for i in 0..60 {
        w.append(event(i)).unwrap();
    }
    let first = w.seal().unwrap();
    assert!(
        first.segment >= 2,
        "expected rotation, got {}",
        first.segment
    );
    let w: Writer = env.writer("sb1");
    w.append(event(99)).unwrap();
    let again = w.seal().unwrap();
    assert_eq!(again.segment, first.segment + 1);
    let rep = verify(&again.path(), &env.ring).unwrap();
    assert!(rep.is_intact(), "{rep}");
    assert_eq!(rep.segments, again.segment + 1);
    let fresh = env.writer("sb2").seal().unwrap();
    assert_eq!(fresh.segment, 0);
    assert!(verify(&fresh.path(), &env.ring).unwrap().is_intact());
}

#[test]
fn sealed_log_reopened_continues_in_a_new_segment() {
    let env = Env::new();
    let path = env.log("sb1", 3, true);
    let w: Writer = env.writer("sb1");
    w.append(event(9)).unwrap();
    let sealed = w.seal().unwrap();
    assert_eq!(sealed.segment, 1);
    let rep = verify(&path, &env.ring).unwrap();
    assert!(rep.is_intact(), "{rep}");
    assert_eq!(rep.entries, 5 + 3);
}
