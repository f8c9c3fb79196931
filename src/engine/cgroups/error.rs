//! The cgroup layer's error type: every variant names the file or spec field, and the fix.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

/// Errors of the cgroup layer; each names the file or field and what to change.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup hierarchy is mounted (nothing of type cgroup or cgroup2 in /proc/self/mountinfo)")]
    NoHierarchy,
    #[error("annotation {annotation}={value:?}: {why}")]
    InvalidAnnotation {
        annotation: &'static str,
        value: String,
        why: String,
    },
    #[error("invalid linux.cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: PathBuf, reason: String },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error(
        "cannot create cgroup {path}: {source} (run as root, or delegate the cgroup to this user)"
    )]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot remove cgroup {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("linux.resources.{field} is set but {why}")]
    Unsupported { field: String, why: String },
    #[error("linux.resources.{field} has an invalid value: {why}")]
    InvalidValue { field: String, why: String },
    #[error("linux.resources asks for limits but cgroups are disabled for this container ({reason}); delegate a writable cgroup to this user or drop linux.resources")]
    Disabled { reason: String },
    #[error("cgroup {path} did not reach state {state} within {waited:?}")]
    Timeout {
        path: PathBuf,
        state: &'static str,
        waited: Duration,
    },
    #[error("cannot send {signal} to pid {pid} of cgroup {path}: {source}")]
    Signal {
        path: PathBuf,
        pid: i32,
        signal: Signal,
        source: nix::Error,
    },
}
