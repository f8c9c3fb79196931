//! Explains the egress decision for one destination (a host name or an IP address, and a port)
//! under a validated policy, in the same order the ruleset and the resolver decide, so
//! `lasso why --net` says what the kernel would do and which rule does it.
//!
//! Pure code: no DNS lookup and no kernel. A name is judged by the allowlist the resolver uses (the
//! addresses it resolves to are checked against the ranges at run time); an address is judged by
//! the ranges and ports of the ruleset.

use super::policy::{Cidr, DomainPattern, EgressMode, ValidEgress};
use super::ranges::{canonical, DATABASE_PORTS, DOT_PORT, SPECIAL_V4, SPECIAL_V6};
use super::NetError;
use serde::Serialize;
use std::net::IpAddr;

/// What is being reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    pub port: u16,
}

impl Target {
    /// `HOST`, `HOST:PORT`, an IPv6 address, or `[IPv6]:PORT`; the port defaults to 443.
    pub fn parse(raw: &str) -> Result<Self, NetError> {
        let bad = |why: &'static str| NetError::InvalidTarget {
            value: raw.to_string(),
            why,
        };
        let s = raw.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or(bad("missing ']'"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("unexpected text after ']'")),
            }
        } else if s.parse::<IpAddr>().is_ok() {
            (s, None)
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(v) if v != 0 => v,
                _ => return Err(bad("the port must be a number in 1..=65535")),
            },
            None => 443,
        };
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => {
                // The allowlist's own name rules, so a name `why` accepts is one a profile could list.
                DomainPattern::parse(host).map_err(|_| bad("not an IP address or a DNS name"))?;
                if host.contains('*') {
                    return Err(bad("give one host name, not a wildcard"));
                }
                Host::Name(host.trim_end_matches('.').to_ascii_lowercase())
            }
        };
        Ok(Target { host, port })
    }
}

/// The rule that decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum NetRule {
    /// Mode `none`: loopback only.
    ModeNone,
    /// Mode `full`: any public destination.
    ModeFull,
    /// Port 53: only lasso's resolver answers DNS.
    ForeignDns,
    DnsOverTls,
    DatabasePort {
        port: u16,
    },
    BlockedPort {
        port: u16,
    },
    BlockedCidr {
        cidr: String,
    },
    AllowedCidr {
        cidr: String,
    },
    SpecialRange {
        cidr: String,
        why: &'static str,
    },
    AllowedDomain {
        pattern: String,
    },
    Registry {
        ecosystem: String,
        host: String,
    },
    NameNotListed,
    PortNotAllowed {
        allowed_ports: Vec<u16>,
    },
    /// An address no allowed name resolved to: the allow sets never hold it.
    AddressNotLearned,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetVerdict {
    pub allowed: bool,
    #[serde(flatten)]
    pub rule: NetRule,
    pub reason: String,
}

fn special_why(c: &Cidr) -> &'static str {
    match c.to_string().as_str() {
        "169.254.0.0/16" => "link-local, holds the cloud metadata service 169.254.169.254",
        "100.64.0.0/10" => "shared address space, holds a cloud metadata service 100.100.100.200",
        "10.0.0.0/8" | "172.16.0.0/12" | "192.168.0.0/16" => "private network (RFC 1918)",
        "127.0.0.0/8" | "::1/128" => "loopback",
        "fc00::/7" => "unique local addresses, hold the cloud metadata service fd00:ec2::254",
        "fe80::/10" => "IPv6 link-local",
        "224.0.0.0/4" | "ff00::/8" => "multicast",
        "::ffff:0.0.0.0/96" => "IPv4-mapped IPv6",
        "64:ff9b:1::/48" => "local-use NAT64, embeds private IPv4",
        _ => "reserved or special-purpose range",
    }
}

fn verdict(allowed: bool, rule: NetRule, reason: String) -> NetVerdict {
    NetVerdict {
        allowed,
        rule,
        reason,
    }
}

/// The decision for `t` under `p`; `registries` pairs each ecosystem of the profile with the hosts
/// discovered for it (see `net::registries`).
pub fn explain(p: &ValidEgress, registries: &[(String, Vec<String>)], t: &Target) -> NetVerdict {
    let port = t.port;
    if p.mode == EgressMode::None {
        return verdict(
            false,
            NetRule::ModeNone,
            "network mode is none: the sandbox has loopback only and no route".into(),
        );
    }
    if port == 53 {
        return verdict(false, NetRule::ForeignDns, "DNS goes only to lasso's resolver, which enforces the allowlist; any other server is dropped".into());
    }
    if port == DOT_PORT {
        return verdict(
            false,
            NetRule::DnsOverTls,
            "DNS-over-TLS/QUIC (port 853) would bypass lasso's resolver; always dropped".into(),
        );
    }
    if DATABASE_PORTS.contains(&port) {
        return verdict(
            false,
            NetRule::DatabasePort { port },
            format!(
                "port {port} is a database or cache port, always dropped (exfiltration target)"
            ),
        );
    }
    if p.blocked_ports.contains(&port) {
        return verdict(
            false,
            NetRule::BlockedPort { port },
            format!("port {port} is in the profile's blocked_ports"),
        );
    }
    match &t.host {
        Host::Ip(ip) => explain_ip(p, canonical(*ip), port),
        Host::Name(name) => explain_name(p, registries, name, port),
    }
}

fn explain_ip(p: &ValidEgress, ip: IpAddr, port: u16) -> NetVerdict {
    if let Some(c) = p.blocked_cidrs.iter().find(|c| c.contains(ip)) {
        return verdict(
            false,
            NetRule::BlockedCidr {
                cidr: c.to_string(),
            },
            format!("{ip} is in the profile's blocked_cidrs entry {c}"),
        );
    }
    if let Some(c) = p.allowed_cidrs.iter().find(|c| c.contains(ip)) {
        if p.allowed_ports.contains(&port) {
            return verdict(
                true,
                NetRule::AllowedCidr {
                    cidr: c.to_string(),
                },
                format!("{ip} is in the profile's allowed_cidrs entry {c}, port {port} allowed"),
            );
        }
    }
    let table = if ip.is_ipv4() { SPECIAL_V4 } else { SPECIAL_V6 };
    if let Some(c) = table.iter().find(|c| c.contains(ip)) {
        let why = special_why(c);
        return verdict(
            false,
            NetRule::SpecialRange {
                cidr: c.to_string(),
                why,
            },
            format!("{ip} is in {c} ({why}), dropped in every mode unless allowed_cidrs names it"),
        );
    }
    if p.mode == EgressMode::Full {
        return verdict(
            true,
            NetRule::ModeFull,
            format!("network mode is full: public address {ip} on port {port} is reachable"),
        );
    }
    if let Some(v) = port_check(p, port) {
        return v;
    }
    verdict(false, NetRule::AddressNotLearned, format!("{ip} is reachable only after an allowed name resolves to it through lasso's resolver; a direct address is dropped"))
}

fn port_check(p: &ValidEgress, port: u16) -> Option<NetVerdict> {
    (!p.allowed_ports.contains(&port)).then(|| {
        verdict(
            false,
            NetRule::PortNotAllowed {
                allowed_ports: p.allowed_ports.clone(),
            },
            format!("port {port} is not in allowed_ports {:?}", p.allowed_ports),
        )
    })
}

fn explain_name(
    p: &ValidEgress,
    registries: &[(String, Vec<String>)],
    name: &str,
    port: u16,
) -> NetVerdict {
    if p.mode == EgressMode::Full {
        return verdict(true, NetRule::ModeFull, format!("network mode is full: {name} resolves through lasso's resolver; its addresses are still refused if they fall in a special or blocked range"));
    }
    let found = if let Some(d) = p.domains.iter().find(|d| d.matches(name)) {
        let pattern = match d {
            DomainPattern::Exact(e) => e.clone(),
            DomainPattern::Wildcard(s) => format!("*.{s}"),
        };
        Some((
            NetRule::AllowedDomain {
                pattern: pattern.clone(),
            },
            format!("{name} matches allowed_domains entry {pattern:?}"),
        ))
    } else {
        registries.iter().find_map(|(eco, hosts)| {
            hosts.iter().find(|h| h.as_str() == name).map(|h| {
                (
                    NetRule::Registry {
                        ecosystem: eco.clone(),
                        host: h.clone(),
                    },
                    format!("{name} is the {eco} registry in your tool configuration (registries = [{eco:?}])"),
                )
            })
        })
    };
    let Some((rule, why)) = found else {
        return verdict(false, NetRule::NameNotListed, format!("{name} is not in allowed_domains nor a configured registry host: lasso's resolver answers REFUSED and never forwards the query"));
    };
    if let Some(v) = port_check(p, port) {
        return v;
    }
    verdict(true, rule, format!("{why}; port {port} allowed; addresses it resolves to are allowed for their TTL unless they fall in a special or blocked range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::EgressPolicy;

    fn pol(mode: EgressMode) -> ValidEgress {
        EgressPolicy {
            mode,
            allowed_domains: vec!["api.example.com".into(), "*.cdn.example.net".into()],
            allowed_ports: vec![443],
            blocked_ports: vec![8443],
            allowed_cidrs: vec!["10.1.0.0/16".into()],
            blocked_cidrs: vec!["198.51.100.0/24".into()],
        }
        .validate()
        .unwrap()
    }

    fn why(p: &ValidEgress, t: &str) -> NetVerdict {
        let regs = vec![("npm".to_string(), vec!["npm.mirror.example".to_string()])];
        explain(p, &regs, &Target::parse(t).unwrap())
    }

    #[test]
    fn metadata_service_is_refused_in_every_spelling_and_mode() {
        for mode in [EgressMode::Allowlist, EgressMode::Full] {
            for t in [
                "169.254.169.254:80",
                "[::ffff:169.254.169.254]:80",
                "100.100.100.200",
                "[fd00:ec2::254]:80",
            ] {
                let v = why(&pol(mode), t);
                assert!(!v.allowed, "{t}: {v:?}");
                assert!(matches!(v.rule, NetRule::SpecialRange { .. }), "{t}: {v:?}");
                assert!(v.reason.contains("metadata"), "{t}: {v:?}");
            }
        }
    }

    #[test]
    fn names_are_judged_by_pattern_registry_and_port() {
        let p = pol(EgressMode::Allowlist);
        let v = why(&p, "api.example.com");
        assert!(
            v.allowed
                && v.rule
                    == NetRule::AllowedDomain {
                        pattern: "api.example.com".into()
                    }
        );
        let v = why(&p, "a.b.cdn.example.net:443");
        assert_eq!(
            v.rule,
            NetRule::AllowedDomain {
                pattern: "*.cdn.example.net".into()
            }
        );
        assert!(!why(&p, "cdn.example.net").allowed);
        let v = why(&p, "npm.mirror.example");
        assert!(
            v.allowed && matches!(v.rule, NetRule::Registry { .. }),
            "{v:?}"
        );
        let v = why(&p, "api.example.com:80");
        assert!(!v.allowed && matches!(v.rule, NetRule::PortNotAllowed { .. }));
        assert_eq!(why(&p, "evil.example.org").rule, NetRule::NameNotListed);
        assert_eq!(
            why(&p, "api.example.com:5432").rule,
            NetRule::DatabasePort { port: 5432 }
        );
        assert_eq!(why(&p, "api.example.com:853").rule, NetRule::DnsOverTls);
        assert_eq!(
            why(&p, "api.example.com:8443").rule,
            NetRule::BlockedPort { port: 8443 }
        );
        assert_eq!(why(&p, "api.example.com:53").rule, NetRule::ForeignDns);
    }

    #[test]
    fn addresses_are_judged_by_cidrs_then_ranges_then_mode() {
        let p = pol(EgressMode::Allowlist);
        assert!(matches!(
            why(&p, "10.1.2.3").rule,
            NetRule::AllowedCidr { .. }
        ));
        assert!(matches!(
            why(&p, "10.2.0.1").rule,
            NetRule::SpecialRange { .. }
        ));
        assert!(matches!(
            why(&p, "198.51.100.7").rule,
            NetRule::BlockedCidr { .. }
        ));
        assert_eq!(why(&p, "203.0.113.5").rule, NetRule::AddressNotLearned);
        let f = pol(EgressMode::Full);
        assert!(why(&f, "203.0.113.5:22").allowed);
        assert!(!why(&f, "198.51.100.7").allowed);
        assert_eq!(
            why(&pol(EgressMode::None), "api.example.com").rule,
            NetRule::ModeNone
        );
    }

    #[test]
    fn bad_targets_are_named() {
        for t in [
            "",
            "a..b",
            "host:0",
            "host:99999",
            "[::1",
            "*.example.com",
            "a b",
        ] {
            let e = Target::parse(t).unwrap_err().to_string();
            assert!(e.contains("--net"), "{t}: {e}");
        }
        assert_eq!(Target::parse("[2001:db8::1]:8080").unwrap().port, 8080);
        assert_eq!(Target::parse("2001:db8::1").unwrap().port, 443);
    }
}
