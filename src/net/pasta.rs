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
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
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

/// A running pasta; stopped when dropped.
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
        // been reused by the time we stop it; the pidfd cannot be.
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, rustix::process::Signal::TERM);
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
    let mut cmd = match from {
        Some(ns) => ns.command(program),
        None => Command::new(program),
    };
    cmd.args(["--config-net", "--no-map-gw", "-q"])
        .args(["-t", "none", "-u", "none", "-T", "none", "-U", "none"])
        .arg("--pid")
        .arg(&pidfile);
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
    let result = out.and_then(|out| {
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
        let text = std::fs::read_to_string(&pidfile)
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
    });
    let _ = std::fs::remove_file(&pidfile);
    let _ = std::fs::remove_dir(&dir);
    result.map(Some)
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
