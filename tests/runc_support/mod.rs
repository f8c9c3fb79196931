//! Test helpers for the lasso-runc integration suite: busybox bundles built in a tempdir from
//! Debian's busybox-static, a per-test `--root`, unique container ids, and a guard that kills
//! and deletes a container on every path (also when an assertion fails).
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub const BUSYBOX: &str = "/bin/busybox";

/// Whether the suite can run here: root, and busybox-static installed.
pub fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: the lasso-runc suite runs as root");
        return false;
    }
    if !Path::new(BUSYBOX).exists() {
        eprintln!("skipping: {BUSYBOX} missing (apt-get install -y busybox-static)");
        return false;
    }
    // Containers created by a `create` that exited are re-parented to us, so we can reap them.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    true
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lasso-runc")
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A container id unique to this test run.
pub fn unique_id(name: &str) -> String {
    format!(
        "ocitest-{name}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// A bundle directory with a busybox rootfs and a config.json made by `lasso-runc spec`.
pub struct Bundle {
    pub dir: tempfile::TempDir,
}

impl Bundle {
    /// A bundle that runs `sh -c script` without a terminal.
    pub fn new(script: &str) -> Bundle {
        Self::with_spec_args(script, false)
    }

    pub fn with_spec_args(script: &str, rootless: bool) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("ocitest-bundle")
            .tempdir()
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "tmp", "etc", "proc", "sys", "dev"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
        for applet in [
            "sh",
            "cat",
            "echo",
            "ls",
            "id",
            "hostname",
            "grep",
            "sleep",
            "true",
            "false",
            "touch",
            "mount",
            "readlink",
            "ps",
            "kill",
            "head",
            "wc",
            "stat",
            "tr",
            "mknod",
            "ulimit",
            "env",
            "pwd",
            "domainname",
            "od",
            "dd",
            "rm",
            "mkdir",
            "nc",
        ] {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            rootfs.join("etc/group"),
            "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
        )
        .unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("spec").arg("--bundle").arg(dir.path());
        if rootless {
            cmd.arg("--rootless");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let b = Bundle { dir };
        b.edit(|s| {
            // One top-level cgroup per container: under a shared parent (the default
            // /lasso/<id>), parallel tests race over who removes the parent.
            s["linux"]["cgroupsPath"] = Value::String(format!("/{}", unique_id("cg")));
            s["process"]["terminal"] = Value::Bool(false);
            s["process"]["args"] = serde_json::json!(["sh", "-c", script]);
        });
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn spec(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.path().join("config.json")).unwrap()).unwrap()
    }

    /// Changes config.json.
    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut spec = self.spec();
        f(&mut spec);
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap(),
        )
        .unwrap();
    }
}

/// A lasso-runc with its own `--root`.
pub struct Runc {
    pub root: tempfile::TempDir,
}

impl Runc {
    pub fn new() -> Runc {
        Runc {
            root: tempfile::Builder::new()
                .prefix("ocitest-root")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Runs lasso-runc with `args` and collects its output (stdio not inherited by a container).
    pub fn exec(&self, args: &[&str]) -> Output {
        self.cmd().args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// `run` of a bundle: exit code, stdout, stderr.
    pub fn run(&self, bundle: &Bundle, id: &str) -> (i32, String, String) {
        let _guard = Guard::new(self, id);
        let out = self
            .cmd()
            .args(["run", "--bundle"])
            .arg(bundle.path())
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `create` with the container's stdio going to files in the bundle (a pipe would keep the
    /// caller waiting for the container's end).
    pub fn create(&self, bundle: &Bundle, id: &str) -> Output {
        let out = std::fs::File::create(bundle.path().join("stdout")).unwrap();
        let err = std::fs::File::create(bundle.path().join("stderr")).unwrap();
        let status = self
            .cmd()
            .args(["create", "--bundle"])
            .arg(bundle.path())
            .arg(id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .unwrap();
        Output {
            status,
            stdout: std::fs::read(bundle.path().join("stdout")).unwrap(),
            stderr: std::fs::read(bundle.path().join("stderr")).unwrap(),
        }
    }

    pub fn status(&self, id: &str) -> String {
        let out = self.exec(&["state", id]);
        assert!(
            out.status.success(),
            "state: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["status"].as_str().unwrap().to_string()
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.exec(&["state", id]);
        assert!(
            out.status.success(),
            "state: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Waits (bounded) until the container reports `status`.
    pub fn wait_status(&self, id: &str, status: &str) -> bool {
        for _ in 0..200 {
            let out = self.exec(&["state", id]);
            if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                if v["status"] == status {
                    return true;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        false
    }
}

impl Runc {
    /// Host PID of the container's init as recorded at create (0 if unknown).
    pub fn init_pid(&self, id: &str) -> i32 {
        std::fs::read(self.root.path().join(id).join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["pid"].as_i64())
            .unwrap_or(0) as i32
    }

    /// Reaps the container's init if it was re-parented to this process and has exited. Only
    /// that PID: a wait for any child would steal other tests' exit statuses.
    pub fn reap(&self, id: &str) -> Option<nix::sys::wait::WaitStatus> {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        let pid = self.init_pid(id);
        if pid <= 0 {
            return None;
        }
        match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => None,
            Ok(st) => Some(st),
        }
    }
}

/// Whether `pid`, a child of this process, has exited (reaping it).
pub fn reaped(pid: i32) -> bool {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    !matches!(
        waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
        Ok(WaitStatus::StillAlive)
    )
}

/// Kills and deletes a container when dropped, whatever happened in the test.
pub struct Guard<'a> {
    runc: &'a Runc,
    id: String,
}

impl<'a> Guard<'a> {
    pub fn new(runc: &'a Runc, id: &str) -> Guard<'a> {
        Guard {
            runc,
            id: id.to_string(),
        }
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let pid = self.runc.init_pid(&self.id);
        let _ = self.runc.exec(&["delete", "--force", &self.id]);
        if pid > 0 {
            let _ = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(pid),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
        }
    }
}

/// Lines of the mount table that mention the test's marker: none may survive a test.
pub fn leftover_mounts(marker: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(marker))
        .map(String::from)
        .collect()
}
