//! `--console-socket` as runc does it: the caller listens on a Unix socket, lasso-runc sends
//! the pty master in one SCM_RIGHTS message, and the pty belongs to the container's devpts.

mod runc_support;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use runc_support::*;
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

/// Accepts one connection and receives the one descriptor sent on it.
fn receive_master(listener: &UnixListener) -> (OwnedFd, String) {
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .unwrap();
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            fd = fds.first().copied();
        }
    }
    let n = msg.bytes;
    let name = String::from_utf8_lossy(&buf[..n]).into_owned();
    // SAFETY: the descriptor arrived through SCM_RIGHTS and is ours alone.
    (
        unsafe { OwnedFd::from_raw_fd(fd.expect("no fd in the message")) },
        name,
    )
}

#[test]
fn console_socket_receives_a_pty_master_from_the_containers_devpts() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("tty; read line; echo got:$line; stat -c %t /dev/pts/0");
    b.edit(|s| s["process"]["terminal"] = true.into());
    let sock_dir = tempfile::Builder::new()
        .prefix("ocitest-sock")
        .tempdir()
        .unwrap();
    let sock = sock_dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = unique_id("console");
    let _g = Guard::new(&runc, &id);
    let receiver = std::thread::spawn(move || receive_master(&listener));
    let out = runc
        .cmd()
        .args(["create", "--console-socket"])
        .arg(&sock)
        .arg("--bundle")
        .arg(b.path())
        .arg(&id)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (master, name) = receiver.join().unwrap();
    assert_eq!(
        name, "/dev/pts/0",
        "the pty is numbered in the container's own devpts"
    );
    assert!(runc.exec(&["start", &id]).status.success());
    let mut f = std::fs::File::from(master);
    f.write_all(b"ping\n").unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 1024];
    // Read until the container closes the slave (EIO on the master).
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if text.contains("got:ping") && text.trim_end().ends_with("88") {
            break;
        }
    }
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(
        text.contains("got:ping"),
        "input through the master did not reach the container: {text}"
    );
    assert!(runc.wait_status(&id, "stopped"));
}

#[test]
fn terminal_without_console_socket_is_an_error_in_detached_create() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("true");
    b.edit(|s| s["process"]["terminal"] = true.into());
    let id = unique_id("noconsole");
    let out = runc.exec(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--console-socket"));
    assert!(!runc.root.path().join(&id).exists());
}

#[test]
fn exec_tty_sends_a_pty_of_the_container_over_the_console_socket() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("sleep 1000");
    let id = unique_id("exectty");
    let _g = Guard::new(&runc, &id);
    assert!(runc.create(&b, &id).status.success());
    assert!(runc.exec(&["start", &id]).status.success());
    let sock_dir = tempfile::Builder::new()
        .prefix("ocitest-sock")
        .tempdir()
        .unwrap();
    let sock = sock_dir.path().join("exec.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || receive_master(&listener));
    let out = runc
        .cmd()
        .args(["exec", "--tty", "--detach", "--console-socket"])
        .arg(&sock)
        .arg("--pid-file")
        .arg(b.path().join("exec.pid"))
        .args([&id, "sh", "-c", "tty; echo done"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (master, name) = receiver.join().unwrap();
    assert!(name.starts_with("/dev/pts/"), "{name}");
    let mut f = std::fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 256];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if text.contains("done") {
            break;
        }
    }
    assert!(
        text.contains(&name),
        "tty inside is not the pty sent: {text}"
    );
    // The exec'd process was re-parented to us (subreaper): reap it, or the container's init
    // could not finish dying at delete.
    let pid: i32 = std::fs::read_to_string(b.path().join("exec.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
}
