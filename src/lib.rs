//! lasso runs AI coding agents in sandboxes made of native Linux isolation: namespaces, seccomp,
//! Landlock, dropped capabilities, cgroups and nftables, with no container daemon.
//!
//! The library holds everything a face of lasso needs (the `lasso` CLI, `lasso-runc`, the
//! dashboard); the binaries only parse arguments and call in here. See the README's module map.

pub mod agents;
pub mod audit;
pub mod cli;
pub mod engine;
pub mod gate;
pub mod image;
pub mod net;
pub mod paths;
pub mod phases;
pub mod plan;
pub mod policy;
pub mod runc;
pub mod sandbox;
