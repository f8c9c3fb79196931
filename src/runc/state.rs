//! `lasso-runc state`: the container's OCI state as JSON.

use super::{print_json, Globals, RuncError};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn run(args: Args, g: &Globals) -> Result<u8, RuncError> {
    print_json(&g.runtime.state(&args.id)?)?;
    Ok(0)
}
