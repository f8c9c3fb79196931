//! The verifier: walks a log's segments line by line (bounded memory at any size), checks every
//! MAC, `seq` and `prev` link, the seal and the head file, and names the first damage and its
//! class. It reads only; it never repairs.

mod key;
mod report;
mod segment;

pub use report::{Damage, DamageClass, VerifyReport};

use super::files::{HeadState, LogFiles};
use super::keys::KeyRing;
use super::AuditError;
use segment::SegmentCheck;
use std::path::Path;

/// Verifies the log that `path` names (any of its segment files or its head). `Ok` carries the
/// verdict, damage included; `Err` is for logs that cannot be read at all.
pub fn verify(path: &Path, ring: &KeyRing) -> Result<VerifyReport, AuditError> {
    let files = LogFiles::from_path(path)?;
    let seg0 = files.segment_path(0);
    if !seg0.exists() {
        return Err(AuditError::NotFound { path: seg0 });
    }
    let (head, damaged_slot) = super::head::read_head_checked(&files, ring)?;
    let mut rep = VerifyReport {
        files: files.clone(),
        segments: 0,
        entries: 0,
        key_ids: Vec::new(),
        sealed: false,
        damage: None,
    };
    let segs = files.segments()?;
    let mut prev: Option<SegmentEnd> = None;
    for (i, &n) in segs.iter().enumerate() {
        if n != i as u32 {
            rep.damage = Some(Damage {
                class: DamageClass::Deleted,
                segment: i as u32,
                seq: 0,
                line: 0,
                detail: format!(
                    "segment file {} is missing",
                    files.segment_path(i as u32).display()
                ),
            });
            return Ok(rep);
        }
        let last_and_empty = i + 1 == segs.len()
            && std::fs::metadata(files.segment_path(n)).is_ok_and(|m| m.len() == 0);
        if last_and_empty && prev.is_some() {
            // A writer died between creating this segment and writing into it: the log simply
            // ends where the previous segment ends.
            break;
        }
        if let Some(p) = &prev {
            if p.seal.is_none() {
                rep.damage = Some(p.damage_here(
                    DamageClass::Truncated,
                    "the segment ends without a seal, yet a later segment follows",
                ));
                return Ok(rep);
            }
        }
        rep.segments += 1;
        let mut seg = SegmentCheck::new(&files, n, ring, &head, prev.as_ref(), &mut rep);
        match seg.run()? {
            Some(end) => prev = Some(end),
            None => return Ok(rep),
        }
    }
    let Some(end) = prev else {
        return Ok(rep);
    };
    let head_pos = match &head {
        HeadState::Valid(h) => Some((h.segment, h.seq)),
        _ => None,
    };
    let end_pos = (end.segment, end.last.map(|l| l.0));
    let head_ahead = head_pos.is_some_and(|(hs, hq)| (hs, Some(hq)) > end_pos);
    rep.damage = if let HeadState::Invalid(why) = &head {
        Some(end.damage_here(
            DamageClass::Modified,
            &format!("head file {}: {why}", files.head_path().display()),
        ))
    } else if head_ahead {
        let (hs, hq) = head_pos.unwrap_or_default();
        Some(end.damage_here(
            DamageClass::Truncated,
            &format!("the head file names seq {hq} of segment {hs} as written, but the log ends before it"),
        ))
    } else {
        match end.seal {
            Some(false) => None,
            Some(true) if segs.len() as u32 > end.segment + 1 => Some(end.damage_here(
                DamageClass::Unsealed,
                "the log ends with a rotation whose next segment is still empty (its writer crashed or is still running)",
            )),
            Some(true) => Some(Damage {
                class: DamageClass::Truncated,
                segment: end.segment + 1,
                seq: 0,
                line: 0,
                detail: format!(
                    "the seal of segment {} announces segment file {}, which is missing",
                    end.segment,
                    files.segment_path(end.segment + 1).display()
                ),
            }),
            None if end.torn => Some(end.damage_here(DamageClass::TornTail, "the last line is cut short (and the log is unsealed); every whole entry before it verifies")),
            None if head == HeadState::Missing => Some(end.damage_here(
                DamageClass::Unsealed,
                "the log ends without a seal and its head file is missing, so a cut-off tail cannot be ruled out",
            )),
            // The head's newest slot may be the one that does not verify: torn by a crash while
            // it was written, or damaged to hide a cut-off tail behind the older slot.
            None if damaged_slot.is_some() => Some(end.damage_here(
                DamageClass::Unsealed,
                &format!(
                    "the log ends without a seal and one slot of its head file does not verify ({}): a crash while it was written, or a cut-off tail; the tail cannot be ruled out",
                    damaged_slot.as_deref().unwrap_or_default()
                ),
            )),
            None => Some(end.damage_here(DamageClass::Unsealed, "the log ends without a seal (its writer crashed or is still running); every entry verifies")),
        }
    };
    rep.sealed = end.seal == Some(false);
    Ok(rep)
}

/// Where a segment's verified chain ends.
pub(super) struct SegmentEnd {
    pub(super) segment: u32,
    /// `seq` and MAC of its last verified entry.
    pub(super) last: Option<(u64, [u8; 64])>,
    /// `Some(rotate)` when its last entry is a seal.
    pub(super) seal: Option<bool>,
    pub(super) torn: bool,
    pub(super) lines: u64,
}

impl SegmentEnd {
    pub(super) fn damage_here(&self, class: DamageClass, detail: &str) -> Damage {
        Damage {
            class,
            segment: self.segment,
            seq: self.last.map(|l| l.0 + 1).unwrap_or(0),
            line: if self.torn { self.lines } else { 0 },
            detail: detail.into(),
        }
    }
}
