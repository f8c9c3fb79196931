//! Differential: the same busybox bundle under runc (where installed) and lasso-runc must show
//! the same thing from inside. Intended differences, left out of the comparison: the cgroup
//! mount (runc mounts one cgroup per v1 controller; lasso-runc binds the host's hierarchy
//! read-only on v1/hybrid hosts) and mount IDs and devices, which differ run to run anyway.
//! Init's descriptors are listed without a pipe: a shell holds a pipeline's pipe ends while
//! its children run, which would show up as fds 3 and 4.

mod runc_support;
use runc_support::*;
use std::process::{Command, Stdio};

const PROBE: &str = "id; hostname; grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; \
    ulimit -n; ls /dev | tr '\\n' ' '; echo; ls /proc/1/fd; \
    awk '{print $5, $6}' /proc/self/mountinfo 2>/dev/null || \
    while read -r _ _ _ _ dst opts _; do echo \"$dst $opts\"; done < /proc/self/mountinfo; \
    touch /x 2>/dev/null || echo ro-root; exit 3";

fn observe(mut cmd: Command) -> (i32, Vec<String>) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("/sys/fs/cgroup"))
        .map(String::from)
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

#[test]
fn same_bundle_same_view_under_runc_and_lasso_runc() {
    if !can_run() {
        return;
    }
    if Command::new("runc").arg("--version").output().is_err() {
        eprintln!("skipping: runc is not installed");
        return;
    }
    let b = Bundle::new(PROBE);
    let ours = Runc::new();
    let id = unique_id("diff");
    let _g = Guard::new(&ours, &id);
    let mut cmd = ours.cmd();
    cmd.args(["run", "--bundle"]).arg(b.path()).arg(&id);
    let (our_code, our_view) = observe(cmd);

    // runc gets a cgroup of its own, removed below if runc leaves it behind.
    let runc_cg = format!("/{}", unique_id("cg-runc"));
    b.edit(|s| s["linux"]["cgroupsPath"] = runc_cg.clone().into());
    let runc_root = tempfile::Builder::new()
        .prefix("ocitest-runc")
        .tempdir()
        .unwrap();
    let rid = unique_id("diffrunc");
    let mut cmd = Command::new("runc");
    cmd.arg("--root")
        .arg(runc_root.path())
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&rid);
    let (their_code, their_view) = observe(cmd);
    let _ = Command::new("runc")
        .arg("--root")
        .arg(runc_root.path())
        .args(["delete", "--force", &rid])
        .output();
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join(runc_cg.trim_start_matches('/')));
    }

    assert_eq!(our_code, 3);
    assert_eq!(their_code, 3);
    assert_eq!(
        our_view, their_view,
        "lasso-runc (left) and runc (right) see different containers"
    );
}
