//! The system-call seam of `Netns`: descriptors of a sandbox's namespaces and sockets inside
//! them, obtained by forked children that join the namespaces (a threaded process may not join a
//! user namespace) and send the result back over SCM_RIGHTS, or through a pidfd's ioctls. Every
//! child runs only async-signal-safe system calls on memory prepared before the fork: the monitor
//! has threads, one of which could hold the allocator's lock.

use nix::sys::socket::{
    recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Make CAP_NET_ADMIN (held in full after joining a user namespace) ambient, so that it survives
/// the exec of `nft`. Only async-signal-safe system calls: this runs between fork and exec.
pub(super) fn ambient_net_admin() -> std::io::Result<()> {
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
pub(super) fn bind_to(fd: &OwnedFd, addr: SocketAddr) -> std::io::Result<()> {
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

pub(super) fn family(addr: SocketAddr) -> i32 {
    if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

pub(super) fn raw_socket(domain: i32, ty: i32, protocol: i32) -> std::io::Result<OwnedFd> {
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
pub(super) fn socket_from_child(
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
pub(super) fn ns_by_ioctl(pidfd: RawFd) -> std::io::Result<[OwnedFd; 2]> {
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
pub(super) fn ns_from_child(pidfd: RawFd) -> std::io::Result<[OwnedFd; 2]> {
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
