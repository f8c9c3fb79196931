//! An image for a sandbox test: written as an OCI layout, seeded into the test's own registry
//! and pulled with `lasso image pull` into a store that belongs to the world's user (nobody's
//! store is chowned to it, as an unprivileged user's own would be). Shared by the suites that
//! run `lasso run --image` (they also declare `image_support` and `sandbox_support`).

use crate::image_support::registry::Registry;
use crate::image_support::{this_arch, write_image};
use crate::sandbox_support::{run, text, As, World};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Seeds `layers` as `lasso/<name>:1` and pulls it into a fresh store of `w`'s user. Returns
/// (reference, store dir).
pub fn pull_into_store(
    w: &World,
    reg: &Registry,
    name: &str,
    layers: &[Vec<u8>],
) -> (String, PathBuf) {
    let layout = w.base.join("layout");
    let (b, m) = write_image(&layout, this_arch(), layers);
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
    let repo = format!("lasso/{name}:1");
    reg.seed(&layout, "1", &repo, None);
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
    let reference = format!("{}/{repo}", reg.host);
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

/// `lasso ARGS` as `w`'s user, with `store` as its image store.
pub fn with_store(w: &World, store: &Path, args: &[&str]) -> Command {
    let mut c = w.lasso(args);
    c.env("LASSO_IMAGE_STORE", store);
    c
}
