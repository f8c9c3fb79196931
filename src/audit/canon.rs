//! The canonical JSON form that audit MACs are computed over (specified in the README's "Audit
//! log" section, which must change together with this file): object keys sorted by their UTF-8
//! bytes, no whitespace, integers only, and one fixed escaping of strings. Owning this here, and
//! not relying on a serializer's defaults, keeps the bytes stable across serde_json upgrades.

use super::AuditError;
use serde_json::Value;

/// Appends the canonical form of `v` to `out`. Floating-point numbers are refused: their decimal
/// form is not unique, so two implementations could disagree on the MAC.
pub fn write_value(out: &mut Vec<u8>, v: &Value) -> Result<(), AuditError> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                write_u64(out, u);
            } else if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else {
                return Err(AuditError::InvalidEvent(format!(
                    "details hold the floating-point number {n}; the canonical form allows integers only (write it as a string)"
                )));
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // serde_json's map is usually already sorted (a BTreeMap); it is an insertion-order
            // map when some crate enables its `preserve_order` feature, so check, don't assume.
            let mut keys: Vec<&String> = map.keys().collect();
            if !keys.is_sorted() {
                keys.sort_unstable();
            }
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_value(out, &map[k])?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Decimal, no sign, no leading zeros.
pub fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A JSON string: `"` and `\` escaped with a backslash; U+0008, U+0009, U+000A, U+000C, U+000D as
/// `\b \t \n \f \r`; every other code point below U+0020 as `\u00XX` with lowercase hex; all else,
/// including U+007F and non-ASCII, as raw UTF-8.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(v: &Value) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn keys_are_sorted_by_bytes_at_every_depth() {
        let v = json!({"b": 1, "a": {"z": [true, null], "B": -3}, "é": "x", "Z": 0});
        assert_eq!(
            canon(&v),
            r#"{"Z":0,"a":{"B":-3,"z":[true,null]},"b":1,"é":"x"}"#
        );
    }

    #[test]
    fn strings_use_the_one_specified_escaping() {
        let v = json!("q\"b\\\u{8}\t\n\u{c}\r\u{1}\u{1f}\u{7f}/é\u{2028}");
        assert_eq!(
            canon(&v),
            "\"q\\\"b\\\\\\b\\t\\n\\f\\r\\u0001\\u001f\u{7f}/é\u{2028}\""
        );
    }

    #[test]
    fn canonical_strings_parse_back_to_the_same_text() {
        let s: String = (0u32..0x300).filter_map(char::from_u32).collect();
        let mut out = Vec::new();
        write_str(&mut out, &s);
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn floats_are_refused_integers_are_plain_decimal() {
        assert!(write_value(&mut Vec::new(), &json!(1.5)).is_err());
        assert_eq!(
            canon(&json!([0, u64::MAX, i64::MIN])),
            format!("[0,{},{}]", u64::MAX, i64::MIN)
        );
    }
}
