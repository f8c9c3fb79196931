//! `lasso-runc exec`: run a process in a running container, from `--process FILE` or from the
//! container's own process settings with the given command line and overrides.

use super::{Globals, RuncError};
use crate::engine::exec::ExecOptions;
use oci_spec::runtime::{Capability, Process};
use std::path::PathBuf;
use std::str::FromStr;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A JSON file holding the process (the OCI `process` object); replaces the command line.
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Return once the process started.
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Give the process a terminal (needs --console-socket).
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Add an environment variable (KEY=VALUE); repeatable.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// UID[:GID] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short = 'g', long)]
    pub additional_gids: Vec<u32>,
    /// Add a capability (e.g. CAP_NET_ADMIN); repeatable.
    #[arg(short, long)]
    pub cap: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    #[arg(long)]
    pub no_new_privs: bool,
    /// Accepted for compatibility; no SELinux or AppArmor support.
    #[arg(long, hide = true)]
    pub process_label: Option<String>,
    #[arg(long, hide = true)]
    pub apparmor: Option<String>,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn usage(m: impl Into<String>) -> RuncError {
    RuncError::Usage(m.into())
}

fn build_process(a: &Args, g: &Globals) -> Result<Process, RuncError> {
    if let Some(file) = &a.process {
        let text = std::fs::read_to_string(file).map_err(|source| RuncError::Io {
            what: format!("read --process {}", file.display()),
            source,
        })?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        return serde_path_to_error::deserialize(de).map_err(|e| {
            usage(format!(
                "--process {}: field `{}`: {}",
                file.display(),
                e.path(),
                e.inner()
            ))
        });
    }
    if a.command.is_empty() {
        return Err(usage("exec needs a command (or --process FILE)"));
    }
    let spec = g
        .runtime
        .store
        .load_spec(&a.id)
        .map_err(crate::engine::container::ContainerError::from)?;
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let mut user = p.user().clone();
        user.set_uid(
            uid.parse()
                .map_err(|_| usage(format!("--user {u}: use UID[:GID] numbers")))?,
        );
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .map_err(|_| usage(format!("--user {u}: use UID[:GID] numbers")))?,
            );
        }
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for c in &a.cap {
            let cap = Capability::from_str(c)
                .map_err(|_| usage(format!("--cap {c}: unknown capability")))?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            let (b, e, pm) = (
                add(caps.bounding()),
                add(caps.effective()),
                add(caps.permitted()),
            );
            caps.set_bounding(b);
            caps.set_effective(e);
            caps.set_permitted(pm);
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

pub fn run(a: Args, g: &Globals) -> Result<u8, RuncError> {
    refuse_ungated(&a.id, g)?;
    let process = build_process(&a, g)?;
    let code = g.runtime.exec(
        &a.id,
        &ExecOptions {
            process,
            detach: a.detach,
            pid_file: a.pid_file.clone(),
            console_socket: a.console_socket.clone(),
            preserve_fds: a.preserve_fds,
            gate_socket: None,
            pid_notify: None,
        },
    )?;
    Ok(code as u8)
}

/// A `run.lasso.profile` container gates every exec through its init's tracer; a process
/// joined from outside is not that tracer's descendant and would run ungated. Refused until
/// exec sessions get a gate of their own.
fn refuse_ungated(id: &str, g: &Globals) -> Result<(), RuncError> {
    let Ok(spec) = g.runtime.store.load_spec(id) else {
        return Ok(());
    };
    if let Some(p) = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(super::profile::PROFILE_ANNOTATION))
    {
        return Err(RuncError::Usage(format!(
            "container {id} runs under {}={p}: processes started with `exec` are not gated by lasso-runc yet, and nothing runs ungated in such a container; run the command as the container's own process instead (or drop the annotation)",
            super::profile::PROFILE_ANNOTATION
        )));
    }
    Ok(())
}
