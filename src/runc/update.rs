//! `lasso-runc update --resources FILE|- ID`: new `linux.resources` for a running container.
//! runc's per-limit flags (--memory, --cpu-quota, ...) are not offered: pass a resources file.

use super::{Globals, RuncError};
use oci_spec::runtime::LinuxResources;
use std::io::Read;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON file with the OCI `linux.resources` object, or `-` for stdin.
    #[arg(short, long, value_name = "FILE")]
    pub resources: PathBuf,
    pub id: String,
}

pub fn run(args: Args, g: &Globals) -> Result<u8, RuncError> {
    let name = args.resources.display().to_string();
    let mut text = String::new();
    let read = if name == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(&args.resources).map(|t| text = t)
    };
    read.map_err(|source| RuncError::Io {
        what: format!("read --resources {name}"),
        source,
    })?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    let res: LinuxResources = serde_path_to_error::deserialize(de).map_err(|e| {
        RuncError::Usage(format!(
            "--resources {name}: field `{}`: {}",
            e.path(),
            e.inner()
        ))
    })?;
    g.runtime.update(&args.id, &res)?;
    Ok(0)
}
