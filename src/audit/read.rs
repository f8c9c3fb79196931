//! Reading a log for people and programs (`lasso audit view`, `list`, the dashboard): entries in
//! order across segments, following a growing log, and a cheap summary per log. Reading is not
//! verifying: these readers trust the bytes; `verify` is what checks them.

use super::files::{self, LogFiles};
use super::line::{DetailsOf, GenesisDetails, SealDetails, MAX_LINE};
use super::AuditError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// One entry as a reader sees it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Entry {
    pub details: Value,
    pub kind: String,
    pub outcome: String,
    pub prev: String,
    pub reason: String,
    pub sandbox: String,
    pub seq: u64,
    pub ts: String,
    pub v: u32,
    pub mac: String,
}

impl Entry {
    /// A final seal: nothing follows it.
    pub fn is_final_seal(&self) -> bool {
        self.kind == "seal"
            && !self
                .details
                .get("rotate")
                .and_then(Value::as_bool)
                .unwrap_or(false)
    }
}

/// Reads the entries of one log in order, segment after segment. At the end of the data it
/// returns `None`; call again later to follow a log that is still being written.
pub struct EntryReader {
    files: LogFiles,
    segment: u32,
    reader: BufReader<File>,
    /// The current line so far (it may be incomplete while a writer is mid-write).
    buf: Vec<u8>,
    line: u64,
    /// The last entry read was a rotation seal: the next segment comes next.
    rotate_pending: bool,
}

impl EntryReader {
    pub fn open(path: &Path) -> Result<EntryReader, AuditError> {
        let files = LogFiles::from_path(path)?;
        let p = files.segment_path(0);
        let file = File::open(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AuditError::NotFound { path: p.clone() },
            _ => AuditError::Io {
                path: p.clone(),
                source: e,
            },
        })?;
        Ok(EntryReader {
            files,
            segment: 0,
            reader: BufReader::with_capacity(256 * 1024, file),
            buf: Vec::new(),
            line: 0,
            rotate_pending: false,
        })
    }

    pub fn files(&self) -> &LogFiles {
        &self.files
    }

    /// The next entry and its raw line (without newline), or `None` when no whole line is there
    /// (yet).
    pub fn next_entry(&mut self) -> Result<Option<(Entry, Vec<u8>)>, AuditError> {
        loop {
            let path = self.files.segment_path(self.segment);
            let room = (MAX_LINE + 1).saturating_sub(self.buf.len()) as u64;
            let n = self
                .reader
                .by_ref()
                .take(room)
                .read_until(b'\n', &mut self.buf)
                .map_err(AuditError::io(&path))?;
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
                self.line += 1;
                let raw = std::mem::take(&mut self.buf);
                let entry: Entry =
                    serde_json::from_slice(&raw).map_err(|e| AuditError::BadLog {
                        path: path.clone(),
                        why: format!(
                            "line {} is not an audit entry ({e}); `lasso audit verify` says more",
                            self.line
                        ),
                    })?;
                self.rotate_pending = entry.kind == "seal" && !entry.is_final_seal();
                return Ok(Some((entry, raw)));
            }
            if self.buf.len() > MAX_LINE {
                return Err(AuditError::BadLog {
                    path,
                    why: format!("line {} is longer than {MAX_LINE} bytes", self.line + 1),
                });
            }
            if n == 0 && self.buf.is_empty() && self.rotate_pending {
                let next = self.files.segment_path(self.segment + 1);
                match File::open(&next) {
                    Ok(f) => {
                        self.reader = BufReader::with_capacity(256 * 1024, f);
                        self.segment += 1;
                        self.line = 0;
                        self.rotate_pending = false;
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => {
                        return Err(AuditError::Io {
                            path: next,
                            source: e,
                        })
                    }
                }
            }
            return Ok(None);
        }
    }
}

/// What `lasso audit list` shows about a log, read from its first and last lines only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogSummary {
    pub path: PathBuf,
    pub sandbox: String,
    pub agent: Option<String>,
    pub profile: Option<String>,
    pub first_ts: Option<String>,
    pub last_ts: Option<String>,
    /// Whole entries, counted from the `seq` of each segment's last line.
    pub entries: u64,
    pub segments: u32,
    pub sealed: bool,
}

#[derive(Deserialize)]
struct Stamp {
    seq: u64,
    ts: String,
    kind: String,
}

/// Summarizes a log without reading it whole.
pub fn summarize(files: &LogFiles) -> Result<LogSummary, AuditError> {
    let seg0 = files.segment_path(0);
    let mut s = LogSummary {
        path: seg0.clone(),
        sandbox: files.sandbox_id().to_string(),
        agent: None,
        profile: None,
        first_ts: None,
        last_ts: None,
        entries: 0,
        segments: 0,
        sealed: false,
    };
    if let Some(first) = files::first_line(&seg0)? {
        if let Some(g) = DetailsOf::<GenesisDetails>::parse(&first) {
            s.agent = g.agent;
            s.profile = g.profile;
        }
        s.first_ts = serde_json::from_slice::<Stamp>(&first).ok().map(|st| st.ts);
    }
    for n in files.segments()? {
        let path = files.segment_path(n);
        let f = File::open(&path).map_err(AuditError::io(&path))?;
        let size = f.metadata().map_err(AuditError::io(&path))?.len();
        s.segments += 1;
        let tail = files::read_tail(&f, size, &path)?;
        let Some(last) = tail.last else { continue };
        if let Ok(st) = serde_json::from_slice::<Stamp>(&last) {
            s.entries += st.seq + 1;
            s.sealed = st.kind == "seal"
                && DetailsOf::<SealDetails>::parse(&last).is_some_and(|d| !d.rotate);
            s.last_ts = Some(st.ts);
        }
    }
    Ok(s)
}
