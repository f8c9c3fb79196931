//! Connectivity of a sandbox's network namespace: pasta (Debian package `passt`) gives it a tap
//! device that copies the outside's addresses and routes and carries its TCP/UDP/ICMP through
//! ordinary sockets of the namespace pasta runs in. Mode `none` gets loopback only and no pasta.
//!
//! pasta options that matter for isolation: `--no-map-gw` (otherwise the gateway address is the
//! host's loopback, exposing every local service), and `-t none -u none -T none -U none` (the
//! defaults, `auto`, forward ports bound on either side — `-T auto` would again expose the host's
//! loopback services). As root pasta drops to `nobody`, which may not open the sandbox's namespace
//! files, so root passes `--runas 0`; it still drops its capabilities and sandboxes itself.

use super::netns::Netns;
use super::policy::EgressMode;
use super::NetError;
use crate::engine::namespaces::pidfd_wait_exit;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which namespace pasta connects.
#[derive(Debug, Clone)]
pub enum PastaTarget {
    /// The namespaces of a process: its user namespace (rootless sandboxes) and its network one.
    Pid(u32),
    /// A network namespace file, with the user namespace that owns it if that is not the caller's.
    Path {
        netns: PathBuf,
        userns: Option<PathBuf>,
    },
    /// The namespaces `netns` holds open, handed to pasta as inherited descriptors. Opening
    /// `/proc/PID/ns/*` of a sandbox's init needs ptrace access to it, which pasta (capabilities
    /// dropped, possibly another UID than init) lacks; its own inherited fds it can always open.
    Held,
}

/// A running pasta; stopped when dropped (waiting up to a second for it to exit, then killed).
#[derive(Debug)]
pub struct Pasta {
    pid: i32,
    pidfd: OwnedFd,
}

impl Pasta {
    pub fn pid(&self) -> i32 {
        self.pid
    }
}

impl Drop for Pasta {
    fn drop(&mut self) {
        // Signal through the pidfd: pasta daemonised, so its PID is not our child's and may have
        // been reused by the time we stop it; the pidfd cannot be. Waiting for its exit means
        // that once this returns no process of the sandbox's holds its namespaces.
        terminate(&self.pidfd);
    }
}

/// TERM, a second to exit, then KILL and another second.
fn terminate(pidfd: &OwnedFd) {
    let _ = rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::TERM);
    if !pidfd_wait_exit(pidfd, 1000) {
        let _ = rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL);
        pidfd_wait_exit(pidfd, 1000);
    }
}

/// The error for a networked sandbox on a host without pasta.
pub fn missing() -> NetError {
    NetError::ToolMissing {
        tool: "pasta",
        hint: "install the Debian package `passt` (apt-get install -y passt), or use a profile with network mode \"none\" (e.g. --profile offline)",
    }
}

/// Connect the target namespace to the network pasta runs in (the caller's namespace, or `from`).
///
/// Mode `none`: no pasta; only loopback is brought up in `netns`, so the sandbox has no route.
pub fn connect(
    mode: EgressMode,
    netns: &Netns,
    target: &PastaTarget,
    from: Option<&Netns>,
) -> Result<Option<Pasta>, NetError> {
    connect_with("pasta", mode, netns, target, from)
}

/// [`connect`] with an explicit pasta program (a path, or a name looked up in `PATH`).
pub fn connect_with(
    program: &str,
    mode: EgressMode,
    netns: &Netns,
    target: &PastaTarget,
    from: Option<&Netns>,
) -> Result<Option<Pasta>, NetError> {
    if mode == EgressMode::None {
        netns.loopback_up()?;
        return Ok(None);
    }
    let dir = tempfile_dir()?;
    let pidfile = dir.join("pasta.pid");
    let result = spawn(program, netns, target, from, &pidfile);
    let _ = std::fs::remove_file(&pidfile);
    let _ = std::fs::remove_dir(&dir);
    result.map(Some)
}

/// [`connect_with`] for a pasta that must be found again by a process that does not hold it:
/// its command line carries `--pid <pidfile>` (a path unique to the caller, where pasta writes
/// its PID), by which [`stop_all_started_with`] finds it after its owner died (a daemonised
/// pasta outlives its starter and holds the namespaces open).
pub fn connect_recorded(
    program: &str,
    mode: EgressMode,
    netns: &Netns,
    target: &PastaTarget,
    pidfile: &Path,
) -> Result<Option<Pasta>, NetError> {
    if mode == EgressMode::None {
        netns.loopback_up()?;
        return Ok(None);
    }
    spawn(program, netns, target, None, pidfile).map(Some)
}

/// Stops every process started with `--pid <pidfile>` (a pasta of [`connect_recorded`] whose
/// owner died), found by a walk of /proc, and waits for each to exit. The command line is the
/// identity: the PID file's path names one sandbox, and a recycled PID belongs to a process
/// whose command line does not carry it. The walk also finds a pasta that is still starting
/// (before it daemonised and wrote its PID file: that first process has the same command line).
/// A few milliseconds per call: for the leftovers of a monitor that died, not for every
/// sandbox's end (a `Pasta` stops its process when dropped). Returns how many were stopped.
pub fn stop_all_started_with(pidfile: &Path) -> usize {
    let pids: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.into_iter()
        .filter(|pid| {
            // A cheap look first; `stop_if_started_with` checks again behind a pidfd.
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| started_with_pidfile(&c, pidfile))
                && stop_if_started_with(*pid, pidfile)
        })
        .count()
}

/// Stops process `pid` if its command line carries `--pid <pidfile>`.
fn stop_if_started_with(pid: i32, pidfile: &Path) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    // The pidfd first, the identity check second: if the check passes, the pidfd names the
    // process that was checked (a PID is reused only after its process is gone).
    let Ok(pidfd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
        return false;
    };
    let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", pid.as_raw_pid())) else {
        return false;
    };
    if !started_with_pidfile(&cmdline, pidfile) || !runs_as_me(pid.as_raw_pid()) {
        return false;
    }
    terminate(&pidfd);
    true
}

/// Whether process `pid`'s real user is this process's effective one, as for the pasta this
/// user's lasso started: anyone can put the path into a command line of their own, and such a
/// process of another user is never signalled.
fn runs_as_me(pid: i32) -> bool {
    let me = rustix::process::geteuid().as_raw();
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next()?.parse::<u32>().ok())
            == Some(me)
    })
}

/// Whether a `/proc/PID/cmdline` has the arguments `--pid <pidfile>`.
fn started_with_pidfile(cmdline: &[u8], pidfile: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let want = pidfile.as_os_str().as_bytes();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.windows(2).any(|w| w[0] == b"--pid" && w[1] == want)
}

fn spawn(
    program: &str,
    netns: &Netns,
    target: &PastaTarget,
    from: Option<&Netns>,
    pidfile: &Path,
) -> Result<Pasta, NetError> {
    let mut cmd = match from {
        Some(ns) => ns.command(program),
        None => Command::new(program),
    };
    cmd.args(["--config-net", "--no-map-gw", "-q"])
        .args(["-t", "none", "-u", "none", "-T", "none", "-U", "none"])
        .arg("--pid")
        .arg(pidfile);
    if rustix::process::geteuid().is_root() {
        cmd.args(["--runas", "0"]);
    }
    match target {
        PastaTarget::Pid(pid) => {
            cmd.arg(pid.to_string());
        }
        PastaTarget::Path { netns, userns } => {
            if let Some(u) = userns {
                cmd.arg("--userns").arg(u);
            }
            cmd.arg("--netns").arg(netns);
        }
        PastaTarget::Held => {
            let (net, user) = netns.raw_fds();
            if let Some(u) = user {
                cmd.arg("--userns").arg(format!("/proc/self/fd/{u}"));
            }
            cmd.arg("--netns").arg(format!("/proc/self/fd/{net}"));
            // SAFETY: runs in the forked child before exec; fcntl(2) is async-signal-safe and
            // only clears close-on-exec of two descriptors `netns` keeps open across the spawn.
            unsafe {
                cmd.pre_exec(move || {
                    for fd in [Some(net), user].into_iter().flatten() {
                        if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
    }
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            missing()
        } else {
            NetError::io("start pasta", e)
        }
    });
    out.and_then(|out| {
        if !out.status.success() {
            let detail = String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| !l.starts_with("Failed to send") && !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(NetError::Pasta {
                netns: netns.path().into(),
                detail: format!("{} ({})", detail, out.status),
            });
        }
        let text = std::fs::read_to_string(pidfile)
            .map_err(|e| NetError::io(format!("read {}", pidfile.display()), e))?;
        let pid: i32 = text.trim().parse().map_err(|_| NetError::Pasta {
            netns: netns.path().into(),
            detail: format!("bad pid file content {text:?}"),
        })?;
        let p = rustix::process::Pid::from_raw(pid).ok_or_else(|| NetError::Pasta {
            netns: netns.path().into(),
            detail: format!("bad pid {pid}"),
        })?;
        let pidfd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
            .map_err(|e| NetError::io(format!("pidfd_open pasta {pid}"), e.into()))?;
        Ok(Pasta { pid, pidfd })
    })
}

fn tempfile_dir() -> Result<PathBuf, NetError> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let mut rnd = [0u8; 8];
    getrandom::fill(&mut rnd).map_err(|e| NetError::io("getrandom", std::io::Error::other(e)))?;
    let dir = base.join(format!("lasso-pasta-{}", hex::encode(rnd)));
    std::fs::create_dir(&dir).map_err(|e| NetError::io(format!("create {}", dir.display()), e))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_is_trusted_only_for_the_process_given_that_pidfile() {
        let file = Path::new("/run/lasso/abc/pasta.pid");
        let ours = b"pasta\0--config-net\0--pid\0/run/lasso/abc/pasta.pid\0--runas\0root\0";
        assert!(started_with_pidfile(ours, file));
        let other = b"pasta\0--pid\0/run/lasso/abd/pasta.pid\0";
        assert!(!started_with_pidfile(other, file));
        let prefix = b"pasta\0--pid\0/run/lasso/abc/pasta.pid.old\0";
        assert!(!started_with_pidfile(prefix, file));
        assert!(!started_with_pidfile(
            b"sleep\0/run/lasso/abc/pasta.pid\0",
            file
        ));
        assert!(!started_with_pidfile(b"", file));
    }

    /// A stand-in for pasta: a shell whose command line carries `--pid FILE` as pasta's does
    /// (`sh -c SCRIPT pasta --pid FILE`), looping on short sleeps so that none outlives it long.
    /// Killed when dropped, so a failing test leaves none behind.
    struct StandIn(std::process::Child);

    impl Drop for StandIn {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn stand_in(pidfile: &Path) -> StandIn {
        stand_in_as(pidfile, None)
    }

    /// As `stand_in`, as user `uid` (through setpriv, which execs the shell).
    fn stand_in_as(pidfile: &Path, uid: Option<u32>) -> StandIn {
        let mut c = match uid {
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={u}"))
                    .arg(format!("--regid={u}"))
                    .args(["--clear-groups", "sh"]);
                c
            }
            None => Command::new("sh"),
        };
        let child = StandIn(
            c.args(["-c", "while :; do sleep 0.05; done", "pasta", "--pid"])
                .arg(pidfile)
                .spawn()
                .unwrap(),
        );
        // `spawn` returns while the exec may still be under way (the command line reads empty
        // for a moment), and setpriv runs as root, with the same arguments, until it execs the
        // shell: wait for the shell's command line.
        let pid = child.0.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.starts_with(b"sh\0") && started_with_pidfile(&c, pidfile))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "stand-in did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child
    }

    #[test]
    fn the_walk_never_signals_another_users_process() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (to start a process as another user)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pasta.pid");
        let mut theirs = stand_in_as(&file, Some(65534));
        assert_eq!(stop_all_started_with(&file), 0);
        assert!(
            theirs.0.try_wait().unwrap().is_none(),
            "another user's process was signalled"
        );
    }

    #[test]
    fn the_walk_stops_only_processes_started_with_that_pidfile() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("a").join("pasta.pid");
        let other = dir.path().join("b").join("pasta.pid");
        let mut a = stand_in(&ours);
        let mut b = stand_in(&other);
        // At least the shell; a fork of it about to run `sleep` has its command line too (as
        // a starting pasta's first process has the daemon's).
        assert!(stop_all_started_with(&ours) >= 1);
        assert!(a.0.wait().unwrap().code().is_none(), "ours was signalled");
        assert!(
            b.0.try_wait().unwrap().is_none(),
            "the other one still runs"
        );
    }
}
