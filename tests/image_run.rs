//! Sandboxes from OCI images: a busybox-static image built here, pushed with skopeo to a
//! registry of our own on loopback, pulled with `lasso image pull`, then run with
//! `lasso run --image`. Everything is checked from inside the sandbox (what the kernel shows
//! the agent) and in the store afterwards, as root and as an unprivileged user (nobody).

mod image_sandbox_support;
mod image_support;
mod sandbox_support;

use image_sandbox_support::{pull_into_store, with_store};
use image_support::registry::Registry;
use image_support::*;
use sandbox_support::{is_root, run, text, world, As, World, NOBODY, OWNER};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A file in the image owned by the agent's host ID: the agent may change it in place (overlay
/// copies it up into the private layer).
const AGENT_FILE: &str = "etc/agent-owned";

/// The test image: busybox with the applets the script uses, a marker, a file lower layers
/// made and the top layer removes (whiteout), and a file owned by `agent_uid`.
fn image_layers(agent_uid: u64) -> Vec<Vec<u8>> {
    let mut layers = busybox_layers();
    let applets = ["cat", "ls", "echo", "mv", "id", "test"];
    let links: Vec<(String, &str)> = applets
        .iter()
        .map(|a| (format!("bin/{a}"), "busybox"))
        .collect();
    let link_refs: Vec<(&str, &str)> = links.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    layers.push(tar_of(
        &[("etc/image-marker", b"root from the image\n")],
        &link_refs,
    ));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let data = b"agent may edit\n";
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(agent_uid);
    h.set_gid(agent_uid);
    b.append_data(&mut h, AGENT_FILE, &data[..]).unwrap();
    layers.push(b.into_inner().unwrap());
    layers
}

/// The test image, pulled into a store of `w`'s user (its agent-owned file owned by the
/// agent's host ID). Returns (reference, store dir).
fn pulled(w: &World, reg: &Registry) -> (String, PathBuf) {
    let agent_uid = match w.who {
        As::Root => OWNER,
        As::Nobody => NOBODY,
    } as u64;
    pull_into_store(w, reg, "run-test", &image_layers(agent_uid))
}

/// A snapshot of a tree: (relative path, contents or link target) of every entry.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p.clone());
                out.push((rel, b"<dir>".to_vec()));
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.push((rel, t.as_os_str().as_encoded_bytes().to_vec()));
            } else if ft.is_file() {
                out.push((rel, std::fs::read(&p).unwrap()));
            } else {
                out.push((rel, b"<special>".to_vec()));
            }
        }
    }
    out.sort();
    out
}

fn layer_dirs(store: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(store.join("layers/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect()
}

const WRITER: &str = r#"
cat /etc/image-marker
echo "hello=$(cat /etc/hello)"
test -e /etc/motd && echo motd=present || echo motd=whited-out
test -e /usr/bin/python3 && echo host-usr=visible || echo host-usr=absent
echo "id=$(id -u):$(id -g)"
echo "ws=$(cat /workspace/project-file)"
echo made-by-the-agent > /agent-wrote-root && echo root-write=ok
echo changed >> /etc/agent-owned && echo in-place=ok
echo replaced > /etc/image-marker.new && mv -f /etc/image-marker.new /etc/image-marker && echo replace=ok
mv /etc/hello /tmp/hello && echo delete=ok
cat /etc/image-marker
"#;

const READER: &str = r#"
test -e /agent-wrote-root && echo root-file=still-there || echo root-file=gone
echo "marker=$(cat /etc/image-marker)"
echo "agent-owned=$(cat /etc/agent-owned)"
test -e /etc/hello && echo hello=back || echo hello=missing
"#;

fn image_root_is_the_image_and_writes_stay_private(who: As) {
    let w = world(who);
    std::fs::write(w.ws.join("project-file"), "the project\n").unwrap();
    if who == As::Root {
        let _ = Command::new("chown")
            .arg(format!("{OWNER}:{OWNER}"))
            .arg(w.ws.join("project-file"))
            .status();
    }
    let reg = Registry::start(None);
    let (reference, store) = pulled(&w, &reg);
    let before: Vec<_> = layer_dirs(&store).iter().map(|d| snapshot(d)).collect();

    let o = run(&mut with_store(
        &w,
        &store,
        &["run", "--image", &reference, "--", "/bin/sh", "-c", WRITER],
    ));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", text(&o));
    // The root is the image's: its marker, its top layer's whiteout applied, no host /usr.
    assert!(out.starts_with("root from the image\n"), "{}", text(&o));
    assert!(out.contains("hello=hello from layer 2"), "{out}");
    assert!(out.contains("motd=whited-out"), "{out}");
    assert!(out.contains("host-usr=absent"), "{out}");
    // The agent is still uid 1000, and /workspace is the project.
    assert!(out.contains("id=1000:1000"), "{out}");
    assert!(out.contains("ws=the project"), "{out}");
    // Writes to / work: a new file, an image file changed in place, one replaced, one deleted.
    for w in ["root-write=ok", "in-place=ok", "replace=ok", "delete=ok"] {
        assert!(out.contains(w), "{w} missing: {}", text(&o));
    }
    assert!(out.ends_with("replaced\n"), "{out}");

    // The store's layers are exactly as before: every write went to the private layer.
    let after: Vec<_> = layer_dirs(&store).iter().map(|d| snapshot(d)).collect();
    assert_eq!(before, after, "a sandbox changed the shared image layers");

    // A second sandbox from the same image sees none of the first one's writes.
    let o = run(&mut with_store(
        &w,
        &store,
        &["run", "--image", &reference, "--", "/bin/sh", "-c", READER],
    ));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.contains("root-file=gone"), "{out}");
    assert!(out.contains("marker=root from the image"), "{out}");
    assert!(out.contains("agent-owned=agent may edit\n"), "{out}");
    assert!(out.contains("hello=back"), "{out}");
    // And nothing of either sandbox is left on the host.
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn image_root_is_the_image_and_writes_stay_private_as_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    image_root_is_the_image_and_writes_stay_private(As::Root);
}

#[test]
fn image_root_is_the_image_and_writes_stay_private_rootless() {
    if !is_root() {
        eprintln!("skipped: needs root to become nobody");
        return;
    }
    image_root_is_the_image_and_writes_stay_private(As::Nobody);
}

#[test]
fn unknown_image_is_a_clear_error_and_leaves_nothing() {
    let w = world(if is_root() { As::Root } else { As::Nobody });
    let store = w.base.join("empty-store");
    let o = run(&mut with_store(
        &w,
        &store,
        &["run", "--image", "no/such:image", "--", "/bin/true"],
    ));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(err.contains("\"no/such:image\""), "{err}");
    assert!(err.contains("lasso image pull"), "{err}");
    assert!(err.contains("lasso prebuild"), "{err}");
    assert_eq!(w.leftovers(), Vec::<String>::new());
    assert!(!store.exists(), "looking an image up created a store");
}

#[test]
fn a_profiles_image_is_required_by_name_and_prebuilt_is_only_a_preference() {
    let w = world(if is_root() { As::Root } else { As::Nobody });
    let store = w.base.join("empty-store");
    let profile = |name: &str, image: &str| {
        let p = w.base.join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "name = \"{name}\"\nextends = \"offline\"\n[filesystem]\nimage = \"{image}\"\n"
            ),
        )
        .unwrap();
        p.display().to_string()
    };
    let named = profile("named", "no/such:image");
    let o = run(&mut with_store(
        &w,
        &store,
        &["run", "--profile-file", &named, "--", "/bin/true"],
    ));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(err.contains("\"no/such:image\""), "{err}");
    assert!(err.contains("filesystem.image"), "{err}");
    assert_eq!(w.leftovers(), Vec::<String>::new());

    let prefers = profile("prefers", "prebuilt");
    let o = run(&mut with_store(
        &w,
        &store,
        &[
            "run",
            "--profile-file",
            &prefers,
            "--",
            "/bin/sh",
            "-c",
            "test -d /usr/bin && echo host-view",
        ],
    ));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("host-view"),
        "{}",
        text(&o)
    );
    assert!(err.contains("lasso prebuild --agent shell"), "{err}");
    assert_eq!(w.leftovers(), Vec::<String>::new());
}
