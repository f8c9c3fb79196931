//! The sandbox's DNS resolver: the only DNS server the ruleset lets the sandbox reach, and the only
//! way an address gets into the allow sets.
//!
//! It listens on UDP and TCP at an address inside the sandbox's namespace (sockets made by a thread
//! that joined it) and is served by threads of the caller (the monitor), whose own namespace is
//! where upstream queries leave from. For an allowlisted name it forwards the client's query
//! unchanged (EDNS included) to the host's resolvers, retries over TCP when the upstream answer is
//! truncated, adds every A/AAAA of the CNAME chain to the allow sets with a timeout taken from the
//! TTL (clamped to a floor and a ceiling; answer TTLs above the ceiling are lowered so no client
//! caches an address longer than the kernel allows it), and only then answers. Names off the list
//! get REFUSED and are never forwarded (the query itself could carry data out). An allowed name
//! that resolves into an always-dropped range is DNS rebinding: the record is removed from the
//! answer, not added, and reported.

use super::netns::Netns;
use super::policy::{EgressMode, ValidEgress};
use super::setelem::SetWriter;
use super::{ranges, EgressAudit, NetError};
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the resolver listens, where it forwards, and how long learned addresses stay allowed.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// Address inside the sandbox's namespace (port 53 unless testing).
    pub listen: SocketAddr,
    pub upstreams: Vec<SocketAddr>,
    /// Shortest time an address stays in the allow sets (TTL 0 or 5 would make connections race).
    pub ttl_floor: Duration,
    /// Longest time; answer TTLs above it are lowered to it.
    pub ttl_ceiling: Duration,
    /// Per upstream attempt.
    pub upstream_timeout: Duration,
}

impl ResolverConfig {
    /// Listen on `listen`, forward to the `nameserver` lines of `resolv_conf` (the host's
    /// `/etc/resolv.conf` at start), floor 30 s, ceiling 1 h.
    pub fn from_resolv_conf(
        listen: SocketAddr,
        resolv_conf: &std::path::Path,
    ) -> Result<Self, NetError> {
        let text = std::fs::read_to_string(resolv_conf)
            .map_err(|e| NetError::io(format!("read {}", resolv_conf.display()), e))?;
        let upstreams = parse_resolv_conf(&text);
        if upstreams.is_empty() {
            return Err(NetError::NoUpstream {
                detail: format!(
                    "{} has no usable `nameserver` line; add one",
                    resolv_conf.display()
                ),
            });
        }
        Ok(ResolverConfig {
            listen,
            upstreams,
            ttl_floor: Duration::from_secs(30),
            ttl_ceiling: Duration::from_secs(3600),
            upstream_timeout: Duration::from_secs(2),
        })
    }
}

/// The `nameserver` addresses of a resolv.conf, port 53. Scoped IPv6 (`fe80::1%eth0`) is skipped.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

struct Shared {
    cfg: ResolverConfig,
    policy: ValidEgress,
    audit: Arc<dyn EgressAudit>,
    /// What we believe is in the allow sets and until when (saves a kernel round trip per
    /// repeated lookup), and the netlink socket that writes them, under one lock.
    allowed: Mutex<Learned>,
    stop: AtomicBool,
    /// UDP queries being answered; past `MAX_IN_FLIGHT` new ones are dropped (the client
    /// retries), so a query flood from the sandbox cannot exhaust the monitor's threads.
    in_flight: AtomicUsize,
}

const MAX_IN_FLIGHT: usize = 256;

/// How often idle serving threads look at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(20);

struct Learned {
    known: HashMap<IpAddr, Instant>,
    writer: SetWriter,
}

/// A running resolver; stops its threads when dropped.
pub struct Resolver {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    local: SocketAddr,
}

impl Resolver {
    /// Bind inside `netns` and start serving. `netns` is also where the allow sets are updated.
    pub fn start(
        cfg: ResolverConfig,
        policy: ValidEgress,
        netns: Netns,
        audit: Arc<dyn EgressAudit>,
    ) -> Result<Self, NetError> {
        if cfg.upstreams.is_empty() {
            return Err(NetError::NoUpstream {
                detail: "the resolver configuration lists no upstream server".into(),
            });
        }
        let listen = cfg.listen;
        let udp = netns.udp_bind(listen)?;
        let tcp = netns.tcp_listen(
            udp.local_addr()
                .map_err(|e| NetError::io("resolver address", e))?,
        )?;
        let local = udp
            .local_addr()
            .map_err(|e| NetError::io("resolver address", e))?;
        // The serving threads check their stop flag this often: a sandbox's teardown (and so
        // `lasso run`'s exit) waits for them.
        udp.set_read_timeout(Some(STOP_POLL))
            .map_err(|e| NetError::io("resolver socket", e))?;
        // Opened once: a netlink socket made inside the namespace keeps writing there, so a new
        // address costs one round trip to the kernel rather than an `nft` process.
        let writer = SetWriter::open(&netns)?;
        let shared = Arc::new(Shared {
            cfg,
            policy,
            audit,
            allowed: Mutex::new(Learned {
                known: HashMap::new(),
                writer,
            }),
            stop: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        });
        let s1 = shared.clone();
        let s2 = shared.clone();
        let threads = vec![
            std::thread::Builder::new()
                .name("lasso-dns-udp".into())
                .spawn(move || serve_udp(s1, udp))
                .map_err(|e| NetError::io("spawn resolver thread", e))?,
            std::thread::Builder::new()
                .name("lasso-dns-tcp".into())
                .spawn(move || serve_tcp(s2, tcp))
                .map_err(|e| NetError::io("spawn resolver thread", e))?,
        ];
        Ok(Resolver {
            shared,
            threads,
            local,
        })
    }

    /// The address the resolver answers on, inside the sandbox's namespace.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn serve_udp(shared: Arc<Shared>, sock: UdpSocket) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 65535];
    while !shared.stop.load(Ordering::SeqCst) {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue,
        };
        if shared.in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let query = buf[..n].to_vec();
        let (sh, so) = (shared.clone(), sock.clone());
        // One thread per query: a slow upstream must not hold up the next lookup.
        let spawned = std::thread::Builder::new()
            .name("lasso-dns-q".into())
            .spawn(move || {
                if let Some(resp) = sh.answer(&query, true) {
                    let _ = so.send_to(&resp, peer);
                }
                sh.in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn serve_tcp(shared: Arc<Shared>, listener: TcpListener) {
    while !shared.stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for a socket we own, for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, STOP_POLL.as_millis() as i32) };
        if r <= 0 {
            continue;
        }
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        let sh = shared.clone();
        let _ = std::thread::Builder::new()
            .name("lasso-dns-tcp-c".into())
            .spawn(move || serve_tcp_conn(sh, stream));
    }
}

fn serve_tcp_conn(shared: Arc<Shared>, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    while let Ok(query) = read_framed(&mut stream) {
        let Some(resp) = shared.answer(&query, false) else {
            return;
        };
        if write_framed(&mut stream, &resp).is_err() {
            return;
        }
    }
}

fn read_framed(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut msg)?;
    Ok(msg)
}

fn write_framed(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out)
}

fn error_reply(query: &Message, code: ResponseCode) -> Option<Vec<u8>> {
    let mut m = Message::error_msg(query.id(), query.op_code(), code);
    m.add_queries(query.queries().iter().cloned());
    m.set_recursion_desired(query.recursion_desired());
    m.set_recursion_available(true);
    m.to_vec().ok()
}

impl Shared {
    /// The reply to one query; `None` when the bytes are not worth answering.
    fn answer(&self, raw: &[u8], udp: bool) -> Option<Vec<u8>> {
        let query = match Message::from_vec(raw) {
            Ok(m) => m,
            Err(_) if raw.len() >= 12 => {
                let id = u16::from_be_bytes([raw[0], raw[1]]);
                return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                    .to_vec()
                    .ok();
            }
            Err(_) => return None,
        };
        if query.message_type() != MessageType::Query
            || query.op_code() != OpCode::Query
            || query.queries().len() != 1
        {
            return error_reply(&query, ResponseCode::Refused);
        }
        let q = &query.queries()[0];
        let name = q.name().to_ascii();
        if self.policy.mode != EgressMode::Full && !self.policy.name_allowed(&name) {
            self.audit
                .refused_name(name.trim_end_matches('.'), &q.query_type().to_string());
            return error_reply(&query, ResponseCode::Refused);
        }
        let Some(upstream) = self.forward(raw, query.id()) else {
            return error_reply(&query, ResponseCode::ServFail);
        };
        let resp = match self.vet(&query, upstream) {
            Ok(r) => r,
            Err(()) => return error_reply(&query, ResponseCode::ServFail),
        };
        if udp && resp.len() > query.max_payload() as usize {
            // The client retries over TCP when it sees TC (RFC 7766).
            return Message::from_vec(&resp).ok()?.truncate().to_vec().ok();
        }
        Some(resp)
    }

    /// Ask the upstreams in turn: UDP first, TCP when the answer is truncated.
    fn forward(&self, raw: &[u8], id: u16) -> Option<Vec<u8>> {
        for up in &self.cfg.upstreams {
            match self.forward_udp(raw, id, *up) {
                Some(r) if r.len() >= 3 && r[2] & 0x02 != 0 => {
                    if let Some(r) = self.forward_tcp(raw, *up) {
                        return Some(r);
                    }
                }
                Some(r) => return Some(r),
                None => {}
            }
        }
        None
    }

    fn forward_udp(&self, raw: &[u8], id: u16, up: SocketAddr) -> Option<Vec<u8>> {
        let bind: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let sock = UdpSocket::bind(bind).ok()?;
        sock.connect(up).ok()?;
        sock.set_read_timeout(Some(self.cfg.upstream_timeout))
            .ok()?;
        sock.send(raw).ok()?;
        let mut buf = vec![0u8; 65535];
        let deadline = Instant::now() + self.cfg.upstream_timeout;
        while Instant::now() < deadline {
            let n = sock.recv(&mut buf).ok()?;
            // A connected UDP socket only hears from `up`; the ID check drops stray late replies.
            if n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                return Some(buf[..n].to_vec());
            }
        }
        None
    }

    fn forward_tcp(&self, raw: &[u8], up: SocketAddr) -> Option<Vec<u8>> {
        let mut s = TcpStream::connect_timeout(&up, self.cfg.upstream_timeout).ok()?;
        s.set_read_timeout(Some(self.cfg.upstream_timeout)).ok()?;
        write_framed(&mut s, raw).ok()?;
        read_framed(&mut s).ok()
    }

    /// Learn the answer's addresses into the allow sets, strip rebinding records, cap TTLs.
    /// Returns the bytes to send (the upstream's own when nothing had to change).
    fn vet(&self, query: &Message, raw: Vec<u8>) -> Result<Vec<u8>, ()> {
        let mut msg = Message::from_vec(&raw).map_err(|_| ())?;
        if msg.id() != query.id() || msg.queries() != query.queries() {
            return Err(());
        }
        let qname = query.queries()[0].name().clone();
        let chain = cname_chain(&msg, &qname);
        let ceiling = self.cfg.ttl_ceiling.as_secs() as u32;
        let mut changed = false;
        let mut learn: Vec<(IpAddr, Duration)> = Vec::new();
        let mut keep = |rec: &hickory_proto::rr::Record, learn_it: bool| -> bool {
            let ip = match rec.data() {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                _ => return true,
            };
            if ranges::refusal(&self.policy, ip).is_some() {
                self.audit
                    .rebinding(qname.to_ascii().trim_end_matches('.'), ip);
                return false;
            }
            if learn_it && chain.contains(&rec.name().to_lowercase()) {
                let ttl = Duration::from_secs(rec.ttl() as u64)
                    .clamp(self.cfg.ttl_floor, self.cfg.ttl_ceiling);
                learn.push((ip, ttl));
            }
            true
        };
        let before = msg.answers().len() + msg.additionals().len();
        let answers: Vec<_> = msg
            .take_answers()
            .into_iter()
            .filter(|r| keep(r, true))
            .collect();
        let extra: Vec<_> = msg
            .take_additionals()
            .into_iter()
            .filter(|r| keep(r, false))
            .collect();
        changed |= answers.len() + extra.len() != before;
        msg.insert_answers(answers);
        msg.insert_additionals(extra);
        for rec in msg.answers_mut() {
            if rec.ttl() > ceiling {
                rec.set_ttl(ceiling);
                changed = true;
            }
        }
        if self.policy.mode == EgressMode::Allowlist {
            let expiry = self.allow(&learn).map_err(|_| ())?;
            // An address kept from an earlier lookup may expire before this answer's TTL runs
            // out: lower the TTL so the client asks again (and refreshes it) in time.
            let now = Instant::now();
            for rec in msg.answers_mut() {
                let ip = match rec.data() {
                    RData::A(a) => IpAddr::V4(a.0),
                    RData::AAAA(a) => IpAddr::V6(a.0),
                    _ => continue,
                };
                if let Some(exp) = expiry.get(&ip) {
                    let left = exp.saturating_duration_since(now).as_secs() as u32;
                    if rec.ttl() > left {
                        rec.set_ttl(left);
                        changed = true;
                    }
                }
            }
        }
        if changed {
            msg.to_vec().map_err(|_| ())
        } else {
            Ok(raw)
        }
    }

    /// Put addresses into the kernel's allow sets unless they are already there for at least
    /// half the new time; returns, per address, when its set element expires.
    fn allow(&self, learn: &[(IpAddr, Duration)]) -> Result<HashMap<IpAddr, Instant>, NetError> {
        let now = Instant::now();
        let mut guard = self.allowed.lock().unwrap_or_else(|p| p.into_inner());
        let Learned { known, writer } = &mut *guard;
        let need: Vec<(IpAddr, Duration)> = learn
            .iter()
            .filter(|(ip, ttl)| known.get(ip).is_none_or(|exp| *exp < now + *ttl / 2))
            .copied()
            .collect();
        if !need.is_empty() {
            // Under the lock: two lookups racing must not record a shorter expiry than the
            // kernel holds. One netlink round trip takes tens of microseconds.
            writer.allow(&need)?;
            known.retain(|_, exp| *exp > now);
            for (ip, ttl) in &need {
                known.insert(*ip, now + *ttl);
            }
        }
        Ok(learn
            .iter()
            .filter_map(|(ip, _)| known.get(ip).map(|e| (*ip, *e)))
            .collect())
    }
}

/// The question name and every name a CNAME chain from it reaches within the answer section.
fn cname_chain(msg: &Message, qname: &Name) -> HashSet<Name> {
    let mut chain = HashSet::from([qname.to_lowercase()]);
    // Bounded: a chain cannot be longer than the records that make it.
    for _ in 0..=msg.answers().len() {
        let mut grew = false;
        for rec in msg.answers() {
            if rec.record_type() == RecordType::CNAME && chain.contains(&rec.name().to_lowercase())
            {
                if let RData::CNAME(t) = rec.data() {
                    grew |= chain.insert(t.0.to_lowercase());
                }
            }
        }
        if !grew {
            break;
        }
    }
    chain
}
