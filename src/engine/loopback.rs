//! Bringing up `lo` in a network namespace init created, as runc does for a new network
//! namespace (its "loopback" network): a container without other networking can still reach
//! its own services on 127.0.0.1, and lasso's monitor no longer needs a thread that joins the
//! namespace just for this. Init does it while it still holds its capabilities (its user
//! namespace owns the new network namespace). Owns nothing but one socket, closed on return.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Sets `IFF_UP` on `lo` of the caller's network namespace.
pub fn up() -> Result<(), String> {
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(format!(
            "bring up lo: socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ioctls on our own socket with a zeroed, correctly sized ifreq naming "lo".
    let r = unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        let mut r = libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr);
        if r == 0 && ifr.ifr_ifru.ifru_flags & libc::IFF_UP as libc::c_short == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            r = libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr);
        }
        r
    };
    if r != 0 {
        return Err(format!(
            "bring up lo in the new network namespace: {} (init needs CAP_NET_ADMIN there)",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
