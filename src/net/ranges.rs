//! The destinations and ports a sandbox never reaches, whatever its mode: cloud metadata and the
//! rest of link-local, private and shared address space, loopback of other namespaces, multicast,
//! database and cache ports, DNS-over-TLS. Shared by the ruleset (kernel enforcement) and the
//! resolver (rebinding check), so both refuse the same set.
//!
//! The documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are
//! deliberately *not* here: they never route on the real internet, and the fake internet of the
//! tests is built from them.

use super::policy::{Cidr, ValidEgress};
use super::DropReason;
use std::net::{IpAddr, Ipv6Addr};

/// IPv4 ranges dropped in every mode unless `allowed_cidrs` names a range inside them.
pub const SPECIAL_V4: &[Cidr] = &[
    Cidr::v4(0, 0, 0, 0, 8),      // "this network"
    Cidr::v4(10, 0, 0, 0, 8),     // RFC 1918
    Cidr::v4(100, 64, 0, 0, 10),  // carrier-grade NAT; holds Alibaba's metadata 100.100.100.200
    Cidr::v4(127, 0, 0, 0, 8),    // loopback (other namespaces reach it only through tricks)
    Cidr::v4(169, 254, 0, 0, 16), // link-local; holds 169.254.169.254, the cloud metadata service
    Cidr::v4(172, 16, 0, 0, 12),  // RFC 1918
    Cidr::v4(192, 0, 0, 0, 24),   // IETF protocol assignments
    Cidr::v4(192, 168, 0, 0, 16), // RFC 1918
    Cidr::v4(198, 18, 0, 0, 15),  // benchmarking, used by some LAN appliances
    Cidr::v4(224, 0, 0, 0, 4),    // multicast
    Cidr::v4(240, 0, 0, 0, 4),    // reserved and broadcast
];

const fn v6(segs: [u16; 8], len: u8) -> Cidr {
    Cidr {
        addr: IpAddr::V6(Ipv6Addr::new(
            segs[0], segs[1], segs[2], segs[3], segs[4], segs[5], segs[6], segs[7],
        )),
        len,
    }
}

/// IPv6 ranges dropped in every mode unless `allowed_cidrs` names a range inside them.
pub const SPECIAL_V6: &[Cidr] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128), // unspecified
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128), // loopback
    // IPv4-mapped: the mapped form of every IPv4 range above (and of everything else) must not
    // slip past the IPv4 rules on the IPv6 wire.
    v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96),
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), // local-use NAT64, embeds private IPv4
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),     // discard
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),     // ULA; holds AWS's metadata fd00:ec2::254
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),    // link-local
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),     // multicast
];

/// Database and cache servers: never an agent's business, a favourite exfiltration target.
pub const DATABASE_PORTS: &[u16] = &[
    1433, 1434, 1521, 3306, 5432, 5984, 6379, 8123, 9000, 9042, 9200, 11211, 27017,
];

/// DNS-over-TLS (and DNS-over-QUIC on UDP): encrypted DNS would bypass the resolver.
pub const DOT_PORT: u16 = 853;

/// Is `ip` inside the always-dropped set (IPv4-mapped IPv6 counts as its IPv4 form)?
pub fn is_special(ip: IpAddr) -> bool {
    let ip = canonical(ip);
    let table = if ip.is_ipv4() { SPECIAL_V4 } else { SPECIAL_V6 };
    table.iter().any(|c| c.contains(ip))
}

/// IPv4-mapped IPv6 addresses reach IPv4 hosts, so judge them as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Would the ruleset refuse every connection to `ip`? Used by the resolver to spot rebinding.
pub fn refusal(policy: &ValidEgress, ip: IpAddr) -> Option<DropReason> {
    let ip = canonical(ip);
    if policy.blocked_cidrs.iter().any(|c| c.contains(ip)) {
        return Some(DropReason::BlockedCidr);
    }
    if is_special(ip) && !policy.allowed_cidrs.iter().any(|c| c.contains(ip)) {
        return Some(DropReason::SpecialRange);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::EgressPolicy;

    #[test]
    fn metadata_addresses_are_special_in_every_spelling() {
        for s in [
            "169.254.169.254",
            "100.100.100.200",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "127.0.0.53",
            "::1",
            "fe80::1",
            "192.168.1.1",
            "172.31.255.255",
        ] {
            assert!(is_special(s.parse().unwrap()), "{s}");
        }
        for s in ["203.0.113.10", "2001:db8::10", "8.8.8.8", "172.32.0.1"] {
            assert!(!is_special(s.parse().unwrap()), "{s}");
        }
    }

    #[test]
    fn an_allowed_cidr_opens_only_itself() {
        let p = EgressPolicy {
            allowed_cidrs: vec!["10.1.0.0/16".into()],
            blocked_cidrs: vec!["203.0.113.0/24".into()],
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(refusal(&p, "10.1.2.3".parse().unwrap()), None);
        assert_eq!(
            refusal(&p, "10.2.0.1".parse().unwrap()),
            Some(DropReason::SpecialRange)
        );
        assert_eq!(
            refusal(&p, "203.0.113.9".parse().unwrap()),
            Some(DropReason::BlockedCidr)
        );
    }
}
