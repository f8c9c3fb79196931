//! Shared by the gate's integration tests: a helper process that forks a command under the
//! exec gate (seccomp listener + ptrace verifier, no engine), with a test decider that blocks
//! named files by identity, and an audit sink that writes JSON lines the test reads back.
//!
//! The helper is the test binary itself, re-run with `--exact helper_process`: the monitor's
//! tracer waits for its tracees, which must not share a process with libtest's other tests.

#![allow(dead_code)]

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use lasso::gate::{
    self, ExeIdentity, ExecAudit, ExecDecider, ExecOutcome, ExecRequest, GateVerdict,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const BLOCKED_ARG: &str = "forbidden";

/// What a gated run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub audit: Vec<Value>,
}

impl Run {
    pub fn entries(&self, outcome: &str) -> Vec<&Value> {
        self.audit
            .iter()
            .filter(|e| e["outcome"] == outcome)
            .collect()
    }
    /// Audit entries (refused or killed) whose argv mentions `needle`.
    pub fn stopped_with(&self, needle: &str) -> Vec<&Value> {
        self.audit
            .iter()
            .filter(|e| e["outcome"] != "ran")
            .filter(|e| {
                e["argv"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|s| s.as_str().is_some_and(|s| s.contains(needle)))
                })
            })
            .collect()
    }
}

/// Runs `argv` in `dir`, gated (or not, for the "as outside" comparison), blocking the files
/// in `block` (by path, device/inode, content hash and name).
pub fn run(dir: &Path, argv: &[&str], block: &[&Path], gated: bool) -> Run {
    let audit = dir.join(format!("audit-{}.jsonl", unique()));
    let out = dir.join(format!("out-{}", unique()));
    let err = dir.join(format!("err-{}", unique()));
    let block: Vec<String> = block.iter().map(|p| p.display().to_string()).collect();
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LASSO_GATE_HELPER", "1")
        .env("LASSO_GATE_ARGV", serde_json::to_string(argv).unwrap())
        .env("LASSO_GATE_DIR", dir)
        .env("LASSO_GATE_AUDIT", &audit)
        .env("LASSO_GATE_OUT", &out)
        .env("LASSO_GATE_ERR", &err)
        .env("LASSO_GATE_BLOCK", serde_json::to_string(&block).unwrap())
        .env("LASSO_GATE_ON", if gated { "1" } else { "0" })
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run the helper");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(st) = helper.try_wait().unwrap() {
            break st;
        }
        // A hung tree must not hang the suite: killing the helper (the tracer) kills every
        // tracee with it (PTRACE_O_EXITKILL).
        if started.elapsed() > std::time::Duration::from_secs(300) {
            let _ = helper.kill();
            let _ = helper.wait();
            panic!("the gated command {argv:?} did not finish");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: read(&out),
        stderr: read(&err),
        audit: read(&audit)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    };
    for p in [&audit, &out, &err] {
        let _ = std::fs::remove_file(p);
    }
    run
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: the exec gate tests need root (ptrace of the tree, /proc/PID/mem)");
    false
}

/// Compiles one of the C programs under tests/gate_progs into `out`.
pub fn compile(src: &str, out: &Path, defines: &[String]) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/gate_progs")
        .join(src);
    let st = Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(out)
        .arg(&src)
        .args(defines)
        .status()
        .expect("cc is needed to build the gate's test programs");
    assert!(st.success(), "compiling {}", src.display());
}

// ---- inside the helper process ----

/// Runs the helper when this process was started as one, and exits; returns otherwise.
pub fn helper_main() {
    if std::env::var_os("LASSO_GATE_HELPER").is_none() {
        return;
    }
    let code = helper().unwrap_or_else(|e| {
        eprintln!("gate test helper: {e}");
        125
    });
    std::process::exit(code);
}

fn helper() -> Result<i32, String> {
    let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} missing"));
    let argv: Vec<String> =
        serde_json::from_str(&var("LASSO_GATE_ARGV")?).map_err(|e| e.to_string())?;
    let block: Vec<String> =
        serde_json::from_str(&var("LASSO_GATE_BLOCK")?).map_err(|e| e.to_string())?;
    let gated = var("LASSO_GATE_ON")? == "1";
    let baseline = std::env::var("LASSO_GATE_BASELINE").is_ok_and(|v| v == "1");
    let dir = CString::new(var("LASSO_GATE_DIR")?).unwrap();
    let out = File::create(var("LASSO_GATE_OUT")?).map_err(|e| e.to_string())?;
    let err = File::create(var("LASSO_GATE_ERR")?).map_err(|e| e.to_string())?;
    let audit = Arc::new(JsonAudit(Mutex::new(
        File::create(var("LASSO_GATE_AUDIT")?).map_err(|e| e.to_string())?,
    )));
    let decider = Arc::new(BlockFiles::new(&block));
    let cargv: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_str()).unwrap())
        .collect();
    let mut ptrs: Vec<*const libc::c_char> = cargv.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let (ours, theirs) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| e.to_string())?;

    // SAFETY: the child only calls async-signal-safe functions (dup2, chdir, the gate's
    // allocation-free child half, execvp) before it execs or exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err("fork failed".into());
    }
    if pid == 0 {
        // SAFETY: plain system calls on descriptors and buffers prepared before the fork.
        unsafe {
            libc::dup2(out.as_raw_fd(), 1);
            libc::dup2(err.as_raw_fd(), 2);
            if libc::chdir(dir.as_ptr()) != 0 {
                libc::_exit(124);
            }
            if baseline {
                // The sandbox's own seccomp baseline, reduced to its cost: an allow-all filter,
                // so that benchmarks compare the gate against a sandbox that already pays the
                // kernel's seccomp entry path.
                let allow = [libc::sock_filter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_ALLOW,
                }];
                let prog = libc::sock_fprog {
                    len: 1,
                    filter: allow.as_ptr() as *mut libc::sock_filter,
                };
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog) != 0 {
                    libc::_exit(122);
                }
            }
            if gated {
                let Ok(listener) = gate::install_in_child() else {
                    libc::_exit(120)
                };
                if gate::send_listener(theirs.as_fd(), listener).is_err() {
                    libc::_exit(121);
                }
            }
            libc::execvp(ptrs[0], ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    drop(theirs);
    let status = if gated {
        let listener = gate::recv_listener(ours.as_fd()).map_err(|e| e.to_string())?;
        gate::Monitor::run(pid, listener, decider, audit, || {
            gate::ack_traced(ours.as_fd())
        })
        .map_err(|e| e.to_string())?
        .ok_or("the root's status was not seen")?
    } else {
        let mut st = 0;
        // SAFETY: waits for the child we just forked.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        st
    };
    keep(ours);
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    })
}

fn keep(_: OwnedFd) {}

/// The test policy: a file is blocked when it is one of the listed files by device and inode
/// or by content, or carries one of their names (as a path's basename or a busybox applet);
/// a script is blocked when any interpreter is; the loader when its target is (or cannot be
/// found); any command with the forbidden argument is blocked.
struct BlockFiles {
    ids: HashSet<(u64, u64)>,
    hashes: HashSet<[u8; 32]>,
    names: HashSet<Vec<u8>>,
}

impl BlockFiles {
    fn new(paths: &[String]) -> BlockFiles {
        let mut b = BlockFiles {
            ids: HashSet::new(),
            hashes: HashSet::new(),
            names: HashSet::new(),
        };
        for p in paths {
            let m = std::fs::metadata(p).expect("blocked file exists");
            b.ids.insert((m.dev(), m.ino()));
            b.hashes
                .insert(Sha256::digest(std::fs::read(p).unwrap()).into());
            b.names
                .insert(PathBuf::from(p).file_name().unwrap().as_bytes().to_vec());
        }
        b
    }

    fn why(&self, e: &ExeIdentity) -> Option<String> {
        let name = e
            .resolved
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        if self.ids.contains(&(e.dev, e.ino)) {
            return Some(format!("{} is a blocked program", e.resolved.display()));
        }
        if e.sha256.is_some_and(|h| self.hashes.contains(&h)) {
            return Some(format!(
                "{} has the content of a blocked program",
                e.resolved.display()
            ));
        }
        if self.names.contains(&name) {
            return Some(format!(
                "{} is named like a blocked program",
                e.resolved.display()
            ));
        }
        if let Some(a) = &e.applet {
            if self.names.contains(a.as_bytes()) {
                return Some(format!("applet {a} is blocked"));
            }
        }
        for i in &e.interpreters {
            if let Some(w) = self.why(&i.exe) {
                return Some(format!("script interpreter: {w}"));
            }
        }
        if let Some(t) = &e.loader_target {
            return match &t.exe {
                None => Some("the loader's target cannot be identified".into()),
                Some(x) => self.why(x).map(|w| format!("run through the loader: {w}")),
            };
        }
        None
    }
}

impl ExecDecider for BlockFiles {
    fn decide(&self, req: &ExecRequest) -> GateVerdict {
        if let Some(w) = self.why(&req.exe) {
            return GateVerdict::block(w, Some("test:block-files".into()));
        }
        if req
            .argv
            .iter()
            .any(|a| a.starts_with(BLOCKED_ARG.as_bytes()))
        {
            return GateVerdict::block("forbidden argument", Some("test:forbidden-arg".into()));
        }
        GateVerdict::allow("not blocked", None)
    }

    fn memoizable(&self) -> bool {
        true
    }
}

struct JsonAudit(Mutex<File>);

impl ExecAudit for JsonAudit {
    fn exec(&self, req: &ExecRequest, verdict: &GateVerdict, outcome: ExecOutcome) {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let line = json!({
            "outcome": match outcome {
                ExecOutcome::Ran => "ran",
                ExecOutcome::Refused => "refused",
                ExecOutcome::KilledMismatch => "killed_mismatch",
            },
            "pid": req.pid,
            "ppid": req.ppid,
            "path": s(&req.path),
            "exe": req.exe.resolved.display().to_string(),
            "applet": req.exe.applet,
            "memfd": req.exe.memfd,
            "interpreters": req.exe.interpreters.iter().map(|i| s(&i.path)).collect::<Vec<_>>(),
            "loader_target": req.exe.loader_target.as_ref().map(|t| s(&t.arg)),
            "argv": req.argv.iter().map(|a| s(a)).collect::<Vec<_>>(),
            "allow": verdict.allow,
            "reason": verdict.reason,
        });
        // One write per entry: a formatter writing piece by piece would cost dozens of system
        // calls per exec and show up in the gate's benchmark as the gate's own cost.
        let mut text = line.to_string();
        text.push('\n');
        let mut f = self.0.lock().unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
}
