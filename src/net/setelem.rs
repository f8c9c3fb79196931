//! Writes timed elements into the ruleset's allow sets over a netfilter netlink socket, so the
//! resolver can let an address through in tens of microseconds instead of the ~16 ms that starting
//! an `nft` process costs on every new address.
//!
//! Owns one `NETLINK_NETFILTER` socket, created by a thread that joined the sandbox's namespace;
//! a netlink socket stays bound to the namespace it was created in, so every batch sent on it
//! changes that namespace only, whichever thread sends it. It only adds and deletes elements of
//! the sets `rules` created; the table, chains and sets themselves stay `nft`'s job.
//!
//! Why a small encoder of our own: the three messages needed (batch begin/end and NEWSETELEM /
//! DELSETELEM with a key and a timeout) are a few dozen bytes of fixed layout, while the crates
//! that speak nf_tables either link the C libraries libnftnl and libmnl (`nftnl`, `mnl`) or bring
//! a whole rule model (`rustables`) for what is here one function. The layout follows
//! `linux/netfilter/nf_tables.h` and `linux/netfilter/nfnetlink.h`.

use super::netns::Netns;
use super::rules::{SET_V4, SET_V6, TABLE};
use super::NetError;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFT_MSG_GETGEN: u16 = 16;
const NFPROTO_INET: u8 = 1;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_DATA_VALUE: u16 = 1;

/// A netlink socket inside one sandbox's namespace that updates its allow sets.
#[derive(Debug)]
pub struct SetWriter {
    fd: OwnedFd,
    netns: String,
    seq: u32,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Appends netlink attributes to a buffer; nests patch their length when closed.
struct Attrs<'a>(&'a mut Vec<u8>);

impl Attrs<'_> {
    fn put(&mut self, ty: u16, payload: &[u8]) {
        let len = 4 + payload.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(payload);
        self.0.resize(align4(self.0.len()), 0);
    }

    fn put_str(&mut self, ty: u16, s: &str) {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.put(ty, &b);
    }

    fn nest(&mut self, ty: u16, inner: impl FnOnce(&mut Attrs)) {
        let start = self.0.len();
        self.put(ty | NLA_F_NESTED, &[]);
        inner(&mut Attrs(self.0));
        let len = (self.0.len() - start) as u16;
        self.0[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

/// One netlink message: header, nfgenmsg, then what `body` appends.
fn message(
    out: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    body: impl FnOnce(&mut Attrs),
) {
    let start = out.len();
    out.extend_from_slice(&0u32.to_ne_bytes()); // length, patched below
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills in ours
    out.push(family);
    out.push(0); // NFNETLINK_V0
    out.extend_from_slice(&res_id.to_be_bytes());
    body(&mut Attrs(out));
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

fn element_msg(out: &mut Vec<u8>, ty: u16, seq: u32, ip: IpAddr, timeout: Option<Duration>) {
    let (set, key) = match ip {
        IpAddr::V4(a) => (SET_V4, a.octets().to_vec()),
        IpAddr::V6(a) => (SET_V6, a.octets().to_vec()),
    };
    let flags = NLM_F_REQUEST
        | if ty == NFT_MSG_NEWSETELEM {
            NLM_F_CREATE
        } else {
            0
        };
    message(
        out,
        (NFNL_SUBSYS_NFTABLES << 8) | ty,
        flags,
        seq,
        NFPROTO_INET,
        0,
        |a| {
            a.put_str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
            a.put_str(NFTA_SET_ELEM_LIST_SET, set);
            a.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |a| {
                a.nest(NFTA_LIST_ELEM, |a| {
                    a.nest(NFTA_SET_ELEM_KEY, |a| a.put(NFTA_DATA_VALUE, &key));
                    if let Some(t) = timeout {
                        let ms = t.as_millis().clamp(1000, u64::MAX as u128) as u64;
                        a.put(NFTA_SET_ELEM_TIMEOUT, &ms.to_be_bytes());
                    }
                });
            });
        },
    );
}

/// The bytes of one transaction that (re)sets each address's timeout, starting at sequence `seq`.
/// Re-adding an existing element keeps its old timeout, so each address is added (so that the
/// delete cannot fail), deleted and added again with the new one; the batch is atomic, so no
/// packet ever sees the address missing.
pub fn allow_batch_bytes(addrs: &[(IpAddr, Duration)], seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + addrs.len() * 3 * 80);
    let mut seq = seq;
    let mut next = || {
        seq = seq.wrapping_add(1);
        seq
    };
    let res = NFNL_SUBSYS_NFTABLES;
    message(
        &mut out,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        next(),
        0,
        res,
        |_| {},
    );
    for (ip, ttl) in addrs {
        element_msg(&mut out, NFT_MSG_NEWSETELEM, next(), *ip, Some(*ttl));
        element_msg(&mut out, NFT_MSG_DELSETELEM, next(), *ip, None);
        element_msg(&mut out, NFT_MSG_NEWSETELEM, next(), *ip, Some(*ttl));
    }
    message(
        &mut out,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        next(),
        0,
        res,
        |_| {},
    );
    out
}

impl SetWriter {
    /// Open the socket inside `netns` (needs CAP_NET_ADMIN over it, as `nft` does).
    pub fn open(netns: &Netns) -> Result<Self, NetError> {
        let fd = netns.socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        )?;
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: setsockopt on our own fd with a correctly sized timeval; a kernel that hangs on
        // a reply must not hang the resolver forever.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(NetError::io(
                "set a receive timeout on the netfilter socket",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(SetWriter {
            fd,
            netns: netns.path().into(),
            seq: 0,
        })
    }

    /// Let new connections reach each address for its time (whole seconds, at least one); an
    /// address already there gets the new timeout. Returns once the kernel has committed it.
    pub fn allow(&mut self, addrs: &[(IpAddr, Duration)]) -> Result<(), NetError> {
        if addrs.is_empty() {
            return Ok(());
        }
        let first = self.seq.wrapping_add(1);
        let batch = allow_batch_bytes(addrs, self.seq);
        self.seq = self.seq.wrapping_add(2 + 3 * addrs.len() as u32);
        self.send(&batch)?;
        // Batch messages are acknowledged only when they fail, so a GETGEN with an ACK follows,
        // in its own datagram (the kernel ignores whatever follows a batch's end in one): the
        // kernel answers a socket's messages in order, and this ACK means the batch is done.
        self.seq = self.seq.wrapping_add(1);
        let fence = self.seq;
        let mut ping = Vec::with_capacity(20);
        message(
            &mut ping,
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
            NLM_F_REQUEST | NLM_F_ACK,
            fence,
            0,
            0,
            |_| {},
        );
        self.send(&ping)?;
        self.read_until(first, fence)
    }

    fn send(&self, bytes: &[u8]) -> Result<(), NetError> {
        // SAFETY: sockaddr_nl is plain data; zeroed with the family set addresses the kernel.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `bytes` and `sa` are valid for the lengths given for the whole call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
                0,
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 || n as usize != bytes.len() {
            return Err(NetError::io(
                format!("send set elements in {}", self.netns),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Read replies up to the ACK of `fence`; the first error reply to a message of this batch
    /// (sequence `first` up to `fence`) fails the call. Replies left over from an earlier call
    /// that timed out are skipped by their sequence numbers.
    fn read_until(&self, first: u32, fence: u32) -> Result<(), NetError> {
        let mut buf = vec![0u8; 16384];
        let mut failure: Option<i32> = None;
        loop {
            // SAFETY: `buf` is valid for writes of its length for the whole call.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            if n < 0 {
                return Err(NetError::io(
                    format!("read the netfilter reply in {}", self.netns),
                    std::io::Error::last_os_error(),
                ));
            }
            let mut off = 0usize;
            let n = n as usize;
            while off + 16 <= n {
                let h = &buf[off..];
                let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
                let ty = u16::from_ne_bytes([h[4], h[5]]);
                let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
                if len < 16 || off + len > n {
                    break;
                }
                if ty == NLMSG_ERROR && len >= 20 {
                    let err = i32::from_ne_bytes([h[16], h[17], h[18], h[19]]);
                    if seq == fence {
                        return match failure {
                            Some(e) => Err(self.kernel_error(e)),
                            None if err != 0 => Err(self.kernel_error(err)),
                            None => Ok(()),
                        };
                    }
                    let ours = seq.wrapping_sub(first) < fence.wrapping_sub(first);
                    if ours && err != 0 && failure.is_none() {
                        failure = Some(err);
                    }
                }
                off += align4(len);
            }
        }
    }

    fn kernel_error(&self, err: i32) -> NetError {
        NetError::Nft {
            netns: self.netns.clone(),
            stderr: format!(
                "adding to the allow sets failed: {} (was the `inet {TABLE}` ruleset applied?)",
                std::io::Error::from_raw_os_error(-err)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_layout_is_begin_three_elements_end() {
        let b = allow_batch_bytes(
            &[("203.0.113.7".parse().unwrap(), Duration::from_secs(30))],
            0,
        );
        let mut off = 0;
        let mut types = Vec::new();
        while off < b.len() {
            let len = u32::from_ne_bytes(b[off..off + 4].try_into().unwrap()) as usize;
            types.push(u16::from_ne_bytes([b[off + 4], b[off + 5]]));
            off += align4(len);
        }
        assert_eq!(off, b.len());
        let el = |t| (NFNL_SUBSYS_NFTABLES << 8) | t;
        assert_eq!(
            types,
            vec![
                NFNL_MSG_BATCH_BEGIN,
                el(NFT_MSG_NEWSETELEM),
                el(NFT_MSG_DELSETELEM),
                el(NFT_MSG_NEWSETELEM),
                NFNL_MSG_BATCH_END
            ]
        );
        // The key is the address in network order and the timeout is milliseconds, big-endian.
        let find = |needle: &[u8]| b.windows(needle.len()).any(|w| w == needle);
        assert!(find(&[203, 0, 113, 7]));
        assert!(find(&30_000u64.to_be_bytes()));
        assert!(find(b"allow4\0"));
    }
}
