//! The tamper-evident audit log: an HMAC-SHA256 hash chain written by one writer per sandbox and
//! read by `lasso audit verify|view|list` and the dashboard. It owns the key ring, the log and
//! head files and their canonical format (specified in the README's "Audit log" section). It must
//! not depend on the engine, the policy or the CLI: they call in, never the reverse.

mod canon;
mod error;
mod event;
mod files;
mod head;
mod keys;
mod line;
mod read;
mod verify;
mod writer;

pub use error::AuditError;
pub use event::{Event, ExecDetails, Genesis, Kind, Outcome};
pub use files::{list_logs, read_head, Head, HeadState, LogFiles};
pub use keys::{Key, KeyRing};
pub use line::MAX_LINE;
pub use read::{summarize, Entry, EntryReader, LogSummary};
pub use verify::{verify, Damage, DamageClass, VerifyReport};
pub use writer::{SealedLog, Sealing, Writer, WriterOptions, FLUSH_INTERVAL};
