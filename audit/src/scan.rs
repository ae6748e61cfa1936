//! A strict, allocation-free checker for the canonical JSON of one log line.
//!
//! Verification must handle a million entries in well under two seconds, so it
//! cannot afford to build a `serde_json::Value` per line and re-serialise it.
//! Instead the line itself must already be the canonical encoding (see
//! `signer::canonical`): this module accepts a line only if re-encoding it
//! canonically would reproduce the same bytes, which lets the verifier hash the
//! line's own bytes. It checks sorted, unique object keys, no whitespace,
//! integers only and in range, and string escapes exactly as `serde_json`
//! writes them, in a single pass.
//!
//! The top level is matched against the fixed key order of an entry
//! (`actor`, `data`, `hash`, `kind`, `prev`, `seq`, `time`), which also yields
//! the byte range of the `hash` member so the entry hash can be recomputed over
//! the line with that member cut out.

use std::borrow::Cow;
use std::ops::Range;

use serde::Serialize;

use crate::hash::{Sha256Hash, parse_lower_hex};

/// The longest line the log accepts, newline excluded.
///
/// Events are small; the cap bounds the memory a hostile line can make a
/// reader allocate.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// How deeply objects and arrays may nest inside one line, the line's own
/// object included. Lower than `serde_json`'s recursion limit (128), so that
/// every line this checker accepts also parses with `serde_json`.
pub const MAX_NESTING: usize = 100;

/// Why a line is not a well-formed, canonical log entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EntryParseError {
    #[error("line is not valid utf-8 (first bad byte at offset {offset})")]
    NonUtf8 { offset: usize },
    #[error("line is {length} bytes long, over the limit of {limit}")]
    TooLong { length: usize, limit: usize },
    #[error("expected {expected} at byte {offset}")]
    Expected { expected: &'static str, offset: usize },
    #[error("non-canonical json at byte {offset}: {reason}")]
    NonCanonical { offset: usize, reason: &'static str },
    #[error("invalid {field} at byte {offset}: {reason}")]
    InvalidField { field: &'static str, offset: usize, reason: &'static str },
    #[error("nesting deeper than {limit} levels at byte {offset}")]
    TooDeep { offset: usize, limit: usize },
    #[error("unexpected bytes after the entry at byte {offset}")]
    TrailingBytes { offset: usize },
    #[error("entry does not decode: {detail}")]
    Decode { detail: String },
}

/// The fields the verifier needs from a line.
#[derive(Debug)]
pub(crate) struct ScannedLine {
    pub seq: u64,
    pub prev: Sha256Hash,
    pub hash: Sha256Hash,
    /// The bytes of `,"hash":"…"`: the line without them is the canonical
    /// encoding of the entry without its hash.
    pub hash_member: Range<usize>,
}

type Result<T, E = EntryParseError> = std::result::Result<T, E>;

/// Checks that `line` (without its newline) is one canonical entry and
/// returns the fields the chain needs.
pub(crate) fn scan_line(line: &[u8]) -> Result<ScannedLine> {
    if line.len() > MAX_LINE_BYTES {
        return Err(EntryParseError::TooLong { length: line.len(), limit: MAX_LINE_BYTES });
    }
    let text = std::str::from_utf8(line).map_err(|e| EntryParseError::NonUtf8 { offset: e.valid_up_to() })?;
    let mut s = Scanner { bytes: line, pos: 0 };
    s.literal(b"{\"actor\":{\"binary\":", "{\"actor\":{\"binary\":")?;
    s.non_empty_string("actor.binary")?;
    s.literal(b",\"host\":", ",\"host\":")?;
    s.non_empty_string("actor.host")?;
    s.literal(b"},\"data\":", "},\"data\":")?;
    if s.peek() != Some(b'{') {
        return Err(EntryParseError::InvalidField { field: "data", offset: s.pos, reason: "must be a json object" });
    }
    s.value(1)?;
    let hash_start = s.pos;
    s.literal(b",\"hash\":\"", ",\"hash\":\"")?;
    let hash = s.hex_hash("hash")?;
    s.literal(b"\"", "closing quote of hash")?;
    let hash_end = s.pos;
    s.literal(b",\"kind\":\"", ",\"kind\":\"")?;
    let kind_start = s.pos;
    let kind_len = line[kind_start..]
        .iter()
        .position(|&c| c == b'"')
        .ok_or(EntryParseError::Expected { expected: "closing quote of kind", offset: line.len() })?;
    // The kind is plain ASCII by construction, so slicing the str here is safe
    // once validated; `get` keeps it panic-free for any input.
    text.get(kind_start..kind_start + kind_len).filter(|kind| is_valid_kind(kind)).ok_or(
        EntryParseError::InvalidField { field: "kind", offset: kind_start, reason: "not a dotted lower-case name" },
    )?;
    s.pos = kind_start + kind_len;
    s.literal(b"\",\"prev\":\"", "\",\"prev\":\"")?;
    let prev = s.hex_hash("prev")?;
    s.literal(b"\",\"seq\":", "\",\"seq\":")?;
    let seq = s.unsigned("seq")?;
    s.literal(b",\"time\":\"", ",\"time\":\"")?;
    let time_start = s.pos;
    let time = line.get(time_start..time_start + TIME_LEN).filter(|t| crate::entry::parse_time(t).is_some()).ok_or(
        EntryParseError::InvalidField {
            field: "time",
            offset: time_start,
            reason: "not an rfc 3339 utc time of the form 2026-11-29T10:00:00Z",
        },
    )?;
    s.pos += time.len();
    s.literal(b"\"}", "\"} closing the entry")?;
    if s.pos != line.len() {
        return Err(EntryParseError::TrailingBytes { offset: s.pos });
    }
    Ok(ScannedLine { seq, prev, hash, hash_member: hash_start..hash_end })
}

/// The length of `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) const TIME_LEN: usize = 20;

/// Whether `kind` is a dotted lower-case name such as `run.finished`: at least
/// two segments, each a lower-case letter followed by letters, digits, `_` or
/// `-`, at most 128 bytes in all. Such names never need escaping in JSON.
pub fn is_valid_kind(kind: &str) -> bool {
    if kind.is_empty() || kind.len() > 128 {
        return false;
    }
    let mut segments = 1;
    let mut at_segment_start = true;
    for &c in kind.as_bytes() {
        let ok = match c {
            b'.' if !at_segment_start => {
                segments += 1;
                at_segment_start = true;
                continue;
            }
            b'a'..=b'z' => true,
            b'0'..=b'9' | b'_' | b'-' => !at_segment_start,
            _ => false,
        };
        if !ok {
            return false;
        }
        at_segment_start = false;
    }
    segments >= 2 && !at_segment_start
}

/// Checks that `bytes` is exactly one canonical JSON value (used on the
/// writing side for values the entry scanner does not see whole).
#[cfg(test)]
pub(crate) fn check_canonical_value(bytes: &[u8]) -> Result<()> {
    let mut s = Scanner { bytes, pos: 0 };
    s.value(0)?;
    if s.pos != bytes.len() {
        return Err(EntryParseError::TrailingBytes { offset: s.pos });
    }
    Ok(())
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn literal(&mut self, literal: &[u8], expected: &'static str) -> Result<()> {
        if self.bytes[self.pos..].starts_with(literal) {
            self.pos += literal.len();
            Ok(())
        } else {
            Err(EntryParseError::Expected { expected, offset: self.pos })
        }
    }

    fn value(&mut self, depth: usize) -> Result<()> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(|_| ()),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            Some(b't') => self.literal(b"true", "a json value"),
            Some(b'f') => self.literal(b"false", "a json value"),
            Some(b'n') => self.literal(b"null", "a json value"),
            _ => Err(EntryParseError::Expected { expected: "a json value", offset: self.pos }),
        }
    }

    fn enter(&self, depth: usize) -> Result<()> {
        if depth > MAX_NESTING {
            Err(EntryParseError::TooDeep { offset: self.pos, limit: MAX_NESTING })
        } else {
            Ok(())
        }
    }

    fn object(&mut self, depth: usize) -> Result<()> {
        self.enter(depth)?;
        self.pos += 1;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        let mut previous_key: Option<Cow<'a, [u8]>> = None;
        loop {
            let key_offset = self.pos;
            if self.peek() != Some(b'"') {
                return Err(EntryParseError::Expected { expected: "an object key", offset: self.pos });
            }
            let key = self.string()?.unescaped();
            if let Some(previous) = &previous_key
                && key <= *previous
            {
                return Err(EntryParseError::NonCanonical {
                    offset: key_offset,
                    reason: "object keys are repeated or not in sorted order",
                });
            }
            previous_key = Some(key);
            self.literal(b":", "':' after an object key")?;
            self.value(depth)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => {
                    return Err(EntryParseError::Expected { expected: "',' or '}'", offset: self.pos });
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<()> {
        self.enter(depth)?;
        self.pos += 1;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => {
                    return Err(EntryParseError::Expected { expected: "',' or ']'", offset: self.pos });
                }
            }
        }
    }

    fn non_empty_string(&mut self, field: &'static str) -> Result<()> {
        let offset = self.pos;
        if self.peek() != Some(b'"') {
            return Err(EntryParseError::InvalidField { field, offset, reason: "must be a string" });
        }
        if self.string()?.raw.is_empty() {
            return Err(EntryParseError::InvalidField { field, offset, reason: "must not be empty" });
        }
        Ok(())
    }

    /// Scans a string starting at its opening quote. Only the escapes
    /// `serde_json` itself writes are accepted: `\"`, `\\`, `\b`, `\f`, `\n`,
    /// `\r`, `\t`, and `\u00xx` (lower-case hex) for the other control
    /// characters. Everything else, non-ASCII included, must appear raw.
    fn string(&mut self) -> Result<StrSpan<'a>> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let rest = &self.bytes[self.pos..];
            let Some(i) = memchr::memchr2(b'"', b'\\', rest) else {
                return Err(EntryParseError::Expected {
                    expected: "closing quote of a string",
                    offset: self.bytes.len(),
                });
            };
            // A branch-free pass the compiler vectorises; the position is
            // only looked for when there is something to report.
            let plain = &rest[..i];
            if plain.iter().fold(false, |found, &c| found | (c < 0x20)) {
                let j = plain.iter().position(|&c| c < 0x20).unwrap_or(0);
                return Err(EntryParseError::NonCanonical {
                    offset: self.pos + j,
                    reason: "raw control character in a string",
                });
            }
            self.pos += i;
            if rest[i] == b'"' {
                let raw = &self.bytes[start..self.pos];
                self.pos += 1;
                return Ok(StrSpan { raw, escaped });
            }
            escaped = true;
            self.escape()?;
        }
    }

    fn escape(&mut self) -> Result<()> {
        let offset = self.pos;
        match self.bytes.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let digits = self.bytes.get(self.pos + 2..self.pos + 6);
                match digits {
                    Some([b'0', b'0', high @ (b'0' | b'1'), low])
                        if low.is_ascii_digit() || (b'a'..=b'f').contains(low) =>
                    {
                        let value = (high - b'0') * 16 + hex_value(*low);
                        if matches!(value, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                            return Err(EntryParseError::NonCanonical {
                                offset,
                                reason: "\\u escape for a character with a short escape",
                            });
                        }
                        self.pos += 6;
                        Ok(())
                    }
                    _ => Err(EntryParseError::NonCanonical {
                        offset,
                        reason: "\\u escape other than a lower-case control character",
                    }),
                }
            }
            _ => Err(EntryParseError::NonCanonical { offset, reason: "unknown escape" }),
        }
    }

    /// Scans an integer: `0`, or an optional `-` and digits without a leading
    /// zero, within `i64::MIN..=u64::MAX`; fractions and exponents are refused.
    fn integer(&mut self) -> Result<()> {
        let offset = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if negative {
                    return Err(EntryParseError::NonCanonical { offset, reason: "negative zero" });
                }
            }
            Some(b'1'..=b'9') => {
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
            }
            _ => {
                return Err(EntryParseError::Expected { expected: "a digit", offset: self.pos });
            }
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E' | b'0'..=b'9')) {
            return Err(EntryParseError::NonCanonical {
                offset,
                reason: "numbers must be integers without leading zeros",
            });
        }
        let magnitude = decimal_value(&self.bytes[digits_start..self.pos]);
        let in_range = match magnitude {
            Some(m) if negative => m <= 1u128 << 63,
            Some(m) => m <= u128::from(u64::MAX),
            None => false,
        };
        if !in_range {
            return Err(EntryParseError::NonCanonical { offset, reason: "integer outside the 64-bit range" });
        }
        Ok(())
    }

    fn unsigned(&mut self, field: &'static str) -> Result<u64> {
        let offset = self.pos;
        if self.peek() == Some(b'-') {
            return Err(EntryParseError::InvalidField { field, offset, reason: "must not be negative" });
        }
        self.integer()?;
        decimal_value(&self.bytes[offset..self.pos])
            .and_then(|v| u64::try_from(v).ok())
            .ok_or(EntryParseError::InvalidField { field, offset, reason: "not an unsigned 64-bit integer" })
    }

    fn hex_hash(&mut self, field: &'static str) -> Result<Sha256Hash> {
        let offset = self.pos;
        let hash = self
            .bytes
            .get(offset..offset + 64)
            .and_then(parse_lower_hex)
            .ok_or(EntryParseError::InvalidField { field, offset, reason: "not 64 lower-case hex digits" })?;
        self.pos += 64;
        Ok(hash)
    }
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    }
}

/// The value of at most 20 decimal digits (enough for `u64::MAX`); `None`
/// when there are more.
fn decimal_value(digits: &[u8]) -> Option<u128> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    Some(digits.iter().fold(0u128, |acc, &d| acc * 10 + u128::from(d - b'0')))
}

struct StrSpan<'a> {
    raw: &'a [u8],
    escaped: bool,
}

impl<'a> StrSpan<'a> {
    /// The string's bytes with escapes resolved: keys sort by these bytes.
    /// Escapes were validated while scanning, so only the canonical forms
    /// appear here.
    fn unescaped(&self) -> Cow<'a, [u8]> {
        if !self.escaped {
            return Cow::Borrowed(self.raw);
        }
        let mut out = Vec::with_capacity(self.raw.len());
        let mut i = 0;
        while i < self.raw.len() {
            let c = self.raw[i];
            if c != b'\\' {
                out.push(c);
                i += 1;
                continue;
            }
            let (byte, width) = match self.raw.get(i + 1) {
                Some(b'b') => (0x08, 2),
                Some(b'f') => (0x0c, 2),
                Some(b'n') => (0x0a, 2),
                Some(b'r') => (0x0d, 2),
                Some(b't') => (0x09, 2),
                Some(b'u') => {
                    let high = self.raw.get(i + 4).copied().unwrap_or(b'0');
                    let low = self.raw.get(i + 5).copied().unwrap_or(b'0');
                    (hex_value(high) * 16 + hex_value(low), 6)
                }
                Some(&other) => (other, 2),
                None => (b'\\', 1),
            };
            out.push(byte);
            i += width;
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canonical_ok(value: &serde_json::Value) {
        let bytes = signer::canonical::to_canonical_bytes(value).unwrap();
        check_canonical_value(&bytes).unwrap_or_else(|e| panic!("{} refused: {e:#}", String::from_utf8_lossy(&bytes)));
    }

    #[test]
    fn accepts_what_the_canonical_encoder_writes() {
        canonical_ok(&json!({"b": 1, "a": {"d": [1, 2, {"z": null, "y": true}], "c": "x"}}));
        canonical_ok(&json!({"k": "quote\" back\\ nl\n tab\t bell\u{7} del\u{7f} é ✓"}));
        canonical_ok(&json!({"\u{1}": 1, "\n": 2, "a\"": 3, "a": 4, "é": 5}));
        canonical_ok(&json!([i64::MIN, u64::MAX, 0, -1, []]));
        canonical_ok(&json!({}));
    }

    #[test]
    fn refuses_non_canonical_forms() {
        for bad in [
            &b"{\"b\":1,\"a\":2}"[..],
            b"{\"a\":1,\"a\":1}",
            b"{ \"a\":1}",
            b"{\"a\":1.0}",
            b"{\"a\":1e3}",
            b"{\"a\":01}",
            b"{\"a\":-0}",
            b"{\"a\":18446744073709551616}",
            b"{\"a\":-9223372036854775809}",
            b"{\"a\":\"\\/\"}",
            b"{\"a\":\"\\u0041\"}",
            b"{\"a\":\"\\u000a\"}",
            b"{\"a\":\"\\u001F\"}",
            b"{\"a\":\"tab\there\"}",
            b"{\"a\":tru}",
            b"{\"a\":[1,]}",
            b"{\"a\":1}x",
        ] {
            assert!(check_canonical_value(bad).is_err(), "accepted {}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn nesting_is_capped() {
        let deep = format!("{}{}", "[".repeat(MAX_NESTING + 1), "]".repeat(MAX_NESTING + 1));
        assert!(matches!(check_canonical_value(deep.as_bytes()), Err(EntryParseError::TooDeep { .. })));
        let ok = format!("{}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        check_canonical_value(ok.as_bytes()).unwrap();
    }

    #[test]
    fn kinds_are_dotted_lower_case_names() {
        for good in ["module.signed", "run.finished", "audit.recovered", "a.b-c.d_1"] {
            assert!(is_valid_kind(good), "{good}");
        }
        for bad in ["", "run", "Run.finished", "run..x", ".run", "run.", "run.fin ished", "1.a", "run.\"x"] {
            assert!(!is_valid_kind(bad), "{bad}");
        }
    }
}
