//! Writers in several threads and several processes produce one valid chain
//! holding every entry.

use std::collections::BTreeSet;
use std::process::Command;

use audit::{Entry, LogOptions};

use crate::support::{Fixture, event, intact, signer};

#[test]
fn threads_with_their_own_handles() {
    let f = Fixture::new();
    let seqs: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let path = f.log.clone();
                scope.spawn(move || {
                    let mut log = audit::AuditLog::open_with(
                        &path,
                        LogOptions { checkpoint_signer: Some(signer(1)), checkpoint_path: None },
                    )
                    .unwrap();
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
}

#[test]
fn processes_appending_at_once() {
    let f = Fixture::new();
    let binary = crate::crash::append_loop_binary();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&binary)
                .arg(&f.log)
                .arg("60")
                .arg("2000")
                .arg("1")
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
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
}
