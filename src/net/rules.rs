//! The nftables ruleset of a sandbox's network namespace: one `inet lasso` table whose output chain
//! drops by default, and the two timed allow sets the resolver fills. Built with the `nftables`
//! crate and applied as JSON by `nft -j -f -` started *inside* the sandbox's namespace.
//!
//! The agent has no CAP_NET_ADMIN in its namespace, so it cannot change what is written here.
//! Rule order matters and encodes the policy: conntrack replies, loopback and neighbour discovery
//! first; then what is dropped whatever the mode (foreign DNS, DoT, database ports, the profile's
//! blocked ports and ranges); then the profile's allowed ranges; then the special ranges (metadata,
//! private, link-local...); then the allow sets on the allowed ports; everything else is logged to
//! NFLOG group `log_group` with a `lasso:<reason>` prefix and dropped.

use super::netns::Netns;
use super::policy::{Cidr, EgressMode, ValidEgress};
use super::ranges::{DATABASE_PORTS, DOT_PORT, SPECIAL_V4, SPECIAL_V6};
use super::{DropReason, NetError};
use nftables::expr::{
    Elem, Expression as E, Meta, MetaKey, NamedExpression as N, Payload, PayloadField, Prefix,
    SetItem, CT,
};
use nftables::schema::{
    Chain, Element, FlushObject, NfCmd, NfListObject, NfObject, Nftables, Rule, Set, SetFlag,
    SetType, SetTypeValue, Table,
};
use nftables::stmt::{Log, Match, Operator, Statement as S};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

pub const TABLE: &str = "lasso";
pub const CHAIN: &str = "output";
pub const SET_V4: &str = "allow4";
pub const SET_V6: &str = "allow6";

/// Where the sandbox's resolver listens, and the NFLOG group drops are logged to.
#[derive(Debug, Clone, Copy)]
pub struct RulesConfig {
    pub resolver: SocketAddr,
    pub log_group: u16,
}

fn s(v: &str) -> E<'static> {
    E::String(Cow::Owned(v.to_string()))
}

fn payload(protocol: &'static str, field: &'static str) -> E<'static> {
    E::Named(N::Payload(Payload::PayloadField(PayloadField {
        protocol: protocol.into(),
        field: field.into(),
    })))
}

fn meta(key: MetaKey) -> E<'static> {
    E::Named(N::Meta(Meta { key }))
}

fn m(left: E<'static>, op: Operator, right: E<'static>) -> S<'static> {
    S::Match(Match { left, right, op })
}

fn eq(left: E<'static>, right: E<'static>) -> S<'static> {
    m(left, Operator::EQ, right)
}

fn set(items: Vec<E<'static>>) -> E<'static> {
    E::Named(N::Set(items.into_iter().map(SetItem::Element).collect()))
}

fn prefix(c: &Cidr) -> E<'static> {
    E::Named(N::Prefix(Prefix {
        addr: Box::new(s(&c.network().to_string())),
        len: c.len as u32,
    }))
}

fn ports(p: &[u16]) -> E<'static> {
    set(p.iter().map(|&p| E::Number(p as u32)).collect())
}

fn tcp_udp() -> S<'static> {
    eq(meta(MetaKey::L4proto), set(vec![s("tcp"), s("udp")]))
}

fn log_drop(reason: DropReason, group: u16) -> [S<'static>; 2] {
    let mut log = Log::new(Some(group as u32));
    log.prefix = Some(format!("lasso:{} ", reason.as_str()).into());
    [S::Log(Some(log)), S::Drop(None)]
}

/// `ip daddr {..}` and/or `ip6 daddr {..}` matches for a list of ranges, split by family.
fn daddr_matches(cidrs: &[Cidr]) -> Vec<S<'static>> {
    let (v4, v6): (Vec<&Cidr>, Vec<&Cidr>) = cidrs.iter().partition(|c| c.addr.is_ipv4());
    let mut out = Vec::new();
    if !v4.is_empty() {
        out.push(eq(
            payload("ip", "daddr"),
            set(v4.into_iter().map(prefix).collect()),
        ));
    }
    if !v6.is_empty() {
        out.push(eq(
            payload("ip6", "daddr"),
            set(v6.into_iter().map(prefix).collect()),
        ));
    }
    out
}

/// The whole ruleset as one atomic nft batch: (re)creates the table, so applying twice is safe.
pub fn build(policy: &ValidEgress, cfg: &RulesConfig) -> Nftables<'static> {
    let fam = NfFamily::INet;
    let mut objs: Vec<NfObject<'static>> = Vec::new();
    let table = Table {
        family: fam,
        name: TABLE.into(),
        handle: None,
    };
    objs.push(NfObject::CmdObject(NfCmd::Add(NfListObject::Table(
        table.clone(),
    ))));
    objs.push(NfObject::CmdObject(NfCmd::Flush(FlushObject::Table(table))));
    objs.push(NfObject::ListObject(NfListObject::Chain(Chain {
        family: fam,
        table: TABLE.into(),
        name: CHAIN.into(),
        _type: Some(NfChainType::Filter),
        hook: Some(NfHook::Output),
        prio: Some(0),
        policy: Some(NfChainPolicy::Drop),
        ..Default::default()
    })));
    for (name, ty) in [(SET_V4, SetType::Ipv4Addr), (SET_V6, SetType::Ipv6Addr)] {
        objs.push(NfObject::ListObject(NfListObject::Set(Box::new(Set {
            family: fam,
            table: TABLE.into(),
            name: name.into(),
            set_type: SetTypeValue::Single(ty),
            flags: Some(HashSet::from([SetFlag::Timeout])),
            ..Default::default()
        }))));
    }

    let g = cfg.log_group;
    let mut rules: Vec<Vec<S<'static>>> = vec![
        // Replies to connections the rules already let out, and ICMP errors about them.
        vec![
            m(
                E::Named(N::CT(CT {
                    key: "state".into(),
                    family: None,
                    dir: None,
                })),
                Operator::IN,
                E::List(vec![s("established"), s("related")]),
            ),
            S::Accept(None),
        ],
        vec![eq(meta(MetaKey::Oifname), s("lo")), S::Accept(None)],
        // Without neighbour discovery IPv6 does not work at all on pasta's link.
        vec![
            eq(
                payload("icmpv6", "type"),
                set(vec![
                    s("nd-router-solicit"),
                    s("nd-neighbor-solicit"),
                    s("nd-neighbor-advert"),
                ]),
            ),
            S::Accept(None),
        ],
    ];
    // DNS goes to lasso's resolver or nowhere: any other server would answer names the allowlist
    // refuses, and its answers would never reach the allow sets anyway.
    let (rfam, rfield) = match cfg.resolver.ip() {
        IpAddr::V4(_) => ("ip", "daddr"),
        IpAddr::V6(_) => ("ip6", "daddr"),
    };
    rules.push(vec![
        tcp_udp(),
        eq(payload(rfam, rfield), s(&cfg.resolver.ip().to_string())),
        eq(
            payload("th", "dport"),
            E::Number(cfg.resolver.port() as u32),
        ),
        S::Accept(None),
    ]);
    let mut drop_port = |ps: &[u16], reason| {
        if !ps.is_empty() {
            let mut r = vec![tcp_udp(), eq(payload("th", "dport"), ports(ps))];
            r.extend(log_drop(reason, g));
            rules.push(r);
        }
    };
    drop_port(&[53], DropReason::ForeignDns);
    drop_port(&[DOT_PORT], DropReason::DnsOverTls);
    drop_port(DATABASE_PORTS, DropReason::DatabasePort);
    drop_port(&policy.blocked_ports, DropReason::BlockedPort);
    for mat in daddr_matches(&policy.blocked_cidrs) {
        let mut r = vec![mat];
        r.extend(log_drop(DropReason::BlockedCidr, g));
        rules.push(r);
    }
    for mat in daddr_matches(&policy.allowed_cidrs) {
        rules.push(vec![
            mat,
            tcp_udp(),
            eq(payload("th", "dport"), ports(&policy.allowed_ports)),
            S::Accept(None),
        ]);
    }
    let special: Vec<Cidr> = SPECIAL_V4.iter().chain(SPECIAL_V6).copied().collect();
    for mat in daddr_matches(&special) {
        let mut r = vec![mat];
        r.extend(log_drop(DropReason::SpecialRange, g));
        rules.push(r);
    }
    match policy.mode {
        EgressMode::Allowlist => {
            for (fam, set_name) in [("ip", SET_V4), ("ip6", SET_V6)] {
                rules.push(vec![
                    eq(payload(fam, "daddr"), s(&format!("@{set_name}"))),
                    tcp_udp(),
                    eq(payload("th", "dport"), ports(&policy.allowed_ports)),
                    S::Accept(None),
                ]);
            }
        }
        // Open profile: every public address on every port but the always-dropped ones above.
        EgressMode::Full => rules.push(vec![tcp_udp(), S::Accept(None)]),
        EgressMode::None => {}
    }
    for (proto, ty) in [("icmp", "echo-request"), ("icmpv6", "echo-request")] {
        let mut r = vec![eq(payload(proto, "type"), s(ty))];
        r.extend(log_drop(DropReason::IcmpEcho, g));
        rules.push(r);
    }
    rules.push(log_drop(DropReason::NotAllowed, g).to_vec());

    for expr in rules {
        objs.push(NfObject::ListObject(NfListObject::Rule(Rule {
            family: fam,
            table: TABLE.into(),
            chain: CHAIN.into(),
            expr: expr.into(),
            ..Default::default()
        })));
    }
    Nftables {
        objects: objs.into(),
    }
}

/// Feed a batch to `nft -j -f -` running inside `netns`.
pub fn run_nft(netns: &Netns, batch: &Nftables) -> Result<(), NetError> {
    let json = serde_json::to_vec(batch).map_err(|e| NetError::Nft {
        netns: netns.path().into(),
        stderr: format!("cannot encode the ruleset: {e}"),
    })?;
    let nft = super::tools::find("nft").unwrap_or_else(|| "nft".into());
    let mut child = netns
        .command(&nft.to_string_lossy())
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                NetError::ToolMissing {
                    tool: "nft",
                    hint: "install the Debian package `nftables` (apt-get install -y nftables)",
                }
            } else {
                NetError::io(format!("start nft in {}", netns.path()), e)
            }
        })?;
    let wrote = child.stdin.take().map(|mut i| i.write_all(&json));
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::io("wait for nft", e))?;
    if let Some(Err(e)) = wrote {
        return Err(NetError::io("write the ruleset to nft", e));
    }
    if !out.status.success() {
        return Err(NetError::Nft {
            netns: netns.path().into(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Build and apply the sandbox's ruleset in its namespace.
pub fn apply(netns: &Netns, policy: &ValidEgress, cfg: &RulesConfig) -> Result<(), NetError> {
    run_nft(netns, &build(policy, cfg))
}

/// The batch that lets new connections reach `addrs` for the given times (whole seconds, at
/// least one). An address already present gets its timeout refreshed.
pub fn allow_batch(addrs: &[(IpAddr, Duration)]) -> Nftables<'static> {
    let mut objs = Vec::new();
    for (ip, ttl) in addrs {
        let name = if ip.is_ipv4() { SET_V4 } else { SET_V6 };
        let element = |elem: E<'static>| Element {
            family: NfFamily::INet,
            table: TABLE.into(),
            name: name.into(),
            elem: vec![elem].into(),
        };
        let timed = element(E::Named(N::Elem(Elem {
            val: Box::new(s(&ip.to_string())),
            timeout: Some(ttl.as_secs().clamp(1, u32::MAX as u64) as u32),
            expires: None,
            comment: None,
            counter: None,
        })));
        // Re-adding an element keeps its old timeout, so a refresh is add (makes sure it exists,
        // so the delete cannot fail), delete, add — all in one atomic transaction.
        objs.push(NfObject::CmdObject(NfCmd::Add(NfListObject::Element(
            timed.clone(),
        ))));
        objs.push(NfObject::CmdObject(NfCmd::Delete(NfListObject::Element(
            element(s(&ip.to_string())),
        ))));
        objs.push(NfObject::CmdObject(NfCmd::Add(NfListObject::Element(
            timed,
        ))));
    }
    Nftables {
        objects: objs.into(),
    }
}

/// Let new connections reach `ip` for `ttl` (on the allowed ports) from inside `netns`.
pub fn allow_addr(netns: &Netns, ip: IpAddr, ttl: Duration) -> Result<(), NetError> {
    run_nft(netns, &allow_batch(&[(ip, ttl)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::EgressPolicy;

    #[test]
    fn ruleset_json_carries_the_always_dropped_pieces() {
        let p = EgressPolicy::default().validate().unwrap();
        let cfg = RulesConfig {
            resolver: "127.0.0.53:53".parse().unwrap(),
            log_group: 7,
        };
        let json = serde_json::to_string(&build(&p, &cfg)).unwrap();
        for needle in [
            "\"policy\":\"drop\"",
            "\"169.254.0.0\"",
            "\"fc00::\"",
            "\"::ffff:0.0.0.0\"",
            "27017",
            "853",
            "lasso:database-port",
            "\"timeout\"",
            "@allow4",
            "@allow6",
        ] {
            assert!(json.contains(needle), "missing {needle} in {json}");
        }
    }
}
