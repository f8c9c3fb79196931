//! Shared by the sandbox tests: a world of host files to attack (a home with SSH keys and
//! Claude Code settings, another user's file, a project), running `lasso` as root or as an
//! unprivileged user (nobody, through setpriv), and reading the probes' reports.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const LASSO: &str = env!("CARGO_BIN_EXE_lasso");
pub const NOBODY: u32 = 65534;
/// The workspace owner when the test runs lasso as root (the agent maps to it).
pub const OWNER: u32 = 4321;

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Who runs lasso.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Root,
    Nobody,
}

pub struct World {
    pub tmp: tempfile::TempDir,
    pub base: PathBuf,
    pub home: PathBuf,
    pub ws: PathBuf,
    pub victim: PathBuf,
    pub who: As,
}

/// `chown -R` that tolerates entries vanishing meanwhile: a running sandbox's monitor creates
/// and removes files under the runtime dir while the test calls lasso again.
fn chown_r(path: &Path, id: u32) {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    if let Err(e) = std::os::unix::fs::lchown(path, Some(id), Some(id)) {
        assert!(gone(&e), "chown {}: {e}", path.display());
        return;
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if gone(&e) => return,
        Err(e) => panic!("stat {}: {e}", path.display()),
    };
    if !meta.is_dir() {
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(r) => r,
        Err(e) if gone(&e) => return,
        Err(e) => panic!("read {}: {e}", path.display()),
    };
    for entry in entries.flatten() {
        chown_r(&entry.path(), id);
    }
}

/// A home with secrets and agent settings, owned by the user lasso maps the agent to.
pub fn world(who: As) -> World {
    let tmp = tempfile::Builder::new()
        .prefix("lasso-sbx-")
        .tempdir_in("/tmp")
        .unwrap();
    let base = tmp.path().canonicalize().unwrap();
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = base.join("home");
    let ws = home.join("project");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), "PRIVATE KEY\n").unwrap();
    let claude = home.join(".claude");
    std::fs::create_dir_all(claude.join("hooks")).unwrap();
    std::fs::write(claude.join("settings.json"), "{}").unwrap();
    std::fs::write(claude.join(".credentials.json"), "{}").unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/sandbox_support/probes.py"
        ),
        ws.join("probes.py"),
    )
    .unwrap();
    let owner = match who {
        As::Root => OWNER,
        As::Nobody => NOBODY,
    };
    chown_r(&home, owner);
    let victim = base.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("secret"), "victim secret\n").unwrap();
    chown_r(&victim, 4242);
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o700)).unwrap();
    World {
        tmp,
        base,
        home,
        ws,
        victim,
        who,
    }
}

impl World {
    /// `lasso ARGS` as this world's user, in the project directory, with a clean environment.
    pub fn lasso(&self, args: &[&str]) -> Command {
        let mut c = match self.who {
            As::Root => Command::new(LASSO),
            As::Nobody => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups", LASSO]);
                c
            }
        };
        c.args(args)
            .current_dir(&self.ws)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("XDG_RUNTIME_DIR", self.base.join("xdg-run"))
            .env("LASSO_AUDIT_DIR", self.audit_dir())
            .env("LASSO_CONFIG_DIR", self.base.join("config"));
        if self.who == As::Nobody {
            for d in ["xdg-run", "audit", "config"] {
                let d = self.base.join(d);
                std::fs::create_dir_all(&d).unwrap();
                chown_r(&d, NOBODY);
            }
        }
        c
    }

    /// Where this world's sandboxes write their audit logs.
    pub fn audit_dir(&self) -> PathBuf {
        self.base.join("audit")
    }

    /// The id of this world's one audit log (asserts there is exactly one).
    pub fn only_log(&self) -> String {
        let logs: Vec<String> = std::fs::read_dir(self.audit_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".jsonl"))
            .collect();
        assert_eq!(logs.len(), 1, "{logs:?}");
        logs[0].trim_end_matches(".jsonl").to_string()
    }

    /// Asserts that `lasso audit verify ID` accepts sandbox `id`'s log and reports it sealed.
    pub fn assert_log_sealed(&self, id: &str) {
        let out = run(&mut self.lasso(&["audit", "verify", id]));
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("sealed"),
            "{}",
            text(&out)
        );
    }

    /// Every entry of audit log `log` (its first segment, `LOG.jsonl`), parsed.
    pub fn log_entries(&self, log: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.audit_dir().join(format!("{log}.jsonl")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `lasso audit verify LOG` passes and calls the log intact.
    pub fn assert_log_verifies(&self, log: &str) {
        let out = run(&mut self.lasso(&["audit", "verify", log]));
        assert!(out.status.success(), "{log}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("intact"),
            "{log}: {}",
            text(&out)
        );
    }

    /// Where this world's lasso keeps sandbox records.
    pub fn runtime(&self) -> PathBuf {
        match self.who {
            As::Root => PathBuf::from("/run/lasso"),
            As::Nobody => self.base.join("xdg-run/lasso"),
        }
    }
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("start lasso")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn report(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.trim().split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Sandbox directories under `runtime` whose record names `ws` as the project (tests as root
/// share /run/lasso, so each looks only for its own).
pub fn sandbox_dirs_of(runtime: &Path, ws: &Path) -> Vec<String> {
    std::fs::read_dir(runtime)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let rec = std::fs::read_to_string(e.path().join("record.json")).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&rec).unwrap_or_default();
            v["dir"].as_str() == Some(ws.to_str().unwrap())
        })
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect()
}

impl World {
    /// This world's sandboxes still on disk.
    pub fn leftovers(&self) -> Vec<String> {
        sandbox_dirs_of(&self.runtime(), &self.ws)
    }

    /// Whether this world's sandboxes get a network (and so a pasta) with the default profile:
    /// a rootless one needs a /dev/net/tun it may open (this machine's is mode 0600; without
    /// it the sandbox fails closed to no network, with a warning).
    pub fn gets_network(&self) -> bool {
        use std::os::unix::fs::PermissionsExt;
        self.who == As::Root
            || std::fs::metadata("/dev/net/tun")
                .is_ok_and(|m| m.permissions().mode() & 0o006 == 0o006)
    }

    /// The live pasta processes of sandbox `id`: those started with `--pid` naming the PID
    /// file in the sandbox's directory (how lasso itself finds them again).
    pub fn pastas(&self, id: &str) -> Vec<i32> {
        let pidfile = self.runtime().join(id).join("pasta.pid");
        let want = pidfile.to_str().unwrap().as_bytes();
        host_pids()
            .into_iter()
            .filter(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| {
                        s.rsplit(')')
                            .next()
                            .unwrap_or("")
                            .trim_start()
                            .starts_with('Z')
                    })
                    .unwrap_or(true);
                !zombie && args.windows(2).any(|w| w[0] == b"--pid" && w[1] == want)
            })
            .collect()
    }
}

/// The PIDs of every process the host's /proc lists now.
pub fn host_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// Polls `f` every 20 ms until it holds; fails the test after 20 s naming `what` (running
/// `$LASSO_TEST_DIAG` first, when set).
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        if std::time::Instant::now() >= end {
            // A program of the developer's that records the machine's state (processes, their
            // stacks) at the moment of a timeout, before the test's guards clean up.
            if let Some(d) = std::env::var_os("LASSO_TEST_DIAG") {
                let _ = Command::new(d).status();
            }
        }
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A tmux session of the test's, killed when dropped.
pub struct Tmux(pub String);
impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

/// Whether tmux is installed (the terminal tests skip without it).
pub fn has_tmux() -> bool {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: tmux is not installed");
        return false;
    }
    true
}

/// A 100x30 tmux session running `cmd` in the world's workspace with a minimal environment;
/// it prints `EXIT=<status>` when `cmd` ends and stays up a minute for the screen to be read.
pub fn tmux(name: &str, cmd: &str, w: &World) -> Tmux {
    let full = format!(
        "cd {} && env -i PATH=/usr/bin:/bin HOME={} {cmd}; echo EXIT=$?; sleep 60",
        w.ws.display(),
        w.home.display()
    );
    let ok = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "100",
            "-y",
            "30",
            &full,
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "tmux");
    Tmux(name.to_string())
}

/// What the session's screen shows now.
pub fn screen(name: &str) -> String {
    let o = Command::new("tmux")
        .args(["capture-pane", "-p", "-t", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Types `k` into the session (tmux key names allowed, e.g. "Enter", "C-p").
pub fn keys(name: &str, k: &[&str]) {
    Command::new("tmux")
        .args(["send-keys", "-t", name])
        .args(k)
        .status()
        .unwrap();
}
