//! `lasso-runc`: the runc-compatible command line over the engine. Each subcommand is a small
//! file holding its clap arguments and a handler of a few lines that calls `engine::container`;
//! this module holds the global flags, error reporting in runc's style (plain text on stderr,
//! or logrus-style JSON lines in the `--log` file) and the dispatch. No container logic here.

mod create;
mod delete;
mod egress;
mod exec;
mod features;
mod gate_monitor;
mod kill;
mod list;
mod pause;
pub mod profile;
mod ps;
mod run;
mod spec;
mod start;
mod state;
mod update;

use crate::engine::container::{ContainerError, Runtime};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

/// The OCI runtime spec version lasso-runc implements.
pub const OCI_VERSION: &str = "1.2.0";

const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\nspec: 1.2.0");

/// A runc-compatible OCI runtime built on lasso's engine.
#[derive(Debug, Parser)]
#[command(name = "lasso-runc", version = env!("CARGO_PKG_VERSION"), long_version = LONG_VERSION)]
pub struct Cli {
    /// Directory for container state (default /run/lasso-runc, or $XDG_RUNTIME_DIR/lasso-runc
    /// when not root).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Write errors and logs to this file instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Format of --log: text or json.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// More log output.
    #[arg(long)]
    pub debug: bool,
    /// Accepted for compatibility: cgroup paths are always managed through cgroupfs.
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Accepted for compatibility (true|false|auto): rootless mode follows the effective uid.
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Accepted for compatibility: checkpointing is not implemented.
    #[arg(long, value_name = "PATH", hide = true)]
    pub criu: Option<String>,
    /// lasso: run every container this runtime creates under this profile (name or file
    /// path), as the `run.lasso.profile` annotation does; for clients that cannot pass
    /// annotations (Docker's daemon.json `runtimeArgs`). An annotation naming another profile
    /// is refused.
    #[arg(long, value_name = "PROFILE")]
    pub lasso_profile: Option<String>,
    /// lasso: the audit log directory of containers that run under a profile and carry no
    /// `run.lasso.audit` annotation (an absolute path; default /var/log/lasso/runc/<id>/).
    #[arg(long, value_name = "DIR")]
    pub lasso_audit: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create(create::Args),
    /// Start the process of a created container.
    Start(start::Args),
    /// Print the state of a container as JSON.
    State(state::Args),
    /// Send a signal to a container's init (or all its processes).
    Kill(kill::Args),
    /// Delete a stopped container (or any with --force).
    Delete(delete::Args),
    /// Create and start a container, wait for it and delete it.
    Run(run::Args),
    /// Write a default config.json into the bundle.
    Spec(spec::Args),
    /// List containers.
    #[command(alias = "ls")]
    List(list::Args),
    /// Print the features this runtime implements, as JSON.
    Features(features::Args),
    /// List the processes of a container.
    Ps(ps::Args),
    /// Run a process in a running container.
    Exec(exec::Args),
    /// Freeze every process of a container.
    Pause(pause::Args),
    /// Thaw a paused container.
    Resume(pause::Args),
    /// Change the resource limits of a running container.
    Update(update::Args),
}

/// An error as lasso-runc reports it.
#[derive(Debug, thiserror::Error)]
pub enum RuncError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Profile(#[from] profile::ProfileError),
    #[error(transparent)]
    GateMonitor(#[from] gate_monitor::GateMonitorError),
    #[error(transparent)]
    Egress(#[from] egress::EgressError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// What every handler gets besides its own arguments.
pub struct Globals {
    pub runtime: Runtime,
    /// `--lasso-profile` and `--lasso-audit`.
    pub policy: profile::RuntimePolicy,
    log: Log,
}

impl Globals {
    /// A warning: the command still succeeds (e.g. a failing poststart hook).
    pub fn warn(&self, msg: &str) {
        self.log.write("warning", msg);
    }
}

fn default_root(rootless: bool) -> PathBuf {
    if rootless {
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("lasso-runc");
        }
        let uid = nix::unistd::geteuid().as_raw();
        return std::env::temp_dir().join(format!("lasso-runc-{uid}"));
    }
    PathBuf::from("/run/lasso-runc")
}

impl Cli {
    /// Runs the command; returns the process exit status. Errors are reported here.
    pub fn run(self) -> u8 {
        let rootless = !nix::unistd::geteuid().is_root();
        let root = self.root.clone().unwrap_or_else(|| default_root(rootless));
        let globals = Globals {
            runtime: Runtime::new(root),
            policy: profile::RuntimePolicy {
                profile: self.lasso_profile.clone().filter(|p| !p.is_empty()),
                audit: self.lasso_audit.clone(),
            },
            log: Log {
                file: self.log.clone(),
                json: self.log_format == LogFormat::Json,
            },
        };
        if let Some(dir) = &self.lasso_audit {
            if !dir.is_absolute()
                || dir
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
            {
                globals.log.write(
                    "error",
                    &format!(
                        "--lasso-audit {}: give an absolute directory path without `..` (in the runtime's registration, e.g. daemon.json `runtimeArgs`)",
                        dir.display()
                    ),
                );
                return 1;
            }
        }
        let result = match self.command {
            Command::Create(a) => create::run(a, &globals),
            Command::Start(a) => start::run(a, &globals),
            Command::State(a) => state::run(a, &globals),
            Command::Kill(a) => kill::run(a, &globals),
            Command::Delete(a) => delete::run(a, &globals),
            Command::Run(a) => run::run(a, &globals),
            Command::Spec(a) => spec::run(a, &globals),
            Command::List(a) => list::run(a, &globals),
            Command::Features(a) => features::run(a, &globals),
            Command::Ps(a) => ps::run(a, &globals),
            Command::Exec(a) => exec::run(a, &globals),
            Command::Pause(a) => pause::pause(a, &globals),
            Command::Resume(a) => pause::resume(a, &globals),
            Command::Update(a) => update::run(a, &globals),
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                globals.log.write("error", &e.to_string());
                1
            }
        }
    }
}

/// Where errors go: runc writes them to the --log file (JSON lines with lowercase `level`,
/// `msg`, `time`, which containerd and podman parse) and to stderr.
struct Log {
    file: Option<PathBuf>,
    json: bool,
}

impl Log {
    fn write(&self, level: &str, msg: &str) {
        eprintln!("lasso-runc: {level}: {msg}");
        let Some(path) = &self.file else { return };
        let line = if self.json {
            let time = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
        } else {
            format!("{level}: {msg}")
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Prints a value as pretty JSON on stdout.
fn print_json<T: serde::Serialize>(v: &T) -> Result<(), RuncError> {
    let text = serde_json::to_string_pretty(v).expect("serialisable");
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lasso_profile_is_a_global_flag_before_the_subcommand() {
        // The argv Docker's wrapper for a daemon.json `runtimeArgs` entry produces, with the
        // global flags containerd's shim adds after it.
        let cli = Cli::try_parse_from([
            "lasso-runc",
            "--lasso-profile",
            "standard",
            "--lasso-audit",
            "/var/log/x",
            "--root",
            "/run/x",
            "--log",
            "/b/log.json",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "id1",
        ])
        .unwrap();
        assert_eq!(cli.lasso_profile.as_deref(), Some("standard"));
        assert_eq!(cli.lasso_audit, Some(PathBuf::from("/var/log/x")));
        assert!(matches!(cli.command, Command::Create(_)));
    }
}
