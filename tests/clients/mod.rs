//! Harness for the real-client tests (`tests/clients_*.rs`): Podman, containerd's `ctr` and
//! Docker drive `runc` (the control) and `lasso-runc` (the subject) on this machine.
//!
//! It owns a `Lab`: one temp dir holding every config, store, socket and state file the clients
//! and their daemons write, a private mount namespace for the test thread (so their overlay and
//! shm mounts never reach the host's), and a cgroup subtree of our own that every process the
//! harness starts is placed in (so a failed test still leaves no daemon, shim or conmon behind:
//! they are killed by membership of a cgroup we created, never by name). Dropping the Lab kills
//! what is left in that subtree, removes the cgroups, unmounts everything under the temp dir
//! and deletes it without crossing into another file system. It must not touch cgroups, mounts
//! or processes it did not create.
//!
//! It also builds the test image locally from Debian's busybox-static: no registry is reachable.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod image;
pub mod kernel;
pub mod lab;
pub mod profile;
pub mod report;
pub mod scenarios;
pub mod teardown;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use kernel::{alive, KernelView};
pub use lab::Lab;
pub use report::Report;

/// One OCI runtime under test.
#[derive(Clone, Debug)]
pub struct Runtime {
    /// Name the client knows it by (`runc`, `lasso-runc`).
    pub name: &'static str,
    pub path: PathBuf,
}

/// The runtimes every scenario runs with: runc as the control, then lasso-runc when this
/// branch builds it. A missing lasso-runc is reported, never counted as a pass.
pub fn runtimes() -> Vec<Runtime> {
    let mut v = Vec::new();
    match which("runc") {
        Some(path) => v.push(Runtime { name: "runc", path }),
        None => eprintln!("control skipped: runc is not installed (apt-get install -y runc)"),
    }
    // LASSO_RUNC points the tests at another build of lasso-runc (say, a branch's binary).
    let subject = std::env::var_os("LASSO_RUNC")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO_BIN_EXE_lasso-runc").map(PathBuf::from));
    match subject {
        Some(path) if path.exists() => v.push(Runtime {
            name: "lasso-runc",
            path,
        }),
        Some(path) => eprintln!(
            "SKIPPED lasso-runc: {} was not built (run `cargo build` first)",
            path.display()
        ),
        None => eprintln!(
            "SKIPPED lasso-runc: this branch has no lasso-runc binary yet (it lands with the \
             engine branch); only the runc control ran"
        ),
    }
    v
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether the test can run: root and every named tool present. Prints why not.
pub fn can_run(tools: &[&str]) -> bool {
    if !nix::unistd::getuid().is_root() {
        eprintln!("skipped: the client tests run the daemons as root");
        return false;
    }
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "skipped: {} not installed (.ci/run installs them: apt-get install -y podman conmon \
             containerd docker.io busybox-static runc)",
            missing.join(", ")
        );
        return false;
    }
    true
}

/// What a finished client command printed and how it exited.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub argv: String,
}

impl Out {
    /// The exit code a `wait` command printed (`docker wait`, `podman wait`), when it succeeded.
    pub fn waited_code(self) -> Result<i32, String> {
        let out = self.ok()?;
        out.stdout
            .trim()
            .parse()
            .map_err(|e| format!("exit code {:?}: {e}", out.stdout))
    }

    /// Ok when the command exited 0, else an error naming the argv and its stderr.
    pub fn ok(self) -> Result<Out, String> {
        if self.code == 0 {
            Ok(self)
        } else {
            Err(format!(
                "`{}` exited {}: {}{}",
                self.argv,
                self.code,
                self.stderr.trim(),
                if self.stderr.trim().is_empty() {
                    self.stdout.trim()
                } else {
                    ""
                }
            ))
        }
    }
}

/// Runs `cmd` to the end with a deadline (a hung client must fail the scenario, not hang CI);
/// on timeout the child, which we started, is killed by its PID. `stdin` is kept open until
/// the child exits so `script` does not see an early end of input.
pub fn run_with(cmd: &mut Command, timeout: Duration, keep_stdin_open: bool) -> Out {
    let argv = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if keep_stdin_open {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Out {
                code: -1,
                stdout: String::new(),
                stderr: format!("cannot start: {e}"),
                argv,
            }
        }
    };
    let stdin = child.stdin.take();
    let readers = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .map(|s| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut s) = s {
                let _ = s.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() > timeout => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    drop(stdin);
    let [out, err] = readers.map(|r| r.join().unwrap_or_default());
    use std::os::unix::process::ExitStatusExt;
    let code = match status {
        Some(st) => st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)),
        None => -1,
    };
    Out {
        code: if timed_out { -2 } else { code },
        stdout: out,
        stderr: if timed_out {
            format!("timed out after {timeout:?}; {err}")
        } else {
            err
        },
        argv,
    }
}

/// Runs a client command with the default 60 s deadline.
pub fn run(cmd: &mut Command) -> Out {
    run_with(cmd, Duration::from_secs(60), false)
}

/// Runs `argv` under `script` (given as `script_cmd`, a `script` command with its environment
/// set) so the client sees a real terminal on stdin and stdout, as `-it` needs; returns what the
/// terminal showed.
pub fn run_in_pty(mut script_cmd: Command, argv: &[String]) -> Out {
    let line = argv
        .iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    script_cmd.args(["-qec", &line, "/dev/null"]);
    run_with(&mut script_cmd, Duration::from_secs(60), true)
}

pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Checks that `got` contains `want`, naming both when it does not.
pub fn expect_contains(what: &str, got: &str, want: &str) -> Result<(), String> {
    if got.contains(want) {
        Ok(())
    } else {
        Err(format!("{what}: expected {want:?} in {got:?}"))
    }
}

pub fn expect_code(out: &Out, want: i32) -> Result<(), String> {
    if out.code == want {
        Ok(())
    } else {
        Err(format!(
            "`{}` exited {} (expected {want}): {}",
            out.argv,
            out.code,
            out.stderr.trim()
        ))
    }
}

/// Polls `f` until it holds or `secs` pass.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where the README's snippets put lasso-runc; tests replace it with the binary under test.
pub const README_PATH: &str = "/usr/local/bin/lasso-runc";

/// The fenced block after `<!-- snippet: NAME -->` in the README, with lasso-runc's path
/// replaced by `path`: the tests use the documented configuration itself.
pub fn readme_snippet(name: &str, path: &Path) -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let marker = format!("<!-- snippet: {name} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README.md has no `{marker}`"))
        .1;
    let body = after
        .split_once("```")
        .and_then(|(_, rest)| rest.split_once('\n'))
        .and_then(|(_, rest)| rest.split_once("```"))
        .unwrap_or_else(|| panic!("README.md: `{marker}` is not followed by a fenced block"))
        .0;
    body.replace(README_PATH, &path.display().to_string())
}
