//! The files of one sandbox's log in the log directory: segment 0 `<id>.jsonl`, later segments
//! `<id>.jsonl.<n>` (size-based rotation), and the head `<id>.jsonl.head` (its format and
//! updates are `head`'s). Also small readers for the first and last line of a file.

use super::line::MAX_LINE;
use super::AuditError;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Names the files of one sandbox's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFiles {
    dir: PathBuf,
    id: String,
}

impl LogFiles {
    /// The log of sandbox `id` in `dir`. Ids are what OCI runtimes accept as container ids
    /// (letters, digits, `_ + - .`, not starting with `.`), so an id can never name a path.
    pub fn new(dir: &Path, id: &str) -> Result<LogFiles, AuditError> {
        let why = if id.is_empty() {
            Some("it is empty")
        } else if id.len() > 200 {
            Some("it is longer than 200 bytes")
        } else if id.starts_with('.') {
            Some("it starts with '.'")
        } else if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
        {
            Some("only letters, digits and _ + - . are allowed")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(AuditError::InvalidSandboxId { id: id.into(), why });
        }
        Ok(LogFiles {
            dir: dir.to_path_buf(),
            id: id.into(),
        })
    }

    /// The log a path names: segment 0 (`<id>.jsonl`), any later segment, or the head file.
    pub fn from_path(path: &Path) -> Result<LogFiles, AuditError> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let stem = name
            .strip_suffix(".jsonl.head")
            .or_else(|| name.strip_suffix(".jsonl"))
            .or_else(|| {
                let (s, n) = name.rsplit_once(".jsonl.")?;
                n.bytes().all(|b| b.is_ascii_digit()).then_some(s)
            })
            .ok_or_else(|| AuditError::BadLog {
                path: path.into(),
                why: "not an audit log file name (expected <sandbox-id>.jsonl)".into(),
            })?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        LogFiles::new(dir, stem)
    }

    pub fn sandbox_id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn segment_path(&self, n: u32) -> PathBuf {
        if n == 0 {
            self.dir.join(format!("{}.jsonl", self.id))
        } else {
            self.dir.join(format!("{}.jsonl.{n}", self.id))
        }
    }

    pub fn head_path(&self) -> PathBuf {
        self.dir.join(format!("{}.jsonl.head", self.id))
    }

    /// The segment numbers present on disk, ascending.
    pub fn segments(&self) -> Result<Vec<u32>, AuditError> {
        let mut out = Vec::new();
        let prefix = format!("{}.jsonl", self.id);
        for e in fs::read_dir(&self.dir).map_err(AuditError::io(&self.dir))? {
            let e = e.map_err(AuditError::io(&self.dir))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            if rest.is_empty() {
                out.push(0);
            } else if let Some(n) = rest.strip_prefix('.').and_then(|n| n.parse::<u32>().ok()) {
                if n > 0 && rest[1..].bytes().all(|b| b.is_ascii_digit()) {
                    out.push(n);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

/// Every log in `dir` (one per sandbox id), sorted by id.
pub fn list_logs(dir: &Path) -> Result<Vec<LogFiles>, AuditError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(AuditError::Io {
                path: dir.into(),
                source: e,
            })
        }
    };
    for e in entries {
        let e = e.map_err(AuditError::io(dir))?;
        if let Some(id) = e
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".jsonl"))
        {
            if let Ok(files) = LogFiles::new(dir, id) {
                out.push(files);
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

pub(crate) use super::head::write_head;
pub use super::head::{read_head, Head, HeadState};

/// The first line of a file, without its newline (`None` for an empty file or one whose first
/// line is longer than [`MAX_LINE`]).
pub(crate) fn first_line(path: &Path) -> Result<Option<Vec<u8>>, AuditError> {
    let f = File::open(path).map_err(AuditError::io(path))?;
    let mut r = BufReader::new(f).take(MAX_LINE as u64 + 1);
    let mut buf = Vec::new();
    r.read_until(b'\n', &mut buf)
        .map_err(AuditError::io(path))?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        Ok(Some(buf))
    } else {
        Ok(None)
    }
}

use std::io::Read as _;

/// The tail of a file: its last whole line (without newline) and whether bytes follow it that
/// lack a newline (a torn line). Reads backwards in blocks, so a huge log costs one block.
pub(crate) struct Tail {
    pub last: Option<Vec<u8>>,
    pub torn: bool,
}

pub(crate) fn read_tail(file: &File, size: u64, path: &Path) -> Result<Tail, AuditError> {
    if size == 0 {
        return Ok(Tail {
            last: None,
            torn: false,
        });
    }
    let mut last_byte = [0u8; 1];
    file.read_exact_at(&mut last_byte, size - 1)
        .map_err(AuditError::io(path))?;
    let torn = last_byte[0] != b'\n';
    let mut acc: Vec<u8> = Vec::new(); // the bytes [pos, size)
    let mut pos = size;
    const BLOCK: u64 = 64 * 1024;
    loop {
        let from = pos.saturating_sub(BLOCK);
        let mut block = vec![0u8; (pos - from) as usize];
        file.read_exact_at(&mut block, from)
            .map_err(AuditError::io(path))?;
        block.extend_from_slice(&acc);
        acc = block;
        pos = from;
        if let Some(end) = acc.iter().rposition(|&b| b == b'\n') {
            if let Some(before) = acc[..end].iter().rposition(|&b| b == b'\n') {
                return Ok(Tail {
                    last: Some(acc[before + 1..end].to_vec()),
                    torn,
                });
            }
            if pos == 0 {
                return Ok(Tail {
                    last: Some(acc[..end].to_vec()),
                    torn,
                });
            }
        } else if pos == 0 {
            return Ok(Tail { last: None, torn });
        }
        if acc.len() > 2 * MAX_LINE {
            return Err(AuditError::BadLog {
                path: path.into(),
                why: format!("its last line is longer than {MAX_LINE} bytes"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tail_of(content: &[u8]) -> (Option<Vec<u8>>, bool) {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        let t = read_tail(&f, content.len() as u64, Path::new("t")).unwrap();
        (t.last, t.torn)
    }

    #[test]
    fn tail_finds_the_last_whole_line_and_torn_bytes() {
        assert_eq!(tail_of(b""), (None, false));
        assert_eq!(tail_of(b"a\n"), (Some(b"a".to_vec()), false));
        assert_eq!(tail_of(b"a\nbc\n"), (Some(b"bc".to_vec()), false));
        assert_eq!(tail_of(b"a\nbc\nde"), (Some(b"bc".to_vec()), true));
        assert_eq!(tail_of(b"abc"), (None, true));
        let long = [
            vec![b'x'; 200_000],
            b"\n".to_vec(),
            vec![b'y'; 150_000],
            b"\n".to_vec(),
        ]
        .concat();
        assert_eq!(tail_of(&long), (Some(vec![b'y'; 150_000]), false));
    }

    #[test]
    fn segment_names_never_collide_between_ids() {
        let d = Path::new("/l");
        let a = LogFiles::new(d, "a").unwrap();
        let b = LogFiles::new(d, "a.jsonl").unwrap();
        assert_eq!(a.segment_path(1), PathBuf::from("/l/a.jsonl.1"));
        assert_ne!(b.segment_path(0), a.segment_path(1));
        assert_eq!(LogFiles::from_path(&a.segment_path(3)).unwrap(), a);
        assert_eq!(LogFiles::from_path(&b.segment_path(0)).unwrap(), b);
        assert!(LogFiles::new(d, "../x").is_err());
    }
}
