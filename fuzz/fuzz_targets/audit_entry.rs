//! Fuzzes the audit log's line parser: it must never panic, and since only
//! canonical lines are accepted, any line it accepts must re-encode to the
//! same bytes, both through `Entry::to_line` and through the generic
//! canonical JSON encoder the entry hash is defined by.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = audit::Entry::from_line(data) {
        let line = entry.to_line().expect("an accepted entry re-encodes");
        assert_eq!(line, data, "accepted a non-canonical line");
        let generic = signer::canonical::to_canonical_bytes(&entry).expect("an accepted entry is canonical");
        assert_eq!(generic, data, "line differs from the canonical encoding");
        // Recomputing the hash must not panic either.
        let _ = entry.computed_hash();
    }
});
