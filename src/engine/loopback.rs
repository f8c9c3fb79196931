//! Bringing up `lo` in a network namespace init created, as runc does for a new network
//! namespace (its "loopback" network): a container without other networking can still reach
//! its own services on 127.0.0.1, and lasso's monitor no longer needs a thread that joins the
//! namespace just for this. Init does it while it still holds its capabilities (its user
//! namespace owns the new network namespace).
//!
//! Why a child: setting `IFF_UP` on `lo` of a fresh namespace is 0.2-0.3 ms of kernel work
//! (the IPv4 and IPv6 addresses and routes of `lo` are made then) during which init would do
//! nothing. Init opens the socket itself (cheap), then a short-lived child that shares its
//! memory makes the two ioctls by raw system calls (`old_root::Detach::spawn`, the machinery
//! the old root's detach uses) while init prepares its root; init waits for it before anything
//! that may need `lo` (hooks, sysctls) and before it reports ready. The child is cloned from
//! init after init's change of credentials, so it holds the same credentials and capabilities
//! in the same user and network namespaces: what init could do, the child can, and an error
//! fails init with the same message as before. Owns one socket and that child.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::raw::{c_int, c_void};

use super::old_root::Detach;

/// `lo` being brought up; `finish` waits for it. Dropped unfinished (an error path), it
/// still waits for the child, then closes the socket.
pub struct Up {
    // Field order: the child is reaped before the socket it uses is closed.
    child: Detach,
    _sock: OwnedFd,
}

impl Up {
    /// Starts setting `IFF_UP` on `lo` of the caller's network namespace.
    pub fn start() -> Result<Up, String> {
        let sock = socket()?;
        let fd = sock.as_raw_fd();
        // SAFETY: `lo_up` makes raw system calls only (rustix's, which touch no errno) and
        // reads nothing of ours but the descriptor passed as its argument, which `Up` keeps
        // open until the child was reaped.
        let child = unsafe { Detach::spawn(lo_up, fd as usize as *mut c_void) }
            .map_err(|x| format!("bring up lo: clone: {x}"))?;
        Ok(Up { child, _sock: sock })
    }

    /// Waits until `lo` is up; the error init fails with if it could not be brought up.
    pub fn finish(self) -> Result<(), String> {
        let Up { child, _sock } = self;
        child.finish().map_err(|x| failed(std::io::Error::from(x)))
    }
}

fn failed(e: std::io::Error) -> String {
    format!("bring up lo in the new network namespace: {e} (init needs CAP_NET_ADMIN there)")
}

fn socket() -> Result<OwnedFd, String> {
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(format!(
            "bring up lo: socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

const SIOCGIFFLAGS: rustix::ioctl::Opcode = libc::SIOCGIFFLAGS as rustix::ioctl::Opcode;
const SIOCSIFFLAGS: rustix::ioctl::Opcode = libc::SIOCSIFFLAGS as rustix::ioctl::Opcode;

/// Reads `lo`'s flags and sets `IFF_UP` if it is down, on the socket `arg` carries; returns
/// the errno, 0 on success. Raw calls only: it runs in `Up`'s child (see `Up::start`).
extern "C" fn lo_up(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` carries a descriptor the caller keeps open until this returns.
    let sock = unsafe { BorrowedFd::borrow_raw(arg as usize as RawFd) };
    // SAFETY: a zeroed ifreq is a valid value (all integers and byte arrays).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    ifr.ifr_name[0] = b'l' as libc::c_char;
    ifr.ifr_name[1] = b'o' as libc::c_char;
    // SAFETY: both opcodes take a `struct ifreq` the kernel reads and writes.
    let r = unsafe {
        rustix::ioctl::ioctl(
            sock,
            rustix::ioctl::Updater::<SIOCGIFFLAGS, libc::ifreq>::new(&mut ifr),
        )
    };
    let r = r.and_then(|()| {
        // SAFETY: the union's flags member is the one SIOCGIFFLAGS filled in.
        let flags = unsafe { &mut ifr.ifr_ifru.ifru_flags };
        if *flags & libc::IFF_UP as libc::c_short != 0 {
            return Ok(());
        }
        *flags |= libc::IFF_UP as libc::c_short;
        // SAFETY: as above.
        unsafe {
            rustix::ioctl::ioctl(
                sock,
                rustix::ioctl::Updater::<SIOCSIFFLAGS, libc::ifreq>::new(&mut ifr),
            )
        }
    });
    match r {
        Ok(()) => 0,
        Err(e) => e.raw_os_error(),
    }
}
