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
    pub fn parse(line: &'a [u8]) -> Option<Envelope<'a>> {
        serde_json::from_slice(line).ok()
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
