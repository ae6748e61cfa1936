//! Canonical JSON: the one byte encoding of a JSON value that we hash and sign.
//!
//! Signed statements (manifests, audit entries, receipts) must serialise to the
//! same bytes on every machine, whatever order a struct's fields or a map's keys
//! were produced in. The rules, a subset of RFC 8785 that our documents stay in:
//! object keys sorted by their UTF-8 bytes, no insignificant whitespace, strings
//! escaped as `serde_json` escapes them (`"`, `\`, control characters), and
//! numbers restricted to integers (floats are refused: their text form is not
//! canonical across implementations).
//!
//! We sort explicitly rather than relying on `serde_json::Value`'s map order,
//! because a `preserve_order` feature turned on anywhere in the dependency graph
//! would silently change that order.

use serde::Serialize;
use serde_json::Value;

/// Why a value could not be written canonically.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CanonicalError {
    #[error("non-integer number {0} cannot be encoded canonically")]
    NonIntegerNumber(String),
    #[error("value does not serialise to JSON: {0}")]
    Serialize(String),
}

/// Serialises `value` to canonical JSON bytes.
pub fn to_canonical_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let value = serde_json::to_value(value).map_err(|e| CanonicalError::Serialize(e.to_string()))?;
    let mut out = Vec::with_capacity(256);
    write_value(&value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if !(n.is_i64() || n.is_u64()) {
                return Err(CanonicalError::NonIntegerNumber(n.to_string()));
            }
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's string escaping is deterministic and matches RFC 8785 for
    // everything except the exact escapes of control characters, which our
    // documents never contain in practice; writing a `&str` cannot fail.
    match serde_json::to_vec(s) {
        Ok(bytes) => out.extend_from_slice(&bytes),
        Err(_) => unreachable!("serialising a str to JSON is infallible"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_and_whitespace_dropped() {
        let v = json!({"b": 1, "a": {"d": [1, 2, {"z": null, "y": true}], "c": "x"}});
        assert_eq!(to_canonical_bytes(&v).unwrap(), br#"{"a":{"c":"x","d":[1,2,{"y":true,"z":null}]},"b":1}"#);
    }

    #[test]
    fn strings_are_escaped() {
        let v = json!({"k": "quote\" back\\ nl\n é"});
        assert_eq!(to_canonical_bytes(&v).unwrap(), "{\"k\":\"quote\\\" back\\\\ nl\\n é\"}".as_bytes());
    }

    #[test]
    fn floats_are_refused() {
        let v = json!({"k": 1.5});
        assert_eq!(to_canonical_bytes(&v), Err(CanonicalError::NonIntegerNumber("1.5".into())));
    }

    #[test]
    fn negative_and_large_integers_survive() {
        let v = json!([-5, u64::MAX]);
        assert_eq!(to_canonical_bytes(&v).unwrap(), format!("[-5,{}]", u64::MAX).as_bytes());
    }
}
