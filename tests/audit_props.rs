//! Property: any single-byte change, any deleted run of lines, any duplicated line and any
//! swap of two lines of a valid sealed log is detected and given its class. And the canonical
//! form in the README is what the MAC covers: a second, independent implementation here (plain
//! serde_json + hmac, no lasso code) verifies every line lasso writes.

mod audit_support;

use audit_support::*;
use hmac::{Hmac, Mac};
use lasso::audit::{verify, DamageClass, KeyRing};
use proptest::prelude::*;
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

struct Template {
    _env: Env,
    ring: KeyRing,
    lines: Vec<Vec<u8>>,
    head: Vec<u8>,
}

/// One sealed log made once; each case writes a mutated copy into its own directory.
fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let env = Env::in_memory();
        let path = env.log("prop", 10, true);
        let lines = lines(&path);
        let head = std::fs::read(env.log_dir().join("prop.jsonl.head")).unwrap();
        Template {
            ring: env.ring.clone(),
            _env: env,
            lines,
            head,
        }
    })
}

fn check(lines: &[Vec<u8>]) -> Option<DamageClass> {
    // A fresh directory per case, in memory (see `Env::in_memory`).
    static CASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir: PathBuf = template()._env.dir.path().join(format!("case{n}"));
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("prop.jsonl");
    write_lines(&path, lines);
    std::fs::write(dir.join("prop.jsonl.head"), &template().head).unwrap();
    let class = verify(&path, &template().ring)
        .unwrap()
        .damage
        .map(|d| d.class);
    std::fs::remove_dir_all(&dir).unwrap();
    class
}

#[test]
fn unmodified_template_is_intact() {
    assert_eq!(check(&template().lines), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_flipped_byte_is_modified(pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let t = template();
        let mut bytes = t.lines.concat();
        let i = pos.index(bytes.len());
        bytes[i] ^= mask;
        let lines: Vec<Vec<u8>> = bytes.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        prop_assert_eq!(check(&lines), Some(DamageClass::Modified), "byte {} ^ {:#x}", i, mask);
    }

    #[test]
    fn any_deleted_run_of_lines_is_deleted_or_truncated(a in any::<prop::sample::Index>(), len in 1usize..5) {
        let t = template();
        let n = t.lines.len();
        let a = a.index(n);
        let b = (a + len).min(n);
        let mut lines = t.lines.clone();
        lines.drain(a..b);
        let want = if b == n { DamageClass::Truncated } else { DamageClass::Deleted };
        prop_assert_eq!(check(&lines), Some(want), "deleted lines {}..{}", a, b);
    }

    #[test]
    fn any_duplicated_line_is_inserted(i in any::<prop::sample::Index>(), j in any::<prop::sample::Index>()) {
        let t = template();
        let n = t.lines.len();
        let (i, j) = (i.index(n), j.index(n + 1));
        let mut lines = t.lines.clone();
        lines.insert(j, t.lines[i].clone());
        prop_assert_eq!(check(&lines), Some(DamageClass::Inserted), "copy of line {} at {}", i, j);
    }

    #[test]
    fn any_swap_of_two_lines_is_reordered(i in any::<prop::sample::Index>(), j in any::<prop::sample::Index>()) {
        let t = template();
        let n = t.lines.len();
        let (i, j) = (i.index(n), j.index(n));
        prop_assume!(i != j);
        let mut lines = t.lines.clone();
        lines.swap(i, j);
        prop_assert_eq!(check(&lines), Some(DamageClass::Reordered), "swapped {} and {}", i, j);
    }
}

#[test]
fn every_byte_of_the_log_is_covered() {
    // Exhaustive over positions. Letters get the ASCII case bit flipped (an upper-case MAC
    // digit must not pass, as it would with a lenient hex parser); other bytes the low bit.
    let t = template();
    let bytes = t.lines.concat();
    for i in 0..bytes.len() {
        let mask = if bytes[i].is_ascii_alphabetic() {
            0x20
        } else {
            0x01
        };
        let mut b = bytes.clone();
        b[i] ^= mask;
        let lines: Vec<Vec<u8>> = b
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        assert_eq!(
            check(&lines),
            Some(DamageClass::Modified),
            "byte {i} ^ {mask:#x}"
        );
    }
}

/// The README's rules, implemented from scratch: parse the line, drop `mac`, serialize with
/// sorted keys and serde_json's escaping (which the README's escaping equals), HMAC with the raw
/// key file.
fn independent_mac(key: &[u8], line: &[u8]) -> (String, String) {
    let mut v: serde_json::Value = serde_json::from_slice(line).unwrap();
    let mac = v.as_object_mut().unwrap().remove("mac").unwrap();
    // serde_json's Map is a BTreeMap here (no preserve_order), so to_string sorts keys.
    let canonical = serde_json::to_string(&v).unwrap();
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(canonical.as_bytes());
    (
        hex::encode(m.finalize().into_bytes()),
        mac.as_str().unwrap().to_string(),
    )
}

#[test]
fn a_second_implementation_of_the_canonical_form_verifies_every_line() {
    let env = Env::new();
    let path = env.log("canon", 12, true);
    let key = std::fs::read(env.config_dir().join("audit.key")).unwrap();
    let all = lines(&path);
    assert_eq!(all.len(), 14);
    for (i, l) in all.iter().enumerate() {
        let l = l.strip_suffix(b"\n").unwrap();
        let (computed, stored) = independent_mac(&key, l);
        assert_eq!(computed, stored, "line {}", i + 1);
    }
    assert!(is_sorted_canonical(Path::new(&path)));
}

/// Every line is exactly its canonical form with `mac` spliced in last.
fn is_sorted_canonical(path: &Path) -> bool {
    lines(path).iter().all(|l| {
        let l = l.strip_suffix(b"\n").unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(l).unwrap();
        let mac = v.as_object_mut().unwrap().remove("mac").unwrap();
        let mut c = serde_json::to_string(&v).unwrap();
        c.pop();
        c.push_str(&format!(",\"mac\":\"{}\"}}", mac.as_str().unwrap()));
        c.as_bytes() == l
    })
}
