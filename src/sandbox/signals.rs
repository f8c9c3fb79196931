//! Signals turned into readable bytes: a handler writes the signal number to a pipe that the
//! caller polls beside its other descriptors. Handlers (not a blocked mask) on purpose: the
//! sandbox's init is cloned from this process and keeps its signal mask across execve, so a
//! blocked mask here would leave the user's command deaf to SIGINT; handlers reset on execve.

use super::{sys_err, SandboxError};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is one byte on the stack. A full
        // pipe drops the byte, which only loses a repeated signal.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

/// The read end of the signal pipe.
pub struct SignalPipe {
    read: OwnedFd,
    _write: OwnedFd,
}

impl SignalPipe {
    /// Routes `signals` into the pipe (one per process; later calls replace the pipe).
    pub fn install(signals: &[i32]) -> Result<SignalPipe, SandboxError> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(sys_err("pipe"))?;
        WRITE_FD.store(write.as_raw_fd(), Ordering::Relaxed);
        for &sig in signals {
            // SAFETY: installs a handler that only calls write(2); SA_RESTART keeps the
            // main loop's blocking calls going.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                    return Err(sys_err("sigaction")(nix::Error::last()));
                }
            }
        }
        Ok(SignalPipe {
            read,
            _write: write,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Signals received since the last call.
    pub fn drain(&self) -> Vec<i32> {
        let mut buf = [0u8; 64];
        let mut out = Vec::new();
        while let Ok(n) = nix::unistd::read(&self.read, &mut buf) {
            if n == 0 {
                break;
            }
            out.extend(buf[..n].iter().map(|b| i32::from(*b)));
        }
        out
    }
}

/// poll(2) over raw descriptors, retrying on EINTR; returns the revents per entry.
pub fn poll(fds: &[RawFd], timeout_ms: i32) -> Result<Vec<i16>, SandboxError> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: poll over a valid array of pollfd structs of the given length.
        let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        if rc >= 0 {
            return Ok(pfds.iter().map(|p| p.revents).collect());
        }
        let e = nix::Error::last();
        if e != nix::Error::EINTR {
            return Err(sys_err("poll")(e));
        }
    }
}
