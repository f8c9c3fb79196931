//! The exec gate: every `execve`/`execveat` in a sandbox is stopped by a seccomp user-notification
//! filter, identified (path, device and inode, content hash, busybox applet, shebang chain, ld.so
//! target, memfd), decided by an [`ExecDecider`] and answered; then, at the exec event itself, the
//! image the kernel really loaded is compared with what was allowed and a mismatch is decided again
//! and killed before it runs an instruction when it is blocked. Every outcome goes to an [`ExecAudit`].
//!
//! This module owns the notification filter, the listener hand-over, the notification workers and
//! the ptrace exec verifier (which traces an exec-ing thread from its notification to its exec
//! event only; see `trace` for why that is race-free). It must not decide policy (the decider does) nor write the audit log (the
//! sink does), and it knows nothing of the engine: the engine calls [`install_in_child`] in init,
//! and the monitor calls [`Monitor::start`].

mod crew;
mod filter;
mod formats;
mod identity;
mod memo;
mod monitor;
mod notify;
mod offpath;
mod procmem;
mod resolve;
mod trace;

use std::path::PathBuf;

pub use filter::{ack_traced, install_in_child, recv_listener, send_listener};
pub use identity::{Interpreter, LoaderTarget, LOADER_PATHS};
pub use monitor::{GateStats, Monitor, Prepared, Remains};

/// Errors of the exec gate. Each names the system call or file that failed and, where the caller
/// can do something, what.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("installing the exec gate's seccomp filter failed: {0} (needs kernel 5.0+ with seccomp user notification, and no_new_privs or CAP_SYS_ADMIN)")]
    Install(#[source] std::io::Error),
    #[error("handing the seccomp listener to the monitor failed during {step}: {source}")]
    Handoff {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the exec gate could not watch pid {pid}: {source} (it must still be running when the monitor starts)")]
    Seize {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("the exec gate's {thread} thread failed: {source}")]
    Thread {
        thread: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the exec gate's {0} thread panicked")]
    Panicked(&'static str),
}

/// What the gate knows about the file an exec would run (or ran).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExeIdentity {
    /// The file as resolved in the target's view (symlinks followed), for humans and path rules.
    pub resolved: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// SHA-256 of the content, for files on writable mounts and memfds: a copy or rename of a
    /// blocked binary keeps its content. `None` on read-only mounts, where no copy can appear.
    pub sha256: Option<[u8; 32]>,
    /// The applet a multi-call binary (busybox, toybox) will run: `argv[0]`'s basename, or
    /// `argv[1]` when called as `busybox APPLET`.
    pub applet: Option<String>,
    /// The `#!` chain of a script, outermost first; each interpreter is decided too.
    pub interpreters: Vec<Interpreter>,
    /// When the file is the dynamic loader run as a command (`ld.so /usr/bin/rm`): the program
    /// it will map without an exec of its own.
    pub loader_target: Option<LoaderTarget>,
    /// The file is an anonymous memory file (`memfd_create` + `fexecve`).
    pub memfd: bool,
}

/// One exec the sandbox attempted (at the notification) or performed (at the exec event). The
/// decider sees `pid`, `path`, `exe` and `argv`; `ppid`, `uid` and `cwd` are filled in for the
/// audit after the decision (at the exec event, while the thread is traced) and must not be
/// relied on by a decider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// Thread id of the caller, in the monitor's pid namespace.
    pub pid: i32,
    pub ppid: i32,
    /// Effective uid of the caller.
    pub uid: u32,
    /// Working directory of the caller, as the monitor sees it.
    pub cwd: PathBuf,
    /// The path exactly as passed to `execve`, or as reconstructed at the exec event.
    pub path: Vec<u8>,
    pub exe: ExeIdentity,
    pub argv: Vec<Vec<u8>>,
}

/// The decider's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateVerdict {
    pub allow: bool,
    /// One line for humans; shown to the agent on refusal (`lasso: blocked: REASON`).
    pub reason: String,
    /// The policy rule that matched, if any.
    pub rule: Option<String>,
}

impl GateVerdict {
    pub fn allow(reason: impl Into<String>, rule: Option<String>) -> Self {
        GateVerdict {
            allow: true,
            reason: reason.into(),
            rule,
        }
    }
    pub fn block(reason: impl Into<String>, rule: Option<String>) -> Self {
        GateVerdict {
            allow: false,
            reason: reason.into(),
            rule,
        }
    }
}

/// What finally happened to an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecOutcome {
    /// The kernel loaded the image and the gate let it run.
    Ran,
    /// Refused at the notification: the caller's `execve` failed with `EACCES`.
    Refused,
    /// The image the kernel loaded differed from the allowed one and was blocked on a second
    /// decision: the process was killed (SIGKILL) at the exec event, before its first instruction.
    KilledMismatch,
}

/// The policy, as the gate sees it. Called from the gate's threads; must not block for long,
/// since the caller is stopped meanwhile.
pub trait ExecDecider: Send + Sync {
    fn decide(&self, req: &ExecRequest) -> GateVerdict;

    /// Whether an allowed answer depends on nothing but `path`, `argv` and `exe` (not on the
    /// pid, the time or anything that changes while the sandbox runs): the gate may then keep
    /// it and answer a repeated exec of the same command line on the same unchanged file
    /// without asking again (see the gate's decision memo). Blocked answers are never kept.
    fn memoizable(&self) -> bool {
        false
    }
}

/// Where the gate reports every exec: one call per refused, run or killed exec.
pub trait ExecAudit: Send + Sync {
    fn exec(&self, req: &ExecRequest, verdict: &GateVerdict, outcome: ExecOutcome);
}
