#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = signer::dsse::Envelope::from_json_bytes(data) {
        let _ = signer::intoto::check_subject(&envelope, "00");
    }
});
