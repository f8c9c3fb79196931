//! The sandbox's side of `net::EgressAudit`: each refused DNS name, rebinding answer and dropped
//! packet becomes an entry of the sandbox's audit log (`dns` or `net`, outcome `blocked`, with the
//! destination, port, protocol and reason as details). Entries made before the log is open wait
//! in a backlog. Owns only that translation; the log itself belongs to `audit_log`.

use crate::audit::{Event, Kind, Outcome, Writer};
use crate::net::{DropEvent, EgressAudit};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The bridge from the network module's refusals to the sandbox's audit log.
pub(super) struct NetAudit {
    log: super::audit_log::PendingLog,
}

impl Default for NetAudit {
    fn default() -> Self {
        NetAudit {
            log: super::audit_log::PendingLog::new("network", None),
        }
    }
}

impl NetAudit {
    pub(super) fn set_writer(&self, w: Arc<Writer>) {
        self.log.set_writer(w)
    }

    pub(super) fn take_writer(&self) -> Option<Arc<Writer>> {
        self.log.take_writer()
    }

    fn write(&self, event: Event) {
        self.log.write(event)
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
