//! The Landlock execute floor of allowlist profiles on an image root, seen from inside a real
//! `lasso run --profile strict --image` sandbox: the image's own allowed programs run, while a
//! copy of one under another path (/workspace) is refused by the kernel itself — the exec gate
//! allows it by name, Landlock does not. The image (busybox copies named after allowed
//! commands) is built here and served by a registry of our own on loopback.

mod image_support;
mod sandbox_support;

use image_support::registry::Registry;
use image_support::*;
use sandbox_support::{is_root, run, text, world, As, World, NOBODY, OWNER};
use std::path::{Path, PathBuf};
use std::process::Command;

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
    let layout = w.base.join("layout");
    let (b, m) = write_image(&layout, this_arch(), &layers());
    let desc = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": b.manifest,
        "size": m.len(), "annotations": {"org.opencontainers.image.ref.name": "1"}});
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [desc]})).unwrap(),
    )
    .unwrap();
    reg.seed(&layout, "1", "lasso/floor-test:1", None);
    let store = w.base.join("store");
    std::fs::create_dir_all(&store).unwrap();
    if w.who == As::Nobody {
        let ok = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&store)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    let reference = format!("{}/lasso/floor-test:1", reg.host);
    let o = run(&mut with_store(
        w,
        &store,
        &[
            "image",
            "--quiet",
            "pull",
            "--insecure",
            &reg.host,
            &reference,
        ],
    ));
    assert!(o.status.success(), "pull: {}", text(&o));
    (reference, store)
}

fn with_store(w: &World, store: &Path, args: &[&str]) -> Command {
    let mut c = w.lasso(args);
    c.env("LASSO_IMAGE_STORE", store);
    c
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
