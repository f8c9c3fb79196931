//! A handle on a sandbox's network namespace and the two ways to act inside it: a short-lived
//! thread that joined it (sockets it creates stay bound to that namespace for their lifetime), and
//! a child command that joins it before exec (`nft`, `ip`).
//!
//! Opening refuses the caller's own namespace: every rule and address change lasso makes belongs to
//! a sandbox, never to the host.
//!
//! A rootless sandbox's network namespace is owned by the sandbox's user namespace, and setns(2)
//! into it needs CAP_SYS_ADMIN in the caller's own user namespace too, which an unprivileged
//! monitor lacks. Such a handle (`of_process`) also holds the user namespace: commands join it
//! first, and sockets come from a forked child that joins both (a threaded process may not join
//! a user namespace) and hands the socket back over SCM_RIGHTS. A socket keeps the namespace it
//! was made in, and its owner (the monitor, which created the user namespace) holds every
//! capability there, so binding port 53 or writing nftables through it works from outside.

use super::nschild::{
    ambient_net_admin, bind_to, family, ns_by_ioctl, ns_from_child, raw_socket, socket_from_child,
};
use super::NetError;
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{listen, setsockopt, sockopt, Backlog};
use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// An open network namespace that is not the caller's own.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: String,
    /// The user namespace to join first (rootless sandboxes), if not the caller's own.
    userns: Option<File>,
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
        Ok(Netns {
            file,
            path: shown,
            userns: None,
        })
    }

    /// The network namespace of a process together with its user namespace (when that differs
    /// from the caller's), so an unprivileged owner of that user namespace can act inside.
    pub fn of_process(pid: u32) -> Result<Self, NetError> {
        let mut ns = Self::of_pid(pid)?;
        let path = format!("/proc/{pid}/ns/user");
        let user = File::open(&path).map_err(|source| NetError::OpenNetns {
            path: path.clone(),
            source,
        })?;
        let own =
            std::fs::metadata("/proc/self/ns/user").map_err(|source| NetError::OpenNetns {
                path: "/proc/self/ns/user".into(),
                source,
            })?;
        let meta = user.metadata().map_err(|source| NetError::OpenNetns {
            path: path.clone(),
            source,
        })?;
        if meta.ino() != own.ino() || meta.dev() != own.dev() {
            ns.userns = Some(user);
        }
        Ok(ns)
    }

    /// The user namespace to join before the network one: only when the caller lacks
    /// CAP_SYS_ADMIN over the sandbox's namespaces from outside (root has it; joining would even
    /// lose it across exec, root's UID being unmapped there).
    fn join_userns(&self) -> Option<&File> {
        if rustix::process::geteuid().is_root() {
            return None;
        }
        self.userns.as_ref()
    }

    /// The network and user namespaces of the process behind `pidfd`. Opening `/proc/PID/ns/*`
    /// needs ptrace access to the process, which an unprivileged monitor lacks towards a
    /// sandbox's init (non-dumpable, its memory still owned by the host's user namespace); a
    /// forked child joins the namespaces through the pidfd instead (setns(2) checks only
    /// capabilities over the namespaces, which their owner holds) and sends back its own
    /// `/proc/thread-self/ns/{net,user}`.
    pub fn of_pidfd(pidfd: &OwnedFd, label: &str) -> Result<Self, NetError> {
        let what = |e| NetError::OpenNetns {
            path: label.to_string(),
            source: e,
        };
        let [net, user] = match ns_by_ioctl(pidfd.as_raw_fd()) {
            Ok(fds) => fds,
            Err(_) => ns_from_child(pidfd.as_raw_fd()).map_err(what)?,
        };
        let own_net = std::fs::metadata("/proc/thread-self/ns/net").map_err(what)?;
        let own_user = std::fs::metadata("/proc/self/ns/user").map_err(what)?;
        let net = File::from(net);
        let user = File::from(user);
        let nm = net.metadata().map_err(what)?;
        if nm.ino() == own_net.ino() && nm.dev() == own_net.dev() {
            return Err(NetError::HostNetns {
                path: label.to_string(),
            });
        }
        let um = user.metadata().map_err(what)?;
        let userns = (um.ino() != own_user.ino() || um.dev() != own_user.dev()).then_some(user);
        Ok(Netns {
            file: net,
            path: label.to_string(),
            userns,
        })
    }

    /// A second handle on the same namespace(s).
    pub fn try_clone(&self) -> Result<Self, NetError> {
        let dup = |f: &File| {
            f.try_clone()
                .map_err(|e| NetError::io(format!("duplicate the handle on {}", self.path), e))
        };
        Ok(Netns {
            file: dup(&self.file)?,
            path: self.path.clone(),
            userns: self.userns.as_ref().map(dup).transpose()?,
        })
    }

    /// The namespace of a running process.
    pub fn of_pid(pid: u32) -> Result<Self, NetError> {
        Self::open(format!("/proc/{pid}/ns/net"))
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The descriptors of the network namespace and of the user namespace joined first, if any.
    pub fn raw_fds(&self) -> (RawFd, Option<RawFd>) {
        (
            self.file.as_raw_fd(),
            self.userns.as_ref().map(|u| u.as_raw_fd()),
        )
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

    /// A command that joins this namespace (and its user namespace first, if held) between fork
    /// and exec.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        let fd = self.file.as_raw_fd();
        let user = self.join_userns().map_or(-1, |f| f.as_raw_fd());
        // SAFETY: the closure runs in the forked child before exec and only calls setns(2), which
        // is async-signal-safe; the fds stay open in the child because `self` outlives the spawn.
        unsafe {
            cmd.pre_exec(move || {
                if user >= 0 {
                    if libc::setns(user, libc::CLONE_NEWUSER) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // execve recomputes capabilities, and our UID is not root in the sandbox's
                    // user namespace: CAP_NET_ADMIN survives the exec only as an ambient one.
                    ambient_net_admin()?;
                }
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
        let sock = self.socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)?;
        // SAFETY: ioctls on our own socket with a zeroed, correctly sized ifreq. The socket
        // belongs to the sandbox's namespace, so the flags change there; the caller holds
        // CAP_NET_ADMIN over it (root, or the owner of its user namespace).
        let r = unsafe {
            let mut ifr: libc::ifreq = std::mem::zeroed();
            ifr.ifr_name[0] = b'l' as libc::c_char;
            ifr.ifr_name[1] = b'o' as libc::c_char;
            let mut r = libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr);
            if r == 0 {
                ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                r = libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr);
            }
            r
        };
        if r != 0 {
            return Err(NetError::io(
                format!("bring up lo in {}", self.path),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// A socket of this namespace: made by a thread that joined it, or, when the user namespace
    /// must be joined too, by a forked child (see the module comment).
    pub fn socket(&self, domain: i32, ty: i32, protocol: i32) -> Result<OwnedFd, NetError> {
        let what = || format!("open a socket in {}", self.path);
        match self.join_userns() {
            None => self
                .run(|| raw_socket(domain, ty, protocol))?
                .map_err(|e| NetError::io(what(), e)),
            Some(user) => socket_from_child(
                user.as_raw_fd(),
                self.file.as_raw_fd(),
                domain,
                ty,
                protocol,
            )
            .map_err(|e| NetError::io(what(), e)),
        }
    }

    /// A UDP socket of this namespace bound to `addr`.
    pub fn udp_bind(&self, addr: SocketAddr) -> Result<UdpSocket, NetError> {
        let fd = self.socket(family(addr), libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)?;
        bind_to(&fd, addr).map_err(|e| NetError::io(format!("bind {addr} in {}", self.path), e))?;
        Ok(UdpSocket::from(fd))
    }

    /// A TCP socket of this namespace listening on `addr`.
    pub fn tcp_listen(&self, addr: SocketAddr) -> Result<TcpListener, NetError> {
        let fd = self.socket(family(addr), libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0)?;
        let io =
            |e: nix::Error| NetError::io(format!("listen on {addr} in {}", self.path), e.into());
        setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(io)?;
        bind_to(&fd, addr).map_err(|e| io(nix::Error::from_raw(e.raw_os_error().unwrap_or(0))))?;
        listen(&fd, Backlog::new(128).map_err(io)?).map_err(io)?;
        Ok(TcpListener::from(fd))
    }
}
