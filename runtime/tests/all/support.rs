//! Shared helpers: fixtures, policies, signed bundles and trust stores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runtime::exec::{Determinism, prepare, run};
use runtime::{EffectivePolicy, EngineOptions, NightEngine, RunReport, wasi_linker};
use signer::bundle::{write_signature, write_unsigned};
use signer::manifest::{Capabilities, MANIFEST_SCHEMA, Manifest, ModuleDigest, Provenance};
use signer::minisign::SecretKey;
use signer::trust::write_trust_store;

/// The bytes of `tests/fixtures/NAME.wat`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A module that calls `proc_exit(code)`.
pub fn exit_module(code: i32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
             (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (memory (export "memory") 1)
             (func (export "_start") (call $exit (i32.const {code}))))"#
    ))
    .unwrap()
}

/// A generous policy for tenant `t`: 1e9 fuel, 16 MiB, 10 s, 64 KiB output.
pub fn policy() -> EffectivePolicy {
    EffectivePolicy {
        tenant: "t".into(),
        fuel: 1_000_000_000,
        memory_mib: 16,
        timeout: Duration::from_secs(10),
        max_output_bytes: 64 * 1024,
        env: BTreeMap::new(),
        preopens: Vec::new(),
        network: Vec::new(),
    }
}

/// Compiles and runs `module` once under `policy`.
pub fn run_module(module: &[u8], policy: &EffectivePolicy, args: &[&str]) -> RunReport {
    let engine = NightEngine::new(EngineOptions::default()).unwrap();
    let linker = wasi_linker(&engine).unwrap();
    let module = runtime::cache::compile(&engine, module).unwrap();
    let pre = prepare(&linker, &module).unwrap();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run(&engine, &pre, policy, &args, Determinism::Host).unwrap()
}

/// A signing key with its trust store in `dir/trust`.
pub struct Signer {
    pub key: SecretKey,
    pub trust_dir: PathBuf,
}

impl Signer {
    pub fn new(dir: &Path) -> Self {
        let key = SecretKey::generate();
        let trust_dir = dir.join("trust");
        write_trust_store(&trust_dir, &[("ci", &key.public_key())], "threshold = 1\n").unwrap();
        Self { key, trust_dir }
    }

    /// Writes a bundle for `tenant` at `out` and signs it.
    pub fn bundle(&self, out: &Path, tenant: &str, module: &[u8], caps: Capabilities) -> PathBuf {
        unsigned_bundle(out, tenant, module, caps);
        let manifest = std::fs::read(out.join("manifest.json")).unwrap();
        let signature = self.key.sign(&manifest, "test").unwrap();
        write_signature(out, &signature).unwrap();
        out.to_path_buf()
    }

    /// Like [`Signer::bundle`], at manifest version `version`.
    pub fn bundle_version(&self, out: &Path, tenant: &str, version: u64, module: &[u8]) -> PathBuf {
        let manifest = Manifest {
            version,
            version_label: format!("{version}.0.0"),
            ..manifest(tenant, module, Capabilities::default())
        };
        write_unsigned(out, module, &manifest).unwrap();
        let signature = self.key.sign(&std::fs::read(out.join("manifest.json")).unwrap(), "test").unwrap();
        write_signature(out, &signature).unwrap();
        out.to_path_buf()
    }
}

/// The single-file form (`signer embed`) of the bundle directory `bundle`.
pub fn single_file(bundle: &Path) -> Vec<u8> {
    let bytes = signer::bundle::BundleBytes::read(bundle, &signer::bundle::ReadLimits::default()).unwrap();
    signer::embed::embed(&bytes).unwrap()
}

/// Writes an unsigned bundle for `tenant` at `out`.
pub fn unsigned_bundle(out: &Path, tenant: &str, module: &[u8], caps: Capabilities) -> PathBuf {
    write_unsigned(out, module, &manifest(tenant, module, caps)).unwrap();
    out.to_path_buf()
}

/// A version-1 manifest of `module` for `tenant`.
fn manifest(tenant: &str, module: &[u8], caps: Capabilities) -> Manifest {
    Manifest {
        schema: MANIFEST_SCHEMA.to_string(),
        name: tenant.to_string(),
        version: 1,
        version_label: "1.0.0".into(),
        module: ModuleDigest::of(module),
        expires: "2099-01-01T00:00:00Z".into(),
        provenance: Provenance::default(),
        capabilities: caps,
    }
}
