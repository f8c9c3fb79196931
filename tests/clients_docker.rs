//! Docker 20.10 (dockerd with the containerd it starts itself) drives runc, the control, and
//! lasso-runc, the subject, through the same scenarios. dockerd keeps everything in the test's
//! temp dir (`--data-root`, `--exec-root`, `--pidfile`, its socket, `--config-file`), never
//! touches the host's firewall (`--iptables=false --ip-masq=false --bridge=none`, containers
//! on `--network none`), and puts containers under a cgroup parent of ours. lasso-runc is
//! registered twice, as the README shows: with `--add-runtime lasso-runc=PATH` (the scenarios)
//! and through daemon.json's `runtimes` (checked by a run through it); the README's
//! `lasso-standard` entry (`runtimeArgs: --lasso-profile standard`) runs the profile scenario,
//! since dockerd 20.10 cannot pass annotations. The image is loaded
//! from a docker-archive built from busybox-static (Docker 20.10 reads no OCI archives).

mod clients;

use clients::profile::{self, AnnotatingClient};
use clients::scenarios::{self, Client};
use clients::{expect_contains, image, run, run_in_pty, wait_until, Lab, Out, Report, Runtime};
use std::process::Command;

/// The name daemon.json registers lasso-runc under (the flag registers `lasso-runc`).
const JSON_RUNTIME: &str = "lasso-runc-json";
/// The README's runtime entry that runs every container under the `standard` profile.
const PROFILE_RUNTIME: &str = "lasso-standard";

struct Docker {
    lab: Lab,
}

impl Docker {
    fn new(runtimes: &[Runtime]) -> Result<Docker, String> {
        let mut lab = Lab::new("docker");
        lab.shadow("/etc/docker")?;
        let d = |rel: &str| lab.path(rel).display().to_string();
        let mut json_runtimes = serde_json::Map::new();
        let mut cmd = lab.command("dockerd");
        cmd.args(["--data-root", &d("docker")])
            .args(["--exec-root", &d("docker-exec")])
            .args(["--pidfile", &d("docker.pid")])
            .args(["-H", &format!("unix://{}", d("docker.sock"))])
            .args(["--config-file", &d("daemon.json")])
            .args(["--cgroup-parent", &format!("/{}/docker", lab.cgroup)])
            .args(["--iptables=false", "--ip6tables=false", "--ip-masq=false"])
            .args(["--bridge=none", "--userland-proxy=false"]);
        for rt in runtimes.iter().filter(|rt| rt.name != "runc") {
            cmd.arg("--add-runtime")
                .arg(format!("{}={}", rt.name, rt.path.display()));
            // The README's snippet, under another name than the flag's (dockerd refuses a
            // runtime registered twice).
            let snippet: serde_json::Value =
                serde_json::from_str(&clients::readme_snippet("docker", &rt.path))
                    .map_err(|e| format!("README docker snippet: {e}"))?;
            let entry = snippet["runtimes"]["lasso-runc"].clone();
            if entry.is_null() {
                return Err("README docker snippet registers no `lasso-runc` runtime".into());
            }
            json_runtimes.insert(JSON_RUNTIME.into(), entry);
            // The README's profile runtime: Docker 20.10 passes no annotations, so the profile
            // (and, for the test, where its log goes) rides on the runtime entry.
            let mut standard = snippet["runtimes"][PROFILE_RUNTIME].clone();
            let Some(args) = standard["runtimeArgs"].as_array_mut() else {
                return Err(format!(
                    "README docker snippet registers no `{PROFILE_RUNTIME}` runtime with runtimeArgs"
                ));
            };
            args.push("--lasso-audit".into());
            args.push(
                profile::audit_dir(&lab.dir, rt)
                    .display()
                    .to_string()
                    .into(),
            );
            json_runtimes.insert(PROFILE_RUNTIME.into(), standard);
        }
        // The README's daemon.json snippet (its `runtimes` entry), plus the default ulimit this
        // machine allows (FACTS.md: no CAP_SYS_RESOURCE, hard nofile 20000).
        let daemon_json = serde_json::json!({
            "runtimes": json_runtimes,
            "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 20000, "Soft": 20000}},
        });
        std::fs::write(lab.path("daemon.json"), daemon_json.to_string())
            .map_err(|e| e.to_string())?;
        lab.spawn_daemon("dockerd", cmd)?;
        let mut dk = Docker { lab };
        if !wait_until(60, || dk.docker(&["version"]).code == 0) {
            let running = dk.lab.daemon_running("dockerd");
            return Err(format!(
                "dockerd (running: {running}) did not answer on its socket:\n{}",
                dk.lab.daemon_log_tail("dockerd")
            ));
        }
        let img = image::build(&dk.lab.path("image"))?;
        dk.docker(&["load", "-i", &img.docker_archive.display().to_string()])
            .ok()?;
        Ok(dk)
    }

    fn argv(&self, args: &[&str]) -> Vec<String> {
        let sock = format!("unix://{}", self.lab.path("docker.sock").display());
        ["/usr/bin/docker", "-H", &sock]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect()
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = self.lab.command(program);
        cmd.env("DOCKER_CONFIG", self.lab.path("docker-cli"));
        cmd
    }

    fn docker(&self, args: &[&str]) -> Out {
        let argv = self.argv(args);
        run(self.command(&argv[0]).args(&argv[1..]))
    }

    fn run_args(&self, rt: &str, extra: &[&str], cmd: &[&str]) -> Vec<String> {
        let mut a = vec![
            "run",
            "--pull",
            "never",
            "--runtime",
            rt,
            "--network",
            "none",
        ];
        a.extend(extra);
        a.push(image::NAME);
        a.extend(cmd);
        self.argv(&a)
    }
}

impl Client for Docker {
    fn run_rm(&self, rt: &Runtime, cmd: &[&str]) -> Out {
        let argv = self.run_args(rt.name, &["--rm"], cmd);
        run(self.command(&argv[0]).args(&argv[1..]))
    }
    fn run_rm_tty(&self, rt: &Runtime, cmd: &[&str]) -> Out {
        run_in_pty(
            self.command("script"),
            &self.run_args(rt.name, &["--rm", "-it"], cmd),
        )
    }
    fn start_detached(&self, rt: &Runtime, name: &str, cmd: &[&str]) -> Result<i32, String> {
        let argv = self.run_args(rt.name, &["-d", "--name", name], cmd);
        run(self.command(&argv[0]).args(&argv[1..])).ok()?;
        let out = self
            .docker(&["inspect", "--format", "{{.State.Pid}}", name])
            .ok()?;
        out.stdout
            .trim()
            .parse()
            .map_err(|e| format!("pid {:?}: {e}", out.stdout))
    }
    fn runs_on(&self, name: &str, rt: &Runtime) -> Result<(), String> {
        let out = self
            .docker(&["inspect", "--format", "{{.HostConfig.Runtime}}", name])
            .ok()?;
        (out.stdout.trim() == rt.name)
            .then_some(())
            .ok_or_else(|| format!("docker ran {name} on {:?}", out.stdout.trim()))
    }
    fn exec(&self, name: &str, cmd: &[&str]) -> Out {
        let mut a = vec!["exec", name];
        a.extend(cmd);
        self.docker(&a)
    }
    fn exec_tty(&self, name: &str, cmd: &[&str]) -> Out {
        let mut a = vec!["exec", "-it", name];
        a.extend(cmd);
        run_in_pty(self.command("script"), &self.argv(&a))
    }
    fn top(&self, name: &str) -> Out {
        self.docker(&["top", name])
    }
    fn pause(&self, name: &str) -> Out {
        self.docker(&["pause", name])
    }
    fn unpause(&self, name: &str) -> Out {
        self.docker(&["unpause", name])
    }
    fn update_memory(&self, name: &str, bytes: u64) -> Option<Out> {
        let b = bytes.to_string();
        Some(self.docker(&["update", "--memory", &b, "--memory-swap", "-1", name]))
    }
    fn stop(&self, name: &str) -> Out {
        self.docker(&["stop", "-t", "2", name])
    }
    fn kill(&self, name: &str, signal: &str) -> Out {
        self.docker(&["kill", "-s", signal, name])
    }
    fn exit_code(&self, name: &str) -> Result<i32, String> {
        self.docker(&["wait", name]).waited_code()
    }
    fn rm(&self, name: &str) -> Out {
        self.docker(&["rm", name])
    }
    fn listed(&self, name: &str) -> bool {
        self.docker(&["container", "inspect", name]).code == 0
    }
}

impl AnnotatingClient for Docker {
    fn run_rm_annotated(
        &self,
        rt: &Runtime,
        annotations: &[(&str, &str)],
        host: &std::path::Path,
        dest: &str,
        cmd: &[&str],
    ) -> Result<Out, String> {
        // Annotations arrived in the Engine API 1.43 (Docker 24); dockerd 20.10 speaks 1.41,
        // and the CLI refuses `--annotation` against it ("unknown flag"). The runtime entry
        // `lasso-standard` carries the profile (and the log directory) instead; it stands in
        // for exactly these annotations, nothing else.
        let audit = profile::audit_dir(&self.lab.dir, rt).display().to_string();
        let want = [
            ("run.lasso.profile", "standard"),
            ("run.lasso.audit", audit.as_str()),
        ];
        if annotations != want {
            return Err(format!(
                "dockerd 20.10 cannot pass OCI annotations; its `{PROFILE_RUNTIME}` runtime stands in for {want:?} only, not {annotations:?}"
            ));
        }
        let bind = format!("{}:{dest}:ro", host.display());
        let argv = self.run_args(PROFILE_RUNTIME, &["--rm", "-v", &bind], cmd);
        Ok(run(self.command(&argv[0]).args(&argv[1..])))
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]).stdout;
        for id in ids.split_whitespace() {
            let _ = self.docker(&["rm", "--force", id]);
        }
        let _ = self.docker(&["image", "rm", "--force", image::NAME]);
    }
}

/// The control: Docker drives runc through every scenario.
#[test]
fn docker_drives_runc_through_every_scenario() {
    docker_scenarios(|rt| rt.name == "runc");
}

/// The subject, beside the control in the same run.
#[test]
fn docker_drives_lasso_runc_through_every_scenario() {
    docker_scenarios(|rt| rt.name != "runc");
}

fn docker_scenarios(wanted: impl Fn(&Runtime) -> bool) {
    if !clients::can_run(&[
        "dockerd",
        "containerd",
        "containerd-shim-runc-v2",
        "script",
        "tar",
    ]) || !std::path::Path::new("/usr/bin/docker").exists()
    {
        return;
    }
    let runtimes: Vec<Runtime> = clients::runtimes().into_iter().filter(wanted).collect();
    let host_net_before = host_network_state();
    let docker = match Docker::new(&runtimes) {
        Ok(d) => d,
        Err(e) => panic!("dockerd setup failed (the machine or the harness, not lasso): {e}"),
    };
    let mut report = Report::new("docker");
    for rt in &runtimes {
        scenarios::run_all(&docker, rt, &mut report);
        profile::run(&docker, rt, &docker.lab.dir, &mut report);
    }
    if let Some(rt) = runtimes.iter().find(|rt| rt.name != "runc") {
        report.check(
            rt.name,
            "daemon.json `runtimes` registers lasso-runc",
            || {
                let info = docker
                    .docker(&["info", "--format", "{{json .Runtimes}}"])
                    .ok()?;
                expect_contains("docker info", &info.stdout, JSON_RUNTIME)?;
                let argv = docker.run_args(JSON_RUNTIME, &["--rm"], &["echo", "via-daemon-json"]);
                let out = run(docker.command(&argv[0]).args(&argv[1..])).ok()?;
                expect_contains("stdout", &out.stdout, "via-daemon-json")
            },
        );
    }
    let footprint = docker.lab.witness();
    drop(docker);
    report.check(
        "-",
        "teardown leaves no daemon, cgroup, mount or file behind",
        || footprint.check(),
    );
    report.check(
        "-",
        "dockerd left the host's firewall and netns as it found them",
        || {
            let after = host_network_state();
            (after == host_net_before)
                .then_some(())
                .ok_or_else(|| format!("before:\n{host_net_before}\nafter:\n{after}"))
        },
    );
    report.finish();
}

/// The host's nft ruleset, iptables rules and named network namespaces, as text. (Links are
/// left out: other tests on this machine create and move veth pairs at any time.)
fn host_network_state() -> String {
    [
        &["nft", "list", "ruleset"][..],
        &["iptables-save"],
        &["ip", "netns", "list"],
    ]
    .iter()
    .map(|argv| {
        let out = run(Command::new(argv[0]).args(&argv[1..]));
        // iptables-save stamps the time into its comment lines.
        let text: Vec<&str> = out.stdout.lines().filter(|l| !l.starts_with('#')).collect();
        format!("$ {}\n{}", argv.join(" "), text.join("\n"))
    })
    .collect::<Vec<_>>()
    .join("\n")
}
