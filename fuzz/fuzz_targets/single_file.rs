#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = signer::embed::extract(data.to_vec(), &signer::bundle::ReadLimits::default());
});
