//! The world's DNS server: a small authoritative server for the test zone, on UDP and TCP.
//! Written for the test (not dnsmasq) because dnsmasq insists on setgroups(2), which a rootless
//! user namespace forbids. It answers like a real server where it matters to the resolver under
//! test: CNAME chains, AAAA, TXT, NXDOMAIN, TC over UDP when the answer exceeds 512 bytes (or the
//! client's EDNS size), and full answers over TCP.

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The zone: (name, data); `*.x` names answer every name below x.
#[derive(Clone, Default)]
pub struct Zone {
    pub ttl: u32,
    pub records: Vec<(String, RData)>,
}

impl Zone {
    pub fn a(&mut self, name: &str, ip: &str) -> &mut Self {
        let rd = match IpAddr::from_str(ip).unwrap() {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        self.records.push((name.to_string(), rd));
        self
    }
    pub fn cname(&mut self, name: &str, target: &str) -> &mut Self {
        let t = Name::from_ascii(format!("{target}.")).unwrap();
        self.records
            .push((name.to_string(), RData::CNAME(CNAME(t))));
        self
    }
    pub fn txt(&mut self, name: &str, chunks: Vec<String>) -> &mut Self {
        self.records
            .push((name.to_string(), RData::TXT(TXT::new(chunks))));
        self
    }

    fn owns(pattern: &str, name: &str) -> bool {
        match pattern.strip_prefix("*.") {
            Some(suffix) => name.ends_with(&format!(".{suffix}")),
            None => pattern == name,
        }
    }

    fn answer(&self, query: &Message) -> Message {
        let mut resp = Message::new();
        resp.set_id(query.id())
            .set_message_type(MessageType::Response)
            .set_op_code(query.op_code())
            .set_authoritative(true)
            .set_recursion_desired(query.recursion_desired())
            .set_recursion_available(true)
            .add_queries(query.queries().iter().cloned());
        if let Some(e) = query.extensions() {
            let mut edns = Edns::new();
            edns.set_max_payload(e.max_payload().max(512));
            resp.set_edns(edns);
        }
        let Some(q) = query.queries().first() else {
            resp.set_response_code(ResponseCode::FormErr);
            return resp;
        };
        let mut name = q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let mut found_any = false;
        for _ in 0..8 {
            let here: Vec<&RData> = self
                .records
                .iter()
                .filter(|(n, _)| Self::owns(n, &name))
                .map(|(_, rd)| rd)
                .collect();
            found_any |= !here.is_empty();
            let owner = Name::from_ascii(format!("{name}.")).unwrap();
            let mut next = None;
            for rd in here {
                if rd.record_type() == q.query_type() || rd.record_type() == RecordType::CNAME {
                    resp.add_answer(Record::from_rdata(owner.clone(), self.ttl, rd.clone()));
                }
                if let RData::CNAME(t) = rd {
                    next = Some(t.0.to_ascii().trim_end_matches('.').to_string());
                }
            }
            match next {
                Some(n) => name = n,
                None => break,
            }
        }
        if !found_any {
            resp.set_response_code(ResponseCode::NXDomain);
        }
        resp
    }
}

/// Serve `zone` on UDP and TCP port 53 of sockets already bound (inside the world) until `stop`.
pub fn serve(zone: Zone, udp: UdpSocket, tcp: TcpListener, stop: Arc<AtomicBool>) {
    let z = zone.clone();
    let st = stop.clone();
    udp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !st.load(Ordering::SeqCst) {
            let Ok((n, peer)) = udp.recv_from(&mut buf) else {
                continue;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let resp = z.answer(&q);
            let mut bytes = resp.to_vec().unwrap();
            if bytes.len() > q.max_payload() as usize {
                bytes = resp.truncate().to_vec().unwrap();
            }
            let _ = udp.send_to(&bytes, peer);
        }
    });
    tcp.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let Ok((mut s, _)) = tcp.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).is_err() {
                continue;
            }
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            if s.read_exact(&mut q).is_err() {
                continue;
            }
            let Ok(q) = Message::from_vec(&q) else {
                continue;
            };
            let bytes = zone.answer(&q).to_vec().unwrap();
            let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&bytes);
            let _ = s.write_all(&out);
        }
    });
}
