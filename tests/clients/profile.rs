//! The opt-in policy through a real client: one container per client, started with the
//! client's own annotation flag (`run.lasso.profile=standard`, `run.lasso.audit=DIR`) and a
//! read-only bind of a script. Inside, an allowed program runs and `/bin/rm` is refused by the
//! exec gate (EACCES, status 126 in the shell); afterwards the container's audit log holds
//! both entries with their argv and `lasso audit verify` passes. Only lasso-runc runs it
//! (runc ignores the annotation: there is nothing to compare). Docker 20.10, which cannot pass
//! annotations, runs it through a runtime entry that carries the profile (`--lasso-profile`).

use super::{expect_contains, Out, Report, Runtime};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The script the container runs; `/tmp/keep` is made by the script itself, so a gate that
/// let `rm` through would show as a missing directory.
const SCRIPT: &str = "mkdir -p /tmp/keep\n/bin/rm -rf /tmp/keep; echo rm=$?\n/bin/echo allowed-ran\nif [ -d /tmp/keep ]; then echo kept; fi\n";

/// A client that can start a container with annotations and a read-only bind mount.
pub trait AnnotatingClient {
    /// `run --rm` of `cmd` with OCI `annotations` and `host` bound read-only at `dest`;
    /// `Err(why)` when this client cannot pass annotations to the runtime.
    fn run_rm_annotated(
        &self,
        rt: &Runtime,
        annotations: &[(&str, &str)],
        host: &Path,
        dest: &str,
        cmd: &[&str],
    ) -> Result<Out, String>;
}

/// The key ring lasso-runc writes with: the clients do not pass our environment through (conmon
/// gets a filtered one), so the runtime uses root's default unless the daemon inherited ours.
fn key_dir() -> PathBuf {
    std::env::var_os("LASSO_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/lasso"))
}

fn lasso_bin() -> Option<PathBuf> {
    option_env!("CARGO_BIN_EXE_lasso").map(PathBuf::from)
}

/// Where the scenario's audit log goes for `rt` in the lab at `lab`: a client that passes the
/// profile some other way than annotations (Docker's runtime entry) points its runtime here.
pub fn audit_dir(lab: &Path, rt: &Runtime) -> PathBuf {
    lab.join(format!("profile-{}", rt.name)).join("audit")
}

/// Runs the scenario for `rt` when it is lasso-runc; `lab` is the lab's directory.
pub fn run(c: &impl AnnotatingClient, rt: &Runtime, lab: &Path, report: &mut Report) {
    if rt.name != "lasso-runc" {
        return;
    }
    const SCENARIO: &str =
        "run.lasso.profile=standard: rm is refused by the exec gate and audited, the log verifies";
    let audit = audit_dir(lab, rt);
    let dir = audit
        .parent()
        .expect("audit dir has a parent")
        .to_path_buf();
    let script = dir.join("t.sh");
    let audit_s = audit.display().to_string();
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&script, SCRIPT)) {
        report.check(rt.name, SCENARIO, || Err(format!("{}: {e}", dir.display())));
        return;
    }
    let out = match c.run_rm_annotated(
        rt,
        &[
            ("run.lasso.profile", "standard"),
            ("run.lasso.audit", &audit_s),
        ],
        &script,
        "/t.sh",
        &["sh", "/t.sh"],
    ) {
        Ok(out) => out,
        Err(why) => {
            report.not_applicable(rt.name, SCENARIO, &why);
            return;
        }
    };
    report.check(rt.name, SCENARIO, || {
        let out = out.ok()?;
        expect_contains("stdout", &out.stdout, "allowed-ran")?;
        expect_contains("stdout (rm refused with EACCES)", &out.stdout, "rm=126")?;
        expect_contains("stdout (the directory survived)", &out.stdout, "kept")?;
        let logs: Vec<PathBuf> = std::fs::read_dir(&audit)
            .map_err(|e| format!("audit dir {}: {e}", audit.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        let [log] = logs.as_slice() else {
            return Err(format!("expected one log in {}: {logs:?}", audit.display()));
        };
        let text = std::fs::read_to_string(log).map_err(|e| e.to_string())?;
        let entries: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let has = |outcome: &str, argv: &[&str]| {
            entries.iter().any(|e| {
                e["kind"] == "exec"
                    && e["outcome"] == outcome
                    && e["details"]["argv"] == serde_json::json!(argv)
            })
        };
        if !has("blocked", &["/bin/rm", "-rf", "/tmp/keep"]) {
            return Err(format!("no blocked entry for rm in {}", log.display()));
        }
        if !has("allowed", &["/bin/echo", "allowed-ran"]) {
            return Err(format!("no allowed entry for echo in {}", log.display()));
        }
        let Some(lasso) = lasso_bin() else {
            return Err("the lasso binary was not built".into());
        };
        // The monitor seals the log once the container is gone; the client may return
        // a moment before.
        let mut verify = None;
        for _ in 0..40 {
            let v = Command::new(&lasso)
                .args(["audit", "verify", "--config-dir"])
                .arg(key_dir())
                .arg(log)
                .output()
                .map_err(|e| e.to_string())?;
            let t = String::from_utf8_lossy(&v.stdout).into_owned();
            let done = v.status.success() && t.contains(", sealed");
            verify = Some((v.status.success(), t));
            if done {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        match verify {
            Some((true, t)) if t.contains(", sealed") => Ok(()),
            other => Err(format!("lasso audit verify: {other:?}")),
        }
    });
}
