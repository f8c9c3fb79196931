//! `lasso-runc delete`: remove a stopped container; --force kills a running one first.

use super::{Globals, RuncError};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(short, long)]
    pub force: bool,
    pub id: String,
}

pub fn run(args: Args, g: &Globals) -> Result<u8, RuncError> {
    for w in g.runtime.delete(&args.id, args.force)? {
        g.warn(&w);
    }
    Ok(0)
}
