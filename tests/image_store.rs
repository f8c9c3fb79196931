//! The store and import against real archives made in the test: every archive kind keeps its
//! name, multi-arch picks this platform, corrupt or lying blobs are refused with nothing named,
//! prune reclaims, and a full disk leaves no half-written entry.

mod image_support;

use image_support::*;
use lasso::image::import::{self, ImportError, ImportOptions};
use lasso::image::progress::Progress;
use lasso::image::spec::Platform;
use lasso::image::store::{Store, StoreError};
use lasso::image::unpack::{Mode, Options};
use std::path::Path;
use std::process::Command;

fn opts(name: Option<&str>) -> ImportOptions {
    ImportOptions {
        name: name.map(str::to_string),
        platform: Platform::current(),
    }
}

fn store_in(dir: &Path) -> Store {
    Store::open(&dir.join("store")).unwrap()
}

fn names(s: &Store) -> Vec<String> {
    s.list().unwrap().into_iter().map(|r| r.name).collect()
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// The flattened image runs: busybox from the unpacked tree answers, layer 2's whiteout hid
/// layer 1's motd.
fn assert_flat_busybox(store: &Store, name: &str, dir: &Path) {
    let target = dir.join("flat");
    std::fs::create_dir(&target).unwrap();
    store
        .unpack_flat(
            name,
            &target,
            Options::for_current_user(Mode::Flatten),
            &Progress::Silent,
        )
        .unwrap();
    let out = Command::new(target.join("bin/busybox"))
        .args(["echo", "alive"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "alive");
    assert!(target.join("etc/hello").is_file());
    assert!(
        !target.join("etc/motd").exists(),
        "whiteout of layer 2 not applied"
    );
}

#[test]
fn oci_layout_import_keeps_the_ref_name_and_unpacks_each_layer_once() {
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("layout");
    let built = oci_layout(&layout, Some("lasso/busybox:1"));
    let s = store_in(d.path());
    let recs = import::import(&s, &layout, &opts(None), &Progress::Silent).unwrap();
    assert_eq!(recs[0].name, "lasso/busybox:1");
    assert_eq!(recs[0].manifest.as_str(), built.manifest);
    let dirs = s.layer_dirs("lasso/busybox:1").unwrap();
    assert_eq!(dirs.len(), 2);
    assert!(dirs[0].join("bin/busybox").is_file());
    // Overlay form: layer 2 keeps its whiteout as a 0:0 device for overlayfs, not a file.
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let wh = std::fs::symlink_metadata(dirs[1].join("etc/motd")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert_flat_busybox(&s, "lasso/busybox:1", d.path());
}

#[test]
fn oci_archive_with_a_bare_tag_is_named_after_the_file() {
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("layout");
    oci_layout(&layout, Some("v2"));
    let archive = d.path().join("tools.tar");
    tar_dir(&layout, &archive);
    let s = store_in(d.path());
    assert_eq!(
        import::detect(&archive).unwrap(),
        import::SourceKind::OciArchive
    );
    let recs = import::import(&s, &archive, &opts(None), &Progress::Silent).unwrap();
    assert_eq!(recs[0].name, "tools:v2");
    assert_flat_busybox(&s, "tools:v2", d.path());
    assert_eq!(
        count(&s.root().join("tmp")),
        0,
        "import left work files behind"
    );
}

#[test]
fn docker_archive_keeps_its_repo_tags() {
    let d = tempfile::tempdir().unwrap();
    let archive = d.path().join("saved.tar");
    let built = docker_archive(&archive, &["example.org/team/bb:7", "bb:latest"]);
    let s = store_in(d.path());
    assert_eq!(
        import::detect(&archive).unwrap(),
        import::SourceKind::DockerArchive
    );
    import::import(&s, &archive, &opts(None), &Progress::Silent).unwrap();
    let mut n = names(&s);
    n.sort();
    assert_eq!(n, vec!["bb:latest", "example.org/team/bb:7"]);
    let info = s.inspect("bb").unwrap();
    assert_eq!(info.config_digest.as_str(), built.config);
    assert_flat_busybox(&s, "bb", d.path());
}

#[test]
fn rootfs_tarball_import_uses_the_given_name() {
    let d = tempfile::tempdir().unwrap();
    let tarball = d.path().join("root.tar.gz");
    std::fs::write(&tarball, gzip(&busybox_layers()[0])).unwrap();
    let s = store_in(d.path());
    assert_eq!(
        import::detect(&tarball).unwrap(),
        import::SourceKind::Rootfs
    );
    let recs = import::import(&s, &tarball, &opts(Some("mine:1")), &Progress::Silent).unwrap();
    assert_eq!(recs[0].name, "mine:1");
    let info = s.inspect("mine:1").unwrap();
    assert_eq!(
        info.config.rootfs.diff_ids[0].as_str(),
        sha(&busybox_layers()[0])
    );
}

#[test]
fn multi_arch_index_picks_this_platform() {
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("layout");
    let builds = multi_arch_layout(&layout, &[other_arch(), this_arch()], "multi:1");
    let s = store_in(d.path());
    let recs = import::import(&s, &layout, &opts(None), &Progress::Silent).unwrap();
    assert_eq!(recs[0].manifest.as_str(), builds[1].manifest);
}

#[test]
fn only_other_platforms_is_a_clear_error_and_names_nothing() {
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("layout");
    multi_arch_layout(&layout, &[other_arch(), "riscv64"], "multi:1");
    let s = store_in(d.path());
    let err = import::import(&s, &layout, &opts(None), &Progress::Silent).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImportError::WrongPlatform { .. }), "{msg}");
    assert!(
        msg.contains(other_arch()) && msg.contains("riscv64"),
        "{msg}"
    );
    assert!(names(&s).is_empty());
}

#[test]
fn corrupted_layer_blob_is_rejected_and_nothing_is_named() {
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("layout");
    oci_layout(&layout, Some("x:1"));
    let m: serde_json::Value = {
        let idx: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let md = idx["manifests"][0]["digest"].as_str().unwrap().to_string();
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(&md[7..])).unwrap())
            .unwrap()
    };
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let p = layout.join("blobs/sha256").join(&layer[7..]);
    let mut data = std::fs::read(&p).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&p, &data).unwrap();
    let s = store_in(d.path());
    let err = import::import(&s, &layout, &opts(None), &Progress::Silent).unwrap_err();
    assert!(
        matches!(err, ImportError::Store(StoreError::DigestMismatch { .. })),
        "{err}"
    );
    assert!(names(&s).is_empty());
    assert!(!s
        .blob_path(&lasso::image::digest::Digest::parse(&layer).unwrap())
        .exists());
    assert_eq!(count(&s.root().join("layers/sha256")), 0);
}

#[test]
fn config_that_lies_about_diff_ids_leaves_no_layer_behind() {
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("layout");
    // Layers of one image, config of another: digests verify, diff IDs do not.
    let (_, _) = write_image(&layout, this_arch(), &busybox_layers());
    let mut other = busybox_layers();
    other[0] = tar_of(&[("different", b"x")], &[]);
    let (_, _) = write_image(&d.path().join("scratch"), this_arch(), &other);
    let diff_ids = vec![sha(&other[0]), sha(&other[1])];
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": this_arch(), "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}})).unwrap();
    let cd = sha(&config);
    std::fs::write(layout.join("blobs/sha256").join(&cd[7..]), &config).unwrap();
    let layers: Vec<serde_json::Value> = busybox_layers()
        .iter()
        .map(|l| {
            let gz = gzip(l);
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(&gz), "size": gz.len()})
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()}, "layers": layers})).unwrap();
    let md = sha(&manifest);
    std::fs::write(layout.join("blobs/sha256").join(&md[7..]), &manifest).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len()}]})).unwrap()).unwrap();
    let s = store_in(d.path());
    let err = import::import(&s, &layout, &opts(Some("liar:1")), &Progress::Silent).unwrap_err();
    assert!(
        matches!(err, ImportError::Store(StoreError::DigestMismatch { .. })),
        "{err}"
    );
    assert!(names(&s).is_empty());
    assert_eq!(count(&s.root().join("layers/sha256")), 0);
    assert_eq!(count(&s.root().join("tmp")), 0);
}

#[test]
fn unknown_image_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let s = store_in(d.path());
    let err = s.inspect("nope:1").unwrap_err();
    assert!(matches!(err, StoreError::UnknownImage(_)));
    assert!(err.to_string().contains("lasso image list"));
}

#[test]
fn prune_reclaims_partial_downloads_and_unreferenced_data() {
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("layout");
    oci_layout(&layout, Some("p:1"));
    let s = store_in(d.path());
    import::import(&s, &layout, &opts(None), &Progress::Silent).unwrap();
    std::fs::write(s.root().join("tmp/blob-partial"), b"half a download").unwrap();
    let kept = s.prune().unwrap();
    assert_eq!(
        (kept.partial, kept.blobs, kept.layers),
        (1, 0, 0),
        "prune removed data still in use"
    );
    s.remove("p:1").unwrap();
    let r = s.prune().unwrap();
    assert_eq!(r.layers, 2);
    assert_eq!(r.blobs, 4, "manifest, config and two layers");
    assert_eq!(count(&s.root().join("blobs/sha256")), 0);
    assert_eq!(count(&s.root().join("layers/sha256")), 0);
}

#[test]
fn hostile_archive_cannot_make_import_read_host_files() {
    let d = tempfile::tempdir().unwrap();
    // manifest.json names a layer through a symlink to a host file and through `..`.
    let secret = d.path().join("secret");
    std::fs::write(&secret, b"host secret").unwrap();
    let config = serde_json::to_vec(
        &serde_json::json!({"architecture": this_arch(), "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha(b"host secret")]}}),
    )
    .unwrap();
    let cfg_name = format!("{}.json", &sha(&config)[7..]);
    let manifest = serde_json::to_vec(
        &serde_json::json!([{"Config": cfg_name, "RepoTags": ["evil:1"],
        "Layers": ["link/layer.tar"]}]),
    )
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (n, data) in [("manifest.json", &manifest), (cfg_name.as_str(), &config)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, n, &data[..]).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "link/layer.tar", &secret).unwrap();
    let archive = d.path().join("evil.tar");
    std::fs::write(&archive, b.into_inner().unwrap()).unwrap();
    let s = store_in(d.path());
    let err = import::import(&s, &archive, &opts(None), &Progress::Silent).unwrap_err();
    assert!(matches!(err, ImportError::Missing { .. }), "{err}");
    assert!(!s
        .blob_path(&lasso::image::digest::Digest::parse(&sha(b"host secret")).unwrap())
        .exists());
}

/// Runs `script` in a private mount namespace (so the tmpfs it mounts vanishes with it).
fn in_private_mount_ns(script: &str) -> std::process::Output {
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-euc", script])
        .output()
        .unwrap()
}

#[test]
fn full_disk_during_import_leaves_no_half_written_store_entry() {
    let d = tempfile::tempdir().unwrap();
    // 3 MiB of random bytes: the blob fits a 4 MiB store, the unpacked layer does not.
    let mut noise = vec![0u8; 3 << 20];
    getrandom::fill(&mut noise).unwrap();
    let tarball = d.path().join("big.tar");
    std::fs::write(&tarball, tar_of(&[("noise", &noise)], &[])).unwrap();
    let st = d.path().join("st");
    std::fs::create_dir(&st).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=4m tmpfs {st}
         if {lasso} image --store {st} import --name big:1 {tar} 2>{d}/err; then echo IMPORTED; fi
         find {st} -mindepth 1 | sed 's|{st}/||' | sort > {d}/tree",
        st = st.display(),
        lasso = lasso().display(),
        tar = tarball.display(),
        d = d.path().display()
    );
    let out = in_private_mount_ns(&script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("IMPORTED"));
    let err = std::fs::read_to_string(d.path().join("err")).unwrap();
    assert!(err.contains("no space left"), "{err}");
    let tree = std::fs::read_to_string(d.path().join("tree")).unwrap();
    let entries: Vec<&str> = tree
        .lines()
        .filter(|l| l.starts_with("layers/sha256/") || l.starts_with("tmp/") || *l == "images.json")
        .collect();
    assert!(entries.is_empty(), "half-written entries: {entries:?}");
    assert_eq!(
        count(&st),
        0,
        "the tmpfs was not private to the test's namespace"
    );
}

#[test]
fn full_disk_during_cli_unpack_leaves_no_target_and_no_work_dir() {
    let d = tempfile::tempdir().unwrap();
    let mut noise = vec![0u8; 3 << 20];
    getrandom::fill(&mut noise).unwrap();
    let tarball = d.path().join("big.tar");
    std::fs::write(&tarball, tar_of(&[("noise", &noise)], &[])).unwrap();
    let st = d.path().join("store");
    let out = Command::new(lasso())
        .args(["image", "--store"])
        .arg(&st)
        .args(["import", "--name", "big:1"])
        .arg(&tarball)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let small = d.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs {small}
         if {lasso} image --store {st} unpack big:1 {small}/root 2>{d}/err; then echo UNPACKED; fi
         ls -A {small} > {d}/left",
        small = small.display(),
        lasso = lasso().display(),
        st = st.display(),
        d = d.path().display()
    );
    let out = in_private_mount_ns(&script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("UNPACKED"));
    let err = std::fs::read_to_string(d.path().join("err")).unwrap();
    assert!(err.contains("no space left"), "{err}");
    let left = std::fs::read_to_string(d.path().join("left")).unwrap();
    assert_eq!(
        left.trim(),
        "",
        "a half-unpacked tree was left behind: {left}"
    );
}
