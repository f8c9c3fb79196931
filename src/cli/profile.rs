//! `lasso profile list | show NAME [--resolved] | validate FILE | diff A B`.

use super::error::{exit, CliError, CliResult};
use super::why::{load_profile, profile_error};
use crate::paths::Dirs;
use crate::policy::{self, ProfileSource};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub command: ProfileCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// List built-in and user profiles.
    List,
    /// Print a profile's TOML, or with --resolved the merged result of its `extends` chain.
    Show {
        /// A built-in, a user profile name, or a path.
        name: String,
        /// Print the resolved profile (every inherited value, with rule origins).
        #[arg(long)]
        resolved: bool,
        /// With --resolved: print JSON instead of TOML.
        #[arg(long, requires = "resolved")]
        json: bool,
    },
    /// Check a profile file: syntax, keys, types, values and its `extends` chain.
    Validate { file: PathBuf },
    /// Show how two resolved profiles differ (exit 0 same, 1 different).
    Diff { a: String, b: String },
}

pub fn run(args: ProfileArgs) -> CliResult {
    let dirs = Dirs::current();
    match args.command {
        ProfileCommand::List => {
            for (name, _) in policy::BUILTINS {
                let p = policy::load(name, &dirs).map_err(profile_error)?;
                println!("{name:<12} built-in  {}", p.description);
            }
            for name in policy::user_profile_names(&dirs) {
                match policy::load(&name, &dirs) {
                    Ok(p) => println!("{name:<12} user      {}", p.description),
                    Err(e) => println!("{name:<12} user      (does not load: {e})"),
                }
            }
            Ok(exit::OK)
        }
        ProfileCommand::Show {
            name,
            resolved: false,
            ..
        } => {
            let src = ProfileSource::find(&name, &dirs, None).map_err(profile_error)?;
            println!("# {}", src.origin);
            print!("{}", src.text);
            Ok(exit::OK)
        }
        ProfileCommand::Show {
            name,
            resolved: true,
            json,
        } => {
            let p = load_profile(&name, None)?;
            let text = if json {
                serde_json::to_string_pretty(&p).map_err(|e| CliError::failure(e.to_string()))?
            } else {
                toml::to_string(&p).map_err(|e| CliError::failure(e.to_string()))?
            };
            println!(
                "# resolved from {}\n# digest sha256:{}",
                p.chain.join(" -> "),
                p.digest()
            );
            println!("{text}");
            Ok(exit::OK)
        }
        ProfileCommand::Validate { file } => {
            let src = ProfileSource::file(&file).map_err(profile_error)?;
            let p = policy::resolve(src, &dirs).map_err(profile_error)?;
            println!(
                "ok: {} ({}), digest sha256:{}",
                p.name,
                p.chain.join(" -> "),
                p.digest()
            );
            Ok(exit::OK)
        }
        ProfileCommand::Diff { a, b } => {
            let (pa, pb) = (load_profile(&a, None)?, load_profile(&b, None)?);
            let lines = diff(&pa, &pb);
            for l in &lines {
                println!("{l}");
            }
            Ok(if lines.is_empty() {
                exit::OK
            } else {
                exit::NEGATIVE
            })
        }
    }
}

/// Key-by-key differences of two resolved profiles, ignoring where rules were written.
pub fn diff(a: &policy::ResolvedProfile, b: &policy::ResolvedProfile) -> Vec<String> {
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    flatten(
        "",
        &strip(serde_json::to_value(a).unwrap_or_default()),
        &mut fa,
    );
    flatten(
        "",
        &strip(serde_json::to_value(b).unwrap_or_default()),
        &mut fb,
    );
    let mut out = Vec::new();
    for (k, v) in &fa {
        match fb.iter().find(|(kb, _)| kb == k) {
            Some((_, vb)) if vb == v => {}
            Some((_, vb)) => out.push(format!("~ {k}: {v} -> {vb}")),
            None => out.push(format!("- {k}: {v}")),
        }
    }
    for (k, v) in &fb {
        if !fa.iter().any(|(ka, _)| ka == k) {
            out.push(format!("+ {k}: {v}"));
        }
    }
    out
}

/// Rule origins differ between any two files; a diff is about meaning.
fn strip(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !matches!(k.as_str(), "source" | "mode_source" | "chain"))
                .map(|(k, v)| (k, strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip).collect()),
        other => other,
    }
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Array(a) => {
            for item in a {
                let label = item
                    .get("name")
                    .or_else(|| item.get("pattern"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| item.to_string());
                out.push((format!("{prefix}[{label}]"), item.to_string()));
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}
