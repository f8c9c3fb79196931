//! The head file `<id>.jsonl.head`: the last entry known durable, kept outside the log so that
//! cutting entries off the end of a log is seen even when the cut removes the seal. It owns the
//! head's on-disk format and its update; it reads or writes no segment.
//!
//! The file holds two fixed slots, at offsets 0 and 4096 (separate pages, so the writeback of
//! one never carries a half-written other), each one head record (the same MACed line as a log
//! entry) padded with NUL bytes to 1024 bytes. An update overwrites, in place, the slot that
//! does not hold the newest valid record, and only after the segment's `fdatasync` returned:
//! every version either slot can hold after a crash names an entry already durable, and the
//! newest valid one is never overwritten. So an update needs no sync of its own and no
//! temporary file: a torn slot fails its MAC and the reader takes the other one. (A crash can
//! lose head updates, never invent one: the head may name an earlier entry, never a later.)
//! A file with no record at all (empty, or only NULs: a first write the crash caught before
//! it reached the disk) reads as missing, which is what deleting it would show too.
//!
//! Older lasso wrote the head as one record at offset 0, replaced by rename: that is a file
//! whose slot 0 holds a record and whose slot 1 is absent, read the same way; the first update
//! goes into slot 1 and leaves the old record as the fallback.

use super::files::LogFiles;
use super::keys::{Key, KeyRing};
use super::{canon, line, AuditError};
use serde::Deserialize;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

/// Where the two slots start.
const SLOT_AT: [u64; 2] = [0, 4096];
/// A slot's size: a record is at most ~560 bytes (a 200-byte sandbox id, two MACs).
const SLOT_LEN: usize = 1024;
/// The longest file that can be a head.
const FILE_MAX: usize = SLOT_AT[1] as usize + SLOT_LEN;

/// The head: the last entry known durable, written after each flush.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub key_id: String,
    /// The MAC of entry `seq` of segment `segment`.
    pub last: String,
    pub sandbox: String,
    pub sealed: bool,
    pub segment: u32,
    pub seq: u64,
    pub v: u32,
    #[serde(default, skip)]
    pub mac: String,
}

impl Head {
    fn position(&self) -> (u32, u64) {
        (self.segment, self.seq)
    }

    /// Orders heads: further along, then sealed over unsealed at the same entry.
    fn rank(&self) -> ((u32, u64), bool) {
        (self.position(), self.sealed)
    }

    /// The MACed record, newline included.
    fn record(&self, key: &Key) -> Vec<u8> {
        let mut body = Vec::with_capacity(SLOT_LEN);
        body.extend_from_slice(b"{\"key_id\":");
        canon::write_str(&mut body, &self.key_id);
        body.extend_from_slice(b",\"last\":");
        canon::write_str(&mut body, &self.last);
        body.extend_from_slice(b",\"sandbox\":");
        canon::write_str(&mut body, &self.sandbox);
        body.extend_from_slice(if self.sealed {
            b",\"sealed\":true"
        } else {
            b",\"sealed\":false"
        });
        body.extend_from_slice(b",\"segment\":");
        canon::write_u64(&mut body, self.segment.into());
        body.extend_from_slice(b",\"seq\":");
        canon::write_u64(&mut body, self.seq);
        body.extend_from_slice(b",\"v\":1");
        line::finish(key, &mut body);
        body
    }
}

/// What the head file says, once its own MAC was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadState {
    Missing,
    /// The head file exists but holds no record lasso wrote with a key of the ring.
    Invalid(String),
    Valid(Head),
}

/// One slot as read.
#[derive(Debug)]
enum Slot {
    /// Never written (absent, or NULs only).
    Blank,
    Invalid(String),
    Valid(Head),
}

/// Names `head` in the head file, unless the file (another process appending to the same log)
/// already names the same entry or a later one. Call only once everything `head` names is
/// durable: this write is not synced (see the module docs).
/// `ring` recognises the records already there (an earlier segment's key included).
pub(crate) fn write_head(
    files: &LogFiles,
    ring: &KeyRing,
    key: &Key,
    head: &Head,
) -> Result<(), AuditError> {
    let path = files.head_path();
    let record = head.record(key);
    if record.len() > SLOT_LEN {
        return Err(AuditError::BadLog {
            path,
            why: format!(
                "its head record is {} bytes, more than a slot's {SLOT_LEN}",
                record.len()
            ),
        });
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(AuditError::io(&path))?;
    let bytes = read_capped(&file).map_err(AuditError::io(&path))?;
    let slots = parse_slots(files, &bytes, |id| ring.get(id));
    // Overwrite the slot that does not hold the newest valid record (slot 0 when none does).
    let mut target = 0;
    let mut best: Option<&Head> = None;
    for (i, s) in slots.iter().enumerate() {
        if let Slot::Valid(h) = s {
            if best.is_none_or(|b| h.rank() > b.rank()) {
                best = Some(h);
                target = 1 - i;
            }
        }
    }
    if best.is_some_and(|b| b.rank() >= head.rank()) {
        return Ok(());
    }
    let mut slot = record;
    slot.resize(SLOT_LEN, 0);
    file.write_all_at(&slot, SLOT_AT[target])
        .map_err(AuditError::io(&path))
}

/// Reads the head file of a log and checks its MAC against the ring.
pub fn read_head(files: &LogFiles, ring: &KeyRing) -> Result<HeadState, AuditError> {
    read_head_checked(files, ring).map(|(head, _)| head)
}

/// [`read_head`], and why a slot does not verify while the other one does (the head is then the
/// valid one): a crash while that slot was written, or a damaged head hiding a cut-off tail;
/// `verify` cannot tell which and says so. The reason is `None` when every slot verifies or is
/// blank, or when none verifies (the head is then `Invalid` itself).
pub fn read_head_checked(
    files: &LogFiles,
    ring: &KeyRing,
) -> Result<(HeadState, Option<String>), AuditError> {
    let path = files.head_path();
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((HeadState::Missing, None))
        }
        Err(e) => return Err(AuditError::Io { path, source: e }),
    };
    let bytes = read_capped(&file).map_err(AuditError::io(&path))?;
    if bytes.len() > FILE_MAX {
        let why = format!("it is longer than a head file ({FILE_MAX} bytes)");
        return Ok((HeadState::Invalid(why), None));
    }
    let mut best: Option<Head> = None;
    let mut why: Option<(usize, String)> = None;
    for (i, s) in parse_slots(files, &bytes, |id| ring.get(id))
        .into_iter()
        .enumerate()
    {
        match s {
            Slot::Valid(h) => {
                if best.as_ref().is_none_or(|b| h.rank() > b.rank()) {
                    best = Some(h);
                }
            }
            Slot::Invalid(w) => {
                why.get_or_insert((i, w));
            }
            Slot::Blank => {}
        }
    }
    Ok(match (best, why) {
        (Some(h), damaged) => (
            HeadState::Valid(h),
            damaged.map(|(i, w)| format!("slot {i}: {w}")),
        ),
        (None, Some((_, why))) => (HeadState::Invalid(why), None),
        (None, None) => (HeadState::Missing, None),
    })
}

/// The file's bytes, one past the longest head at most.
fn read_capped(file: &File) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(FILE_MAX + 1);
    file.take(FILE_MAX as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn parse_slots<'k>(
    files: &LogFiles,
    bytes: &[u8],
    key_of: impl Fn(&str) -> Option<&'k Key>,
) -> [Slot; 2] {
    SLOT_AT.map(|at| {
        let at = at as usize;
        let raw = bytes.get(at..bytes.len().min(at + SLOT_LEN)).unwrap_or(&[]);
        let end = raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        if end == 0 {
            return Slot::Blank;
        }
        match parse_record(files, &raw[..end], &key_of) {
            Ok(h) => Slot::Valid(h),
            Err(why) => Slot::Invalid(why),
        }
    })
}

fn parse_record<'k>(
    files: &LogFiles,
    text: &[u8],
    key_of: &impl Fn(&str) -> Option<&'k Key>,
) -> Result<Head, String> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let Ok(mut head) = serde_json::from_slice::<Head>(&strip_mac_member(text)) else {
        return Err("not a head record".into());
    };
    let Some(key) = key_of(&head.key_id) else {
        return Err(format!(
            "names key {} that is not in the key ring",
            head.key_id
        ));
    };
    if !line::mac_ok(key, text) {
        return Err("its MAC does not verify".into());
    }
    if head.sandbox != files.sandbox_id() {
        return Err(format!("it belongs to sandbox {:?}", head.sandbox));
    }
    head.mac = String::from_utf8_lossy(&text[text.len() - 66..text.len() - 2]).into_owned();
    Ok(head)
}

fn strip_mac_member(text: &[u8]) -> Vec<u8> {
    match line::split(text) {
        Some((body, _)) => [body, b"}"].concat(),
        None => text.to_vec(),
    }
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
