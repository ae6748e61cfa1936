#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = signer::wasmsig::SignedModule::parse(data);
    let _ = signer::wasmsig::import_public_key(data);
});
