//! The head file's two slots: what a crash or a tamperer can leave in them, and what is read.

use super::*;

struct Env {
    _tmp: tempfile::TempDir,
    files: LogFiles,
    ring: KeyRing,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let ring = KeyRing::open(&tmp.path().join("cfg")).unwrap();
    let files = LogFiles::new(tmp.path(), "sb1").unwrap();
    Env {
        _tmp: tmp,
        files,
        ring,
    }
}

fn head(seq: u64, sealed: bool) -> Head {
    Head {
        key_id: String::new(),
        last: format!("{seq:064x}"),
        sandbox: "sb1".into(),
        sealed,
        segment: 0,
        seq,
        v: 1,
        mac: String::new(),
    }
}

impl Env {
    fn write(&self, seq: u64, sealed: bool) {
        let key = self.ring.current();
        let mut h = head(seq, sealed);
        h.key_id = key.id().to_string();
        write_head(&self.files, &self.ring, key, &h).unwrap();
    }

    fn read(&self) -> HeadState {
        read_head(&self.files, &self.ring).unwrap()
    }

    fn seq(&self) -> Option<u64> {
        match self.read() {
            HeadState::Valid(h) => Some(h.seq),
            _ => None,
        }
    }

    fn path(&self) -> std::path::PathBuf {
        self.files.head_path()
    }

    fn slot_seq(&self, i: usize) -> Option<u64> {
        let bytes = std::fs::read(self.path()).unwrap();
        match &parse_slots(&self.files, &bytes, |id| self.ring.get(id))[i] {
            Slot::Valid(h) => Some(h.seq),
            _ => None,
        }
    }

    /// Overwrites `len` bytes of slot `i` from `from` on, as a torn write or a tamperer would.
    fn scribble(&self, i: usize, from: usize, with: &[u8]) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.path())
            .unwrap();
        f.write_all_at(with, SLOT_AT[i] + from as u64).unwrap();
    }
}

/// The head as lasso before the two slots wrote it: one record, replaced by rename.
fn old_format(env: &Env, seq: u64) {
    let key = env.ring.current();
    let mut h = head(seq, false);
    h.key_id = key.id().to_string();
    std::fs::write(env.path(), h.record(key)).unwrap();
}

#[test]
fn updates_alternate_and_never_overwrite_the_newest_record() {
    let e = env();
    e.write(1, false);
    assert_eq!((e.slot_seq(0), e.slot_seq(1)), (Some(1), None));
    e.write(2, false);
    assert_eq!((e.slot_seq(0), e.slot_seq(1)), (Some(1), Some(2)));
    e.write(3, false);
    assert_eq!((e.slot_seq(0), e.slot_seq(1)), (Some(3), Some(2)));
    assert_eq!(e.seq(), Some(3));
    // The slots sit in pages of their own: the file is exactly the two of them.
    assert_eq!(std::fs::metadata(e.path()).unwrap().len(), FILE_MAX as u64);
}

#[test]
fn a_torn_slot_falls_back_to_the_other_one() {
    let e = env();
    for seq in 1..=3 {
        e.write(seq, false);
    }
    // Slot 0 holds seq 3: a crash tore its last update half-way (the rest still old bytes).
    e.scribble(0, 40, &[b'x'; 200]);
    assert_eq!(e.seq(), Some(2));
    // And the next update goes into the torn slot, keeping seq 2 as the fallback.
    e.write(4, false);
    assert_eq!((e.slot_seq(0), e.slot_seq(1)), (Some(4), Some(2)));
    // Garbage in slot 1 instead: slot 0 is read.
    e.scribble(1, 0, b"\x00garbage\xff");
    assert_eq!(e.seq(), Some(4));
}

#[test]
fn a_head_with_no_valid_slot_is_reported_invalid() {
    let e = env();
    e.write(1, false);
    e.write(2, false);
    e.scribble(0, 0, b"{\"not\":1}\n");
    let text = std::fs::read(e.path()).unwrap();
    let s1 = &text[SLOT_AT[1] as usize..];
    let changed = String::from_utf8_lossy(s1).replace("\"seq\":2", "\"seq\":9");
    e.scribble(1, 0, changed.as_bytes());
    match e.read() {
        HeadState::Invalid(why) => assert!(why.contains("not a head record"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_blank_head_reads_as_missing_and_a_stale_update_changes_nothing() {
    let e = env();
    // A crash before the first write reached the disk: an empty file, or one of NULs.
    std::fs::write(e.path(), b"").unwrap();
    assert_eq!(e.read(), HeadState::Missing);
    std::fs::write(e.path(), vec![0u8; FILE_MAX]).unwrap();
    assert_eq!(e.read(), HeadState::Missing);
    e.write(5, false);
    e.write(3, false);
    assert_eq!(e.seq(), Some(5));
    assert_eq!(e.slot_seq(1), None);
    // The seal of the same entry still counts as further along.
    e.write(5, true);
    match e.read() {
        HeadState::Valid(h) => assert!(h.sealed && h.seq == 5),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_single_record_head_of_older_lasso_is_read_and_kept_as_the_fallback() {
    let e = env();
    old_format(&e, 7);
    assert_eq!(e.seq(), Some(7));
    e.write(8, false);
    assert_eq!((e.slot_seq(0), e.slot_seq(1)), (Some(7), Some(8)));
    e.scribble(1, 10, b"torn");
    assert_eq!(e.seq(), Some(7));
}

#[test]
fn a_head_of_another_sandbox_or_an_unknown_key_is_invalid() {
    let e = env();
    let other = LogFiles::new(e.files.dir(), "sb2").unwrap();
    let key = e.ring.current();
    let mut h = head(1, false);
    h.key_id = key.id().to_string();
    h.sandbox = "sb2".into();
    write_head(&other, &e.ring, key, &h).unwrap();
    std::fs::rename(other.head_path(), e.path()).unwrap();
    match e.read() {
        HeadState::Invalid(why) => assert!(why.contains("sb2"), "{why}"),
        other => panic!("{other:?}"),
    }
    let stranger = KeyRing::open(&e.files.dir().join("other-cfg")).unwrap();
    match read_head(&e.files, &stranger).unwrap() {
        HeadState::Invalid(why) => assert!(why.contains("not in the key ring"), "{why}"),
        other => panic!("{other:?}"),
    }
}
