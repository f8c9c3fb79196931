//! The sandbox's side of `net::EgressAudit`: each refused DNS name, rebinding answer and dropped
//! packet becomes an entry of the sandbox's audit log (`dns` or `net`, outcome `blocked`, with the
//! destination, port, protocol and reason as details). Entries made before the log is open wait
//! in a backlog. Owns only that translation and its rate limit; the log itself belongs to
//! `audit_log`.
//!
//! The rate limit, because TCP retransmits repeat and a hostile agent could otherwise grow the
//! log without bound (one `Throttle` for `net`, one for `dns`):
//! - The first refusal of a key is written at once. The key is (destination, port, protocol,
//!   reason) for a dropped packet, (name, record type, reason) for a refused name and (name,
//!   address, reason) for a rebinding answer.
//! - Repeats of that key within `WINDOW` (10 s) of its first entry are only counted; one more
//!   entry with the same details plus `count` (the repeats after the first entry) and
//!   `window_secs` is written when the window has ended, at the next refusal of any key or when
//!   the sandbox finishes (`take_writer` flushes), so nothing counted is lost. A refusal after the
//!   window starts a new one with a new first entry.
//! - At most `CAP` (100) first entries per `MINUTE` per kind, counted from the first one. Beyond
//!   that, refusals of keys without an open window are only counted, and when the minute ends (or
//!   the sandbox finishes) one summary entry (reason `rate-limited`, `suppressed` = how many) says
//!   so. Count entries are not capped: each belongs to one capped first entry, so a kind writes
//!   at most 2 × `CAP` + 1 entries per minute.

use crate::audit::{Event, Kind, Outcome, Writer};
use crate::net::{DropEvent, EgressAudit};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long repeats of one key are folded into one count entry.
pub(super) const WINDOW: Duration = Duration::from_secs(10);
/// First entries per kind and `MINUTE` before refusals are only counted.
pub(super) const CAP: u32 = 100;
pub(super) const MINUTE: Duration = Duration::from_secs(60);

/// A key whose first entry was written and whose window is open.
struct Open {
    since: Instant,
    repeats: u64,
    reason: String,
    details: serde_json::Value,
}

/// The rate limit of one kind of entry, with the clock passed in (the tests drive it).
pub(super) struct Throttle {
    kind: Kind,
    open: HashMap<String, Open>,
    budget_since: Option<Instant>,
    written: u32,
    suppressed: u64,
}

impl Throttle {
    pub(super) fn new(kind: Kind) -> Throttle {
        Throttle {
            kind,
            open: HashMap::new(),
            budget_since: None,
            written: 0,
            suppressed: 0,
        }
    }

    /// One refusal of `key` at `now`: the entries to write now, in order.
    pub(super) fn offer(&mut self, now: Instant, key: String, event: Event) -> Vec<Event> {
        let mut out = Vec::new();
        self.expire(now, false, &mut out);
        if let Some(o) = self.open.get_mut(&key) {
            o.repeats += 1;
            return out;
        }
        if self.written >= CAP {
            self.suppressed += 1;
            return out;
        }
        self.budget_since.get_or_insert(now);
        self.written += 1;
        self.open.insert(
            key,
            Open {
                since: now,
                repeats: 0,
                reason: event.reason.clone(),
                details: event.details.clone(),
            },
        );
        out.push(event);
        out
    }

    /// Everything still counted, as entries (the sandbox finishes).
    pub(super) fn flush(&mut self, now: Instant) -> Vec<Event> {
        let mut out = Vec::new();
        self.expire(now, true, &mut out);
        out
    }

    /// Closes the windows that ended by `now` (all of them with `all`) into count entries, and
    /// the minute's budget into a summary entry.
    fn expire(&mut self, now: Instant, all: bool, out: &mut Vec<Event>) {
        let mut ended: Vec<(String, Open)> = Vec::new();
        let keys: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| all || now.duration_since(o.since) >= WINDOW)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if let Some(o) = self.open.remove(&k) {
                ended.push((k, o));
            }
        }
        // Oldest window first, so the log reads in the order the refusals began.
        ended.sort_by_key(|(_, o)| o.since);
        for (_, o) in ended.into_iter().filter(|(_, o)| o.repeats > 0) {
            let mut details = o.details;
            if let Some(m) = details.as_object_mut() {
                m.insert("count".into(), o.repeats.into());
                m.insert("window_secs".into(), WINDOW.as_secs().into());
            }
            out.push(
                Event::new(
                    self.kind,
                    Outcome::Blocked,
                    format!(
                        "{} (again {} times within {} s)",
                        o.reason,
                        o.repeats,
                        WINDOW.as_secs()
                    ),
                )
                .with_details(details),
            );
        }
        let minute_over = self
            .budget_since
            .is_some_and(|s| now.duration_since(s) >= MINUTE);
        if minute_over || all {
            if self.suppressed > 0 {
                out.push(
                    Event::new(
                        self.kind,
                        Outcome::Blocked,
                        format!(
                            "{} more refusals not recorded one by one: over {CAP} entries per minute",
                            self.suppressed
                        ),
                    )
                    .with_details(serde_json::json!({
                        "reason": "rate-limited",
                        "suppressed": self.suppressed,
                        "cap": CAP,
                        "window_secs": MINUTE.as_secs(),
                    })),
                );
            }
            if minute_over {
                self.budget_since = None;
                self.written = 0;
            }
            self.suppressed = 0;
        }
    }
}

/// The bridge from the network module's refusals to the sandbox's audit log.
pub(super) struct NetAudit {
    log: super::audit_log::PendingLog,
    net: Mutex<Throttle>,
    dns: Mutex<Throttle>,
}

impl Default for NetAudit {
    fn default() -> Self {
        NetAudit {
            log: super::audit_log::PendingLog::new("network", None),
            net: Mutex::new(Throttle::new(Kind::Net)),
            dns: Mutex::new(Throttle::new(Kind::Dns)),
        }
    }
}

impl NetAudit {
    pub(super) fn set_writer(&self, w: Arc<Writer>) {
        self.log.set_writer(w)
    }

    /// Writes what the throttles still count, then lets go of the log.
    pub(super) fn take_writer(&self) -> Option<Arc<Writer>> {
        let now = Instant::now();
        for t in [&self.net, &self.dns] {
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            for e in t.flush(now) {
                self.log.write(e);
            }
        }
        self.log.take_writer()
    }

    fn write(&self, throttle: &Mutex<Throttle>, key: String, event: Event) {
        // The throttle's lock is held while writing so entries keep the throttle's order.
        let mut t = throttle.lock().unwrap_or_else(|e| e.into_inner());
        for e in t.offer(Instant::now(), key, event) {
            self.log.write(e);
        }
    }
}

impl Drop for NetAudit {
    /// A sink whose owner never calls `take_writer` (lasso-runc's gate monitor) still writes
    /// what was counted when the last reference goes.
    fn drop(&mut self) {
        self.take_writer();
    }
}

impl EgressAudit for NetAudit {
    fn refused_name(&self, name: &str, record_type: &str) {
        self.write(
            &self.dns,
            format!("refused {name} {record_type}"),
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
        let reason = ev.reason.as_str();
        self.write(
            &self.net,
            format!("{dest} {} {reason}", ev.protocol),
            Event::new(
                Kind::Net,
                Outcome::Blocked,
                format!("{} to {dest} dropped: {reason}", ev.protocol),
            )
            .with_details(serde_json::json!({
                "destination": ev.destination.to_string(),
                "port": ev.port,
                "protocol": ev.protocol,
                "reason": reason,
            })),
        );
    }

    fn rebinding(&self, name: &str, address: IpAddr) {
        self.write(
            &self.dns,
            format!("rebinding {name} {address}"),
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

#[cfg(test)]
#[path = "network_audit_tests.rs"]
mod tests;
