//! One module per `signer` subcommand.

pub mod bundle;
pub mod embed;
pub mod inspect;
pub mod keygen;
pub mod sign;
pub mod verify;
pub mod wasmsig;

/// Prints a serialisable value as one line of JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Reads the bundle at `dir` for signing, refusing a module that is not the
/// one its manifest names: a signer must never approve a module swapped on
/// the way to the offline machine.
pub fn read_bundle_to_sign(
    dir: &std::path::Path,
) -> anyhow::Result<(signer::bundle::BundleBytes, signer::manifest::Manifest)> {
    use anyhow::Context as _;
    // Separate files only: a signature file written beside a single-file
    // module would turn its directory into a bundle missing its manifest.
    let bundle = signer::bundle::BundleBytes::read_separate_files(dir, &signer::bundle::ReadLimits::default())
        .map_err(|e| match e {
            signer::bundle::BundleError::Missing { ref path } if path.ends_with(signer::bundle::MANIFEST_FILE) => {
                anyhow::anyhow!(
                    "{e}: to sign a single-file module, unpack it with `signer extract`, sign the bundle and \
                     `signer embed` it again"
                )
            }
            e => e.into(),
        })?;
    let manifest =
        signer::manifest::Manifest::from_bytes(&bundle.manifest).context("refusing to sign a malformed manifest")?;
    let actual = signer::manifest::ModuleDigest::of(&bundle.module);
    if actual != manifest.module {
        anyhow::bail!(
            "refusing to sign: module.wasm has sha256 {} ({} bytes) but the manifest names {} ({} bytes)",
            actual.sha256,
            actual.size,
            manifest.module.sha256,
            manifest.module.size
        );
    }
    Ok((bundle, manifest))
}
