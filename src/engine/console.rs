//! The container's terminal, as runc makes it for `--console-socket`: a pty opened inside the
//! container's own devpts (so its number means something there), the master handed to the
//! caller over its Unix socket in one SCM_RIGHTS message, no reply awaited, and the slave made
//! the controlling terminal and stdio of the process. Runs in init or the exec'd process only.

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console: {what}: {source}")]
    Sys {
        what: &'static str,
        source: nix::Error,
    },
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> ConsoleError {
    move |source| ConsoleError::Sys { what, source }
}

/// Opens a new pty in the current /dev/pts, sends its master over `socket`, and makes the slave
/// this process's controlling terminal and stdin/stdout/stderr.
pub fn setup(
    socket: RawFd,
    size: Option<(u16, u16)>,
    owner: (u32, u32),
) -> Result<(), ConsoleError> {
    let master = nix::fcntl::open(
        "/dev/ptmx",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("open /dev/ptmx"))?;
    // SAFETY: unlockpt on a pty master we own.
    if unsafe { libc::unlockpt(master.as_raw_fd()) } < 0 {
        return Err(sys("unlockpt")(nix::Error::last()));
    }
    // TIOCGPTPEER opens the slave through the master, not by a path an attacker could swap.
    // SAFETY: ioctl on a pty master we own; returns a new descriptor or -1.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(sys("open pty slave")(nix::Error::last()));
    }
    // SAFETY: `slave` was just returned by the kernel and is owned by nobody else.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a valid winsize.
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    let _ = nix::unistd::fchown(
        &slave,
        Some(nix::unistd::Uid::from_raw(owner.0)),
        Some(nix::unistd::Gid::from_raw(owner.1)),
    );
    let name = pts_name(&master);
    let fds = [master.as_raw_fd()];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        socket,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(sys("send master over console socket"))?;
    drop(master);
    nix::unistd::setsid().map_err(sys("setsid"))?;
    // SAFETY: TIOCSCTTY on the slave of a pty we opened, in a new session with no terminal.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(sys("set controlling terminal")(nix::Error::last()));
    }
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors; both are valid.
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(sys("dup2 pty slave")(nix::Error::last()));
        }
    }
    Ok(())
}

/// The slave's path (sent as the message body, as runc does; callers use only the fd).
fn pts_name(master: &OwnedFd) -> String {
    let mut buf = [0 as libc::c_char; 64];
    // SAFETY: ptsname_r writes a NUL-terminated string of at most buf.len() bytes.
    if unsafe { libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()) } != 0 {
        return String::new();
    }
    // SAFETY: buf is NUL-terminated on success.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}
