#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = signer::minisign::Signature::from_file_bytes(data);
});
