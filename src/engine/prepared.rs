//! The parts of a process's hardening that can be checked and compiled before anything is
//! forked: capability masks, the seccomp program, rlimits. Doing it in the runtime means a bad
//! field fails `create` with a message naming it, before a namespace exists, and init only
//! makes system calls with them.

use super::capabilities::{self, CapSets, CapsError};
use super::rlimits::{self, RlimitError};
use super::seccomp::{self, Filters, SeccompError};
use oci_spec::runtime::{Linux, PosixRlimit, Process};

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Caps(#[from] CapsError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(transparent)]
    Rlimit(#[from] RlimitError),
}

/// A process's hardening, ready to apply.
#[derive(Debug, Default)]
pub struct Prepared {
    pub caps: Option<CapSets>,
    pub seccomp: Option<Filters>,
    /// lasso's built-in baseline, installed as a second filter beside the Spec's own: the
    /// kernel runs both and the stricter action wins for every call (seccomp(2), "multiple
    /// filters"), which is exactly the merge a `run.lasso.profile` container asks for.
    pub baseline: Option<&'static Filters>,
    pub rlimits: Vec<PosixRlimit>,
}

impl Prepared {
    pub fn new(process: &Process, linux: Option<&Linux>) -> Result<Prepared, PrepareError> {
        let caps = match process.capabilities() {
            Some(c) => Some(CapSets::from_spec(c)?),
            None => None,
        };
        let seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(seccomp::compile_or_builtin(s)?),
            None => None,
        };
        let rlimits = process.rlimits().clone().unwrap_or_default();
        rlimits::validate(&rlimits)?;
        Ok(Prepared {
            caps,
            seccomp,
            baseline: None,
            rlimits,
        })
    }

    /// Adds lasso's seccomp baseline (see `baseline`) when `on`.
    pub fn with_baseline(mut self, on: bool) -> Result<Prepared, PrepareError> {
        if on {
            self.baseline = Some(seccomp::default_filters()?);
        }
        Ok(self)
    }

    pub fn apply_rlimits(&self) -> Result<(), RlimitError> {
        rlimits::apply(&self.rlimits)
    }

    /// KEEPCAPS before the uid switch, so the permitted set survives it.
    pub fn before_setuid(&self) -> Result<(), CapsError> {
        if self.caps.is_some() {
            capabilities::prepare_for_setuid()?;
        }
        Ok(())
    }

    pub fn apply_caps(&self) -> Result<(), CapsError> {
        match &self.caps {
            Some(c) => c.apply(),
            None => Ok(()),
        }
    }

    pub fn apply_seccomp(&self) -> Result<(), SeccompError> {
        if let Some(b) = self.baseline {
            seccomp::install(b)?;
        }
        match &self.seccomp {
            Some(f) => seccomp::install(f),
            None => Ok(()),
        }
    }
}
