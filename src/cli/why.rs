//! `lasso why`: prints the policy decision for each command in a shell string, and the verdict.
//! Exit status 0 allowed, 1 blocked, 2 usage or configuration error.

use super::error::{exit, CliError, CliResult};
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

    /// The command, as a shell string or as words (joined with spaces and parsed as shell).
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Loads the profile named by --profile / --profile-file, as every policy subcommand does.
pub fn load_profile(profile: &str, file: Option<&PathBuf>) -> CliResult<ResolvedProfile> {
    let dirs = Dirs::current();
    let res = match file {
        Some(f) => policy::ProfileSource::file(f).and_then(|s| policy::resolve(s, &dirs)),
        None => policy::load(profile, &dirs),
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
