//! The fake internet the egress tests run in, built only from network namespaces this test made.
//!
//! A "world" namespace holds the internet: a veth link with documentation addresses and a default
//! route (what pasta copies into the sandbox), a DNS server (a small authoritative one, `dns.rs`),
//! TCP and UDP echo hosts on documentation addresses, a fake cloud metadata service on
//! 169.254.169.254 and 100.100.100.200, a "LAN" host on 10.1.2.3 and a rogue DNS server. The sandbox is a second namespace connected to the world by pasta started *inside*
//! the world. Everything (processes, namespaces) is released by Drop guards, also when a test fails;
//! the machine's own namespace is never configured or sent to.

#![allow(dead_code)]

pub mod dns;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use lasso::net::{DropEvent, EgressAudit, Netns};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const WORLD_DNS: &str = "198.51.100.53";
pub const ROGUE_DNS: &str = "198.51.100.54";
pub const ALLOWED: &str = "203.0.113.10";
pub const CDN: &str = "203.0.113.11";
pub const WILD: &str = "203.0.113.12";
pub const UNLISTED: &str = "203.0.113.20";
pub const BRIEF: &str = "203.0.113.30";
/// Swallows whatever is sent to it (throughput benchmark).
pub const SINK: &str = "203.0.113.40";
pub const V6_ALLOWED: &str = "2001:db8:1::10";
pub const V6_UNLISTED: &str = "2001:db8:1::20";
pub const METADATA: &str = "169.254.169.254";
pub const ALIBABA_METADATA: &str = "100.100.100.200";
pub const LAN_HOST: &str = "10.1.2.3";

/// Ports every world host listens on (TCP; UDP echo on the same numbers).
pub const HOST_PORTS: &[u16] = &[80, 443, 853, 3306, 5432, 6379, 8080];

/// A process holding a fresh network namespace; killed (and the namespace with it) on drop.
pub struct NsHolder {
    child: Child,
}

impl NsHolder {
    /// `unshare --net` around a sleeper. `no_caps`: the sleeper drops every capability, so pasta
    /// (which drops its own) may open its namespace files. `userns`: the namespace is owned by a
    /// new user namespace, as for a rootless sandbox.
    pub fn new(no_caps: bool, userns: bool) -> Self {
        let mut cmd = Command::new("unshare");
        if userns {
            cmd.args(["--user", "--map-root-user"]);
        }
        cmd.args(["--net", "--"]);
        if no_caps {
            cmd.args(["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"]);
        }
        cmd.args(["sleep", "100000"]);
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .expect("start a namespace holder");
        let holder = NsHolder { child };
        let own = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ino = std::fs::metadata(holder.ns_path()).map(|m| m.ino());
            let exe = std::fs::read_link(format!("/proc/{}/exe", holder.pid()));
            if matches!(ino, Ok(i) if i != own)
                && exe.map(|e| e.ends_with("sleep")).unwrap_or(false)
            {
                break;
            }
            assert!(Instant::now() < deadline, "namespace holder did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        holder
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn ns_path(&self) -> String {
        format!("/proc/{}/ns/net", self.pid())
    }

    pub fn netns(&self) -> Netns {
        Netns::open(self.ns_path()).expect("open the test namespace")
    }
}

impl Drop for NsHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `ip ARGS` inside `ns`, panicking with its stderr on failure.
pub fn ip(ns: &Netns, args: &str) {
    let out = ns
        .command("ip")
        .args(args.split_whitespace())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the egress module reported, for assertions.
#[derive(Default)]
pub struct RecordingAudit {
    pub refused: Mutex<Vec<String>>,
    pub drops: Mutex<Vec<DropEvent>>,
    pub rebinds: Mutex<Vec<(String, IpAddr)>>,
}

impl EgressAudit for RecordingAudit {
    fn refused_name(&self, name: &str, _record_type: &str) {
        self.refused.lock().unwrap().push(name.to_string());
    }
    fn dropped(&self, event: &DropEvent) {
        self.drops.lock().unwrap().push(event.clone());
    }
    fn rebinding(&self, name: &str, address: IpAddr) {
        self.rebinds
            .lock()
            .unwrap()
            .push((name.to_string(), address));
    }
}

impl RecordingAudit {
    /// Wait (NFLOG is asynchronous) until a drop matching `pred` was reported.
    pub fn saw_drop(&self, pred: impl Fn(&DropEvent) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.drops.lock().unwrap().iter().any(&pred) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// The world namespace with its hosts and DNS server.
pub struct World {
    pub ns: Netns,
    stop: Arc<AtomicBool>,
    // Field order: the holder goes last, after everything that lives in its namespace.
    holder: NsHolder,
}

impl World {
    pub fn new() -> Self {
        let holder = NsHolder::new(false, false);
        let ns = holder.netns();
        ip(&ns, "link set lo up");
        ip(&ns, "link add wan0 type veth peer name wan1");
        ip(&ns, "link set wan0 up");
        ip(&ns, "link set wan1 up");
        ip(&ns, "addr add 192.0.2.1/24 dev wan0");
        ip(&ns, "route add default via 192.0.2.254 dev wan0");
        ip(&ns, "-6 addr add 2001:db8::1/64 dev wan0 nodad");
        ip(&ns, "-6 route add default via 2001:db8::fe dev wan0");
        for a in [
            WORLD_DNS,
            ROGUE_DNS,
            ALLOWED,
            CDN,
            WILD,
            UNLISTED,
            BRIEF,
            METADATA,
            ALIBABA_METADATA,
            LAN_HOST,
            SINK,
        ] {
            ip(&ns, &format!("addr add {a}/32 dev lo"));
        }
        for a in [V6_ALLOWED, V6_UNLISTED] {
            ip(&ns, &format!("-6 addr add {a}/128 dev lo nodad"));
        }
        let mut world = World {
            ns,
            stop: Arc::new(AtomicBool::new(false)),
            holder,
        };
        for a in [
            ALLOWED,
            CDN,
            WILD,
            UNLISTED,
            BRIEF,
            METADATA,
            ALIBABA_METADATA,
            LAN_HOST,
        ] {
            world.echo_hosts(a, HOST_PORTS);
        }
        for a in [V6_ALLOWED, V6_UNLISTED] {
            world.echo_hosts(a, HOST_PORTS);
        }
        // A rogue resolver and the real one's DoT port: they must stay unreachable.
        world.echo_hosts(ROGUE_DNS, &[53]);
        world.echo_hosts(WORLD_DNS, &[853]);
        // A service on the world's own loopback: pasta must not map the gateway to it.
        world.echo_hosts("127.0.0.1", &[443]);
        world.start_dns();
        world.sink(sa(SINK, 443));
        world
    }

    /// TCP hosts that greet with "hello <addr>" and UDP hosts that echo, bound inside the world.
    pub fn echo_hosts(&mut self, addr: &str, ports: &[u16]) {
        let ip = IpAddr::from_str(addr).unwrap();
        for &port in ports {
            let sa = SocketAddr::new(ip, port);
            let (tcp, udp) = self
                .ns
                .run(|| (TcpListener::bind(sa).unwrap(), UdpSocket::bind(sa).unwrap()))
                .unwrap();
            tcp.set_nonblocking(true).unwrap();
            udp.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let stop = self.stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match tcp.accept() {
                        Ok((mut s, _)) => {
                            let _ = s.write_all(format!("hello {sa}").as_bytes());
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            });
            let stop = self.stop.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((n, peer)) = udp.recv_from(&mut buf) {
                        let _ = udp.send_to(&buf[..n], peer);
                    }
                }
            });
        }
    }

    /// A TCP server that reads and discards, for throughput.
    pub fn sink(&mut self, addr: SocketAddr) {
        let l = self.ns.run(|| TcpListener::bind(addr).unwrap()).unwrap();
        l.set_nonblocking(true).unwrap();
        let stop = self.stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        std::thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let mut buf = vec![0u8; 1 << 16];
                            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                            let _ = s.write_all(b"done");
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }

    fn start_dns(&mut self) {
        let big: Vec<String> = (0..12)
            .map(|i| format!("chunk{i:02}-").repeat(12))
            .collect();
        let mut zone = dns::Zone {
            ttl: 60,
            ..Default::default()
        };
        zone.a("allowed.test", ALLOWED)
            .cname("alias.allowed.test", "cdn.elsewhere.test")
            .a("cdn.elsewhere.test", CDN)
            .a("unlisted.test", UNLISTED)
            .a("brief.allowed.test", BRIEF)
            .a("v6.allowed.test", V6_ALLOWED)
            .a("rebind.allowed.test", METADATA)
            .a("lan.allowed.test", LAN_HOST)
            .a("mapped.allowed.test", &format!("::ffff:{METADATA}"))
            .a("wild.test", WILD)
            .a("*.wild.test", WILD)
            .txt("big.allowed.test", big)
            .a("sink.allowed.test", SINK);
        // Distinct names with distinct addresses: every first lookup has to reach the kernel.
        for i in 0..1000 {
            zone.a(&format!("h{i}.many.test"), &format!("2001:db8:5::{i:x}"));
        }
        let addr = sa(WORLD_DNS, 53);
        let (udp, tcp) = self
            .ns
            .run(|| {
                (
                    UdpSocket::bind(addr).unwrap(),
                    TcpListener::bind(addr).unwrap(),
                )
            })
            .unwrap();
        dns::serve(zone, udp, tcp, self.stop.clone());
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// How a lookup ended.
#[derive(Debug)]
pub struct Lookup {
    pub msg: Message,
    pub via_tcp: bool,
}

fn query_bytes(name: &str, ty: RecordType) -> (u16, Vec<u8>) {
    let mut id = [0u8; 2];
    getrandom::fill(&mut id).unwrap();
    let id = u16::from_be_bytes(id);
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
    (id, m.to_vec().unwrap())
}

/// A stub resolver as a libc would be: UDP without EDNS (512 bytes), TCP when truncated.
pub fn lookup(server: SocketAddr, name: &str, ty: RecordType) -> std::io::Result<Lookup> {
    let (id, q) = query_bytes(name, ty);
    let bind = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(server)?;
    sock.set_read_timeout(Some(Duration::from_millis(1500)))?;
    sock.send(&q)?;
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf)?;
    let msg = Message::from_vec(&buf[..n]).map_err(std::io::Error::other)?;
    assert_eq!(msg.id(), id);
    if !msg.truncated() {
        return Ok(Lookup {
            msg,
            via_tcp: false,
        });
    }
    Ok(Lookup {
        msg: lookup_tcp(server, name, ty)?,
        via_tcp: true,
    })
}

/// DNS over TCP only.
pub fn lookup_tcp(server: SocketAddr, name: &str, ty: RecordType) -> std::io::Result<Message> {
    let (_, q) = query_bytes(name, ty);
    let mut s = TcpStream::connect_timeout(&server, Duration::from_millis(1500))?;
    s.set_read_timeout(Some(Duration::from_millis(1500)))?;
    let mut out = (q.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&q);
    s.write_all(&out)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut resp)?;
    Message::from_vec(&resp).map_err(std::io::Error::other)
}

/// Addresses of the A/AAAA records of an answer.
pub fn addresses(msg: &Message) -> Vec<IpAddr> {
    msg.answers()
        .iter()
        .filter_map(|r| match r.data() {
            hickory_proto::rr::RData::A(a) => Some(IpAddr::V4(a.0)),
            hickory_proto::rr::RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// Open a TCP connection and read the host's greeting: Ok only when the far end answered.
pub fn tcp_talk(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(1000))?;
    s.set_read_timeout(Some(Duration::from_millis(1000)))?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    if buf.is_empty() {
        return Err(std::io::Error::other("connected but no greeting"));
    }
    Ok(buf)
}

/// Send a UDP datagram and wait for the echo.
pub fn udp_talk(addr: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let bind = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let s = UdpSocket::bind(bind)?;
    s.set_read_timeout(Some(Duration::from_millis(1000)))?;
    s.send_to(payload, addr)?;
    let mut buf = [0u8; 2048];
    let (n, _) = s.recv_from(&mut buf)?;
    Ok(buf[..n].to_vec())
}

pub fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::from_str(ip).unwrap(), port)
}

/// The sandbox side: a namespace connected to the world by pasta, with lasso's ruleset, resolver
/// and drop reader. Fields drop in order: resolver and reader first, the namespace holder last.
pub struct Sandbox {
    pub resolver: Option<lasso::net::resolver::Resolver>,
    pub drops: Option<lasso::net::drops::DropWatcher>,
    pub pasta: Option<lasso::net::pasta::Pasta>,
    pub audit: Arc<RecordingAudit>,
    pub ns: Netns,
    holder: NsHolder,
}

pub const RESOLVER: &str = "127.0.0.53";
pub const LOG_GROUP: u16 = 7;

/// Knobs of a test sandbox.
pub struct SandboxOpts {
    pub ttl_floor: Duration,
    pub ttl_ceiling: Duration,
    /// The sandbox's namespace belongs to its own user namespace (the rootless layout).
    pub userns: bool,
    pub link: Link,
    /// Apply lasso's ruleset (off only to measure its cost).
    pub rules: bool,
}

/// How the sandbox is wired to the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// pasta, started inside the world (what lasso does).
    Pasta,
    /// A veth pair: for hosts where pasta cannot open /dev/net/tun (mode 0600 and no root).
    Veth,
}

impl Link {
    /// pasta when this process may open /dev/net/tun, else a veth pair (and say so).
    pub fn best() -> Self {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
        {
            Ok(_) => Link::Pasta,
            Err(e) => {
                eprintln!("note: /dev/net/tun not usable here ({e}); the sandbox is wired by veth");
                Link::Veth
            }
        }
    }
}

impl Default for SandboxOpts {
    fn default() -> Self {
        SandboxOpts {
            ttl_floor: Duration::from_secs(30),
            ttl_ceiling: Duration::from_secs(3600),
            userns: false,
            link: Link::Pasta,
            rules: true,
        }
    }
}

impl Sandbox {
    pub fn new(world: &World, policy: lasso::net::EgressPolicy, opts: SandboxOpts) -> Self {
        use lasso::net::{pasta, resolver, rules, EgressMode};
        let holder = NsHolder::new(true, opts.userns);
        let ns = holder.netns();
        let valid = policy.validate().expect("valid test policy");
        let target = if opts.userns {
            pasta::PastaTarget::Pid(holder.pid())
        } else {
            pasta::PastaTarget::Path {
                netns: holder.ns_path().into(),
                userns: None,
            }
        };
        let pasta = if opts.link == Link::Veth && valid.mode != EgressMode::None {
            veth(world, &ns, holder.pid());
            None
        } else {
            pasta::connect(valid.mode, &ns, &target, Some(&world.ns)).expect("pasta")
        };
        let resolver_addr = sa(RESOLVER, 53);
        if opts.rules {
            rules::apply(
                &ns,
                &valid,
                &rules::RulesConfig {
                    resolver: resolver_addr,
                    log_group: LOG_GROUP,
                },
            )
            .expect("apply the ruleset");
        }
        let audit = Arc::new(RecordingAudit::default());
        let drops = lasso::net::drops::DropWatcher::start(&ns, LOG_GROUP, audit.clone())
            .expect("read NFLOG");
        let resolver = if valid.mode == EgressMode::None {
            None
        } else {
            // The resolver's serving threads live in the world (the "host" of this test), so
            // its upstream queries leave from there; its listening sockets are in the sandbox.
            let dir = tempfile::tempdir().unwrap();
            let conf = dir.path().join("resolv.conf");
            std::fs::write(
                &conf,
                format!("# the world's resolver\nnameserver {WORLD_DNS}\n"),
            )
            .unwrap();
            let mut cfg = resolver::ResolverConfig::from_resolv_conf(resolver_addr, &conf).unwrap();
            cfg.ttl_floor = opts.ttl_floor;
            cfg.ttl_ceiling = opts.ttl_ceiling;
            let sandbox_ns = holder.netns();
            let audit: Arc<dyn EgressAudit> = audit.clone();
            Some(
                world
                    .ns
                    .run(move || resolver::Resolver::start(cfg, valid, sandbox_ns, audit))
                    .unwrap()
                    .expect("start the resolver"),
            )
        };
        Sandbox {
            resolver,
            drops: Some(drops),
            pasta,
            audit,
            ns,
            holder,
        }
    }

    pub fn pid(&self) -> u32 {
        self.holder.pid()
    }

    /// Run `f` as the agent would: on a thread inside the sandbox's namespace.
    pub fn agent<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.ns.run(f).unwrap()
    }

    pub fn resolve(&self, name: &str, ty: RecordType) -> std::io::Result<Lookup> {
        self.agent(|| lookup(sa(RESOLVER, 53), name, ty))
    }
}

/// Wire the sandbox to the world with a veth pair on a documentation /30 (and a /64 for IPv6).
fn veth(world: &World, sandbox: &Netns, pid: u32) {
    ip(
        &world.ns,
        &format!("link add w-sbx type veth peer name eth0 netns /proc/{pid}/ns/net"),
    );
    ip(&world.ns, "addr add 198.51.100.129/30 dev w-sbx");
    ip(&world.ns, "-6 addr add 2001:db8:2::1/64 dev w-sbx nodad");
    ip(&world.ns, "link set w-sbx up");
    ip(sandbox, "link set lo up");
    ip(sandbox, "addr add 198.51.100.130/30 dev eth0");
    ip(sandbox, "-6 addr add 2001:db8:2::2/64 dev eth0 nodad");
    ip(sandbox, "link set eth0 up");
    ip(sandbox, "route add default via 198.51.100.129");
    ip(sandbox, "-6 route add default via 2001:db8:2::1");
}
