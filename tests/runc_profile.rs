//! `run.lasso.profile` under lasso-runc, driven directly with a bundle: the container gets the
//! profile's exec gate (blocked programs fail with EACCES and are audited with their argv),
//! lasso's seccomp baseline on top of its own filter, Landlock on its writes, no capabilities,
//! and its own verifiable audit log; the gate's monitor goes with `delete`; a bad annotation
//! fails `create` with a message naming it. Each claim is checked against what the kernel did
//! inside the container, with the same bundle run without the annotation as the control.

mod runc_support;
use runc_support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A bundle opted into `profile`, with its audit log in `audit` and the key ring in `keys`.
struct Profiled {
    bundle: Bundle,
    audit: tempfile::TempDir,
    keys: tempfile::TempDir,
}

fn profiled(script: &str, profile: &str) -> Profiled {
    let bundle = Bundle::new(script);
    let audit = tempfile::Builder::new()
        .prefix("ocitest-audit")
        .tempdir()
        .unwrap();
    let keys = tempfile::Builder::new()
        .prefix("ocitest-keys")
        .tempdir()
        .unwrap();
    let dir = audit.path().to_str().unwrap().to_string();
    bundle.edit(|s| {
        s["root"]["readonly"] = false.into();
        s["annotations"] = serde_json::json!({
            "run.lasso.profile": profile,
            "run.lasso.audit": dir,
        });
    });
    Profiled {
        bundle,
        audit,
        keys,
    }
}

fn without_annotation(p: &Profiled) {
    p.bundle.edit(|s| s["annotations"] = serde_json::json!({}));
}

/// lasso-runc with the test's key ring.
fn runc_cmd(runc: &Runc, p: &Profiled) -> Command {
    let mut c = runc.cmd();
    c.env("LASSO_CONFIG_DIR", p.keys.path());
    c
}

/// `run` of the bundle: (exit code, stdout, stderr). The gate monitor, re-parented to this
/// process (a subreaper), stays a zombie until the test binary exits: a wait for any child
/// would steal the statuses other tests wait for.
fn run(runc: &Runc, p: &Profiled, id: &str) -> (i32, String, String) {
    let _g = Guard::new(runc, id);
    let out = runc_cmd(runc, p)
        .args(["run", "--bundle"])
        .arg(p.bundle.path())
        .arg(id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The entries of the container's log.
fn entries(p: &Profiled, id: &str) -> Vec<Value> {
    let text =
        std::fs::read_to_string(p.audit.path().join(format!("{id}.jsonl"))).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn exec_entries(p: &Profiled, id: &str, outcome: &str) -> Vec<Vec<String>> {
    entries(p, id)
        .iter()
        .filter(|e| e["kind"] == "exec" && e["outcome"] == outcome)
        .map(|e| {
            e["details"]["argv"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(String::from))
                .collect()
        })
        .collect()
}

fn lasso_audit_verify(p: &Profiled, id: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lasso"))
        .args(["audit", "verify", "--config-dir"])
        .arg(p.keys.path())
        .arg("--log-dir")
        .arg(p.audit.path())
        .arg(id)
        .output()
        .unwrap()
}

#[test]
fn blocked_rm_is_refused_with_eacces_and_audited_with_argv() {
    if !can_run() {
        return;
    }
    // The script is a file: `sh -c "...rm..."` would itself be refused as a whole (the gate
    // decides shell strings), and the container would not start at all.
    let p = profiled("sh /t.sh", "standard");
    std::fs::create_dir_all(p.bundle.rootfs().join("data/keep")).unwrap();
    std::fs::write(
        p.bundle.rootfs().join("t.sh"),
        "/bin/rm -rf /data/keep; echo rm=$?\n/bin/echo allowed-ran\nif [ -d /data/keep ]; then echo kept; fi\n",
    )
    .unwrap();
    let runc = Runc::new();
    let id = unique_id("prof-rm");
    let (code, out, err) = run(&runc, &p, &id);
    assert_eq!(code, 0, "{out}\n{err}");
    // ash reports a refused execve (EACCES) as "Permission denied" with status 126.
    assert!(out.contains("rm=126"), "{out}\n{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(out.contains("allowed-ran"), "{out}");
    assert!(out.contains("kept"), "rm ran after all: {out}");
    let blocked = exec_entries(&p, &id, "blocked");
    assert!(
        blocked.contains(&vec!["/bin/rm".into(), "-rf".into(), "/data/keep".into()]),
        "{blocked:?}"
    );
    let allowed = exec_entries(&p, &id, "allowed");
    assert!(
        allowed.contains(&vec!["/bin/echo".into(), "allowed-ran".into()]),
        "{allowed:?}"
    );
    let v = lasso_audit_verify(&p, &id);
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&v.stderr)
    );
    assert!(text.contains("intact, sealed"), "{text}");

    // Control: without the annotation the same bundle removes the directory.
    without_annotation(&p);
    let id = unique_id("prof-rm-ctl");
    let (code, out, err) = run(&runc, &p, &id);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("rm=0") && !out.contains("kept"),
        "{out}\n{err}"
    );
}

/// Builds the system-call probe statically into the bundle's root.
fn install_probe(rootfs: &Path) {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/runc_profile_probe.c");
    let st = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(rootfs.join("bin/probe"))
        .arg(&src)
        .status()
        .expect("cc (with static libc) builds the probe");
    assert!(st.success(), "cc failed on {}", src.display());
}

#[test]
fn seccomp_baseline_denies_keyctl_and_user_namespaces_that_the_container_allowed() {
    if !can_run() {
        return;
    }
    let p = profiled("probe keyctl; probe unshare; true", "standard");
    install_probe(&p.bundle.rootfs());
    let runc = Runc::new();
    let id = unique_id("prof-sc");
    let (code, out, err) = run(&runc, &p, &id);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("keyctl=Operation not permitted"),
        "{out}\n{err}"
    );
    assert!(
        out.contains("unshare=Operation not permitted"),
        "{out}\n{err}"
    );

    // Control: the bundle's own seccomp policy (lasso-runc spec's, as runc's) lets both through.
    without_annotation(&p);
    let id = unique_id("prof-sc-ctl");
    let (_, out, err) = run(&runc, &p, &id);
    assert!(out.contains("keyctl=ok"), "{out}\n{err}");
    assert!(out.contains("unshare=ok"), "{out}\n{err}");
}

#[test]
fn landlock_refuses_writes_outside_the_writable_paths_and_caps_are_gone() {
    if !can_run() {
        return;
    }
    // The root is read-write, so the file system itself would take every write below: an
    // EACCES on a new top-level entry is Landlock's, not the mount's (that would be EROFS).
    let script = "touch /tmp/ok && echo tmp=ok; touch /newfile; echo top=$?; \
                  grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status";
    let p = profiled(script, "standard");
    let runc = Runc::new();
    let id = unique_id("prof-ll");
    let (code, out, err) = run(&runc, &p, &id);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("tmp=ok"), "{out}\n{err}");
    assert!(out.contains("top=1"), "{out}\n{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(!p.bundle.rootfs().join("newfile").exists());
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("CapBnd:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");

    without_annotation(&p);
    let id = unique_id("prof-ll-ctl");
    let (_, out, err) = run(&runc, &p, &id);
    assert!(out.contains("top=0"), "{out}\n{err}");
    assert!(p.bundle.rootfs().join("newfile").exists());
}

/// The monitor's record: (pid, log path).
fn monitor_of(runc: &Runc, id: &str) -> (i32, PathBuf) {
    let rec: Value = serde_json::from_slice(
        &std::fs::read(runc.root.path().join(id).join("lasso-gate.json")).unwrap(),
    )
    .unwrap();
    (
        rec["pid"].as_i64().unwrap() as i32,
        PathBuf::from(rec["log"].as_str().unwrap()),
    )
}

fn gone(pid: i32) -> bool {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    // A child of ours (re-parented): reap it; else it is gone when /proc forgets it.
    match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => false,
        Ok(_) => true,
        Err(_) => !Path::new(&format!("/proc/{pid}")).exists(),
    }
}

/// `create` with every standard stream on /dev/null, as a client that does not wait on the
/// detached gate monitor's output would run it.
fn create_detached(runc: &Runc, p: &Profiled, id: &str) -> std::process::ExitStatus {
    runc_cmd(runc, p)
        .args(["create", "--bundle"])
        .arg(p.bundle.path())
        .arg(id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
}

#[test]
fn exec_sessions_are_gated_and_audited_and_the_monitor_is_gone_after_delete() {
    if !can_run() {
        return;
    }
    let p = profiled("sleep 1000", "standard");
    let runc = Runc::new();
    let id = unique_id("prof-del");
    let _g = Guard::new(&runc, &id);
    let out = create_detached(&runc, &p, &id);
    assert!(out.success());
    let (monitor, log) = monitor_of(&runc, &id);
    assert!(!gone(monitor), "the monitor must outlive create");
    assert!(runc.exec(&["start", &id]).status.success());
    assert!(runc.wait_status(&id, "running"));

    // A process joined from outside is not the container monitor's tracee: `exec` gives it a
    // gate of its own, with its own log beside the container's.
    let exec = |args: &[&str]| {
        runc_cmd(&runc, &p)
            .arg("exec")
            .arg(&id)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let ok = exec(&["/bin/echo", "exec-ran"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("exec-ran"));
    let refused = exec(&["/bin/rm", "-rf", "/tmp"]);
    assert!(!refused.status.success(), "rm ran through exec");
    let sessions: Vec<PathBuf> = std::fs::read_dir(p.audit.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|f| {
            let n = f.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with(&format!("{id}-exec-")) && n.ends_with(".jsonl")
        })
        .collect();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let all: Vec<Value> = sessions
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .collect::<Vec<_>>()
        })
        .collect();
    let argv = |outcome: &str, want: Value| {
        all.iter()
            .any(|e| e["kind"] == "exec" && e["outcome"] == outcome && e["details"]["argv"] == want)
    };
    assert!(
        argv("blocked", serde_json::json!(["/bin/rm", "-rf", "/tmp"])),
        "{all:?}"
    );
    assert!(
        argv("allowed", serde_json::json!(["/bin/echo", "exec-ran"])),
        "{all:?}"
    );
    for f in &sessions {
        let mut sealed = false;
        for _ in 0..100 {
            let v = lasso_audit_verify(&p, f.to_str().unwrap());
            if v.status.success() && String::from_utf8_lossy(&v.stdout).contains(", sealed") {
                sealed = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(sealed, "session log {} not sealed and intact", f.display());
    }

    let del = runc.exec(&["delete", "--force", &id]);
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stderr)
    );
    let _ = runc.reap(&id);
    let mut dead = false;
    for _ in 0..200 {
        if gone(monitor) {
            dead = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(dead, "gate monitor {monitor} outlived delete");
    let v = lasso_audit_verify(&p, log.to_str().unwrap());
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success() && text.contains(", sealed"), "{text}");
}

#[test]
fn monitor_of_a_container_deleted_before_start_exits_and_seals() {
    if !can_run() {
        return;
    }
    let p = profiled("true", "standard");
    let runc = Runc::new();
    let id = unique_id("prof-nostart");
    let _g = Guard::new(&runc, &id);
    let st = create_detached(&runc, &p, &id);
    assert!(st.success());
    let (monitor, _) = monitor_of(&runc, &id);
    assert!(runc.exec(&["delete", "--force", &id]).status.success());
    let _ = runc.reap(&id);
    let mut dead = false;
    for _ in 0..200 {
        if gone(monitor) {
            dead = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(dead, "gate monitor {monitor} outlived delete");
    let reasons: Vec<String> = entries(&p, &id)
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("deleted before it started")),
        "{reasons:?}"
    );
    let v = lasso_audit_verify(&p, &id);
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success() && text.contains(", sealed"), "{text}");
}

#[test]
fn unknown_profile_fails_create_naming_the_annotation_and_the_profiles() {
    if !can_run() {
        return;
    }
    let p = profiled("true", "no-such-profile");
    let runc = Runc::new();
    let id = unique_id("prof-unknown");
    let _g = Guard::new(&runc, &id);
    let log = p.audit.path().join("runtime-log.json");
    let out = runc_cmd(&runc, &p)
        .args(["--log-format", "json", "--log"])
        .arg(&log)
        .args(["create", "--bundle"])
        .arg(p.bundle.path())
        .arg(&id)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let line: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    let msg = line["msg"].as_str().unwrap();
    assert!(
        msg.contains("run.lasso.profile=\"no-such-profile\""),
        "{msg}"
    );
    assert!(msg.contains("standard") && msg.contains("strict"), "{msg}");
    // Nothing was made: no state, no container.
    assert!(!runc.root.path().join(&id).exists());
}
