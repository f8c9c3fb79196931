//! Issue 6's remaining threats, through the `lasso` binary on the real kernel:
//! - a `lasso run` killed with SIGKILL takes its whole sandbox with it (the sandbox's init has
//!   a parent-death signal), and the next lasso command removes the rest (directory, engine
//!   state, cgroup, the daemonised pasta), as root and as an unprivileged user;
//! - root running lasso on a root-owned workspace: the agent is uid 1000 inside and *not*
//!   root on the host (checked in /proc from the host), yet what it writes belongs to root on
//!   the host (idmapped mount); where the filesystem cannot idmap, the refusal stays.
//! - the start-up shortcuts keep their promises: the agent's program runs inside its sandbox's
//!   cgroup from its first instruction (init is placed while it builds its mounts, and waits
//!   for that before its execve), and the host-view root exists only in the sandbox (nothing
//!   of the skeleton, nor the account files bound over its `/etc`, is written under the host's
//!   runtime directory).

mod sandbox_support;

use sandbox_support::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The record of this world's one sandbox once its init runs: (id, init pid).
fn running_sandbox(w: &World) -> (String, i32) {
    let mut found = None;
    wait_until("the sandbox to run", || {
        for id in w.leftovers() {
            let rec = std::fs::read_to_string(w.runtime().join(&id).join("record.json"))
                .unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&rec).unwrap_or_default();
            let pid = v["init_pid"].as_i64().unwrap_or(0);
            if v["state"] == "running" && pid > 0 {
                found = Some((id, pid as i32));
                return true;
            }
        }
        false
    });
    found.unwrap()
}

/// Start time of a live (not zombie) process: `None` once it is gone or a zombie.
fn live_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Every live process in the pid namespace of `init` (seen from the host), with start times.
fn namespace_members(init: i32) -> Vec<(i32, u64)> {
    let Ok(ns) = std::fs::read_link(format!("/proc/{init}/ns/pid")) else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/ns/pid"))
                .ok()
                .as_ref()
                == Some(&ns)
        })
        .filter_map(|p| Some((p, live_start_time(p)?)))
        .collect()
}

fn still_running(procs: &[(i32, u64)]) -> Vec<i32> {
    procs
        .iter()
        .filter(|(p, start)| live_start_time(*p) == Some(*start))
        .map(|(p, _)| *p)
        .collect()
}

fn spawn_quiet(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lasso")
}

fn engine_state_and_cgroups_gone(w: &World, id: &str) {
    let engine = w.runtime().join("engine").join(id);
    assert!(!engine.exists(), "engine state {} left", engine.display());
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        // The sandbox's cgroup is /lasso-<id>; /lasso/<id> was the layout before.
        for cg in [
            entry.path().join(format!("lasso-{id}")),
            entry.path().join("lasso").join(id),
        ] {
            assert!(!cg.exists(), "cgroup {} left", cg.display());
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(id), "a host mount names {id}");
}

#[test]
fn sigkilled_lasso_run_takes_its_sandbox_with_it() {
    if !is_root() {
        eprintln!("skipped: needs root (to become nobody, and for cgroups)");
        return;
    }
    for who in [As::Root, As::Nobody] {
        let w = world(who);
        // A shell as init with two children: the whole namespace must go, not just init.
        let mut lasso = spawn_quiet(&mut w.lasso(&[
            "run",
            "--",
            "/bin/sh",
            "-c",
            "sleep 1000 & sleep 1000 & wait",
        ]));
        let (id, init) = running_sandbox(&w);
        if w.gets_network() {
            wait_until("the sandbox's pasta", || w.pastas(&id).len() == 1);
        }
        let mut procs = Vec::new();
        wait_until("the sandbox's three processes", || {
            procs = namespace_members(init);
            procs.len() >= 3
        });
        // SIGKILL: lasso gets no chance to clean up or to signal anything itself.
        lasso.kill().unwrap();
        lasso.wait().unwrap();
        wait_until("every process of the sandbox to die", || {
            still_running(&procs).is_empty()
        });
        // The next command removes what the killed monitor left behind. As root the
        // runtime directory is shared with the other tests of this binary, running in
        // parallel: any of their lasso commands may be that next command, so the leftover
        // may already be gone here; if the sweep were broken it would still be there below.
        if !w.leftovers().contains(&id) {
            eprintln!("{who:?}: {id} was already cleaned up by a concurrent lasso command");
        }
        let out = run(&mut w.lasso(&["status", "--json"]));
        assert!(out.status.success(), "{}", text(&out));
        assert!(!String::from_utf8_lossy(&out.stdout).contains(&id));
        assert!(w.leftovers().is_empty(), "{who:?}: {:?}", w.leftovers());
        // pasta daemonised: no parent-death signal reaches it; the cleanup stops it.
        assert_eq!(
            w.pastas(&id),
            Vec::<i32>::new(),
            "{who:?}: pasta left running"
        );
        engine_state_and_cgroups_gone(&w, &id);
    }
}

#[test]
fn agents_first_instruction_already_runs_in_its_sandboxs_cgroup() {
    if !is_root() {
        eprintln!("skipped: needs root (for cgroups)");
        return;
    }
    let w = world(As::Root);
    let out = run(&mut w.lasso(&[
        "run",
        "--profile",
        "offline",
        "--",
        "/bin/cat",
        "/proc/self/cgroup",
    ]));
    assert!(out.status.success(), "{}", text(&out));
    let lines = String::from_utf8_lossy(&out.stdout).to_string();
    // `N:controllers:path`, one per hierarchy. The sandbox joins the hierarchies of the
    // controllers it uses (its limits, device list, freezer and process list); on a pure v2
    // host that is the one `0::` line. It stays in the caller's cgroup in the others (cpuset,
    // blkio, cpuacct alone, name=systemd, a hybrid host's near-empty cgroup2).
    let used = ["cpu", "devices", "freezer", "memory", "pids"];
    let pure_v2 = lines.lines().all(|l| l.starts_with("0::"));
    let mut joined = 0;
    for line in lines.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        let uses = if controllers.is_empty() {
            pure_v2
        } else {
            controllers.split(',').any(|c| used.contains(&c))
        };
        let name = path.rsplit('/').next().unwrap_or_default();
        let in_sandbox = name.strip_prefix("lasso-").is_some_and(|id| id.len() == 8);
        if uses {
            assert!(
                in_sandbox,
                "the program's first view of its {controllers:?} cgroup is outside the sandbox's: {line:?}\n{lines}"
            );
            joined += 1;
        } else {
            assert!(
                !path.contains("lasso"),
                "the sandbox joined a hierarchy it enforces nothing in: {line:?}\n{lines}"
            );
        }
    }
    assert!(joined > 0, "no cgroup of the sandbox: {lines}");
}

#[test]
fn host_view_root_is_never_written_on_the_host() {
    for who in [As::Root, As::Nobody] {
        let w = world(who);
        let mut lasso = spawn_quiet(&mut w.lasso(&[
            "run",
            "--profile",
            "offline",
            "--",
            "/bin/sh",
            "-c",
            // The account files are lasso's (the host has no `agent` user), and the sources
            // init bound them from are hidden under a later mount of the sandbox.
            "grep -q '^agent:' /etc/passwd && grep -q '^agent:' /etc/group \
             && grep -q '^lasso-' /etc/hostname && test -d /home/agent && test -k /tmp \
             && ! ls -A / /dev /run /tmp | grep -q lasso-etc && sleep 1000",
        ]));
        let (id, init) = running_sandbox(&w);
        // The shell found its skeleton's files only if it got as far as `sleep`.
        wait_until("the sandbox's shell to reach sleep", || {
            namespace_members(init).iter().any(|(pid, _)| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            })
        });
        let dir = w.runtime().join(&id);
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        // Nor the account files the root binds: init writes them into its own tmpfs.
        assert!(
            !names.iter().any(|n| n.starts_with("etc")),
            "{who:?}: account files under {}: {names:?}",
            dir.display()
        );
        assert!(
            !names.iter().any(|n| n == "rootfs"),
            "{who:?}: a skeleton tree under {}: {names:?}",
            dir.display()
        );
        // The shared mount point stays empty on the host: the root is the sandbox's tmpfs.
        let shared = w.runtime().join("root");
        assert_eq!(
            std::fs::read_dir(&shared).unwrap().count(),
            0,
            "{who:?}: {} is not empty",
            shared.display()
        );
        // The sandbox's shell found its skeleton (it is still sleeping, not exited with 1).
        assert!(
            lasso.try_wait().unwrap().is_none(),
            "{who:?}: the skeleton is incomplete"
        );
        lasso.kill().unwrap();
        lasso.wait().unwrap();
        let _ = run(&mut w.lasso(&["status"]));
    }
}

/// A root-owned project directory with world-traversable parents (root runs lasso on it).
fn root_owned_workspace(w: &World) -> PathBuf {
    let ws = w.base.join("root-project");
    std::fs::create_dir(&ws).unwrap();
    std::fs::write(ws.join("README"), "root's project\n").unwrap();
    std::os::unix::fs::chown(&ws, Some(0), Some(0)).unwrap();
    ws
}

fn host_ids(pid: i32, field: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

#[test]
fn root_owned_workspace_is_written_as_root_by_an_agent_that_is_not_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let w = world(As::Root);
    let ws = root_owned_workspace(&w);
    let script = "id -u > /workspace/inside-uid && touch /workspace/f && \
                  cat /workspace/README > /workspace/seen && \
                  while [ ! -e /workspace/stop ]; do sleep 0.05; done";
    let mut cmd = w.lasso(&[
        "run",
        "--dir",
        ws.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        script,
    ]);
    let mut lasso = spawn_quiet(cmd.current_dir(&ws));
    wait_until("the agent to write", || ws.join("seen").exists());
    let rec: Vec<String> = sandbox_dirs_of(&w.runtime(), &ws);
    assert_eq!(rec.len(), 1, "{rec:?}");
    let text = std::fs::read_to_string(w.runtime().join(&rec[0]).join("record.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let init = v["init_pid"].as_i64().unwrap() as i32;
    // From the host: the agent is neither root nor in group 0, in any of its IDs.
    for field in ["Uid:", "Gid:"] {
        let ids = host_ids(init, field);
        assert_eq!(ids.len(), 4, "{field} {ids:?}");
        assert!(
            ids.iter().all(|&i| i != 0),
            "agent is host {field} 0: {ids:?}"
        );
    }
    let groups = host_ids(init, "Groups:");
    assert!(!groups.contains(&0), "agent in host group 0: {groups:?}");
    std::fs::write(ws.join("stop"), "").unwrap();
    let status = lasso.wait().unwrap();
    assert_eq!(status.code(), Some(0));

    assert_eq!(
        std::fs::read_to_string(ws.join("inside-uid"))
            .unwrap()
            .trim(),
        "1000"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("seen")).unwrap(),
        "root's project\n"
    );
    for f in ["f", "inside-uid", "seen"] {
        let md = std::fs::metadata(ws.join(f)).unwrap();
        assert_eq!(
            (md.uid(), md.gid()),
            (0, 0),
            "{f} is not root's on the host"
        );
    }
    assert!(w.leftovers().is_empty());
    assert!(sandbox_dirs_of(&w.runtime(), &ws).is_empty());
}

#[test]
fn root_owned_workspace_that_cannot_be_idmapped_is_refused_with_a_chown_hint() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    // devpts is root's and supports no idmapped mounts.
    let w = world(As::Root);
    let dir = Path::new("/dev/pts");
    let out = run(&mut w.lasso(&[
        "run",
        "--force-dir",
        "--dir",
        dir.to_str().unwrap(),
        "--",
        "true",
    ]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("idmapped mount") && err.contains("chown"),
        "{err}"
    );
    assert!(sandbox_dirs_of(&w.runtime(), dir).is_empty());
}

// The engine's side of the first threat, without the exec gate: the gate's tracer already
// kills traced processes when it dies (PTRACE_O_EXITKILL), so the parent-death signal is what
// covers a runtime killed before the tracer attaches, and every library caller without a gate.
// A helper process (this binary re-run) is the runtime: it creates and starts a container whose
// init is its child, prints init's PID, and waits to be killed.

const HELPER: &str = "LASSO_STARTUP_RUNTIME";

#[test]
fn runtime_helper() {
    let Ok(mode) = std::env::var(HELPER) else {
        return; // only a helper when re-run by the tests below
    };
    // Never outlive the test that started this helper.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let env = |k: &str| PathBuf::from(std::env::var_os(k).unwrap());
    let rt = lasso::engine::container::Runtime::new(env("STARTUP_STATE"));
    let id = std::env::var("STARTUP_ID").unwrap();
    let c = rt
        .create(&lasso::engine::container::CreateOptions {
            id: id.clone(),
            bundle: env("STARTUP_BUNDLE"),
            die_with_parent: mode == "die",
            ..Default::default()
        })
        .unwrap();
    rt.start(&id).unwrap();
    // Straight to the descriptor: the test harness captures `println!` even of a helper.
    let mut out = std::io::stdout();
    std::io::Write::write_all(&mut out, format!("PID: {}\n", c.state.pid).as_bytes()).unwrap();
    std::io::Write::flush(&mut out).unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(1000));
    }
}

/// A busybox bundle running `sleep 1000` as its init.
fn sleep_bundle(dir: &Path) -> PathBuf {
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs/bin")).unwrap();
    std::fs::copy("/bin/busybox", bundle.join("rootfs/bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", bundle.join("rootfs/bin/sleep")).unwrap();
    let ok = Command::new("runc")
        .arg("spec")
        .current_dir(&bundle)
        .status()
        .unwrap()
        .success();
    assert!(ok, "runc spec");
    let path = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["/bin/sleep", "1000"]);
    // `runc spec` lists ambient capabilities that are not inheritable; sleep needs none.
    spec["process"]["capabilities"] = serde_json::json!({});
    std::fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
    bundle
}

/// Starts the helper runtime; returns it and init's host PID with its start time.
fn helper_runtime(mode: &str, dir: &Path, bundle: &Path, id: &str) -> (Child, i32, u64) {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "runtime_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER, mode)
        .env("STARTUP_STATE", dir.join("state"))
        .env("STARTUP_BUNDLE", bundle)
        .env("STARTUP_ID", id)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let pid: i32 = loop {
        let line = lines
            .next()
            .expect("helper exited before printing PID")
            .unwrap();
        // libtest prints `test runtime_helper ... ` without a newline before the output.
        if let Some((_, p)) = line.split_once("PID: ") {
            break p.trim().parse().unwrap();
        }
    };
    let start = live_start_time(pid).expect("init runs");
    (child, pid, start)
}

fn kill_runtime_and_watch_init(mode: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let bundle = sleep_bundle(dir.path());
    let id = format!("startup-{mode}-{}", std::process::id());
    let (mut helper, init, start) = helper_runtime(mode, dir.path(), &bundle, &id);
    helper.kill().unwrap();
    helper.wait().unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    let mut died = false;
    while Instant::now() < end {
        if live_start_time(init) != Some(start) {
            died = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Kills whatever is left and removes the cgroup and the state.
    let rt = lasso::engine::container::Runtime::new(dir.path().join("state"));
    rt.delete(&id, true).unwrap();
    assert_ne!(live_start_time(init), Some(start), "cleanup left init");
    died
}

#[test]
fn container_init_dies_with_a_sigkilled_runtime_that_asked_for_it() {
    if !is_root() {
        eprintln!("skipped: needs root (a rootful bundle)");
        return;
    }
    assert!(
        kill_runtime_and_watch_init("die"),
        "init outlived its runtime"
    );
}

#[test]
fn container_init_outlives_a_runtime_that_did_not_ask() {
    // The control: runc semantics (create returns, the container stays) are unchanged.
    if !is_root() {
        eprintln!("skipped: needs root (a rootful bundle)");
        return;
    }
    assert!(
        !kill_runtime_and_watch_init("stay"),
        "init died with runc semantics"
    );
}

/// `LASSO_PHASES` (`benches/phases.py`): the runtime, init and the gate each write their marks,
/// in the order the start-up takes, and the command's own output and status are untouched.
/// Without the variable, no mark is written.
#[test]
fn phase_marks_follow_the_start_up_and_stay_off_without_the_variable() {
    if !is_root() {
        eprintln!("skipped: needs root (the gate's marks are a root sandbox's)");
        return;
    }
    let w = world(As::Root);
    let args = ["run", "--profile", "offline", "--", "/bin/echo", "hello"];
    let out = run(w.lasso(&args).env("LASSO_PHASES", "1"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    let err = String::from_utf8_lossy(&out.stderr);
    let marks: Vec<(u64, &str)> = err
        .lines()
        .filter_map(|l| {
            let mut f = l.strip_prefix("PHASE ")?.split(' ');
            Some((f.next()?.parse().ok()?, f.nth(1)?))
        })
        .collect();
    let at = |name: &str| {
        marks
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no mark {name}: {err}"))
    };
    let order = [
        "main",
        "planned",
        "prepared",
        "cloned",
        "init-ready",
        "started",
        "init-execve",
        "gate-detached",
        "init-exited",
        "sealed",
    ];
    for pair in order.windows(2) {
        assert!(
            at(pair[0]) <= at(pair[1]),
            "{} after {}: {err}",
            pair[0],
            pair[1]
        );
    }
    let quiet = run(&mut w.lasso(&args));
    assert!(quiet.status.success(), "{}", text(&quiet));
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("PHASE "),
        "{}",
        text(&quiet)
    );
}
