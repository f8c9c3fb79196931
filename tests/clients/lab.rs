//! The Lab: temp dir, private mount namespace, our own cgroup subtree, and the teardown that
//! removes all of them, also when a scenario panicked.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use super::teardown::Leftovers;
use super::teardown::{remove_one_fs, unescape_mount_path};

pub struct Lab {
    /// Canonical path of the temp dir; everything the clients write lives below it.
    pub dir: PathBuf,
    /// Name of our cgroup subtree in every hierarchy (`lasso-clients-<pid>-<client>`).
    pub cgroup: String,
    /// `cgroup.procs` of the subtree's `harness` group, as a C string for `pre_exec`.
    harness_procs: CString,
    daemons: Vec<(String, Child)>,
    /// Host paths we bound lab directories over, in this namespace (unmounted at teardown).
    binds: Vec<PathBuf>,
    /// Host directories made only to shadow them (removed at teardown).
    created_mount_points: Vec<PathBuf>,
}

/// The mounted cgroup hierarchies: every v1 controller directory plus the unified one.
pub(super) fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("cgroup.procs").exists() && !p.is_symlink())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The hierarchy that tracks our processes: v1 `pids` (present on hybrid hosts) or cgroup2.
fn tracking_hierarchy() -> PathBuf {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        root.to_path_buf()
    } else if root.join("pids/cgroup.procs").exists() {
        root.join("pids")
    } else {
        root.join("unified")
    }
}

impl Lab {
    /// Makes the lab for `client`. Moves the calling thread into a private mount namespace:
    /// every process it starts from now on (daemons, shims, conmon, containers) mounts there.
    pub fn new(client: &str) -> Lab {
        // unshare(CLONE_NEWNS) affects only this thread (it implies CLONE_FS), so the rest of
        // the test binary keeps the host's namespace; the namespace dies with its last process.
        unshare(CloneFlags::CLONE_NEWNS)
            .expect("unshare(CLONE_NEWNS) for a private mount namespace");
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .expect("make / rprivate in the test's mount namespace");

        let tmp = tempfile::Builder::new()
            .prefix(&format!("lasso-clients-{client}-"))
            .tempdir()
            .expect("temp dir");
        let dir = tmp.keep().canonicalize().expect("canonical temp dir");
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod temp dir");

        // Clients keep some state at fixed paths under /run whatever their config says (podman
        // its network run dir, runc under podman its state, containerd's shims their sockets
        // in /run/containerd/s). In this namespace /run is the lab's own directory, so none of
        // it reaches the host's /run or outlives the test.
        let run = dir.join("host-run");
        std::fs::create_dir_all(&run).expect("lab /run");
        mount(
            Some(&run),
            "/run",
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .expect("bind the lab's /run over /run in the test's mount namespace");

        // Unique per Lab: two tests of one binary may each run a lab at the same time.
        static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cgroup = format!("lasso-clients-{}-{client}{n}", std::process::id());
        let harness = tracking_hierarchy().join(&cgroup).join("harness");
        std::fs::create_dir_all(&harness)
            .unwrap_or_else(|e| panic!("create our cgroup {}: {e}", harness.display()));
        let harness_procs = CString::new(
            harness
                .join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .expect("cgroup path has no NUL");
        Lab {
            dir,
            cgroup,
            harness_procs,
            daemons: Vec::new(),
            binds: vec![PathBuf::from("/run")],
            created_mount_points: Vec::new(),
        }
    }

    /// Hides the host directory `host_dir` behind an empty lab directory, in this thread's
    /// mount namespace only: for files a client writes at a fixed path whatever its flags
    /// (dockerd 20.10 its trust key in /etc/docker, podman's image loader its blob cache in
    /// /var/lib/containers/cache). A mount point we had to create is removed at teardown.
    pub fn shadow(&mut self, host_dir: &str) -> Result<(), String> {
        let own = self
            .dir
            .join("shadow")
            .join(host_dir.trim_start_matches('/'));
        std::fs::create_dir_all(&own).map_err(|e| format!("{}: {e}", own.display()))?;
        if !Path::new(host_dir).exists() {
            std::fs::create_dir(host_dir).map_err(|e| format!("mount point {host_dir}: {e}"))?;
            self.created_mount_points.push(PathBuf::from(host_dir));
        }
        mount(
            Some(&own),
            host_dir,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind {} over {host_dir}: {e}", own.display()))?;
        self.binds.push(PathBuf::from(host_dir));
        Ok(())
    }

    /// What teardown must have removed, to check after the Lab is dropped.
    pub fn witness(&self) -> Leftovers {
        Leftovers {
            dir: self.dir.clone(),
            cgroup: self.cgroup.clone(),
            mount_points: self.created_mount_points.clone(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// A command whose process (and all it forks, unless a runtime moves them on) is placed
    /// in our harness cgroup before it runs, so teardown finds it.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let procs = self.harness_procs.clone();
        // SAFETY: the closure runs between fork and exec; it only makes raw open/write/close
        // system calls on a path allocated before the fork (no allocation, no locks).
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let r = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if r != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Starts a daemon whose output goes to `<dir>/<name>.log`, tracked for teardown.
    pub fn spawn_daemon(&mut self, name: &str, mut cmd: Command) -> Result<(), String> {
        // If the test thread dies without teardown (the test binary killed), the daemon dies
        // with it instead of holding our mounts and cgroups.
        // SAFETY: prctl between fork and exec, no allocation.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let log = std::fs::File::create(self.path(&format!("{name}.log")))
            .map_err(|e| format!("{name}.log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = cmd.spawn().map_err(|e| format!("start {name}: {e}"))?;
        self.daemons.push((name.to_string(), child));
        Ok(())
    }

    /// The last lines a daemon logged (for error messages).
    pub fn daemon_log_tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Whether a daemon we started is still running.
    pub fn daemon_running(&mut self, name: &str) -> bool {
        self.daemons
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, c)| matches!(c.try_wait(), Ok(None)))
            .unwrap_or(false)
    }

    /// Stops the daemons we started (SIGTERM, then SIGKILL after 15 s), newest first.
    pub fn stop_daemons(&mut self) {
        while let Some((_, mut child)) = self.daemons.pop() {
            let pid = Pid::from_raw(child.id() as i32);
            let _ = kill(pid, Signal::SIGTERM);
            let end = Instant::now() + Duration::from_secs(15);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    /// Every cgroup directory of our subtree, in every hierarchy, deepest first.
    fn our_cgroups(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        walk(&e.path(), out);
                    }
                }
            }
            out.push(dir.to_path_buf());
        }
        let mut out = Vec::new();
        for h in hierarchies() {
            let top = h.join(&self.cgroup);
            if top.is_dir() {
                walk(&top, &mut out);
            }
        }
        out
    }

    /// PIDs of every process left in our cgroup subtree: all were started by us or by the
    /// clients we started (shims, conmon, containers).
    pub fn leftover_pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .our_cgroups()
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Kills what is left in our subtree (thawing frozen groups first, or a SIGKILL would
    /// wait forever), then removes the cgroups. Returns what could not be removed.
    fn remove_cgroups(&self) -> Vec<String> {
        for d in self.our_cgroups() {
            for (file, thawed) in [("freezer.state", "THAWED"), ("cgroup.freeze", "0")] {
                if d.join(file).exists() {
                    let _ = std::fs::write(d.join(file), thawed);
                }
            }
        }
        for _ in 0..100 {
            let pids = self.leftover_pids();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut failed = Vec::new();
        for d in self.our_cgroups() {
            let mut ok = false;
            for _ in 0..40 {
                if std::fs::remove_dir(&d).is_ok() || !d.exists() {
                    ok = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !ok {
                failed.push(d.display().to_string());
            }
        }
        failed
    }

    /// Unmounts everything mounted under the temp dir in this thread's namespace, deepest first.
    fn unmount_all(&self) {
        for _ in 0..5 {
            let info = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap_or_default();
            let mut points: Vec<PathBuf> = info
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .map(unescape_mount_path)
                .filter(|p| p.starts_with(&self.dir))
                .collect();
            if points.is_empty() {
                return;
            }
            points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for p in points {
                let _ = umount2(&p, MntFlags::MNT_DETACH);
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_daemons();
        let cg = self.remove_cgroups();
        self.unmount_all();
        for p in self.binds.drain(..).rev() {
            let _ = umount2(&p, MntFlags::MNT_DETACH);
        }
        for p in self.created_mount_points.drain(..).rev() {
            let _ = std::fs::remove_dir(&p);
        }
        let kept = remove_one_fs(&self.dir);
        if !cg.is_empty() || !kept.is_empty() {
            eprintln!(
                "teardown left behind: cgroups {cg:?}, files {kept:?} (a bug in the harness)"
            );
        }
    }
}
