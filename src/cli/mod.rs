//! The `lasso` command line: clap definitions and thin handlers that call the library.
//! Nothing here decides anything a test or the dashboard would need; each subcommand lives in
//! its own file.

pub mod agents;
pub mod audit;
pub mod doctor;
pub mod error;

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report what this host supports (user namespaces, Landlock, seccomp, cgroups, pasta, nft)
    /// and what lasso will do with it. Exit 1 when a required feature is missing.
    Doctor(doctor::DoctorArgs),
    /// List the agents lasso knows, whether each is installed, and where.
    Agents(agents::AgentsArgs),
    /// Read, verify and manage the tamper-evident audit logs.
    Audit(audit::AuditArgs),
}

impl Cli {
    /// Runs the chosen subcommand and returns the process exit status.
    pub fn run(self) -> CliResult {
        match self.command {
            Command::Doctor(args) => doctor::run(args),
            Command::Agents(args) => agents::run(args),
            Command::Audit(args) => args.run(),
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
