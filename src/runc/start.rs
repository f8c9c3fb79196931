//! `lasso-runc start`: release a created container's process.

use super::{Globals, RuncError};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn run(args: Args, g: &Globals) -> Result<u8, RuncError> {
    for w in g.runtime.start(&args.id)? {
        g.warn(&w);
    }
    Ok(0)
}
