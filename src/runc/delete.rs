//! `lasso-runc delete`: remove a stopped container; --force kills a running one first.

use super::{egress, gate_monitor, Globals, RuncError};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(short, long)]
    pub force: bool,
    pub id: String,
}

pub fn run(args: Args, g: &Globals) -> Result<u8, RuncError> {
    for w in delete(g, &args.id, args.force)? {
        g.warn(&w);
    }
    Ok(0)
}

/// The engine's delete, then the exec gate's monitor of a `run.lasso.profile` container: it
/// seals the container's log once the container is gone, and is killed if it lingers.
pub fn delete(g: &Globals, id: &str, force: bool) -> Result<Vec<String>, RuncError> {
    let monitor = gate_monitor::read_record(&gate_monitor::record_path(&g.runtime.store, id));
    let warnings = g.runtime.delete(id, force)?;
    if let Some(m) = monitor {
        gate_monitor::reap(&m);
        // The monitor removes lasso's table when the container ends; one that was killed
        // could not, and the client's namespace outlives the container.
        if let Some(ns) = &m.netns {
            ns.remove_rules();
        }
    }
    if crate::engine::state::check_id(id).is_ok() {
        // The resolv.conf of a profile container with a network (a plain file, never a mount).
        let _ = std::fs::remove_dir_all(egress::files_dir(&g.runtime.store.root, id));
    }
    Ok(warnings)
}
