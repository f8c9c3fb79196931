# Egress attempts made from inside a lasso sandbox. One line per attempt: NAME=reached:DETAIL
# when the far side answered, NAME=refused:WHY when it did not. The test holds the expectations.
import concurrent.futures as cf
import os
import random
import socket
import struct
import sys
import time

T = 1.0


def query(name, qtype=1):
    tid = random.randrange(65536)
    hdr = struct.pack(">HHHHHH", tid, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return tid, hdr + qname + struct.pack(">HH", qtype, 1)


def rcode_of(d):
    if len(d) < 12:
        raise OSError("short DNS answer")
    return "rcode%d ancount%d" % (d[3] & 15, struct.unpack(">H", d[6:8])[0])


def dns_udp(server, name, port=53):
    _, m = query(name)
    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(T)
    s.sendto(m, (server, port))
    return rcode_of(s.recv(4096))


def dns_tcp(server, name, port=53):
    _, m = query(name)
    s = socket.create_connection((server, port), timeout=T)
    s.settimeout(T)
    s.sendall(struct.pack(">H", len(m)) + m)
    n = struct.unpack(">H", s.recv(2))[0]
    d = b""
    while len(d) < n:
        c = s.recv(n - len(d))
        if not c:
            break
        d += c
    return rcode_of(d)


def resolve(name):
    addrs = sorted({a[4][0] for a in socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)})
    if not addrs:
        raise OSError("no address")
    return ",".join(addrs)


def talk(host, port):
    s = socket.create_connection((host, port), timeout=T)
    s.settimeout(T)
    d = s.recv(200)
    if not d:
        raise OSError("connected, no greeting")
    return d.decode(errors="replace").strip()


def udp_echo(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(T)
    s.sendto(b"ping", (host, port))
    return s.recv(100).decode(errors="replace")


def raw_icmp():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    return "raw socket opened"


def packet_socket():
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    return "packet socket opened"


def ping(host):
    # Unprivileged ICMP echo (a datagram ICMP socket), the way ping works without privileges.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    s.settimeout(T)
    s.sendto(struct.pack(">BBHHH", 8, 0, 0, 0, 1) + b"lasso", (host, 0))
    return "echo reply %d bytes" % len(s.recv(100))


def default_route():
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            if line.split()[1] == "00000000":
                return "default route via " + line.split()[0]
    with open("/proc/net/ipv6_route") as f:
        for line in f:
            f = line.split()
            if f[0] == "0" * 32 and f[1] == "00" and f[-1] != "lo":
                return "IPv6 default route via " + f[-1]
    raise OSError("no default route")


def attempts(kind):
    if kind == "offline":
        return {
            "offline_default_route": default_route,
            "offline_resolve_allowed": lambda: resolve("allowed.test"),
            "offline_tcp_direct_ip": lambda: talk("203.0.113.10", 443),
            "offline_udp_direct_ip": lambda: udp_echo("203.0.113.10", 443),
            "offline_metadata": lambda: talk("169.254.169.254", 80),
            "offline_dns_world": lambda: dns_udp("198.51.100.53", "allowed.test"),
        }
    return {
        "resolve_allowed": lambda: resolve("allowed.test"),
        "tcp_allowed_443": lambda: talk("allowed.test", 443),
        "tcp_allowed_80": lambda: talk("allowed.test", 80),
        "cname_chain_443": lambda: talk("alias.allowed.test", 443),
        "resolver_tcp_allowed": lambda: dns_tcp("127.0.0.53", "allowed.test"),
        "resolve_unlisted": lambda: resolve("unlisted.test"),
        "resolve_wildcard_elsewhere": lambda: resolve("x.wild.test"),
        "resolver_tcp_unlisted": lambda: dns_tcp("127.0.0.53", "unlisted.test"),
        "direct_ip_unlisted_443": lambda: talk("203.0.113.20", 443),
        "direct_ip_unlisted_80": lambda: talk("203.0.113.20", 80),
        "direct_ipv6_unlisted": lambda: talk("2001:db8:1::20", 443),
        "udp_unlisted": lambda: udp_echo("203.0.113.20", 443),
        "allowed_host_port_8080": lambda: talk("203.0.113.10", 8080),
        "metadata_http": lambda: talk("169.254.169.254", 80),
        "metadata_alibaba": lambda: talk("100.100.100.200", 80),
        "metadata_udp": lambda: udp_echo("169.254.169.254", 80),
        "metadata_mapped_v6": lambda: talk("::ffff:169.254.169.254", 80),
        "link_local_other": lambda: talk("169.254.1.1", 80),
        "cgnat_range": lambda: talk("100.64.0.1", 443),
        "lan_host_443": lambda: talk("10.1.2.3", 443),
        "gateway_443": lambda: talk("192.0.2.254", 443),
        "db_mysql_allowed_host": lambda: talk("203.0.113.10", 3306),
        "db_postgres_allowed_host": lambda: talk("203.0.113.10", 5432),
        "db_redis_allowed_host": lambda: talk("203.0.113.10", 6379),
        "dns_udp_rogue": lambda: dns_udp("198.51.100.54", "allowed.test"),
        "dns_tcp_rogue": lambda: dns_tcp("198.51.100.54", "allowed.test"),
        "dns_udp_world_direct": lambda: dns_udp("198.51.100.53", "unlisted.test"),
        "dns_tcp_world_direct": lambda: dns_tcp("198.51.100.53", "unlisted.test"),
        "dot_world_853": lambda: talk("198.51.100.53", 853),
        "dot_allowed_host_853": lambda: talk("203.0.113.10", 853),
        "raw_socket": raw_icmp,
        "packet_socket": packet_socket,
        "icmp_echo_allowed_host": lambda: ping("203.0.113.10"),
        "rebinding_metadata": lambda: resolve("rebind.allowed.test"),
        "rebinding_lan": lambda: resolve("lan.allowed.test"),
        "rebinding_mapped_v6": lambda: resolve("mapped.allowed.test"),
    }


def syn(host, port):
    # One SYN, then give up before any retransmit (the first comes after a second): each call is
    # exactly one dropped packet.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    time.sleep(0.005)
    s.close()


def flood():
    # What a hostile agent would do to grow the audit log: one blocked destination again and
    # again, many distinct blocked destinations, one refused name again and again.
    for _ in range(200):
        syn("203.0.113.20", 443)
    for i in range(150):
        syn("203.0.113.%d" % (100 + i), 443)
    answers = [run("dns", lambda: dns_udp("127.0.0.53", "unlisted.test")) for _ in range(20)]
    print("flood=sent", flush=True)
    print("flood_dns=" + ";".join(sorted(set(answers))), flush=True)


def run(name, f):
    try:
        return "%s=reached:%s" % (name, f())
    except Exception as e:  # every failure is a refusal: that is what is being tested
        return "%s=refused:%s" % (name, type(e).__name__ + " " + str(e))


def main():
    if sys.argv[1:] == ["flood"]:
        return flood()
    todo = attempts(sys.argv[1] if len(sys.argv) > 1 else "allowlist")
    with cf.ThreadPoolExecutor(max_workers=12) as pool:
        lines = list(pool.map(lambda kv: run(*kv), todo.items()))
    for line in lines:
        print(line.replace("\n", " "), flush=True)


main()
