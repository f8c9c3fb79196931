//! rlimits and capabilities, checked in a separate helper process (this test binary re-run
//! with `LASSO_PARTS_CHILD` set and `--exact`), which reports what the kernel shows in
//! /proc/thread-self/status and what a privileged call does afterwards.

use std::collections::HashSet;

use lasso::engine::{capabilities, rlimits};
use oci_spec::runtime::{
    Capability, LinuxCapabilities, PosixRlimit, PosixRlimitBuilder, PosixRlimitType,
};

mod engine_parts_support;
use engine_parts_support::{field, in_child, in_child_with, is_child};

fn status_field(key: &str) -> String {
    let s = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .unwrap()
        .trim()
        .to_owned()
}

fn limit(t: PosixRlimitType, soft: u64, hard: u64) -> PosixRlimit {
    PosixRlimitBuilder::default()
        .typ(t)
        .soft(soft)
        .hard(hard)
        .build()
        .unwrap()
}

#[test]
fn child_rlimits() {
    if !is_child("child_rlimits") {
        return;
    }
    println!(); // libtest prints "test name ... " without a newline
    rlimits::apply(&[
        limit(PosixRlimitType::RlimitNofile, 64, 128),
        limit(PosixRlimitType::RlimitCore, 0, 0),
    ])
    .unwrap();
    // The kernel's witness: opening a 65th descriptor fails with EMFILE.
    let mut files = Vec::new();
    let err = loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) => break e,
        }
    };
    println!("EMFILE: {}", err.raw_os_error() == Some(libc::EMFILE));
    println!("OPENED: {}", files.len());
    drop(files);
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    println!("NOFILE: {line}");
}

#[test]
fn rlimit_nofile_caps_open_descriptors() {
    let out = in_child("child_rlimits");
    assert_eq!(field(&out, "EMFILE"), "true");
    let opened: usize = field(&out, "OPENED").parse().unwrap();
    assert!(
        opened < 64,
        "{opened} files opened under a soft limit of 64"
    );
    assert!(
        field(&out, "NOFILE").contains("64                   128"),
        "{out}"
    );
}

#[test]
fn rlimit_above_the_hard_limit_names_the_limit_and_the_fix() {
    if !nix::unistd::geteuid().is_root()
        || caps::has_cap(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_RESOURCE,
        )
        .unwrap()
    {
        return;
    }
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) };
    // Lowering is allowed and irreversible: only ask for a raise, which must fail unapplied.
    let err = rlimits::apply(&[limit(PosixRlimitType::RlimitNofile, 1024, cur.rlim_max + 1)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("RLIMIT_NOFILE") && err.contains("lower the hard limit"),
        "{err}"
    );
}

#[test]
fn rlimit_soft_above_hard_is_refused() {
    let err = rlimits::validate(&[limit(PosixRlimitType::RlimitNofile, 10, 5)]).unwrap_err();
    assert!(err.to_string().contains("RLIMIT_NOFILE"), "{err}");
    let dup = [
        limit(PosixRlimitType::RlimitCore, 0, 0),
        limit(PosixRlimitType::RlimitCore, 0, 0),
    ];
    assert!(rlimits::validate(&dup)
        .unwrap_err()
        .to_string()
        .contains("twice"));
}

/// All five sets given explicitly (the type's default is runc's default set).
fn caps_spec() -> LinuxCapabilities {
    let net = HashSet::from([Capability::NetBindService]);
    let two = HashSet::from([Capability::NetBindService, Capability::Setpcap]);
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(two.clone()));
    c.set_permitted(Some(two.clone()));
    c.set_effective(Some(two));
    c.set_inheritable(Some(net.clone()));
    c.set_ambient(Some(net));
    c
}

#[test]
fn child_capabilities() {
    if !is_child("child_capabilities") {
        return;
    }
    println!(); // libtest prints "test name ... " without a newline
    let sets = capabilities::CapSets::from_spec(&caps_spec()).unwrap();
    // A root-owned file, made before the switch to nobody.
    let probe = std::path::PathBuf::from(std::env::var("LASSO_PROBE").unwrap());
    std::fs::write(&probe, "").unwrap();
    capabilities::prepare_for_setuid().unwrap();
    // Switch this thread to nobody the way init does, then apply.
    // SAFETY: raw setresuid on the calling thread only (glibc would broadcast to all threads).
    let rc = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
    assert_eq!(rc, 0);
    sets.apply().unwrap();
    for k in ["Uid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        println!("{k}: {}", status_field(k));
    }
    // Witness: without CAP_CHOWN, chown of a root-owned file to nobody fails.
    let chown = std::os::unix::fs::chown(&probe, Some(65534), None);
    println!("CHOWN_DENIED: {}", chown.is_err());
}

#[test]
fn dropped_capabilities_are_gone_after_setuid() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Searchable by nobody, so only the missing capability can make chown fail.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let probe = dir.path().join("root-owned");
    let out = in_child_with("child_capabilities", &[("LASSO_PROBE", &probe)]);
    let net = 1u64 << 10; // CAP_NET_BIND_SERVICE
    let setpcap = 1u64 << 8;
    let hex = |m: u64| format!("{m:016x}");
    assert!(field(&out, "Uid").starts_with("65534"), "{out}");
    assert_eq!(field(&out, "CapBnd"), hex(net | setpcap));
    assert_eq!(field(&out, "CapPrm"), hex(net | setpcap));
    assert_eq!(field(&out, "CapEff"), hex(net | setpcap));
    assert_eq!(field(&out, "CapInh"), hex(net));
    assert_eq!(field(&out, "CapAmb"), hex(net));
    assert_eq!(field(&out, "CHOWN_DENIED"), "true");
}

#[test]
fn child_caps_not_held() {
    if !is_child("child_caps_not_held") {
        return;
    }
    println!(); // libtest prints "test name ... " without a newline
    let mut c = caps_spec();
    c.set_permitted(Some(HashSet::from([Capability::SysResource])));
    c.set_effective(Some(HashSet::new()));
    c.set_ambient(Some(HashSet::new()));
    println!("ERR: {}", capabilities::apply(&c).unwrap_err());
}

#[test]
fn capability_the_host_withholds_is_named_in_the_error() {
    // This machine's root lacks CAP_SYS_RESOURCE; elsewhere the test has nothing to show.
    if caps::has_cap(
        None,
        caps::CapSet::Permitted,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap()
    {
        return;
    }
    let out = in_child("child_caps_not_held");
    assert!(field(&out, "ERR").contains("CAP_SYS_RESOURCE"), "{out}");
}
