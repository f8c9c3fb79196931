//! Agent sandboxes' lifecycle on top of the planner and the engine: a `Launch` turns the
//! CLI's request into a planned sandbox on disk (skeleton root, bundle, engine state) and runs
//! it; `run` is its own monitor in the foreground, `monitor` is the detached one of `lasso up`
//! (PTY master, attach socket, reaping, record, cleanup); `record` is the sandbox's record
//! under `Dirs.runtime/<id>/`; `attach` is the terminal side of the attach socket.
//!
//! It owns `Dirs.runtime/<id>/` and the engine state root `Dirs.runtime/engine`. It never
//! mounts on the host (every mount happens in the sandbox's own mount namespace, which dies with
//! it) and never reads profiles itself: the CLI hands it a `PlanInput`.

pub mod attach;
pub mod audit_log;
pub mod control;
mod footprint;
mod gate_counts;
pub mod gate_decider;
pub mod gate_link;
pub mod gated_exec;
pub mod launch;
pub mod monitor;
pub mod network;
mod network_audit;
pub mod profile;
pub mod program_hashes;
mod program_witness;
pub mod record;
pub mod run;
pub mod signals;
mod skeleton_etc;
mod tree;

pub use launch::{Launch, LaunchOptions};
pub use record::{Record, SandboxState};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error(transparent)]
    Engine(#[from] crate::engine::container::ContainerError),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("no sandbox {id}: `lasso status` lists the running ones")]
    NotFound { id: String },
    #[error("sandbox {id} is not running (its monitor exited); its leftovers were removed")]
    NotRunning { id: String },
    #[error("{path}: a mount is still present below it; refusing to delete (unmount it first)")]
    MountedTree { path: PathBuf },
    #[error("{0}")]
    Protocol(String),
    #[error("audit log: {0}")]
    Audit(String),
    #[error("{0}")]
    Refused(String),
    /// Limits demanded on the command line that this host cannot enforce (the host's
    /// shortcoming, not the user's input).
    #[error("{0}")]
    Unenforceable(String),
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

pub(crate) fn sys_err(what: impl Into<String>) -> impl FnOnce(nix::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Sys { what, source }
}
