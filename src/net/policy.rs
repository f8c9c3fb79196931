//! The egress policy as the caller gives it (raw strings and numbers, straight from a profile) and
//! its validated form, which the rules builder and the resolver trust without re-checking.

use super::NetError;
use std::net::IpAddr;

/// How much of the network a sandbox may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EgressMode {
    /// Loopback only; no pasta, no route.
    None,
    /// Only addresses the resolver learned from allowlisted names, on the allowed ports.
    #[default]
    Allowlist,
    /// Any public address; the always-dropped set still applies.
    Full,
}

/// Egress settings of one sandbox, unvalidated. The lead's adapter fills it from a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    pub mode: EgressMode,
    /// Exact names ("api.example.com") or wildcards ("*.example.com": subdomains only).
    pub allowed_domains: Vec<String>,
    /// Destination ports for new connections; empty means 80 and 443.
    pub allowed_ports: Vec<u32>,
    pub blocked_ports: Vec<u32>,
    /// Ranges reachable directly (also inside private ranges, e.g. a LAN mirror).
    pub allowed_cidrs: Vec<String>,
    pub blocked_cidrs: Vec<String>,
}

/// A domain allowlist entry, lower-case, without trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainPattern {
    Exact(String),
    /// `*.suffix`: matches names strictly below `suffix`, not `suffix` itself.
    Wildcard(String),
}

impl DomainPattern {
    pub fn parse(raw: &str) -> Result<Self, NetError> {
        let bad = |why| NetError::InvalidDomain {
            value: raw.to_string(),
            why,
        };
        let s = raw.trim_end_matches('.').to_ascii_lowercase();
        let (wild, name) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, s.clone()),
        };
        if name.is_empty() {
            return Err(bad("empty name"));
        }
        if name.len() > 253 {
            return Err(bad("longer than 253 characters"));
        }
        for label in name.split('.') {
            if label.is_empty() {
                return Err(bad("empty label (two dots in a row)"));
            }
            if label.len() > 63 {
                return Err(bad("a label is longer than 63 characters"));
            }
            if label.contains('*') {
                return Err(bad(
                    "'*' is only allowed as the whole first label, as in \"*.example.com\"",
                ));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad(
                    "only letters, digits, '-' and '_' are allowed (IDNs go in punycode)",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(bad("a label starts or ends with '-'"));
            }
        }
        Ok(if wild {
            DomainPattern::Wildcard(name)
        } else {
            DomainPattern::Exact(name)
        })
    }

    /// Does this pattern allow `name` (any case, trailing dot or not)?
    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match self {
            DomainPattern::Exact(e) => name == *e,
            DomainPattern::Wildcard(suffix) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

/// An address range, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Self {
        Cidr {
            addr: IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)),
            len,
        }
    }

    pub fn parse(field: &'static str, raw: &str) -> Result<Self, NetError> {
        let bad = |why| NetError::InvalidCidr {
            field,
            value: raw.to_string(),
            why,
        };
        let (ip, len) = match raw.trim().split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (raw.trim(), None),
        };
        let addr: IpAddr = ip.parse().map_err(|_| bad("not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l
                .parse::<u8>()
                .map_err(|_| bad("prefix length is not a number"))?,
            None => max,
        };
        if len > max {
            return Err(bad("prefix length is longer than the address"));
        }
        let c = Cidr { addr, len };
        if c.network() != addr {
            return Err(bad(
                "host bits are set after the prefix (write the network address)",
            ));
        }
        Ok(c)
    }

    fn bits(ip: IpAddr) -> (u128, u8) {
        match ip {
            IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    }

    fn mask(len: u8, width: u8) -> u128 {
        if len == 0 {
            0
        } else {
            (u128::MAX << (128 - len as u32)) >> (128 - width as u32)
        }
    }

    /// The address with host bits cleared.
    pub fn network(&self) -> IpAddr {
        let (v, w) = Self::bits(self.addr);
        let n = v & Self::mask(self.len, w);
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4((n as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(n.into()),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.addr.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        let (a, w) = Self::bits(self.addr);
        let (b, _) = Self::bits(ip);
        let m = Self::mask(self.len, w);
        a & m == b & m
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A policy whose every name, range and port was checked; what the rules and the resolver use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidEgress {
    pub mode: EgressMode,
    pub domains: Vec<DomainPattern>,
    pub allowed_ports: Vec<u16>,
    pub blocked_ports: Vec<u16>,
    pub allowed_cidrs: Vec<Cidr>,
    pub blocked_cidrs: Vec<Cidr>,
}

fn ports(field: &'static str, raw: &[u32]) -> Result<Vec<u16>, NetError> {
    raw.iter()
        .map(|&p| match u16::try_from(p) {
            Ok(v) if v != 0 => Ok(v),
            _ => Err(NetError::InvalidPort { field, value: p }),
        })
        .collect()
}

impl EgressPolicy {
    /// Check every field; the first bad value is named in the error.
    pub fn validate(&self) -> Result<ValidEgress, NetError> {
        let domains = self
            .allowed_domains
            .iter()
            .map(|d| DomainPattern::parse(d))
            .collect::<Result<_, _>>()?;
        let mut allowed_ports = ports("allowed_ports", &self.allowed_ports)?;
        if allowed_ports.is_empty() {
            allowed_ports = vec![80, 443];
        }
        let cidrs = |field, raw: &[String]| {
            raw.iter()
                .map(|c| Cidr::parse(field, c))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(ValidEgress {
            mode: self.mode,
            domains,
            allowed_ports,
            blocked_ports: ports("blocked_ports", &self.blocked_ports)?,
            allowed_cidrs: cidrs("allowed_cidrs", &self.allowed_cidrs)?,
            blocked_cidrs: cidrs("blocked_cidrs", &self.blocked_cidrs)?,
        })
    }
}

impl ValidEgress {
    /// Is this DNS name on the allowlist?
    pub fn name_allowed(&self, name: &str) -> bool {
        self.domains.iter().any(|d| d.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_covers_subdomains_but_not_the_apex_or_lookalikes() {
        let p = DomainPattern::parse("*.Example.com.").unwrap();
        assert!(p.matches("a.example.com"));
        assert!(p.matches("a.b.EXAMPLE.com."));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("evilexample.com"));
        assert!(!p.matches("example.com.evil.net"));
        let e = DomainPattern::parse("api.example.com").unwrap();
        assert!(e.matches("API.example.com."));
        assert!(!e.matches("x.api.example.com"));
    }

    #[test]
    fn bad_names_cidrs_and_ports_are_named_in_the_error() {
        for bad in [
            "",
            "a..b",
            "ex*ample.com",
            "a.*.com",
            "-a.com",
            "a b.com",
            "*",
        ] {
            let p = EgressPolicy {
                allowed_domains: vec![bad.into()],
                ..Default::default()
            };
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains("allowed_domains"), "{bad:?}: {e}");
        }
        let p = EgressPolicy {
            blocked_cidrs: vec!["10.0.0.1/8".into()],
            ..Default::default()
        };
        let e = p.validate().unwrap_err().to_string();
        assert!(
            e.contains("blocked_cidrs") && e.contains("10.0.0.1/8"),
            "{e}"
        );
        for c in ["10.0.0.0/33", "300.1.1.1", "2001:db8::/129", "x/8"] {
            let p = EgressPolicy {
                allowed_cidrs: vec![c.into()],
                ..Default::default()
            };
            assert!(p.validate().unwrap_err().to_string().contains(c));
        }
        for port in [0, 65536, 99999] {
            let p = EgressPolicy {
                allowed_ports: vec![port],
                ..Default::default()
            };
            let e = p.validate().unwrap_err().to_string();
            assert!(
                e.contains("allowed_ports") && e.contains(&port.to_string()),
                "{e}"
            );
        }
    }

    #[test]
    fn default_ports_are_http_and_https() {
        let v = EgressPolicy::default().validate().unwrap();
        assert_eq!(v.allowed_ports, vec![80, 443]);
    }

    #[test]
    fn cidr_containment() {
        let c = Cidr::parse("t", "100.64.0.0/10").unwrap();
        assert!(c.contains("100.100.100.200".parse().unwrap()));
        assert!(!c.contains("100.128.0.1".parse().unwrap()));
        let u = Cidr::parse("t", "fc00::/7").unwrap();
        assert!(u.contains("fd00:ec2::254".parse().unwrap()));
        assert!(!u.contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("t", "0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }
}
