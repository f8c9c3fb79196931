//! Pulls from a real registry (Debian's docker-registry) started by each test on a free
//! loopback port, with its own config and storage in a tempdir, seeded with skopeo from OCI
//! layouts built in the test. The registry process is ours and is killed on every path.

mod image_support;

use image_support::registry::{free_port, Registry};
use image_support::*;
use lasso::image::progress::Progress;
use lasso::image::pull::{self, PullError, PullOptions};
use lasso::image::spec::Platform;
use lasso::image::store::{Store, StoreError};
use std::process::Command;

fn opts(host: &str) -> PullOptions {
    PullOptions {
        insecure_hosts: vec![host.to_string()],
        platform: Platform::current(),
        auth_file: None,
    }
}

fn seeded() -> (Registry, tempfile::TempDir, Built) {
    let reg = Registry::start(None);
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("layout");
    let built = oci_layout(&layout, Some("1"));
    reg.seed(&layout, "1", "lasso/busybox:1", None);
    (reg, d, built)
}

#[test]
fn pull_by_tag_stores_a_runnable_image() {
    let (reg, d, built) = seeded();
    let s = Store::open(&d.path().join("store")).unwrap();
    let r = format!("{}/lasso/busybox:1", reg.host);
    let rec = pull::pull(&s, &r, &opts(&reg.host), &Progress::Silent).unwrap();
    assert_eq!(rec.name, r);
    assert_eq!(rec.manifest.as_str(), built.manifest);
    let dirs = s.layer_dirs(&r).unwrap();
    let out = Command::new(dirs[0].join("bin/busybox"))
        .args(["echo", "pulled"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pulled");
}

#[test]
fn pull_by_digest_gets_exactly_that_manifest() {
    let (reg, d, built) = seeded();
    let s = Store::open(&d.path().join("store")).unwrap();
    let r = format!("{}/lasso/busybox@{}", reg.host, built.manifest);
    let rec = pull::pull(&s, &r, &opts(&reg.host), &Progress::Silent).unwrap();
    assert_eq!(rec.manifest.as_str(), built.manifest);
    // A digest the registry does not have is a clear 404, not a different image.
    let missing = format!("{}/lasso/busybox@sha256:{}", reg.host, "0".repeat(64));
    let err = pull::pull(&s, &missing, &opts(&reg.host), &Progress::Silent).unwrap_err();
    assert!(
        matches!(err, PullError::Status { status: 404, .. }),
        "{err}"
    );
}

#[test]
fn multi_arch_index_pull_picks_this_platform_or_says_what_exists() {
    let reg = Registry::start(None);
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("layout");
    let builds = multi_arch_layout(&layout, &[other_arch(), this_arch()], "multi");
    reg.seed(&layout, "multi", "lasso/multi:1", None);
    let s = Store::open(&d.path().join("store")).unwrap();
    let r = format!("{}/lasso/multi:1", reg.host);
    let rec = pull::pull(&s, &r, &opts(&reg.host), &Progress::Silent).unwrap();
    assert_eq!(rec.manifest.as_str(), builds[1].manifest);
    let arch = std::fs::read_to_string(s.layer_dirs(&r).unwrap()[2].join("etc/arch")).unwrap();
    assert_eq!(arch, this_arch());

    let mut o = opts(&reg.host);
    o.platform = Platform {
        architecture: "mips64le".into(),
        os: "linux".into(),
        variant: None,
    };
    let err = pull::pull(&s, &r, &o, &Progress::Silent).unwrap_err();
    assert!(matches!(err, PullError::WrongPlatform { .. }), "{err}");
    assert!(err.to_string().contains(other_arch()), "{err}");
}

#[test]
fn corrupted_blob_on_the_registry_is_rejected_and_nothing_is_named() {
    let (reg, d, built) = seeded();
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            d.path()
                .join("layout/blobs/sha256")
                .join(&built.manifest[7..]),
        )
        .unwrap(),
    )
    .unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let data = reg
        .storage
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer[7..9])
        .join(&layer[7..])
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&data, bytes).unwrap();
    let s = Store::open(&d.path().join("store")).unwrap();
    let r = format!("{}/lasso/busybox:1", reg.host);
    let err = pull::pull(&s, &r, &opts(&reg.host), &Progress::Silent).unwrap_err();
    assert!(
        matches!(err, PullError::Store(StoreError::DigestMismatch { .. })),
        "{err}"
    );
    assert!(s.list().unwrap().is_empty());
    assert!(!s
        .blob_path(&lasso::image::digest::Digest::parse(&layer).unwrap())
        .exists());
    assert_eq!(std::fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn htpasswd_registry_needs_the_credentials_from_auth_json() {
    let reg = Registry::start(Some(("agent", "s3cret-pass")));
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("layout");
    oci_layout(&layout, Some("1"));
    reg.seed(&layout, "1", "lasso/private:1", Some("agent:s3cret-pass"));
    let s = Store::open(&d.path().join("store")).unwrap();
    let r = format!("{}/lasso/private:1", reg.host);

    let mut o = opts(&reg.host);
    o.auth_file = Some(d.path().join("no-such-auth.json"));
    // Keep the runner's own credential files out of this test.
    let err = pull::pull(&s, &r, &o, &Progress::Silent).unwrap_err();
    assert!(
        matches!(err, PullError::Status { status: 401, .. }),
        "{err}"
    );

    let auth = d.path().join("auth.json");
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode("agent:wrong");
    std::fs::write(
        &auth,
        format!(r#"{{"auths":{{"{}":{{"auth":"{token}"}}}}}}"#, reg.host),
    )
    .unwrap();
    o.auth_file = Some(auth.clone());
    let err = pull::pull(&s, &r, &o, &Progress::Silent).unwrap_err();
    assert!(err.to_string().contains("not accepted"), "{err}");

    let token = base64::engine::general_purpose::STANDARD.encode("agent:s3cret-pass");
    std::fs::write(
        &auth,
        format!(r#"{{"auths":{{"{}":{{"auth":"{token}"}}}}}}"#, reg.host),
    )
    .unwrap();
    let rec = pull::pull(&s, &r, &o, &Progress::Silent).unwrap();
    assert_eq!(rec.name, r);
}

#[test]
fn registry_down_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(&d.path().join("store")).unwrap();
    let host = format!("127.0.0.1:{}", free_port());
    let err = pull::pull(&s, &format!("{host}/x:1"), &opts(&host), &Progress::Silent).unwrap_err();
    assert!(matches!(err, PullError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&host), "{err}");
}

#[test]
fn plain_http_is_refused_unless_the_host_is_named_insecure() {
    let (reg, d, _) = seeded();
    let s = Store::open(&d.path().join("store")).unwrap();
    let mut o = opts("other.example:5000");
    o.insecure_hosts = vec!["other.example:5000".into()];
    let err = pull::pull(
        &s,
        &format!("{}/lasso/busybox:1", reg.host),
        &o,
        &Progress::Silent,
    )
    .unwrap_err();
    // Spoken to with TLS, the plain-HTTP registry cannot complete a handshake.
    assert!(matches!(err, PullError::Unreachable { .. }), "{err}");
}

#[test]
fn cli_pull_json_progress_and_rm_prune_round_trip() {
    let (reg, d, built) = seeded();
    let st = d.path().join("store");
    let r = format!("{}/lasso/busybox:1", reg.host);
    let run = |args: &[&str]| {
        let out = Command::new(lasso())
            .arg("image")
            .arg("--store")
            .arg(&st)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["--json", "pull", "--insecure", &reg.host, &r]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| l["event"] == "done"));
    assert_eq!(lines.last().unwrap()["manifest"], built.manifest.as_str());
    let (code, out, _) = run(&["list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&r));
    let (code, _, err) = run(&["pull", "busybox"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no registry host"), "{err}");
    assert_eq!(run(&["rm", &r]).0, Some(0));
    let (code, out, _) = run(&["prune"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("2 layers"), "{out}");
    let (code, _, err) = run(&["inspect", &r]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no image named"), "{err}");
}
