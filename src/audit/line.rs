//! One line of a log: how a writer frames an entry and its MAC, and how a reader splits them again.
//! A line is the canonical form of the entry without `mac`, with `,"mac":"<64 hex>"` spliced in
//! before the final `}`, then `\n`. So the MAC input is simply the line minus that member, and a
//! verifier needs no JSON canonicalizer.

use super::keys::Key;
use serde::Deserialize;
use std::borrow::Cow;

/// `,"mac":"` + 64 hex digits + `"}`.
pub(crate) const SUFFIX_LEN: usize = 8 + 64 + 2;
const MAC_MEMBER: &[u8] = b",\"mac\":\"";

/// The longest line a reader accepts, so that a corrupted log without newlines cannot make a
/// reader buffer gigabytes. Linux caps one exec's argv+envp near 2 MiB, so real entries fit.
pub const MAX_LINE: usize = 8 << 20;

/// `prev` of the first entry of a chain that continues nothing.
pub(crate) const ZERO_MAC: [u8; 64] = [b'0'; 64];

/// Finishes `body` (an entry's canonical form without its closing `}`) into a whole line and
/// returns the MAC written into it.
pub(crate) fn finish(key: &Key, body: &mut Vec<u8>) -> [u8; 64] {
    let mac = key.mac_hex(&[body, b"}"]);
    body.extend_from_slice(MAC_MEMBER);
    body.extend_from_slice(&mac);
    body.extend_from_slice(b"\"}\n");
    mac
}

/// Splits a line (without its newline) into the MAC input's body and the stored MAC; `None` when
/// the line does not end in a well-formed `mac` member (lowercase hex only, so that case changes
/// in the MAC cannot pass).
pub(crate) fn split(line: &[u8]) -> Option<(&[u8], &[u8])> {
    if line.len() < SUFFIX_LEN + 2 || line[0] != b'{' || !line.ends_with(b"\"}") {
        return None;
    }
    let body_end = line.len() - SUFFIX_LEN;
    let mac = &line[body_end + MAC_MEMBER.len()..line.len() - 2];
    if &line[body_end..body_end + MAC_MEMBER.len()] != MAC_MEMBER
        || !mac.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    Some((&line[..body_end], mac))
}

/// Whether `line` (without newline) carries a MAC that `key` made.
pub(crate) fn mac_ok(key: &Key, line: &[u8]) -> bool {
    match split(line) {
        Some((body, mac)) => key.mac_hex(&[body, b"}"]) == mac,
        None => false,
    }
}

/// The envelope fields of an entry, borrowed from the line where possible. Every field is
/// declared (some only read by `deny_unknown_fields`), so a line with a member this version does
/// not know fails to parse rather than passing with it unexamined.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub(crate) struct Envelope<'a> {
    pub details: serde::de::IgnoredAny,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub outcome: Cow<'a, str>,
    #[serde(borrow)]
    pub prev: Cow<'a, str>,
    #[serde(borrow)]
    pub reason: Cow<'a, str>,
    #[serde(borrow)]
    pub sandbox: Cow<'a, str>,
    pub seq: u64,
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
    pub v: u32,
    #[serde(borrow)]
    pub mac: Cow<'a, str>,
}

impl<'a> Envelope<'a> {
    /// Parses a line. Lines lasso wrote are canonical, so a scanner that expects the members in
    /// canonical order reads them without a general JSON parser (the verifier's hot path);
    /// anything else falls back to serde_json.
    pub fn parse(line: &'a [u8]) -> Option<Envelope<'a>> {
        parse_canonical(line).or_else(|| serde_json::from_slice(line).ok())
    }
}

/// The canonical layout: `{"details":<value>,"kind":"..","outcome":"..","prev":"..",
/// "reason":<string>,"sandbox":"..","seq":N,"ts":"..","v":N,"mac":".."}`. Returns `None` on any
/// deviation (escapes in the short strings included), leaving the case to serde_json.
fn parse_canonical(line: &[u8]) -> Option<Envelope<'_>> {
    let mut c = Cursor { b: line, i: 0 };
    c.lit(b"{\"details\":")?;
    c.skip_value()?;
    c.lit(b",\"kind\":")?;
    let kind = c.plain_str()?;
    c.lit(b",\"outcome\":")?;
    let outcome = c.plain_str()?;
    c.lit(b",\"prev\":")?;
    let prev = c.plain_str()?;
    c.lit(b",\"reason\":")?;
    let r0 = c.i;
    c.skip_value()?;
    let reason_raw = &line[r0..c.i];
    if reason_raw.len() < 2 || reason_raw[0] != b'"' {
        return None;
    }
    c.lit(b",\"sandbox\":")?;
    let sandbox = c.plain_str()?;
    c.lit(b",\"seq\":")?;
    let seq = c.uint()?;
    c.lit(b",\"ts\":")?;
    let ts = c.plain_str()?;
    c.lit(b",\"v\":")?;
    let v = u32::try_from(c.uint()?).ok()?;
    c.lit(b",\"mac\":")?;
    let mac = c.plain_str()?;
    c.lit(b"}")?;
    if c.i != line.len() {
        return None;
    }
    // The reason is the only free text of the envelope; borrow it when it has no escapes.
    let reason = match reason_raw.contains(&b'\\') {
        false => Cow::Borrowed(std::str::from_utf8(&reason_raw[1..reason_raw.len() - 1]).ok()?),
        true => Cow::Owned(serde_json::from_slice(reason_raw).ok()?),
    };
    Some(Envelope {
        details: serde::de::IgnoredAny,
        kind: Cow::Borrowed(kind),
        outcome: Cow::Borrowed(outcome),
        prev: Cow::Borrowed(prev),
        reason,
        sandbox: Cow::Borrowed(sandbox),
        seq,
        ts: Cow::Borrowed(ts),
        v,
        mac: Cow::Borrowed(mac),
    })
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        self.b[self.i..].starts_with(s).then(|| self.i += s.len())
    }

    /// A string of printable ASCII without escapes; returns its content.
    fn plain_str(&mut self) -> Option<&'a str> {
        self.lit(b"\"")?;
        let start = self.i;
        let len = self.b[start..].iter().position(|&b| b == b'"')?;
        let s = &self.b[start..start + len];
        if !s.iter().all(|&b| (0x20..0x7f).contains(&b) && b != b'\\') {
            return None;
        }
        self.i = start + len + 1;
        std::str::from_utf8(s).ok()
    }

    /// Decimal digits, no leading zeros.
    fn uint(&mut self) -> Option<u64> {
        let start = self.i;
        let len = self.b[start..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(self.b.len() - start);
        let digits = &self.b[start..start + len];
        if len == 0 || (len > 1 && digits[0] == b'0') {
            return None;
        }
        self.i += len;
        std::str::from_utf8(digits).ok()?.parse().ok()
    }

    /// Skips one JSON value, checking only the structure a skip needs (strings and nesting):
    /// the MAC already vouched for the bytes, this only has to find where the value ends.
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            let b = *self.b.get(self.i)?;
            match b {
                b'"' => {
                    self.i += 1;
                    loop {
                        match *self.b.get(self.i)? {
                            b'\\' => self.i += 2,
                            b'"' => break,
                            _ => self.i += 1,
                        }
                    }
                    self.i += 1;
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.i += 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    self.i += 1;
                }
                b',' | b':' if depth > 0 => self.i += 1,
                _ if depth == 0 => {
                    // A scalar at the top: runs to the next ',' or '}'.
                    while !matches!(self.b.get(self.i)?, b',' | b'}') {
                        self.i += 1;
                    }
                    return Some(());
                }
                _ => self.i += 1,
            }
            if depth == 0 {
                return Some(());
            }
        }
    }
}

/// Just the `details` of an entry, typed.
#[derive(Debug, Deserialize)]
pub(crate) struct DetailsOf<T> {
    pub details: T,
}

impl<T: serde::de::DeserializeOwned> DetailsOf<T> {
    pub fn parse(line: &[u8]) -> Option<T> {
        serde_json::from_slice::<DetailsOf<T>>(line)
            .ok()
            .map(|d| d.details)
    }
}

/// Genesis details, as far as readers need them.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GenesisDetails {
    pub key_id: String,
    pub segment: u32,
    pub continues: Option<Continues>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Continues {
    pub segment: u32,
    pub seq: u64,
    pub mac: String,
}

/// Seal details, as far as readers need them.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SealDetails {
    pub rotate: bool,
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, written directly: a general formatter costs a noticeable
/// share of an append.
pub(crate) fn write_ts(out: &mut Vec<u8>, t: time::OffsetDateTime) {
    fn pad(out: &mut Vec<u8>, n: u32, width: usize) {
        let mut d = [b'0'; 10];
        let mut n = n;
        for i in (0..width).rev() {
            d[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out.extend_from_slice(&d[..width]);
    }
    pad(out, t.year().clamp(0, 9999) as u32, 4);
    out.push(b'-');
    pad(out, u8::from(t.month()).into(), 2);
    out.push(b'-');
    pad(out, t.day().into(), 2);
    out.push(b'T');
    pad(out, t.hour().into(), 2);
    out.push(b':');
    pad(out, t.minute().into(), 2);
    out.push(b':');
    pad(out, t.second().into(), 2);
    out.push(b'.');
    pad(out, t.nanosecond(), 9);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;

    #[test]
    fn canonical_scanner_agrees_with_serde_json() {
        let lines: [&[u8]; 3] = [
            br#"{"details":{"a":[1,{"b":"x\"}]"}],"c":null},"kind":"exec","outcome":"blocked","prev":"00","reason":"r \"q\" \\","sandbox":"s-1","seq":12,"ts":"2026-01-01T00:00:00.000000001Z","v":1,"mac":"ab"}"#,
            br#"{"details":{},"kind":"seal","outcome":"info","prev":"00","reason":"","sandbox":"s","seq":0,"ts":"t","v":1,"mac":"ab"}"#,
            br#"{"details":7,"kind":"dns","outcome":"info","prev":"00","reason":"caf\u00e9","sandbox":"s","seq":3,"ts":"t","v":1,"mac":"ab"}"#,
        ];
        for l in lines {
            let fast = parse_canonical(l).expect("canonical line");
            let slow: Envelope = serde_json::from_slice(l).unwrap();
            assert_eq!(
                (
                    &fast.kind,
                    &fast.outcome,
                    &fast.prev,
                    &fast.reason,
                    &fast.sandbox,
                    fast.seq,
                    &fast.ts,
                    fast.v,
                    &fast.mac
                ),
                (
                    &slow.kind,
                    &slow.outcome,
                    &slow.prev,
                    &slow.reason,
                    &slow.sandbox,
                    slow.seq,
                    &slow.ts,
                    slow.v,
                    &slow.mac
                )
            );
        }
        // Out of canonical order: left to serde_json.
        assert!(parse_canonical(br#"{"kind":"x","details":{}}"#).is_none());
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_nanoseconds() {
        let t = time::macros::datetime!(2026-03-04 05:06:07.000000089 UTC);
        let mut out = Vec::new();
        write_ts(&mut out, t);
        assert_eq!(out, b"2026-03-04T05:06:07.000000089Z");
        assert_eq!(
            time::OffsetDateTime::parse(std::str::from_utf8(&out).unwrap(), &Rfc3339).unwrap(),
            t
        );
    }
}
