//! A rootless `lasso exec` session is made dumpable right before its execve so that its
//! unprivileged gate monitor can seize it; in that moment it is still the lasso binary. These
//! tests check from inside the sandbox, with a process of the agent's, that the session can be
//! reached neither in that window (held open by stopping the monitor's gate threads) nor
//! afterwards: no readlink or open of its /proc/PID/exe, no /proc/PID/mem, no /proc/PID/fd,
//! while the same probes succeed on the agent's own child. And from the host, that the session
//! stays the monitor's child (what Yama's ptrace_scope=1 asks of a tracer).

mod exec_rootless_support;
mod sandbox_support;

use exec_rootless_support::*;
use sandbox_support::*;
use std::process::{Command, Stdio};

/// Tells the watcher which process to probe: written whole and then renamed, as the watcher
/// polls for the file and must never read it half-written (an empty read ended the watcher,
/// and with it the sandbox, about once in 20 runs under load).
fn tell_target(w: &World, pid: u32) {
    let tmp = w.ws.join("target.tmp");
    std::fs::write(&tmp, pid.to_string()).unwrap();
    std::fs::rename(&tmp, w.ws.join("target")).unwrap();
}

/// Host pids of processes named `comm` whose parent is `parent`.
fn children_named(parent: u32, comm: &str) -> Vec<u32> {
    host_pids()
        .into_iter()
        .map(|pid| pid as u32)
        .filter(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            status.lines().any(|l| l == format!("Name:\t{comm}"))
                && status.lines().any(|l| l == format!("PPid:\t{parent}"))
        })
        .collect()
}

/// The pid of host process `pid` in its own (innermost) pid namespace.
fn inner_pid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    line.split_whitespace().last().unwrap().parse().unwrap()
}

/// Inside the sandbox: waits for /workspace/target, then tries what an agent would do to that
/// process and to a child of its own (the control), and reports errno names per attempt.
const WATCHER: &str = r#"
import os, time, subprocess, json
def probe(pid):
    out = {}
    for what, f in [
        ("exe_link", lambda: os.readlink(f"/proc/{pid}/exe")),
        ("exe_open", lambda: os.close(os.open(f"/proc/{pid}/exe", os.O_RDONLY))),
        ("mem_open", lambda: os.close(os.open(f"/proc/{pid}/mem", os.O_RDONLY))),
        ("fd_link", lambda: os.readlink(f"/proc/{pid}/fd/0")),
    ]:
        try:
            f()
            out[what] = "ok"
        except OSError as e:
            out[what] = str(e.errno)
    return out
while not os.path.exists("/workspace/target"):
    time.sleep(0.02)
pid = int(open("/workspace/target").read())
own = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
res = {"session": probe(pid), "own": probe(own.pid)}
own.kill()
open("/workspace/result.tmp", "w").write(json.dumps(res))
os.rename("/workspace/result.tmp", "/workspace/result")
time.sleep(60)
"#;

#[test]
fn sandbox_processes_cannot_reach_a_rootless_exec_session() {
    if !needs_root() {
        return;
    }
    let w = world(As::Nobody);
    std::fs::write(w.ws.join("watch.py"), WATCHER).unwrap();
    let s = up(&w, &["python3", "/workspace/watch.py"]);
    let mut session = w
        .lasso(&["exec", &s.id, "--", "sleep", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // setpriv execs lasso: the child's pid is the monitor's.
    let monitor = session.id();
    let mut sleeping = Vec::new();
    wait_until("the session's program", || {
        sleeping = children_named(monitor, "sleep");
        !sleeping.is_empty()
    });
    // Yama's ptrace_scope=1 lets a tracer seize only its descendants: the session must stay
    // the monitor's child after the engine's helper exits (the monitor is a subreaper).
    assert_eq!(sleeping.len(), 1, "{sleeping:?}");
    tell_target(&w, inner_pid(sleeping[0]));
    let result = w.ws.join("result");
    wait_until("the watcher's report", || result.exists());
    // Ended by its program's death, the session's monitor exits normally.
    // SAFETY: kill(2) of the session's program, which this test started.
    unsafe { libc::kill(sleeping[0] as i32, libc::SIGKILL) };
    let _ = session.wait();
    // The session (dumpable and of the same uid, like the window before its execve while it
    // is still the host binary) is out of reach.
    assert_session_out_of_reach(&result, "");
}

/// The pid of host process `pid`'s parent.
fn parent_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("PPid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The window before the session's execve: still the lasso binary, already dumpable (its
/// /proc entries belong to its user, not to root as a non-dumpable process's do), waiting in
/// its first execve (system call 59) for the gate.
fn in_the_window(pid: u32, lasso: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let owner = std::fs::metadata(format!("/proc/{pid}")).map(|m| m.uid());
    let call = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
    exe.as_deref() == Some(lasso) && owner.ok() == Some(NOBODY) && call.starts_with("59 ")
}

fn comm(tid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{tid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Runs `lasso ARGS` traced by this test (which is root) and holds each of its gate worker
/// threads (`lasso-gate-N`) at its first system call after it is named, before it can read any
/// notification: the session then waits in its first execve, dumpable and still the lasso
/// binary, for as long as the test likes. Reports the CLI's pid, then waits for `release`,
/// lets everything go, and returns once the CLI has exited. Only the CLI's threads are traced
/// (the engine's helper is a fork, which PTRACE_O_TRACECLONE does not follow), so the CLI's
/// own ptrace of the session is untouched.
fn run_with_gate_held(
    mut cmd: Command,
    started: std::sync::mpsc::Sender<u32>,
    release: std::sync::mpsc::Receiver<()>,
) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and makes one system call.
    unsafe {
        cmd.pre_exec(|| {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    serve(child.id() as i32, started, release);
    // Reaps the CLI, unless the trace's own wait did already.
    let _ = child.wait();
}

/// The tracer's loop of `run_with_gate_held`, until the CLI exits or is let go.
fn serve(
    leader: i32,
    started: std::sync::mpsc::Sender<u32>,
    release: std::sync::mpsc::Receiver<()>,
) {
    use std::collections::BTreeSet;
    let opts = libc::PTRACE_O_TRACECLONE
        | libc::PTRACE_O_TRACEEXEC
        | libc::PTRACE_O_TRACESYSGOOD
        | libc::PTRACE_O_EXITKILL;
    let mut tids: BTreeSet<i32> = [leader].into();
    let mut syscalls: BTreeSet<i32> = BTreeSet::new();
    let mut held: BTreeSet<i32> = BTreeSet::new();
    let mut first = true;
    let mut releasing = false;
    let _ = started.send(leader as u32);
    loop {
        if !releasing && release.try_recv().is_ok() {
            releasing = true;
            for t in std::mem::take(&mut held) {
                // SAFETY: PTRACE_DETACH of a tracee stopped at a system call; no pointers.
                unsafe { libc::ptrace(libc::PTRACE_DETACH, t, 0, 0) };
                tids.remove(&t);
            }
        }
        let mut any = false;
        for t in tids.clone() {
            let mut status = 0;
            // SAFETY: waitpid writes the status into a local.
            let r = unsafe { libc::waitpid(t, &mut status, libc::WNOHANG | libc::__WALL) };
            if r == 0 {
                continue;
            }
            any = true;
            if r < 0 || libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                tids.remove(&t);
                syscalls.remove(&t);
                if t == leader {
                    return;
                }
                continue;
            }
            let sig = libc::WSTOPSIG(status);
            let event = status >> 16;
            let mut deliver = 0;
            if first {
                first = false;
                // SAFETY: PTRACE_SETOPTIONS takes the options as data; no pointers.
                unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, t, 0, opts as libc::c_long) };
            } else if event == libc::PTRACE_EVENT_CLONE {
                let mut new = 0 as libc::c_ulong;
                // SAFETY: GETEVENTMSG writes one unsigned long into a local.
                unsafe { libc::ptrace(libc::PTRACE_GETEVENTMSG, t, 0, &mut new) };
                tids.insert(new as i32);
                syscalls.insert(new as i32);
            } else if sig == (libc::SIGTRAP | 0x80) {
                let name = comm(t);
                if name.starts_with("lasso-gate-") && !releasing {
                    held.insert(t);
                    continue;
                }
                if name != "lasso" {
                    // Named for another job: no need to watch its calls any longer.
                    syscalls.remove(&t);
                }
            } else if event == 0 && sig != libc::SIGSTOP && sig != libc::SIGTRAP {
                deliver = sig;
            }
            let how = if releasing {
                tids.remove(&t);
                libc::PTRACE_DETACH
            } else if syscalls.contains(&t) {
                libc::PTRACE_SYSCALL
            } else {
                libc::PTRACE_CONT
            };
            // SAFETY: resumes (or detaches) a stopped tracee; the data is a signal number.
            unsafe { libc::ptrace(how, t, 0, deliver as libc::c_long) };
        }
        if releasing && !tids.contains(&leader) && tids.is_empty() {
            // Detached while running: the CLI is an ordinary child again, for the caller.
            return;
        }
        if !any {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// Lets the held gate go when dropped.
struct Release(std::sync::mpsc::Sender<()>);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[test]
fn agent_cannot_open_a_rootless_session_while_it_is_still_lasso() {
    if !needs_root() {
        return;
    }
    let lasso = std::fs::canonicalize(LASSO).unwrap();
    let w = world(As::Nobody);
    std::fs::write(w.ws.join("watch.py"), WATCHER).unwrap();
    let s = up(&w, &["python3", "/workspace/watch.py"]);
    let mut cmd = w.lasso(&["exec", &s.id, "--", "sleep", "60"]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let (started_tx, started) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let tracer = std::thread::spawn(move || run_with_gate_held(cmd, started_tx, release_rx));
    // Should the test fail before the end, the gate goes free and the sandbox's stop ends
    // the session (and so its monitor, and the tracer).
    let _free = Release(release.clone());
    let cli = started.recv().unwrap();
    // The session: a child of the CLI (re-parented from the engine's helper) in the sandbox.
    let mut session = None;
    wait_until("the session to wait in its execve", || {
        session = host_pids()
            .into_iter()
            .map(|p| p as u32)
            .find(|&p| parent_of(p) == Some(cli) && in_the_window(p, &lasso));
        session.is_some()
    });
    let pid = session.unwrap();
    tell_target(&w, inner_pid(pid));
    let result = w.ws.join("result");
    wait_until("the watcher's report", || result.exists());
    let still = in_the_window(pid, &lasso);
    // SAFETY: kill(2) of the session this test started: it never runs its program.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let _ = release.send(());
    tracer.join().unwrap();
    assert!(still, "the session left the window before the probes ended");
    assert_session_out_of_reach(&result, " while it is lasso");
}

/// The probe's report at `result`: its control (a process of the agent's own Landlock domain)
/// was reachable, the session was not. (pidfd_getfd and ptrace itself are denied by the
/// seccomp baseline before Landlock is asked.)
fn assert_session_out_of_reach(result: &std::path::Path, when: &str) {
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(result).unwrap()).unwrap();
    for k in ["exe_link", "exe_open", "mem_open", "fd_link"] {
        assert_eq!(r["own"][k], "ok", "control {k}: {r}");
    }
    let denied = [libc::EACCES.to_string(), libc::EPERM.to_string()];
    for k in ["exe_link", "exe_open", "mem_open", "fd_link"] {
        let got = r["session"][k].as_str().unwrap_or_default().to_string();
        assert!(denied.contains(&got), "session {k}{when}: {r}");
    }
}
