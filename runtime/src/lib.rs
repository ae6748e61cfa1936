//! Night Core's runtime: verify a bundle, then run exactly the verified bytes
//! in wasmtime under the signed capabilities as narrowed by the host.
//!
//! The path of one run, each step in its own module:
//!
//! | step | module |
//! |---|---|
//! | read once, verify (signer), narrow the policy, validate, compile, link | [`pipeline`] |
//! | host policy × signed capabilities → effective policy | [`policy`] |
//! | imports, size and shape checks before compiling | [`validate`] |
//! | precompiled artifacts keyed by the verified hash | [`cache`] |
//! | the engine configuration and its epoch ticker | [`engine`] |
//! | one store, one instance, one classified outcome | [`exec`] with [`limits`] and [`output`] |
//! | every tenant of a deploy directory in parallel | [`deploy`] |
//! | `run.finished` / `run.refused` audit events | [`events`] |
//! | signed execution receipts and deterministic replay | [`receipt`] |
//!
//! Invariants: the runtime never compiles or instantiates bytes it has not
//! received back from verification (the only exception is the explicitly
//! named `--danger-allow-unsigned` path, which is recorded and never touches
//! the compile cache); the library never prints (it logs through `tracing`);
//! and there is exactly one `unsafe` block, the loading of a hash-checked
//! precompiled artifact in [`cache`].
#![deny(unsafe_code)]
// Libraries never print: what reaches stdout and stderr is the binaries' choice
// (ARCHITECTURE.md, "Libraries do the work").
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod cache;
pub mod deploy;
pub mod engine;
pub mod events;
pub mod exec;
pub mod limits;
pub mod output;
pub mod pipeline;
pub mod policy;
pub mod receipt;
pub mod validate;

pub use cache::{CacheStatus, CompileCache};
pub use deploy::{DeployReport, PreparedDeploy, TenantFailure, TenantResult, prepare_all, run_all};
pub use engine::{Allocation, EngineOptions, NightEngine, PoolingOptions};
pub use exec::{Determinism, FuelUsage, HostState, Outcome, RunReport, wasi_linker};
pub use pipeline::{
    ExecOptions, ExecReport, Refusal, RollbackFloors, TenantFloor, Verification, VerificationStatus, exec_bundle,
    prepare_bundle, run_ready,
};
pub use policy::{EffectivePolicy, GrantedPreopen, HostPolicies, PolicyError, narrow};
pub use validate::{ValidationError, validate_module};
