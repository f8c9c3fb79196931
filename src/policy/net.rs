//! The bridge from a profile's `[network]` table to the network module's `EgressPolicy`. Pure
//! code: registry hosts are handed in by the caller (who learns them from the user's tool
//! configuration with `net::registries`), so this module still reads nothing but profiles.

use super::profile::{NetworkMode, NetworkPolicy};
use crate::net::{EgressMode, EgressPolicy};

/// The egress policy a profile asks for. `registry_hosts` pairs each ecosystem of
/// `registries` with the hosts discovered for it; those hosts join the allowed names exactly.
pub fn egress_policy(n: &NetworkPolicy, registry_hosts: &[(String, Vec<String>)]) -> EgressPolicy {
    let mut allowed_domains = n.allowed_domains.clone();
    for (_, hosts) in registry_hosts {
        for h in hosts {
            if !allowed_domains.contains(h) {
                allowed_domains.push(h.clone());
            }
        }
    }
    EgressPolicy {
        mode: match n.mode {
            NetworkMode::None => EgressMode::None,
            NetworkMode::Allowlist => EgressMode::Allowlist,
            NetworkMode::Full => EgressMode::Full,
        },
        allowed_domains,
        allowed_ports: n.allowed_ports.iter().map(|&p| p as u32).collect(),
        blocked_ports: n.blocked_ports.iter().map(|&p| p as u32).collect(),
        allowed_cidrs: n.allowed_cidrs.clone(),
        blocked_cidrs: n.blocked_cidrs.clone(),
    }
}
