//! `lasso audit list|view|verify|rotate-key`: thin handlers over `crate::audit`. Paths are
//! injectable (`--log-dir`/`LASSO_AUDIT_DIR`, `--config-dir`/`LASSO_CONFIG_DIR`) so that tests and
//! root never have to touch `/etc/lasso` or `/var/log/lasso` to try something.

use super::{exit, CliError, CliResult};
use crate::audit::{
    self, AuditError, DamageClass, Entry, EntryReader, KeyRing, Kind, LogFiles, Outcome,
};
use crate::paths::Dirs;
use clap::{Args, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

// Read, check and manage the tamper-evident audit logs.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Directory of the audit logs [default: $XDG_STATE_HOME/lasso/audit; root: /var/log/lasso/audit].
    #[arg(long, global = true, env = "LASSO_AUDIT_DIR", value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Directory of the audit key ring (audit.key, audit-keys/) [default: $XDG_CONFIG_HOME/lasso; root: /etc/lasso].
    #[arg(long, global = true, env = "LASSO_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List logs: sandbox, agent, profile, time range, entry count, sealed or not.
    List {
        /// One JSON object per log instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a log's entries (it does not verify them: use `verify` for that).
    View(ViewArgs),
    /// Check a log's hash chain, seal and head: exit 0 intact, 1 damaged (with the first bad seq).
    Verify(VerifyArgs),
    /// Start a new audit key; old keys stay in the ring to verify old logs.
    RotateKey,
}

#[derive(Debug, Args)]
pub struct ViewArgs {
    /// Sandbox id, or path of a log file.
    pub log: String,
    /// Print the raw JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Keep printing entries as they are written, until the log is sealed.
    #[arg(short, long)]
    pub follow: bool,
    /// Only entries of this kind (genesis, sandbox.start, sandbox.stop, exec, dns, net, mount, policy, seal).
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<Kind>,
    /// Only entries with this outcome (allowed, blocked, error, info).
    #[arg(long, value_parser = parse_outcome)]
    pub outcome: Option<Outcome>,
    /// Only entries at or after T: RFC 3339 (2026-01-02T03:04:05Z) or an age such as 30s, 10m, 2h, 1d.
    #[arg(long, value_name = "T", value_parser = parse_since)]
    pub since: Option<OffsetDateTime>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Sandbox id, or path of a log file. Without it, every log is verified (as --all).
    #[arg(conflicts_with = "all")]
    pub log: Option<String>,
    /// Verify every log in the log directory.
    #[arg(long)]
    pub all: bool,
    /// Verify with this key file alone instead of the key ring.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s).ok_or_else(|| {
        let all: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown kind {s:?}; use one of {}", all.join(", "))
    })
}

fn parse_outcome(s: &str) -> Result<Outcome, String> {
    Outcome::parse(s)
        .ok_or_else(|| format!("unknown outcome {s:?}; use one of allowed, blocked, error, info"))
}

fn parse_since(s: &str) -> Result<OffsetDateTime, String> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is neither an RFC 3339 time nor an age like 10m"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: the unit of an age is s, m, h or d")),
    };
    Ok(OffsetDateTime::now_utc() - time::Duration::seconds(secs))
}

impl AuditArgs {
    pub fn run(self) -> CliResult {
        let dirs = Dirs::current();
        let log_dir = self.log_dir.unwrap_or(dirs.audit_logs);
        let config_dir = self.config_dir.unwrap_or(dirs.config);
        match self.command {
            AuditCommand::List { json } => list(&log_dir, json),
            AuditCommand::View(v) => view(&log_dir, v),
            AuditCommand::Verify(v) => verify(&log_dir, &config_dir, v),
            AuditCommand::RotateKey => rotate_key(&config_dir),
        }
    }
}

fn cli_err(e: AuditError) -> CliError {
    match e {
        AuditError::Io { .. } => CliError::failure(e.to_string()),
        _ => CliError::usage(e.to_string()),
    }
}

/// A sandbox id or a path: anything with a `/` or ending in `.jsonl` is a path.
fn resolve(log_dir: &Path, arg: &str) -> Result<PathBuf, CliError> {
    let path = if arg.contains('/') || arg.ends_with(".jsonl") {
        PathBuf::from(arg)
    } else {
        LogFiles::new(log_dir, arg)
            .map_err(cli_err)?
            .segment_path(0)
    };
    if !path.exists() {
        return Err(CliError::usage(format!("no audit log {}", path.display()))
            .hint(format!("`lasso audit list` shows the logs in {} (set --log-dir or LASSO_AUDIT_DIR for another directory)", log_dir.display())));
    }
    Ok(path)
}

fn list(log_dir: &Path, json: bool) -> CliResult {
    let logs = audit::list_logs(log_dir).map_err(cli_err)?;
    let mut out = std::io::stdout().lock();
    if !json {
        if logs.is_empty() {
            eprintln!("no audit logs in {}", log_dir.display());
            return Ok(exit::OK);
        }
        let _ = writeln!(
            out,
            "{:<24} {:<12} {:<12} {:<30} {:<30} {:>8} STATE",
            "SANDBOX", "AGENT", "PROFILE", "FIRST", "LAST", "ENTRIES"
        );
    }
    for files in logs {
        let s = audit::summarize(&files).map_err(cli_err)?;
        if json {
            let _ = writeln!(out, "{}", serde_json::to_string(&s).unwrap_or_default());
        } else {
            let _ = writeln!(
                out,
                "{:<24} {:<12} {:<12} {:<30} {:<30} {:>8} {}",
                s.sandbox,
                s.agent.as_deref().unwrap_or("-"),
                s.profile.as_deref().unwrap_or("-"),
                s.first_ts.as_deref().unwrap_or("-"),
                s.last_ts.as_deref().unwrap_or("-"),
                s.entries,
                if s.sealed { "sealed" } else { "unsealed" }
            );
        }
    }
    Ok(exit::OK)
}

fn view(log_dir: &Path, v: ViewArgs) -> CliResult {
    let path = resolve(log_dir, &v.log)?;
    let mut reader = EntryReader::open(&path).map_err(cli_err)?;
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = std::io::stdout().lock();
    if !v.json {
        let _ = writeln!(
            out,
            "{:<30} {:>6} {:<13} {:<8} WHAT",
            "TIME", "SEQ", "KIND", "OUTCOME"
        );
    }
    loop {
        let Some((entry, raw)) = reader.next_entry().map_err(cli_err)? else {
            if v.follow {
                let _ = out.flush();
                std::thread::sleep(std::time::Duration::from_millis(200));
                continue;
            }
            return Ok(exit::OK);
        };
        let done = v.follow && entry.is_final_seal();
        if keep(&v, &entry) {
            let res = if v.json {
                out.write_all(&raw).and_then(|()| out.write_all(b"\n"))
            } else {
                writeln!(out, "{}", row(&entry, color))
            };
            // A closed pipe (`| head`) ends the listing quietly.
            if res.is_err() {
                return Ok(exit::OK);
            }
        }
        if done {
            return Ok(exit::OK);
        }
    }
}

fn keep(v: &ViewArgs, e: &Entry) -> bool {
    v.kind.is_none_or(|k| k.as_str() == e.kind)
        && v.outcome.is_none_or(|o| o.as_str() == e.outcome)
        && v.since
            .is_none_or(|t| OffsetDateTime::parse(&e.ts, &Rfc3339).is_ok_and(|ts| ts >= t))
}

fn row(e: &Entry, color: bool) -> String {
    let what = match e.kind.as_str() {
        "exec" => {
            let argv = audit::ExecDetails::from_value(&e.details)
                .map(|d| {
                    d.argv
                        .iter()
                        .map(|a| quote(&String::from_utf8_lossy(a)))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            format!("{argv}  ({})", e.reason)
        }
        "dns" | "net" => {
            let target = ["name", "host", "dst", "addr"]
                .iter()
                .find_map(|k| e.details.get(*k))
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_default();
            format!("{target}  ({})", e.reason)
        }
        _ => e.reason.clone(),
    };
    let outcome = if e.outcome == "blocked" {
        "BLOCKED".to_string()
    } else {
        e.outcome.clone()
    };
    let line = format!(
        "{:<30} {:>6} {:<13} {:<8} {}",
        e.ts,
        e.seq,
        e.kind,
        outcome,
        what.replace(['\n', '\r'], " ")
    );
    if color && e.outcome == "blocked" {
        format!("\x1b[1;31m{line}\x1b[0m")
    } else {
        line
    }
}

/// Shell-style quoting, so that an argv with spaces reads unambiguously.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn verify(log_dir: &Path, config_dir: &Path, v: VerifyArgs) -> CliResult {
    let ring = match &v.key {
        Some(k) => KeyRing::from_key_file(k),
        None => KeyRing::load(config_dir),
    }
    .map_err(cli_err)?;
    let paths = match &v.log {
        Some(arg) => vec![resolve(log_dir, arg)?],
        None => {
            let logs = audit::list_logs(log_dir).map_err(cli_err)?;
            if logs.is_empty() {
                return Err(
                    CliError::usage(format!("no audit logs in {}", log_dir.display()))
                        .hint("set --log-dir or LASSO_AUDIT_DIR to the directory holding the logs"),
                );
            }
            logs.iter().map(|f| f.segment_path(0)).collect()
        }
    };
    let mut code = exit::OK;
    for path in paths {
        let rep = audit::verify(&path, &ring).map_err(cli_err)?;
        println!("{rep}");
        if let Some(d) = &rep.damage {
            code = exit::NEGATIVE;
            if d.class == DamageClass::UnknownKey {
                eprintln!("  hint: copy the key file of that key into {}/audit-keys/ (or pass --key FILE)", ring.dir().display());
            }
        }
    }
    Ok(code)
}

fn rotate_key(config_dir: &Path) -> CliResult {
    let mut ring = KeyRing::open(config_dir).map_err(cli_err)?;
    let old = ring.current().id().to_string();
    let new = ring.rotate().map_err(cli_err)?.id().to_string();
    println!(
        "new audit key {new} (previous key {old} stays in {}/audit-keys/ to verify older logs)",
        config_dir.display()
    );
    Ok(exit::OK)
}
