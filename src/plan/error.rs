//! Every way planning refuses its input. Each message names the offending value (flag, file and
//! line, path) and says how to fix it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("--dir {path}: no such directory; pass an existing project directory")]
    WorkspaceMissing { path: PathBuf },

    #[error("--dir {path}: not a directory; pass the project directory, not a file")]
    WorkspaceNotDir { path: PathBuf },

    #[error(
        "--dir {path}: cannot read it ({source}); fix its permissions or pick another directory"
    )]
    WorkspaceUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "--dir {path}: refusing it as the workspace: {what}; pass a project directory, or add \
         --force-dir if you really mean it"
    )]
    WorkspaceTooBroad { path: PathBuf, what: String },

    #[error(
        "--dir {path}: the directory is owned by host {kind} 0 (root), and lasso never maps the agent to \
         host root; chown it to an unprivileged user (chown -R USER:GROUP {path}) or use a directory \
         owned by one"
    )]
    RootOwnedWorkspace { path: PathBuf, kind: &'static str },

    #[error(
        "--dir {path}: the directory is owned by host root, and lasso never maps the agent to host \
         root; it would reach it through an idmapped mount, but this host cannot make one here \
         ({reason}); chown it to an unprivileged user (chown -R USER:GROUP {path}) or use a \
         directory owned by one"
    )]
    RootOwnedWorkspaceNoIdmap { path: PathBuf, reason: String },

    #[error(
        "--dir {path} is owned by root, so the agent would run as host uid/gid {id}, but account \
         {name:?} has that ID; chown the directory to an unprivileged user instead"
    )]
    AgentIdTaken {
        path: PathBuf,
        id: u32,
        name: String,
    },

    #[error("lasso is running as uid {uid} gid {gid}; the agent never maps to host root or group 0: run lasso as an unprivileged user whose primary group is not 0")]
    RootIdentity { uid: u32, gid: u32 },

    #[error(transparent)]
    Mount(#[from] MountError),

    #[error(transparent)]
    Env(#[from] EnvError),

    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("--ssh-agent: SSH_AUTH_SOCK is not set or its socket {path} does not exist; start an ssh-agent or drop --ssh-agent")]
    NoSshAgent { path: String },

    #[error("no random bytes for the sandbox id: {0}")]
    Random(String),

    #[error("agent {agent}: no binary found on PATH (looked for {binaries}); install it, or pass a command after --")]
    AgentNotInstalled { agent: String, binaries: String },

    #[error("the planned OCI spec is invalid: {0}")]
    Spec(String),
}

/// A `--mount` value, or a profile path, that planning refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error("{flag} {value:?}: expected SRC:DST or SRC:DST:ro (or :rw), with absolute paths")]
    Syntax { flag: String, value: String },

    #[error("{flag} {value:?}: {which} path {path:?} is relative; use an absolute path (e.g. \"$PWD/{path}\")")]
    Relative {
        flag: String,
        value: String,
        which: &'static str,
        path: String,
    },

    #[error("{flag} {value:?}: unknown mode {mode:?}; use ro or rw")]
    Mode {
        flag: String,
        value: String,
        mode: String,
    },

    #[error("{flag} {value:?}: destination {dest} contains \"..\"; name the destination directly")]
    DotDot {
        flag: String,
        value: String,
        dest: String,
    },

    #[error("{flag} {value:?}: source {source_path} does not exist; create it or fix the path")]
    SourceMissing {
        flag: String,
        value: String,
        source_path: PathBuf,
    },

    #[error(
        "{flag} {value:?}: source {source_path} is sensitive ({reason}); mount something narrower, or \
         pass --allow-sensitive if the sandbox really needs it"
    )]
    Sensitive {
        flag: String,
        value: String,
        source_path: PathBuf,
        reason: String,
    },

    #[error(
        "{flag} {value:?}: destination {dest} is {reason}; mount somewhere else, e.g. under /mnt or \
         /workspace"
    )]
    ReservedDestination {
        flag: String,
        value: String,
        dest: String,
        reason: &'static str,
    },

    #[error("{flag} {value:?}: destination {dest} is already used by {other}; give each mount its own destination")]
    Conflict {
        flag: String,
        value: String,
        dest: String,
        other: String,
    },
}

/// `--env`, `--pass-env` or `--env-file` input that planning refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("--env {value:?}: expected KEY=VALUE")]
    MissingEquals { value: String },

    #[error("{origin}: {key:?} is not a valid variable name; use letters, digits and _, not starting with a digit")]
    BadKey { origin: String, key: String },

    #[error("--pass-env {key}: {key} is not set in lasso's environment; set it, or drop the flag")]
    NotSet { key: String },

    #[error("--env-file {path}: cannot read it ({reason}); fix the path or its permissions")]
    FileUnreadable { path: PathBuf, reason: String },

    #[error("{path}:{line}: {problem}; lines are KEY=VALUE, KEY (taken from lasso's environment), or # comments")]
    FileLine {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}
