//! The audit module's one error type. Every variant names the file involved and, where a person
//! can act on it, the fix.

use std::path::PathBuf;

/// What can go wrong while keeping, writing or reading an audit log. Damage found in a log is not
/// an error: [`crate::audit::verify`] reports it in a [`crate::audit::VerifyReport`].
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "no audit key at {path}: logs can only be verified with the key they were written with; \
         copy that key there (mode 0600) or point --config-dir/LASSO_CONFIG_DIR at the directory holding it"
    )]
    MissingKey { path: PathBuf },

    #[error("audit key {path} holds {len} bytes, but an audit key is exactly 32 bytes; restore the original file")]
    BadKeyLength { path: PathBuf, len: u64 },

    #[error("audit key {path} is readable or writable by other users (mode {mode:04o}); fix it with `chmod 600 {path}`")]
    KeyPermissions { path: PathBuf, mode: u32 },

    #[error("invalid sandbox id {id:?}: {why}")]
    InvalidSandboxId { id: String, why: &'static str },

    #[error("audit event: {0}")]
    InvalidEvent(String),

    #[error(
        "audit entry of {len} bytes is over the {max}-byte limit of one line; shorten its details"
    )]
    EntryTooLarge { len: usize, max: usize },

    #[error("audit log {path} is sealed and takes no more entries")]
    Sealed { path: PathBuf },

    #[error(
        "audit log {path} ends with a torn line (a writer died mid-write); run `lasso audit verify {path}` \
         and move the log aside before writing to this sandbox id again"
    )]
    TornTail { path: PathBuf },

    #[error("audit log {path} was written with key {key_id}, which is not in the key ring; restore that key into the key ring directory")]
    UnknownKey { path: PathBuf, key_id: String },

    #[error("audit log {path}: {why}")]
    BadLog { path: PathBuf, why: String },

    #[error("no audit log at {path}; `lasso audit list` shows the logs there are")]
    NotFound { path: PathBuf },
}

impl AuditError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AuditError {
        let path = path.into();
        move |source| AuditError::Io { path, source }
    }
}
