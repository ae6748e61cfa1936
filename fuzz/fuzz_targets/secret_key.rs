#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(locked) = signer::minisign::LockedSecretKey::from_file_bytes(data) {
        // Only unencrypted keys: scrypt with attacker-chosen parameters is bounded
        // by the parser's caps, but would make the fuzzer slow.
        if !locked.is_encrypted() {
            let _ = locked.unlock(None);
        }
    }
});
