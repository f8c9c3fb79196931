//! The scenarios every client runs, written once against the `Client` trait: what a user does
//! with a container (run, -it, exec, top, pause, update, stop, kill, rm), each checked through
//! the client and, where the kernel holds the answer, in the kernel (freezer state, memory
//! limit, the process and its cgroup being gone).

use super::{alive, expect_code, expect_contains, wait_until, KernelView, Out, Report, Runtime};

/// One container client, bound to its daemon (if any) and its lab.
pub trait Client {
    /// `run --rm` in the foreground, output captured.
    fn run_rm(&self, rt: &Runtime, cmd: &[&str]) -> Out;
    /// `run --rm -it` under a pty.
    fn run_rm_tty(&self, rt: &Runtime, cmd: &[&str]) -> Out;
    /// Starts `cmd` detached as container `name`; returns its init's host PID.
    fn start_detached(&self, rt: &Runtime, name: &str, cmd: &[&str]) -> Result<i32, String>;
    /// Checks that the client recorded container `name` as running on `rt` (so a pass is
    /// not the default runtime's).
    fn runs_on(&self, name: &str, rt: &Runtime) -> Result<(), String>;
    fn exec(&self, name: &str, cmd: &[&str]) -> Out;
    fn exec_tty(&self, name: &str, cmd: &[&str]) -> Out;
    /// The client's process listing (`top` / `task ps`).
    fn top(&self, name: &str) -> Out;
    fn pause(&self, name: &str) -> Out;
    fn unpause(&self, name: &str) -> Out;
    /// Sets the memory limit; None when the client has no such command.
    fn update_memory(&self, name: &str, bytes: u64) -> Option<Out>;
    /// The client's graceful stop (SIGTERM, then SIGKILL after a short grace).
    fn stop(&self, name: &str) -> Out;
    fn kill(&self, name: &str, signal: &str) -> Out;
    /// Exit code of an ended container, as the client reports it.
    fn exit_code(&self, name: &str) -> Result<i32, String>;
    fn rm(&self, name: &str) -> Out;
    /// Whether the client still lists the container.
    fn listed(&self, name: &str) -> bool;
}

/// Runs every scenario with runtime `rt`, recording each outcome in `report`.
pub fn run_all(c: &impl Client, rt: &Runtime, report: &mut Report) {
    let r = rt.name;
    report.check(r, "run prints the container's output", || {
        let out = c.run_rm(rt, &["echo", "hello-from-container"]).ok()?;
        expect_contains("stdout", &out.stdout, "hello-from-container")
    });
    report.check(r, "run propagates the exit code", || {
        expect_code(&c.run_rm(rt, &["sh", "-c", "exit 42"]), 42)
    });
    report.check(
        r,
        "a runtime error reaches the user, naming the problem",
        || {
            let out = c.run_rm(rt, &["/no/such/binary"]);
            if out.code == 0 {
                return Err("running a missing binary succeeded".into());
            }
            expect_contains("the client's error", &out.stderr, "/no/such/binary")
        },
    );
    report.check(r, "run -it gives the container a terminal", || {
        let out = c
            .run_rm_tty(rt, &["sh", "-c", "tty; [ -t 0 ] && echo STDIN-IS-A-TTY"])
            .ok()?;
        expect_contains("terminal", &out.stdout, "/dev/pts/")?;
        expect_contains("terminal", &out.stdout, "STDIN-IS-A-TTY")
    });

    let name = format!("lasso-test-{r}");
    let pid = match c.start_detached(rt, &name, &["sleep", "1000"]) {
        Ok(pid) => pid,
        Err(e) => {
            report.check(
                r,
                "run -d starts a long-running container on the runtime asked for",
                || Err(e),
            );
            return;
        }
    };
    report.check(
        r,
        "run -d starts a long-running container on the runtime asked for",
        || {
            KernelView::of(pid)?;
            c.runs_on(&name, rt)
        },
    );
    let memory_cgroup = KernelView::of(pid).and_then(|k| k.cgroup_dir("memory"));
    report.check(r, "exec prints output and propagates the exit code", || {
        let out = c.exec(&name, &["echo", "hello-from-exec"]).ok()?;
        expect_contains("stdout", &out.stdout, "hello-from-exec")?;
        expect_code(&c.exec(&name, &["sh", "-c", "exit 7"]), 7)
    });
    report.check(r, "exec -it gives the process a terminal", || {
        let out = c
            .exec_tty(&name, &["sh", "-c", "tty; [ -t 0 ] && echo STDIN-IS-A-TTY"])
            .ok()?;
        expect_contains("terminal", &out.stdout, "/dev/pts/")?;
        expect_contains("terminal", &out.stdout, "STDIN-IS-A-TTY")
    });
    report.check(r, "top lists the container's processes", || {
        let out = c.top(&name).ok()?;
        expect_contains("top", &out.stdout, &pid.to_string())
    });
    report.check(
        r,
        "pause freezes the cgroup in the kernel and unpause thaws it",
        || {
            let k = KernelView::of(pid)?;
            c.pause(&name).ok()?;
            if !k.frozen()? {
                return Err("the client said paused but the kernel's freezer is not FROZEN".into());
            }
            c.unpause(&name).ok()?;
            if k.frozen()? {
                return Err(
                    "the client said unpaused but the kernel's freezer is still FROZEN".into(),
                );
            }
            let out = c.exec(&name, &["echo", "thawed"]).ok()?;
            expect_contains("exec after unpause", &out.stdout, "thawed")
        },
    );
    const LIMIT: u64 = 96 << 20;
    match c.update_memory(&name, LIMIT) {
        None => report.not_applicable(
            r,
            "update sets the memory limit",
            "the client has no update command",
        ),
        Some(out) => report.check(
            r,
            "update sets the memory limit the kernel enforces",
            || {
                out.ok()?;
                match KernelView::of(pid)?.memory_limit()? {
                    Some(l) if l == LIMIT => Ok(()),
                    other => Err(format!(
                        "kernel memory limit is {other:?}, expected {LIMIT}"
                    )),
                }
            },
        ),
    }
    report.check(r, "stop ends the container's processes", || {
        c.stop(&name).ok()?;
        if !wait_until(20, || !alive(pid)) {
            return Err(format!("process {pid} still alive after stop"));
        }
        Ok(())
    });

    let victim = format!("lasso-test-{r}-kill");
    report.check(r, "kill -s KILL delivers SIGKILL (exit 137)", || {
        let vpid = c.start_detached(rt, &victim, &["sleep", "1000"])?;
        c.kill(&victim, "KILL").ok()?;
        if !wait_until(20, || !alive(vpid)) {
            return Err(format!("process {vpid} survived SIGKILL"));
        }
        let code = c.exit_code(&victim)?;
        (code == 137)
            .then_some(())
            .ok_or_else(|| format!("exit code {code}, expected 137"))
    });
    report.check(r, "rm removes the containers and their cgroups", || {
        c.rm(&victim).ok()?;
        c.rm(&name).ok()?;
        for n in [&name, &victim] {
            if c.listed(n) {
                return Err(format!("{n} is still listed after rm"));
            }
        }
        let dir = memory_cgroup.clone()?;
        if !wait_until(10, || !dir.exists()) {
            return Err(format!("cgroup {} still exists after rm", dir.display()));
        }
        Ok(())
    });
}
