//! `lasso-runc ps ID [ps options]`: the container's processes, as JSON PIDs or a `ps` table.

use super::{print_json, Globals, RuncError};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(short, long, default_value = "table")]
    pub format: String,
    pub id: String,
    /// Options for ps(1) in table format (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn run(args: Args, g: &Globals) -> Result<u8, RuncError> {
    let c = g.runtime.load(&args.id)?;
    let pids = c.pids();
    match args.format.as_str() {
        "json" => print_json(&pids)?,
        "table" => {
            let ps_args = if args.ps_args.is_empty() {
                vec!["-ef".to_string()]
            } else {
                args.ps_args.clone()
            };
            let out = std::process::Command::new("ps")
                .args(&ps_args)
                .output()
                .map_err(|source| RuncError::Io {
                    what: "run ps".into(),
                    source,
                })?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or_else(|| RuncError::Usage("ps output has no PID column".into()))?;
            println!("{header}");
            for line in lines {
                let pid = line
                    .split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse::<i32>().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{line}");
                }
            }
        }
        f => {
            return Err(RuncError::Usage(format!(
                "invalid --format {f:?}: use table or json"
            )))
        }
    }
    Ok(0)
}
