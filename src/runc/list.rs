//! `lasso-runc list`: the containers under --root, as a table or JSON.

use super::{print_json, Globals, RuncError};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// Print only the ids.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(args: Args, g: &Globals) -> Result<u8, RuncError> {
    let docs: Vec<_> = g.runtime.list()?.iter().map(|c| c.doc()).collect();
    if args.quiet {
        for d in &docs {
            println!("{}", d.id);
        }
        return Ok(0);
    }
    match args.format.as_str() {
        "json" => print_json(&docs)?,
        "table" => {
            println!(
                "{:<20} {:<8} {:<10} {:<40} {:<30} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for d in &docs {
                println!(
                    "{:<20} {:<8} {:<10} {:<40} {:<30} {}",
                    d.id,
                    d.pid,
                    d.status,
                    d.bundle.display(),
                    d.created,
                    d.owner
                );
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
