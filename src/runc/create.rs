//! `lasso-runc create`: set up a container whose process waits for `start`.

use super::{Globals, RuncError};
use crate::engine::container::CreateOptions;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[group(id = "create")]
pub struct Args {
    /// Bundle directory holding config.json (default: the current directory).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true.
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Write the host PID of the container's init here.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Pass this many descriptors beyond stdio (3..3+N) into the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Move the rootfs over / and chroot instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for compatibility: no session keyring is created.
    #[arg(long)]
    pub no_new_keyring: bool,
    pub id: String,
}

impl Args {
    pub fn options(&self) -> CreateOptions {
        CreateOptions {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            preserve_fds: self.preserve_fds,
            no_pivot: self.no_pivot,
            gate_socket: None,
            // runc's create returns at once; the container outlives it.
            die_with_parent: false,
        }
    }
}

pub fn run(args: Args, g: &Globals) -> Result<u8, RuncError> {
    g.runtime.create(&args.options())?;
    Ok(0)
}
