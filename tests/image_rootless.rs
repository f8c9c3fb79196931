//! The same import, unpack and prune as an unprivileged user (uid 65534 via setpriv): no device
//! nodes, no foreign owners, setuid only on the user's own files, read-only directories still
//! filled and still prunable.

mod image_support;

use image_support::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

const NOBODY: u32 = 65534;

fn as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(lasso())
        .args(args)
        .env("HOME", "/nonexistent")
        .output()
        .expect("setpriv (util-linux) is installed")
}

fn hostile_rootfs(out: &Path) {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        if kind == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(1).unwrap();
        }
        b.append_data(&mut h, name, data).unwrap();
    };
    add("ro", tar::EntryType::Directory, 0o555, b"");
    add(
        "ro/file",
        tar::EntryType::Regular,
        0o444,
        b"inside a read-only dir",
    );
    add("bin/su", tar::EntryType::Regular, 0o4755, b"#!/bin/sh\n");
    add("dev/mem", tar::EntryType::Char, 0o666, b"");
    std::fs::write(out, b.into_inner().unwrap()).unwrap();
}

#[test]
fn unprivileged_import_makes_no_devices_and_no_foreign_owners() {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let work = d.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::os::unix::fs::chown(&work, Some(NOBODY), Some(NOBODY)).unwrap();
    let tarball = work.join("root.tar");
    hostile_rootfs(&tarball);
    let store = work.join("store");
    let st = store.to_str().unwrap();

    let out = as_nobody(&[
        "image",
        "--store",
        st,
        "import",
        "--name",
        "r:1",
        tarball.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flat = work.join("flat");
    let out = as_nobody(&[
        "image",
        "--store",
        st,
        "unpack",
        "r:1",
        flat.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(
        !flat.join("dev/mem").exists(),
        "an unprivileged unpack made a device node"
    );
    let su = std::fs::metadata(flat.join("bin/su")).unwrap();
    assert_eq!(
        su.uid(),
        NOBODY,
        "owner must be the unpacking user, not the layer's uid 0"
    );
    assert_eq!(
        su.mode() & 0o7777,
        0o4755,
        "setuid on one's own file is the kernel's to allow"
    );
    let ro = std::fs::metadata(flat.join("ro")).unwrap();
    assert_eq!(ro.mode() & 0o777, 0o555);
    assert_eq!(
        std::fs::read(flat.join("ro/file")).unwrap(),
        b"inside a read-only dir"
    );

    // The store's own copy is the user's too, and rm + prune can delete its read-only dirs.
    let layers = std::fs::read_dir(store.join("layers/sha256"))
        .unwrap()
        .count();
    assert_eq!(layers, 1);
    assert!(as_nobody(&["image", "--store", st, "rm", "r:1"])
        .status
        .success());
    let out = as_nobody(&["image", "--store", st, "prune"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(store.join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
}
