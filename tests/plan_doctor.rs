//! `lasso doctor` against the real kernel: on this host it must find what lasso needs, and in a
//! user namespace where the kernel forbids further user namespaces it must say so, name the
//! setting, and exit 1.

use std::process::Command;

fn lasso() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lasso"))
}

#[test]
fn doctor_json_reports_every_probe() {
    let out = lasso().args(["doctor", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in [
        "user namespaces",
        "landlock",
        "seccomp",
        "seccomp user notification",
        "cgroups",
        "pasta",
        "nft",
        "subordinate IDs",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let can_run = v["can_run"].as_bool().unwrap();
    assert_eq!(out.status.code(), Some(if can_run { 0 } else { 1 }));
}

#[test]
fn doctor_names_the_sysctl_when_user_namespaces_are_forbidden() {
    // user.max_user_namespaces is per user namespace: setting it to 0 inside our own namespace
    // forbids nested ones there, and leaves the host alone.
    let has_unshare = Command::new("unshare").arg("--help").output().is_ok();
    if !has_unshare {
        eprintln!("skipped: unshare (util-linux) not installed");
        return;
    }
    let script = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces && exec {} doctor",
        env!("CARGO_BIN_EXE_lasso")
    );
    let out = Command::new("unshare")
        .args(["-Ur", "sh", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("MISSING user namespaces"), "{text}");
    assert!(text.contains("user.max_user_namespaces"), "{text}");
    assert!(text.contains("cannot run"), "{text}");
}

#[test]
fn agents_lists_every_agent_with_installed_state() {
    let out = lasso().args(["agents", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["claude-code", "opencode", "codex", "shell"]);
    let shell = &rows[3];
    assert_eq!(shell["installed"], true, "bash or sh is on every test host");
    assert!(shell["real_path"].as_str().unwrap().starts_with('/'));
}

#[test]
fn doctor_as_an_unprivileged_user_reports_what_rootless_gets() {
    if !nix::unistd::getuid().is_root() || Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("skipped: needs root and setpriv to become an unprivileged user");
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_lasso"))
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["uid"], 65534);
    let check = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    // The kernel's answer for this user, not root's: the probe ran as 65534.
    let userns = check("user namespaces");
    assert_eq!(
        out.status.code() == Some(0),
        userns["status"] == "ok",
        "{v}"
    );
    // nobody's cgroup is not delegated to it: limits cannot be enforced, and doctor says how to fix.
    let cg = check("cgroups");
    if cg["status"] == "warn" {
        assert!(
            cg["found"].as_str().unwrap().contains("not writable"),
            "{cg}"
        );
        assert!(cg["fix"].as_str().is_some(), "{cg}");
    }
}
