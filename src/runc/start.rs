//! `lasso-runc start`: release a created container's process.

use super::{Globals, RuncError};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn run(args: Args, g: &Globals) -> Result<u8, RuncError> {
    g.runtime.start(&args.id)?;
    Ok(0)
}
