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

use super::NetError;
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{
    listen, recvmsg, setsockopt, socketpair, sockopt, AddressFamily, Backlog, ControlMessageOwned,
    MsgFlags, SockFlag, SockType,
};
use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
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

/// Make CAP_NET_ADMIN (held in full after joining a user namespace) ambient, so that it survives
/// the exec of `nft`. Only async-signal-safe system calls: this runs between fork and exec.
fn ambient_net_admin() -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const NET_ADMIN: u32 = 12;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capget/capset with a version-3 header and the two data words that version uses;
    // prctl with integer arguments.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        data[0].inheritable |= 1 << NET_ADMIN;
        if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            NET_ADMIN as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// bind(2) of a socket to an IPv4 or IPv6 address.
fn bind_to(fd: &OwnedFd, addr: SocketAddr) -> std::io::Result<()> {
    // SAFETY: the sockaddr structs are zeroed then filled, and passed with their own size; the
    // fd is ours.
    let r = unsafe {
        match addr {
            SocketAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                libc::bind(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
            SocketAddr::V6(a) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                sa.sin6_scope_id = a.scope_id();
                libc::bind(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn family(addr: SocketAddr) -> i32 {
    if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

fn raw_socket(domain: i32, ty: i32, protocol: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: socket(2) with plain integer arguments; a non-negative result is a fresh fd that
    // nothing else owns.
    let fd = unsafe { libc::socket(domain, ty, protocol) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Fork a child that joins `user` then `net`, makes the socket and sends it back. The child runs
/// only async-signal-safe system calls (the parent may have threads, one of which could hold the
/// allocator's lock), so every buffer is prepared before the fork.
fn socket_from_child(
    user: RawFd,
    net: RawFd,
    domain: i32,
    ty: i32,
    protocol: i32,
) -> std::io::Result<OwnedFd> {
    let (mine, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let child_end = theirs.as_raw_fd();
    let space = cmsg_space(std::mem::size_of::<RawFd>());
    let mut control = vec![0u8; space];
    let mut errno_buf = [0u8; 4];
    // SAFETY: fork(2); the child below only calls setns, socket, sendmsg, write and _exit, all
    // async-signal-safe, on memory allocated before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the single-threaded child; see above. `control` is large enough for one
        // SCM_RIGHTS fd (CMSG_SPACE), and the iovec points at a live stack buffer.
        unsafe {
            let fail = |buf: &mut [u8; 4]| -> ! {
                *buf = (*libc::__errno_location()).to_ne_bytes();
                libc::write(child_end, buf.as_ptr().cast(), 4);
                libc::_exit(1)
            };
            if libc::setns(user, libc::CLONE_NEWUSER) != 0
                || libc::setns(net, libc::CLONE_NEWNET) != 0
            {
                fail(&mut errno_buf);
            }
            let s = libc::socket(domain, ty, protocol);
            if s < 0 {
                fail(&mut errno_buf);
            }
            let mut byte = [0u8; 1];
            let mut iov = libc::iovec {
                iov_base: byte.as_mut_ptr().cast(),
                iov_len: 1,
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), s);
            if libc::sendmsg(child_end, &msg, 0) < 0 {
                fail(&mut errno_buf);
            }
            libc::_exit(0)
        }
    }
    drop(theirs);
    let mut status = 0;
    // SAFETY: waits for the child forked above, which exits right after sending.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let mut buf = [0u8; 4];
    let mut cmsg = nix::cmsg_space!(RawFd);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        mine.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us; nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let n = msg.bytes;
    if n == 4 {
        return Err(std::io::Error::from_raw_os_error(i32::from_ne_bytes(buf)));
    }
    Err(std::io::Error::other("the namespace helper sent no socket"))
}

/// The namespace files of the process behind `pidfd` through the pidfd's own ioctls (Linux 6.11).
fn ns_by_ioctl(pidfd: RawFd) -> std::io::Result<[OwnedFd; 2]> {
    // PIDFD_GET_NET_NAMESPACE and PIDFD_GET_USER_NAMESPACE: _IO(PIDFS_IOCTL_MAGIC 0xFF, 4 / 9).
    const GET_NET: libc::c_ulong = 0xFF04;
    const GET_USER: libc::c_ulong = 0xFF09;
    let get = |req: libc::c_ulong| -> std::io::Result<OwnedFd> {
        // SAFETY: an argument-less ioctl on a pidfd we own; a non-negative result is a fresh fd.
        let fd = unsafe { libc::ioctl(pidfd, req as _, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: as above.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    Ok([get(GET_NET)?, get(GET_USER)?])
}

/// Fork a child that joins the user and network namespaces of the process behind `pidfd` and
/// sends back its own namespace files (net, user). Async-signal-safe calls only in the child.
fn ns_from_child(pidfd: RawFd) -> std::io::Result<[OwnedFd; 2]> {
    let (mine, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let child_end = theirs.as_raw_fd();
    let space = cmsg_space(2 * std::mem::size_of::<RawFd>());
    let mut control = vec![0u8; space];
    let mut errno_buf = [0u8; 4];
    let net_path = c"/proc/thread-self/ns/net";
    let user_path = c"/proc/thread-self/ns/user";
    // SAFETY: fork(2); the child below only calls setns, open, sendmsg, write and _exit, all
    // async-signal-safe, on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the single-threaded child; `control` holds CMSG_SPACE for two fds.
        unsafe {
            let fail = |buf: &mut [u8; 4]| -> ! {
                *buf = (*libc::__errno_location()).to_ne_bytes();
                libc::write(child_end, buf.as_ptr().cast(), 4);
                libc::_exit(1)
            };
            // Joining one's own user namespace is EINVAL (root's sandboxes may share it).
            if libc::setns(pidfd, libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0
                && libc::setns(pidfd, libc::CLONE_NEWNET) != 0
            {
                fail(&mut errno_buf);
            }
            let net = libc::open(net_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            let user = libc::open(user_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if net < 0 || user < 0 {
                fail(&mut errno_buf);
            }
            let mut byte = [0u8; 1];
            let mut iov = libc::iovec {
                iov_base: byte.as_mut_ptr().cast(),
                iov_len: 1,
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(2 * std::mem::size_of::<RawFd>() as u32) as _;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            std::ptr::write_unaligned(data, net);
            std::ptr::write_unaligned(data.add(1), user);
            if libc::sendmsg(child_end, &msg, 0) < 0 {
                fail(&mut errno_buf);
            }
            libc::_exit(0)
        }
    }
    drop(theirs);
    let mut status = 0;
    // SAFETY: waits for the child forked above, which exits right after sending.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let mut buf = [0u8; 4];
    let mut cmsg = nix::cmsg_space!([RawFd; 2]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        mine.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let [net, user] = fds[..] {
                // SAFETY: the kernel just installed these fds for us; nothing else owns them.
                return Ok(unsafe { [OwnedFd::from_raw_fd(net), OwnedFd::from_raw_fd(user)] });
            }
        }
    }
    if msg.bytes == 4 {
        return Err(std::io::Error::from_raw_os_error(i32::from_ne_bytes(buf)));
    }
    Err(std::io::Error::other(
        "the namespace helper sent no namespace",
    ))
}

fn cmsg_space(len: usize) -> usize {
    // SAFETY: CMSG_SPACE is pure arithmetic.
    unsafe { libc::CMSG_SPACE(len as u32) as usize }
}
