//! The sandbox's side of `net::EgressAudit`: each refused DNS name, rebinding answer and dropped
//! packet becomes an entry of the sandbox's audit log (`dns` or `net`, outcome `blocked`, with the
//! destination, port, protocol and reason as details). Entries made before the log is open wait
//! in a backlog. Owns only that translation; the log itself belongs to `audit_log`.

use crate::audit::{Event, Kind, Outcome, Writer};
use crate::net::{DropEvent, EgressAudit};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// The bridge from the network module's refusals to the sandbox's audit log.
#[derive(Default)]
pub(super) struct NetAudit {
    writer: Mutex<Option<Arc<Writer>>>,
    backlog: Mutex<Vec<Event>>,
}

impl NetAudit {
    pub(super) fn set_writer(&self, w: Arc<Writer>) {
        let mut slot = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        for e in self
            .backlog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            if let Err(err) = w.append(e) {
                tracing::warn!("audit: network entry: {err}");
            }
        }
        *slot = Some(w);
    }

    pub(super) fn take_writer(&self) -> Option<Arc<Writer>> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn write(&self, event: Event) {
        let slot = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(w) => {
                if let Err(e) = w.append(event) {
                    tracing::warn!("audit: network entry: {e}");
                }
            }
            None => self
                .backlog
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(event),
        }
    }
}

impl EgressAudit for NetAudit {
    fn refused_name(&self, name: &str, record_type: &str) {
        self.write(
            Event::new(
                Kind::Dns,
                Outcome::Blocked,
                format!("DNS {record_type} {name}: not on the profile's allowed_domains"),
            )
            .with_details(serde_json::json!({
                "name": name,
                "type": record_type,
                "reason": "not-allowlisted",
            })),
        );
    }

    fn dropped(&self, ev: &DropEvent) {
        let dest = match ev.port {
            Some(p) => SocketAddr::new(ev.destination, p).to_string(),
            None => ev.destination.to_string(),
        };
        self.write(
            Event::new(
                Kind::Net,
                Outcome::Blocked,
                format!("{} to {dest} dropped: {}", ev.protocol, ev.reason.as_str()),
            )
            .with_details(serde_json::json!({
                "destination": ev.destination.to_string(),
                "port": ev.port,
                "protocol": ev.protocol,
                "reason": ev.reason.as_str(),
            })),
        );
    }

    fn rebinding(&self, name: &str, address: IpAddr) {
        self.write(
            Event::new(
                Kind::Dns,
                Outcome::Blocked,
                format!("DNS {name} answered {address}, an always-dropped range: removed (DNS rebinding)"),
            )
            .with_details(serde_json::json!({
                "name": name,
                "address": address.to_string(),
                "reason": "rebinding",
            })),
        );
    }
}
