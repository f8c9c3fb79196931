//! OCI hooks: runs each hook of one kind with the container state JSON on its stdin, its own
//! argv and environment, and its timeout (SIGKILL on expiry). It owns the hook processes it
//! starts and nothing else; where in the lifecycle each kind runs, and in which namespaces, is
//! the caller's business.
//!
//! Output goes to an anonymous memory file rather than a pipe: a hook that leaves a daemon
//! holding its stdout open cannot make the runtime wait forever, and the error can still quote
//! the tail of what the hook printed.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use oci_spec::runtime::{Hook, State};

/// The six hook points of the OCI runtime spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hooks.{kind}[{index}] {path}: timeout must be greater than zero (got {timeout})")]
    BadTimeout {
        kind: HookKind,
        index: usize,
        path: PathBuf,
        timeout: i64,
    },
    #[error("hooks.{kind}[{index}] {path}: path must be absolute")]
    RelativePath {
        kind: HookKind,
        index: usize,
        path: PathBuf,
    },
    #[error("hooks.{kind}[{index}] {path} could not be started: {source}")]
    Spawn {
        kind: HookKind,
        index: usize,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("hooks.{kind}[{index}] {path} {status}{}", tail_note(.output))]
    Failed {
        kind: HookKind,
        index: usize,
        path: PathBuf,
        status: String,
        output: String,
    },
    #[error("hooks.{kind}[{index}] {path} did not finish within its timeout of {timeout}s and was killed{}", tail_note(.output))]
    Timeout {
        kind: HookKind,
        index: usize,
        path: PathBuf,
        timeout: i64,
        output: String,
    },
    #[error("hooks.{kind}: {what} failed: {source}")]
    Io {
        kind: HookKind,
        what: &'static str,
        source: std::io::Error,
    },
}

fn tail_note(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!("; its output ended with: {output}")
    }
}

/// How much of a failed hook's output an error quotes.
const TAIL: usize = 1024;

/// Runs `hooks` in order; stops at the first failure except for `Poststop`, where the spec
/// asks for every hook to run (the first error is still returned, for the caller to log).
pub fn run(kind: HookKind, hooks: &[Hook], state: &State) -> Result<(), HookError> {
    let json = serde_json::to_vec(state).map_err(|e| HookError::Io {
        kind,
        what: "serialising the state",
        source: e.into(),
    })?;
    let mut first = None;
    for (index, hook) in hooks.iter().enumerate() {
        if let Err(e) = run_one(kind, index, hook, &json) {
            if kind != HookKind::Poststop {
                return Err(e);
            }
            tracing::warn!("{e}");
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

fn run_one(kind: HookKind, index: usize, hook: &Hook, state: &[u8]) -> Result<(), HookError> {
    let path = hook.path().clone();
    if !path.is_absolute() {
        return Err(HookError::RelativePath { kind, index, path });
    }
    if let Some(t) = hook.timeout().filter(|t| *t <= 0) {
        return Err(HookError::BadTimeout {
            kind,
            index,
            path,
            timeout: t,
        });
    }
    let io = |what, source| HookError::Io { kind, what, source };
    let out: OwnedFd =
        rustix::fs::memfd_create("lasso-hook-output", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(|e| io("creating the output buffer", e.into()))?;
    let mut cmd = Command::new(&path);
    if let Some(args) = hook.args().as_ref().filter(|a| !a.is_empty()) {
        cmd.arg0(&args[0]).args(&args[1..]);
    }
    // As runc: a hook without `env` inherits the runtime's environment.
    if let Some(env) = hook.env() {
        cmd.env_clear();
        for kv in env {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            cmd.env(k, v);
        }
    }
    let dup = |fd: &OwnedFd| {
        fd.try_clone()
            .map_err(|e| io("duplicating the output buffer", e))
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::from(dup(&out)?))
        .stderr(Stdio::from(dup(&out)?));
    let mut child = cmd.spawn().map_err(|source| HookError::Spawn {
        kind,
        index,
        path: path.clone(),
        source,
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // Written from a thread so that a hook which never reads a state larger than the pipe
        // buffer still meets its timeout; a hook that exits without reading causes a broken
        // pipe, which is not an error.
        let state = state.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&state);
        });
    }
    let status = wait(&mut child, hook.timeout()).map_err(|e| io("waiting for the hook", e))?;
    let output = tail(out);
    match status {
        None => Err(HookError::Timeout {
            kind,
            index,
            path,
            timeout: hook.timeout().unwrap_or_default(),
            output,
        }),
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(HookError::Failed {
            kind,
            index,
            path,
            status: describe(s),
            output,
        }),
    }
}

fn describe(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (_, Some(sig)) => format!("was killed by signal {sig}"),
        _ => format!("ended with {s}"),
    }
}

/// Waits for `child`; `None` when the timeout expired (the child is then killed and reaped).
fn wait(child: &mut Child, timeout: Option<i64>) -> std::io::Result<Option<ExitStatus>> {
    let Some(secs) = timeout else {
        return child.wait().map(Some);
    };
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a child has a pid");
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
    let deadline = Instant::now() + Duration::from_secs(secs as u64);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => continue,
            Ok(_) => return child.wait().map(Some),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    // The pidfd names this very process, so the kill cannot hit a recycled pid.
    let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
    child.wait()?;
    Ok(None)
}

fn tail(fd: OwnedFd) -> String {
    let mut f = std::fs::File::from(fd);
    let len = f.seek(SeekFrom::End(0)).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL as u64)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).trim().to_owned()
}
