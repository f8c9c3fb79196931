//! containerd (its runc shim v2) and `ctr` drive runc, the control, and lasso-runc, the subject,
//! through the same scenarios. containerd runs from its own config in the test's temp dir
//! (root, state, gRPC socket; the CRI plugin off), the image is imported from an OCI archive
//! built from busybox-static, and each runtime is chosen per container with `--runc-binary`
//! (the shim's `BinaryName`) and a runc root in the temp dir.

mod clients;

use clients::profile::{self, AnnotatingClient};
use clients::scenarios::{self, Client};
use clients::{image, run, run_in_pty, wait_until, Lab, Out, Report, Runtime};
use std::cell::Cell;
use std::process::Command;

const NS: &str = "lasso-test";

struct Containerd {
    lab: Lab,
    serial: Cell<u32>,
}

impl Containerd {
    fn new() -> Result<Containerd, String> {
        let mut lab = Lab::new("containerd");
        let d = lab.dir.display().to_string();
        let conf = format!(
            r#"version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{d}/containerd.sock"

[debug]
  address = ""

[metrics]
  address = ""
"#
        );
        std::fs::write(lab.path("containerd.toml"), conf).map_err(|e| e.to_string())?;
        let mut cmd = lab.command("containerd");
        cmd.arg("--config").arg(lab.path("containerd.toml"));
        lab.spawn_daemon("containerd", cmd)?;
        let c = Containerd {
            lab,
            serial: Cell::new(0),
        };
        if !wait_until(30, || c.ctr(&["version"]).code == 0) {
            return Err(format!(
                "containerd did not answer on its socket:\n{}",
                c.lab.daemon_log_tail("containerd")
            ));
        }
        let img = image::build(&c.lab.path("image"))?;
        c.ctr(&["images", "import", &img.oci_archive.display().to_string()])
            .ok()?;
        Ok(c)
    }

    fn command(&self) -> Command {
        let mut cmd = self.lab.command("ctr");
        cmd.arg("--address")
            .arg(self.lab.path("containerd.sock"))
            .args(["--namespace", NS]);
        cmd
    }

    fn ctr(&self, args: &[&str]) -> Out {
        run(self.command().args(args))
    }

    fn argv(&self, args: &[String]) -> Vec<String> {
        let cmd = self.command();
        std::iter::once(cmd.get_program().to_string_lossy().into_owned())
            .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
            .chain(args.iter().cloned())
            .collect()
    }

    fn next_id(&self, prefix: &str) -> String {
        let n = self.serial.get() + 1;
        self.serial.set(n);
        format!("{prefix}-{n}")
    }

    /// `ctr run` arguments that put the container on runtime `rt` under our cgroup parent.
    fn run_args(&self, rt: &Runtime, extra: &[&str], id: &str, cmd: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec!["run".into()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push("--runc-binary".into());
        a.push(rt.path.display().to_string());
        a.push("--runc-root".into());
        a.push(
            self.lab
                .path(&format!("runc-root/{}", rt.name))
                .display()
                .to_string(),
        );
        a.push("--cgroup".into());
        a.push(format!("/{}/{}/{id}", self.lab.cgroup, rt.name));
        a.push(image::NAME.into());
        a.push(id.into());
        a.extend(cmd.iter().map(|s| s.to_string()));
        a
    }
}

impl Client for Containerd {
    fn run_rm(&self, rt: &Runtime, cmd: &[&str]) -> Out {
        let id = self.next_id(&format!("rm-{}", rt.name));
        run(self.command().args(self.run_args(rt, &["--rm"], &id, cmd)))
    }
    fn run_rm_tty(&self, rt: &Runtime, cmd: &[&str]) -> Out {
        let id = self.next_id(&format!("tty-{}", rt.name));
        let argv = self.argv(&self.run_args(rt, &["--rm", "-t"], &id, cmd));
        run_in_pty(self.lab.command("script"), &argv)
    }
    fn start_detached(&self, rt: &Runtime, name: &str, cmd: &[&str]) -> Result<i32, String> {
        run(self.command().args(self.run_args(rt, &["-d"], name, cmd))).ok()?;
        let out = self.ctr(&["task", "ls"]).ok()?;
        out.stdout
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&name)).then(|| f.get(1).and_then(|p| p.parse().ok()))?
            })
            .ok_or_else(|| format!("no pid for {name} in `ctr task ls`: {}", out.stdout))
    }
    fn runs_on(&self, name: &str, rt: &Runtime) -> Result<(), String> {
        use base64::Engine;
        let out = self.ctr(&["containers", "info", name]).ok()?;
        let info: serde_json::Value =
            serde_json::from_str(&out.stdout).map_err(|e| format!("ctr containers info: {e}"))?;
        // The shim's options are a protobuf `containerd.runc.v1.Options`; `binary_name` is
        // field 6, a length-delimited string (tag byte 0x32).
        let value = info["Runtime"]["Options"]["value"].as_str().unwrap_or("");
        let options = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|e| format!("runtime options {value:?}: {e}"))?;
        let path = rt.path.display().to_string();
        let mut field = vec![0x32, path.len() as u8];
        field.extend(path.as_bytes());
        options
            .windows(field.len())
            .any(|w| w == field.as_slice())
            .then_some(())
            .ok_or_else(|| format!("containerd ran {name} with options {}", info["Runtime"]))
    }
    fn exec(&self, name: &str, cmd: &[&str]) -> Out {
        let id = self.next_id("exec");
        let mut a = vec!["task", "exec", "--exec-id", &id, name];
        a.extend(cmd);
        self.ctr(&a)
    }
    fn exec_tty(&self, name: &str, cmd: &[&str]) -> Out {
        let id = self.next_id("exec");
        let mut a: Vec<String> = ["task", "exec", "-t", "--exec-id", &id, name]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(cmd.iter().map(|s| s.to_string()));
        run_in_pty(self.lab.command("script"), &self.argv(&a))
    }
    fn top(&self, name: &str) -> Out {
        self.ctr(&["task", "ps", name])
    }
    fn pause(&self, name: &str) -> Out {
        self.ctr(&["task", "pause", name])
    }
    fn unpause(&self, name: &str) -> Out {
        self.ctr(&["task", "resume", name])
    }
    fn update_memory(&self, _name: &str, _bytes: u64) -> Option<Out> {
        None // ctr 1.6 has no `task update`; the shim's Update is reached through docker.
    }
    fn stop(&self, name: &str) -> Out {
        // ctr has no stop: what a user does is SIGTERM, a grace period, then SIGKILL.
        let term = self.ctr(&["task", "kill", "-s", "SIGTERM", name]);
        if term.code != 0 {
            return term;
        }
        let stopped = || {
            self.ctr(&["task", "ls"])
                .stdout
                .lines()
                .any(|l| l.starts_with(&format!("{name} ")) && l.contains("STOPPED"))
        };
        if wait_until(2, stopped) {
            return term;
        }
        self.ctr(&["task", "kill", "-s", "SIGKILL", name])
    }
    fn kill(&self, name: &str, signal: &str) -> Out {
        self.ctr(&["task", "kill", "-s", &format!("SIG{signal}"), name])
    }
    fn exit_code(&self, name: &str) -> Result<i32, String> {
        // `ctr task delete` reports a non-zero exit status as a warning ("exit with non-zero
        // exit code N") and says nothing for 0.
        let out = self.ctr(&["task", "delete", name]).ok()?;
        match out.stderr.split("non-zero exit code ").nth(1) {
            None => Ok(0),
            Some(rest) => rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("unreadable exit code in {:?}", out.stderr)),
        }
    }
    fn rm(&self, name: &str) -> Out {
        let _ = self.ctr(&["task", "delete", "--force", name]);
        self.ctr(&["containers", "rm", name])
    }
    fn listed(&self, name: &str) -> bool {
        self.ctr(&["containers", "info", name]).code == 0
    }
}

impl AnnotatingClient for Containerd {
    fn run_rm_annotated(
        &self,
        rt: &Runtime,
        annotations: &[(&str, &str)],
        host: &std::path::Path,
        dest: &str,
        cmd: &[&str],
    ) -> Result<Out, String> {
        let id = self.next_id(&format!("profile-{}", rt.name));
        let mut extra: Vec<String> = vec!["--rm".into()];
        for (k, v) in annotations {
            extra.push("--annotation".into());
            extra.push(format!("{k}={v}"));
        }
        extra.push("--mount".into());
        extra.push(format!(
            "type=bind,src={},dst={dest},options=rbind:ro",
            host.display()
        ));
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        Ok(run(self
            .command()
            .args(self.run_args(rt, &extra, &id, cmd))))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let out = self.ctr(&["containers", "ls", "-q"]);
        for id in out.stdout.split_whitespace() {
            let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
            let _ = self.ctr(&["task", "delete", "--force", id]);
            let _ = self.ctr(&["containers", "rm", id]);
        }
        let _ = self.ctr(&["images", "rm", image::NAME]);
    }
}

#[test]
fn containerd_drives_runc_and_lasso_runc_through_every_scenario() {
    if !clients::can_run(&[
        "containerd",
        "ctr",
        "containerd-shim-runc-v2",
        "script",
        "tar",
    ]) {
        return;
    }
    let runtimes = clients::runtimes();
    let ctrd = match Containerd::new() {
        Ok(c) => c,
        Err(e) => panic!("containerd setup failed (the machine or the harness, not lasso): {e}"),
    };
    let mut report = Report::new("containerd");
    for rt in &runtimes {
        scenarios::run_all(&ctrd, rt, &mut report);
        profile::run(&ctrd, rt, &ctrd.lab.dir, &mut report);
    }
    let footprint = ctrd.lab.witness();
    drop(ctrd);
    report.check(
        "-",
        "teardown leaves no daemon, cgroup, mount or file behind",
        || footprint.check(),
    );
    report.finish();
}

/// The README's Kubernetes snippets: containerd parses the CRI runtime handler as a runc shim
/// v2 with lasso-runc as its BinaryName, and the RuntimeClass names that handler. (No kubelet
/// runs here, so this is as far as this machine can check them.)
#[test]
fn readme_cri_handler_is_parsed_by_containerd_and_named_by_the_runtimeclass() {
    if !clients::can_run(&["containerd"]) {
        return;
    }
    let path = std::path::Path::new("/opt/lasso test/lasso-runc");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, clients::readme_snippet("containerd-cri", path)).unwrap();
    let out = run(Command::new("containerd")
        .arg("--config")
        .arg(&file)
        .args(["config", "dump"]))
    .ok()
    .unwrap();
    let section = out
        .stdout
        .split("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.lasso-runc]")
        .nth(1)
        .expect("containerd's merged config has the lasso-runc runtime handler");
    let section = section.split("\n\n      [").next().unwrap();
    for want in [
        "runtime_type = \"io.containerd.runc.v2\"",
        "pod_annotations = [\"run.lasso.profile\"]",
        &format!("BinaryName = \"{}\"", path.display()),
    ] {
        assert!(
            section.contains(want),
            "containerd's view of the handler lacks {want}:\n{section}"
        );
    }
    let class = clients::readme_snippet("runtimeclass", path);
    let handler = class
        .lines()
        .find_map(|l| l.strip_prefix("handler:"))
        .expect("RuntimeClass has a handler")
        .trim();
    assert_eq!(
        handler, "lasso-runc",
        "the RuntimeClass must name the CRI handler"
    );
    assert!(class.contains("runtimeClassName: lasso"));
}
