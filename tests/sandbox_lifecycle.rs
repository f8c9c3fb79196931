//! The lifecycle through the `lasso` binary: exit statuses of `run`, signals, `up` with a real
//! terminal (tmux) including detach and re-attach, `status --json`, `exec`, `stop`, `down`, a
//! killed monitor cleaned up by the next command (its daemonised pasta included), and 50
//! sandboxes that leave no directory, engine state, cgroup, namespace or process (pasta
//! included) behind.

mod sandbox_support;

use sandbox_support::*;
use std::process::Command;
use std::time::Duration;

fn needs_root() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root (to become nobody, and for cgroups)");
        return false;
    }
    true
}

fn code(o: &std::process::Output) -> Option<i32> {
    o.status.code()
}

fn status_json(w: &World) -> Vec<serde_json::Value> {
    let out = run(&mut w.lasso(&["status", "--json"]));
    assert!(out.status.success(), "{}", text(&out));
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    // Root's sandboxes share /run/lasso with other tests: keep this world's.
    all.into_iter()
        .filter(|r| r["dir"].as_str() == w.ws.to_str())
        .collect()
}

fn alive(pid: i64) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    pid > 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}

#[test]
fn run_exit_status_is_the_commands_as_root_and_rootless() {
    if !needs_root() {
        return;
    }
    for who in [As::Root, As::Nobody] {
        let w = world(who);
        for (script, want) in [
            ("exit 0", 0),
            ("exit 3", 3),
            // `kill` is blocked by the default profile; through a variable the shell's builtin runs.
            ("k=kill; $k -9 $$", 0),
            ("exec /nonexistent", 127),
        ] {
            let out = run(&mut w.lasso(&["run", "--", "/bin/sh", "-c", script]));
            // `kill -9 $$` from inside is dropped: the shell is its namespace's init.
            assert_eq!(code(&out), Some(want), "{who:?} {script}\n{}", text(&out));
        }
        let out = run(&mut w.lasso(&[
            "run",
            "--",
            "/bin/sh",
            "-c",
            "sleep 60 & k=kill; $k -9 $!; wait $!",
        ]));
        assert_eq!(code(&out), Some(128 + 9), "{}", text(&out));
        assert!(w.leftovers().is_empty());
    }
}

#[test]
fn run_forwards_term_and_a_second_one_kills() {
    if !needs_root() {
        return;
    }
    let w = world(As::Root);
    let mut child = w
        .lasso(&[
            "run",
            "--",
            "/bin/sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut stdout = child.stdout.take().unwrap();
    let mut b = [0u8; 6];
    std::io::Read::read_exact(&mut stdout, &mut b).unwrap();
    // SAFETY: signals the lasso process this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(42));

    let mut child = w
        .lasso(&[
            "run",
            "--",
            "/bin/sh",
            "-c",
            "echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    std::io::Read::read_exact(&mut out, &mut b).unwrap();
    let pid = child.id() as i32;
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(128 + 9));
    assert!(w.leftovers().is_empty());
}

/// The agent's terminal has the user's size from its first instruction, before any attach
/// sent one: started detached from a 100x30 terminal, it reads 30 rows and 100 columns (a
/// TUI agent that reads its size once at start must not draw for 0x0).
#[test]
fn the_agents_terminal_has_the_users_size_before_any_attach() {
    if !needs_root() || !has_tmux() {
        return;
    }
    let w = world(As::Root);
    let name = format!("lasso-size-{}", std::process::id());
    let _t = tmux(
        &name,
        &format!("{LASSO} up --detach --agent shell -- /bin/sh -c 'stty size > /workspace/size; sleep 60'"),
        &w,
    );
    wait_until("up --detach to return", || screen(&name).contains("EXIT=0"));
    let size = w.ws.join("size");
    wait_until("the agent's report", || {
        std::fs::read_to_string(&size).is_ok_and(|s| s.ends_with('\n'))
    });
    assert_eq!(std::fs::read_to_string(&size).unwrap(), "30 100\n");
    let ids = w.leftovers();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let out = run(&mut w.lasso(&["stop", "-t", "0", &ids[0]]));
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn up_detach_attach_resize_and_exit_through_a_real_terminal() {
    if !needs_root() {
        return;
    }
    if !has_tmux() {
        return;
    }
    let w = world(As::Root);
    let name = format!("lasso-up-{}", std::process::id());
    let script = "echo started; stty size; trap 'stty size' WINCH; while :; do if read x; then echo got:$x; [ \"$x\" = quit ] && exit 5; fi; done";
    std::fs::write(w.ws.join("agent.sh"), script).unwrap();
    let _t = tmux(
        &name,
        &format!("{LASSO} up --agent shell -- /bin/sh /workspace/agent.sh"),
        &w,
    );
    wait_until("the agent's first output", || {
        screen(&name).contains("30 100")
    });
    keys(&name, &["hello", "Enter"]);
    wait_until("the echo", || screen(&name).contains("got:hello"));
    Command::new("tmux")
        .args(["resize-window", "-t", &name, "-x", "120", "-y", "40"])
        .status()
        .unwrap();
    wait_until("SIGWINCH inside", || screen(&name).contains("40 120"));
    keys(&name, &["C-p", "C-q"]);
    wait_until("detach", || screen(&name).contains("EXIT=0"));
    let rows = status_json(&w);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let id = rows[0]["id"].as_str().unwrap().to_string();
    assert_eq!(rows[0]["agent"], "shell");
    assert_eq!(rows[0]["profile"], "standard");
    assert_eq!(
        rows[0]["network"], "allowlist",
        "the standard profile's mode"
    );
    assert_eq!(rows[0]["state"], "running");
    assert!(rows[0]["uptime_secs"].as_i64().is_some());

    let out = run(&mut w.lasso(&[
        "exec",
        &id,
        "--",
        "/bin/sh",
        "-c",
        "id -u; hostname; exit 9",
    ]));
    assert_eq!(code(&out), Some(9), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("1000") && s.contains(&format!("lasso-{id}")),
        "{s}"
    );

    let name3 = format!("{name}-sh");
    let _t3 = tmux(&name3, &format!("{LASSO} shell {id}"), &w);
    keys(&name3, &["echo $((6*7)) $(id -u) $(tty)", "Enter"]);
    wait_until("the shell's answer", || {
        screen(&name3).contains("42 1000 /dev/pts/")
    });
    keys(&name3, &["exit 3", "Enter"]);
    wait_until("the shell's exit status", || {
        screen(&name3).contains("EXIT=3")
    });

    let name2 = format!("{name}-2");
    let _t2 = tmux(&name2, &format!("{LASSO} attach {id}"), &w);
    wait_until("replayed output", || screen(&name2).contains("got:hello"));
    keys(&name2, &["quit", "Enter"]);
    wait_until("the agent's exit status", || {
        screen(&name2).contains("EXIT=5")
    });
    wait_until("cleanup", || w.leftovers().is_empty());
    assert!(status_json(&w).is_empty());
}

fn up_detached(w: &World) -> (String, i64, i64) {
    let out = run(&mut w.lasso(&[
        "up",
        "--detach",
        "--agent",
        "shell",
        "--",
        "/bin/sh",
        "-c",
        "while :; do sleep 1; done",
    ]));
    assert!(out.status.success(), "{}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let rows = status_json(w);
    let row = rows
        .iter()
        .find(|r| r["id"] == id.as_str())
        .expect("listed");
    (
        id,
        row["monitor_pid"].as_i64().unwrap(),
        row["init_pid"].as_i64().unwrap(),
    )
}

fn engine_and_cgroup_gone(id: &str) -> Result<(), String> {
    if std::path::Path::new("/run/lasso/engine").join(id).exists() {
        return Err(format!("engine state of {id} left"));
    }
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        // The sandbox's cgroup is /lasso-<id>; /lasso/<id> was the layout before.
        for cg in [
            entry.path().join(format!("lasso-{id}")),
            entry.path().join("lasso").join(id),
        ] {
            if cg.exists() {
                return Err(format!("cgroup {} left", cg.display()));
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    if mounts.contains(id) {
        return Err(format!("a host mount names {id}"));
    }
    Ok(())
}

#[test]
fn a_killed_monitor_is_cleaned_up_by_the_next_command() {
    if !needs_root() {
        return;
    }
    let w = world(As::Root);
    let (id, monitor, init) = up_detached(&w);
    assert!(alive(monitor) && alive(init));
    // The default profile has a network: one daemonised pasta, no child of the monitor.
    assert_eq!(w.pastas(&id).len(), 1, "the sandbox's pasta");
    // SAFETY: the monitor was started by this test (through lasso up).
    unsafe { libc::kill(monitor as i32, libc::SIGKILL) };
    wait_until("the monitor to die", || !alive(monitor));
    // The next lasso command (this one, or one of a concurrent test) removes the leftovers.
    assert!(status_json(&w).is_empty(), "a dead sandbox is not listed");
    assert!(w.leftovers().is_empty());
    wait_until("init to be killed", || !alive(init));
    assert_eq!(w.pastas(&id), Vec::<i32>::new(), "pasta left running");
    engine_and_cgroup_gone(&id).unwrap();
}

#[test]
fn stop_and_down_end_sandboxes_and_remove_everything() {
    if !needs_root() {
        return;
    }
    let w = world(As::Root);
    let (a, _, init_a) = up_detached(&w);
    let (b, _, init_b) = up_detached(&w);
    let out = run(&mut w.lasso(&["stop", "-t", "1", &a]));
    assert!(out.status.success(), "{}", text(&out));
    assert!(!alive(init_a));
    let ids: Vec<_> = status_json(&w)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec![b.clone()]);
    let out = run(&mut w.lasso(&["stop", &a]));
    assert_eq!(
        code(&out),
        Some(2),
        "stopping a gone sandbox is an error: {}",
        text(&out)
    );
    // `down` stops every sandbox of this user, which as root includes other tests': use
    // `stop` on ours and `down` in the unprivileged test below.
    let out = run(&mut w.lasso(&["stop", "-t", "0", &b]));
    assert!(out.status.success(), "{}", text(&out));
    assert!(!alive(init_b));
    assert!(w.leftovers().is_empty());
    engine_and_cgroup_gone(&a).unwrap();
    engine_and_cgroup_gone(&b).unwrap();
}

#[test]
fn rootless_up_exec_status_and_down() {
    if !needs_root() {
        return;
    }
    let w = world(As::Nobody);
    let (a, _, ia) = up_detached(&w);
    let (_b, _, ib) = up_detached(&w);
    assert_eq!(status_json(&w).len(), 2);
    let out = run(&mut w.lasso(&[
        "exec",
        &a,
        "--",
        "/bin/sh",
        "-c",
        "echo hi > /workspace/from-exec; id -u",
    ]));
    // A rootless exec session runs gated, as the sandbox's agent user.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1000\n",
        "{}",
        text(&out)
    );
    assert!(w.ws.join("from-exec").exists());
    let out = run(&mut w.lasso(&["down", "-t", "0"]));
    assert!(out.status.success(), "{}", text(&out));
    assert!(!alive(ia) && !alive(ib));
    assert!(status_json(&w).is_empty());
    assert!(sandbox_support::sandbox_dirs_of(&w.runtime(), &w.ws).is_empty());
}

/// The namespaces of process `pid` that are not this test's own (`net:[4026532...]`): a
/// sandbox's init has seven of its own.
fn own_namespaces(pid: i32) -> Vec<String> {
    let link = |p: String| std::fs::read_link(p).ok().map(|l| l.display().to_string());
    ["user", "mnt", "pid", "ipc", "uts", "cgroup", "net"]
        .iter()
        .filter_map(|k| {
            let theirs = link(format!("/proc/{pid}/ns/{k}"))?;
            (link(format!("/proc/self/ns/{k}")) != Some(theirs.clone())).then_some(theirs)
        })
        .collect()
}

/// Seconds since boot in clock ticks, as /proc/PID/stat counts a process's start.
fn now_ticks() -> u64 {
    let up = std::fs::read_to_string("/proc/uptime").unwrap();
    let secs: f64 = up.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: sysconf takes and returns integers only.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (secs * hz) as u64
}

/// Live processes of the pid namespace `pid_ns` (`pid:[4026532...]`) that started in
/// `[from, to)` (clock ticks since boot), with their namespaces among `namespaces`. A process
/// never changes its pid namespace, and while the sandbox lived no other namespace could have
/// its number, so such a process is the sandbox's. (A namespace's number is reused as soon as it
/// is freed: checking every process for every namespace found other tests' new sandboxes, and
/// processes that entered new namespaces after they started.) Zombies are left out: they run
/// nothing. With `pastas` (pasta is in the sandbox's network namespace, not in its pid one),
/// the monitor's exit (descriptors) and `engine_and_cgroup_gone` (bind mounts), nothing holds
/// the sandbox's namespaces.
fn members_left(namespaces: &[String], pid_ns: &str, from: u64, to: u64) -> Vec<String> {
    let started_in_window = |pid: i32| {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let rest: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let start: u64 = rest.get(19).and_then(|s| s.parse().ok()).unwrap_or(0);
        rest.first() != Some(&"Z") && (from..to).contains(&start)
    };
    let ns = |pid: i32, kind: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
            .map(|l| l.display().to_string())
            .unwrap_or_default()
    };
    host_pids()
        .into_iter()
        .filter(|p| started_in_window(*p) && ns(*p, "pid") == pid_ns)
        .map(|p| {
            let held: Vec<String> = ["user", "mnt", "pid", "ipc", "uts", "cgroup", "net"]
                .iter()
                .map(|k| ns(p, k))
                .filter(|n| namespaces.contains(n))
                .collect();
            format!("process {p} in {held:?}")
        })
        .collect()
}

#[test]
fn fifty_sandboxes_leave_nothing_behind() {
    if !needs_root() {
        return;
    }
    let w = world(As::Root);
    let mut ids = Vec::new();
    for _ in 0..50 {
        let up_began = now_ticks();
        let out = run(&mut w.lasso(&[
            "up", "--detach", "--agent", "shell", "--", "/bin/sh", "-c", "sleep 60",
        ]));
        assert!(out.status.success(), "{}", text(&out));
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let row = status_json(&w)
            .into_iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap();
        let init = row["init_pid"].as_i64().unwrap();
        let namespaces = own_namespaces(init as i32);
        assert_eq!(namespaces.len(), 7, "{id}: {namespaces:?}");
        // A tick of slack on both sides of the window: start times are whole ticks.
        let stop_began = now_ticks() + 1;
        let out = run(&mut w.lasso(&["stop", "-t", "0", &id]));
        assert!(out.status.success(), "{}", text(&out));
        assert!(!alive(init), "init of {id} still runs");
        assert_eq!(w.pastas(&id), Vec::<i32>::new(), "pasta of {id} still runs");
        let pid_ns = namespaces.iter().find(|n| n.starts_with("pid:")).unwrap();
        let left = members_left(&namespaces, pid_ns, up_began.saturating_sub(1), stop_began);
        assert_eq!(left, Vec::<String>::new(), "{id}'s namespaces");
        ids.push(id);
    }
    assert!(w.leftovers().is_empty());
    for id in &ids {
        engine_and_cgroup_gone(id).unwrap();
        assert!(!std::path::Path::new("/run/lasso").join(id).exists());
    }
}

#[test]
fn run_writes_a_sealed_audit_log_with_start_and_stop() {
    if !needs_root() {
        return;
    }
    for who in [As::Root, As::Nobody] {
        let w = world(who);
        let out = run(&mut w.lasso(&["run", "--", "/bin/sh", "-c", "exit 6"]));
        assert_eq!(code(&out), Some(6), "{}", text(&out));
        let id = w.only_log();
        w.assert_log_sealed(&id);
        let out = run(&mut w.lasso(&["audit", "view", &id]));
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(
            s.contains("sandbox.start") && s.contains("exit status 6"),
            "{s}"
        );
    }
}
