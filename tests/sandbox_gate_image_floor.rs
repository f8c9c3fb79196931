//! The Landlock execute floor of allowlist profiles on an image root, seen from inside a real
//! `lasso run --profile strict --image` sandbox: the image's own allowed programs run, while a
//! copy of one under another path (/workspace) is refused by the kernel itself — the exec gate
//! allows it by name, Landlock does not. The image (busybox copies named after allowed
//! commands) is built here and served by a registry of our own on loopback.

mod image_sandbox_support;
mod image_support;
mod sandbox_support;

use image_sandbox_support::{pull_into_store, with_store};
use image_support::registry::Registry;
use image_support::*;
use sandbox_support::{is_root, run, text, world, As, World, NOBODY, OWNER};
use std::path::PathBuf;

/// Busybox under allowed names as regular files (a link would resolve to the name `busybox`,
/// which strict does not allow).
fn layers() -> Vec<Vec<u8>> {
    let bb = std::fs::read("/bin/busybox").expect("busybox-static is installed (.ci/run)");
    vec![tar_of(
        &[
            ("bin/busybox", &bb),
            ("bin/ls", &bb),
            ("bin/echo", &bb),
            ("bin/sh", &bb),
        ],
        &[],
    )]
}

fn pulled(w: &World, reg: &Registry) -> (String, PathBuf) {
    pull_into_store(w, reg, "floor-test", &layers())
}

fn copy_in_image_is_refused_by_the_kernel(who: As) {
    let w = world(who);
    let reg = Registry::start(None);
    let (reference, store) = pulled(&w, &reg);
    let owner = if who == As::Root { OWNER } else { NOBODY };
    let copy = w.ws.join("ls");
    std::fs::copy("/bin/busybox", &copy).unwrap();
    std::os::unix::fs::chown(&copy, Some(owner), Some(owner)).unwrap();
    let strict = |argv: &[&str]| {
        let mut args = vec!["run", "--profile", "strict", "--image", &reference, "--"];
        args.extend_from_slice(argv);
        run(&mut with_store(&w, &store, &args))
    };

    // The image's own ls runs.
    let out = strict(&["ls", "/workspace"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ls"), "{t}");

    // Named `ls` and busybox inside, the copy passes the gate; the kernel refuses to execute it.
    let out = strict(&["/workspace/ls", "/"]);
    let t = text(&out);
    assert_ne!(out.status.code(), Some(0), "{t}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Permission denied"), "{t}");
    assert!(
        !err.contains("lasso: blocked"),
        "the gate, not the kernel, refused: {t}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("workspace"),
        "the copy ran: {t}"
    );
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn copied_image_program_is_refused_by_the_kernel_in_strict() {
    if !is_root() {
        eprintln!("skipped: needs root (for the registry's world and cgroups)");
        return;
    }
    copy_in_image_is_refused_by_the_kernel(As::Root);
}

#[test]
fn copied_image_program_is_refused_by_the_kernel_in_strict_rootless() {
    if !is_root() {
        eprintln!("skipped: needs root to become nobody");
        return;
    }
    copy_in_image_is_refused_by_the_kernel(As::Nobody);
}
