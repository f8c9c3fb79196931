//! `lasso prebuild`: without a builder it says what to install; with buildah it builds the
//! agent image of Dockerfile.images on a Debian base served by a registry of our own on
//! loopback, imports it, and a sandbox runs the agent from it.

mod image_support;

use image_support::lasso;
use image_support::registry::Registry;
use std::path::Path;
use std::process::{Command, Output};

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn prebuild_without_any_builder_says_what_to_install() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(lasso())
        .args(["prebuild", "--agent", "claude-code"])
        .env("PATH", d.path().join("empty-path"))
        .env("LASSO_IMAGE_STORE", d.path().join("store"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(err.contains("no image builder found"), "{err}");
    assert!(err.contains("buildah"), "{err}");
    assert!(err.contains("apt-get install buildah"), "{err}");
}

#[test]
fn prebuild_rejects_an_unknown_builder_or_agent_by_name() {
    let d = tempfile::tempdir().unwrap();
    for (flag, value, needle) in [
        ("--builder", "kaniko", "use buildah, podman or docker"),
        ("--agent", "vim", "no such target in Dockerfile.images"),
    ] {
        let o = Command::new(lasso())
            .args(["prebuild", flag, value])
            .env("LASSO_IMAGE_STORE", d.path().join("store"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(err.contains(needle), "{err}");
    }
}

/// The first Debian mirror of the host's apt configuration (never a name written here).
fn host_mirror() -> Option<String> {
    let deb822 = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").ok();
    if let Some(t) = deb822 {
        if let Some(u) = t.lines().find_map(|l| l.strip_prefix("URIs:")) {
            return u.split_whitespace().next().map(str::to_string);
        }
    }
    let list = std::fs::read_to_string("/etc/apt/sources.list").ok()?;
    list.lines()
        .find(|l| l.starts_with("deb "))
        .and_then(|l| l.split_whitespace().find(|w| w.contains("://")))
        .map(str::to_string)
}

fn ok(cmd: &mut Command, what: &str) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(o.status.success(), "{what}: {}", text(&o));
    o
}

/// A Debian root made with debootstrap from the host's mirror, committed with buildah and
/// pushed to `reg` as lasso/debian:bookworm.
fn seed_debian_base(reg: &Registry, dir: &Path) -> String {
    let mirror = host_mirror().expect("an apt mirror in the host's configuration");
    let root = dir.join("debian");
    ok(
        Command::new("debootstrap")
            .args(["--variant=minbase", "bookworm"])
            .arg(&root)
            .arg(&mirror),
        "debootstrap",
    );
    let ctr = ok(
        Command::new("buildah").args(["from", "scratch"]),
        "buildah from",
    );
    let ctr = String::from_utf8_lossy(&ctr.stdout).trim().to_string();
    let tarball = dir.join("debian.tar");
    ok(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tarball)
            .arg("."),
        "tar",
    );
    ok(
        Command::new("buildah")
            .args(["add", &ctr])
            .arg(&tarball)
            .arg("/"),
        "buildah add",
    );
    let image = format!("{}/lasso/debian:bookworm", reg.host);
    ok(
        Command::new("buildah").args([
            "commit",
            "--rm",
            &ctr,
            "localhost/lasso-test/debian:bookworm",
        ]),
        "buildah commit",
    );
    ok(
        Command::new("buildah").args([
            "push",
            "--tls-verify=false",
            "localhost/lasso-test/debian:bookworm",
            &format!("docker://{image}"),
        ]),
        "buildah push",
    );
    image
}

/// Removes the builder images the test made, on every path (the builder's storage is shared).
struct BuilderImages(Vec<String>);

impl Drop for BuilderImages {
    fn drop(&mut self) {
        let _ = Command::new("buildah")
            .args(["rmi", "-f"])
            .args(&self.0)
            .output();
    }
}

/// Builds Debian packages, Node.js and Claude Code (about 400 MB): far past the ~3 minutes a
/// CI test may take on 2 cores. Run it by hand (as root, with buildah and debootstrap):
///   cargo test --test image_prebuild -- --ignored --nocapture
#[test]
#[ignore = "a real Debian + Node.js + Claude Code build takes many minutes; run by hand"]
fn prebuild_claude_code_with_buildah_then_run_claude_from_the_image() {
    let have = |b: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !nix::unistd::geteuid().is_root() || !have("buildah") || !have("debootstrap") {
        eprintln!("skipped: needs root, buildah and debootstrap");
        return;
    }
    let d = tempfile::Builder::new()
        .prefix("lasso-prebuild-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let reg = Registry::start(None);
    let version = env!("CARGO_PKG_VERSION");
    let mut made = BuilderImages(vec![
        "localhost/lasso-test/debian:bookworm".into(),
        format!("localhost/lasso/base:{version}"),
        format!("localhost/lasso/claude-code:{version}"),
    ]);
    let base = seed_debian_base(&reg, d.path());
    made.0.push(base.clone());
    let store = d.path().join("store");
    let npm_registry = Command::new("npm")
        .args(["config", "get", "registry"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|r| r.contains("://"));
    let mut cmd = Command::new(lasso());
    cmd.args([
        "prebuild",
        "--agent",
        "claude-code",
        "--builder",
        "buildah",
        "--insecure",
    ])
    .args(["--network", "host", "--base", &base])
    .env("LASSO_IMAGE_STORE", &store)
    // Hosts with hybrid cgroups: buildah's default crun (1.8) refuses them, runc does not.
    .env("BUILDAH_RUNTIME", "runc");
    // The host's own extra CAs (a TLS-inspecting proxy's), as its npm trusts them.
    let mut pem = String::new();
    for e in std::fs::read_dir("/usr/local/share/ca-certificates")
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "crt") {
            pem.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    if !pem.is_empty() {
        let f = d.path().join("extra-ca.pem");
        std::fs::write(&f, pem).unwrap();
        cmd.arg("--ca-file").arg(f);
    }
    if let Some(r) = &npm_registry {
        cmd.args(["--build-arg", &format!("NPM_CONFIG_REGISTRY={r}")]);
    }
    let o = ok(&mut cmd, "lasso prebuild");
    let name = format!("lasso/claude-code:{}", env!("CARGO_PKG_VERSION"));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with(&name),
        "{}",
        text(&o)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("building with buildah"));

    let ws = d.path().join("project");
    std::fs::create_dir(&ws).unwrap();
    ok(Command::new("chown").args(["4321:4321"]).arg(&ws), "chown");
    let o = ok(
        Command::new(lasso())
            .args(["run", "--image", &name, "--", "claude", "--version"])
            .current_dir(&ws)
            .env("LASSO_IMAGE_STORE", &store)
            .env("HOME", d.path()),
        "lasso run claude --version",
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Claude Code"), "{}", text(&o));
}
