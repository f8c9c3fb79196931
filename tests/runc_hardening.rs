//! The hardening the engine's leaf mechanisms apply, checked from inside a real container:
//! capabilities, rlimits, seccomp errno, sysctl, cgroup limits (a memory hog is OOM-killed, a
//! fork bomb stops at pids.max), pause/resume/update, and hooks (order and stdin).

mod runc_support;
use runc_support::*;
use serde_json::json;

fn run_ok(runc: &Runc, b: &Bundle, name: &str) -> String {
    let (code, out, err) = runc.run(b, &unique_id(name));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    out
}

#[test]
fn default_capabilities_are_all_the_container_holds() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let out = run_ok(
        &runc,
        &Bundle::new("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status"),
        "caps",
    );
    // CAP_KILL (5), CAP_NET_BIND_SERVICE (10), CAP_AUDIT_WRITE (29): the spec's three.
    let want = "0000000020000420";
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert!(out.contains(&format!("{set}:\t{want}")), "{set} in {out}");
    }
    assert!(out.contains("CapAmb:\t0000000000000000"), "{out}");
}

#[test]
fn dropped_capability_is_refused_by_the_kernel() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    // chown needs CAP_CHOWN, which the default spec does not grant.
    let b = Bundle::new("touch /dev/shm/f; chown 1000 /dev/shm/f 2>&1 || echo refused");
    let out = run_ok(&runc, &b, "nochown");
    assert!(out.contains("refused"), "{out}");
}

#[test]
fn rlimits_are_set_and_a_hard_limit_above_ours_is_named() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("ulimit -Sn; ulimit -Hn");
    b.edit(|s| {
        s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 700}])
    });
    assert_eq!(run_ok(&runc, &b, "rlimit"), "512\n700\n");

    b.edit(|s| {
        s["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "soft": 1048576, "hard": 1048576}])
    });
    let id = unique_id("rlimithigh");
    let (code, _, err) = runc.run(&b, &id);
    assert_ne!(code, 0);
    assert!(err.contains("RLIMIT_NOFILE"), "{err}");
    assert!(!runc.root.path().join(&id).exists());
}

#[test]
fn seccomp_denied_syscall_returns_the_configured_errno() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("mkdir /dev/shm/d 2>&1; echo rc=$?; touch /dev/shm/ok && echo touch-ok");
    b.edit(|s| {
        s["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18}]
        })
    });
    let out = run_ok(&runc, &b, "seccomp");
    // errno 18 is EXDEV: the filter's answer, not anything the filesystem would say.
    assert!(out.contains("Invalid cross-device link"), "{out}");
    assert!(out.contains("touch-ok"), "{out}");
}

#[test]
fn seccomp_without_no_new_privs_is_installed_while_privileged() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("mkdir /dev/shm/d 2>&1; grep Seccomp: /proc/self/status");
    b.edit(|s| {
        s["process"]["noNewPrivileges"] = false.into();
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        s["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        })
    });
    let out = run_ok(&runc, &b, "seccompnnp");
    assert!(
        out.contains("Operation not permitted") && out.contains("Seccomp:\t2"),
        "{out}"
    );
}

#[test]
fn sysctl_applies_inside_the_network_namespace_only() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let flipped = if host_before.trim() == "1" { "0" } else { "1" };
    let b = Bundle::new("cat /proc/sys/net/ipv4/ip_forward");
    b.edit(|s| s["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": flipped}));
    assert_eq!(run_ok(&runc, &b, "sysctl").trim(), flipped);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before
    );

    b.edit(|s| s["linux"]["sysctl"] = json!({"kernel.panic": "1"}));
    let (code, _, err) = runc.run(&b, &unique_id("sysctlhost"));
    assert_ne!(code, 0);
    assert!(err.contains("kernel.panic"), "{err}");
}

#[test]
fn memory_hog_is_oom_killed_at_the_limit() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    // dd's 128 MiB buffer is touched while reading: far above the 32 MiB limit.
    let b = Bundle::new("dd if=/dev/zero of=/dev/null bs=128M count=1 2>/dev/null; echo rc=$?");
    b.edit(|s| s["linux"]["resources"]["memory"] = json!({"limit": 33554432, "swap": 33554432}));
    let out = run_ok(&runc, &b, "oom");
    assert_eq!(
        out.trim(),
        "rc=137",
        "the hog was not killed by SIGKILL: {out}"
    );
    // Without the limit the same command succeeds: the kill was the cgroup's.
    b.edit(|s| {
        s["linux"]["resources"]
            .as_object_mut()
            .unwrap()
            .remove("memory");
    });
    assert_eq!(run_ok(&runc, &b, "nooom").trim(), "rc=0");
}

#[test]
fn fork_bomb_stops_at_pids_max() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    // The bomb runs in a child shell, which dies at the first failed fork; the outer shell
    // then counts with builtins only (a glob), since it could not fork either.
    let b = Bundle::new(
        "sh -c 'i=0; while [ $i -lt 60 ]; do sleep 1000 & i=$((i+1)); done' 2>/dev/null; \
         set -- /proc/[0-9]*; echo $#; kill -9 -1",
    );
    b.edit(|s| s["linux"]["resources"]["pids"] = json!({"limit": 16}));
    let out = run_ok(&runc, &b, "pids");
    let n: usize = out.trim().parse().unwrap_or_else(|_| panic!("{out}"));
    // sh, the sleeps, ls and wc together stay within 16; far fewer would mean no bomb at all.
    assert!((10..=16).contains(&n), "{n} processes with pids.max 16");
}

#[test]
fn pause_freezes_and_resume_thaws() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("while true; do date +%s%N > /dev/shm/tick; sleep 0.05; done");
    let id = unique_id("pause");
    let _g = Guard::new(&runc, &id);
    assert!(runc.create(&b, &id).status.success());
    assert!(runc.exec(&["start", &id]).status.success());
    let out = runc.exec(&["pause", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(runc.status(&id), "paused");
    let init = runc.init_pid(&id);
    let st = std::fs::read_to_string(format!("/proc/{init}/wchan")).unwrap_or_default();
    assert!(
        st.contains("freezer") || st.contains("refrigerator") || st.contains("do_freezer_trap"),
        "init not frozen: wchan {st}"
    );
    let ex = runc.exec(&["exec", &id, "true"]);
    assert!(
        !ex.status.success(),
        "exec into a paused container must fail"
    );
    assert!(runc.exec(&["resume", &id]).status.success());
    assert_eq!(runc.status(&id), "running");
    assert!(
        !runc.exec(&["resume", &id]).status.success(),
        "resume of a running container"
    );
}

#[test]
fn update_changes_limits_of_a_running_container() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("sleep 1000");
    b.edit(|s| s["linux"]["resources"]["pids"] = json!({"limit": 100}));
    let id = unique_id("update");
    let _g = Guard::new(&runc, &id);
    assert!(runc.create(&b, &id).status.success());
    assert!(runc.exec(&["start", &id]).status.success());
    let res = b.path().join("res.json");
    std::fs::write(&res, r#"{"pids": {"limit": 4}}"#).unwrap();
    let out = runc.exec(&["update", "--resources", res.to_str().unwrap(), &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Inside, with init, the exec'd sh and its children: the fifth process cannot start.
    // init and the exec'd sh count too: the third background child is the fifth process.
    let out = runc.exec(&[
        "exec",
        &id,
        "sh",
        "-c",
        "for i in 1 2 3; do sleep 100 >/dev/null 2>&1 & done; echo started",
    ]);
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        !text.contains("started") && err.contains("can't fork"),
        "pids.max 4 did not stop the third child: {text} {err}"
    );
}

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("cat /hook-start; echo; echo process-ran");
    let log = b.path().join("hooks.log");
    let script = b.path().join("hook.sh");
    // Each host-side hook appends its kind and the state it read on stdin.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s ' \"$1\" >> {}\ncat >> {}\necho >> {}\n",
            log.display(),
            log.display(),
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hook = |kind: &str| json!([{"path": script, "args": ["hook.sh", kind]}]);
    b.edit(|s| {
        s["root"]["readonly"] = false.into();
        s["hooks"] = json!({
            "prestart": hook("prestart"),
            "createRuntime": hook("createRuntime"),
            "createContainer": hook("createContainer"),
            // Runs inside the container after pivot_root: a path of the container's.
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /hook-start"]}],
            "poststart": hook("poststart"),
            "poststop": hook("poststop"),
        });
    });
    let id = unique_id("hooks");
    let (code, out, err) = runc.run(&b, &id);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("\"status\":\"running\"") && out.contains(&id),
        "startContainer stdin: {out}"
    );
    assert!(out.ends_with("process-ran\n"));
    let text = std::fs::read_to_string(&log).unwrap();
    let kinds: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ],
        "{text}"
    );
    for line in text.lines() {
        let (kind, json) = line.split_once(' ').unwrap();
        let st: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(st["id"], id.as_str(), "{kind}");
        assert_eq!(st["bundle"], b.path().to_str().unwrap(), "{kind}");
        if kind != "poststop" {
            assert!(
                st["pid"].as_i64().unwrap() > 1,
                "{kind}: host pid expected: {json}"
            );
        }
    }
}

#[test]
fn failing_create_hook_aborts_create_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("true");
    b.edit(|s| s["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]}));
    let id = unique_id("badhook");
    let out = runc.create(&b, &id);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("createRuntime") && err.contains("/bin/false"),
        "{err}"
    );
    assert!(!runc.root.path().join(&id).exists());
    let cg = b.spec()["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !std::path::Path::new(&format!("/sys/fs/cgroup/pids{cg}")).exists(),
        "cgroup left behind"
    );
}
