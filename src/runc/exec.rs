//! `lasso-runc exec`: run a process in a running container, from `--process FILE` or from the
//! container's own process settings with the given command line and overrides. In a
//! `run.lasso.profile` container the process gets an exec-gate monitor of its own first.

use super::gate_monitor::{self, Gated, MonitorPlan};
use super::{profile, Globals, RuncError};
use crate::engine::exec::ExecOptions;
use oci_spec::runtime::{Capability, Process};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
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
    let process = build_process(&a, g)?;
    let mut opts = ExecOptions {
        process,
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
        gate_socket: None,
        pid_notify: None,
    };
    // A missing container is the engine's error to report, with its wording.
    let opted = match g.runtime.store.load_spec(&a.id) {
        Ok(spec) => profile::of_created(&spec, &a.id, &profile::dirs(), &g.policy)?,
        Err(_) => None,
    };
    let Some(opted) = opted else {
        return Ok(g.runtime.exec(&a.id, &opts)? as u8);
    };
    Ok(gated(&a, g, &mut opts, opted)? as u8)
}

/// `exec` into a `run.lasso.profile` container: the process is not a descendant of the
/// container's gated init, so it gets a gate monitor of its own (detached like the
/// container's, deciding with the same profile), which traces it from before its execve and
/// writes the session's entries to a log of its own beside the container's.
fn gated(
    a: &Args,
    g: &Globals,
    opts: &mut ExecOptions,
    opted: profile::Opted,
) -> Result<i32, RuncError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |source| RuncError::Io { what, source }
    };
    let (mine, theirs) = UnixStream::pair().map_err(io("socketpair for the exec gate"))?;
    let (pid_r, pid_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| io("pipe for the exec gate")(e.into()))?;
    let plan = MonitorPlan {
        id: a.id.clone(),
        log_id: format!("{}-exec-{}", a.id, std::process::id()),
        gated: Gated::Exec(pid_r),
        command: opts.process.args().clone().unwrap_or_default(),
        opted,
        dirs: profile::dirs(),
        record: None,
        state_dir: g.runtime.store.dir(&a.id),
        // The container's monitor filters its namespace; an exec session shares it.
        net: None,
    };
    gate_monitor::spawn(plan, mine)?;
    opts.gate_socket = Some(theirs.as_raw_fd());
    opts.pid_notify = Some(pid_w.as_raw_fd());
    let r = g.runtime.exec(&a.id, opts);
    drop(theirs);
    drop(pid_w);
    Ok(r?)
}
