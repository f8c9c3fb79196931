//! Planning read as a threat model: each test names an attack and checks that the planned Spec
//! (what the engine will apply) leaves no room for it. These test the plan; the escape corpus
//! that checks the kernel's view from inside a running sandbox comes with the engine.

use lasso::agents;
use lasso::plan::{
    self, parse_mount, HostContext, HostPrep, MountError, PlanError, PlanInput, PlannedSandbox,
    WorkspaceMode, LINK_DIR,
};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

struct Fixture {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    ws: PathBuf,
    sandbox: PathBuf,
    bin: PathBuf,
}

/// A home with Claude Code "installed" from the npm registry into ~/.npm-global, and a project.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let home = root.join("home/u");
    let ws = home.join("src/project");
    let pkg = home.join(".npm-global/lib/node_modules/@anthropic-ai/claude-code");
    let bin = home.join(".npm-global/bin");
    for d in [&ws, &pkg, &bin] {
        std::fs::create_dir_all(d).unwrap();
    }
    let cli = pkg.join("cli.js");
    std::fs::write(&cli, "#!/usr/bin/env node\nconsole.log('1.0')\n").unwrap();
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(
        "../lib/node_modules/@anthropic-ai/claude-code/cli.js",
        bin.join("claude"),
    )
    .unwrap();
    Fixture {
        sandbox: root.join("sandbox"),
        _tmp: tmp,
        home,
        ws,
        bin,
    }
}

impl Fixture {
    fn host(&self, uid: u32) -> HostContext {
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin.display());
        HostContext {
            uid,
            gid: uid,
            home: self.home.clone(),
            env: [
                ("HOME", self.home.display().to_string()),
                ("PATH", path.clone()),
                ("ANTHROPIC_API_KEY", "sk-test".to_string()),
                ("AWS_SECRET_ACCESS_KEY", "nope".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            path: path.into(),
            nofile_hard: 20_000,
        }
    }

    fn input(&self, agent: &str) -> PlanInput {
        PlanInput::new(
            agents::find(agent).unwrap(),
            self.ws.clone(),
            self.sandbox.clone(),
            self.host(1000),
        )
    }

    fn claude_dir(&self) -> PathBuf {
        let d = self.home.join(".claude");
        std::fs::create_dir_all(d.join("hooks")).unwrap();
        std::fs::create_dir_all(d.join("projects")).unwrap();
        std::fs::write(d.join("settings.json"), "{\"hooks\":{}}").unwrap();
        std::fs::write(d.join(".credentials.json"), "{}").unwrap();
        std::fs::write(d.join("statusline.sh"), "#!/bin/sh\n").unwrap();
        d
    }
}

fn mounts(p: &PlannedSandbox) -> &Vec<Mount> {
    p.spec.mounts().as_ref().unwrap()
}

fn mount_at<'a>(p: &'a PlannedSandbox, dest: &str) -> Option<&'a Mount> {
    mounts(p)
        .iter()
        .find(|m| m.destination() == Path::new(dest))
}

fn opts(m: &Mount) -> Vec<String> {
    m.options().clone().unwrap_or_default()
}

fn is_read_only(m: &Mount) -> bool {
    let o = opts(m);
    o.iter().any(|x| x == "ro") && !o.iter().any(|x| x == "rw")
}

fn masked(p: &PlannedSandbox) -> Vec<String> {
    p.spec
        .linux()
        .as_ref()
        .unwrap()
        .masked_paths()
        .clone()
        .unwrap()
}

fn sources(p: &PlannedSandbox) -> Vec<String> {
    mounts(p)
        .iter()
        .filter_map(|m| m.source().as_ref())
        .map(|s| s.display().to_string())
        .collect()
}

#[test]
fn etc_shadow_is_not_visible() {
    let f = fixture();
    let p = plan::plan(&f.input("claude-code")).unwrap();
    let hidden = masked(&p);
    for secret in [
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/sudoers",
        "/etc/sudoers.d",
        "/etc/lasso",
    ] {
        assert!(hidden.iter().any(|h| h == secret), "{secret} is not masked");
    }
    // /etc itself is read-only, so the mask cannot be undone by replacing the file.
    assert!(is_read_only(mount_at(&p, "/etc").unwrap()));
    assert!(!sources(&p).iter().any(|s| s.contains("shadow")));
}

#[test]
fn agent_identity_files_replace_the_hosts() {
    let f = fixture();
    let p = plan::plan(&f.input("shell")).unwrap();
    for name in ["passwd", "group", "hostname"] {
        let m = mount_at(&p, &format!("/etc/{name}")).unwrap();
        assert_eq!(
            m.source().as_ref().unwrap(),
            &p.rootfs.join("etc").join(name),
            "the host's /etc/{name} (every user's name and home) must not show"
        );
        assert!(is_read_only(m));
    }
}

#[test]
fn root_home_is_absent() {
    let f = fixture();
    let p = plan::plan(&f.input("claude-code")).unwrap();
    for m in mounts(&p) {
        assert!(!m.destination().starts_with("/root"), "{m:?}");
        if let Some(s) = m.source() {
            assert!(!s.starts_with("/root"), "{m:?}");
        }
    }
    for step in &p.host_prep {
        if let HostPrep::MountPoint { path, .. } = step {
            assert!(!path.starts_with(p.rootfs.join("root")), "{path:?}");
        }
    }
}

#[test]
fn other_users_homes_are_absent() {
    let f = fixture();
    let p = plan::plan(&f.input("claude-code")).unwrap();
    for m in mounts(&p) {
        let d = m.destination();
        assert!(
            !d.starts_with("/home") || d.starts_with("/home/agent"),
            "{d:?} exposes a home"
        );
    }
    assert!(!sources(&p).iter().any(|s| s == "/home"));
}

#[test]
fn docker_socket_is_not_mounted_unless_asked() {
    let f = fixture();
    let p = plan::plan(&f.input("claude-code")).unwrap();
    for s in sources(&p) {
        for bad in [
            "docker.sock",
            "containerd",
            "dbus",
            ".X11-unix",
            "/run/user",
            "/var/run",
        ] {
            assert!(!s.contains(bad), "host runtime socket {s} is mounted");
        }
    }
    // /run, /tmp and /var are the sandbox's own, never the host's.
    assert_eq!(
        mount_at(&p, "/run").unwrap().typ().as_deref(),
        Some("tmpfs")
    );
    assert_eq!(
        mount_at(&p, "/tmp").unwrap().typ().as_deref(),
        Some("tmpfs")
    );
    assert!(mount_at(&p, "/var").is_none());

    let mut asked = f.input("claude-code");
    asked.mounts = vec![parse_mount("/var/run/docker.sock:/mnt/docker.sock").unwrap()];
    let err = plan::plan(&asked).unwrap_err();
    assert!(
        matches!(err, PlanError::Mount(MountError::Sensitive { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("--allow-sensitive"), "{err}");
}

#[test]
fn ssh_agent_forwards_only_the_socket() {
    let f = fixture();
    let sock_dir = f.home.join("agent-sock");
    std::fs::create_dir(&sock_dir).unwrap();
    let sock = sock_dir.join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut input = f.input("shell");
    input.ssh_agent = true;
    input
        .host
        .env
        .insert("SSH_AUTH_SOCK".into(), sock.display().to_string());
    let p = plan::plan(&input).unwrap();
    let m = mount_at(&p, "/run/lasso/ssh-agent.sock").unwrap();
    assert_eq!(m.source().as_ref().unwrap(), &sock);
    let env = p.spec.process().as_ref().unwrap().env().clone().unwrap();
    assert!(env.contains(&"SSH_AUTH_SOCK=/run/lasso/ssh-agent.sock".to_string()));
    assert!(!sources(&p).iter().any(|s| s.contains(".ssh")));

    input.host.env.remove("SSH_AUTH_SOCK");
    let err = plan::plan(&input).unwrap_err().to_string();
    assert!(err.contains("--ssh-agent"), "{err}");
}

#[test]
fn claude_settings_are_read_only() {
    let f = fixture();
    f.claude_dir();
    let p = plan::plan(&f.input("claude-code")).unwrap();
    let dir = mount_at(&p, "/home/agent/.claude").unwrap();
    assert!(
        !is_read_only(dir),
        "credentials and history must stay writable"
    );
    for ro in [
        "settings.json",
        "settings.local.json",
        "hooks",
        "commands",
        "agents",
        "plugins",
        "skills",
        // Unknown to lasso, so treated as code: a status-line script settings.json may run.
        "statusline.sh",
    ] {
        let m = mount_at(&p, &format!("/home/agent/.claude/{ro}"))
            .unwrap_or_else(|| panic!("{ro} is not mounted over"));
        assert!(is_read_only(m), "{ro} is writable");
    }
    for rw in [".credentials.json", "projects"] {
        assert!(
            mount_at(&p, &format!("/home/agent/.claude/{rw}")).is_none(),
            "{rw} should stay writable through its parent"
        );
    }
}

#[test]
fn missing_claude_settings_are_created_so_the_agent_cannot_create_them() {
    let f = fixture();
    let p = plan::plan(&f.input("claude-code")).unwrap();
    let settings = f.home.join(".claude/settings.json");
    assert!(p.host_prep.iter().any(|s| matches!(
        s,
        HostPrep::CreateFile { path, contents, .. } if *path == settings && contents.trim() == "{}"
    )));
    assert!(is_read_only(
        mount_at(&p, "/home/agent/.claude/settings.json").unwrap()
    ));
    assert!(p.host_prep.iter().any(
        |s| matches!(s, HostPrep::CreateDir { path, .. } if *path == f.home.join(".claude/hooks"))
    ));
}

#[test]
fn claude_json_is_a_private_copy() {
    let f = fixture();
    std::fs::write(f.home.join(".claude.json"), "{\"mcpServers\":{}}").unwrap();
    let p = plan::plan(&f.input("claude-code")).unwrap();
    let m = mount_at(&p, "/home/agent/.claude.json").unwrap();
    let src = m.source().as_ref().unwrap();
    assert_ne!(
        src,
        &f.home.join(".claude.json"),
        "the host file is writable inside"
    );
    assert!(src.starts_with(&f.sandbox));
    assert!(p
        .host_prep
        .iter()
        .any(|s| matches!(s, HostPrep::CopyFile { to, .. } if to == src)));
}

#[test]
fn codex_config_is_read_only() {
    let f = fixture();
    std::fs::create_dir_all(f.home.join(".codex/sessions")).unwrap();
    std::fs::write(f.home.join(".codex/config.toml"), "notify = [\"x\"]").unwrap();
    let mut input = f.input("codex");
    input.command = Some(vec!["true".into()]);
    let p = plan::plan(&input).unwrap();
    assert!(!is_read_only(mount_at(&p, "/home/agent/.codex").unwrap()));
    assert!(is_read_only(
        mount_at(&p, "/home/agent/.codex/config.toml").unwrap()
    ));
}

#[test]
fn workspace_is_read_only_under_evaluation() {
    let f = fixture();
    let mut input = f.input("shell");
    input.workspace_mode = WorkspaceMode::Ro;
    let p = plan::plan(&input).unwrap();
    assert!(is_read_only(mount_at(&p, "/workspace").unwrap()));
    assert!(!p.landlock.read_write.contains(&PathBuf::from("/workspace")));
    assert!(p.landlock.read.contains(&PathBuf::from("/workspace")));
}

#[test]
fn workspace_is_writable_by_default_and_is_the_project() {
    let f = fixture();
    let p = plan::plan(&f.input("shell")).unwrap();
    let m = mount_at(&p, "/workspace").unwrap();
    assert!(!is_read_only(m));
    assert_eq!(m.source().as_ref().unwrap(), &f.ws);
    assert!(p.landlock.read_write.contains(&PathBuf::from("/workspace")));
}

#[test]
fn mount_of_home_is_refused_without_allow_sensitive() {
    let f = fixture();
    let mut input = f.input("shell");
    input.mounts = vec![parse_mount(&format!("{}:/mnt/home", f.home.display())).unwrap()];
    let err = plan::plan(&input).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("--mount") && msg.contains("home directory"),
        "{msg}"
    );
    assert!(msg.contains("--allow-sensitive"), "{msg}");

    input.allow_sensitive = true;
    let p = plan::plan(&input).unwrap();
    assert_eq!(
        mount_at(&p, "/mnt/home")
            .unwrap()
            .source()
            .as_ref()
            .unwrap(),
        &f.home
    );
}

#[test]
fn mount_of_ssh_keys_is_refused_even_through_a_symlink() {
    let f = fixture();
    std::fs::create_dir_all(f.home.join(".ssh")).unwrap();
    std::fs::write(f.home.join(".ssh/id_ed25519"), "key").unwrap();
    let link = f.ws.join("innocent");
    std::os::unix::fs::symlink(f.home.join(".ssh"), &link).unwrap();
    for src in [f.home.join(".ssh/id_ed25519"), link] {
        let mut input = f.input("shell");
        input.mounts = vec![parse_mount(&format!("{}:/mnt/k", src.display())).unwrap()];
        let err = plan::plan(&input).unwrap_err();
        assert!(
            matches!(err, PlanError::Mount(MountError::Sensitive { .. })),
            "{src:?}: {err}"
        );
    }
}

#[test]
fn conflicting_mount_destinations_are_refused() {
    let f = fixture();
    let a = f.ws.join("a");
    let b = f.ws.join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let first = format!("{}:/mnt/x", a.display());
    let mut input = f.input("shell");
    input.mounts = vec![
        parse_mount(&first).unwrap(),
        parse_mount(&format!("{}:/mnt/x:ro", b.display())).unwrap(),
    ];
    let msg = plan::plan(&input).unwrap_err().to_string();
    assert!(msg.contains("/mnt/x") && msg.contains(&first), "{msg}");

    f.claude_dir();
    let mut input = f.input("claude-code");
    input.mounts = vec![parse_mount(&format!("{}:/home/agent/.claude", a.display())).unwrap()];
    let msg = plan::plan(&input).unwrap_err().to_string();
    assert!(msg.contains("the agent's config mount"), "{msg}");
}

#[test]
fn mounts_over_system_dirs_are_refused() {
    let f = fixture();
    for dest in [
        "/usr/bin",
        "/etc",
        "/etc/shadow",
        "/workspace",
        "/proc/sys",
        "/var/run/x",
    ] {
        let mut input = f.input("shell");
        input.mounts = vec![parse_mount(&format!("{}:{dest}", f.ws.display())).unwrap()];
        let err = plan::plan(&input).unwrap_err();
        assert!(
            matches!(
                err,
                PlanError::Mount(MountError::ReservedDestination { .. })
            ),
            "{dest}: {err}"
        );
    }
}

#[test]
fn agent_never_maps_to_host_root() {
    let f = fixture();
    for uid in [1000u32, 1, 65534] {
        let mut input = f.input("shell");
        input.host = f.host(uid);
        let p = plan::plan(&input).unwrap();
        let linux = p.spec.linux().as_ref().unwrap();
        for maps in [linux.uid_mappings(), linux.gid_mappings()] {
            let maps = maps.as_ref().unwrap();
            assert_eq!(maps.len(), 1, "a single ID is mapped");
            assert_eq!(maps[0].container_id(), 1000);
            assert_eq!(maps[0].size(), 1);
            assert_eq!(maps[0].host_id(), uid);
            assert_ne!(maps[0].host_id(), 0);
        }
    }
    // Run by root: the workspace's owner, and never root itself. A root-owned workspace
    // reaches an agent of an unused, unprivileged ID through an idmapped mount.
    let mut input = f.input("shell");
    input.host = f.host(0);
    if nix::unistd::getuid().is_root() {
        let p = plan::plan(&input).unwrap();
        let linux = p.spec.linux().as_ref().unwrap();
        for maps in [linux.uid_mappings(), linux.gid_mappings()] {
            let m = &maps.as_ref().unwrap()[0];
            assert_eq!(m.host_id(), plan::ROOT_WORKSPACE_AGENT_ID);
            assert_ne!(m.host_id(), 0);
        }
        let ws = p
            .spec
            .mounts()
            .iter()
            .flatten()
            .find(|m| m.destination() == std::path::Path::new("/workspace"))
            .unwrap();
        assert!(ws
            .options()
            .as_ref()
            .unwrap()
            .contains(&"idmap".to_string()));
        let m = &ws.uid_mappings().as_ref().unwrap()[0];
        assert_eq!(
            (m.container_id(), m.host_id()),
            (0, plan::ROOT_WORKSPACE_AGENT_ID)
        );
        nix::unistd::chown(&f.ws, Some(4321.into()), Some(4322.into())).unwrap();
        let p = plan::plan(&input).unwrap();
        let linux = p.spec.linux().as_ref().unwrap();
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].host_id(), 4321);
        assert_eq!(linux.gid_mappings().as_ref().unwrap()[0].host_id(), 4322);
    }
}

#[test]
fn every_capability_set_is_empty() {
    let f = fixture();
    let p = plan::plan(&f.input("claude-code")).unwrap();
    let process = p.spec.process().as_ref().unwrap();
    let caps = process.capabilities().as_ref().unwrap();
    for (name, set) in [
        ("bounding", caps.bounding()),
        ("effective", caps.effective()),
        ("inheritable", caps.inheritable()),
        ("permitted", caps.permitted()),
        ("ambient", caps.ambient()),
    ] {
        let set = set
            .as_ref()
            .unwrap_or_else(|| panic!("{name} is absent, so a runtime default applies"));
        assert!(set.is_empty(), "{name}: {set:?}");
    }
    assert_eq!(process.no_new_privileges(), Some(true));
}

#[test]
fn agent_runs_as_uid_1000_in_workspace_with_its_own_home() {
    let f = fixture();
    let p = plan::plan(&f.input("claude-code")).unwrap();
    let process = p.spec.process().as_ref().unwrap();
    assert_eq!((process.user().uid(), process.user().gid()), (1000, 1000));
    assert_eq!(process.user().additional_gids().as_deref(), Some(&[][..]));
    assert_eq!(process.cwd(), Path::new("/workspace"));
    let env = process.env().clone().unwrap();
    assert!(env.contains(&"HOME=/home/agent".to_string()));
    assert!(env.contains(&"ANTHROPIC_API_KEY=sk-test".to_string()));
    assert!(!env.iter().any(|e| e.starts_with("AWS_SECRET_ACCESS_KEY")));
    assert_eq!(process.args().as_deref(), Some(&["claude".to_string()][..]));
    let home = mount_at(&p, "/home/agent").unwrap();
    assert_eq!(home.typ().as_deref(), Some("tmpfs"));
}

#[test]
fn agent_installed_outside_system_dirs_is_mounted_read_only() {
    let f = fixture();
    let p = plan::plan(&f.input("claude-code")).unwrap();
    let m = mount_at(&p, plan::AGENT_ROOT).unwrap();
    assert_eq!(
        m.source().as_ref().unwrap(),
        &f.home
            .join(".npm-global/lib/node_modules/@anthropic-ai/claude-code")
    );
    assert!(is_read_only(m));
    assert!(p.host_prep.iter().any(|s| matches!(
        s,
        HostPrep::Symlink { path, target }
            if path.ends_with("bin/claude") && target == &Path::new(plan::AGENT_ROOT).join("cli.js")
    )));
    let env = p.spec.process().as_ref().unwrap().env().clone().unwrap();
    let path = env.iter().find(|e| e.starts_with("PATH=")).unwrap();
    assert!(path.starts_with(&format!("PATH={LINK_DIR}:")), "{path}");
    // The rest of the home stays out: only the package directory is visible.
    assert!(!sources(&p)
        .iter()
        .any(|s| Path::new(s) == f.home.join(".npm-global")));
}

#[test]
fn agent_not_installed_is_a_clear_error_unless_a_command_is_given() {
    let f = fixture();
    let err = plan::plan(&f.input("opencode")).unwrap_err().to_string();
    assert!(
        err.contains("opencode") && err.contains("install it"),
        "{err}"
    );
    let mut input = f.input("opencode");
    input.command = Some(vec!["/bin/true".into()]);
    assert!(plan::plan(&input).is_ok());
}

#[test]
fn sandbox_gets_all_seven_namespaces_and_its_own_hostname() {
    let f = fixture();
    let p = plan::plan(&f.input("shell")).unwrap();
    let ns: Vec<LinuxNamespaceType> = p
        .spec
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| {
            assert!(n.path().is_none(), "joins an existing namespace: {n:?}");
            n.typ()
        })
        .collect();
    for t in [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Network,
    ] {
        assert!(ns.contains(&t), "{t:?} missing");
    }
    assert_eq!(
        p.spec.hostname().as_deref(),
        Some(format!("lasso-{}", p.id).as_str())
    );
    assert!(p.id.as_str().len() == 8);
}

#[test]
fn root_is_the_read_only_skeleton() {
    let f = fixture();
    let p = plan::plan(&f.input("shell")).unwrap();
    let root = p.spec.root().as_ref().unwrap();
    assert_eq!(root.readonly(), Some(true));
    assert_eq!(root.path(), &f.sandbox.join("rootfs"));
    for sys in ["/usr", "/etc"] {
        assert!(is_read_only(mount_at(&p, sys).unwrap()), "{sys}");
    }
    for m in mounts(&p) {
        if m.typ().as_deref() == Some("bind") {
            assert!(
                opts(m).iter().any(|o| o == "nosuid"),
                "{m:?} lets setuid binaries work"
            );
        }
    }
}

#[test]
fn kernel_interfaces_are_masked_or_read_only() {
    let f = fixture();
    let p = plan::plan(&f.input("shell")).unwrap();
    let hidden = masked(&p);
    for k in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/acpi",
        "/proc/scsi",
        "/sys/firmware",
    ] {
        assert!(hidden.iter().any(|h| h == k), "{k}");
    }
    let ro = p
        .spec
        .linux()
        .as_ref()
        .unwrap()
        .readonly_paths()
        .clone()
        .unwrap();
    for k in [
        "/proc/sys",
        "/proc/sysrq-trigger",
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
    ] {
        assert!(ro.iter().any(|h| h == k), "{k}");
    }
    assert!(is_read_only(mount_at(&p, "/sys").unwrap()));
}

#[test]
fn dev_holds_only_the_minimal_nodes() {
    let f = fixture();
    let p = plan::plan(&f.input("shell")).unwrap();
    let mut under_dev: Vec<String> = mounts(&p)
        .iter()
        .map(|m| m.destination().display().to_string())
        .filter(|d| d.starts_with("/dev"))
        .collect();
    under_dev.sort();
    // The nodes themselves are the OCI default devices every runtime creates; nothing else.
    assert_eq!(under_dev, ["/dev", "/dev/pts", "/dev/shm"]);
    let devices = p.spec.linux().as_ref().unwrap().devices();
    assert!(devices.as_ref().is_none_or(|d| d.is_empty()), "{devices:?}");
    let pts = mount_at(&p, "/dev/pts").unwrap();
    assert!(
        opts(pts).iter().any(|o| o == "newinstance"),
        "the host's ptys would be reachable"
    );
}

#[test]
fn resources_come_from_the_profile_and_tmp_is_bounded() {
    let f = fixture();
    let mut input = f.input("shell");
    input.resources.memory_bytes = Some(512 << 20);
    input.resources.cpus = Some(1.5);
    input.resources.pids = Some(256);
    let p = plan::plan(&input).unwrap();
    let r = p
        .spec
        .linux()
        .as_ref()
        .unwrap()
        .resources()
        .clone()
        .unwrap();
    assert_eq!(r.memory().unwrap().limit(), Some(512 << 20));
    assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(150_000));
    assert_eq!(r.cpu().as_ref().unwrap().period(), Some(100_000));
    assert_eq!(r.pids().unwrap().limit(), 256);
    for d in ["/tmp", "/home/agent"] {
        let o = opts(mount_at(&p, d).unwrap());
        assert!(o.contains(&format!("size={}", 256u64 << 20)), "{d}: {o:?}");
    }

    input.resources.cpus = Some(-1.0);
    assert!(plan::plan(&input)
        .unwrap_err()
        .to_string()
        .contains("resources.cpu"));
}

#[test]
fn landlock_writes_only_to_the_writable_set() {
    let f = fixture();
    f.claude_dir();
    let extra = f.home.join("data");
    std::fs::create_dir(&extra).unwrap();
    let mut input = f.input("claude-code");
    input.mounts = vec![parse_mount(&format!("{}:/mnt/data", extra.display())).unwrap()];
    let p = plan::plan(&input).unwrap();
    for w in &p.landlock.read_write {
        let ok = ["/workspace", "/tmp", "/home/agent", "/dev/", "/mnt/data"]
            .iter()
            .any(|a| w.starts_with(a) || w.display().to_string().starts_with(a));
        assert!(ok, "{w:?} is writable");
    }
    assert!(p.landlock.read_write.contains(&PathBuf::from("/mnt/data")));
    assert!(!p
        .landlock
        .read_write
        .iter()
        .any(|w| w.starts_with("/etc") || w.starts_with("/usr")));
    assert!(!p.landlock.execute.contains(&PathBuf::from("/etc")));
    assert_eq!(p.seccomp_profile_path, "seccomp/default.json");
}

#[test]
fn profile_hidden_paths_are_masked() {
    let f = fixture();
    let mut input = f.input("shell");
    input.hidden_paths = vec![".env".into(), "~/.netrc".into(), "/opt/secret".into()];
    let p = plan::plan(&input).unwrap();
    let hidden = masked(&p);
    for h in ["/workspace/.env", "/home/agent/.netrc", "/opt/secret"] {
        assert!(hidden.iter().any(|x| x == h), "{h}");
    }
}

#[test]
fn spec_round_trips_through_oci_spec_json() {
    let f = fixture();
    f.claude_dir();
    let mut input = f.input("claude-code");
    input.resources.memory_bytes = Some(1 << 30);
    input.resources.pids = Some(100);
    input.terminal = true;
    let p = plan::plan(&input).unwrap();
    let json = serde_json::to_string_pretty(&p.spec).unwrap();
    let back: Spec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p.spec);
    let file = f.sandbox.join("config.json");
    std::fs::create_dir_all(&f.sandbox).unwrap();
    p.spec.save(&file).unwrap();
    assert_eq!(Spec::load(&file).unwrap(), p.spec);
    // Field names are the OCI ones, as other runtimes read them.
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert_eq!(v["linux"]["uidMappings"][0]["containerID"], 1000);
    assert!(v["linux"]["maskedPaths"].is_array());
    assert_eq!(v["annotations"]["run.lasso.agent"], "claude-code");
}

#[test]
fn bad_workspace_is_refused_with_the_path_and_fix() {
    let f = fixture();
    let mut input = f.input("shell");
    input.workspace = f.ws.join("nope");
    let e = plan::plan(&input).unwrap_err().to_string();
    assert!(
        e.contains("--dir") && e.contains("nope") && e.contains("no such directory"),
        "{e}"
    );

    let file = f.ws.join("file");
    std::fs::write(&file, "").unwrap();
    input.workspace = file;
    let e = plan::plan(&input).unwrap_err().to_string();
    assert!(e.contains("not a directory"), "{e}");

    for broad in [PathBuf::from("/"), f.home.clone(), PathBuf::from("/etc")] {
        input.workspace = broad.clone();
        let e = plan::plan(&input).unwrap_err();
        assert!(
            matches!(e, PlanError::WorkspaceTooBroad { .. }),
            "{broad:?}: {e}"
        );
        assert!(e.to_string().contains("--force-dir"), "{e}");
    }
    input.workspace = f.home.clone();
    input.force_dir = true;
    assert!(plan::plan(&input).is_ok());
}

/// Root reads through any mode bits, so under root this test runs itself again as `nobody`.
#[test]
fn unreadable_workspace_is_refused() {
    const INNER: &str = "LASSO_TEST_UNREADABLE_WS";
    if let Ok(ws) = std::env::var(INNER) {
        let ws = PathBuf::from(ws);
        let mut host = HostContext::current();
        host.home = ws.parent().unwrap().to_path_buf();
        let input = PlanInput::new(
            agents::find("shell").unwrap(),
            ws.clone(),
            ws.parent().unwrap().join("sb"),
            host,
        );
        let e = plan::plan(&input).unwrap_err();
        assert!(matches!(e, PlanError::WorkspaceUnreadable { .. }), "{e}");
        assert!(e.to_string().contains("cannot read"), "{e}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::set_permissions(&ws, std::fs::Permissions::from_mode(0o000)).unwrap();
    let test_bin = std::env::current_exe().unwrap();
    let mut cmd = if nix::unistd::getuid().is_root() {
        nix::unistd::chown(&ws, Some(65534.into()), Some(65534.into())).unwrap();
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&test_bin);
        c
    } else {
        std::process::Command::new(&test_bin)
    };
    let out = cmd
        .args(["--exact", "unreadable_workspace_is_refused", "--nocapture"])
        .env(INNER, &ws)
        .output()
        .unwrap();
    std::fs::set_permissions(&ws, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

#[test]
fn bad_env_input_is_refused_by_flag_and_line() {
    let f = fixture();
    let envf = f.ws.join("bad.env");
    std::fs::write(&envf, "A=1\nnot a line\n").unwrap();
    let mut input = f.input("shell");
    input.env.files = vec![envf.clone()];
    let e = plan::plan(&input).unwrap_err().to_string();
    assert!(e.contains(&format!("{}:2:", envf.display())), "{e}");
    let mut input = f.input("shell");
    input.env.set = vec!["1X=2".into()];
    let e = plan::plan(&input).unwrap_err().to_string();
    assert!(e.contains("--env 1X=2"), "{e}");
}

#[test]
fn agent_config_symlinked_to_a_host_secret_is_not_mounted() {
    let f = fixture();
    std::os::unix::fs::symlink("/etc", f.home.join(".claude")).unwrap();
    let p = plan::plan(&f.input("claude-code")).unwrap();
    assert!(mount_at(&p, "/home/agent/.claude").is_none());
    assert!(mount_at(&p, "/home/agent/.claude/settings.json").is_none());
    assert!(
        !p.host_prep.iter().any(|s| matches!(
            s,
            HostPrep::CreateFile { path, .. } | HostPrep::CreateDir { path, .. }
                if path.starts_with(f.home.join(".claude"))
        )),
        "would create files through the link, in /etc"
    );
    assert!(
        p.warnings.iter().any(|w| w.contains(".claude")),
        "{:?}",
        p.warnings
    );
}
