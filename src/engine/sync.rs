//! The typed protocol between the runtime and the processes it forks (init, and the helper of
//! `exec`), over a SOCK_SEQPACKET socketpair: one JSON `Message` per packet, so a message is
//! never split or merged. Each protocol step is a method (`mappings_written`, `wait_ready`), so
//! no logic writes bare bytes to a descriptor.

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the container process exited during setup before reporting an error")]
    Closed,
    #[error("sync socket: {0}")]
    Sys(#[from] nix::Error),
    #[error("sync socket: malformed message: {0}")]
    Malformed(String),
    #[error("{0}")]
    Failed(String),
    #[error("sync protocol: expected {expected}, got {got:?}")]
    Unexpected {
        expected: &'static str,
        got: Message,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Message {
    /// Runtime -> child: ID maps are written and the child is in the container's cgroup; go on.
    Proceed,
    /// Runtime -> init, when init was let go before the runtime's part of its cgroup
    /// placement (lasso's own sandboxes): init is now in all of the container's cgroups.
    Placed,
    /// Init -> runtime: namespaces and mounts are made, run the prestart/createRuntime hooks.
    RunRuntimeHooks,
    /// Runtime -> init: the runtime hooks ran.
    HooksDone,
    /// Init -> runtime: set up and blocked until `start`.
    Ready,
    /// Exec helper -> runtime: host PID of the process that runs the command.
    ExecPid(i32),
    /// Either way: setup failed; the text says why.
    Failed(String),
}

/// One end of the socketpair.
#[derive(Debug)]
pub struct Channel(OwnedFd);

impl Channel {
    /// A connected pair, both ends close-on-exec (so neither leaks into the container).
    pub fn pair() -> Result<(Channel, Channel), SyncError> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((Channel(a), Channel(b)))
    }

    fn send(&self, msg: &Message) -> Result<(), SyncError> {
        let bytes = serde_json::to_vec(msg).expect("messages serialise");
        loop {
            match nix::sys::socket::send(
                self.0.as_raw_fd(),
                &bytes,
                nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            ) {
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EPIPE) | Err(nix::Error::ECONNRESET) => {
                    return Err(SyncError::Closed)
                }
                Err(e) => return Err(e.into()),
                Ok(_) => return Ok(()),
            }
        }
    }

    fn recv(&self) -> Result<Message, SyncError> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match nix::sys::socket::recv(
                self.0.as_raw_fd(),
                &mut buf,
                nix::sys::socket::MsgFlags::empty(),
            ) {
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::ECONNRESET) => return Err(SyncError::Closed),
                Err(e) => return Err(e.into()),
                Ok(n) => break n,
            }
        };
        if n == 0 {
            return Err(SyncError::Closed);
        }
        serde_json::from_slice(&buf[..n]).map_err(|e| SyncError::Malformed(e.to_string()))
    }

    /// Receives a message, turning the peer's `Failed` into an error.
    fn recv_ok(&self) -> Result<Message, SyncError> {
        match self.recv()? {
            Message::Failed(why) => Err(SyncError::Failed(why)),
            m => Ok(m),
        }
    }

    // --- runtime side ---

    pub fn proceed(&self) -> Result<(), SyncError> {
        self.send(&Message::Proceed)
    }

    pub fn placed(&self) -> Result<(), SyncError> {
        self.send(&Message::Placed)
    }

    pub fn hooks_done(&self) -> Result<(), SyncError> {
        self.send(&Message::HooksDone)
    }

    /// Waits for init's next step: a request to run the runtime hooks, or ready.
    pub fn wait_init_step(&self) -> Result<Message, SyncError> {
        match self.recv_ok()? {
            m @ (Message::RunRuntimeHooks | Message::Ready) => Ok(m),
            got => Err(SyncError::Unexpected {
                expected: "RunRuntimeHooks or Ready",
                got,
            }),
        }
    }

    pub fn wait_exec_pid(&self) -> Result<i32, SyncError> {
        match self.recv_ok()? {
            Message::ExecPid(pid) => Ok(pid),
            got => Err(SyncError::Unexpected {
                expected: "ExecPid",
                got,
            }),
        }
    }

    /// Waits for the outcome of the last setup step of an exec'd process: the socket closes
    /// (close-on-exec) on success, or a `Failed` arrives.
    pub fn wait_exec_outcome(&self) -> Result<(), SyncError> {
        match self.recv() {
            Err(SyncError::Closed) => Ok(()),
            Ok(Message::Failed(why)) => Err(SyncError::Failed(why)),
            Ok(got) => Err(SyncError::Unexpected {
                expected: "close on exec",
                got,
            }),
            Err(e) => Err(e),
        }
    }

    // --- child side ---

    pub fn wait_proceed(&self) -> Result<(), SyncError> {
        match self.recv_ok()? {
            Message::Proceed => Ok(()),
            got => Err(SyncError::Unexpected {
                expected: "Proceed",
                got,
            }),
        }
    }

    pub fn wait_placed(&self) -> Result<(), SyncError> {
        match self.recv_ok()? {
            Message::Placed => Ok(()),
            got => Err(SyncError::Unexpected {
                expected: "Placed",
                got,
            }),
        }
    }

    pub fn request_runtime_hooks(&self) -> Result<(), SyncError> {
        self.send(&Message::RunRuntimeHooks)?;
        match self.recv_ok()? {
            Message::HooksDone => Ok(()),
            got => Err(SyncError::Unexpected {
                expected: "HooksDone",
                got,
            }),
        }
    }

    pub fn ready(&self) -> Result<(), SyncError> {
        self.send(&Message::Ready)
    }

    pub fn exec_pid(&self, pid: i32) -> Result<(), SyncError> {
        self.send(&Message::ExecPid(pid))
    }

    /// Reports a setup failure to the other side (best effort: it may be gone).
    pub fn fail(&self, why: &str) {
        let _ = self.send(&Message::Failed(why.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_text_crosses_the_socket_as_an_error() {
        let (a, b) = Channel::pair().unwrap();
        b.fail("mount /proc: EPERM");
        match a.wait_init_step() {
            Err(SyncError::Failed(why)) => assert_eq!(why, "mount /proc: EPERM"),
            other => panic!("{other:?}"),
        }
        drop(b);
        assert!(matches!(a.wait_init_step(), Err(SyncError::Closed)));
    }
}
