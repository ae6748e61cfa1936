//! Events as callers describe them, entries as the log stores them, and the
//! one function that turns the first into the bytes of the second.
//!
//! A line of the log is the canonical JSON (`signer::canonical`) of an entry:
//!
//! ```text
//! {"actor":{"binary":"runtime","host":"node-1"},"data":{…},"hash":"…","kind":"run.finished","prev":"…","seq":7,"time":"2026-11-29T10:00:00Z"}
//! ```
//!
//! `hash` is SHA-256 over [`ENTRY_HASH_DOMAIN`], the 32 raw bytes of `prev`,
//! and the canonical bytes of the entry without its `hash` member. Because the
//! line is canonical, those bytes are the line with `,"hash":"…"` cut out, so
//! the verifier hashes the line in place instead of re-serialising it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::{Date, Month, OffsetDateTime, UtcOffset};

use crate::hash::{Sha256Hash, push_hex};
use crate::scan::{EntryParseError, MAX_LINE_BYTES, TIME_LEN, is_valid_kind, scan_line};

/// Domain tag of entry hashes, so that an entry hash can never be confused
/// with a Merkle leaf or node hash (RFC 6962's `0x00`/`0x01`) or any other
/// SHA-256 in Night Core.
pub const ENTRY_HASH_DOMAIN: &[u8] = b"nightcore-audit-entry-v1\0";

/// Who wrote an entry: the binary (`runtime`, `guardian`, `xtask`, …) and the
/// host it ran on. Serialised as `{"binary":"runtime","host":"node-1"}`; both
/// are non-empty strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub binary: String,
    pub host: String,
}

impl Actor {
    pub fn new(binary: impl Into<String>, host: impl Into<String>) -> Self {
        Actor { binary: binary.into(), host: host.into() }
    }

    /// `binary` on this machine's host name (from `/proc/sys/kernel/hostname`,
    /// `/etc/hostname` or `$HOSTNAME`; `unknown` when none is readable).
    pub fn on_this_host(binary: impl Into<String>) -> Self {
        Actor::new(binary, host_name())
    }

    /// The running executable's file name on this host: used for the entries
    /// the library writes on its own (`audit.recovered`).
    pub(crate) fn this_process() -> Self {
        let binary = std::env::current_exe()
            .ok()
            .and_then(|path| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        Actor::on_this_host(binary)
    }
}

fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Something that happened, as a writer hands it to [`crate::AuditLog`]; the
/// log adds `seq`, `time`, `prev` and `hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// A dotted lower-case name such as `run.finished` (see [`crate::kinds`]).
    pub kind: String,
    pub actor: Actor,
    /// Event fields. Numbers must be integers: floats have no canonical form.
    pub data: Map<String, Value>,
}

impl Event {
    pub fn new(kind: impl Into<String>, actor: Actor, data: Map<String, Value>) -> Self {
        Event { kind: kind.into(), actor, data }
    }
}

/// One entry of the log, as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub actor: Actor,
    pub data: Map<String, Value>,
    pub hash: Sha256Hash,
    pub kind: String,
    pub prev: Sha256Hash,
    pub seq: u64,
    #[serde(with = "rfc3339_seconds")]
    pub time: OffsetDateTime,
}

impl Entry {
    /// Parses one line (without its newline). Only the canonical encoding is
    /// accepted, so `Entry::from_line(l)?.to_line()? == l`. The hash is not
    /// checked here: see [`Entry::computed_hash`] and [`crate::verify_log`].
    pub fn from_line(line: &[u8]) -> Result<Entry, EntryParseError> {
        scan_line(line)?;
        serde_json::from_slice(line).map_err(|e| EntryParseError::Decode { detail: e.to_string() })
    }

    /// The canonical line of this entry, without a newline.
    pub fn to_line(&self) -> Result<Vec<u8>, EventError> {
        let event = Event { kind: self.kind.clone(), actor: self.actor.clone(), data: self.data.clone() };
        let time = format_time(self.time).ok_or(EventError::TimeOutOfRange)?;
        let line = encode_line(&event, self.seq, &time, &self.prev, Some(&self.hash))?;
        Ok(line.bytes)
    }

    /// The hash this entry should carry, recomputed from its other fields.
    pub fn computed_hash(&self) -> Result<Sha256Hash, EventError> {
        let event = Event { kind: self.kind.clone(), actor: self.actor.clone(), data: self.data.clone() };
        let time = format_time(self.time).ok_or(EventError::TimeOutOfRange)?;
        Ok(encode_line(&event, self.seq, &time, &self.prev, None)?.hash)
    }
}

/// Why an event cannot be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("event kind {kind:?} is not a dotted lower-case name such as \"run.finished\"")]
    InvalidKind { kind: String },
    #[error("event {kind} has an empty actor binary or host")]
    EmptyActor { kind: String },
    #[error("event {kind} cannot be encoded as canonical json")]
    Canonical {
        kind: String,
        #[source]
        source: signer::canonical::CanonicalError,
    },
    #[error("event {kind} encodes to {length} bytes, over the line limit of {limit}")]
    TooLarge { kind: String, length: usize, limit: usize },
    #[error("event {kind} does not encode to a line the verifier accepts")]
    Unverifiable {
        kind: String,
        #[source]
        source: EntryParseError,
    },
    #[error("entry time is outside the years 0000 to 9999")]
    TimeOutOfRange,
}

pub(crate) struct EncodedLine {
    /// The canonical line, without a newline.
    pub bytes: Vec<u8>,
    pub hash: Sha256Hash,
}

/// Encodes an entry. With `claimed_hash` the line carries that hash (used to
/// re-encode a parsed entry exactly); without, it carries the computed one.
pub(crate) fn encode_line(
    event: &Event,
    seq: u64,
    time: &str,
    prev: &Sha256Hash,
    claimed_hash: Option<&Sha256Hash>,
) -> Result<EncodedLine, EventError> {
    if !is_valid_kind(&event.kind) {
        return Err(EventError::InvalidKind { kind: event.kind.clone() });
    }
    if event.actor.binary.is_empty() || event.actor.host.is_empty() {
        return Err(EventError::EmptyActor { kind: event.kind.clone() });
    }
    let actor = canonical(&event.kind, &event.actor)?;
    let data = canonical(&event.kind, &event.data)?;

    // The body is the entry without `hash`; kind and time need no escaping
    // (validated kind charset, fixed time format), so they are written as is.
    let mut body = Vec::with_capacity(actor.len() + data.len() + 200);
    body.extend_from_slice(b"{\"actor\":");
    body.extend_from_slice(&actor);
    body.extend_from_slice(b",\"data\":");
    body.extend_from_slice(&data);
    let split = body.len();
    body.extend_from_slice(b",\"kind\":\"");
    body.extend_from_slice(event.kind.as_bytes());
    body.extend_from_slice(b"\",\"prev\":\"");
    push_hex(&mut body, prev);
    body.extend_from_slice(b"\",\"seq\":");
    body.extend_from_slice(seq.to_string().as_bytes());
    body.extend_from_slice(b",\"time\":\"");
    body.extend_from_slice(time.as_bytes());
    body.extend_from_slice(b"\"}");

    let hash = entry_hash(prev, &[&body]);
    let written_hash = claimed_hash.copied().unwrap_or(hash);
    let mut line = Vec::with_capacity(body.len() + 76);
    line.extend_from_slice(&body[..split]);
    line.extend_from_slice(b",\"hash\":\"");
    push_hex(&mut line, &written_hash);
    line.push(b'"');
    line.extend_from_slice(&body[split..]);

    if line.len() > MAX_LINE_BYTES {
        return Err(EventError::TooLarge { kind: event.kind.clone(), length: line.len(), limit: MAX_LINE_BYTES });
    }
    // Never write a line the verifier would refuse: run the same checker.
    scan_line(&line).map_err(|source| EventError::Unverifiable { kind: event.kind.clone(), source })?;
    Ok(EncodedLine { bytes: line, hash })
}

fn canonical<T: Serialize>(kind: &str, value: &T) -> Result<Vec<u8>, EventError> {
    signer::canonical::to_canonical_bytes(value)
        .map_err(|source| EventError::Canonical { kind: kind.to_owned(), source })
}

/// SHA-256 over the domain tag, `prev` and the body, given in pieces so that
/// the verifier can pass the line around the cut-out `hash` member.
pub(crate) fn entry_hash(prev: &Sha256Hash, body_pieces: &[&[u8]]) -> Sha256Hash {
    let mut hasher = Sha256::new();
    hasher.update(ENTRY_HASH_DOMAIN);
    hasher.update(prev.as_bytes());
    for piece in body_pieces {
        hasher.update(piece);
    }
    Sha256Hash(hasher.finalize().into())
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ` in UTC, dropping sub-seconds:
/// entries carry whole seconds so that each instant has one spelling.
pub(crate) fn format_time(time: OffsetDateTime) -> Option<String> {
    let utc = time.to_offset(UtcOffset::UTC);
    if !(0..=9999).contains(&utc.year()) {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    ))
}

/// Parses exactly `YYYY-MM-DDTHH:MM:SSZ` (a real calendar date and time;
/// no leap second, no fraction, no other offset).
pub(crate) fn parse_time(text: &[u8]) -> Option<OffsetDateTime> {
    if text.len() != TIME_LEN {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        text[range].iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
    };
    let separators_ok = text[4] == b'-'
        && text[7] == b'-'
        && text[10] == b'T'
        && text[13] == b':'
        && text[16] == b':'
        && text[19] == b'Z';
    if !separators_ok {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(digits(5..7)?).ok()?).ok()?;
    let day = u8::try_from(digits(8..10)?).ok()?;
    let hour = u8::try_from(digits(11..13)?).ok()?;
    let minute = u8::try_from(digits(14..16)?).ok()?;
    let second = u8::try_from(digits(17..19)?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    Some(date.with_hms(hour, minute, second).ok()?.assume_utc())
}

/// The current time, in the form entries carry.
pub(crate) fn now_text() -> String {
    // The system clock is within the years 0000..=9999 on any machine we run
    // on; fall back to the epoch rather than fail an append over it.
    format_time(OffsetDateTime::now_utc()).unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// Serde for entry times: the exact `YYYY-MM-DDTHH:MM:SSZ` form.
mod rfc3339_seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(time: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
        let text = super::format_time(*time)
            .ok_or_else(|| serde::ser::Error::custom("time outside the years 0000 to 9999"))?;
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        super::parse_time(text.as_bytes())
            .ok_or_else(|| serde::de::Error::custom(format!("time {text:?} is not of the form 2026-11-29T10:00:00Z")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(data: Value) -> Event {
        let Value::Object(data) = data else { panic!("not an object") };
        Event::new("run.finished", Actor::new("runtime", "node-1"), data)
    }

    #[test]
    fn line_is_canonical_and_hash_covers_line_without_hash() {
        let prev = Sha256Hash([7; 32]);
        let line =
            encode_line(&event(json!({"tenant": "a", "status": 0})), 3, "2026-11-29T10:00:00Z", &prev, None).unwrap();
        let text = String::from_utf8(line.bytes.clone()).unwrap();
        let expected_body = format!(
            "{{\"actor\":{{\"binary\":\"runtime\",\"host\":\"node-1\"}},\"data\":{{\"status\":0,\"tenant\":\"a\"}},\"kind\":\"run.finished\",\"prev\":\"{prev}\",\"seq\":3,\"time\":\"2026-11-29T10:00:00Z\"}}"
        );
        // The hash is recomputed here independently of `entry_hash`.
        let mut hasher = Sha256::new();
        hasher.update(b"nightcore-audit-entry-v1\0");
        hasher.update([7u8; 32]);
        hasher.update(expected_body.as_bytes());
        let expected_hash = Sha256Hash(hasher.finalize().into());
        assert_eq!(line.hash, expected_hash);
        assert_eq!(text, expected_body.replace(",\"kind\"", &format!(",\"hash\":\"{expected_hash}\",\"kind\"")));
        // The line is exactly what the canonical encoder makes of the entry.
        let value: Value = serde_json::from_slice(&line.bytes).unwrap();
        assert_eq!(signer::canonical::to_canonical_bytes(&value).unwrap(), line.bytes);

        let entry = Entry::from_line(&line.bytes).unwrap();
        assert_eq!(entry.seq, 3);
        assert_eq!(entry.hash, expected_hash);
        assert_eq!(entry.computed_hash().unwrap(), expected_hash);
        assert_eq!(entry.to_line().unwrap(), line.bytes);
    }

    #[test]
    fn bad_events_are_refused_with_their_reason() {
        let mut bad_kind = event(json!({}));
        bad_kind.kind = "Run".into();
        assert!(matches!(
            encode_line(&bad_kind, 0, "2026-11-29T10:00:00Z", &Sha256Hash::ZERO, None),
            Err(EventError::InvalidKind { .. })
        ));
        assert!(matches!(
            encode_line(&event(json!({"f": 1.5})), 0, "2026-11-29T10:00:00Z", &Sha256Hash::ZERO, None),
            Err(EventError::Canonical { .. })
        ));
        let huge = "x".repeat(MAX_LINE_BYTES);
        assert!(matches!(
            encode_line(&event(json!({"big": huge})), 0, "2026-11-29T10:00:00Z", &Sha256Hash::ZERO, None),
            Err(EventError::TooLarge { .. })
        ));
        let mut no_host = event(json!({}));
        no_host.actor.host.clear();
        assert!(matches!(
            encode_line(&no_host, 0, "2026-11-29T10:00:00Z", &Sha256Hash::ZERO, None),
            Err(EventError::EmptyActor { .. })
        ));
    }

    #[test]
    fn times_have_one_spelling() {
        let t = parse_time(b"2026-11-29T10:00:00Z").unwrap();
        assert_eq!(format_time(t).unwrap(), "2026-11-29T10:00:00Z");
        for bad in [
            &b"2026-11-29T10:00:00.5Z"[..],
            b"2026-11-29T10:00:00+00:00",
            b"2026-02-30T10:00:00Z",
            b"2026-11-29T24:00:00Z",
            b"2026-11-29T10:00:60Z",
            b"2026-11-29t10:00:00Z",
            b"+026-11-29T10:00:00Z",
        ] {
            assert!(parse_time(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn parser_refuses_structural_damage() {
        let line =
            encode_line(&event(json!({"a": 1})), 0, "2026-11-29T10:00:00Z", &Sha256Hash::ZERO, None).unwrap().bytes;
        let text = String::from_utf8(line).unwrap();
        for (from, to) in [
            ("\"seq\":0", "\"seq\":-1"),
            ("\"seq\":0", "\"seq\":\"0\""),
            ("\"kind\":\"run.finished\"", "\"kind\":\"RUN\""),
            ("\"data\":{\"a\":1}", "\"data\":[1]"),
            ("\"time\":\"2026-11-29T10:00:00Z\"", "\"time\":\"yesterday\""),
            ("{\"actor\"", "{ \"actor\""),
            ("\"host\":\"node-1\"", "\"host\":\"\""),
        ] {
            let damaged = text.replacen(from, to, 1);
            assert_ne!(damaged, text);
            assert!(Entry::from_line(damaged.as_bytes()).is_err(), "accepted {damaged}");
        }
        let mut extra = text.clone();
        extra.push(' ');
        assert!(matches!(Entry::from_line(extra.as_bytes()), Err(EntryParseError::TrailingBytes { .. })));
        let mut non_utf8 = text.into_bytes();
        non_utf8[40] = 0xff;
        assert!(matches!(Entry::from_line(&non_utf8), Err(EntryParseError::NonUtf8 { offset: 40 })));
    }
}
