//! Verifying one segment line by line: MAC, `seq`, `prev`, sandbox, genesis and seal, with the
//! look-ahead that tells inserted from modified and reordered from deleted.

use super::key::{choose_key, KeyChoice};
use super::{Damage, DamageClass, SegmentEnd, VerifyReport};
use crate::audit::files::{HeadState, LogFiles};
use crate::audit::keys::{Key, KeyRing};
use crate::audit::line::{
    self, DetailsOf, Envelope, GenesisDetails, SealDetails, MAX_LINE, ZERO_MAC,
};
use crate::audit::AuditError;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

pub(super) enum Read1 {
    Eof,
    Whole,
    /// Bytes at the end of the file without a newline.
    Fragment,
    TooLong,
}

pub(super) fn read_line(
    r: &mut BufReader<File>,
    buf: &mut Vec<u8>,
    path: &Path,
) -> Result<Read1, AuditError> {
    buf.clear();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(AuditError::io(path))?;
    Ok(if n == 0 {
        Read1::Eof
    } else if buf.last() == Some(&b'\n') {
        buf.pop();
        Read1::Whole
    } else if buf.len() > MAX_LINE {
        Read1::TooLong
    } else {
        Read1::Fragment
    })
}

pub(super) struct SegmentCheck<'a> {
    files: &'a LogFiles,
    n: u32,
    ring: &'a KeyRing,
    head: &'a HeadState,
    prev: Option<&'a SegmentEnd>,
    rep: &'a mut VerifyReport,
}

impl<'a> SegmentCheck<'a> {
    pub(super) fn new(
        files: &'a LogFiles,
        n: u32,
        ring: &'a KeyRing,
        head: &'a HeadState,
        prev: Option<&'a SegmentEnd>,
        rep: &'a mut VerifyReport,
    ) -> Self {
        SegmentCheck {
            files,
            n,
            ring,
            head,
            prev,
            rep,
        }
    }

    fn damage(
        &mut self,
        class: DamageClass,
        seq: u64,
        line: u64,
        detail: impl Into<String>,
    ) -> Result<Option<SegmentEnd>, AuditError> {
        self.rep.damage = Some(Damage {
            class,
            segment: self.n,
            seq,
            line,
            detail: detail.into(),
        });
        Ok(None)
    }

    /// Verifies one segment; `None` when damage was recorded in the report.
    pub(super) fn run(&mut self) -> Result<Option<SegmentEnd>, AuditError> {
        let path = self.files.segment_path(self.n);
        let key = match choose_key(&path, self.ring)? {
            KeyChoice::Found(k) => k,
            KeyChoice::Empty => {
                return Ok(Some(SegmentEnd {
                    segment: self.n,
                    last: None,
                    seal: None,
                    torn: false,
                    lines: 0,
                }));
            }
            KeyChoice::Damage(class, detail) => return self.damage(class, 0, 1, detail),
        };
        if !self.rep.key_ids.iter().any(|k| k == key.id()) {
            self.rep.key_ids.push(key.id().to_string());
        }
        let head = match self.head {
            HeadState::Valid(h) if h.segment == self.n => Some(h),
            _ => None,
        };
        let want_prev0 = match self.prev {
            Some(p) => p.last.map(|l| l.1).unwrap_or(ZERO_MAC),
            None => ZERO_MAC,
        };
        let sandbox = self.files.sandbox_id().to_string();
        let file = File::open(&path).map_err(AuditError::io(&path))?;
        let mut r = BufReader::with_capacity(256 * 1024, file);
        let mut buf = Vec::with_capacity(4096);
        let mut expected = 0u64;
        let mut last: [u8; 64] = want_prev0;
        let mut seal: Option<bool> = None;
        let mut lineno = 0u64;
        let mut torn = false;
        loop {
            let kind = read_line(&mut r, &mut buf, &path)?;
            lineno += 1;
            match kind {
                Read1::Eof => break,
                Read1::TooLong => {
                    return self.damage(
                        DamageClass::Modified,
                        expected,
                        lineno,
                        format!("the line is longer than {MAX_LINE} bytes, so it is no entry"),
                    );
                }
                Read1::Fragment => {
                    if buf.len() > 1 && line::mac_ok(&key, &buf[..buf.len() - 1]) {
                        return self.damage(
                            DamageClass::Modified,
                            expected,
                            lineno,
                            "the newline after the last entry was replaced",
                        );
                    }
                    torn = true;
                    if !line::mac_ok(&key, &buf) {
                        break;
                    }
                    // A whole entry that only lacks its newline: check it like the others.
                }
                Read1::Whole => {}
            }
            if seal.is_some() {
                return self.damage(
                    DamageClass::Inserted,
                    expected,
                    lineno,
                    "a line follows the seal",
                );
            }
            if !line::mac_ok(&key, &buf) {
                let detail = if line::split(&buf).is_none() {
                    "the line is not a well-formed entry"
                } else {
                    "its MAC does not match its content"
                };
                // A forged line slipped between two entries leaves the chain intact around it.
                let mut next = Vec::new();
                let inserted = matches!(read_line(&mut r, &mut next, &path)?, Read1::Whole)
                    && line::mac_ok(&key, &next)
                    && Envelope::parse(&next)
                        .is_some_and(|e| e.seq == expected && e.prev.as_bytes() == last);
                let class = if inserted {
                    DamageClass::Inserted
                } else {
                    DamageClass::Modified
                };
                return self.damage(class, expected, lineno, detail);
            }
            let Some(env) = Envelope::parse(&buf) else {
                return self.damage(
                    DamageClass::Modified,
                    expected,
                    lineno,
                    "the MAC verifies but the line is not an entry of this format",
                );
            };
            if env.v != 1 {
                return self.damage(
                    DamageClass::Modified,
                    expected,
                    lineno,
                    format!("unsupported format version {}", env.v),
                );
            }
            if env.seq < expected {
                return self.damage(
                    DamageClass::Inserted,
                    expected,
                    lineno,
                    format!("seq {} appears again", env.seq),
                );
            }
            if env.seq > expected {
                let s = env.seq;
                let (dup, found) = scan_rest(&mut r, &key, s, expected, &path)?;
                let (class, detail) = if dup {
                    (
                        DamageClass::Inserted,
                        format!("a copy of seq {s} stands where seq {expected} belongs"),
                    )
                } else if found {
                    (DamageClass::Reordered, format!("seq {s} stands where seq {expected} belongs; seq {expected} comes later"))
                } else {
                    (
                        DamageClass::Deleted,
                        format!("entries {expected}..{} are missing", s - 1),
                    )
                };
                return self.damage(class, expected, lineno, detail);
            }
            if env.prev.as_bytes() != last {
                let detail = if expected == 0 && self.n > 0 {
                    format!(
                        "the genesis does not continue the seal of segment {}",
                        self.n - 1
                    )
                } else {
                    "its prev is not the MAC of the entry before it: it comes from another chain"
                        .into()
                };
                return self.damage(DamageClass::Inserted, expected, lineno, detail);
            }
            if env.sandbox != sandbox {
                return self.damage(
                    DamageClass::Inserted,
                    expected,
                    lineno,
                    format!("it belongs to sandbox {:?}", env.sandbox),
                );
            }
            let is_genesis = env.kind == "genesis";
            if is_genesis != (expected == 0) {
                return self.damage(
                    DamageClass::Inserted,
                    expected,
                    lineno,
                    "a genesis entry must be the first entry, and only it",
                );
            }
            if is_genesis {
                let want = self
                    .prev
                    .and_then(|p| p.last.map(|(seq, mac)| (p.segment, seq, mac)));
                let fits = DetailsOf::<GenesisDetails>::parse(&buf).is_some_and(|g| {
                    g.segment == self.n
                        && match (&g.continues, want) {
                            (None, None) => true,
                            (Some(c), Some((s, q, m))) => {
                                c.segment == s && c.seq == q && c.mac.as_bytes() == m
                            }
                            _ => false,
                        }
                });
                if !fits {
                    return self.damage(
                        DamageClass::Inserted,
                        expected,
                        lineno,
                        format!("the genesis is not that of segment {} of this log", self.n),
                    );
                }
            }
            if env.kind == "seal" {
                seal = Some(DetailsOf::<SealDetails>::parse(&buf).is_some_and(|d| d.rotate));
            }
            if let Some(h) = head {
                if h.seq == env.seq && h.last.as_bytes() != env.mac.as_bytes() {
                    return self.damage(
                        DamageClass::Modified,
                        expected,
                        lineno,
                        "the head file names a different entry at this seq",
                    );
                }
            }
            last.copy_from_slice(env.mac.as_bytes());
            expected += 1;
            self.rep.entries += 1;
            if torn {
                break;
            }
        }
        Ok(Some(SegmentEnd {
            segment: self.n,
            last: expected.checked_sub(1).map(|s| (s, last)),
            seal,
            torn,
            lines: lineno,
        }))
    }
}

/// After an out-of-order `seq` (`seen` where `expected` belonged): does `seen` appear again (a
/// copy was inserted) and does `expected` appear later (lines were moved)?
fn scan_rest(
    r: &mut BufReader<File>,
    key: &Key,
    seen: u64,
    expected: u64,
    path: &Path,
) -> Result<(bool, bool), AuditError> {
    let mut buf = Vec::new();
    let (mut dup, mut found) = (false, false);
    while let Read1::Whole | Read1::Fragment = read_line(r, &mut buf, path)? {
        if !line::mac_ok(key, &buf) {
            continue;
        }
        if let Some(e) = Envelope::parse(&buf) {
            dup |= e.seq == seen;
            found |= e.seq == expected;
        }
    }
    Ok((dup, found))
}
