//! `lasso-runc exec`: a process joins every namespace of a running container, gets the exit
//! code back, honours --detach/--pid-file/--user/--env/--cwd, and never exposes the host binary.

mod runc_support;
use runc_support::*;

fn running(runc: &Runc, script: &str, name: &str) -> (Bundle, String) {
    start(runc, Bundle::new(script), name)
}

/// A running container whose root is writable (the watcher records what it sees there).
fn running_rw(runc: &Runc, script: &str, name: &str) -> (Bundle, String) {
    let b = Bundle::new(script);
    b.edit(|s| s["root"]["readonly"] = false.into());
    start(runc, b, name)
}

fn start(runc: &Runc, b: Bundle, name: &str) -> (Bundle, String) {
    let id = unique_id(name);
    let out = runc.create(&b, &id);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(runc.exec(&["start", &id]).status.success());
    (b, id)
}

#[test]
fn exec_joins_the_containers_namespaces_and_returns_the_exit_code() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let (_b, id) = running(&runc, "sleep 1000", "exec");
    let _g = Guard::new(&runc, &id);
    let init = runc.init_pid(&id);
    let out = runc.exec(&[
        "exec",
        &id,
        "sh",
        "-c",
        "hostname; for n in pid net mnt ipc uts; do readlink /proc/self/ns/$n; done; exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("lasso\n"), "{text}");
    for n in ["pid", "net", "mnt", "ipc", "uts"] {
        let theirs = std::fs::read_link(format!("/proc/{init}/ns/{n}")).unwrap();
        assert!(
            text.contains(theirs.to_str().unwrap()),
            "{n} not joined: {text}"
        );
    }
}

#[test]
fn exec_overrides_user_env_and_cwd() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let (_b, id) = running(&runc, "sleep 1000", "execuser");
    let _g = Guard::new(&runc, &id);
    let out = runc.exec(&[
        "exec",
        "--user",
        "1000:1000",
        "--env",
        "X=42",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "id -u; id -g; echo $X; pwd; ls /proc/self/fd | wc -l",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ls itself opens one directory: 0, 1, 2 and its own = 4 entries; no runtime descriptor.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1000\n1000\n42\n/tmp\n4\n"
    );
}

#[test]
fn exec_detach_writes_the_pid_file_of_a_process_in_the_container() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let (b, id) = running(&runc, "sleep 1000", "execdetach");
    let _g = Guard::new(&runc, &id);
    let pid_file = b.path().join("exec.pid");
    // The detached process keeps its stdio: give it none that the test would wait on.
    let status = runc
        .cmd()
        .args([
            "exec",
            "--detach",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
            "sleep",
            "1000",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let init = runc.init_pid(&id);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap()
    );
    let ps = runc.exec(&["ps", "--format", "json", &id]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).unwrap();
    assert!(pids.contains(&pid) && pids.contains(&init), "{pids:?}");
    // `kill --all` reaches the exec'd process too.
    assert!(runc.exec(&["kill", "--all", &id, "KILL"]).status.success());
    // The exec'd process was re-parented to us: init's exit waits until we reap it.
    let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
    assert!(
        matches!(
            st,
            nix::sys::wait::WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)
        ),
        "{st:?}"
    );
    assert!(runc.wait_status(&id, "stopped"));
}

#[test]
fn exec_into_a_stopped_container_says_not_running() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let (_b, id) = running(&runc, "true", "execstopped");
    let _g = Guard::new(&runc, &id);
    assert!(runc.wait_status(&id, "stopped"));
    let out = runc.exec(&["exec", &id, "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
}

#[test]
fn exec_helper_never_shows_the_host_binary_to_the_container() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    // A watcher inside the container keeps resolving every /proc/<pid>/exe it can see, while
    // execs come and go; any hit on the runtime binary is recorded.
    let (b, id) = running_rw(
        &runc,
        "while true; do ls -l /proc/[0-9]*/exe 2>/dev/null | grep lasso >> /hits; done",
        "exechost",
    );
    let _g = Guard::new(&runc, &id);
    // A long PATH keeps each exec'd process in the runtime's code (searching it) for a while
    // before execve, widening the window in which the watcher could catch it.
    let path = format!("PATH={}:/bin", vec!["/nonexistent"; 9000].join(":"));
    for _ in 0..30 {
        let out = runc.exec(&["exec", "--env", &path, &id, "true"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let hits = std::fs::read_to_string(b.rootfs().join("hits")).unwrap_or_default();
    assert!(hits.is_empty(), "container saw the host binary: {hits}");
}
