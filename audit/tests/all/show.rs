//! `show`: filtering by kind and time, and reporting bad lines without
//! stopping.

use audit::{Actor, Entry, Filter, Sha256Hash, ShowError, read_entries};
use time::macros::datetime;

use crate::support::{Fixture, forge_entry, object};

fn write_log(f: &Fixture, entries: &[(&str, time::OffsetDateTime)]) {
    let mut prev = Sha256Hash::ZERO;
    let mut lines = Vec::new();
    for (seq, (kind, time)) in entries.iter().enumerate() {
        let (line, hash) = forge_entry(Entry {
            actor: Actor::new("guardian", "node-2"),
            data: object(serde_json::json!({"n": seq})),
            hash: Sha256Hash::ZERO,
            kind: (*kind).to_owned(),
            prev,
            seq: seq as u64,
            time: *time,
        });
        prev = hash;
        lines.push(line);
    }
    f.set_lines(&lines);
}

fn seqs(f: &Fixture, filter: Filter) -> Vec<u64> {
    read_entries(&f.log, filter).unwrap().map(|e| e.unwrap().seq).collect()
}

#[test]
fn filters_by_kind_prefix_and_time() {
    let f = Fixture::new();
    write_log(
        &f,
        &[
            ("run.started", datetime!(2026-11-29 09:00:00 UTC)),
            ("run.finished", datetime!(2026-11-29 09:30:00 UTC)),
            ("drift.detected", datetime!(2026-11-29 10:00:00 UTC)),
            ("rollback.completed", datetime!(2026-11-29 10:05:00 UTC)),
            ("run.started", datetime!(2026-11-29 11:00:00 UTC)),
            ("running.late", datetime!(2026-11-29 12:00:00 UTC)),
        ],
    );
    assert_eq!(seqs(&f, Filter::default()), [0, 1, 2, 3, 4, 5]);
    let kind = |k: &str| Filter { kind: Some(k.into()), since: None };
    assert_eq!(seqs(&f, kind("run")), [0, 1, 4]);
    assert_eq!(seqs(&f, kind("run.started")), [0, 4]);
    assert_eq!(seqs(&f, kind("drift.detected")), [2]);
    let since = Filter { kind: None, since: Some(datetime!(2026-11-29 10:00:00 UTC)) };
    assert_eq!(seqs(&f, since), [2, 3, 4, 5]);
    let both = Filter { kind: Some("run".into()), since: Some(datetime!(2026-11-29 09:30:00 UTC)) };
    assert_eq!(seqs(&f, both), [1, 4]);
}

#[test]
fn bad_lines_are_reported_and_skipped() {
    let f = Fixture::with_entries(3);
    let mut lines = f.lines();
    lines.insert(1, b"not json".to_vec());
    f.set_lines(&lines);
    let results: Vec<_> = read_entries(&f.log, Filter::default()).unwrap().collect();
    assert_eq!(results.len(), 4);
    assert!(matches!(results[1], Err(ShowError::MalformedLine { line: 2, .. })));
    assert_eq!(results[3].as_ref().unwrap().seq, 2);
}
