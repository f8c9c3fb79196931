//! Cgroups on the real host (hybrid here): each test creates its own cgroup under a unique
//! top-level name, parks a child shell on its stdin, moves it in, and checks what the kernel
//! enforces. A guard kills the children and removes the cgroup even when an assertion fails.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use lasso::engine::cgroups::{
    controllers_from_annotations, Cgroup, CgroupHost, CgroupMode, Joins, CONTROLLERS_ANNOTATION,
};
use nix::sys::signal::Signal;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn unique(name: &str) -> PathBuf {
    PathBuf::from(format!("/lasso-test-{}-{name}/c", std::process::id()))
}

/// Owns the cgroup and the children of one test; cleans both up on every path.
struct Guard {
    cg: Cgroup,
    child: Option<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.cg.kill_all(Signal::SIGKILL);
        let _ = self.cg.destroy();
    }
}

/// A shell that waits for one line on stdin before running `script`, so it can be moved into
/// the cgroup first.
fn park(script: &str) -> Child {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("read _ ; {script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn /bin/sh")
}

fn release(child: &mut Child) {
    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
}

fn setup(name: &str, res: Option<LinuxResources>, script: &str) -> Guard {
    let path = unique(name);
    let cg = Cgroup::create(Some(&path), name, false).expect("create cgroup");
    let mut g = Guard { cg, child: None };
    if let Some(r) = res {
        g.cg.apply(&r).expect("apply resources");
    }
    let child = park(script);
    g.cg.add_task(child.id() as i32).expect("add task");
    g.child = Some(child);
    g
}

#[test]
fn memory_hog_is_oom_killed() {
    if !is_root() {
        return;
    }
    let mem = LinuxMemoryBuilder::default()
        .limit(32i64 << 20)
        .swap(32i64 << 20)
        .build()
        .unwrap();
    let res = LinuxResourcesBuilder::default()
        .memory(mem)
        .build()
        .unwrap();
    // dd's 256 MiB buffer is filled from /dev/zero: every page is touched.
    let mut g = setup(
        "oom",
        Some(res),
        "exec dd if=/dev/zero of=/dev/null bs=256M count=1",
    );
    let child = g.child.as_mut().unwrap();
    release(child);
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "dd was not OOM-killed: {status:?}"
    );
    assert!(
        g.cg.oom_kills() >= 1,
        "the memory cgroup counted no OOM kill"
    );
}

#[test]
fn fork_bomb_stops_at_pids_max() {
    if !is_root() {
        return;
    }
    let pids = LinuxPidsBuilder::default().limit(4i64).build().unwrap();
    let res = LinuxResourcesBuilder::default().pids(pids).build().unwrap();
    let mut g = setup(
        "pids",
        Some(res),
        "for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; exit 0",
    );
    let child = g.child.as_mut().unwrap();
    release(child);
    child.wait().unwrap();
    // The shell held one of the 4 slots while forking: exactly 3 sleeps got in.
    let n = g.cg.pids().len();
    assert_eq!(n, 3, "{n} sleeps survive in a cgroup with pids.max 4");
    g.cg.kill_all(Signal::SIGKILL).unwrap();
    let mut err = String::new();
    let child = g.child.as_mut().unwrap();
    child
        .stderr
        .as_mut()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.to_lowercase().contains("fork"),
        "no fork failure reported: {err:?}"
    );
}

fn proc_state(pid: u32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("State:"))
        .and_then(|v| v.trim().chars().next())
        .unwrap()
}

#[test]
fn frozen_cgroup_stops_its_tasks_until_thawed() {
    if !is_root() {
        return;
    }
    let mut g = setup("freeze", None, "exec sleep 60");
    release(g.child.as_mut().unwrap());
    let pid = g.child.as_ref().unwrap().id();
    assert!(g.cg.pids().contains(&(pid as i32)));
    g.cg.freeze().unwrap();
    assert!(g.cg.is_frozen());
    // A frozen task sleeps uninterruptibly in the freezer.
    assert_eq!(proc_state(pid), 'D');
    g.cg.thaw().unwrap();
    assert!(!g.cg.is_frozen());
    assert_ne!(proc_state(pid), 'D');
}

#[test]
fn kill_all_reaches_every_task_and_destroy_removes_every_dir() {
    if !is_root() {
        return;
    }
    let mut g = setup("killall", None, "sleep 60 & sleep 60 & wait");
    release(g.child.as_mut().unwrap());
    // Wait until both grandchildren have joined (inherited) the cgroup.
    for _ in 0..500 {
        if g.cg.pids().len() >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(g.cg.pids().len(), 3);
    g.cg.kill_all(Signal::SIGKILL).unwrap();
    g.child.as_mut().unwrap().wait().unwrap();
    let dirs: Vec<PathBuf> = g.cg.dirs().into_iter().map(Path::to_path_buf).collect();
    assert!(!dirs.is_empty());
    g.cg.destroy().unwrap();
    for d in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
        assert!(
            !d.parent().unwrap().exists(),
            "created parent of {} left behind",
            d.display()
        );
    }
}

#[test]
fn reopened_cgroup_from_state_file_sees_the_same_tasks() {
    if !is_root() {
        return;
    }
    let mut g = setup("serde", None, "exec sleep 60");
    release(g.child.as_mut().unwrap());
    let json = serde_json::to_string(&g.cg).unwrap();
    let back: Cgroup = serde_json::from_str(&json).unwrap();
    assert_eq!(back, g.cg);
    let pid = g.child.as_ref().unwrap().id() as i32;
    assert!(back.pids().contains(&pid));
}

#[test]
fn device_cgroup_denies_devices_not_on_the_allow_list() {
    if !is_root()
        || CgroupHost::detect()
            .unwrap()
            .v1
            .iter()
            .all(|h| !h.controllers.iter().any(|c| c == "devices"))
    {
        return;
    }
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap();
    let allow_null = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(LinuxDeviceType::C)
        .major(1i64)
        .minor(3i64)
        .access("rwm")
        .build()
        .unwrap();
    let res = LinuxResourcesBuilder::default()
        .devices(vec![deny_all, allow_null])
        .build()
        .unwrap();
    let mut g = setup(
        "devices",
        Some(res),
        "cat /dev/null && echo null-ok; head -c1 /dev/zero >/dev/null || echo zero-denied",
    );
    let child = g.child.as_mut().unwrap();
    release(child);
    let out = child.wait_with_output_keep();
    assert!(out.contains("null-ok"), "{out}");
    assert!(out.contains("zero-denied"), "{out}");
}

trait WaitKeep {
    fn wait_with_output_keep(&mut self) -> String;
}

impl WaitKeep for Child {
    fn wait_with_output_keep(&mut self) -> String {
        let mut out = String::new();
        self.stdout
            .as_mut()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        self.wait().unwrap();
        out
    }
}

#[test]
fn cpu_limits_are_accepted_by_the_kernel() {
    if !is_root() {
        return;
    }
    let cpu = LinuxCpuBuilder::default()
        .shares(512u64)
        .quota(20_000i64)
        .period(100_000u64)
        .cpus("0")
        .build()
        .unwrap();
    let res = LinuxResourcesBuilder::default().cpu(cpu).build().unwrap();
    let g = setup("cpu", Some(res), "exit 0");
    let host = CgroupHost::detect().unwrap();
    if host.mode != CgroupMode::V2 {
        let d = g.cg.v1_dir("cpu").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("cpu.cfs_quota_us"))
                .unwrap()
                .trim(),
            "20000"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("cpu.shares"))
                .unwrap()
                .trim(),
            "512"
        );
        let s = g.cg.v1_dir("cpuset").unwrap();
        assert_eq!(
            std::fs::read_to_string(s.join("cpuset.cpus"))
                .unwrap()
                .trim(),
            "0"
        );
    }
}

/// The pure-v2 code path against the host's real cgroup2 mount (on this hybrid host it holds no
/// resource controllers, but freezing, killing and task lists are cgroup2 core).
#[test]
fn v2_core_freeze_kill_and_cleanup_on_the_real_cgroup2_mount() {
    if !is_root() {
        return;
    }
    let mut host = CgroupHost::detect().unwrap().clone();
    if host.unified.is_none() {
        return;
    }
    host.v1.clear();
    host.mode = CgroupMode::V2;
    let cg = Cgroup::create_on(&host, Some(&unique("v2core")), "v2core", false).unwrap();
    let mut g = Guard { cg, child: None };
    let mut child = park("exec sleep 60");
    g.cg.add_task(child.id() as i32).unwrap();
    release(&mut child);
    let pid = child.id();
    g.child = Some(child);
    assert_eq!(g.cg.pids(), vec![pid as i32]);
    g.cg.freeze().unwrap();
    assert!(g.cg.is_frozen());
    g.cg.thaw().unwrap();
    assert!(!g.cg.is_frozen());
    // A controller the v2 tree lacks is named in the error instead of being dropped.
    let pids = LinuxPidsBuilder::default().limit(4i64).build().unwrap();
    let res = LinuxResourcesBuilder::default().pids(pids).build().unwrap();
    if !host
        .unified
        .as_ref()
        .unwrap()
        .controllers
        .iter()
        .any(|c| c == "pids")
    {
        let err = g.cg.apply(&res).unwrap_err().to_string();
        assert!(err.contains("linux.resources.pids"), "{err}");
    }
    g.cg.kill_all(Signal::SIGKILL).unwrap();
    let status = g.child.as_mut().unwrap().wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    g.cg.destroy().unwrap();
    assert!(!g.cg.unified_dir().unwrap().exists());
}

/// The v2 file formats against a fake cgroupfs tree, for the hosts (most) that are pure v2.
#[test]
fn v2_limits_are_written_in_v2_formats_on_a_fake_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(
        root.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .unwrap();
    std::fs::write(root.join("cgroup.subtree_control"), "").unwrap();
    let mountinfo = format!("30 20 0:26 / {} rw - cgroup2 cgroup2 rw\n", root.display());
    let host = CgroupHost::from_proc(&mountinfo, "0::/\n").unwrap();
    assert_eq!(host.mode, CgroupMode::V2);
    let cg = Cgroup::create_on(&host, Some(Path::new("/lasso/x")), "x", false).unwrap();
    let mem = LinuxMemoryBuilder::default()
        .limit(1i64 << 20)
        .swap(3i64 << 20)
        .build()
        .unwrap();
    let cpu = LinuxCpuBuilder::default()
        .shares(1024u64)
        .quota(50_000i64)
        .period(100_000u64)
        .build()
        .unwrap();
    let pids = LinuxPidsBuilder::default().limit(-1i64).build().unwrap();
    let res = LinuxResourcesBuilder::default()
        .memory(mem)
        .cpu(cpu)
        .pids(pids)
        .build()
        .unwrap();
    cg.apply(&res).unwrap();
    let dir = root.join("lasso/x");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(read("memory.max"), "1048576");
    assert_eq!(read("memory.swap.max"), "2097152");
    assert_eq!(read("cpu.weight"), "39");
    assert_eq!(read("cpu.max"), "50000 100000");
    assert_eq!(read("pids.max"), "max");
    // Controllers were enabled from the root down to the container's parent.
    assert!(
        !std::fs::read_to_string(root.join("cgroup.subtree_control"))
            .unwrap()
            .is_empty()
    );
    assert!(root.join("lasso/cgroup.subtree_control").exists());
}

#[test]
fn escaping_cgroups_path_is_refused() {
    let err = Cgroup::create(Some(Path::new("/lasso/../../x")), "x", false).unwrap_err();
    assert!(err.to_string().contains("cgroupsPath"), "{err}");
}

#[test]
fn kill_all_delivers_other_signals_to_every_task() {
    if !is_root() {
        return;
    }
    // The shell exits 3 when TERM reaches it; the sleeps die of it.
    let mut g = setup(
        "term",
        None,
        "trap 'exit 3' TERM; sleep 60 & sleep 60 & wait",
    );
    release(g.child.as_mut().unwrap());
    // Wait until both sleeps have exec'd: a shell's child still inside fork catches TERM with
    // the shell's handler and would lose it at exec.
    let comm = |p: &i32| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
    for _ in 0..1000 {
        if g.cg
            .pids()
            .iter()
            .filter(|p| comm(p).trim() == "sleep")
            .count()
            == 2
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(g.cg.pids().len(), 3);
    g.cg.kill_all(Signal::SIGTERM).unwrap();
    let status = g.child.as_mut().unwrap().wait().unwrap();
    assert_eq!(status.code(), Some(3), "{status:?}");
    assert!(!g.cg.is_frozen(), "kill_all left the cgroup frozen");
    for _ in 0..1000 {
        if g.cg.pids().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(g.cg.pids(), Vec::<i32>::new());
}

const CHILD: &str = "LASSO_PARTS_CHILD";

#[test]
fn child_unprivileged_create() {
    if std::env::var(CHILD).as_deref() != Ok("child_unprivileged_create") {
        return;
    }
    println!();
    // This thread becomes nobody without KEEPCAPS: every capability is gone.
    // SAFETY: raw setresuid of the calling thread only.
    assert_eq!(
        unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) },
        0
    );
    let path = PathBuf::from(std::env::var("LASSO_CG_PATH").unwrap());
    let cg = Cgroup::create(Some(&path), "rootless", true).unwrap();
    println!("DISABLED: {}", cg.disabled().is_some());
    println!(
        "EMPTY_APPLY: {}",
        cg.apply(&LinuxResources::default()).is_ok()
    );
    let pids = LinuxPidsBuilder::default().limit(4i64).build().unwrap();
    let res = LinuxResourcesBuilder::default().pids(pids).build().unwrap();
    println!("LIMIT_APPLY: {}", cg.apply(&res).unwrap_err());
    println!(
        "ROOTFUL: {}",
        Cgroup::create(Some(&path), "rootless", false).unwrap_err()
    );
}

#[test]
fn rootless_without_delegation_gets_a_disabled_cgroup_and_clear_errors() {
    if !is_root() {
        return;
    }
    let path = unique("rootless");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "child_unprivileged_create",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "child_unprivileged_create")
        .env("LASSO_CG_PATH", &path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(": ")))
            .unwrap_or_else(|| panic!("{k} missing: {text}"))
            .to_owned()
    };
    assert_eq!(field("DISABLED"), "true");
    assert_eq!(field("EMPTY_APPLY"), "true");
    assert!(
        field("LIMIT_APPLY").contains("cgroups are disabled"),
        "{text}"
    );
    assert!(field("ROOTFUL").contains("delegate"), "{text}");
    // Nothing was left behind by the failed attempts.
    let top = path
        .parent()
        .unwrap()
        .strip_prefix("/")
        .unwrap()
        .to_path_buf();
    for h in &CgroupHost::detect().unwrap().v1 {
        assert!(!h.mountpoint.join(&top).exists());
    }
}

#[test]
fn tasks_in_nested_cgroups_are_listed_killed_and_removed() {
    if !is_root() {
        return;
    }
    let mut g = setup("nested", None, "exec sleep 60");
    release(g.child.as_mut().unwrap());
    let pid = g.child.as_ref().unwrap().id() as i32;
    // The container makes its own cgroup below ours (as systemd inside a container does) in
    // the hierarchy that lists tasks, and moves its process there.
    let host = CgroupHost::detect().unwrap();
    let tracking =
        g.cg.v1_dir("pids")
            .or(g.cg.unified_dir())
            .unwrap()
            .to_path_buf();
    let nested = tracking.join("inner");
    std::fs::create_dir(&nested).unwrap();
    std::fs::write(nested.join("cgroup.procs"), pid.to_string()).unwrap();
    if host.unified.is_some() && g.cg.unified_dir() != Some(&tracking) {
        let u = g.cg.unified_dir().unwrap().join("inner");
        std::fs::create_dir(&u).unwrap();
        std::fs::write(u.join("cgroup.procs"), pid.to_string()).unwrap();
    }
    assert_eq!(g.cg.pids(), vec![pid]);
    g.cg.kill_all(Signal::SIGKILL).unwrap();
    g.child.as_mut().unwrap().wait().unwrap();
    g.cg.destroy().unwrap();
    assert!(!nested.exists() && !tracking.exists());
}

/// Two containers on the default path share `/lasso`: whichever leaves last removes it, so
/// sandboxes that overlap in time leave no empty parent behind.
#[test]
fn default_parent_is_removed_by_the_last_container_out() {
    if !is_root() {
        eprintln!("SKIPPED: needs root to create cgroups");
        return;
    }
    let host = CgroupHost::detect().expect("detect");
    let parents: Vec<PathBuf> = host
        .v1
        .iter()
        .map(|h| h.resolve(Path::new("/lasso")))
        .collect();
    // Someone else's container under /lasso makes the final assertion meaningless: say so.
    let busy = parents.iter().any(|p| {
        std::fs::read_dir(p)
            .map(|mut d| d.any(|e| e.map(|e| e.path().is_dir()).unwrap_or(false)))
            .unwrap_or(false)
    });
    let a_id = format!("dp-a-{}", std::process::id());
    let b_id = format!("dp-b-{}", std::process::id());
    let a = Cgroup::create(None, &a_id, false).expect("create a");
    // A runtime caller naming `/lasso/<id>` explicitly shares the parent the same way.
    let b_path = PathBuf::from("/lasso").join(&b_id);
    let b = Cgroup::create(Some(&b_path), &b_id, false).expect("create b");
    a.destroy().expect("destroy a");
    assert!(
        parents.iter().all(|p| p.exists()),
        "the parent must stay while b lives in it"
    );
    b.destroy().expect("destroy b");
    if busy {
        eprintln!("SKIPPED final check: another container lives under /lasso");
        return;
    }
    for p in &parents {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

/// A container that names its controllers (lasso's sandboxes) is placed in the hierarchies of
/// those controllers and no other: the kernel's `/proc/<pid>/cgroup` of a task moved in names
/// the container's cgroup in memory and pids, and the caller's own cgroup in the rest.
#[test]
fn named_controllers_join_only_their_hierarchies() {
    if !is_root() {
        eprintln!("SKIPPED: needs root to create cgroups");
        return;
    }
    let host = CgroupHost::detect().expect("detect");
    let only = vec!["memory".to_string(), "pids".to_string()];
    let path = unique("only");
    let cg = Cgroup::create_joining(Some(&path), "only", false, Joins::Only(&only))
        .expect("create cgroup");
    let mut g = Guard { cg, child: None };
    let child = park("sleep 30");
    let pid = child.id() as i32;
    g.child = Some(child);
    g.cg.add_task(pid).expect("add task");
    let seen = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let name = path.to_string_lossy().to_string();
    let pure_v2 = host.mode == CgroupMode::V2;
    for line in seen.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, at) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        let wanted = if controllers.is_empty() {
            pure_v2
        } else {
            controllers.split(',').any(|c| only.iter().any(|o| o == c))
        };
        if wanted {
            assert_eq!(at, name, "not placed in {controllers:?}: {seen}");
        } else {
            assert!(
                !at.contains("lasso-test"),
                "placed in {controllers:?}: {seen}"
            );
        }
    }
    for h in &host.v1 {
        let dir = h.resolve(&path);
        let wanted = h.controllers.iter().any(|c| only.contains(c));
        assert_eq!(dir.exists(), wanted, "{}", dir.display());
    }
    let kept: Vec<PathBuf> = g.cg.dirs().iter().map(|d| d.to_path_buf()).collect();
    g.child.as_mut().unwrap().kill().unwrap();
    g.child.as_mut().unwrap().wait().unwrap();
    g.child = None;
    g.cg.destroy().expect("destroy");
    for d in kept {
        assert!(!d.exists(), "{} left", d.display());
        assert!(
            !d.parent().unwrap().exists(),
            "{} left",
            d.parent().unwrap().display()
        );
    }
}

#[test]
fn a_malformed_controllers_annotation_is_refused_with_its_name() {
    let with = |v: &str| {
        let mut m = std::collections::HashMap::new();
        m.insert(CONTROLLERS_ANNOTATION.to_string(), v.to_string());
        controllers_from_annotations(Some(&m))
    };
    assert_eq!(controllers_from_annotations(None).unwrap(), None);
    assert_eq!(
        with("memory, pids").unwrap(),
        Some(vec!["memory".to_string(), "pids".to_string()])
    );
    for bad in ["", "memory,,pids", "../memory", "Memory"] {
        let e = with(bad).unwrap_err().to_string();
        assert!(e.contains(CONTROLLERS_ANNOTATION), "{bad:?}: {e}");
    }
}

/// What a child sees of its cgroups at its first instruction when it was cloned into the
/// cgroup2 directory and then wrote `0` to the v1 `tasks` files opened for it (the engine's
/// start of init): every hierarchy, v1 and v2, names the container's cgroup, and the runtime
/// wrote no PID anywhere.
#[test]
fn init_placed_by_itself_and_cloned_into_cgroup2_starts_inside_every_hierarchy() {
    if !is_root() {
        eprintln!("SKIPPED: needs root to create cgroups");
        return;
    }
    let path = unique("self");
    let cg = Cgroup::create(Some(&path), "self", false).expect("create cgroup");
    let g = Guard { cg, child: None };
    let mut placement = g.cg.placement().expect("placement");
    let fds = placement.init_fds();
    let (rd, wr) = nix::unistd::pipe().unwrap();
    let cloned = lasso::engine::namespaces::clone3_into(
        nix::sched::CloneFlags::empty(),
        placement.clone_into(),
    );
    let cloned = match cloned {
        Err(_) if placement.clone_into().is_some() => {
            placement.clone_into_refused();
            lasso::engine::namespaces::clone3(nix::sched::CloneFlags::empty())
        }
        other => other,
    }
    .expect("clone3");
    let Some(child) = cloned else {
        // The child of a multi-threaded test process: raw system calls only, no allocation.
        use std::os::fd::AsRawFd;
        let ok = lasso::engine::cgroups::place_self(&fds).is_ok();
        let mut buf = [0u8; 4096];
        // SAFETY: plain syscalls on a NUL-terminated path, a stack buffer and our own pipe.
        unsafe {
            let fd = libc::open(c"/proc/self/cgroup".as_ptr(), libc::O_RDONLY);
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if ok && n > 0 {
                libc::write(wr.as_raw_fd(), buf.as_ptr().cast(), n as usize);
            }
            libc::_exit(0);
        }
    };
    placement.release_init_fds();
    drop(wr);
    assert!(
        placement.runtime_dirs().is_empty(),
        "left to a cgroup.procs write: {:?}",
        placement.runtime_dirs()
    );
    placement.add_task(child.pid).expect("runtime side");
    let mut seen = String::new();
    std::fs::File::from(rd).read_to_string(&mut seen).unwrap();
    nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid), None).unwrap();
    assert!(!seen.is_empty(), "the child could not place itself");
    let name = path.to_string_lossy().to_string();
    for line in seen.lines().filter(|l| !l.contains("name=")) {
        let at = line.splitn(3, ':').nth(2).unwrap_or_default();
        assert_eq!(
            at, name,
            "outside its cgroup at its first instruction: {seen}"
        );
    }
    drop(g);
}
