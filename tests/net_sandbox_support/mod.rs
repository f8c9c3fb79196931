//! Starting a real `lasso run` inside the fake internet of `net_support`: lasso (and so its
//! monitor, pasta and resolver) runs in the test's world namespace, in a private mount namespace
//! where `/etc/resolv.conf` names the world's DNS server (the host's upstream, as lasso sees it)
//! and, for the rootless run, `/dev/net/tun` is a 0666 node as most distributions ship it (this
//! machine's is 0600, which no unprivileged pasta can open). Nothing touches the machine's own
//! network namespace or mount table.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The shell run by `unshare --mount --propagation private` before lasso: bind the world's
/// resolv.conf, give pasta a usable tun node, then become the real command.
const PREP: &str = r#"set -e
mount --bind "$1" /etc/resolv.conf
if [ "$4" = open-tun ]; then
  mount -t tmpfs -o mode=0755 lasso-tun "$2"
  mknod -m 0666 "$2/tun" c 10 200
  mount --bind "$2/tun" /dev/net/tun
fi
export PATH="$3"
shift 4
exec "$@"
"#;

/// Rewrites `cmd` (a `lasso ...` command from `sandbox_support`, as root or through setpriv)
/// so that it runs inside `world`'s namespace and a private mount namespace prepared by `PREP`.
pub fn in_world(world: &crate::net_support::World, base: &Path, cmd: &Command) -> Command {
    in_world_tun(world, base, cmd, true)
}

/// As `in_world`; `open_tun` false keeps the machine's own /dev/net/tun.
pub fn in_world_tun(
    world: &crate::net_support::World,
    base: &Path,
    cmd: &Command,
    open_tun: bool,
) -> Command {
    let conf = base.join("world-resolv.conf");
    std::fs::write(
        &conf,
        format!("nameserver {}\n", crate::net_support::WORLD_DNS),
    )
    .unwrap();
    let tun_dir: PathBuf = base.join("tun");
    std::fs::create_dir_all(&tun_dir).unwrap();
    // The command's own PATH (a test may hide pasta from lasso) is restored just before exec;
    // the preparation's tools come from the system directories.
    let mut path = OsString::from("/usr/bin:/bin");
    let program = which(cmd.get_program());
    let mut c = world.ns.command("/usr/bin/unshare");
    c.env_clear();
    for (k, v) in cmd.get_envs() {
        match (k.to_str(), v) {
            (Some("PATH"), Some(v)) => path = v.to_os_string(),
            (_, Some(v)) => {
                c.env(k, v);
            }
            _ => {}
        }
    }
    c.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    c.args([
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        PREP,
        "prep",
    ])
    .arg(&conf)
    .arg(&tun_dir)
    .arg(path)
    .arg(if open_tun { "open-tun" } else { "host-tun" })
    .arg(program)
    .args(cmd.get_args());
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c
}

fn which(program: &std::ffi::OsStr) -> PathBuf {
    let p = Path::new(program);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(p))
        .find(|c| c.exists())
        .unwrap_or_else(|| p.to_path_buf())
}

/// `KEY=VALUE` lines of the probe's output.
pub fn lines(stdout: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The audit entries of one sandbox's log, parsed.
pub fn audit_entries(dir: &Path) -> (String, Vec<serde_json::Value>) {
    let logs: Vec<OsString> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with(".jsonl"))
        .collect();
    assert_eq!(logs.len(), 1, "one sandbox, one log: {logs:?}");
    let name = logs[0].to_string_lossy().to_string();
    let entries = std::fs::read_to_string(dir.join(&name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (name.trim_end_matches(".jsonl").to_string(), entries)
}
