//! The shortcuts init takes while it builds a root (devices made under one /dev handle, a
//! missing mount point made under its parent, a bind's flags set as mount attributes) hold the
//! same line as the full walk: what the image links to the host is resolved inside the rootfs,
//! and a read-only bind is read-only as the kernel sees it from inside.

mod runc_support;
use runc_support::*;
use serde_json::json;

/// Puts the bundle in a user namespace (container root = host 100000), so devices are bound
/// from the host rather than made with mknod.
fn in_user_namespace(s: &mut serde_json::Value) {
    s["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    s["linux"]["uidMappings"] = map.clone();
    s["linux"]["gidMappings"] = map;
}

/// Gives the rootfs to the container's root (host 100000), which makes missing mount points.
fn own_rootfs(dir: &std::path::Path) {
    std::os::unix::fs::lchown(dir, Some(100000), Some(100000)).unwrap();
    if dir.is_symlink() || !dir.is_dir() {
        return;
    }
    for e in std::fs::read_dir(dir).unwrap() {
        own_rootfs(&e.unwrap().path());
    }
}

#[test]
fn a_device_path_the_image_links_to_the_host_is_bound_inside_the_rootfs() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let victim = tempfile::Builder::new()
        .prefix("ocitest-victim")
        .tempdir()
        .unwrap();
    let host_file = victim.path().join("null");
    std::fs::write(&host_file, "host data\n").unwrap();
    let b = Bundle::new(&format!(
        "stat -c '%F %t:%T' {p}; cat {p}; echo end",
        p = host_file.display()
    ));
    // The image's /dev/null is an absolute link naming the host file; the same path exists
    // inside the rootfs too, where the link must land.
    let inside = b.rootfs().join(host_file.strip_prefix("/").unwrap());
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    std::fs::write(&inside, "").unwrap();
    std::os::unix::fs::symlink(&host_file, b.rootfs().join("dev/null")).unwrap();
    own_rootfs(&b.rootfs());
    b.edit(|s| {
        in_user_namespace(s);
        // No /dev tmpfs: the devices go into the image's own /dev, links and all.
        s["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/dev");
    });
    let (code, out, err) = runc.run(&b, &unique_id("devlink"));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.starts_with("character special file 1:3"),
        "the link's target inside the rootfs is not the null device: {out}"
    );
    assert!(!out.contains("host data"), "{out}");
    assert!(leftover_mounts("ocitest-victim").is_empty());
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "host data\n");
}

#[test]
fn a_read_only_file_bind_on_a_missing_destination_is_a_read_only_file() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let src = tempfile::Builder::new()
        .prefix("ocitest-src")
        .tempdir()
        .unwrap();
    let file = src.path().join("extra");
    std::fs::write(&file, "from the host\n").unwrap();
    let b = Bundle::new(
        "cat /etc/extra; stat -c %F /etc/extra; \
         echo changed > /etc/extra && echo WRITABLE; \
         grep ' /etc/extra ' /proc/self/mountinfo | cut -d' ' -f6",
    );
    own_rootfs(&b.rootfs());
    b.edit(|s| {
        in_user_namespace(s);
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/etc/extra",
            "type": "bind",
            "source": file,
            "options": ["rbind", "ro", "nosuid", "nodev"]
        }));
    });
    let (code, out, err) = runc.run(&b, &unique_id("robind"));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"from the host"), "{out}");
    // Made as a file (the source is one), not a directory.
    assert_eq!(lines.get(1), Some(&"regular file"), "{out}");
    assert!(
        !out.contains("WRITABLE"),
        "a read-only bind took a write: {out}"
    );
    let opts = lines.last().unwrap();
    for flag in ["ro", "nosuid", "nodev"] {
        assert!(
            opts.split(',').any(|o| o == flag),
            "mount options {opts:?} lack {flag}"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "from the host\n");
    assert!(leftover_mounts("ocitest-src").is_empty());
}

#[test]
fn ro_and_rw_binds_of_one_directory_each_get_what_they_asked() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let src = tempfile::Builder::new()
        .prefix("ocitest-rwsrc")
        .tempdir()
        .unwrap();
    let b = Bundle::new(
        "mkdir -p /ro /rw; touch /ro/x 2>/dev/null && echo RO-WRITABLE; \
         touch /rw/y && echo rw-ok",
    );
    let data = src.path().to_path_buf();
    b.edit(|s| {
        s["root"]["readonly"] = false.into();
        let mounts = s["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/ro", "type": "bind", "source": data,
            "options": ["rbind", "ro"]}));
        // A second bind of the same directory, asked rw: the first one's ro must not reach it.
        mounts.push(json!({"destination": "/rw", "type": "bind", "source": data,
            "options": ["rbind", "rw", "nosuid"]}));
    });
    let (code, out, err) = runc.run(&b, &unique_id("rwbind"));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(!out.contains("RO-WRITABLE"), "{out}");
    assert!(out.contains("rw-ok"), "{out}");
    assert!(src.path().join("y").exists());
    assert!(!src.path().join("x").exists());
}

/// The container's mount table as seen from inside: (mount id, parent id, mount point).
fn mount_table(out: &str) -> Vec<(u32, u32, String)> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((
                f.first()?.parse().ok()?,
                f.get(1)?.parse().ok()?,
                f.get(4)?.to_string(),
            ))
        })
        .collect()
}

fn assert_only_the_new_root(out: &str) {
    let table = mount_table(out);
    assert!(!table.is_empty(), "no mount table read: {out}");
    let roots = table.iter().filter(|(_, _, p)| p == "/").count();
    assert_eq!(
        roots, 1,
        "more than one mount at /: the old root is still stacked\n{out}"
    );
    // Every mount hangs from a mount of the table, but for the root itself.
    let ids: Vec<u32> = table.iter().map(|(id, _, _)| *id).collect();
    let orphans = table
        .iter()
        .filter(|(_, parent, _)| !ids.contains(parent))
        .count();
    assert_eq!(orphans, 1, "mounts from outside the new root\n{out}");
}

#[test]
fn the_host_root_is_detached_before_the_container_runs() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    // First thing the container does: read its mount table.
    let b = Bundle::new("cat /proc/self/mountinfo");
    let (code, out, err) = runc.run(&b, &unique_id("oldroot"));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_only_the_new_root(&out);
    // The same in a user namespace (init's detach runs there).
    let b = Bundle::new("cat /proc/self/mountinfo");
    own_rootfs(&b.rootfs());
    b.edit(in_user_namespace);
    let (code, out, err) = runc.run(&b, &unique_id("oldrootns"));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_only_the_new_root(&out);
}
