#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = signer::manifest::Manifest::from_bytes(data);
});
