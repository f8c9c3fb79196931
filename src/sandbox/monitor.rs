//! The detached monitor of `lasso up`: one small process per sandbox, outside it, with no
//! daemon. `spawn` double-forks (the monitor is re-parented away from the terminal and leads
//! its own session), the monitor creates and starts the sandbox with a PTY, owns the PTY
//! master and the attach socket `Dirs.runtime/<id>/attach.sock`, keeps the last 64 KiB of
//! output for whoever attaches next, reaps init, and removes everything when init exits. The
//! CLI waits on a pipe until the monitor reports the sandbox started (or why it did not).
//! With a profile it also runs the exec gate (`gate_link`); init's status then comes from the
//! gate's tracer, which reaps it.

use super::attach::{self, FrameReader, DATA, EXIT, RESIZE};
use super::launch::Launch;
use super::record::SandboxState;
use super::signals::poll;
use super::{io_err, sys_err, SandboxError};
use crate::engine::container::wait_child;
use crate::engine::namespaces::pidfd_open;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};

/// Output kept for the next attach.
const REPLAY_BYTES: usize = 64 * 1024;

pub const ATTACH_SOCKET: &str = "attach.sock";
const CONSOLE_SOCKET: &str = "console.sock";

/// Starts the monitor for a prepared sandbox; returns once the sandbox runs. The monitor owns
/// `launch` from here; on failure everything is already removed.
pub fn spawn(launch: Launch) -> Result<(), SandboxError> {
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys_err("pipe"))?;
    // SAFETY: lasso is single-threaded here; the child only runs our own code before exiting.
    match unsafe { nix::unistd::fork() }.map_err(sys_err("fork the monitor"))? {
        nix::unistd::ForkResult::Child => {
            drop(ready_r);
            let _ = nix::unistd::setsid();
            // SAFETY: as above; the intermediate exits at once so the monitor is orphaned
            // (re-parented to init or the nearest subreaper) and can never regain a terminal.
            match unsafe { nix::unistd::fork() } {
                Ok(nix::unistd::ForkResult::Child) => {
                    let code = monitor_main(launch, ready_w);
                    // SAFETY: _exit skips atexit handlers inherited from the CLI.
                    unsafe { libc::_exit(code) }
                }
                // SAFETY: as above.
                _ => unsafe { libc::_exit(0) },
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(ready_w);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut msg = String::new();
            let _ = std::fs::File::from(ready_r).read_to_string(&mut msg);
            if msg == "ok" {
                Ok(())
            } else {
                launch.cleanup();
                Err(SandboxError::Refused(if msg.is_empty() {
                    "the sandbox's monitor exited before the sandbox started".into()
                } else {
                    msg
                }))
            }
        }
    }
}

fn report(ready: &mut Option<OwnedFd>, msg: &str) {
    if let Some(fd) = ready.take() {
        let _ = std::fs::File::from(fd).write_all(msg.as_bytes());
    }
}

/// Points stdin, stdout and stderr at /dev/null: a detached monitor (this one, or lasso-runc's
/// gate monitor) must not hold its caller's terminal or pipes open.
pub(crate) fn null_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn monitor_main(mut launch: Launch, ready: OwnedFd) -> i32 {
    let mut ready = Some(ready);
    null_stdio();
    let code = match serve(&mut launch, &mut ready) {
        Ok(code) => code,
        Err(e) => {
            report(&mut ready, &e.to_string());
            1
        }
    };
    launch.cleanup();
    code
}

fn serve(launch: &mut Launch, ready: &mut Option<OwnedFd>) -> Result<i32, SandboxError> {
    let dirs = launch.dirs.clone();
    let mut record = launch.record();
    record.save(&dirs)?;

    let console_path = launch.dir.join(CONSOLE_SOCKET);
    let console = UnixListener::bind(&console_path)
        .map_err(io_err(format!("bind {}", console_path.display())))?;
    // As in `run`: the gate's program scan runs beside init's setup.
    let start = super::gate_link::prepare_start(
        launch.profile.as_ref(),
        launch.profile_digest(),
        &launch.dir,
    )?;
    let (gate, scan) = (start.sockets, start.scan);
    let init = launch.create(
        Some(&console_path),
        gate.as_ref().map(|(_, i)| i.as_raw_fd()),
        Some(start.after_clone),
    )?;
    let gate = gate.map(|(mine, _init)| mine);
    let (conn, _) = console
        .accept()
        .map_err(io_err("accept on the console socket"))?;
    let master = attach::recv_fd(&conn)?;
    drop(console);
    let _ = std::fs::remove_file(&console_path);

    let attach_path = launch.dir.join(ATTACH_SOCKET);
    let listener = UnixListener::bind(&attach_path)
        .map_err(io_err(format!("bind {}", attach_path.display())))?;
    std::fs::set_permissions(&attach_path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("chmod attach socket"))?;
    let pidfd = pidfd_open(init).map_err(sys_err("pidfd_open of the sandbox's init"))?;
    // Egress is in place before the agent's first instruction: wired here (root) while init is
    // blocked, or (rootless) after start while init waits for the exec gate's go-ahead.
    let mut net = super::network::SandboxNet::new(&launch.egress, init, &launch.dir);
    net.before_start()?;
    launch.start()?;
    // As in `run`: the network before the gate's go-ahead, the gate before the log (its
    // entries wait for it), the log opened while init goes on to its execve.
    net.before_exec(gate.is_some())?;
    let (monitor, sink) = match (&gate, &launch.profile, scan) {
        (Some(sock), Some(profile), Some(scan)) => {
            match super::gate_link::attach_pending(sock, init, profile, scan, &launch.dir)? {
                Some((m, sink)) => (Some(m), Some(sink)),
                None => (None, None),
            }
        }
        _ => (None, None),
    };
    let log = match super::audit_log::start(launch, init) {
        Ok(w) => std::sync::Arc::new(w),
        Err(e) => {
            // No log, no sandbox: what init already ran was gated but is not recorded.
            let _ = crate::engine::namespaces::pidfd_signal(&pidfd, libc::SIGKILL);
            match monitor {
                Some(m) => drop(super::gate_link::finish(m, init)),
                None => drop(wait_child(init)),
            }
            net.finish();
            let unrecorded = sink.map(|s| s.abandon()).unwrap_or_default();
            return Err(super::audit_log::unopened(e, &unrecorded));
        }
    };
    net.set_writer(log.clone());
    if let Some(sink) = sink {
        sink.set_writer(log.clone());
    }
    record.init_pid = init;
    record.init_start = crate::engine::state::process_start_time(init).unwrap_or(0);
    record.state = SandboxState::Running;
    record.save(&dirs)?;
    report(ready, "ok");
    let status = pump(&master, &listener, &pidfd, init, monitor)?;
    net.finish();
    super::audit_log::stop_shared(log, status)?;
    Ok(status)
}

/// Moves bytes between the PTY master and the attached client until init exits.
fn pump(
    master: &OwnedFd,
    listener: &UnixListener,
    pidfd: &OwnedFd,
    init: i32,
    mut gate: Option<crate::gate::Monitor>,
) -> Result<i32, SandboxError> {
    let mut replay: VecDeque<u8> = VecDeque::new();
    let mut client: Option<(UnixStream, FrameReader)> = None;
    let mut buf = vec![0u8; 32 * 1024];
    let mut master_open = true;
    // A second into the sandbox's life, this monitor hands back its start-up pages.
    let mut shed = super::footprint::ShedTimer::start();
    loop {
        let cfd = client.as_ref().map_or(-1, |(s, _)| s.as_raw_fd());
        let mfd = if master_open { master.as_raw_fd() } else { -1 };
        let r = poll(
            &[pidfd.as_raw_fd(), mfd, listener.as_raw_fd(), cfd],
            shed.timeout_ms(),
        )?;
        shed.tick();
        if r[1] != 0 {
            match nix::unistd::read(master.as_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    replay.extend(&buf[..n]);
                    let excess = replay.len().saturating_sub(REPLAY_BYTES);
                    replay.drain(..excess);
                    if let Some((s, _)) = client.as_mut() {
                        if attach::write_frame(s, DATA, &buf[..n]).is_err() {
                            client = None;
                        }
                    }
                }
                // EIO once no slave is open; init's exit is seen through the pidfd.
                _ => master_open = false,
            }
        }
        if r[2] != 0 {
            if let Ok((mut s, _)) = listener.accept() {
                // The newest attach wins; the previous client is dropped (detached).
                let (a, b) = replay.as_slices();
                let ok = attach::write_frame(&mut s, DATA, &[a, b].concat()).is_ok();
                if ok {
                    client = Some((s, FrameReader::default()));
                }
            }
        }
        if r[3] != 0 {
            let mut gone = true;
            if let Some((s, frames)) = client.as_mut() {
                if let Ok(n) = s.read(&mut buf) {
                    if n > 0 {
                        gone = false;
                        frames.push(&buf[..n]);
                        while let Ok(Some((kind, p))) = frames.next_frame() {
                            match kind {
                                DATA => {
                                    let _ = nix::unistd::write(master, &p);
                                }
                                RESIZE if p.len() == 4 => attach::set_window_size(
                                    master.as_raw_fd(),
                                    u16::from_be_bytes([p[0], p[1]]),
                                    u16::from_be_bytes([p[2], p[3]]),
                                ),
                                _ => {}
                            }
                        }
                    }
                }
            }
            if gone {
                client = None;
            }
        }
        if r[0] != 0 {
            let code = match gate.take() {
                Some(m) => super::gate_link::finish(m, init)?,
                None => wait_child(init)?,
            };
            // Drain what the agent printed last.
            while let Ok(n) = nix::unistd::read(master.as_fd(), &mut buf) {
                if n == 0 || !master_open {
                    break;
                }
                if let Some((s, _)) = client.as_mut() {
                    let _ = attach::write_frame(s, DATA, &buf[..n]);
                }
                if n < buf.len() {
                    break;
                }
            }
            if let Some((s, _)) = client.as_mut() {
                let _ = attach::write_frame(s, EXIT, &code.to_be_bytes());
            }
            return Ok(code);
        }
    }
}
