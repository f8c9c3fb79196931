//! A handle on a sandbox's network namespace and the two ways to act inside it: a short-lived
//! thread that joined it (sockets it creates stay bound to that namespace for their lifetime), and
//! a child command that joins it before exec (`nft`, `ip`).
//!
//! Opening refuses the caller's own namespace: every rule and address change lasso makes belongs to
//! a sandbox, never to the host.

use super::NetError;
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// An open network namespace that is not the caller's own.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: String,
}

impl Netns {
    /// Open `/proc/PID/ns/net`, a bind-mounted namespace file, or any nsfs path.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, NetError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|source| NetError::OpenNetns {
            path: shown.clone(),
            source,
        })?;
        let own = std::fs::metadata("/proc/thread-self/ns/net").map_err(|source| {
            NetError::OpenNetns {
                path: "/proc/thread-self/ns/net".into(),
                source,
            }
        })?;
        let meta = file.metadata().map_err(|source| NetError::OpenNetns {
            path: shown.clone(),
            source,
        })?;
        if meta.ino() == own.ino() && meta.dev() == own.dev() {
            return Err(NetError::HostNetns { path: shown });
        }
        Ok(Netns { file, path: shown })
    }

    /// The namespace of a running process.
    pub fn of_pid(pid: u32) -> Result<Self, NetError> {
        Self::open(format!("/proc/{pid}/ns/net"))
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Run `f` on a fresh thread that joined this namespace; the caller's threads stay where they
    /// are (network namespaces are per thread).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetError> {
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| {
                    NetError::EnterNetns {
                        path: self.path.clone(),
                        source,
                    }
                })?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// A command that joins this namespace between fork and exec.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        let fd = self.file.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and only calls setns(2), which
        // is async-signal-safe; `fd` stays open in the child because `self` outlives the spawn.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }
}

impl Netns {
    /// Bring up `lo` inside the namespace (mode `none`: loopback only).
    pub fn loopback_up(&self) -> Result<(), NetError> {
        self.run(|| -> std::io::Result<()> {
            // SAFETY: plain socket/ioctl calls on a fresh fd with a zeroed, correctly sized ifreq;
            // the fd is closed before returning.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let mut ifr: libc::ifreq = std::mem::zeroed();
                ifr.ifr_name[0] = b'l' as libc::c_char;
                ifr.ifr_name[1] = b'o' as libc::c_char;
                let mut r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr);
                if r == 0 {
                    ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                    r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
                }
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if r != 0 {
                    return Err(err);
                }
            }
            Ok(())
        })?
        .map_err(|e| NetError::io(format!("bring up lo in {}", self.path), e))
    }
}
