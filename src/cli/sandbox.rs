//! `lasso run`, `up`, `attach`, `shell`, `exec`, `status`, `stop`, `down`: flag parsing and
//! the translation of flags into a plan input. Everything that acts lives in `crate::sandbox`.

use super::{exit, CliError, CliResult};
use crate::agents;
use crate::paths::Dirs;
use crate::plan::{self, EnvRequest, HostContext, PlanInput};
use crate::sandbox::{self, Launch, LaunchOptions, SandboxError};
use std::path::PathBuf;

// What starts a new sandbox (shared by `run`, `up` and `shell --dir`).
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// The project directory, mounted at /workspace.
    #[arg(long, short = 'd', default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
    /// The security profile: a built-in (`lasso profile list`), a user profile, or a path.
    #[arg(long, short = 'p', default_value = "standard", value_name = "PROFILE")]
    pub profile: String,
    /// A profile file (overrides --profile).
    #[arg(long, value_name = "PATH")]
    pub profile_file: Option<PathBuf>,
    /// The agent (`lasso agents` lists them); `auto` picks the first installed.
    #[arg(long, short = 'a', value_name = "AGENT")]
    pub agent: Option<String>,
    /// Extra mount SRC:DST[:ro] (repeatable).
    #[arg(long = "mount", short = 'm', value_name = "SRC:DST[:ro]")]
    pub mounts: Vec<String>,
    /// Allow sensitive mount sources (`/`, `$HOME`, `/etc`, runtime sockets).
    #[arg(long)]
    pub allow_sensitive: bool,
    /// Allow `/` or your home directory as the workspace.
    #[arg(long)]
    pub force_dir: bool,
    /// Set KEY=VALUE inside (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Pass KEY from lasso's environment (repeatable).
    #[arg(long = "pass-env", value_name = "KEY")]
    pub pass_env: Vec<String>,
    /// Read KEY=VALUE lines from FILE (repeatable).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Forward the host's SSH agent socket (only the socket, never ~/.ssh).
    #[arg(long)]
    pub ssh_agent: bool,
    /// Memory limit in MiB (overrides the profile).
    #[arg(long, value_name = "MIB")]
    pub memory_mib: Option<u64>,
    /// Process limit (overrides the profile).
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,
    /// CPU limit in cores, e.g. 1.5 (overrides the profile).
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<f64>,
    /// Size of /tmp and /home/agent in MiB (overrides the profile).
    #[arg(long, value_name = "MIB")]
    pub tmp_mib: Option<u64>,
    /// Run on an image from lasso's store (`lasso image list`) instead of the host view: its
    /// layers, read-only, under a private writable layer removed with the sandbox.
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// The command to run; the agent's own command when empty.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

fn cli_err(e: SandboxError) -> CliError {
    match e {
        SandboxError::Plan(p) => CliError::usage(p.to_string()),
        SandboxError::NotFound { .. } | SandboxError::Refused(_) => CliError::usage(e.to_string()),
        other => CliError::failure(other.to_string()),
    }
}

/// The plan input for `args` and the launch options carrying its profile (nothing is written).
/// A profile that does not load is a usage error (exit 2) before anything starts.
pub fn plan_input(
    args: &SandboxArgs,
    command: Option<Vec<String>>,
    terminal: bool,
    default_agent: &str,
) -> CliResult<(PlanInput, LaunchOptions)> {
    let (profile, profile_digest) =
        super::why::load_profile_digested(&args.profile, args.profile_file.as_ref())?;
    crate::phases::mark("profile-loaded");
    let profile_source = match &args.profile_file {
        Some(f) => std::path::absolute(f)
            .unwrap_or_else(|_| f.clone())
            .display()
            .to_string(),
        None => args.profile.clone(),
    };
    let host = HostContext::current();
    let name = args.agent.as_deref().unwrap_or(default_agent);
    let agent = if name == "auto" {
        agents::auto_detect(&host.path)
    } else {
        agents::find(name).map_err(|e| CliError::usage(format!("--agent {name}: {e}")))?
    };
    let mut mounts = Vec::new();
    for m in &args.mounts {
        mounts.push(plan::parse_mount(m).map_err(|e| CliError::usage(e.to_string()))?);
    }
    // Relative paths are the user's, from the current directory.
    let dir = std::path::absolute(&args.dir)
        .map_err(|e| CliError::usage(format!("--dir {}: {e}", args.dir.display())))?;
    let mut input = PlanInput::new(agent, dir, PathBuf::new(), host);
    sandbox::profile::apply(&profile, &mut input);
    input.mounts = mounts;
    input.allow_sensitive = args.allow_sensitive;
    input.force_dir = args.force_dir;
    input.ssh_agent = args.ssh_agent;
    input.env = EnvRequest {
        set: args.env.clone(),
        pass: args.pass_env.clone(),
        files: args.env_files.clone(),
    };
    // Flags override the profile, limit by limit.
    if let Some(m) = args.memory_mib {
        input.resources.memory_bytes = Some(m << 20);
    }
    if let Some(p) = args.pids {
        input.resources.pids = Some(p);
    }
    if let Some(c) = args.cpus {
        input.resources.cpus = Some(c);
    }
    if let Some(t) = args.tmp_mib {
        input.resources.tmp_bytes = Some(t << 20);
    }
    input.image = super::prebuild::image_choice(
        args.image.as_deref(),
        profile.filesystem.image.as_deref(),
        agent,
    )?;
    input.command = command.filter(|c| !c.is_empty());
    input.terminal = terminal;
    // The agent's terminal has the user's size from its first instruction (a program that
    // reads it before the attach's first resize would otherwise see 0x0).
    input.console_size = terminal.then(|| sandbox::attach::window_size(0)).flatten();
    let opts = LaunchOptions {
        dirs: dirs(),
        // A limit typed on the command line is a demand: refuse rather than run unlimited.
        // A profile's limits are defaults for every machine: rootless without a delegated
        // cgroup they are dropped with a warning, so the built-ins still run there.
        require_limits: args.memory_mib.is_some() || args.pids.is_some() || args.cpus.is_some(),
        profile: Some(std::sync::Arc::new(profile)),
        profile_digest,
        profile_source,
    };
    Ok((input, opts))
}

/// lasso's directories, with the audit overrides `lasso audit` also reads, so that the log a
/// sandbox writes is the one `lasso audit verify` finds.
fn dirs() -> Dirs {
    let mut d = Dirs::current();
    if let Some(p) = std::env::var_os("LASSO_AUDIT_DIR").filter(|p| !p.is_empty()) {
        d.audit_logs = p.into();
    }
    if let Some(p) = std::env::var_os("LASSO_CONFIG_DIR").filter(|p| !p.is_empty()) {
        d.config = p.into();
    }
    d
}

fn print_warnings(launch: &Launch) {
    for w in &launch.warnings {
        eprintln!("lasso: warning: {w}");
    }
}

pub fn run(args: RunArgs) -> CliResult {
    let command = Some(args.command.clone());
    let (input, opts) = plan_input(&args.sandbox, command, false, "shell")?;
    crate::phases::mark("planned");
    sandbox::control::remove_dead(&opts.dirs);
    crate::phases::mark("dead-swept");
    let mut launch = Launch::prepare(input, &opts).map_err(cli_err)?;
    print_warnings(&launch);
    crate::phases::mark("prepared");
    let code = sandbox::run::run(&mut launch).map_err(cli_err)?;
    Ok(u8::try_from(code).unwrap_or(255))
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Start it without attaching this terminal (`lasso attach ID` later).
    #[arg(long)]
    pub detach: bool,
    /// The agent's command instead of its default arguments.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// The sandbox id (`lasso status` lists them).
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct ShellArgs {
    /// A running sandbox; without it, a new sandbox with a shell is started.
    pub id: Option<String>,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The sandbox id.
    pub id: String,
    /// The command.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// The sandbox id.
    pub id: String,
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(long, short = 't', default_value_t = 10)]
    pub time: u64,
}

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(long, short = 't', default_value_t = 10)]
    pub time: u64,
}

fn exit_status(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(255)
}

fn attach_to(dirs: &Dirs, id: &str) -> CliResult {
    let socket = sandbox::launch::sandbox_dir(dirs, id).join(sandbox::monitor::ATTACH_SOCKET);
    match sandbox::attach::attach(&socket).map_err(cli_err)? {
        sandbox::attach::Ended::Exited(code) => Ok(exit_status(code)),
        sandbox::attach::Ended::Detached => {
            eprintln!("\r\nlasso: detached from {id}; `lasso attach {id}` returns, `lasso stop {id}` ends it");
            Ok(exit::OK)
        }
    }
}

fn up_with(args: &SandboxArgs, command: Vec<String>, detach: bool, agent: &str) -> CliResult {
    let (input, opts) = plan_input(args, Some(command), true, agent)?;
    sandbox::control::remove_dead(&opts.dirs);
    let launch = Launch::prepare(input, &opts).map_err(cli_err)?;
    print_warnings(&launch);
    let id = launch.id().to_string();
    sandbox::monitor::spawn(launch).map_err(cli_err)?;
    if detach {
        println!("{id}");
        return Ok(exit::OK);
    }
    attach_to(&opts.dirs, &id)
}

pub fn up(args: UpArgs) -> CliResult {
    up_with(&args.sandbox, args.command, args.detach, "auto")
}

pub fn attach(args: AttachArgs) -> CliResult {
    let dirs = dirs();
    sandbox::control::find(&dirs, &args.id).map_err(cli_err)?;
    attach_to(&dirs, &args.id)
}

pub fn shell(args: ShellArgs) -> CliResult {
    let dirs = dirs();
    match args.id {
        Some(id) => {
            let cmd = ["/bin/sh".to_string(), "-l".to_string()];
            ended(sandbox::gated_exec::run(&dirs, &id, &cmd, true).map_err(cli_err)?)
        }
        None => up_with(
            &args.sandbox,
            vec!["/bin/sh".into(), "-l".into()],
            false,
            "shell",
        ),
    }
}

pub fn exec(args: ExecArgs) -> CliResult {
    let dirs = dirs();
    ended(sandbox::gated_exec::run(&dirs, &args.id, &args.command, false).map_err(cli_err)?)
}

/// A session's end as an exit status: the command's, or 126 with the reason when the profile
/// refused it.
fn ended(e: sandbox::gated_exec::Ended) -> CliResult {
    match e {
        sandbox::gated_exec::Ended::Exited(code) => Ok(exit_status(code)),
        sandbox::gated_exec::Ended::Blocked(reason) => {
            eprintln!("lasso: blocked: {reason}");
            Ok(exit::BLOCKED)
        }
    }
}

#[derive(serde::Serialize)]
struct StatusRow<'a> {
    id: &'a str,
    agent: &'a str,
    profile: &'a str,
    dir: &'a std::path::Path,
    /// `none`, `allowlist` or `full`; `unknown` for a record from before the field existed.
    network: &'a str,
    state: sandbox::SandboxState,
    uptime_secs: i64,
    created: &'a str,
    init_pid: i32,
    monitor_pid: i32,
    /// Execs the gate let run, and refused or killed.
    execs_allowed: u64,
    execs_blocked: u64,
}

fn uptime(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

pub fn status(args: StatusArgs) -> CliResult {
    let dirs = dirs();
    let records = sandbox::control::list(&dirs);
    let rows: Vec<StatusRow> = records
        .iter()
        .map(|r| {
            (
                r,
                sandbox::gate_link::read_counts(&sandbox::launch::sandbox_dir(&dirs, &r.id)),
            )
        })
        .map(|(r, c)| StatusRow {
            id: &r.id,
            agent: &r.agent,
            profile: &r.profile,
            dir: &r.dir,
            network: if r.network.is_empty() {
                "unknown"
            } else {
                &r.network
            },
            state: r.state,
            uptime_secs: r.uptime_secs(),
            created: &r.created,
            init_pid: r.init_pid,
            monitor_pid: r.monitor_pid,
            execs_allowed: c.allowed,
            execs_blocked: c.blocked,
        })
        .collect();
    if args.json {
        let text = serde_json::to_string_pretty(&rows)
            .map_err(|e| CliError::failure(format!("cannot encode JSON: {e}")))?;
        println!("{text}");
        return Ok(exit::OK);
    }
    println!(
        "{:<9} {:<12} {:<10} {:<10} {:<9} {:<8} {:<8} {:<8} DIR",
        "ID", "AGENT", "PROFILE", "NETWORK", "STATE", "UPTIME", "ALLOWED", "BLOCKED"
    );
    for r in &rows {
        let state = serde_json::to_value(r.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        println!(
            "{:<9} {:<12} {:<10} {:<10} {:<9} {:<8} {:<8} {:<8} {}",
            r.id,
            r.agent,
            r.profile,
            r.network,
            state,
            uptime(r.uptime_secs),
            r.execs_allowed,
            r.execs_blocked,
            r.dir.display()
        );
    }
    Ok(exit::OK)
}

pub fn stop(args: StopArgs) -> CliResult {
    let dirs = dirs();
    sandbox::control::stop(&dirs, &args.id, std::time::Duration::from_secs(args.time))
        .map_err(cli_err)?;
    Ok(exit::OK)
}

pub fn down(args: DownArgs) -> CliResult {
    let dirs = dirs();
    let mut failed = None;
    for r in sandbox::control::list(&dirs) {
        if let Err(e) =
            sandbox::control::stop(&dirs, &r.id, std::time::Duration::from_secs(args.time))
        {
            eprintln!("lasso: stop {}: {e}", r.id);
            failed = Some(e);
        }
    }
    match failed {
        Some(e) => Err(cli_err(e)),
        None => Ok(exit::OK),
    }
}
