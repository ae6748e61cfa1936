//! Writers in several threads and several processes produce one valid chain
//! holding every entry.

use std::collections::BTreeSet;
use std::process::Command;

use audit::{Entry, LogOptions};

use crate::support::{Fixture, event, intact, signer};

#[test]
fn threads_with_their_own_handles() {
    let f = Fixture::new();
    let start = std::sync::Barrier::new(4);
    let seqs: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let (path, start) = (f.log.clone(), &start);
                scope.spawn(move || {
                    let mut log = audit::AuditLog::open_with(
                        &path,
                        LogOptions { checkpoint_signer: Some(signer(1)), checkpoint_path: None },
                    )
                    .unwrap();
                    // Every writer has its handle before any appends.
                    start.wait();
                    let mut seqs = Vec::new();
                    for i in 0..25 {
                        seqs.push(log.append(&event(t * 1000 + i)).unwrap().seq);
                        let batch: Vec<_> = (0..3).map(|j| event(t * 1000 + 100 + i * 3 + j)).collect();
                        seqs.extend(log.append_batch(&batch).unwrap().iter().map(|r| r.seq));
                    }
                    seqs
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let unique: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), 400);
    assert_eq!(unique, (0..400).collect());
    let report = intact(f.verify());
    assert_eq!((report.entries, report.uncheckpointed_entries), (400, 0));
    // The writers really overlapped: the log is not four runs one after another.
    let writers: Vec<u64> =
        f.lines().iter().map(|line| Entry::from_line(line).unwrap().data["status"].as_u64().unwrap() / 1000).collect();
    assert_overlapped(&writers);
}

/// Fails unless the log's entries, by writer, change hands more often than
/// writers running one after another would make them.
fn assert_overlapped(writers: &[u64]) {
    let distinct: BTreeSet<u64> = writers.iter().copied().collect();
    let switches = writers.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        switches > distinct.len() - 1,
        "{} writers changed hands only {switches} times: they ran one after another",
        distinct.len()
    );
}

#[test]
fn processes_appending_at_once() {
    let f = Fixture::new();
    let binary = crate::crash::append_loop_binary();
    let mut children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&binary)
                .arg(&f.log)
                .arg("60")
                .arg("2000")
                .arg("1")
                .env("APPEND_LOOP_START_ON_STDIN", "1")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // The start barrier: every writer is running before any appends.
    for child in &mut children {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let report = intact(f.verify());
    assert_eq!((report.entries, report.uncheckpointed_entries), (240, 0));
    // Every writer's events are all there, each writer's in its own order.
    let mut per_writer: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    for line in f.lines() {
        let entry = Entry::from_line(&line).unwrap();
        per_writer.entry(entry.data["writer"].as_u64().unwrap()).or_default().push(entry.data["n"].as_u64().unwrap());
    }
    assert_eq!(per_writer.len(), 4);
    for ns in per_writer.values() {
        assert_eq!(*ns, (0..60).collect::<Vec<_>>());
    }
    let writers: Vec<u64> =
        f.lines().iter().map(|line| Entry::from_line(line).unwrap().data["writer"].as_u64().unwrap()).collect();
    assert_overlapped(&writers);
}
