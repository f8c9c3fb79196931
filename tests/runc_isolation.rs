//! What the kernel enforces inside a lasso-runc container, read from inside: namespaces, the
//! mount table, masked and read-only paths, devices, hostname, ID maps, user and groups, and
//! that nothing of the host (descriptors, the runtime binary) reaches the container.

mod runc_support;
use runc_support::*;

fn run_ok(runc: &Runc, b: &Bundle, name: &str) -> String {
    let (code, out, err) = runc.run(b, &unique_id(name));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    out
}

#[test]
fn container_has_its_own_namespaces_and_is_pid_1() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("echo pid=$$; for n in pid net ipc uts mnt cgroup; do echo $n=$(readlink /proc/self/ns/$n); done");
    let out = run_ok(&runc, &b, "ns");
    assert!(out.contains("pid=1\n"), "{out}");
    for n in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{n}")).unwrap();
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{n}=")))
            .unwrap();
        assert_ne!(
            line[n.len() + 1..],
            *host.to_str().unwrap(),
            "{n} namespace shared with the host"
        );
    }
}

#[test]
fn hostname_and_domainname_are_the_specs() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("hostname; cat /proc/sys/kernel/domainname");
    b.edit(|s| {
        s["hostname"] = "box1".into();
        s["domainname"] = "example.test".into();
    });
    assert_eq!(run_ok(&runc, &b, "uts"), "box1\nexample.test\n");
}

#[test]
fn readonly_root_masked_and_readonly_paths_hold() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new(
        "touch /x 2>/dev/null && echo root-writable; \
         echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo procsys-writable; \
         echo keys=$(wc -c < /proc/keys); ls /sys/firmware | wc -l; \
         touch /dev/shm/ok && echo shm-writable",
    );
    let out = run_ok(&runc, &b, "ro");
    assert!(!out.contains("root-writable"), "{out}");
    assert!(!out.contains("procsys-writable"), "{out}");
    assert!(out.contains("keys=0\n"), "/proc/keys not masked: {out}");
    assert!(out.contains("\n0\n"), "/sys/firmware not masked: {out}");
    assert!(out.contains("shm-writable"), "{out}");
}

#[test]
fn only_the_default_devices_exist_and_they_are_the_real_ones() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new(
        "for d in null zero full random urandom tty; do stat -c '%n %F %t,%T %a' /dev/$d; done; \
         echo x > /dev/full 2>/dev/null || echo full-is-full; \
         ls /dev | tr '\\n' ' '; echo; readlink /dev/ptmx",
    );
    let out = run_ok(&runc, &b, "dev");
    for l in [
        "/dev/null character special file 1,3 666",
        "/dev/zero character special file 1,5 666",
        "/dev/full character special file 1,7 666",
        "/dev/random character special file 1,8 666",
        "/dev/urandom character special file 1,9 666",
        "/dev/tty character special file 5,0 666",
    ] {
        assert!(out.contains(l), "missing {l:?} in {out}");
    }
    assert!(out.contains("full-is-full"));
    assert!(
        !out.contains("sda") && !out.contains("vda") && !out.contains("kmsg"),
        "host devices leaked: {out}"
    );
    assert!(out.contains("pts/ptmx"));
}

#[test]
fn bind_mount_options_are_enforced_and_nothing_propagates_to_the_host() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let host = tempfile::Builder::new()
        .prefix("ocitest-data")
        .tempdir()
        .unwrap();
    std::fs::write(host.path().join("f"), "host data\n").unwrap();
    let b = Bundle::new(
        "cat /data/f; echo y > /data/f 2>/dev/null && echo ro-broken; \
         echo z > /rw/new && echo rw-ok; \
         grep ' /data ' /proc/self/mountinfo | grep -q nosuid && echo nosuid-ok; \
         grep -q ociVersion /cfg && echo relative-ok",
    );
    b.edit(|s| {
        s["root"]["readonly"] = false.into();
        let m = s["mounts"].as_array_mut().unwrap();
        m.push(serde_json::json!({"destination": "/data", "type": "bind", "source": host.path(), "options": ["rbind", "ro", "nosuid"]}));
        m.push(serde_json::json!({"destination": "/rw", "type": "bind", "source": host.path(), "options": ["bind", "rw"]}));
        // A relative source names a path in the bundle.
        m.push(serde_json::json!({"destination": "/cfg", "type": "bind", "source": "config.json", "options": ["bind", "ro"]}));
    });
    let out = run_ok(&runc, &b, "bind");
    assert!(out.starts_with("host data\n"), "{out}");
    assert!(!out.contains("ro-broken"), "{out}");
    assert!(out.contains("rw-ok"), "{out}");
    assert!(out.contains("nosuid-ok"), "{out}");
    assert!(
        out.contains("relative-ok"),
        "relative bind source not taken from the bundle: {out}"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("new")).unwrap(),
        "z\n"
    );
    assert!(
        leftover_mounts("ocitest-data").is_empty(),
        "container mounts reached the host"
    );
    assert!(
        leftover_mounts("ocitest-bundle").is_empty(),
        "container mounts reached the host"
    );
}

#[test]
fn mount_destination_symlink_cannot_escape_the_rootfs() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let host_target = tempfile::Builder::new()
        .prefix("ocitest-victim")
        .tempdir()
        .unwrap();
    let b = Bundle::new("ls /escape/ | wc -l");
    // The image links /escape to a host directory; the tmpfs must land inside the rootfs.
    std::os::unix::fs::symlink(host_target.path(), b.rootfs().join("escape")).unwrap();
    b.edit(|s| {
        s["root"]["readonly"] = false.into();
        s["mounts"].as_array_mut().unwrap().push(
            serde_json::json!({"destination": "/escape", "type": "tmpfs", "source": "tmpfs"}),
        );
    });
    let id = unique_id("symlink");
    let (code, _out, _err) = runc.run(&b, &id);
    assert_eq!(code, 0);
    assert!(leftover_mounts("ocitest-victim").is_empty());
    // The symlink was resolved inside the rootfs: the host directory was never mounted over,
    // and the tmpfs went to the path the link names under the rootfs.
    let inside = b
        .rootfs()
        .join(host_target.path().strip_prefix("/").unwrap());
    assert!(
        inside.is_dir(),
        "mount target not created inside the rootfs"
    );
}

#[test]
fn no_host_descriptor_reaches_the_container() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    // Init is pid 1 and runs sh: its own fd table, read without opening anything else in it.
    // No pipeline: sh would hold the pipe's ends while ls reads its fd table.
    let b = Bundle::new("ls /proc/1/fd; readlink /proc/1/cwd");
    // Give lasso-runc an extra inherited descriptor, as a careless caller would.
    let leak = std::fs::File::open("/etc/hostname").unwrap();
    use std::os::fd::AsRawFd;
    let fd = leak.as_raw_fd();
    // SAFETY: clear FD_CLOEXEC on our own descriptor so the child inherits it.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let out = run_ok(&runc, &b, "fds");
    drop(leak);
    assert_eq!(
        out, "0\n1\n2\n/\n",
        "descriptors beyond stdio leaked: {out}"
    );
}

#[test]
fn preserved_descriptors_are_passed_and_no_others() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("ls /proc/1/fd; cat <&3");
    let f = std::fs::File::open(b.path().join("config.json")).unwrap();
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let raw = f.as_raw_fd();
    let id = unique_id("preserve");
    let _g = Guard::new(&runc, &id);
    let mut cmd = runc.cmd();
    cmd.args(["run", "--preserve-fds", "1", "--bundle"])
        .arg(b.path())
        .arg(&id);
    // SAFETY: dup2 in the forked child before exec, onto fd 3.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("0\n1\n2\n3\n{"), "{text}");
    assert!(
        text.contains("ociVersion"),
        "fd 3 is not the preserved file: {text}"
    );
}

#[test]
fn runtime_binary_is_not_reachable_through_proc_exe() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    // Every process the container can see: none may resolve to the host's lasso-runc.
    let b = Bundle::new("for p in /proc/[0-9]*; do readlink $p/exe; done; echo done");
    let out = run_ok(&runc, &b, "exe");
    assert!(out.contains("/bin/busybox"), "{out}");
    assert!(!out.contains("lasso-runc"), "host binary visible: {out}");
}

#[test]
fn user_namespace_maps_root_to_a_host_range() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let vol = tempfile::Builder::new()
        .prefix("ocitest-vol")
        .tempdir()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(vol.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let b = Bundle::new("cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /vol/made");
    // Container root is host uid 200000 and may not create directories in a root-owned rootfs.
    std::fs::create_dir(b.rootfs().join("vol")).unwrap();
    b.edit(|s| {
        s["root"]["readonly"] = false.into();
        s["linux"]["namespaces"].as_array_mut().unwrap().push(serde_json::json!({"type": "user"}));
        s["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        s["linux"]["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        s["mounts"].as_array_mut().unwrap().push(serde_json::json!({"destination": "/vol", "type": "bind", "source": vol.path(), "options": ["rbind"]}));
    });
    let out = run_ok(&runc, &b, "userns");
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        &words[..7],
        &["0", "200000", "65536", "0", "200000", "65536", "0"],
        "{out}"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(vol.path().join("made")).unwrap().uid(),
        200000,
        "container root is not host uid 200000"
    );
}

#[test]
fn process_user_groups_umask_cwd_env_and_no_new_privs_apply() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("id; umask; pwd; echo $GREETING; grep NoNewPrivs /proc/self/status");
    b.edit(|s| {
        s["process"]["user"] =
            serde_json::json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 7], "umask": 63});
        s["process"]["cwd"] = "/tmp".into();
        s["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push("GREETING=hello".into());
        s["process"]["noNewPrivileges"] = true.into();
    });
    let out = run_ok(&runc, &b, "user");
    assert!(out.contains("uid=1000 gid=1001 groups=5(tty),7"), "{out}");
    assert!(out.contains("0077"), "{out}");
    assert!(out.contains("/tmp\nhello\n"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
}

#[test]
fn no_pivot_still_shows_only_the_rootfs() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new("ls /");
    let id = unique_id("nopivot");
    let _g = Guard::new(&runc, &id);
    let out = runc
        .cmd()
        .args(["run", "--no-pivot", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        entries,
        ["bin", "dev", "etc", "proc", "sys", "tmp"],
        "host root visible"
    );
}
