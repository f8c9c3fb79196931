//! The one error type the `lasso` CLI shows to people: what went wrong, and how to fix it.

use std::fmt;

/// Exit statuses of `lasso`, documented in the README.
pub mod exit {
    /// Success; for `why`, the command is allowed; for `audit verify`, the log is intact.
    pub const OK: u8 = 0;
    /// A negative verdict: `why` says blocked, `audit verify` found damage.
    pub const NEGATIVE: u8 = 1;
    /// Usage or configuration error: bad flags, a profile that does not load, bad input.
    pub const USAGE: u8 = 2;
    /// lasso itself failed (the host lacks a feature, a system call failed).
    pub const FAILURE: u8 = 125;
    /// The command was refused by the policy (`lasso exec`, `lasso run`).
    pub const BLOCKED: u8 = 126;
}

/// An error for a person: a message naming the problem, an optional fix, and the exit status.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    pub code: u8,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
            code,
        }
    }

    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(exit::USAGE, message)
    }

    /// A failure of lasso or the host (exit 125).
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(exit::FAILURE, message)
    }

    /// Adds the one-line fix that is printed under the message.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lasso: error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Library errors reach the user through their `Display` chain; the exit status says the class.
impl From<anyhow::Error> for CliError {
    fn from(err: anyhow::Error) -> Self {
        CliError::failure(format!("{err:#}"))
    }
}

pub type CliResult<T = u8> = Result<T, CliError>;
