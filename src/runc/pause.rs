//! `lasso-runc pause ID` / `resume ID`: freeze and thaw the container's cgroup.

use super::{Globals, RuncError};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn pause(args: Args, g: &Globals) -> Result<u8, RuncError> {
    g.runtime.pause(&args.id)?;
    Ok(0)
}

pub fn resume(args: Args, g: &Globals) -> Result<u8, RuncError> {
    g.runtime.resume(&args.id)?;
    Ok(0)
}
