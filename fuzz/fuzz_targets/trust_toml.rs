#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = signer::trust::TrustStore::from_keys_and_toml(Vec::new(), text);
        let _ = signer::manifest::Capabilities::from_toml(text);
    }
});
