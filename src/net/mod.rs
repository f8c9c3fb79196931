//! Network egress of a sandbox: connectivity through pasta, the nftables ruleset of the sandbox's
//! network namespace, the DNS resolver that learns which addresses an allowlisted name may reach,
//! and the reader of the drop log that turns refused packets into audit events.
//!
//! Owns everything that happens inside a sandbox's network namespace. It must never touch the
//! host's own network namespace (no rules, routes or sysctls there): every kernel change is made by
//! a thread or child that first joined the sandbox's namespace. It knows nothing of profiles, the
//! engine or the audit writer: callers hand it an [`EgressPolicy`] and an [`EgressAudit`] sink.

pub mod drops;
pub mod explain;
pub mod netns;
mod nschild;
pub mod pasta;
mod policy;
pub mod ranges;
pub mod registries;
pub mod resolver;
pub mod rules;
pub mod setelem;
pub mod tools;

pub use netns::Netns;
pub use policy::{Cidr, DomainPattern, EgressMode, EgressPolicy, ValidEgress};
pub use rules::allow_addr;

use std::net::IpAddr;

/// Errors of the network module. Each names the field, value or tool at fault and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("network policy: invalid domain {value:?} in allowed_domains: {why} (use a name like \"api.example.com\" or a wildcard like \"*.example.com\")")]
    InvalidDomain { value: String, why: &'static str },
    #[error("network policy: invalid CIDR {value:?} in {field}: {why} (use a form like \"203.0.113.0/24\" or \"2001:db8::/32\")")]
    InvalidCidr {
        field: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("network policy: invalid port {value} in {field}: ports are 1..=65535")]
    InvalidPort { field: &'static str, value: u32 },
    #[error("--net {value:?}: {why} (give HOST, HOST:PORT, an IP address or [IPv6]:PORT; the port defaults to 443)")]
    InvalidTarget { value: String, why: &'static str },
    #[error("{tool} is not installed: {hint}")]
    ToolMissing {
        tool: &'static str,
        hint: &'static str,
    },
    #[error("cannot open network namespace {path}: {source}")]
    OpenNetns {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot enter network namespace {path}: {source}")]
    EnterNetns { path: String, source: nix::Error },
    #[error("refusing to act on the host's own network namespace ({path}); give the sandbox's namespace")]
    HostNetns { path: String },
    #[error("nft failed in namespace {netns}: {stderr}")]
    Nft { netns: String, stderr: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("pasta failed for {netns}: {detail}")]
    Pasta { netns: String, detail: String },
    #[error("no upstream DNS server: {detail}")]
    NoUpstream { detail: String },
}

impl NetError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        NetError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Why a packet or a name was refused; the audit entry carries its `as_str` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// DNS to any server but lasso's resolver.
    ForeignDns,
    /// DNS-over-TLS / DNS-over-QUIC (port 853), which would bypass the resolver.
    DnsOverTls,
    /// Database and cache ports, dropped whatever the mode.
    DatabasePort,
    /// A port the profile blocks.
    BlockedPort,
    /// A CIDR the profile blocks.
    BlockedCidr,
    /// Cloud metadata, link-local, private, loopback and other special ranges.
    SpecialRange,
    /// ICMP echo (ping), a covert channel and a scanner.
    IcmpEcho,
    /// A destination the resolver never handed out, or a port the profile does not allow.
    NotAllowed,
}

impl DropReason {
    pub const ALL: [DropReason; 8] = [
        DropReason::ForeignDns,
        DropReason::DnsOverTls,
        DropReason::DatabasePort,
        DropReason::BlockedPort,
        DropReason::BlockedCidr,
        DropReason::SpecialRange,
        DropReason::IcmpEcho,
        DropReason::NotAllowed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::ForeignDns => "foreign-dns",
            DropReason::DnsOverTls => "dns-over-tls",
            DropReason::DatabasePort => "database-port",
            DropReason::BlockedPort => "blocked-port",
            DropReason::BlockedCidr => "blocked-cidr",
            DropReason::SpecialRange => "special-range",
            DropReason::IcmpEcho => "icmp-echo",
            DropReason::NotAllowed => "not-allowed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One dropped packet as the kernel logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropEvent {
    pub destination: IpAddr,
    /// Destination port for TCP/UDP, `None` for other protocols.
    pub port: Option<u16>,
    /// "tcp", "udp", "icmp", "icmpv6" or the protocol number.
    pub protocol: String,
    pub reason: DropReason,
}

/// Where refusals go. The lead connects this to the audit writer; tests record into a Vec.
pub trait EgressAudit: Send + Sync {
    /// A DNS query for a name outside the allowlist, answered REFUSED without being forwarded.
    fn refused_name(&self, name: &str, record_type: &str);
    /// A packet the ruleset dropped.
    fn dropped(&self, event: &DropEvent);
    /// An allowed name that resolved into an always-dropped or blocked range (DNS rebinding); the
    /// address was neither added to the allow sets nor returned to the client.
    fn rebinding(&self, name: &str, address: IpAddr);
}
