//! Podman (with conmon) drives runc, the control, and lasso-runc, the subject, through the same
//! scenarios, with every config and store inside the test's temp dir: `CONTAINERS_CONF` (the
//! README's `[engine.runtimes]` and `runtime_supports_json` snippet), `CONTAINERS_STORAGE_CONF`,
//! `--root/--runroot/--tmpdir`, cgroupfs under a cgroup parent of our own, file events, file
//! locks, and an image loaded from an OCI archive built from busybox-static.

mod clients;

use clients::profile::{self, AnnotatingClient};
use clients::scenarios::{self, Client};
use clients::{image, run, run_in_pty, Lab, Out, Report, Runtime};
use std::process::Command;

struct Podman {
    lab: Lab,
}

impl Podman {
    fn new(runtimes: &[Runtime]) -> Result<Podman, String> {
        let mut lab = Lab::new("podman");
        lab.shadow("/var/lib/containers")?;
        let d = lab.dir.display().to_string();
        let mut registered = String::new();
        for rt in runtimes.iter().filter(|rt| rt.name == "runc") {
            registered += &format!("{} = [\"{}\"]\n", rt.name, rt.path.display());
        }
        // What this machine needs (FACTS.md): nofile/nproc within the hard limits root has
        // here, cgroupfs, file events; every path in the lab. The README's snippet goes on top.
        let base = format!(
            r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
lock_type = "file"
tmp_dir = "{d}/podman-tmp"
static_dir = "{d}/storage/libpod"
volume_path = "{d}/volumes"
runtime = "runc"

[engine.runtimes]
{registered}
[network]
network_config_dir = "{d}/networks"
"#
        );
        let mut conf: toml::Table = toml::from_str(&base).map_err(|e| e.to_string())?;
        if let Some(rt) = runtimes.iter().find(|rt| rt.name == "lasso-runc") {
            let snippet: toml::Table = toml::from_str(&clients::readme_snippet("podman", &rt.path))
                .map_err(|e| format!("README podman snippet: {e}"))?;
            merge(&mut conf, snippet);
        }
        let conf = toml::to_string(&conf).map_err(|e| e.to_string())?;
        std::fs::write(lab.path("containers.conf"), conf).map_err(|e| e.to_string())?;
        std::fs::write(
            lab.path("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/storage\"\nrunroot = \"{d}/run\"\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(
            lab.path("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .map_err(|e| e.to_string())?;
        let p = Podman { lab };
        let img = image::build(&p.lab.path("image"))?;
        p.podman(&["load", "-i", &img.oci_archive.display().to_string()])
            .ok()?;
        Ok(p)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = self.lab.command(program);
        cmd.env("CONTAINERS_CONF", self.lab.path("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.lab.path("storage.conf"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.lab.path("registries.conf"),
            )
            .env("TMPDIR", self.lab.path("podman-tmp"));
        cmd
    }

    fn argv(&self, args: &[&str]) -> Vec<String> {
        let d = &self.lab.dir;
        let mut v: Vec<String> = vec!["podman".into()];
        for (flag, val) in [
            ("--root", d.join("storage")),
            ("--runroot", d.join("run")),
            ("--tmpdir", d.join("podman-tmp")),
        ] {
            v.push(flag.into());
            v.push(val.display().to_string());
        }
        v.extend(
            ["--cgroup-manager", "cgroupfs", "--events-backend", "file"]
                .iter()
                .chain(args)
                .map(|s| s.to_string()),
        );
        v
    }

    fn podman(&self, args: &[&str]) -> Out {
        let argv = self.argv(args);
        run(self.command(&argv[0]).args(&argv[1..]))
    }

    fn run_args(&self, rt: &Runtime, extra: &[&str], cmd: &[&str]) -> Vec<String> {
        let parent = format!("/{}/{}", self.lab.cgroup, rt.name);
        let mut a: Vec<&str> = vec![
            "run",
            "--pull",
            "never",
            "--runtime",
            rt.name,
            "--network",
            "none",
            "--cgroup-parent",
            &parent,
        ];
        a.extend(extra);
        a.push(image::NAME);
        a.extend(cmd);
        self.argv(&a)
    }
}

/// Deep-merges `top` into `base` (tables merge, other values are replaced).
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl Client for Podman {
    fn run_rm(&self, rt: &Runtime, cmd: &[&str]) -> Out {
        let argv = self.run_args(rt, &["--rm"], cmd);
        run(self.command(&argv[0]).args(&argv[1..]))
    }
    fn run_rm_tty(&self, rt: &Runtime, cmd: &[&str]) -> Out {
        run_in_pty(
            self.command("script"),
            &self.run_args(rt, &["--rm", "-it"], cmd),
        )
    }
    fn start_detached(&self, rt: &Runtime, name: &str, cmd: &[&str]) -> Result<i32, String> {
        let argv = self.run_args(rt, &["-d", "--name", name], cmd);
        run(self.command(&argv[0]).args(&argv[1..])).ok()?;
        let out = self
            .podman(&["inspect", "--format", "{{.State.Pid}}", name])
            .ok()?;
        out.stdout
            .trim()
            .parse()
            .map_err(|e| format!("pid {:?}: {e}", out.stdout))
    }
    fn runs_on(&self, name: &str, rt: &Runtime) -> Result<(), String> {
        let out = self
            .podman(&["inspect", "--format", "{{.OCIRuntime}}", name])
            .ok()?;
        (out.stdout.trim() == rt.name)
            .then_some(())
            .ok_or_else(|| format!("podman ran {name} on {:?}", out.stdout.trim()))
    }
    fn exec(&self, name: &str, cmd: &[&str]) -> Out {
        let mut a = vec!["exec", name];
        a.extend(cmd);
        self.podman(&a)
    }
    fn exec_tty(&self, name: &str, cmd: &[&str]) -> Out {
        let mut a = vec!["exec", "-it", name];
        a.extend(cmd);
        run_in_pty(self.command("script"), &self.argv(&a))
    }
    fn top(&self, name: &str) -> Out {
        self.podman(&["top", name, "hpid", "args"])
    }
    fn pause(&self, name: &str) -> Out {
        self.podman(&["pause", name])
    }
    fn unpause(&self, name: &str) -> Out {
        self.podman(&["unpause", name])
    }
    fn update_memory(&self, name: &str, bytes: u64) -> Option<Out> {
        Some(self.podman(&["update", "--memory", &bytes.to_string(), name]))
    }
    fn stop(&self, name: &str) -> Out {
        self.podman(&["stop", "-t", "2", name])
    }
    fn kill(&self, name: &str, signal: &str) -> Out {
        self.podman(&["kill", "-s", signal, name])
    }
    fn exit_code(&self, name: &str) -> Result<i32, String> {
        self.podman(&["wait", name]).waited_code()
    }
    fn rm(&self, name: &str) -> Out {
        self.podman(&["rm", name])
    }
    fn listed(&self, name: &str) -> bool {
        self.podman(&["container", "exists", name]).code == 0
    }
}

impl AnnotatingClient for Podman {
    fn run_rm_annotated(
        &self,
        rt: &Runtime,
        annotations: &[(&str, &str)],
        host: &std::path::Path,
        dest: &str,
        cmd: &[&str],
    ) -> Result<Out, String> {
        let mut extra: Vec<String> = vec!["--rm".into()];
        for (k, v) in annotations {
            extra.push("--annotation".into());
            extra.push(format!("{k}={v}"));
        }
        extra.push("-v".into());
        extra.push(format!("{}:{dest}:ro", host.display()));
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let argv = self.run_args(rt, &extra, cmd);
        Ok(run(self.command(&argv[0]).args(&argv[1..])))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Containers first, through the client, so podman unmounts its overlays and conmon
        // exits; the Lab then removes whatever is left.
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        let _ = self.podman(&["image", "rm", "--all", "--force"]);
    }
}

#[test]
fn podman_drives_runc_and_lasso_runc_through_every_scenario() {
    if !clients::can_run(&["podman", "conmon", "script", "tar"]) {
        return;
    }
    let runtimes = clients::runtimes();
    let podman = match Podman::new(&runtimes) {
        Ok(p) => p,
        Err(e) => panic!("podman setup failed (the machine or the harness, not lasso): {e}"),
    };
    let mut report = Report::new("podman");
    for rt in &runtimes {
        scenarios::run_all(&podman, rt, &mut report);
        profile::run(&podman, rt, &podman.lab.dir, &mut report);
    }
    let footprint = podman.lab.witness();
    drop(podman);
    report.check(
        "-",
        "teardown leaves no daemon, cgroup, mount or file behind",
        || footprint.check(),
    );
    report.finish();
}
