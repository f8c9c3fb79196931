//! The engine: runs a container from an OCI runtime `Spec` using the kernel directly (namespaces,
//! ID mappings, mounts, pivot_root, cgroups, capabilities, rlimits, seccomp, console, hooks).
//! It never reads profiles or CLI flags: everything it runs is described by the Spec.

// --- leaf mechanisms: each applies one part of the Spec to the kernel ---
pub mod capabilities;
pub mod cgroups;
pub mod hooks;
pub mod landlock;
pub mod loopback;
pub mod rlimits;
pub mod seccomp;
pub mod sysctl;

// --- container lifecycle: processes, rootfs, state ---
pub mod after_clone;
pub mod bundle;
pub mod confine;
pub mod console;
pub mod container;
pub mod control;
pub mod dev_nodes;
pub mod devices;
pub mod exec;
pub mod idmap;
pub mod in_root;
pub mod init;
pub mod mount_options;
pub mod mounts;
pub mod namespaces;
pub mod old_root;
pub mod prepared;
pub mod process;
pub mod procfs;
pub mod rootfs;
pub mod skeleton;
pub mod state;
pub mod sync;
pub mod template;
