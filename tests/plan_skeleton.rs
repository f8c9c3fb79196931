//! The skeleton root and the host-side preparation, materialised for real in a temporary dir.

use lasso::agents;
use lasso::plan::{self, parse_mount, HostContext, PlanInput, LINK_DIR};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[test]
fn skeleton_holds_the_agent_account_and_mirrors_the_hosts_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    plan::materialise_skeleton(&root).unwrap();

    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let shell = if Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    let agent_line = format!("agent:x:1000:1000:lasso agent:/home/agent:{shell}");
    assert!(passwd.lines().any(|l| l == agent_line), "{passwd}");
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(group.lines().any(|l| l == "agent:x:1000:"), "{group}");
    assert!(root.join("etc/hostname").is_file());

    // Every top-level system path is a dir where the host has a dir, and the very same symlink
    // where the host has a symlink (merged /usr: /bin -> usr/bin).
    for d in [
        "bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "opt",
    ] {
        let host = Path::new("/").join(d);
        let ours = root.join(d);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                assert_eq!(
                    std::fs::read_link(&ours).unwrap(),
                    std::fs::read_link(&host).unwrap(),
                    "{d}"
                );
            }
            Ok(m) if m.is_dir() => assert!(ours.is_dir() && !ours.is_symlink(), "{d}"),
            _ => assert!(std::fs::symlink_metadata(&ours).is_err(), "{d} invented"),
        }
    }
    for mp in [
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "home/agent",
        "workspace",
        "etc",
    ] {
        assert!(root.join(mp).is_dir(), "{mp}");
    }
    assert_eq!(
        std::fs::metadata(root.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    // Nothing else: no /root, no other homes, no host /var, no secrets.
    assert!(!root.join("root").exists());
    assert_eq!(std::fs::read_dir(root.join("home")).unwrap().count(), 1);
    assert!(!root.join("etc/shadow").exists());
    assert_eq!(
        std::fs::read_link(root.join("var/run")).unwrap(),
        Path::new("/run")
    );
    // Idempotent.
    plan::materialise_skeleton(&root).unwrap();
}

#[test]
fn skeleton_of_a_host_without_merged_usr_gets_directories() {
    let host = tempfile::tempdir().unwrap();
    for d in ["usr/bin", "bin", "lib"] {
        std::fs::create_dir_all(host.path().join(d)).unwrap();
    }
    std::os::unix::fs::symlink("usr/lib", host.path().join("lib64")).unwrap();
    let out = tempfile::tempdir().unwrap();
    plan::materialise_skeleton_from(out.path(), host.path()).unwrap();
    assert!(out.path().join("bin").is_dir() && !out.path().join("bin").is_symlink());
    assert_eq!(
        std::fs::read_link(out.path().join("lib64")).unwrap(),
        Path::new("usr/lib")
    );
    assert!(!out.path().join("sbin").exists());
    let passwd = std::fs::read_to_string(out.path().join("etc/passwd")).unwrap();
    assert!(
        passwd.contains(":/home/agent:/bin/sh"),
        "no bash on that host: {passwd}"
    );
}

fn host(home: &Path) -> HostContext {
    HostContext {
        uid: 1000,
        gid: 1000,
        home: home.to_path_buf(),
        env: Default::default(),
        path: "/usr/bin:/bin".into(),
        nofile_hard: 1024,
    }
}

#[test]
fn prepare_creates_mount_points_links_and_protected_files_only_where_planned() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let home = base.join("home");
    let ws = base.join("ws");
    let data = base.join("data");
    for d in [&home, &ws, &data] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(home.join(".claude.json"), "{\"mcpServers\":{}}").unwrap();
    let mut input = PlanInput::new(
        agents::find("claude-code").unwrap(),
        ws.clone(),
        base.join("sandbox"),
        host(&home),
    );
    input.command = Some(vec!["true".into()]);
    input.mounts = vec![parse_mount(&format!("{}:/data/in:ro", data.display())).unwrap()];
    let p = plan::plan(&input).unwrap();
    plan::prepare_host(&p).unwrap();

    let root = &p.rootfs;
    assert!(root.join("data/in").is_dir(), "mount point of --mount");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hostname"))
            .unwrap()
            .trim(),
        format!("lasso-{}", p.id)
    );
    // Read-only agent files exist on the host now, so the agent cannot create them inside.
    let settings = home.join(".claude/settings.json");
    assert_eq!(std::fs::read_to_string(&settings).unwrap().trim(), "{}");
    assert!(home.join(".claude/hooks").is_dir());
    if nix::unistd::getuid().is_root() {
        assert_eq!(std::fs::metadata(&settings).unwrap().uid(), 1000);
    }
    // The private copy is a copy.
    let copy = base.join("sandbox/private/.claude.json");
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        "{\"mcpServers\":{}}"
    );
    assert!(!root.join("root").exists());
    // Twice is fine.
    plan::prepare_host(&p).unwrap();
}

#[test]
fn prepare_links_the_agent_binary_into_the_skeleton() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let home = base.join("home");
    let ws = base.join("ws");
    let bin = base.join("tools/bin");
    for d in [&home, &ws, &bin] {
        std::fs::create_dir_all(d).unwrap();
    }
    let exe = bin.join("codex");
    std::fs::write(&exe, "\x7fELF").unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut h = host(&home);
    h.path = format!("{}:/usr/bin", bin.display()).into();
    let input = PlanInput::new(agents::find("codex").unwrap(), ws, base.join("sb"), h);
    let p = plan::plan(&input).unwrap();
    plan::prepare_host(&p).unwrap();
    let link = p
        .rootfs
        .join(LINK_DIR.trim_start_matches('/'))
        .join("codex");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        PathBuf::from(plan::AGENT_ROOT).join("codex")
    );
}

#[test]
fn prepare_never_creates_a_mount_point_through_a_skeleton_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let ws = base.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let mut input = PlanInput::new(
        agents::find("shell").unwrap(),
        ws,
        base.join("sb"),
        host(&base),
    );
    input.command = Some(vec!["true".into()]);
    let mut p = plan::plan(&input).unwrap();
    // /var/run is a link to /run in the skeleton: following it would mkdir on the host's /run.
    let name = format!("lasso-test-{}", p.id);
    p.host_prep.push(plan::HostPrep::MountPoint {
        path: p.rootfs.join("var/run").join(&name),
        is_dir: true,
    });
    let err = plan::prepare_host(&p).unwrap_err().to_string();
    assert!(err.contains("symlink"), "{err}");
    assert!(!Path::new("/run").join(&name).exists());

    p.host_prep = vec![plan::HostPrep::SkeletonFile {
        path: base.join("outside"),
        contents: "x".into(),
    }];
    assert!(plan::prepare_host(&p).is_err());
    assert!(!base.join("outside").exists());
}

#[test]
fn missing_agent_dirs_are_created_owned_by_the_user() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let home = base.join("home");
    let ws = base.join("ws");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&ws).unwrap();
    let mut input = PlanInput::new(
        agents::find("opencode").unwrap(),
        ws,
        base.join("sb"),
        host(&home),
    );
    input.command = Some(vec!["true".into()]);
    let p = plan::plan(&input).unwrap();
    plan::prepare_host(&p).unwrap();
    for d in [
        ".local",
        ".local/share",
        ".local/share/opencode",
        ".local/share/opencode/bin",
    ] {
        let meta = std::fs::metadata(home.join(d)).unwrap();
        assert!(meta.is_dir(), "{d}");
        if nix::unistd::getuid().is_root() {
            assert_eq!(meta.uid(), 1000, "{d} left owned by root");
        }
    }
}
