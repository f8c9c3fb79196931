//! Reads the packets the ruleset dropped, from NFLOG (the `log group N` of every drop rule), and
//! hands each to the audit sink as destination, port, protocol and reason (the rule's
//! `lasso:<reason>` prefix).
//!
//! NFLOG is per network namespace, so the netlink socket is made by a thread that joined the
//! sandbox's namespace; a reader thread of the caller then serves it. The wire format (netlink
//! header, nfgenmsg, attributes) is decoded here by hand: it is small, fixed kernel ABI
//! (`linux/netfilter/nfnetlink_log.h`), and a library would be larger than the code.

use super::netns::Netns;
use super::{DropEvent, DropReason, EgressAudit, NetError};
use nix::sys::socket::{bind, recv, send, setsockopt, sockopt, MsgFlags, NetlinkAddr};
use nix::sys::time::TimeVal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
/// Enough of a packet for the IPv6 header and the transport ports.
const COPY_RANGE: u32 = 64;

fn attr(out: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(payload);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn config_msg(group: u16, seq: u32, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![libc::AF_UNSPEC as u8, 0];
    body.extend_from_slice(&group.to_be_bytes());
    for (ty, p) in attrs {
        attr(&mut body, *ty, p);
    }
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG).to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    msg
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// Split a netlink datagram into (type, payload) messages.
fn messages(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    while let (Some(len), Some(ty)) = (u32_at(buf, i), u16_at(buf, i + 4)) {
        let len = len as usize;
        if len < 16 || i + len > buf.len() {
            break;
        }
        out.push((ty, &buf[i + 16..i + len]));
        i += (len + 3) & !3;
    }
    out
}

fn wait_ack(fd: &OwnedFd) -> Result<(), NetError> {
    let mut buf = vec![0u8; 8192];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())
        .map_err(|e| NetError::io("read the NFLOG bind answer", e.into()))?;
    for (ty, body) in messages(&buf[..n]) {
        if ty == NLMSG_ERROR {
            let code = u32_at(body, 0).unwrap_or(0) as i32;
            if code != 0 {
                return Err(NetError::io(
                    "bind the NFLOG group",
                    std::io::Error::from_raw_os_error(-code),
                ));
            }
        }
    }
    Ok(())
}

/// Decode one logged packet (an IP header onward) with its rule prefix.
pub fn parse_packet(prefix: &str, pkt: &[u8]) -> Option<DropEvent> {
    let reason = DropReason::parse(prefix.trim().trim_start_matches("lasso:"))?;
    let (dst, proto, l4): (IpAddr, u8, usize) = match pkt.first()? >> 4 {
        4 => {
            let d: [u8; 4] = pkt.get(16..20)?.try_into().ok()?;
            (
                Ipv4Addr::from(d).into(),
                *pkt.get(9)?,
                ((pkt[0] & 0x0f) as usize) * 4,
            )
        }
        6 => {
            let d: [u8; 16] = pkt.get(24..40)?.try_into().ok()?;
            (Ipv6Addr::from(d).into(), *pkt.get(6)?, 40)
        }
        _ => return None,
    };
    let port = match proto {
        6 | 17 => pkt
            .get(l4 + 2..l4 + 4)
            .map(|p| u16::from_be_bytes([p[0], p[1]])),
        _ => None,
    };
    let protocol = match proto {
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        1 => "icmp".to_string(),
        58 => "icmpv6".to_string(),
        n => n.to_string(),
    };
    Some(DropEvent {
        destination: dst,
        port,
        protocol,
        reason,
    })
}

fn parse_datagram(buf: &[u8]) -> Vec<DropEvent> {
    let mut out = Vec::new();
    for (ty, body) in messages(buf) {
        if ty != (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET || body.len() < 4 {
            continue;
        }
        let (mut prefix, mut payload) = ("", &[][..]);
        let mut i = 4;
        while let (Some(len), Some(aty)) = (u16_at(body, i), u16_at(body, i + 2)) {
            let len = len as usize;
            if len < 4 || i + len > body.len() {
                break;
            }
            let data = &body[i + 4..i + len];
            match aty & 0x3fff {
                NFULA_PREFIX => {
                    prefix = std::str::from_utf8(data)
                        .unwrap_or("")
                        .trim_end_matches('\0')
                }
                NFULA_PAYLOAD => payload = data,
                _ => {}
            }
            i += (len + 3) & !3;
        }
        if let Some(ev) = parse_packet(prefix, payload) {
            out.push(ev);
        }
    }
    out
}

/// Reads one sandbox's drop log until dropped.
pub struct DropWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DropWatcher {
    /// Bind NFLOG group `group` inside `netns` and report every logged drop to `audit`.
    pub fn start(netns: &Netns, group: u16, audit: Arc<dyn EgressAudit>) -> Result<Self, NetError> {
        let fd = netns.socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|e| NetError::io("bind the NFLOG socket", e.into()))?;
        let mut mode = COPY_RANGE.to_be_bytes().to_vec();
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
        for (seq, attrs) in [
            (1, vec![(NFULA_CFG_CMD, vec![NFULNL_CFG_CMD_BIND])]),
            (
                2,
                vec![
                    (NFULA_CFG_MODE, mode),
                    // Deliver every packet at once instead of batching up to a second.
                    (NFULA_CFG_QTHRESH, 1u32.to_be_bytes().to_vec()),
                ],
            ),
        ] {
            send(
                fd.as_raw_fd(),
                &config_msg(group, seq, &attrs),
                MsgFlags::empty(),
            )
            .map_err(|e| NetError::io("configure NFLOG", e.into()))?;
            wait_ack(&fd)?;
        }
        // The reader looks at its stop flag this often; a sandbox's teardown waits for it.
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(0, 20_000))
            .map_err(|e| NetError::io("NFLOG socket timeout", e.into()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::Builder::new()
            .name("lasso-nflog".into())
            .spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !st.load(Ordering::SeqCst) {
                    // Timeouts and ENOBUFS (a burst overflowed the buffer) just go round again.
                    let Ok(n) = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) else {
                        continue;
                    };
                    for ev in parse_datagram(&buf[..n]) {
                        audit.dropped(&ev);
                    }
                }
            })
            .map_err(|e| NetError::io("spawn the NFLOG reader", e))?;
        Ok(DropWatcher {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for DropWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_tcp_syn_to_the_metadata_service_decodes() {
        let mut pkt = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 2, 169, 254, 169, 254,
        ];
        pkt.extend_from_slice(&[0x9c, 0x40, 0, 80]);
        let ev = parse_packet("lasso:special-range ", &pkt).unwrap();
        assert_eq!(ev.destination, "169.254.169.254".parse::<IpAddr>().unwrap());
        assert_eq!(ev.port, Some(80));
        assert_eq!(ev.protocol, "tcp");
        assert_eq!(ev.reason, DropReason::SpecialRange);
        assert!(parse_packet("someone-else", &pkt).is_none());
    }
}
