//! lasso-runc lifecycle: create -> start -> stopped -> delete, exit codes, kill and delete
//! semantics, and bad input leaving nothing behind. Real containers from busybox bundles.

mod runc_support;
use runc_support::*;

#[test]
fn create_waits_until_start_then_runs_and_stops() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("echo started > /tmp/mark; exit 0");
    b.edit(|s| s["root"]["readonly"] = false.into());
    let id = unique_id("cycle");
    let _g = Guard::new(&runc, &id);
    let pid_file = b.path().join("init.pid");
    let out = runc
        .cmd()
        .args(["create", "--pid-file"])
        .arg(&pid_file)
        .arg("--bundle")
        .arg(b.path())
        .arg(&id)
        .stdout(std::fs::File::create(b.path().join("out")).unwrap())
        .stderr(std::fs::File::create(b.path().join("err")).unwrap())
        .status()
        .unwrap();
    assert!(
        out.success(),
        "{}",
        std::fs::read_to_string(b.path().join("err")).unwrap()
    );
    let st = runc.state(&id);
    assert_eq!(st["status"], "created");
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(st["pid"].as_i64().unwrap(), pid, "pid file and state agree");
    // Until start, the process has not run.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        !b.rootfs().join("tmp/mark").exists(),
        "process ran before start"
    );
    let out = runc.exec(&["start", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(runc.wait_status(&id, "stopped"), "container did not stop");
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("tmp/mark")).unwrap(),
        "started\n"
    );
    // A stopped container reports pid 0, and cannot be started or killed.
    assert_eq!(runc.state(&id)["pid"], 0);
    let again = runc.exec(&["start", &id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not created"));
    let k = runc.exec(&["kill", &id, "KILL"]);
    assert!(!k.status.success());
    assert!(
        String::from_utf8_lossy(&k.stderr).contains("container not running")
            || String::from_utf8_lossy(&k.stderr).contains("is not running")
    );
    let d = runc.exec(&["delete", &id]);
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    assert!(
        !runc.root.path().join(&id).exists(),
        "state dir left behind"
    );
    let gone = runc.exec(&["state", &id]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("does not exist"));
}

#[test]
fn exit_code_is_the_containers_and_a_signal_gives_128_plus_it() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let (code, out, _) = runc.run(&Bundle::new("echo hi; exit 7"), &unique_id("exit"));
    assert_eq!((code, out.as_str()), (7, "hi\n"));
    // The kernel ignores SIGKILL sent to a pid namespace's init from inside: kill from outside.
    let id = unique_id("sig");
    let _g = Guard::new(&runc, &id);
    let b = Bundle::new("sleep 1000");
    let mut run = runc
        .cmd()
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(runc.wait_status(&id, "running"));
    assert!(runc.exec(&["kill", &id, "9"]).status.success());
    assert_eq!(run.wait().unwrap().code(), Some(128 + 9));
    assert!(
        !runc.root.path().join(&id).exists(),
        "run must delete the container after it exits"
    );
}

#[test]
fn kill_running_container_by_name_and_delete_requires_force() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("sleep 1000");
    let id = unique_id("kill");
    let _g = Guard::new(&runc, &id);
    assert!(runc.create(&b, &id).status.success());
    assert!(runc.exec(&["start", &id]).status.success());
    assert_eq!(runc.status(&id), "running");
    let d = runc.exec(&["delete", &id]);
    assert!(
        !d.status.success(),
        "delete of a running container must fail"
    );
    assert!(String::from_utf8_lossy(&d.stderr).contains("not stopped"));
    assert!(runc.exec(&["kill", &id, "SIGKILL"]).status.success());
    assert!(runc.wait_status(&id, "stopped"));
    let st = runc.reap(&id).expect("init re-parented to us and exited");
    assert_eq!(
        st,
        nix::sys::wait::WaitStatus::Signaled(
            nix::unistd::Pid::from_raw(runc.init_pid(&id)),
            nix::sys::signal::Signal::SIGKILL,
            false
        )
    );
    assert!(runc.exec(&["delete", &id]).status.success());
}

#[test]
fn delete_force_kills_a_running_container_and_missing_is_ok() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("sleep 1000");
    let id = unique_id("force");
    let _g = Guard::new(&runc, &id);
    assert!(runc.create(&b, &id).status.success());
    assert!(runc.exec(&["start", &id]).status.success());
    let pid = runc.init_pid(&id);
    assert!(runc.exec(&["delete", "--force", &id]).status.success());
    assert!(reaped(pid), "init still alive after delete --force");
    assert!(
        runc.exec(&["delete", "--force", &id]).status.success(),
        "delete --force of a missing container exits 0"
    );
    let d = runc.exec(&["delete", &id]);
    assert!(!d.status.success());
    assert!(String::from_utf8_lossy(&d.stderr).contains("does not exist"));
}

#[test]
fn duplicate_id_is_refused_and_the_first_container_survives() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("sleep 1000");
    let id = unique_id("dup");
    let _g = Guard::new(&runc, &id);
    assert!(runc.create(&b, &id).status.success());
    let again = runc.create(&b, &id);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(runc.status(&id), "created");
}

#[test]
fn delete_of_a_created_container_kills_its_waiting_init() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("true");
    let id = unique_id("delcreated");
    let _g = Guard::new(&runc, &id);
    assert!(runc.create(&b, &id).status.success());
    let pid = runc.init_pid(&id);
    assert!(runc.exec(&["delete", &id]).status.success());
    assert!(reaped(pid), "init still alive after delete");
}

fn assert_nothing_left(runc: &Runc, id: &str) {
    assert!(
        !runc.root.path().join(id).exists(),
        "state dir of {id} left behind"
    );
    assert!(leftover_mounts(id).is_empty());
}

#[test]
fn missing_bundle_is_named_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let id = unique_id("nobundle");
    let out = runc.exec(&["create", "--bundle", "/nonexistent/bundle", &id]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/bundle") && err.contains("does not exist"),
        "{err}"
    );
    assert_nothing_left(&runc, &id);
}

#[test]
fn malformed_config_names_the_field() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("true");
    b.edit(|s| s["process"]["user"]["uid"] = "root".into());
    let id = unique_id("badfield");
    let out = runc.exec(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("process.user.uid"), "{err}");
    assert_nothing_left(&runc, &id);

    std::fs::write(b.path().join("config.json"), "{ not json").unwrap();
    let out = runc.exec(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_nothing_left(&runc, &id);
}

#[test]
fn rootfs_symlinked_out_of_the_bundle_is_refused() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("true");
    std::os::unix::fs::symlink("/", b.path().join("escape")).unwrap();
    b.edit(|s| s["root"]["path"] = "escape".into());
    let id = unique_id("escape");
    let out = runc.exec(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("root.path") && err.contains("outside the bundle"),
        "{err}"
    );
    assert_nothing_left(&runc, &id);
}

#[test]
fn unknown_id_says_does_not_exist() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    for args in [
        &["state", "ocitest-nope"][..],
        &["start", "ocitest-nope"],
        &["kill", "ocitest-nope", "9"],
        &["delete", "ocitest-nope"],
    ] {
        let out = runc.exec(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("does not exist"),
            "{args:?}"
        );
    }
}

#[test]
fn failing_setup_reports_the_step_and_leaves_no_state() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("true");
    b.edit(|s| s["process"]["cwd"] = "/does/not/exist".into());
    b.edit(|s| s["process"]["args"] = serde_json::json!(["/no/such/program"]));
    let id = unique_id("noprog");
    let (code, _, err) = runc.run(&b, &id);
    assert_ne!(code, 0);
    assert!(
        err.contains("/does/not/exist") || err.contains("/no/such/program"),
        "{err}"
    );
    assert_nothing_left(&runc, &id);
}

#[test]
fn json_log_has_level_msg_time_for_containerd() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let log = runc.root.path().join("log.json");
    let out = runc
        .cmd()
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "state", "ocitest-absent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("does not exist"));
    assert!(line["time"].as_str().is_some());
}

#[test]
fn foreground_run_passes_sigterm_to_the_container() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("trap 'echo got-term; exit 0' TERM; while true; do sleep 0.05; done");
    let id = unique_id("fwd");
    let _g = Guard::new(&runc, &id);
    let child = runc
        .cmd()
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(runc.wait_status(&id, "running"));
    // Wait until `run` blocks SIGTERM (its forwarding is in place): a signal before that
    // would kill the runtime alone, as with runc.
    let blocked = || {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & (1 << (libc::SIGTERM - 1)) != 0)
    };
    for _ in 0..400 {
        if blocked() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(blocked(), "run never started forwarding signals");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got-term\n");
}
