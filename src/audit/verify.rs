//! The verifier: walks a log's segments line by line (bounded memory at any size), checks every
//! MAC, `seq` and `prev` link, the seal and the head file, and names the first damage and its
//! class. It reads only; it never repairs.

use super::files::{self, HeadState, LogFiles};
use super::keys::{Key, KeyRing};
use super::line::{self, DetailsOf, Envelope, GenesisDetails, SealDetails, MAX_LINE, ZERO_MAC};
use super::AuditError;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// The kinds of damage `verify` tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DamageClass {
    /// An entry's bytes changed (or a line is not an entry at all).
    Modified,
    /// A line that the chain does not lead to: a foreign, duplicated or appended-after-seal entry.
    Inserted,
    /// Entries are missing from the middle of the chain.
    Deleted,
    /// All entries are present, in the wrong order.
    Reordered,
    /// Entries that were durable (named by the head file or announced by a seal) are gone.
    Truncated,
    /// The log ends without a seal: the writer crashed or is still running.
    Unsealed,
    /// The last line is cut short (a writer died mid-write); everything before it verifies.
    TornTail,
    /// The log was written with a key the key ring does not hold.
    UnknownKey,
    /// The key the log names does not produce its MACs.
    WrongKey,
}

impl DamageClass {
    pub fn as_str(self) -> &'static str {
        match self {
            DamageClass::Modified => "modified",
            DamageClass::Inserted => "inserted",
            DamageClass::Deleted => "deleted",
            DamageClass::Reordered => "reordered",
            DamageClass::Truncated => "truncated",
            DamageClass::Unsealed => "unsealed",
            DamageClass::TornTail => "torn tail",
            DamageClass::UnknownKey => "unknown key",
            DamageClass::WrongKey => "wrong key",
        }
    }
}

impl fmt::Display for DamageClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first damage found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub class: DamageClass,
    /// The segment it is in (0 for `<id>.jsonl`).
    pub segment: u32,
    /// The first `seq` that does not verify: the position in the chain where it breaks.
    pub seq: u64,
    /// The 1-based line of the segment file (0 when the damage is not at a line).
    pub line: u64,
    pub detail: String,
}

/// What `verify` found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub files: LogFiles,
    /// Segments read.
    pub segments: u32,
    /// Entries that verified, across segments (up to the damage, if any).
    pub entries: u64,
    /// Ids of the keys the segments were written with.
    pub key_ids: Vec<String>,
    /// The log ends with a final seal.
    pub sealed: bool,
    pub damage: Option<Damage>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.damage.is_none()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.files.segment_path(0);
        match &self.damage {
            None => write!(
                f,
                "{}: intact, sealed; {} entries in {} segment(s), key {}",
                path.display(),
                self.entries,
                self.segments,
                self.key_ids.join(",")
            ),
            Some(d) => {
                write!(f, "{}: {} at seq {}", path.display(), d.class, d.seq)?;
                if d.segment > 0 {
                    write!(f, " of segment {}", d.segment)?;
                }
                if d.line > 0 {
                    write!(
                        f,
                        " (line {} of {})",
                        d.line,
                        self.files.segment_path(d.segment).display()
                    )?;
                }
                write!(
                    f,
                    ": {}; {} entries verified before it",
                    d.detail, self.entries
                )
            }
        }
    }
}

/// Verifies the log that `path` names (any of its segment files or its head). `Ok` carries the
/// verdict, damage included; `Err` is for logs that cannot be read at all.
pub fn verify(path: &Path, ring: &KeyRing) -> Result<VerifyReport, AuditError> {
    let files = LogFiles::from_path(path)?;
    let seg0 = files.segment_path(0);
    if !seg0.exists() {
        return Err(AuditError::NotFound { path: seg0 });
    }
    let head = files::read_head(&files, ring)?;
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
            None => Some(end.damage_here(DamageClass::Unsealed, "the log ends without a seal (its writer crashed or is still running); every entry verifies")),
        }
    };
    rep.sealed = end.seal == Some(false);
    Ok(rep)
}

/// Where a segment's verified chain ends.
struct SegmentEnd {
    segment: u32,
    /// `seq` and MAC of its last verified entry.
    last: Option<(u64, [u8; 64])>,
    /// `Some(rotate)` when its last entry is a seal.
    seal: Option<bool>,
    torn: bool,
    lines: u64,
}

impl SegmentEnd {
    fn damage_here(&self, class: DamageClass, detail: &str) -> Damage {
        Damage {
            class,
            segment: self.segment,
            seq: self.last.map(|l| l.0 + 1).unwrap_or(0),
            line: if self.torn { self.lines } else { 0 },
            detail: detail.into(),
        }
    }
}

enum Read1 {
    Eof,
    Whole,
    /// Bytes at the end of the file without a newline.
    Fragment,
    TooLong,
}

fn read_line(r: &mut BufReader<File>, buf: &mut Vec<u8>, path: &Path) -> Result<Read1, AuditError> {
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

enum KeyChoice {
    Found(Key),
    Empty,
    Damage(DamageClass, String),
}

struct SegmentCheck<'a> {
    files: &'a LogFiles,
    n: u32,
    ring: &'a KeyRing,
    head: &'a HeadState,
    prev: Option<&'a SegmentEnd>,
    rep: &'a mut VerifyReport,
}

impl<'a> SegmentCheck<'a> {
    fn new(
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
        detail: String,
    ) -> Result<Option<SegmentEnd>, AuditError> {
        self.rep.damage = Some(Damage {
            class,
            segment: self.n,
            seq,
            line,
            detail,
        });
        Ok(None)
    }

    /// Verifies one segment; `None` when damage was recorded in the report.
    fn run(&mut self) -> Result<Option<SegmentEnd>, AuditError> {
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
                            "the newline after the last entry was replaced".into(),
                        );
                    }
                    if !line::mac_ok(&key, &buf) {
                        torn = true;
                        break;
                    }
                    // A whole entry that only lacks its newline: check it, then call it torn.
                    torn = true;
                }
                Read1::Whole => {}
            }
            if seal.is_some() {
                return self.damage(
                    DamageClass::Inserted,
                    expected,
                    lineno,
                    "a line follows the seal".into(),
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
                return self.damage(class, expected, lineno, detail.into());
            }
            let Some(env) = Envelope::parse(&buf) else {
                return self.damage(
                    DamageClass::Modified,
                    expected,
                    lineno,
                    "the MAC verifies but the line is not an entry of this format".into(),
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
                    "a genesis entry must be the first entry, and only it".into(),
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
                        "the head file names a different entry at this seq".into(),
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

/// Finds the key a segment was written with from its first lines: the genesis names it; when
/// the genesis is damaged or gone, any ring key that verifies one of the first entries.
fn choose_key(path: &Path, ring: &KeyRing) -> Result<KeyChoice, AuditError> {
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
