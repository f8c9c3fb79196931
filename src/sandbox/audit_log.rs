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

/// What opening a sandbox's log needs, taken from its launch on the caller's thread, so that the
/// opening itself (the key, the genesis entry, the file, the flush thread: ~0.5 ms) can run
/// while init sets up (`open_during_create`) instead of after `start`, where init waits for it
/// at the exec gate's hand-over.
pub struct LogOpening {
    config: std::path::PathBuf,
    logs: std::path::PathBuf,
    genesis: Genesis,
}

impl LogOpening {
    pub fn of(launch: &Launch) -> LogOpening {
        let record = launch.record();
        let digest = match &launch.profile {
            Some(p) => format!("sha256:{}", p.digest()),
            None => {
                let spec = std::fs::read(launch.bundle().join("config.json")).unwrap_or_default();
                format!("sha256:{}", hex::encode(sha2::Sha256::digest(&spec)))
            }
        };
        let mut genesis = Genesis::new(launch.id(), record.profile.clone(), digest);
        genesis.agent = Some(record.agent.clone());
        LogOpening {
            config: launch.dirs.config.clone(),
            logs: launch.dirs.audit_logs.clone(),
            genesis,
        }
    }

    /// Opens (or continues) the log and writes its genesis entry.
    pub fn open(self) -> Result<Writer, SandboxError> {
        let ring = KeyRing::open(&self.config).map_err(err)?;
        Writer::create(&self.logs, &ring, self.genesis).map_err(err)
    }
}

/// Records the sandbox's start (init's pid, the command) in a log opened by `LogOpening`.
pub fn record_start(w: &Writer, launch: &Launch, init_pid: i32) -> Result<(), SandboxError> {
    let record = launch.record();
    let details = serde_json::json!({
        "dir": record.dir,
        "init_pid": init_pid,
        "network": launch.planned.network.as_str(),
        "command": launch.planned.spec.process().as_ref().and_then(|p| p.args().clone()),
    });
    w.append(Event::new(Kind::SandboxStart, Outcome::Info, "sandbox started").with_details(details))
        .map_err(err)
}

/// Opens the log of `launch` and records its start.
pub fn start(launch: &Launch, init_pid: i32) -> Result<Writer, SandboxError> {
    let w = LogOpening::of(launch).open()?;
    record_start(&w, launch, init_pid)?;
    Ok(w)
}

/// Has `create` open the sandbox's log on its own thread while init sets up (see
/// `AfterClone::meanwhile`); `PendingLog::take` after `create` gets it.
pub fn open_during_create(
    launch: &Launch,
    after_clone: &crate::engine::container::AfterClone,
) -> OpeningLog {
    let opening = LogOpening::of(launch);
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    after_clone.meanwhile(move || {
        let _ = tx.send(opening.open());
    });
    OpeningLog(rx)
}

/// The log `create` opens (`open_during_create`).
pub struct OpeningLog(std::sync::mpsc::Receiver<Result<Writer, SandboxError>>);

impl OpeningLog {
    /// After `create`: the log it opened, or none if it failed before it came to that (the
    /// task was dropped unrun). An error opening the log is returned.
    pub fn take(self) -> Result<EarlyLog, SandboxError> {
        Ok(EarlyLog(self.0.recv().ok().transpose()?))
    }
}

/// The sandbox's log when `create` opened it (`open_during_create`), until `started` records
/// the start. Should the sandbox fail before that, the log records why and is sealed (`fail`,
/// or when dropped), so it ends as a verifiable record of the failure rather than a bare genesis.
pub struct EarlyLog(Option<Writer>);

impl EarlyLog {
    /// Records the sandbox's start in the log opened ahead, or opens the log now.
    pub fn started(mut self, launch: &Launch, init_pid: i32) -> Result<Writer, SandboxError> {
        match self.0.take() {
            Some(w) => {
                record_start(&w, launch, init_pid)?;
                Ok(w)
            }
            None => start(launch, init_pid),
        }
    }

    /// The sandbox did not start, because of `why`.
    pub fn fail(mut self, why: &SandboxError) {
        if let Some(w) = self.0.take() {
            end_unstarted(w, &format!("the sandbox did not start: {why}"));
        }
    }
}

impl Drop for EarlyLog {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            end_unstarted(w, "the sandbox did not start");
        }
    }
}

fn end_unstarted(w: Writer, why: &str) {
    let ended = w
        .append(Event::new(Kind::SandboxStop, Outcome::Error, why))
        .and_then(|_| w.seal().map(drop));
    if let Err(e) = ended {
        tracing::warn!("audit: the log of a sandbox that did not start: {e}");
    }
}

/// Records the end and seals the log once the gate's sink let go of the writer.
pub fn stop_shared(w: std::sync::Arc<Writer>, status: i32) -> Result<(), SandboxError> {
    match std::sync::Arc::try_unwrap(w) {
        Ok(w) => stop(w, status),
        Err(w) => {
            // A gate thread still holds it (it failed to stop): record the end unsealed.
            w.append(
                Event::new(
                    Kind::SandboxStop,
                    Outcome::Info,
                    format!("exit status {status}"),
                )
                .with_details(serde_json::json!({ "status": status })),
            )
            .map_err(err)?;
            w.sync().map_err(err)
        }
    }
}

/// Records the end (exit status as a shell reports it) and seals the log.
pub fn stop(w: Writer, status: i32) -> Result<(), SandboxError> {
    w.append(
        Event::new(
            Kind::SandboxStop,
            Outcome::Info,
            format!("exit status {status}"),
        )
        .with_details(serde_json::json!({ "status": status })),
    )
    .map_err(err)?;
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
