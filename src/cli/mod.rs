//! The `lasso` command line: clap definitions and thin handlers that call the library.
//! Nothing here decides anything a test or the dashboard would need; each subcommand lives in
//! its own file.

pub mod agents;
pub mod audit;
pub mod doctor;
pub mod error;
pub mod fast;
pub mod image;
pub mod prebuild;
pub mod profile;
pub mod sandbox;
pub mod why;

use clap::{Parser, Subcommand};
pub use error::{exit, CliError, CliResult};

/// Run AI coding agents in sandboxes made of native Linux isolation.
#[derive(Debug, Parser)]
#[command(name = "lasso", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace). Logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Log filter (error, warn, info, debug, trace, or a tracing directive); overrides -v.
    #[arg(long, global = true, env = "LASSO_LOG", value_name = "LEVEL")]
    pub log_level: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

// `defer`: a subcommand's arguments are built only when that subcommand is parsed or its help
// shown (clap's lazy build), not all of them for every command: a `lasso run` built the flags
// of every subcommand before parsing its own. With `defer`, the doc comment of an Args struct
// would replace its subcommand's about (it is applied after it): those are plain comments.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Report what this host supports (user namespaces, Landlock, seccomp, cgroups, pasta, nft)
    /// and what lasso will do with it. Exit 1 when a required feature is missing.
    Doctor(doctor::DoctorArgs),
    /// List the agents lasso knows, whether each is installed, and where.
    Agents(agents::AgentsArgs),
    /// Run a command in a one-shot sandbox in the foreground; the exit status is the command's.
    Run(sandbox::RunArgs),
    /// Start a sandbox with its agent and attach this terminal (detach: ctrl-p ctrl-q).
    Up(sandbox::UpArgs),
    /// Re-attach this terminal to a running sandbox.
    Attach(sandbox::AttachArgs),
    /// A shell in a running sandbox, or in a new one.
    Shell(sandbox::ShellArgs),
    /// Run a command in a running sandbox.
    Exec(sandbox::ExecArgs),
    /// List the running sandboxes.
    Status(sandbox::StatusArgs),
    /// Stop a sandbox: SIGTERM, a grace period, then SIGKILL.
    Stop(sandbox::StopArgs),
    /// Stop every sandbox.
    Down(sandbox::DownArgs),
    /// Read, verify and manage the tamper-evident audit logs.
    Audit(audit::AuditArgs),
    /// Show whether a command would be allowed, by which rule and why (exit 0 allowed, 1 blocked).
    Why(why::WhyArgs),
    /// List, show, validate and compare security profiles.
    Profile(profile::ProfileArgs),
    /// Manage OCI images: pull, import, list, inspect, rm, prune, unpack.
    Image(image::ImageArgs),
    /// Build the agent images (Dockerfile.images) with buildah, podman or docker and import them
    /// as lasso/<agent>:<version>.
    Prebuild(prebuild::PrebuildArgs),
}

impl Cli {
    /// `Cli::parse()` of this process's arguments; the plain forms of `lasso run` are read
    /// without building clap's command, to the same result (see `fast`).
    pub fn from_env() -> Cli {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        fast::parse_run(&args).unwrap_or_else(|| Cli::parse_from(args))
    }

    /// Runs the chosen subcommand and returns the process exit status.
    pub fn run(self) -> CliResult {
        match self.command {
            Command::Doctor(args) => doctor::run(args),
            Command::Agents(args) => agents::run(args),
            Command::Run(args) => sandbox::run(args),
            Command::Up(args) => sandbox::up(args),
            Command::Attach(args) => sandbox::attach(args),
            Command::Shell(args) => sandbox::shell(args),
            Command::Exec(args) => sandbox::exec(args),
            Command::Status(args) => sandbox::status(args),
            Command::Stop(args) => sandbox::stop(args),
            Command::Down(args) => sandbox::down(args),
            Command::Audit(args) => args.run(),
            Command::Why(a) => why::run(a),
            Command::Profile(a) => profile::run(a),
            Command::Image(args) => image::run(args),
            Command::Prebuild(args) => prebuild::run(args),
        }
    }
}

/// Sets up `tracing` from `-v` / `--log-level` / `LASSO_LOG`. Logs go to stderr so that
/// machine-readable output on stdout stays clean.
pub fn init_logging(verbose: u8, level: Option<&str>) -> Result<(), CliError> {
    use tracing_subscriber::EnvFilter;
    let directive = match (level, verbose) {
        (Some(l), _) => l.to_string(),
        (None, 0) => "warn".into(),
        (None, 1) => "info".into(),
        (None, 2) => "debug".into(),
        (None, _) => "trace".into(),
    };
    let filter = EnvFilter::try_new(&directive).map_err(|e| {
        CliError::usage(format!("invalid log level {directive:?}: {e}")).hint(
            "use one of error, warn, info, debug, trace (or a tracing directive like lasso=debug)",
        )
    })?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_tree_is_consistent_with_deferred_subcommands() {
        // Builds every subcommand, deferred ones included, and checks clap's invariants.
        Cli::command().debug_assert();
    }

    #[test]
    fn deferred_subcommand_help_keeps_the_variants_about() {
        // With `defer`, an Args struct's doc comment would replace the subcommand's about: the
        // help of `run` must still say what `run` does.
        let err = Cli::try_parse_from(["lasso", "run", "--help"]).unwrap_err();
        let help = err.to_string();
        assert!(
            help.starts_with("Run a command in a one-shot sandbox"),
            "{help}"
        );
        for (sub, about) in [
            ("up", "Start a sandbox with its agent"),
            ("audit", "Read, verify and manage"),
            (
                "image",
                "Manage OCI images: pull, import, list, inspect, rm",
            ),
            ("prebuild", "Build the agent images (Dockerfile.images)"),
        ] {
            let help = Cli::try_parse_from(["lasso", sub, "--help"])
                .unwrap_err()
                .to_string();
            assert!(help.starts_with(about), "{sub}: {help}");
        }
    }

    #[test]
    fn deferred_subcommand_still_parses_its_flags_and_globals() {
        let cli = Cli::try_parse_from(["lasso", "run", "-vv", "--profile", "strict", "--", "true"])
            .unwrap();
        assert_eq!(cli.verbose, 2);
        match cli.command {
            Command::Run(r) => {
                assert_eq!(r.sandbox.profile, "strict");
                assert_eq!(r.command, vec!["true".to_string()]);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["lasso", "run", "--no-such-flag"]).is_err());
    }
}
