//! `lasso agents`: the known agents, whether each is installed, and where.

use super::{exit, CliResult};
use crate::agents::AGENTS;

#[derive(Debug, clap::Args)]
pub struct AgentsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, serde::Serialize)]
struct Row {
    name: &'static str,
    description: &'static str,
    installed: bool,
    path: Option<String>,
    real_path: Option<String>,
}

pub fn run(args: AgentsArgs) -> CliResult {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let rows: Vec<Row> = AGENTS
        .iter()
        .map(|a| {
            let found = a.installed_in(&path);
            Row {
                name: a.name,
                description: a.description,
                installed: found.is_some(),
                path: found.as_ref().map(|f| f.on_path.display().to_string()),
                real_path: found.as_ref().map(|f| f.real.display().to_string()),
            }
        })
        .collect();
    if args.json {
        let text = serde_json::to_string_pretty(&rows)
            .map_err(|e| super::CliError::failure(format!("cannot encode JSON: {e}")))?;
        println!("{text}");
        return Ok(exit::OK);
    }
    println!("{:<12} {:<9} PATH", "AGENT", "INSTALLED");
    for r in &rows {
        let path = match (&r.path, &r.real_path) {
            (Some(p), Some(real)) if p != real => format!("{p} -> {real}"),
            (Some(p), _) => p.clone(),
            _ => "-".into(),
        };
        let installed = if r.installed { "yes" } else { "no" };
        println!("{:<12} {:<9} {path}", r.name, installed);
    }
    Ok(exit::OK)
}
