//! What `verify` tells: the classes of damage, the first damage found, and the report.

use crate::audit::files::LogFiles;
use std::fmt;

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
