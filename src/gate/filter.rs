//! The one seccomp filter no crate builds: `SECCOMP_RET_USER_NOTIF` for the exec system calls,
//! `ALLOW` for everything else, installed with a new listener; plus the hand-over of that listener
//! from the sandbox's init to the monitor over a socketpair (SCM_RIGHTS).
//!
//! Everything on the child's side runs between `fork` and `execve` of a possibly multithreaded
//! parent, so it allocates nothing and calls only async-signal-safe system calls.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::GateError;

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_BIT: u32 = 0x4000_0000;

pub(crate) const NR_EXECVE: i32 = 59;
pub(crate) const NR_EXECVEAT: i32 = 322;
pub(crate) const NR_X32_EXECVE: i32 = (X32_BIT | 520) as i32;
pub(crate) const NR_X32_EXECVEAT: i32 = (X32_BIT | 545) as i32;
pub(crate) const NR_I386_EXECVE: i32 = 11;
pub(crate) const NR_I386_EXECVEAT: i32 = 358;
pub(crate) const ARCH_X86_64: u32 = AUDIT_ARCH_X86_64;
pub(crate) const ARCH_I386: u32 = AUDIT_ARCH_I386;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

const fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: JEQ_K,
        jt,
        jf,
        k,
    }
}

/// The program. The i386 and x32 entry points are gated too: a 64-bit process can enter them
/// with `int 0x80` or the x32 syscall bit, and a filter that only knew the x86_64 numbers would
/// let those execs through unseen (the exec-event check would still catch them, but late).
/// Other architectures have no exec numbers here: this gate is x86_64-only.
const PROGRAM: [libc::sock_filter; 14] = [
    /* 0 */ stmt(LD_W_ABS, OFF_ARCH),
    /* 1 */ jeq(AUDIT_ARCH_X86_64, 0, 6),
    /* 2 */ stmt(LD_W_ABS, OFF_NR),
    /* 3 */ jeq(NR_EXECVE as u32, 9, 0),
    /* 4 */ jeq(NR_EXECVEAT as u32, 8, 0),
    /* 5 */ jeq(NR_X32_EXECVE as u32, 7, 0),
    /* 6 */ jeq(NR_X32_EXECVEAT as u32, 6, 0),
    /* 7 */ stmt(RET_K, libc::SECCOMP_RET_ALLOW),
    /* 8 */ jeq(AUDIT_ARCH_I386, 0, 3),
    /* 9 */ stmt(LD_W_ABS, OFF_NR),
    /* 10 */ jeq(NR_I386_EXECVE as u32, 2, 0),
    /* 11 */ jeq(NR_I386_EXECVEAT as u32, 1, 0),
    /* 12 */ stmt(RET_K, libc::SECCOMP_RET_ALLOW),
    /* 13 */ stmt(RET_K, libc::SECCOMP_RET_USER_NOTIF),
];

/// Installs the exec gate's filter in the calling process and returns the listener. Call it in
/// the sandbox's init after every other hardening step that needs an exec-free path, right before
/// handing the listener over with [`send_listener`]; every exec after this point, in this process
/// and all its descendants, waits for the monitor. Sets `no_new_privs` (which the engine sets
/// anyway) so that an unprivileged init may install the filter.
pub fn install_in_child() -> Result<OwnedFd, GateError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(GateError::Install(io::Error::last_os_error()));
    }
    let prog = libc::sock_fprog {
        len: PROGRAM.len() as u16,
        filter: PROGRAM.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at a valid, immutable program that outlives the call; the kernel
    // copies it before returning.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(GateError::Install(io::Error::last_os_error()));
    }
    // SAFETY: the kernel just returned this new descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Child side: sends the listener to the monitor and waits until the monitor serves it (see
/// [`ack_traced`]); an exec before that would only wait in its notification, but a child that
/// goes on only once its monitor is up fails early and clearly when the monitor cannot start.
/// The listener is closed here, so that no process in the sandbox keeps a way to answer its own
/// notifications.
pub fn send_listener(sock: BorrowedFd<'_>, listener: OwnedFd) -> Result<(), GateError> {
    let mut byte = *b"L";
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // Aligned room for one cmsghdr carrying one int.
    let mut cbuf = [0u64; 4];
    // SAFETY: a zeroed msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(4) } as usize;
    // SAFETY: msg_control points at `cbuf`, which is large enough for CMSG_SPACE(4) bytes, so the
    // first header and its data are inside it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), listener.as_raw_fd());
    }
    // SAFETY: every pointer in `msg` refers to live stack memory.
    if unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) } != 1 {
        return Err(GateError::Handoff {
            step: "sending the listener",
            source: io::Error::last_os_error(),
        });
    }
    drop(listener);
    let mut ack = [0u8; 1];
    loop {
        // SAFETY: reads one byte into a stack buffer.
        let n = unsafe { libc::read(sock.as_raw_fd(), ack.as_mut_ptr().cast(), 1) };
        if n == 1 && ack[0] == b'T' {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if n < 0 && err.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return Err(GateError::Handoff {
            step: "waiting for the monitor to trace the sandbox",
            source: if n == 0 {
                io::Error::new(io::ErrorKind::UnexpectedEof, "the monitor went away")
            } else {
                err
            },
        });
    }
}

/// Monitor side: receives the listener sent by [`send_listener`].
pub fn recv_listener(sock: BorrowedFd<'_>) -> Result<OwnedFd, GateError> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = [0u64; 4];
    // SAFETY: a zeroed msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    let err = |source| GateError::Handoff {
        step: "receiving the listener",
        source,
    };
    loop {
        // SAFETY: every pointer in `msg` refers to live stack memory of the stated sizes.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err(e));
        }
        break;
    }
    // SAFETY: the kernel filled msg_control; CMSG_FIRSTHDR checks the length before returning a
    // header, and the data of an SCM_RIGHTS header holds at least one int.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_level != libc::SOL_SOCKET || (*c).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the sandbox sent no descriptor",
            )));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Monitor side: tells the child that its gate is served, so it may go on to exec.
pub fn ack_traced(sock: BorrowedFd<'_>) -> Result<(), GateError> {
    // SAFETY: writes one byte from a static buffer.
    let n = unsafe { libc::write(sock.as_raw_fd(), b"T".as_ptr().cast(), 1) };
    if n != 1 {
        return Err(GateError::Handoff {
            step: "telling the sandbox it is traced",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program the way the kernel would on one (arch, nr) pair: enough of classic BPF
    /// for the three instructions it uses.
    fn verdict(arch: u32, nr: i32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let i = PROGRAM[pc];
            match i.code {
                LD_W_ABS => acc = if i.k == OFF_ARCH { arch } else { nr as u32 },
                JEQ_K => {
                    pc += if acc == i.k { i.jt } else { i.jf } as usize;
                }
                RET_K => return i.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn every_exec_entry_point_is_notified() {
        let notif = libc::SECCOMP_RET_USER_NOTIF;
        assert_eq!(verdict(ARCH_X86_64, NR_EXECVE), notif);
        assert_eq!(verdict(ARCH_X86_64, NR_EXECVEAT), notif);
        assert_eq!(verdict(ARCH_X86_64, NR_X32_EXECVE), notif);
        assert_eq!(verdict(ARCH_X86_64, NR_X32_EXECVEAT), notif);
        assert_eq!(verdict(ARCH_I386, NR_I386_EXECVE), notif);
        assert_eq!(verdict(ARCH_I386, NR_I386_EXECVEAT), notif);
    }

    #[test]
    fn other_system_calls_never_reach_the_monitor() {
        let allow = libc::SECCOMP_RET_ALLOW;
        for nr in [0, 1, 2, 57, 58, 60, 231, 321, 323, 435] {
            assert_eq!(verdict(ARCH_X86_64, nr), allow, "x86_64 nr {nr}");
        }
        // i386's 59 is not execve; an unknown arch passes untouched.
        assert_eq!(verdict(ARCH_I386, 59), allow);
        assert_eq!(verdict(0xC000_00B7, NR_EXECVE), allow);
    }
}
