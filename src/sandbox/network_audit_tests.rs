//! The throttle with a clock the test drives: what is written at once, what is counted, and that
//! every counted refusal reaches the log in a count or summary entry.

use super::*;

fn drop_event(dest: &str, n: u64) -> (String, Event) {
    let key = format!("{dest}:443 tcp not-allowed");
    let ev = Event::new(Kind::Net, Outcome::Blocked, format!("tcp to {dest} #{n}"))
        .with_details(serde_json::json!({ "destination": dest, "port": 443 }));
    (key, ev)
}

fn count_of(e: &Event) -> u64 {
    e.details["count"].as_u64().unwrap_or(0)
}

fn suppressed_of(e: &Event) -> u64 {
    e.details["suppressed"].as_u64().unwrap_or(0)
}

/// How many refusals an entry stands for: a first entry one, a count entry its count, a
/// summary what it suppressed.
fn refusals_in(e: &Event) -> u64 {
    if e.details.get("count").is_some() {
        count_of(e)
    } else if e.details["reason"] == "rate-limited" {
        suppressed_of(e)
    } else {
        1
    }
}

#[test]
fn retransmits_to_one_destination_make_one_entry_then_a_count() {
    let t0 = Instant::now();
    let mut t = Throttle::new(Kind::Net);
    let mut out = Vec::new();
    for i in 0..200u64 {
        let (k, e) = drop_event("203.0.113.20", i);
        out.extend(t.offer(t0 + Duration::from_millis(i * 10), k, e));
    }
    assert_eq!(out.len(), 1, "only the first is written at once");
    assert!(out[0].details.get("count").is_none());
    let rest = t.flush(t0 + Duration::from_secs(3));
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(count_of(&rest[0]), 199);
    assert_eq!(rest[0].details["destination"], "203.0.113.20");
    assert!(
        t.flush(t0 + Duration::from_secs(4)).is_empty(),
        "flushed once"
    );
}

#[test]
fn a_repeat_after_the_window_writes_the_count_then_a_new_first_entry() {
    let t0 = Instant::now();
    let mut t = Throttle::new(Kind::Net);
    let (k, e) = drop_event("203.0.113.20", 0);
    assert_eq!(t.offer(t0, k.clone(), e.clone()).len(), 1);
    assert!(t
        .offer(t0 + Duration::from_secs(5), k.clone(), e.clone())
        .is_empty());
    let out = t.offer(t0 + WINDOW, k, e);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(count_of(&out[0]), 1, "the closed window's count first");
    assert!(
        out[1].details.get("count").is_none(),
        "then a new first entry"
    );
}

#[test]
fn distinct_destinations_past_the_cap_are_counted_in_one_summary() {
    let t0 = Instant::now();
    let mut t = Throttle::new(Kind::Net);
    let mut out = Vec::new();
    for i in 0..150u64 {
        let (k, e) = drop_event(&format!("203.0.113.{}", i + 100), i);
        out.extend(t.offer(t0 + Duration::from_millis(i), k, e));
    }
    assert_eq!(out.len(), CAP as usize);
    let rest = t.flush(t0 + Duration::from_secs(1));
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(rest[0].details["reason"], "rate-limited");
    assert_eq!(suppressed_of(&rest[0]), 50);
}

#[test]
fn the_budget_returns_after_a_minute_and_the_summary_comes_first() {
    let t0 = Instant::now();
    let mut t = Throttle::new(Kind::Dns);
    for i in 0..(CAP as u64 + 7) {
        let (k, e) = drop_event(&format!("n{i}"), i);
        t.offer(t0, k, e);
    }
    let (k, e) = drop_event("late", 0);
    let out = t.offer(t0 + MINUTE, k, e);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(suppressed_of(&out[0]), 7);
    assert_eq!(out[1].reason, "tcp to late #0");
}

#[test]
fn a_flood_of_fresh_keys_writes_at_most_twice_the_cap_plus_one_per_minute() {
    let t0 = Instant::now();
    let mut t = Throttle::new(Kind::Net);
    let mut written = 0usize;
    let mut accounted = 0u64;
    let total = 10_000u64;
    for i in 0..total {
        // Each key twice (a first entry and a repeat), 100 new keys a second for 100 s.
        let at = t0 + Duration::from_millis(i * 10);
        let (k, e) = drop_event(&format!("k{}", i / 2), i);
        for e in t.offer(at, k, e) {
            written += 1;
            accounted += refusals_in(&e);
        }
    }
    for e in t.flush(t0 + Duration::from_secs(200)) {
        written += 1;
        accounted += refusals_in(&e);
    }
    assert_eq!(accounted, total, "every refusal is in an entry or a count");
    let minutes = 2; // 100 s of refusals span two budgets
    assert!(
        written <= minutes * (2 * CAP as usize + 1) + 1,
        "{written} entries"
    );
}
