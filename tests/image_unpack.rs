//! The malicious-layer corpus: crafted tarballs (raw headers, so names the `tar` builder would
//! refuse get through) applied with `image::unpack`. Every case checks that the tree around the
//! target is byte-for-byte what it was, and what the kernel actually left inside the target.

use lasso::image::unpack::{self, Limits, Mode, Options, UnpackError, Unpacker};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A tempdir holding `outside/` (with a secret file the layers try to reach) and `target/`.
struct Scene {
    _dir: tempfile::TempDir,
    target: PathBuf,
    outside: PathBuf,
    before: BTreeMap<PathBuf, String>,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        // The scene sits 8 levels below the tempdir and no case climbs more than 4, so even a
        // regression that lets a name escape the target lands inside the tempdir, where the
        // snapshot sees it, and never in the host's /tmp or /.
        let base = dir.path().join("n1/n2/n3/n4/n5/n6/n7/n8");
        std::fs::create_dir_all(&base).unwrap();
        let target = base.join("target");
        let outside = base.join("outside");
        std::fs::create_dir(&target).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"host secret").unwrap();
        std::fs::create_dir(outside.join("etc")).unwrap();
        std::fs::write(outside.join("etc/passwd"), b"root:x:0:0").unwrap();
        let mut s = Scene {
            _dir: dir,
            target,
            outside,
            before: BTreeMap::new(),
        };
        s.before = s.snapshot();
        s
    }

    /// Everything under the scene except the target: type, mode, size, content, link target,
    /// link count (a hard link made to `secret` from inside would raise it).
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        walk(self._dir.path(), &self.target, &mut out);
        out
    }

    fn assert_outside_untouched(&self) {
        assert_eq!(
            self.before,
            self.snapshot(),
            "something outside the target changed"
        );
    }

    fn apply(&self, layers: &[Vec<u8>]) -> Result<(), UnpackError> {
        self.apply_with(layers, opts())
    }

    fn apply_with(&self, layers: &[Vec<u8>], o: Options) -> Result<(), UnpackError> {
        let mut u = Unpacker::new(&self.target, o)?;
        for l in layers {
            u.apply(&l[..])?;
        }
        Ok(())
    }

    fn t(&self, rel: &str) -> PathBuf {
        self.target.join(rel)
    }
}

fn walk(dir: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p == skip {
            continue;
        }
        let m = std::fs::symlink_metadata(&p).unwrap();
        let desc = if m.file_type().is_symlink() {
            format!("link {:?}", std::fs::read_link(&p).unwrap())
        } else if m.is_dir() {
            walk(&p, skip, out);
            format!("dir {:o}", m.mode())
        } else {
            format!(
                "file {:o} n{} {:?}",
                m.mode(),
                m.nlink(),
                std::fs::read(&p).unwrap()
            )
        };
        out.insert(p, desc);
    }
}

fn opts() -> Options {
    Options::for_current_user(Mode::Flatten)
}

/// A tar built from raw headers: names and link names are written byte for byte.
#[derive(Default)]
struct Layer {
    buf: Vec<u8>,
}

impl Layer {
    fn raw(
        mut self,
        name: &[u8],
        kind: tar::EntryType,
        link: &[u8],
        data: &[u8],
        mode: u32,
    ) -> Self {
        if name.len() > 100 {
            self = self.raw(
                b"././@LongLink",
                tar::EntryType::GNULongName,
                b"",
                name,
                0o644,
            );
            return self.raw(&name[..99], kind, link, data, mode);
        }
        let mut h = tar::Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            g.name[..name.len()].copy_from_slice(name);
            g.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        self.buf.extend_from_slice(h.as_bytes());
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        self
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.raw(name.as_bytes(), tar::EntryType::Regular, b"", data, 0o644)
    }
    fn dir(self, name: &str) -> Self {
        self.raw(name.as_bytes(), tar::EntryType::Directory, b"", b"", 0o755)
    }
    fn symlink(self, name: &str, to: &str) -> Self {
        self.raw(
            name.as_bytes(),
            tar::EntryType::Symlink,
            to.as_bytes(),
            b"",
            0o777,
        )
    }
    fn hardlink(self, name: &str, to: &str) -> Self {
        self.raw(
            name.as_bytes(),
            tar::EntryType::Link,
            to.as_bytes(),
            b"",
            0o644,
        )
    }
    fn pax(mut self, records: &[(&str, &[u8])], then: impl FnOnce(Self) -> Self) -> Self {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = format!(" {k}=").len() + v.len() + 1;
            let mut len = rest + 1;
            while format!("{len}").len() + rest != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self = self.raw(b"PaxHeaders/x", tar::EntryType::XHeader, b"", &body, 0o644);
        then(self)
    }
    fn done(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&[0u8; 1024]);
        self.buf
    }
}

fn l() -> Layer {
    Layer::default()
}

#[test]
fn dotdot_names_stay_inside_the_target() {
    let s = Scene::new();
    s.apply(&[l()
        .file("../outside/secret", b"pwned")
        .file("a/../../../../pwned", b"x")
        .done()])
        .unwrap();
    s.assert_outside_untouched();
    assert_eq!(std::fs::read(s.t("outside/secret")).unwrap(), b"pwned");
    assert!(s.t("pwned").is_file());
}

#[test]
fn absolute_names_land_under_the_target() {
    let s = Scene::new();
    let abs = format!("{}/secret", s.outside.display());
    s.apply(&[l().file(&abs, b"pwned").done()]).unwrap();
    s.assert_outside_untouched();
    assert!(s.target.join(abs.trim_start_matches('/')).is_file());
}

#[test]
fn writes_through_an_absolute_symlink_stay_inside() {
    let s = Scene::new();
    let abs = s.outside.display().to_string();
    s.apply(&[l().symlink("esc", &abs).file("esc/secret", b"pwned").done()])
        .unwrap();
    s.assert_outside_untouched();
    assert!(s
        .target
        .join(abs.trim_start_matches('/'))
        .join("secret")
        .is_file());
}

#[test]
fn writes_through_a_relative_symlink_climbing_out_stay_inside() {
    let s = Scene::new();
    s.apply(&[l()
        .symlink("up", "../../../..")
        .file("up/outside/secret", b"pwned")
        .done()])
        .unwrap();
    s.assert_outside_untouched();
    assert_eq!(std::fs::read(s.t("outside/secret")).unwrap(), b"pwned");
}

#[test]
fn symlink_chains_are_resolved_inside_the_target() {
    let s = Scene::new();
    let layer = l()
        .symlink("a", "b")
        .symlink("b", "c")
        .symlink("c", "../..")
        .dir("outside")
        .file("a/outside/secret", b"pwned")
        .done();
    s.apply(&[layer]).unwrap();
    s.assert_outside_untouched();
    assert_eq!(std::fs::read(s.t("outside/secret")).unwrap(), b"pwned");
}

#[test]
fn symlink_loops_fail_without_writing_outside() {
    let s = Scene::new();
    let err = s
        .apply(&[l()
            .symlink("l1", "l2")
            .symlink("l2", "l1")
            .file("l1/x", b"x")
            .done()])
        .unwrap_err();
    assert!(matches!(err, UnpackError::Entry { .. }), "{err}");
    s.assert_outside_untouched();
}

#[test]
fn file_over_a_symlink_replaces_the_link_not_its_target() {
    let s = Scene::new();
    let abs = format!("{}/secret", s.outside.display());
    s.apply(&[
        l().symlink("f", &abs).done(),
        l().file("f", b"pwned").done(),
    ])
    .unwrap();
    s.assert_outside_untouched();
    let m = std::fs::symlink_metadata(s.t("f")).unwrap();
    assert!(m.is_file());
}

#[test]
fn symlink_replaced_by_a_directory_in_a_later_layer_is_a_real_directory() {
    let s = Scene::new();
    let abs = s.outside.display().to_string();
    s.apply(&[
        l().symlink("evil", &abs).done(),
        l().dir("evil").file("evil/secret", b"pwned").done(),
    ])
    .unwrap();
    s.assert_outside_untouched();
    assert!(std::fs::symlink_metadata(s.t("evil")).unwrap().is_dir());
    assert_eq!(std::fs::read(s.t("evil/secret")).unwrap(), b"pwned");
}

#[test]
fn later_layer_writing_below_an_earlier_symlink_stays_inside() {
    let s = Scene::new();
    let abs = s.outside.display().to_string();
    s.apply(&[
        l().symlink("evil", &abs).done(),
        l().file("evil/secret", b"pwned").done(),
    ])
    .unwrap();
    s.assert_outside_untouched();
}

#[test]
fn hard_link_to_an_absolute_host_file_is_refused() {
    let s = Scene::new();
    let abs = format!("{}/secret", s.outside.display());
    let err = s.apply(&[l().hardlink("h", &abs).done()]).unwrap_err();
    assert!(matches!(err, UnpackError::Entry { .. }), "{err}");
    s.assert_outside_untouched();
}

#[test]
fn hard_link_climbing_out_with_dotdot_is_refused() {
    let s = Scene::new();
    let err = s
        .apply(&[l().hardlink("h", "../outside/secret").done()])
        .unwrap_err();
    assert!(matches!(err, UnpackError::Entry { .. }), "{err}");
    s.assert_outside_untouched();
}

#[test]
fn hard_link_through_a_symlink_to_the_host_is_refused() {
    let s = Scene::new();
    let abs = s.outside.display().to_string();
    let err = s
        .apply(&[l().symlink("esc", &abs).hardlink("h", "esc/secret").done()])
        .unwrap_err();
    assert!(matches!(err, UnpackError::Entry { .. }), "{err}");
    s.assert_outside_untouched();
}

#[test]
fn hard_link_to_a_symlink_links_the_symlink_itself() {
    let s = Scene::new();
    let abs = format!("{}/secret", s.outside.display());
    s.apply(&[l()
        .symlink("s", &abs)
        .hardlink("h", "s")
        .file("h", b"pwned")
        .done()])
        .unwrap();
    s.assert_outside_untouched();
    assert!(std::fs::symlink_metadata(s.t("s"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn whiteout_through_a_symlink_never_deletes_host_files() {
    let s = Scene::new();
    let abs = s.outside.display().to_string();
    s.apply(&[
        l().symlink("esc", &abs).done(),
        l().file("esc/.wh.secret", b"")
            .file("esc/.wh.etc", b"")
            .done(),
    ])
    .unwrap();
    s.assert_outside_untouched();
}

#[test]
fn whiteout_with_dotdot_names_never_deletes_host_files() {
    let s = Scene::new();
    s.apply(&[l()
        .file("../.wh.outside", b"")
        .file("x/.wh...", b"")
        .file("../../.wh.target", b"")
        .done()])
        .unwrap();
    s.assert_outside_untouched();
    assert!(s.target.is_dir());
}

#[test]
fn opaque_directory_through_a_climbing_symlink_clears_only_the_image() {
    let s = Scene::new();
    s.apply(&[
        l().file("keep_lower", b"1").symlink("up", "../..").done(),
        l().file("up/.wh..wh..opq", b"").file("new", b"2").done(),
    ])
    .unwrap();
    s.assert_outside_untouched();
    assert!(
        !s.t("keep_lower").exists(),
        "opaque root must hide lower entries"
    );
    assert!(
        s.t("new").is_file(),
        "entries of the same layer survive the opaque marker"
    );
}

#[test]
fn whiteouts_and_opaque_dirs_follow_the_image_spec() {
    let s = Scene::new();
    s.apply(&[
        l().dir("etc")
            .file("etc/a", b"1")
            .file("etc/b", b"2")
            .dir("opt")
            .file("opt/x", b"1")
            .done(),
        l().file("etc/.wh.a", b"")
            .file("opt/y", b"same layer, before the marker")
            .file("opt/.wh..wh..opq", b"")
            .done(),
    ])
    .unwrap();
    assert!(!s.t("etc/a").exists());
    assert!(s.t("etc/b").exists());
    assert!(!s.t("opt/x").exists());
    assert!(s.t("opt/y").exists());
    assert!(
        !s.t("etc/.wh.a").exists(),
        "whiteout markers are never written as files"
    );
}

#[test]
fn device_nodes_are_skipped_when_not_allowed() {
    let s = Scene::new();
    let mut layer = l();
    for (name, kind) in [
        ("dev/sda", tar::EntryType::Block),
        ("dev/mem", tar::EntryType::Char),
    ] {
        layer = layer.raw(name.as_bytes(), kind, b"", b"", 0o666);
    }
    let mut u = Unpacker::new(
        &s.target,
        Options {
            devices: false,
            ..opts()
        },
    )
    .unwrap();
    u.apply(&layer.done()[..]).unwrap();
    assert_eq!(u.report().skipped_devices, 2);
    assert!(!s.t("dev/sda").exists() && !s.t("dev/mem").exists());
    s.assert_outside_untouched();
}

#[test]
fn setuid_bits_survive_only_as_the_kernel_allows() {
    let s = Scene::new();
    s.apply(&[l()
        .raw(b"bin/su", tar::EntryType::Regular, b"", b"#!", 0o4755)
        .done()])
        .unwrap();
    let mode = std::fs::metadata(s.t("bin/su"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o4755);
}

#[test]
fn huge_declared_size_is_rejected_before_any_write() {
    let s = Scene::new();
    let mut h = tar::Header::new_gnu();
    h.set_path("huge").unwrap();
    h.set_size(1 << 40);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut buf = h.as_bytes().to_vec();
    buf.extend_from_slice(&[0u8; 4096]);
    let err = s.apply(&[buf]).unwrap_err();
    assert!(matches!(err, UnpackError::TooLarge { .. }), "{err}");
    assert!(!s.t("huge").exists());
    s.assert_outside_untouched();
}

#[test]
fn huge_sparse_file_is_bounded_by_the_size_limit() {
    let s = Scene::new();
    let sparse = sparse_tar("sparse", 1 << 40, b"data at the start");
    let err = s.apply(&[sparse]).unwrap_err();
    assert!(matches!(err, UnpackError::TooLarge { .. }), "{err}");
    s.assert_outside_untouched();
}

#[test]
fn sparse_file_within_limits_stays_sparse_on_disk() {
    let s = Scene::new();
    let logical = 64 << 20;
    s.apply(&[sparse_tar("sparse", logical, b"data at the start")])
        .unwrap();
    let m = std::fs::metadata(s.t("sparse")).unwrap();
    assert_eq!(m.len(), logical);
    assert!(
        m.blocks() * 512 < 1 << 20,
        "holes were written out: {} blocks",
        m.blocks()
    );
}

#[test]
fn deep_nesting_is_rejected() {
    let s = Scene::new();
    let deep = vec!["d"; 300].join("/") + "/f";
    let err = s.apply(&[l().file(&deep, b"x").done()]).unwrap_err();
    assert!(matches!(err, UnpackError::TooDeep { .. }), "{err}");
    s.assert_outside_untouched();
}

#[test]
fn too_many_entries_are_rejected() {
    let s = Scene::new();
    let mut layer = l();
    for i in 0..50 {
        layer = layer.file(&format!("f{i}"), b"");
    }
    let o = Options {
        limits: Limits {
            max_entries: 10,
            ..Limits::default()
        },
        ..opts()
    };
    let err = s.apply_with(&[layer.done()], o).unwrap_err();
    assert!(matches!(err, UnpackError::TooManyEntries { .. }), "{err}");
}

#[test]
fn long_gnu_and_pax_names_cannot_climb_out() {
    let s = Scene::new();
    let long = format!("{}../../../../outside/secret", "a/".repeat(60));
    let layer = l()
        .file(&long, b"pwned")
        .pax(&[("path", b"../../../outside/secret")], |l| {
            l.file("innocent", b"pwned")
        })
        .done();
    s.apply(&[layer]).unwrap();
    s.assert_outside_untouched();
    assert_eq!(std::fs::read(s.t("outside/secret")).unwrap(), b"pwned");
}

#[test]
fn forged_overlay_xattrs_are_dropped() {
    let s = Scene::new();
    let layer = l()
        .pax(
            &[
                ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
                ("SCHILY.xattr.user.overlay.metacopy", b""),
            ],
            |l| l.file("f", b"x"),
        )
        .done();
    s.apply(&[layer]).unwrap();
    let f = s.t("f");
    for name in ["trusted.overlay.redirect", "user.overlay.metacopy"] {
        let mut buf = [0u8; 64];
        assert!(
            rustix::fs::lgetxattr(&f, name, &mut buf).is_err(),
            "{name} was set"
        );
    }
}

#[test]
fn magic_link_targets_do_not_lead_out() {
    let s = Scene::new();
    // A magic link to an fd this process holds on the outside dir: followed, it would write there.
    let outside = std::fs::File::open(&s.outside).unwrap();
    use std::os::fd::AsRawFd;
    let link = format!("/proc/self/fd/{}", outside.as_raw_fd());
    let _ = s.apply(&[l().symlink("m", &link).file("m/secret", b"pwned").done()]);
    s.assert_outside_untouched();
    drop(outside);
}

#[test]
fn compressed_hostile_layers_are_handled_the_same() {
    let s = Scene::new();
    let raw = l().file("../outside/secret", b"pwned").done();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&raw[..], 1).unwrap();
    s.apply(&[gz, zst]).unwrap();
    s.assert_outside_untouched();
    assert_eq!(std::fs::read(s.t("outside/secret")).unwrap(), b"pwned");
}

#[test]
fn directory_replaced_by_a_symlink_drops_its_contents() {
    let s = Scene::new();
    let abs = s.outside.display().to_string();
    s.apply(&[
        l().dir("d").file("d/inner", b"1").done(),
        l().symlink("d", &abs).file("d/secret", b"pwned").done(),
    ])
    .unwrap();
    s.assert_outside_untouched();
    assert!(std::fs::symlink_metadata(s.t("d"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn truncated_layer_is_an_error_not_a_panic() {
    let s = Scene::new();
    let mut raw = l().file("f", &[7u8; 5000]).done();
    raw.truncate(2048);
    let err = s.apply(&[raw]).unwrap_err();
    assert!(err.to_string().contains("\"f\""), "{err}");
}

#[test]
fn fifo_entries_are_created_as_fifos() {
    let s = Scene::new();
    s.apply(&[l()
        .raw(b"run/pipe", tar::EntryType::Fifo, b"", b"", 0o600)
        .done()])
        .unwrap();
    assert!(std::fs::symlink_metadata(s.t("run/pipe"))
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn overlay_mode_turns_whiteouts_into_overlay_whiteouts() {
    let s = Scene::new();
    let o = Options::for_current_user(Mode::Overlay);
    unpack::unpack_layer(
        &l().dir("etc")
            .file("etc/.wh.gone", b"")
            .file("opt/.wh..wh..opq", b"")
            .done()[..],
        &s.target,
        o,
    )
    .unwrap();
    let m = std::fs::symlink_metadata(s.t("etc/gone")).unwrap();
    assert!(m.file_type().is_char_device() && m.rdev() == 0);
    let mut buf = [0u8; 4];
    let name = if rustix::process::geteuid().is_root() {
        "trusted.overlay.opaque"
    } else {
        "user.overlay.opaque"
    };
    let n = rustix::fs::getxattr(s.t("opt"), name, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"y");
}

/// A GNU sparse entry whose logical size is `logical` with `data` at offset 0.
fn sparse_tar(name: &str, logical: u64, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_size(512);
    h.set_mode(0o644);
    {
        let g = h.as_gnu_mut().unwrap();
        g.sparse[0].set_offset(0);
        g.sparse[0].set_length(512);
        g.sparse[1].set_offset(logical);
        g.sparse[1].set_length(0);
        g.set_real_size(logical);
    }
    h.set_cksum();
    let mut buf = h.as_bytes().to_vec();
    let mut block = [0u8; 512];
    block[..data.len()].copy_from_slice(data);
    buf.extend_from_slice(&block);
    buf.extend_from_slice(&[0u8; 1024]);
    buf
}
