//! Test images made on the spot: busybox-static layers, OCI layouts, oci-archives,
//! docker-archives and rootfs tarballs, written with the `tar` crate (no prebuilt binaries).
#![allow(dead_code)]

use sha2::{Digest as _, Sha256};
pub mod registry;

use std::io::Write;
use std::path::{Path, PathBuf};

pub fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// A tar of (name, contents) files plus symlinks (name -> target).
pub fn tar_of(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, *data).unwrap();
    }
    for (name, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, name, target).unwrap();
    }
    b.into_inner().unwrap()
}

/// Layer 1: busybox-static and a shell link; layer 2: a file and a whiteout of layer 1's file.
pub fn busybox_layers() -> Vec<Vec<u8>> {
    let bb = std::fs::read("/bin/busybox").expect("busybox-static is installed (.ci/run)");
    vec![
        tar_of(
            &[("bin/busybox", &bb), ("etc/motd", b"lower layer\n")],
            &[("bin/sh", "busybox")],
        ),
        tar_of(
            &[
                ("etc/hello", b"hello from layer 2\n"),
                ("etc/.wh.motd", b""),
            ],
            &[],
        ),
    ]
}

pub struct Built {
    pub manifest: String,
    pub config: String,
    pub diff_ids: Vec<String>,
}

/// Writes one image (gzip layers) into the OCI layout at `dir`'s blobs; returns its digests.
pub fn write_image(dir: &Path, arch: &str, layers: &[Vec<u8>]) -> (Built, Vec<u8>) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |data: &[u8]| -> String {
        let d = sha(data);
        std::fs::write(dir.join("blobs/sha256").join(&d[7..]), data).unwrap();
        d
    };
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        diff_ids.push(sha(l));
        let gz = gzip(l);
        let d = put(&gz);
        layer_descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": gz.len()}));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}}))
    .unwrap();
    let config_d = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config.len()},
        "layers": layer_descs})).unwrap();
    let manifest_d = put(&manifest);
    (
        Built {
            manifest: manifest_d,
            config: config_d,
            diff_ids,
        },
        manifest,
    )
}

/// An OCI layout holding one image for this machine, named `ref_name`.
pub fn oci_layout(dir: &Path, ref_name: Option<&str>) -> Built {
    let (b, m) = write_image(dir, this_arch(), &busybox_layers());
    let mut desc = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": b.manifest, "size": m.len()});
    if let Some(r) = ref_name {
        desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": r});
    }
    finish_layout(dir, vec![desc]);
    b
}

/// An OCI layout whose index.json points to an image index for `arches`; returns per-arch builds.
pub fn multi_arch_layout(dir: &Path, arches: &[&str], ref_name: &str) -> Vec<Built> {
    let mut entries = Vec::new();
    let mut builds = Vec::new();
    for (i, a) in arches.iter().enumerate() {
        // Different content per platform, so the test can tell which one it got.
        let mut layers = busybox_layers();
        layers.push(tar_of(
            &[("etc/arch", a.as_bytes()), (&format!("etc/n{i}"), b"")],
            &[],
        ));
        let (b, m) = write_image(dir, a, &layers);
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": b.manifest, "size": m.len(),
            "platform": {"architecture": a, "os": "linux"}}));
        builds.push(b);
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries})).unwrap();
    let d = sha(&index);
    std::fs::write(dir.join("blobs/sha256").join(&d[7..]), &index).unwrap();
    finish_layout(
        dir,
        vec![serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": ref_name}})],
    );
    builds
}

fn finish_layout(dir: &Path, manifests: Vec<serde_json::Value>) {
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Tars up a directory (an oci-archive from a layout).
pub fn tar_dir(dir: &Path, out: &Path) {
    let f = std::fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(f);
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap();
}

/// A `docker save` archive: manifest.json with RepoTags, <hex>.json config, <n>/layer.tar.
pub fn docker_archive(out: &Path, tags: &[&str]) -> Built {
    let layers = busybox_layers();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": this_arch(), "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}}))
    .unwrap();
    let config_d = sha(&config);
    let mut files: Vec<(String, Vec<u8>)> = vec![(format!("{}.json", &config_d[7..]), config)];
    let mut layer_names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let n = format!("layer{i}/layer.tar");
        files.push((n.clone(), l.clone()));
        layer_names.push(n);
    }
    let manifest = serde_json::json!([{"Config": format!("{}.json", &config_d[7..]), "RepoTags": tags, "Layers": layer_names}]);
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    std::fs::write(out, tar_of(&refs, &[])).unwrap();
    Built {
        manifest: String::new(),
        config: config_d,
        diff_ids,
    }
}

pub fn this_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

pub fn other_arch() -> &'static str {
    if this_arch() == "s390x" {
        "riscv64"
    } else {
        "s390x"
    }
}

pub fn lasso() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lasso"))
}
