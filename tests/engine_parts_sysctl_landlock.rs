//! sysctl and Landlock, each in a helper process (this binary re-run with `LASSO_PARTS_CHILD`
//! and `--exact`): sysctls are written only after the helper has its own network, IPC and UTS
//! namespaces, so the host's values cannot change; Landlock restricts only the helper.

use std::collections::HashMap;
use std::process::Command;

use lasso::engine::landlock::{self, Enforcement, LandlockRules};
use lasso::engine::sysctl;

mod engine_parts_support;
use engine_parts_support::{field, in_child_with as in_child, is_child};

fn read(p: &str) -> String {
    std::fs::read_to_string(p).unwrap().trim().to_owned()
}

fn ns_id(kind: &str) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/thread-self/ns/{kind}")).unwrap()
}

#[test]
fn child_sysctl() {
    if !is_child("child_sysctl") {
        return;
    }
    println!();
    let before = (ns_id("net"), ns_id("ipc"), ns_id("uts"));
    // SAFETY: unshare of the calling thread's namespaces; no pointers.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    // Never write unless this thread really left the host's namespaces.
    assert_ne!(before.0, ns_id("net"));
    assert_ne!(before.1, ns_id("ipc"));
    assert_ne!(before.2, ns_id("uts"));
    let want = HashMap::from([
        ("net.ipv4.ip_forward".to_string(), "1".to_string()),
        ("kernel.shmmax".to_string(), "12345678".to_string()),
        ("kernel/hostname".to_string(), "lasso-sysctl".to_string()),
    ]);
    let ns = sysctl::Namespaces {
        net: true,
        ipc: true,
        uts: true,
    };
    sysctl::validate(&want, ns).unwrap();
    sysctl::apply(&want).unwrap();
    println!("FORWARD: {}", read("/proc/sys/net/ipv4/ip_forward"));
    println!("SHMMAX: {}", read("/proc/sys/kernel/shmmax"));
    println!("HOSTNAME: {}", read("/proc/sys/kernel/hostname"));
}

#[test]
fn sysctls_land_in_the_container_namespaces_only() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let host = (
        read("/proc/sys/net/ipv4/ip_forward"),
        read("/proc/sys/kernel/shmmax"),
        read("/proc/sys/kernel/hostname"),
    );
    let out = in_child("child_sysctl", &[]);
    assert_eq!(field(&out, "FORWARD"), "1");
    assert_eq!(field(&out, "SHMMAX"), "12345678");
    assert_eq!(field(&out, "HOSTNAME"), "lasso-sysctl");
    let after = (
        read("/proc/sys/net/ipv4/ip_forward"),
        read("/proc/sys/kernel/shmmax"),
        read("/proc/sys/kernel/hostname"),
    );
    assert_eq!(host, after, "a host sysctl changed");
}

#[test]
fn sysctl_name_cannot_reach_a_file_outside_proc_sys() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sys");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(tmp.path().join("victim"), "safe").unwrap();
    // A symlink inside the tree pointing out of it must not be followed.
    std::os::unix::fs::symlink(tmp.path().join("victim"), root.join("link")).unwrap();
    let err = sysctl::prepare(&HashMap::from([("link".to_string(), "pwned".to_string())]))
        .unwrap()
        .apply_under(&root)
        .unwrap_err();
    assert!(err.to_string().contains("link"), "{err}");
    let err = sysctl::prepare(&HashMap::from([(
        "../victim".to_string(),
        "pwned".to_string(),
    )]))
    .unwrap_err();
    assert!(
        err.to_string().contains("not a valid parameter name"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("victim")).unwrap(),
        "safe"
    );
}

fn outcome<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(-1)),
    }
}

#[test]
fn child_landlock() {
    if !is_child("child_landlock") {
        return;
    }
    println!();
    let dir = std::path::PathBuf::from(std::env::var("LASSO_LL_DIR").unwrap());
    let (ro, rw, other) = (dir.join("ro"), dir.join("rw"), dir.join("other"));
    let (both, lone) = (dir.join("both"), dir.join("lone"));
    // `both` is in two lists (its rule carries both rights); `lone` is a regular file, whose
    // rule may carry file rights only (or the kernel refuses the whole ruleset).
    let rules = LandlockRules {
        read: vec![ro.clone(), both.clone(), lone.clone()],
        read_write: vec![rw.clone()],
        execute: vec![both.clone()],
    };
    let status = landlock::restrict(&rules).unwrap();
    println!("ABI: {}", status.abi);
    println!("FULL: {}", status.enforcement == Enforcement::Full);
    println!(
        "READ_RO: {}",
        outcome(std::fs::read_to_string(ro.join("f")))
    );
    println!("WRITE_RO: {}", outcome(std::fs::write(ro.join("new"), "x")));
    println!(
        "READ_OTHER: {}",
        outcome(std::fs::read_to_string(other.join("f")))
    );
    println!("WRITE_RW: {}", outcome(std::fs::write(rw.join("new"), "x")));
    println!(
        "READ_RW: {}",
        outcome(std::fs::read_to_string(rw.join("new")))
    );
    println!("LIST_OTHER: {}", outcome(std::fs::read_dir(&other)));
    // Execution needs the execute list: /bin/true is outside every list.
    println!("EXEC: {}", outcome(Command::new("/bin/true").status()));
    println!(
        "EXEC_BOTH: {}",
        outcome(Command::new(both.join("busybox")).arg("true").status())
    );
    println!(
        "READ_BOTH: {}",
        outcome(std::fs::read_to_string(both.join("f")))
    );
    println!(
        "WRITE_BOTH: {}",
        outcome(std::fs::write(both.join("new"), "x"))
    );
    println!("READ_LONE: {}", outcome(std::fs::read_to_string(&lone)));
}

#[test]
fn landlock_confines_reads_and_writes_to_the_listed_dirs() {
    if landlock::kernel_abi() < 1 {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for d in ["ro", "rw", "other", "both"] {
        std::fs::create_dir(tmp.path().join(d)).unwrap();
        std::fs::write(tmp.path().join(d).join("f"), "data").unwrap();
    }
    std::fs::write(tmp.path().join("lone"), "data").unwrap();
    // A static program, so that running it needs no library outside the execute list.
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("busybox-static is installed (.ci/run)");
    std::fs::copy(busybox, tmp.path().join("both/busybox")).unwrap();
    let out = in_child("child_landlock", &[("LASSO_LL_DIR", tmp.path())]);
    let eacces = format!("errno {}", libc::EACCES);
    assert!(field(&out, "ABI").parse::<i32>().unwrap() >= 1);
    if landlock::kernel_abi() >= 5 {
        assert_eq!(field(&out, "FULL"), "true");
    }
    assert_eq!(field(&out, "READ_RO"), "ok");
    assert_eq!(field(&out, "WRITE_RO"), eacces);
    assert_eq!(field(&out, "READ_OTHER"), eacces);
    assert_eq!(field(&out, "LIST_OTHER"), eacces);
    assert_eq!(field(&out, "WRITE_RW"), "ok");
    assert_eq!(field(&out, "READ_RW"), "ok");
    assert_eq!(field(&out, "EXEC"), eacces);
    // A path in the read and the execute lists keeps both rights, and no more.
    assert_eq!(field(&out, "EXEC_BOTH"), "ok");
    assert_eq!(field(&out, "READ_BOTH"), "ok");
    assert_eq!(field(&out, "WRITE_BOTH"), eacces);
    assert_eq!(field(&out, "READ_LONE"), "ok");
}

#[test]
fn landlock_rule_for_a_missing_path_names_the_list_and_path() {
    let rules = LandlockRules {
        read: vec!["/nonexistent/lasso-ll".into()],
        ..Default::default()
    };
    let err = landlock::restrict(&rules).unwrap_err().to_string();
    assert!(err.contains("read path /nonexistent/lasso-ll"), "{err}");
}
