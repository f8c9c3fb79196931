//! `lasso-runc run`: create, start, wait for the process and delete (or, with --detach, return
//! after start). The exit status is the container's, or 128 + the signal that killed it.

use super::{create, delete, Globals, RuncError};
use crate::engine::container;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub create: create::Args,
    /// Return after start instead of waiting for the container.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits.
    #[arg(long)]
    pub keep: bool,
}

pub fn run(args: Args, g: &Globals) -> Result<u8, RuncError> {
    let id = args.create.id.clone();
    let c = create::create(&args.create, g)?;
    match g.runtime.start(&id) {
        Ok(warnings) => warnings.iter().for_each(|w| g.warn(w)),
        Err(e) => {
            let _ = delete::delete(g, &id, true);
            return Err(e.into());
        }
    }
    if args.detach {
        return Ok(0);
    }
    let code = container::wait_forwarding_signals(c.state.pid);
    if !args.keep {
        if let Ok(warnings) = delete::delete(g, &id, true) {
            warnings.iter().for_each(|w| g.warn(w));
        }
    }
    Ok(code? as u8)
}
