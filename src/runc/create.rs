//! `lasso-runc create`: set up a container whose process waits for `start`.

use super::gate_monitor::{self, Gated, MonitorPlan};
use super::{egress, profile, Globals, RuncError};
use crate::engine::bundle::Bundle;
use crate::engine::container::{Container, CreateOptions};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
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
            spec: None,
            // runc's create returns at once; the container outlives it.
            die_with_parent: false,
            after_clone: None,
        }
    }
}

pub fn run(args: Args, g: &Globals) -> Result<u8, RuncError> {
    create(&args, g)?;
    Ok(0)
}

/// `create` as runc does it, or, for a container whose annotations carry
/// `run.lasso.profile`, with the profile's hardening and the exec gate's monitor.
pub fn create(args: &Args, g: &Globals) -> Result<Container, RuncError> {
    let mut opts = args.options();
    // Read once here to see the annotations; the engine reads it again (cheap, and it keeps
    // the engine's own checks and error messages for a bad config).
    let bundle = match Bundle::load(&args.bundle) {
        Ok(b) => b,
        Err(_) => return Ok(g.runtime.create(&opts)?),
    };
    if crate::engine::state::check_id(&args.id).is_err() {
        // The engine names the problem; nothing of ours may be written under a bad id.
        return Ok(g.runtime.create(&opts)?);
    }
    let dirs = profile::dirs();
    let Some(opted) = profile::opted(&bundle.spec, &args.id, &dirs, &g.policy)? else {
        return Ok(g.runtime.create(&opts)?);
    };
    let net_plan = egress::plan(&bundle.spec, &opted.profile)?;
    let mut spec = profile::harden(&bundle.spec, &bundle.rootfs, &opted);
    let files = egress::files_dir(&g.runtime.store.root, &args.id);
    if let Some(m) = egress::resolv_conf_mount(&net_plan, &files)? {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.push(m);
        spec.set_mounts(Some(mounts));
    }
    let (mine, theirs) = UnixStream::pair().map_err(|source| RuncError::Io {
        what: "socketpair for the exec gate".into(),
        source,
    })?;
    opts.spec = Some(spec);
    opts.gate_socket = Some(theirs.as_raw_fd());
    let c = g.runtime.create(&opts)?;
    drop(theirs);
    // Rules before `start`: the process cannot send a packet before they are in place.
    let filtered = match egress::filter(&net_plan, &bundle.spec, &args.id, c.state.pid) {
        Ok(f) => f,
        Err(e) => {
            let _ = g.runtime.delete(&args.id, true);
            return Err(e.into());
        }
    };
    let netns = filtered.handle();
    let plan = MonitorPlan {
        id: args.id.clone(),
        log_id: args.id.clone(),
        gated: Gated::Init(c.state.pid),
        command: bundle
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default(),
        opted,
        dirs,
        record: Some(gate_monitor::record_path(&g.runtime.store, &args.id)),
        state_dir: g.runtime.store.dir(&args.id),
        net: Some(filtered),
    };
    if let Err(e) = gate_monitor::spawn(plan, mine) {
        // Nothing may run ungated or unfiltered: the half-made container goes, and so do its
        // rules (the namespace may be the client's and outlive it).
        let _ = g.runtime.delete(&args.id, true);
        if let Ok(ns) = netns {
            egress::remove_table(&ns);
        }
        return Err(e.into());
    }
    Ok(c)
}
