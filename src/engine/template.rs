//! The default bundle configuration `lasso-runc spec` writes: a busybox-friendly container with
//! the namespaces, mounts, masked and read-only paths runc's template has, and the rootless
//! variant (a user namespace mapping only the caller, /sys bound from the host, no cgroup mount,
//! no network namespace, no device cgroup rules).

use serde_json::{json, Value};

/// The default spec as JSON.
pub fn default_spec() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        // The version runc 1.1 writes: older runtimes (crun 1.8) refuse newer ones.
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "lasso",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// The rootless variant for the user `uid`:`gid`.
pub fn rootless_spec(uid: u32, gid: u32) -> Value {
    let mut spec = default_spec();
    let linux = &mut spec["linux"];
    linux["resources"] = json!({});
    linux["namespaces"] = json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}
    ]);
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    let mounts = spec["mounts"].as_array_mut().expect("array");
    mounts.retain(|m| m["type"] != "cgroup");
    for m in mounts.iter_mut() {
        match m["destination"].as_str() {
            Some("/sys") => {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            Some("/dev/pts") => {
                // gid=5 names a group the single mapping does not hold.
                let opts = m["options"].as_array_mut().expect("array");
                opts.retain(|o| o != "gid=5");
            }
            _ => {}
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Spec;

    #[test]
    fn both_templates_parse_as_oci_specs() {
        let s: Spec = serde_json::from_value(default_spec()).unwrap();
        assert_eq!(s.hostname().as_deref(), Some("lasso"));
        let r: Spec = serde_json::from_value(rootless_spec(1000, 1000)).unwrap();
        let maps = r.linux().as_ref().unwrap().uid_mappings().clone().unwrap();
        assert_eq!(maps[0].host_id(), 1000);
    }
}
