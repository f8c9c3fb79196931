//! The sandbox's audit log, written by its monitor (`lasso run` itself, or the detached monitor
//! of `up`): genesis, `sandbox.start` once init runs, `sandbox.stop` with the exit status, then
//! the seal. The writer is opened only after the engine cloned init: it runs a flush thread,
//! and a process cloned from a threaded parent must not allocate (the malloc lock may be held).
//! The genesis records the profile's name and `ResolvedProfile::digest()`; a sandbox started
//! without a profile (library callers) records the SHA-256 of its effective Spec instead.

use super::launch::Launch;
use super::SandboxError;
use crate::audit::{Event, Genesis, KeyRing, Kind, Outcome, Writer};
use sha2::Digest;

fn err(e: crate::audit::AuditError) -> SandboxError {
    SandboxError::Audit(e.to_string())
}

/// Opens the log of `launch` and records its start.
pub fn start(launch: &Launch, init_pid: i32) -> Result<Writer, SandboxError> {
    let dirs = &launch.dirs;
    let ring = KeyRing::open(&dirs.config).map_err(err)?;
    let record = launch.record();
    let digest = match &launch.profile {
        Some(_) => format!("sha256:{}", launch.profile_digest()),
        None => {
            format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(launch.spec_json()))
            )
        }
    };
    let mut genesis = Genesis::new(launch.id(), record.profile.clone(), digest);
    genesis.agent = Some(record.agent.clone());
    let w = Writer::create(&dirs.audit_logs, &ring, genesis).map_err(err)?;
    let details = serde_json::json!({
        "dir": record.dir,
        "init_pid": init_pid,
        "network": launch.planned.network.as_str(),
        "command": launch.planned.spec.process().as_ref().and_then(|p| p.args().clone()),
    });
    w.append(
        Event::new(Kind::SandboxStart, Outcome::Info, "sandbox started").with_details(details),
    )
    .map_err(err)?;
    Ok(w)
}

/// Records the end and seals the log once the gate's sink let go of the writer.
pub fn stop_shared(w: std::sync::Arc<Writer>, status: i32) -> Result<(), SandboxError> {
    match std::sync::Arc::try_unwrap(w) {
        Ok(w) => stop(w, status),
        Err(w) => {
            // A gate thread still holds it (it failed to stop): record the end unsealed.
            w.append(stop_event(status)).map_err(err)?;
            w.sync().map_err(err)
        }
    }
}

/// `stop_shared`, with the seal's last flush left to the log's flusher thread while the caller
/// goes on: the log is durable once [`Stopping::wait`] returned Ok.
pub fn stop_shared_in_background(
    w: std::sync::Arc<Writer>,
    status: i32,
) -> Result<Stopping, SandboxError> {
    match std::sync::Arc::try_unwrap(w) {
        Ok(w) => {
            w.append(stop_event(status)).map_err(err)?;
            Ok(Stopping(Some(w.seal_in_background().map_err(err)?)))
        }
        Err(w) => stop_shared(w, status).map(|()| Stopping(None)),
    }
}

/// A log being sealed (`stop_shared_in_background`).
pub struct Stopping(Option<crate::audit::Sealing>);

impl Stopping {
    /// Returns once the log is sealed and durable.
    pub fn wait(self) -> Result<(), SandboxError> {
        match self.0 {
            Some(s) => s.wait().map(drop).map_err(err),
            None => Ok(()),
        }
    }
}

fn stop_event(status: i32) -> Event {
    Event::new(
        Kind::SandboxStop,
        Outcome::Info,
        format!("exit status {status}"),
    )
    .with_details(serde_json::json!({ "status": status }))
}

/// Records the end (exit status as a shell reports it) and seals the log.
pub fn stop(w: Writer, status: i32) -> Result<(), SandboxError> {
    w.append(stop_event(status)).map_err(err)?;
    w.seal().map_err(err)?;
    Ok(())
}

/// A slot for the sandbox's log that may be filled after entries arrive: entries made before
/// `set_writer` wait in a backlog and are written, in order, when the log is attached. The exec
/// gate's and the network's audit sinks both need this (the writer is opened only after init
/// is cloned, see the module docs).
pub struct PendingLog {
    /// What the entries are, for the warning when one cannot be written.
    what: &'static str,
    writer: std::sync::Mutex<Option<std::sync::Arc<Writer>>>,
    backlog: std::sync::Mutex<Vec<Event>>,
}

impl PendingLog {
    pub fn new(what: &'static str, writer: Option<std::sync::Arc<Writer>>) -> PendingLog {
        PendingLog {
            what,
            writer: std::sync::Mutex::new(writer),
            backlog: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Attaches the log and writes what waited for it.
    pub fn set_writer(&self, w: std::sync::Arc<Writer>) {
        let mut slot = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
        for e in backlog.drain(..) {
            if let Err(err) = w.append(e) {
                tracing::warn!("audit: {} entry: {err}", self.what);
            }
        }
        *slot = Some(w);
    }

    /// Lets go of the log (so that its owner can seal it).
    pub fn take_writer(&self) -> Option<std::sync::Arc<Writer>> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// What waits for a log that will never come (it could not be opened), for the error.
    pub fn abandon(&self) -> Vec<Event> {
        std::mem::take(&mut *self.backlog.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Writes `event` now, or keeps it until the log is attached.
    pub fn write(&self, event: Event) {
        let slot = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(w) => {
                if let Err(e) = w.append(event) {
                    tracing::warn!("audit: {} entry: {e}", self.what);
                }
            }
            None => self
                .backlog
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(event),
        }
    }
}

/// The error of a sandbox killed because its log could not be opened, naming the execs that
/// its gate let run meanwhile (`unrecorded`: the gate sink's backlog), since they are in no log.
pub fn unopened(e: SandboxError, unrecorded: &[Event]) -> SandboxError {
    if unrecorded.is_empty() {
        return e;
    }
    let argv: Vec<String> = unrecorded
        .iter()
        .map(|ev| {
            let words: Vec<&str> = ev.details["argv"]
                .as_array()
                .map(|a| a.iter().filter_map(|w| w.as_str()).collect())
                .unwrap_or_default();
            format!(
                "{} ({})",
                words.join(" "),
                ev.details["result"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let why = match e {
        SandboxError::Audit(why) => why,
        other => other.to_string(),
    };
    SandboxError::Audit(format!(
        "{why}; the sandbox was killed, after its gate had let these execs through unrecorded: {}",
        argv.join("; ")
    ))
}
