//! Which key a segment was written with, and the damage classes that hang on that question:
//! unknown key, wrong key, and a genesis whose key id was altered.

use super::segment::{read_line, Read1};
use super::DamageClass;
use crate::audit::keys::{Key, KeyRing};
use crate::audit::line::{self, DetailsOf, Envelope, GenesisDetails};
use crate::audit::AuditError;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

pub(super) enum KeyChoice {
    Found(Key),
    Empty,
    Damage(DamageClass, String),
}

/// Finds the key a segment was written with from its first lines: the genesis names it; when
/// the genesis is damaged or gone, any ring key that verifies one of the first entries.
pub(super) fn choose_key(path: &Path, ring: &KeyRing) -> Result<KeyChoice, AuditError> {
    let file = File::open(path).map_err(AuditError::io(path))?;
    let mut r = BufReader::new(file);
    let mut lines = Vec::new();
    for _ in 0..3 {
        let mut buf = Vec::new();
        match read_line(&mut r, &mut buf, path)? {
            Read1::Whole | Read1::Fragment => lines.push(buf),
            Read1::Eof | Read1::TooLong => break,
        }
    }
    if lines.is_empty() {
        return Ok(KeyChoice::Empty);
    }
    let named = lines
        .iter()
        .find_map(|l| {
            Envelope::parse(l)
                .filter(|e| e.kind == "genesis")
                .and(DetailsOf::<GenesisDetails>::parse(l))
        })
        .map(|g| g.key_id);
    let verifying = || {
        ring.keys()
            .find(|k| lines.iter().any(|l| line::mac_ok(k, l)))
            .cloned()
    };
    let Some(id) = named else {
        return Ok(match verifying() {
            Some(k) => KeyChoice::Found(k),
            None => KeyChoice::Damage(
                DamageClass::UnknownKey,
                "no key of the key ring verifies the first entries".into(),
            ),
        });
    };
    if let Some(k) = ring.get(&id) {
        if lines.iter().any(|l| line::mac_ok(k, l)) || lines.len() == 1 {
            return Ok(KeyChoice::Found(k.clone()));
        }
        if let Some(other) = verifying() {
            return Ok(KeyChoice::Found(other));
        }
        return Ok(KeyChoice::Damage(
            DamageClass::WrongKey,
            format!("the log names key {id}, but none of its first entries verifies with that key"),
        ));
    }
    // The named key is unknown. If putting a ring key's id back makes the genesis verify, the
    // key id itself was altered.
    let pattern = format!("\"key_id\":\"{id}\"");
    for l in &lines {
        let Some(at) = find(l, pattern.as_bytes()) else {
            continue;
        };
        for k in ring.keys() {
            let fixed = [
                &l[..at],
                format!("\"key_id\":\"{}\"", k.id()).as_bytes(),
                &l[at + pattern.len()..],
            ]
            .concat();
            if line::mac_ok(k, &fixed) {
                return Ok(KeyChoice::Damage(
                    DamageClass::Modified,
                    format!("the genesis key id was changed from {} to {id}", k.id()),
                ));
            }
        }
    }
    if let Some(k) = verifying() {
        return Ok(KeyChoice::Found(k));
    }
    Ok(KeyChoice::Damage(
        DamageClass::UnknownKey,
        format!(
            "the log was written with key {id}, which is not in the key ring at {}",
            ring.dir().display()
        ),
    ))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
