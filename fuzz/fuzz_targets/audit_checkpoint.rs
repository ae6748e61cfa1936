//! Fuzzes the signed-checkpoint parser: it must never panic, and any text it
//! accepts must print back byte for byte (one spelling per checkpoint).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(signed) = audit::SignedCheckpoint::parse(text) {
        assert_eq!(signed.to_signed_note(), text, "accepted a non-canonical checkpoint");
        let _ = signed.signatures();
    }
});
