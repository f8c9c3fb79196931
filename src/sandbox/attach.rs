//! The attach socket's protocol and its terminal side. Frames are `[kind u8][len u32 BE]
//! [payload]`: the client sends `DATA` (keystrokes) and `RESIZE` (rows u16, cols u16), the
//! monitor sends `DATA` (terminal output) and `EXIT` (the agent's exit status, i32). The client
//! puts the user's terminal in raw mode, forwards SIGWINCH as `RESIZE`, and detaches on
//! ctrl-p ctrl-q (as Docker does), leaving the sandbox running. Also used by `lasso shell` on a
//! PTY master it holds itself (`proxy_pty`).

use super::signals::{poll, SignalPipe};
use super::{io_err, sys_err, SandboxError};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

pub const DATA: u8 = 0;
pub const RESIZE: u8 = 1;
pub const EXIT: u8 = 2;
/// Largest frame accepted; a peer sending more is broken or hostile.
const MAX_FRAME: usize = 1 << 20;

/// ctrl-p then ctrl-q.
const DETACH_KEYS: [u8; 2] = [0x10, 0x11];

/// How an attachment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The sandbox's process exited with this status.
    Exited(i32),
    /// The user detached; the sandbox keeps running.
    Detached,
}

pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(5 + payload.len());
    buf.push(kind);
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf)
}

/// Splits a byte stream into frames.
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, SandboxError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(SandboxError::Protocol(format!(
                "attach socket: frame of {len} bytes is larger than {MAX_FRAME}"
            )));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((kind, payload)))
    }
}

pub fn resize_payload(rows: u16, cols: u16) -> [u8; 4] {
    let r = rows.to_be_bytes();
    let c = cols.to_be_bytes();
    [r[0], r[1], c[0], c[1]]
}

/// The size of the terminal on `fd`, if it is one.
pub fn window_size(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into a valid struct.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Sets the size of the PTY on `fd` (the kernel then signals SIGWINCH to its foreground group).
pub fn set_window_size(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid struct.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

/// Receives one descriptor sent with SCM_RIGHTS (the console socket protocol).
pub fn recv_fd(sock: &UnixStream) -> Result<OwnedFd, SandboxError> {
    let mut byte = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(sys_err("receive the terminal from the console socket"))?;
    for c in msg.cmsgs().map_err(sys_err("console socket message"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(SandboxError::Protocol(
        "console socket: no terminal descriptor received".into(),
    ))
}

/// Raw mode on the user's terminal for the life of the guard.
pub struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    /// None when stdin is not a terminal (scripts, CI): then bytes pass as they are.
    pub fn enter(fd: BorrowedFd<'_>) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the descriptor is stdin, open for the life of the process.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &self.saved);
    }
}

/// Finds ctrl-p ctrl-q in typed input; `pending` carries a ctrl-p seen at the end of the last
/// read. Returns the bytes to forward and whether to detach.
fn scan_detach(input: &[u8], pending: &mut bool) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len() + 1);
    for &b in input {
        if *pending {
            *pending = false;
            if b == DETACH_KEYS[1] {
                return (out, true);
            }
            out.push(DETACH_KEYS[0]);
        }
        if b == DETACH_KEYS[0] {
            *pending = true;
        } else {
            out.push(b);
        }
    }
    (out, false)
}

/// Attaches this terminal to the sandbox behind `socket` until it exits or the user detaches.
pub fn attach(socket: &Path) -> Result<Ended, SandboxError> {
    let mut sock =
        UnixStream::connect(socket).map_err(io_err(format!("connect to {}", socket.display())))?;
    let winch = SignalPipe::install(&[libc::SIGWINCH])?;
    let stdin = std::io::stdin();
    let _raw = RawMode::enter(stdin.as_fd());
    if let Some((r, c)) = window_size(0) {
        write_frame(&mut sock, RESIZE, &resize_payload(r, c)).map_err(io_err("attach socket"))?;
    }
    let mut frames = FrameReader::default();
    let mut pending = false;
    let mut stdin_open = true;
    let mut out = std::io::stdout();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let in_fd = if stdin_open { 0 } else { -1 };
        let ready = poll(&[sock.as_raw_fd(), in_fd, winch.fd()], -1)?;
        if ready[2] != 0 && !winch.drain().is_empty() {
            if let Some((r, c)) = window_size(0) {
                let _ = write_frame(&mut sock, RESIZE, &resize_payload(r, c));
            }
        }
        if ready[1] != 0 {
            let n = nix::unistd::read(stdin.as_fd(), &mut buf).unwrap_or(0);
            if n == 0 {
                stdin_open = false;
            } else {
                let (fwd, detach) = scan_detach(&buf[..n], &mut pending);
                if !fwd.is_empty() {
                    write_frame(&mut sock, DATA, &fwd).map_err(io_err("attach socket"))?;
                }
                if detach {
                    return Ok(Ended::Detached);
                }
            }
        }
        if ready[0] != 0 {
            let n = sock.read(&mut buf).map_err(io_err("attach socket"))?;
            if n == 0 {
                return Err(SandboxError::Protocol(
                    "the sandbox's monitor closed the attach socket".into(),
                ));
            }
            frames.push(&buf[..n]);
            while let Some((kind, payload)) = frames.next_frame()? {
                match kind {
                    DATA => {
                        let _ = out.write_all(&payload);
                        let _ = out.flush();
                    }
                    EXIT if payload.len() == 4 => {
                        let code =
                            i32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                        return Ok(Ended::Exited(code));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Connects this terminal to a PTY master held here (a `lasso shell` in a running sandbox)
/// until `pidfd`'s process exits. Returns when it has; the caller reaps it.
pub fn proxy_pty(master: &OwnedFd, pidfd: &OwnedFd) -> Result<(), SandboxError> {
    let winch = SignalPipe::install(&[libc::SIGWINCH])?;
    let stdin = std::io::stdin();
    let _raw = RawMode::enter(stdin.as_fd());
    if let Some((r, c)) = window_size(0) {
        set_window_size(master.as_raw_fd(), r, c);
    }
    let mut out = std::io::stdout();
    let mut buf = vec![0u8; 32 * 1024];
    let mut stdin_open = true;
    loop {
        let in_fd = if stdin_open { 0 } else { -1 };
        let ready = poll(
            &[master.as_raw_fd(), in_fd, winch.fd(), pidfd.as_raw_fd()],
            -1,
        )?;
        if ready[2] != 0 && !winch.drain().is_empty() {
            if let Some((r, c)) = window_size(0) {
                set_window_size(master.as_raw_fd(), r, c);
            }
        }
        if ready[1] != 0 {
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = nix::unistd::write(master, &buf[..n]);
                }
                _ => stdin_open = false,
            }
        }
        if ready[0] != 0 {
            match nix::unistd::read(master.as_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
                // EIO: every slave descriptor closed, the shell is gone.
                _ => return Ok(()),
            }
        }
        if ready[3] != 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_p_ctrl_q_detaches_and_a_lone_ctrl_p_is_typed() {
        let mut pending = false;
        assert_eq!(
            scan_detach(b"ab\x10", &mut pending),
            (b"ab".to_vec(), false)
        );
        assert!(pending);
        assert_eq!(scan_detach(b"\x11rest", &mut pending), (vec![], true));
        let mut pending = false;
        assert_eq!(
            scan_detach(b"\x10x", &mut pending),
            (b"\x10x".to_vec(), false)
        );
    }

    #[test]
    fn frames_split_across_reads_are_reassembled_and_huge_ones_refused() {
        let mut wire = Vec::new();
        write_frame(&mut wire, DATA, b"hello").unwrap();
        write_frame(&mut wire, EXIT, &7i32.to_be_bytes()).unwrap();
        let mut r = FrameReader::default();
        r.push(&wire[..3]);
        assert!(r.next_frame().unwrap().is_none());
        r.push(&wire[3..]);
        assert_eq!(r.next_frame().unwrap(), Some((DATA, b"hello".to_vec())));
        assert_eq!(
            r.next_frame().unwrap(),
            Some((EXIT, 7i32.to_be_bytes().to_vec()))
        );
        let mut r = FrameReader::default();
        r.push(&[DATA, 0xff, 0xff, 0xff, 0xff]);
        assert!(r.next_frame().is_err());
    }
}
