//! The test image, built here from Debian's busybox-static: one uncompressed layer holding
//! `/bin/busybox` and its applet links, written both as a docker-archive (what `docker load`
//! 20.10 reads) and as an OCI archive (what `podman load` and `ctr images import` read).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The name every client knows the image by once loaded.
pub const NAME: &str = "localhost/lasso-test/busybox:latest";

pub struct Image {
    pub docker_archive: PathBuf,
    pub oci_archive: PathBuf,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn tar_dir(dir: &Path, out: &Path) -> Result<(), String> {
    let st = Command::new("tar")
        .args([
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--sort=name",
            "--mtime=@0",
            "-C",
        ])
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    st.success()
        .then_some(())
        .ok_or_else(|| format!("tar of {} failed", dir.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Builds the image under `dir` (once per test binary).
pub fn build(dir: &Path) -> Result<Image, String> {
    let busybox = Path::new("/bin/busybox");
    let rootfs = dir.join("rootfs");
    for d in [
        "bin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var/tmp",
    ] {
        std::fs::create_dir_all(rootfs.join(d)).map_err(|e| format!("{d}: {e}"))?;
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox")).map_err(|e| format!("copy busybox: {e}"))?;
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| format!("busybox --list: {e}"))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
    }
    write(
        &rootfs.join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    write(&rootfs.join("etc/group"), b"root:x:0:\nnogroup:x:65534:\n")?;

    let layer_path = dir.join("layer.tar");
    tar_dir(&rootfs, &layer_path)?;
    let layer = std::fs::read(&layer_path).map_err(|e| e.to_string())?;
    let layer_hex = sha256_hex(&layer);
    let config = serde_json::json!({
        "architecture": goarch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_hex}")]},
    })
    .to_string();
    let config_hex = sha256_hex(config.as_bytes());

    // docker-archive: manifest.json naming the config and the layer by path.
    let d = dir.join("docker");
    write(&d.join(format!("{layer_hex}/layer.tar")), &layer)?;
    write(&d.join(format!("{config_hex}.json")), config.as_bytes())?;
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [NAME],
        "Layers": [format!("{layer_hex}/layer.tar")],
    }]);
    write(&d.join("manifest.json"), manifest.to_string().as_bytes())?;
    let docker_archive = dir.join("busybox-docker.tar");
    tar_dir(&d, &docker_archive)?;

    // OCI image layout, archived.
    let o = dir.join("oci");
    let blob = |hex: &str| o.join("blobs/sha256").join(hex);
    write(&blob(&layer_hex), &layer)?;
    write(&blob(&config_hex), config.as_bytes())?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_hex}"),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{layer_hex}"),
            "size": layer.len(),
        }],
    })
    .to_string();
    let manifest_hex = sha256_hex(manifest.as_bytes());
    write(&blob(&manifest_hex), manifest.as_bytes())?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_hex}"),
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": NAME,
                "org.opencontainers.image.ref.name": NAME,
            },
        }],
    });
    write(&o.join("index.json"), index.to_string().as_bytes())?;
    write(&o.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let oci_archive = dir.join("busybox-oci.tar");
    tar_dir(&o, &oci_archive)?;
    Ok(Image {
        docker_archive,
        oci_archive,
    })
}
