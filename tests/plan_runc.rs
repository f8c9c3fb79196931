//! Kernel witnesses for the plan: a planned Spec is run for real, and a script inside reports
//! what the kernel lets it do. Until lasso's own engine lands, runc (Debian's, already on the
//! test hosts) stands in for it, with one change it needs: runc's init must become root inside
//! the user namespace before it drops to the process user, so container root gets one unused
//! host ID (100000). The agent's own mapping (1000 -> the workspace owner) is untouched.
//! Root only (runc runs rootful here); skipped with a message otherwise.

use lasso::agents;
use lasso::plan::{self, HostContext, PlanInput, PlannedSandbox};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const OWNER: u32 = 4321;

fn runnable() -> bool {
    if !nix::unistd::getuid().is_root() {
        eprintln!("skipped: needs root to run runc");
        return false;
    }
    if Command::new("runc").arg("--version").output().is_err() {
        eprintln!("skipped: runc is not installed (apt-get install -y runc)");
        return false;
    }
    true
}

/// Deletes the container (and so its cgroups) however the test ends.
struct Container {
    root: PathBuf,
    id: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id])
            .output();
    }
}

struct World {
    tmp: tempfile::TempDir,
    home: PathBuf,
    ws: PathBuf,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    // Container root (host 100000) walks this path while mounting.
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = base.join("home");
    let ws = home.join("project");
    std::fs::create_dir_all(&ws).unwrap();
    let claude = home.join(".claude");
    std::fs::create_dir_all(claude.join("hooks")).unwrap();
    std::fs::write(claude.join("settings.json"), "{}").unwrap();
    std::fs::write(claude.join(".credentials.json"), "old").unwrap();
    std::fs::write(home.join("secret-in-home"), "s").unwrap();
    Command::new("chown")
        .args(["-R", &format!("{OWNER}:{OWNER}")])
        .arg(&home)
        .status()
        .unwrap();
    World { tmp, home, ws }
}

/// Plans `script` for the Claude Code agent as if lasso were run by host user OWNER, prepares
/// the host, runs it under runc and returns (stdout, the plan).
fn run(w: &World, script: &str) -> (String, PlannedSandbox) {
    let base = w.tmp.path().canonicalize().unwrap();
    let host = HostContext {
        uid: OWNER,
        gid: OWNER,
        home: w.home.clone(),
        env: BTreeMap::new(),
        path: "/usr/bin:/bin".into(),
        nofile_hard: 1024,
    };
    let mut input = PlanInput::new(
        agents::find("claude-code").unwrap(),
        w.ws.clone(),
        base.join("sandbox"),
        host,
    );
    input.command = Some(vec!["/bin/sh".into(), "-c".into(), script.into()]);
    input.resources.pids = Some(64);
    let p = plan::plan(&input).unwrap();
    plan::prepare_host(&p).unwrap();

    let mut spec = serde_json::to_value(&p.spec).unwrap();
    let root_map = serde_json::json!({"containerID": 0, "hostID": 100000, "size": 1});
    for key in ["uidMappings", "gidMappings"] {
        spec["linux"][key]
            .as_array_mut()
            .unwrap()
            .insert(0, root_map.clone());
    }
    let id = format!("lasso-test-{}", p.id);
    spec["linux"]["cgroupsPath"] = format!("/{id}").into();
    let bundle = base.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), spec.to_string()).unwrap();

    let state = base.join("runc-state");
    let _guard = Container {
        root: state.clone(),
        id: id.clone(),
    };
    let out = Command::new("runc")
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "runc failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout, p)
}

fn report(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Each probe prints NAME=ok or NAME=denied.
const PROBES: &str = r#"
t() { n=$1; shift; if "$@" >/dev/null 2>&1; then echo "$n=ok"; else echo "$n=denied"; fi; }
t write_usr touch /usr/lasso-probe
t write_etc sh -c 'echo x >> /etc/passwd'
t write_root_fs touch /lasso-probe
t write_proc_sys sh -c 'echo 1 > /proc/sys/kernel/ns_last_pid'
t write_claude_settings sh -c 'echo x >> /home/agent/.claude/settings.json'
t replace_claude_hooks sh -c 'rm -rf /home/agent/.claude/hooks'
t write_claude_credentials sh -c 'echo new > /home/agent/.claude/.credentials.json'
t mount_tmpfs mount -t tmpfs none /tmp
t remount_usr_rw mount -o remount,rw /usr
t chown_to_root chown 0 /workspace
t raw_socket python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)'
t write_workspace touch /workspace/made-inside
t write_tmp touch /tmp/x
t write_home touch /home/agent/x
echo "shadow_bytes=$(cat /etc/shadow 2>/dev/null | wc -c)"
echo "kcore_bytes=$(head -c 16 /proc/kcore 2>/dev/null | wc -c)"
echo "root_dir=$(test -e /root && echo present || echo absent)"
echo "homes=$(ls /home | tr '\n' ' ')"
echo "home_secret=$(test -e /home/agent/secret-in-home && echo present || echo absent)"
echo "uid=$(id -u) gid=$(id -g)"
echo "user=$(id -un)"
echo "capeff=$(awk '/^CapEff/ {print $2}' /proc/self/status)"
echo "capbnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)"
echo "nonewprivs=$(awk '/^NoNewPrivs/ {print $2}' /proc/self/status)"
echo "hostname=$(hostname)"
echo "pid1=$(cat /proc/1/comm)"
echo "netdevs=$(ls /sys/class/net | tr '\n' ' ')"
"#;

#[test]
fn kernel_enforces_the_planned_host_view() {
    if !runnable() {
        return;
    }
    let w = world();
    let (out, p) = run(&w, PROBES);
    let r = report(&out);
    let get = |k: &str| r.get(k).map(String::as_str).unwrap_or("<missing>");

    for denied in [
        "write_usr",
        "write_etc",
        "write_root_fs",
        "write_proc_sys",
        "write_claude_settings",
        "replace_claude_hooks",
        "mount_tmpfs",
        "remount_usr_rw",
        "chown_to_root",
    ] {
        assert_eq!(get(denied), "denied", "{denied}\n{out}");
    }
    for ok in [
        "write_workspace",
        "write_tmp",
        "write_home",
        "write_claude_credentials",
    ] {
        assert_eq!(get(ok), "ok", "{ok}\n{out}");
    }
    if Path::new("/usr/bin/python3").exists() {
        assert_eq!(get("raw_socket"), "denied", "{out}");
    }
    assert_eq!(get("shadow_bytes"), "0", "/etc/shadow is readable\n{out}");
    assert_eq!(get("kcore_bytes"), "0", "{out}");
    assert_eq!(get("root_dir"), "absent", "{out}");
    assert_eq!(get("homes").trim(), "agent", "{out}");
    assert_eq!(get("home_secret"), "absent", "{out}");
    assert_eq!(get("uid"), "1000 gid=1000", "{out}");
    assert_eq!(get("user"), "agent", "{out}");
    assert_eq!(get("capeff"), "0000000000000000", "{out}");
    assert_eq!(get("capbnd"), "0000000000000000", "{out}");
    assert_eq!(get("nonewprivs"), "1", "{out}");
    assert_eq!(get("hostname"), p.id.hostname(), "{out}");
    assert_eq!(get("pid1"), "sh", "the host's processes are visible\n{out}");
    assert_eq!(get("netdevs").trim(), "lo", "{out}");

    // Host side: the agent's files belong to the workspace owner; settings are untouched.
    let made = w.ws.join("made-inside");
    let meta = std::fs::metadata(&made).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (OWNER, OWNER));
    let claude = w.home.join(".claude");
    assert_eq!(
        std::fs::read_to_string(claude.join("settings.json")).unwrap(),
        "{}"
    );
    assert!(claude.join("hooks").is_dir());
    assert_eq!(
        std::fs::read_to_string(claude.join(".credentials.json")).unwrap(),
        "new\n"
    );
    assert!(!Path::new("/usr/lasso-probe").exists());
}
