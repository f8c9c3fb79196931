//! `lasso-runc spec`: write a default config.json (or a rootless one) into the bundle.

use super::{Globals, RuncError};
use crate::engine::template;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bundle directory to write config.json into.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// A spec for an unprivileged user: user namespace mapping only the caller.
    #[arg(long)]
    pub rootless: bool,
}

pub fn run(args: Args, _g: &Globals) -> Result<u8, RuncError> {
    let path = args.bundle.join("config.json");
    if path.exists() {
        return Err(RuncError::Usage(format!(
            "{} exists: remove it first",
            path.display()
        )));
    }
    let spec = if args.rootless {
        template::rootless_spec(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    } else {
        template::default_spec()
    };
    let text = serde_json::to_string_pretty(&spec).expect("json");
    std::fs::write(&path, text + "\n").map_err(|source| RuncError::Io {
        what: format!("write {}", path.display()),
        source,
    })?;
    Ok(0)
}
