//! Planning: profile settings + agent + project dir + options -> an OCI runtime `Spec` plus what
//! the engine applies beside it (Landlock rules, the seccomp policy's path, the network mode).
//! The Spec is the single contract with the engine, so it is complete: root, mounts, process,
//! namespaces, ID mappings, capabilities, rlimits, resources, masked and read-only paths.
//!
//! Planning reads the host's filesystem (to find the agent, resolve and check paths, mirror the
//! merged-/usr symlinks) but never touches the kernel: no mounts, no namespaces, no cgroups. The
//! only writes are the explicit preparation steps (`materialise_skeleton`, `prepare_host`) that
//! the caller runs just before starting the sandbox.
//!
//! Planning does not depend on the policy module: `PlanInput` carries exactly what a profile
//! contributes, so an adapter from a resolved profile is a few lines.

mod agent_mounts;
mod build;
mod env;
mod error;
mod exec_floor;
mod hostview;
mod id;
mod identity;
mod image_root;
mod mounts;
mod passwd;
mod prepare;
mod spec;

pub use agent_mounts::{AGENT_ROOT, INTERPRETER_ROOT, LINK_DIR};
pub use build::plan;
pub use env::{parse_env_file, EnvRequest, DEFAULT_PATH};
pub use error::{EnvError, MountError, PlanError};
pub use hostview::{
    etc_hidden, materialise_skeleton, materialise_skeleton_from, system_entries, SystemEntry,
};
pub use id::SandboxId;
pub use identity::{Identity, AGENT_ID, ROOT_WORKSPACE_AGENT_ID};
pub use image_root::{resolve as resolve_image, ImageRoot, ImageRootError, ImageRootPlan};
pub use mounts::{parse_mount, sensitivity, MountRequest};
pub use prepare::{prepare_host, prepare_host_keeping_skeleton};
pub use spec::{cgroups_path, console_size, SANDBOX_CONTROLLERS};

use crate::agents::Agent;
use oci_spec::runtime::Spec;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// The seccomp policy the engine loads (owned by the seccomp work, embedded later).
pub const SECCOMP_PROFILE_PATH: &str = "seccomp/default.json";

/// Default size of the private /tmp and /home/agent when the profile sets none.
pub const DEFAULT_TMP_BYTES: u64 = 1 << 30;
/// Size of /dev/shm.
pub const SHM_BYTES: u64 = 64 << 20;

/// How the project directory is mounted at /workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceMode {
    Rw,
    Ro,
}

/// The profile's network section, as far as planning cares: the sandbox always gets its own
/// network namespace; the net module connects it (or not) according to this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    None,
    Allowlist,
    Full,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Allowlist => "allowlist",
            NetworkMode::Full => "full",
        }
    }
}

/// The profile's resource limits. `None` means the profile sets no limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceLimits {
    pub memory_bytes: Option<u64>,
    /// CPUs as a fraction (1.5 = one and a half cores), turned into a CFS quota.
    pub cpus: Option<f64>,
    pub pids: Option<u64>,
    /// Size of /tmp and /home/agent (tmpfs); defaults to `DEFAULT_TMP_BYTES`, or half the memory
    /// limit when that is smaller, since tmpfs pages are charged to the sandbox's memory.
    pub tmp_bytes: Option<u64>,
}

/// What the host looks like to planning: lasso's own identity and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostContext {
    /// Real uid and gid of lasso (the invoking user; 0 under sudo).
    pub uid: u32,
    pub gid: u32,
    /// lasso's HOME.
    pub home: PathBuf,
    /// lasso's environment (what `--pass-env` and the agents' pass-through read).
    pub env: BTreeMap<String, String>,
    /// lasso's PATH, where agents are looked up.
    pub path: OsString,
    /// Hard RLIMIT_NOFILE of lasso: the sandbox cannot be given more without CAP_SYS_RESOURCE.
    pub nofile_hard: u64,
}

impl HostContext {
    /// The current process's view.
    pub fn current() -> HostContext {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let nofile_hard =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map(|(_, hard)| hard)
                .unwrap_or(1024);
        HostContext {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            home: env
                .get("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/".into()),
            path: std::env::var_os("PATH").unwrap_or_default(),
            env,
            nofile_hard,
        }
    }
}

/// Everything planning needs. Profile-derived fields are marked; the rest are CLI options.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// Profile name (recorded in annotations).
    pub profile_name: String,
    /// Profile: how /workspace is mounted.
    pub workspace_mode: WorkspaceMode,
    /// Profile: extra host paths shown read-only. A path under the host home appears at the same
    /// place under /home/agent; any other at its own path.
    pub read_only_paths: Vec<PathBuf>,
    /// Profile: extra host paths shown writable (same placement rule).
    pub writable_paths: Vec<PathBuf>,
    /// Profile: paths hidden inside the sandbox. Relative paths are under /workspace; `~/x` is
    /// /home/agent/x.
    pub hidden_paths: Vec<String>,
    /// Profile: resource limits.
    pub resources: ResourceLimits,
    /// Profile: network mode.
    pub network: NetworkMode,
    /// Profile in allowlist mode: the command names it allows. Landlock's execute right is then
    /// limited to the files they resolve to (see `exec_floor`); `None` keeps whole directories.
    pub exec_allowlist: Option<Vec<String>>,

    pub agent: &'static Agent,
    /// `--dir`: the project directory.
    pub workspace: PathBuf,
    /// `--force-dir`: allow `/` or the home directory as the workspace.
    pub force_dir: bool,
    /// `--mount` values, parsed by `parse_mount`.
    pub mounts: Vec<MountRequest>,
    /// `--allow-sensitive`.
    pub allow_sensitive: bool,
    /// `--ssh-agent`: forward the host's SSH agent socket (only the socket, never ~/.ssh).
    pub ssh_agent: bool,
    pub env: EnvRequest,
    /// The command after `--`; `None` runs the agent with its default arguments.
    pub command: Option<Vec<String>>,
    /// Whether the process gets a terminal.
    pub terminal: bool,
    /// The terminal's size (rows, columns) from its first instruction, when it has one: the
    /// user's terminal. Otherwise the size comes with the first attach, and a program that asks
    /// before then reads 0x0.
    pub console_size: Option<(u16, u16)>,
    /// `--image`: the sandbox's root is this image (from the store) instead of the host view.
    pub image: Option<ImageRoot>,
    /// The sandbox id; a fresh one when `None`.
    pub id: Option<SandboxId>,
    /// The sandbox's own directory on the host: the skeleton root goes to `<dir>/rootfs`, private
    /// copies of agent files to `<dir>/private`.
    pub sandbox_dir: PathBuf,
    pub host: HostContext,
}

impl PlanInput {
    /// An input with the defaults of the CLI: profile "default", writable workspace, no network,
    /// no limits, no extra mounts, the agent's own command, no terminal.
    pub fn new(
        agent: &'static Agent,
        workspace: PathBuf,
        sandbox_dir: PathBuf,
        host: HostContext,
    ) -> PlanInput {
        PlanInput {
            profile_name: "default".into(),
            workspace_mode: WorkspaceMode::Rw,
            read_only_paths: vec![],
            writable_paths: vec![],
            hidden_paths: vec![],
            resources: ResourceLimits::default(),
            network: NetworkMode::None,
            exec_allowlist: None,
            agent,
            workspace,
            force_dir: false,
            mounts: vec![],
            allow_sensitive: false,
            ssh_agent: false,
            env: EnvRequest::default(),
            command: None,
            terminal: false,
            console_size: None,
            image: None,
            id: None,
            sandbox_dir,
            host,
        }
    }
}

/// Landlock rules, as container paths, for the engine to apply after pivot_root.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LandlockRules {
    /// Readable (files and directories).
    pub read: Vec<PathBuf>,
    /// Readable and writable.
    pub read_write: Vec<PathBuf>,
    /// Where programs may be executed from.
    pub execute: Vec<PathBuf>,
}

/// A change made on the host before the sandbox starts, so that every planned mount has a
/// source and mount point. Owners are host IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPrep {
    CreateDir {
        path: PathBuf,
        owner: (u32, u32),
    },
    CreateFile {
        path: PathBuf,
        contents: String,
        owner: (u32, u32),
    },
    /// A private copy of an agent file (see `ConfigAccess::PrivateCopy`).
    CopyFile {
        from: PathBuf,
        to: PathBuf,
        owner: (u32, u32),
    },
    /// A link inside the skeleton root (never outside it).
    Symlink {
        path: PathBuf,
        target: PathBuf,
    },
    /// A file inside the skeleton root, written every time (e.g. /etc/hostname).
    SkeletonFile {
        path: PathBuf,
        contents: String,
    },
    /// A mount point on the skeleton root for a mount that does not land inside another mount.
    MountPoint {
        path: PathBuf,
        is_dir: bool,
    },
}

/// A complete plan: the Spec plus what the engine enforces beside it.
#[derive(Debug, Clone)]
pub struct PlannedSandbox {
    pub id: SandboxId,
    pub spec: Spec,
    pub agent: &'static Agent,
    pub identity: Identity,
    pub network: NetworkMode,
    pub landlock: LandlockRules,
    pub seccomp_profile_path: &'static str,
    /// The skeleton root (`spec.root.path`).
    pub rootfs: PathBuf,
    /// Host-side steps to run (with `prepare_host`) before starting.
    pub host_prep: Vec<HostPrep>,
    /// Things the user should know (a config path that was skipped, and why).
    pub warnings: Vec<String>,
    /// For an image root: the private layer and mount points `prepare_host` makes.
    pub image: Option<ImageRootPlan>,
    /// The host's system directories as planning found them (empty for an image root): the
    /// skeleton mirrors these same entries, so the host is looked at once per sandbox.
    pub system: Vec<SystemEntry>,
}
