//! Idmapped bind mounts and ID ranges, checked from inside real containers: a host file owned
//! by one uid shows up as the mapped uid, files made through the mount land on the host with
//! the unmapped owner, and an unprivileged caller gets its /etc/subuid ranges through
//! newuidmap/newgidmap (or an error naming the missing entry).

mod runc_support;
use runc_support::*;
use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

/// Owner of the shared directory on the host; inside, the mount shows it as `INSIDE`.
const HOST_OWNER: u32 = 1234;
const INSIDE: u32 = 7;
/// The container's own user namespace: 0..65536 -> 100000..165536.
const CONTAINER_BASE: u32 = 100000;

/// A bundle in its own user namespace (as root: a full 64k range) with a host directory owned
/// by HOST_OWNER holding a file `owned`, mounted at /data with `extra` merged into the entry.
fn idmap_bundle(script: &str, extra: serde_json::Value) -> Option<(Bundle, std::path::PathBuf)> {
    if !can_run() {
        return None;
    }
    let b = Bundle::new(script);
    let data = b.path().join("shared");
    std::fs::create_dir(&data).unwrap();
    // The container's root is not host root: it cannot create the mount point itself.
    std::fs::create_dir(b.rootfs().join("data")).unwrap();
    std::fs::write(data.join("owned"), "x").unwrap();
    for p in [&data, &data.join("owned")] {
        std::os::unix::fs::chown(p, Some(HOST_OWNER), Some(HOST_OWNER)).unwrap();
    }
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let src = data.clone();
    b.edit(|s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "user"}));
        let map = json!([{"containerID": 0, "hostID": CONTAINER_BASE, "size": 65536}]);
        s["linux"]["uidMappings"] = map.clone();
        s["linux"]["gidMappings"] = map;
        let mut entry = json!({
            "destination": "/data",
            "type": "bind",
            "source": src,
            "options": ["rbind", "idmap"]
        });
        for (k, v) in extra.as_object().unwrap() {
            entry[k] = v.clone();
        }
        s["mounts"].as_array_mut().unwrap().push(entry);
    });
    Some((b, data))
}

#[test]
fn idmapped_mount_shows_host_owner_as_mapped_uid_and_writes_back_unmapped() {
    // The mount maps host 1234 to the container's uid 7 (host 100007 in its namespace).
    let one = json!([{"containerID": HOST_OWNER, "hostID": CONTAINER_BASE + INSIDE, "size": 1}]);
    let Some((b, data)) = idmap_bundle(
        "stat -c '%u:%g' /data/owned; touch /data/created && echo made",
        json!({"uidMappings": one, "gidMappings": one}),
    ) else {
        return;
    };
    b.edit(|s| {
        s["process"]["user"] = json!({"uid": INSIDE, "gid": INSIDE});
    });
    let runc = Runc::new();
    let (code, out, err) = runc.run(&b, &unique_id("idmap"));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, format!("{INSIDE}:{INSIDE}\nmade\n"), "{err}");
    let md = std::fs::metadata(data.join("created")).unwrap();
    assert_eq!((md.uid(), md.gid()), (HOST_OWNER, HOST_OWNER));
}

#[test]
fn plain_bind_of_the_same_directory_shows_no_mapping() {
    // Control for the test above: without idmap the host owner is outside the container's
    // range, so it shows as the overflow id and the container cannot write there.
    let Some((b, _data)) = idmap_bundle(
        "stat -c '%u' /data/owned; touch /data/created 2>/dev/null || echo denied",
        json!({}),
    ) else {
        return;
    };
    b.edit(|s| {
        let m = s["mounts"].as_array_mut().unwrap().last_mut().unwrap();
        m["options"] = json!(["rbind"]);
        s["process"]["user"] = json!({"uid": INSIDE, "gid": INSIDE});
    });
    let runc = Runc::new();
    let (code, out, err) = runc.run(&b, &unique_id("plainbind"));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "65534\ndenied\n", "{err}");
}

#[test]
fn idmap_without_own_mappings_borrows_the_containers() {
    // The container's map (0 -> 100000) applied to the mount: host 1234 is 1234 inside, and
    // the container's root writes files owned by host root.
    let Some((b, data)) = idmap_bundle(
        "stat -c '%u:%g' /data/owned; touch /data/byroot && echo made",
        json!({}),
    ) else {
        return;
    };
    // The default capabilities leave out CAP_DAC_OVERRIDE: let anyone write there.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let runc = Runc::new();
    let (code, out, err) = runc.run(&b, &unique_id("idmapborrow"));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, format!("{HOST_OWNER}:{HOST_OWNER}\nmade\n"), "{err}");
    let md = std::fs::metadata(data.join("byroot")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
}

#[test]
fn idmap_on_a_non_bind_mount_is_refused_naming_the_entry() {
    let Some((b, _)) = idmap_bundle("true", json!({})) else {
        return;
    };
    b.edit(|s| {
        let m = s["mounts"].as_array_mut().unwrap().last_mut().unwrap();
        m["type"] = json!("tmpfs");
        m["options"] = json!(["idmap"]);
    });
    let n = b.spec()["mounts"].as_array().unwrap().len() - 1;
    let runc = Runc::new();
    let (code, out, err) = runc.run(&b, &unique_id("idmaptmpfs"));
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains(&format!("mounts[{n}].options")) && err.contains("bind"),
        "{err}"
    );
}

#[test]
fn features_reports_idmap_it_can_do() {
    let out = Command::new(bin()).arg("features").output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["linux"]["mountExtensions"]["idmap"]["enabled"], true);
    let opts = v["mountOptions"].as_array().unwrap();
    assert!(opts.contains(&json!("idmap")) && opts.contains(&json!("ridmap")));
}

/// A throwaway user with a subuid/subgid range, removed on every path.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

const SUB_START: u32 = 300000;

impl TestUser {
    fn create() -> Option<TestUser> {
        let name = format!("lasso-test-{}", std::process::id());
        let ok = Command::new("useradd")
            .args(["--no-create-home", "--user-group", "--shell", "/bin/false"])
            .arg(&name)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipping: useradd {name} failed (needs root and the passwd package)");
            return None;
        }
        let user = nix::unistd::User::from_name(&name).ok().flatten();
        let t = TestUser {
            name: name.clone(),
            uid: user.as_ref().map(|u| u.uid.as_raw()).unwrap_or(0),
            gid: user.as_ref().map(|u| u.gid.as_raw()).unwrap_or(0),
        };
        let range = format!("{SUB_START}-{}", SUB_START + 65535);
        let ok = Command::new("usermod")
            .args(["--add-subuids", &range, "--add-subgids", &range])
            .arg(&name)
            .status()
            .is_ok_and(|s| s.success());
        if !ok || t.uid == 0 {
            eprintln!("skipping: could not give {name} a subuid range");
            return None; // dropped: removed
        }
        Some(t)
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let range = format!("{SUB_START}-{}", SUB_START + 65535);
        let _ = Command::new("usermod")
            .args(["--del-subuids", &range, "--del-subgids", &range])
            .arg(&self.name)
            .status();
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

#[test]
fn unprivileged_caller_gets_its_subuid_ranges_or_a_named_error() {
    if !can_run() {
        return;
    }
    let Some(user) = TestUser::create() else {
        return;
    };
    let runc = Runc::new();
    std::os::unix::fs::chown(runc.root.path(), Some(user.uid), Some(user.gid)).unwrap();
    let b = Bundle::with_spec_args(
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/f && echo made",
        true,
    );
    std::fs::set_permissions(
        b.rootfs().join("tmp"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    let maps = |own: u32, start: u32| {
        json!([
            {"containerID": 0, "hostID": own, "size": 1},
            {"containerID": 1, "hostID": start, "size": 65536}
        ])
    };
    b.edit(|s| {
        s["linux"]["uidMappings"] = maps(user.uid, SUB_START);
        s["linux"]["gidMappings"] = maps(user.gid, SUB_START);
        s["root"]["readonly"] = false.into();
        // Uid 1000 exists only through the subuid range.
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let as_user = |id: &str| {
        let _guard = Guard::new(&runc, id);
        Command::new("setpriv")
            .arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .args(["--clear-groups", "--"])
            .arg(bin())
            .arg("--root")
            .arg(runc.root.path())
            .args(["run", "--bundle"])
            .arg(b.path())
            .arg(id)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = as_user(&unique_id("subuid"));
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}{err}");
    let words: Vec<&str> = text.split_whitespace().collect();
    let own = user.uid.to_string();
    let sub = SUB_START.to_string();
    assert_eq!(
        &words[..6],
        &["0", own.as_str(), "1", "1", sub.as_str(), "65536"],
        "{text}"
    );
    assert!(text.ends_with("1000\nmade\n"), "{text}");
    let md = std::fs::metadata(b.rootfs().join("tmp/f")).unwrap();
    // Container uid 1000 is the range's 1000th ID - 1 (the range starts at container uid 1).
    assert_eq!(md.uid(), SUB_START + 999);
    assert_eq!(md.gid(), SUB_START + 999);

    // A range the user was not granted: refused before newuidmap, naming the entry to add.
    b.edit(|s| s["linux"]["uidMappings"] = maps(user.uid, 400000));
    let out = as_user(&unique_id("nosubuid"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("/etc/subuid") && err.contains(&user.name) && err.contains("400000-465535"),
        "{err}"
    );
}

/// Runs the bundle from a private mount namespace in which a tmpfs, owned by HOST_OWNER and
/// holding `f`, is mounted at `shared/sub`: the host's mount table never sees it.
fn run_with_submount(b: &Bundle, data: &std::path::Path, id: &str) -> (bool, String, String) {
    let runc = Runc::new();
    let _guard = Guard::new(&runc, id);
    let sub = data.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let script = format!(
        "mount -t tmpfs lasso-idmap-sub {sub} && touch {sub}/f && chown {o}:{o} {sub} {sub}/f && \
         exec {bin} --root {root} run --bundle {bundle} {id}",
        sub = sub.display(),
        o = HOST_OWNER,
        bin = bin(),
        root = runc.root.path().display(),
        bundle = b.path().display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ridmap_maps_submounts_and_idmap_maps_only_the_top() {
    let one = json!([{"containerID": HOST_OWNER, "hostID": CONTAINER_BASE + INSIDE, "size": 1}]);
    for (option, expected) in [("ridmap", "7:7\n7\n"), ("idmap", "7:7\n65534\n")] {
        let Some((b, data)) = idmap_bundle(
            "stat -c '%u:%g' /data/owned; stat -c '%u' /data/sub/f",
            json!({"uidMappings": one, "gidMappings": one}),
        ) else {
            return;
        };
        b.edit(|s| {
            let m = s["mounts"].as_array_mut().unwrap().last_mut().unwrap();
            m["options"] = json!(["rbind", option]);
            s["process"]["user"] = json!({"uid": INSIDE, "gid": INSIDE});
        });
        let (ok, out, err) = run_with_submount(&b, &data, &unique_id(option));
        assert!(ok, "{option}: {out}{err}");
        assert_eq!(out, expected, "{option}: {err}");
        assert!(leftover_mounts("lasso-idmap-sub").is_empty());
    }
}

#[test]
fn idmap_as_an_unprivileged_caller_is_refused_with_the_reason() {
    if !can_run() {
        return;
    }
    const NOBODY: u32 = 65534;
    let runc = Runc::new();
    std::os::unix::fs::chown(runc.root.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let b = Bundle::with_spec_args("true", true);
    std::fs::create_dir(b.path().join("shared")).unwrap();
    b.edit(|s| {
        s["linux"]["uidMappings"][0]["hostID"] = NOBODY.into();
        s["linux"]["gidMappings"][0]["hostID"] = NOBODY.into();
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": "shared",
            "options": ["rbind", "idmap"]
        }));
    });
    let id = unique_id("idmaprootless");
    let _guard = Guard::new(&runc, &id);
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin())
        .arg("--root")
        .arg(runc.root.path())
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("mounts[") && err.contains("root"), "{err}");
    assert!(!runc.root.path().join(&id).exists());
}
