//! The end of `lasso run` through the binary: once the command returns, nothing of the
//! sandbox is left (its directory, engine state, cgroups, and its mount namespace, which the
//! monitor holds from the command's start to its cleanup so that init's exit does not tear
//! the mounts down), even when the exec gate's counts are still due as the sandbox ends (the
//! counts file is written into the sandbox's directory, which the cleanup removes beside the
//! end of the gate), and the audit log is sealed.

mod sandbox_support;

use sandbox_support::*;

/// `mnt:[inode]` links of every process's mount namespace and open descriptors.
fn mount_namespace_holders(ns: &str) -> Vec<String> {
    let mut holders = Vec::new();
    for proc_entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = proc_entry.path();
        let is_pid = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        if std::fs::read_link(dir.join("ns/mnt")).is_ok_and(|l| l.to_string_lossy() == ns) {
            holders.push(format!("{} (member)", dir.display()));
        }
        for fd in std::fs::read_dir(dir.join("fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == ns) {
                holders.push(fd.path().display().to_string());
            }
        }
    }
    holders
}

#[test]
fn a_run_ending_with_its_gate_counts_due_leaves_nothing_and_seals_its_log() {
    if !is_root() {
        eprintln!("skipped: needs root (for cgroups and to read every process's namespaces)");
        return;
    }
    for round in 0..4 {
        let w = world(As::Root);
        // Execs right before the end: the gate's counts are dirty and their thread mid-pause
        // when init exits, in the first rounds after a pause longer than the counts' interval.
        let script = if round % 2 == 0 {
            "readlink /proc/self/ns/mnt; /bin/true; sleep 0.15; /bin/true; /bin/true"
        } else {
            "readlink /proc/self/ns/mnt; /bin/true; /bin/true"
        };
        let out =
            run(&mut w.lasso(&["run", "--profile", "offline", "--", "/bin/sh", "-c", script]));
        assert!(out.status.success(), "{}", text(&out));
        let ns = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            ns.starts_with("mnt:["),
            "no namespace printed: {}",
            text(&out)
        );
        let holders = mount_namespace_holders(&ns);
        assert!(
            holders.is_empty(),
            "the sandbox's mount namespace {ns} outlived lasso run: {holders:?}"
        );
        let id = w.only_log();
        assert!(w.leftovers().is_empty(), "{:?}", w.leftovers());
        assert!(
            !std::path::Path::new("/run/lasso/engine").join(&id).exists(),
            "engine state of {id} left"
        );
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let cg = hierarchy.path().join(format!("lasso-{id}"));
            assert!(!cg.exists(), "cgroup {} left", cg.display());
        }
        w.assert_log_sealed(&id);
    }
}
