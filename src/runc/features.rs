//! `lasso-runc features`: what this runtime really implements, as the OCI features document.
//! Callers enable user namespaces, idmapped mounts and the like from it, so it only lists what
//! works end to end.

use super::{print_json, Globals, RuncError, OCI_VERSION};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, _g: &Globals) -> Result<u8, RuncError> {
    let last = crate::engine::capabilities::last_cap().unwrap_or(40);
    let caps: Vec<String> = caps::all()
        .into_iter()
        .filter(|c| c.index() <= last)
        .map(|c| c.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // Idmapped bind mounts are made by the runtime on the host (root only), through
    // mount_setattr: report them where this kernel has that call.
    let idmap = crate::engine::idmap::kernel_supports_idmap();
    let doc = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
            "idmap", "mand", "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime",
            "nostrictatime", "nosuid", "private", "rbind", "rdev", "rdiratime", "relatime",
            "remount", "rexec", "ridmap", "rnoatime", "rnodev", "rnodiratime", "rnoexec", "rnosuid",
            "rnosymfollow", "ro", "rprivate", "rrelatime", "rro", "rrw", "rshared", "rslave",
            "rstrictatime", "rsuid", "rsymfollow", "runbindable", "rw", "shared", "slave",
            "strictatime", "suid", "sync", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": [native_arch()],
                "knownFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": idmap}}
        },
        "annotations": {
            "run.oci.lasso.version": env!("CARGO_PKG_VERSION")
        },
        // It names a host directory that root writes the container's audit log into: a
        // caller (containerd's CRI) should not take it from untrusted pod specs.
        "potentiallyUnsafeConfigAnnotations": ["run.lasso.audit"]
    });
    print_json(&doc)?;
    Ok(0)
}

fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "riscv64" => "SCMP_ARCH_RISCV64",
        other => other,
    }
}
