//! `lasso why`: prints the policy decision for each command in a shell string, and the verdict.
//! With `--net HOST[:PORT]` it explains the network decision for a destination instead.
//! Exit status 0 allowed, 1 blocked, 2 usage or configuration error.

use super::error::{exit, CliError, CliResult};
use crate::net;
use crate::paths::Dirs;
use crate::policy::{self, Outcome, ResolvedProfile, Verdict};
use serde::Serialize;
use std::ffi::OsString;
use std::path::PathBuf;

/// Version of the `--json` object; bumped only on incompatible changes (documented in README).
pub const JSON_VERSION: u32 = 1;

#[derive(Debug, clap::Args)]
pub struct WhyArgs {
    /// Profile: a built-in, a user profile name, or a path to a .toml file.
    #[arg(long, short = 'p', default_value = "standard", value_name = "PROFILE")]
    pub profile: String,

    /// A profile file (same as --profile with a path).
    #[arg(long, value_name = "PATH", conflicts_with = "profile")]
    pub profile_file: Option<PathBuf>,

    /// Print one JSON object (schema in the README) instead of text.
    #[arg(long)]
    pub json: bool,

    /// Explain the network decision for a host name or IP address (port 443 unless given)
    /// instead of a command.
    #[arg(long, value_name = "HOST[:PORT]", conflicts_with = "command")]
    pub net: Option<String>,

    /// The command, as a shell string or as words (joined with spaces and parsed as shell).
    #[arg(
        required_unless_present = "net",
        trailing_var_arg = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

/// Loads the profile named by --profile / --profile-file, as every policy subcommand does.
pub fn load_profile(profile: &str, file: Option<&PathBuf>) -> CliResult<ResolvedProfile> {
    load_profile_digested(profile, file).map(|(p, _)| p)
}

/// `load_profile`, with the profile's digest when loading gave it for free (a built-in's
/// snapshot, `policy::load_digested`); `None` means the caller computes it.
pub fn load_profile_digested(
    profile: &str,
    file: Option<&PathBuf>,
) -> CliResult<(ResolvedProfile, Option<String>)> {
    let dirs = Dirs::current();
    let res = match file {
        Some(f) => policy::ProfileSource::file(f).and_then(|s| policy::resolve_digested(s, &dirs)),
        None => policy::load_digested(profile, &dirs),
    };
    res.map_err(profile_error)
}

pub fn profile_error(e: policy::ProfileError) -> CliError {
    let hint = e.hint();
    let err = CliError::usage(e.to_string());
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

#[derive(Serialize)]
struct JsonOut<'a> {
    version: u32,
    profile: &'a str,
    profile_digest: String,
    command: &'a str,
    #[serde(flatten)]
    verdict: &'a Verdict,
}

pub fn run(args: WhyArgs) -> CliResult {
    if let Some(target) = &args.net {
        return run_net(&args, target);
    }
    let mut words = Vec::with_capacity(args.command.len());
    for (i, w) in args.command.iter().enumerate() {
        let s = w.to_str().ok_or_else(|| {
            CliError::usage(format!("word {} of the command is not valid UTF-8", i + 1)).hint(
                "shell command strings must be UTF-8; pass the bytes through the exec gate instead",
            )
        })?;
        words.push(s);
    }
    let command = words.join(" ");
    let profile = load_profile(&args.profile, args.profile_file.as_ref())?;
    let verdict = policy::decide_shell(&profile, &command);
    if args.json {
        let out = JsonOut {
            version: JSON_VERSION,
            profile: &profile.name,
            profile_digest: profile.digest(),
            command: &command,
            verdict: &verdict,
        };
        let text =
            serde_json::to_string_pretty(&out).map_err(|e| CliError::failure(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", render(&profile, &verdict));
    }
    Ok(if verdict.allowed() {
        exit::OK
    } else {
        exit::NEGATIVE
    })
}

fn word(o: Outcome) -> &'static str {
    match o {
        Outcome::Allowed => "allowed",
        Outcome::Blocked => "blocked",
        Outcome::Undecidable => "undecidable",
    }
}

/// The text form: one block per decision, then the verdict line.
pub fn render(profile: &ResolvedProfile, v: &Verdict) -> String {
    let mut s = String::new();
    for d in &v.decisions {
        let via = if d.via.is_empty() {
            String::new()
        } else {
            format!(" (via {})", d.via.join(" → "))
        };
        s.push_str(&format!("{:<11} {}{via}\n", word(d.outcome), d.command));
        let cat = d
            .category
            .as_deref()
            .map(|c| format!(" [{c}]"))
            .unwrap_or_default();
        s.push_str(&format!("            {}{cat}\n", d.reason));
        if let Some(r) = &d.rule {
            s.push_str(&format!("            rule: {r}\n"));
        }
    }
    if v.decisions.is_empty() {
        s.push_str("(no command to run)\n");
    }
    s.push_str(&format!(
        "verdict: {} (profile {}, {} mode)\n",
        word(v.outcome),
        profile.name,
        match v.mode {
            policy::CommandMode::Blocklist => "blocklist",
            policy::CommandMode::Allowlist => "allowlist",
        }
    ));
    s
}

#[derive(Serialize)]
struct NetJsonOut<'a> {
    version: u32,
    profile: &'a str,
    profile_digest: String,
    target: &'a str,
    port: u16,
    mode: crate::policy::NetworkMode,
    #[serde(flatten)]
    verdict: &'a net::explain::NetVerdict,
    /// Hosts found for each ecosystem of `registries` in the user's tool configuration.
    registries: std::collections::BTreeMap<String, Vec<String>>,
}

/// `why --net`: the egress decision for one destination, without any lookup.
fn run_net(args: &WhyArgs, raw: &str) -> CliResult {
    let target = net::explain::Target::parse(raw).map_err(|e| CliError::usage(e.to_string()))?;
    let profile = load_profile(&args.profile, args.profile_file.as_ref())?;
    let n = &profile.network;
    let egress = policy::net::egress_policy(n, &[])
        .validate()
        .map_err(|e| CliError::usage(format!("profile {}: [network] {e}", profile.name)))?;
    let registries: Vec<(String, Vec<String>)> = n
        .registries
        .iter()
        .map(|e| (e.clone(), net::registries::discover(e)))
        .collect();
    let verdict = net::explain::explain(&egress, &registries, &target);
    if args.json {
        let out = NetJsonOut {
            version: JSON_VERSION,
            profile: &profile.name,
            profile_digest: profile.digest(),
            target: raw,
            port: target.port,
            mode: n.mode,
            verdict: &verdict,
            registries: registries.iter().cloned().collect(),
        };
        let text =
            serde_json::to_string_pretty(&out).map_err(|e| CliError::failure(e.to_string()))?;
        println!("{text}");
    } else {
        let host = match &target.host {
            net::explain::Host::Name(h) => h.clone(),
            net::explain::Host::Ip(ip) => ip.to_string(),
        };
        println!(
            "{:<11} {host} port {}",
            if verdict.allowed {
                "allowed"
            } else {
                "blocked"
            },
            target.port
        );
        println!("            {}", verdict.reason);
        for (eco, hosts) in &registries {
            if hosts.is_empty() {
                println!("            registry {eco}: no host in your {eco} configuration, so none is allowed");
            }
        }
        println!(
            "verdict: {} (profile {}, network mode {})",
            if verdict.allowed {
                "allowed"
            } else {
                "blocked"
            },
            profile.name,
            serde_json::to_value(n.mode)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        );
    }
    Ok(if verdict.allowed {
        exit::OK
    } else {
        exit::NEGATIVE
    })
}
