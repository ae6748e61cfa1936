//! The one wasmtime configuration Night Core runs guests under, and the epoch
//! ticker that turns wall-clock deadlines into interrupts.
//!
//! Every limit the runtime promises depends on settings made here: fuel
//! metering must be on for instruction budgets, epoch interruption for
//! timeouts, and the wasm stack must be bounded. Keeping the configuration in
//! one place also gives the compile cache a single fingerprint to key on: a
//! precompiled artifact only loads into an engine configured exactly like the
//! one that produced it.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// The wasmtime release this crate is built against. A unit test keeps it equal
/// to the pin in the workspace `Cargo.toml`; it is part of every cache key.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// How often the ticker thread advances the engine's epoch. Deadlines are
/// accurate to about one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Default bound on the wasm call stack: deep enough for ordinary programs,
/// small enough that runaway recursion stops quickly and never touches the
/// host thread's own stack limit.
pub const DEFAULT_MAX_WASM_STACK: usize = 512 * 1024;

/// Domain-separation tag of the engine fingerprint.
const FINGERPRINT_DOMAIN: &[u8] = b"nightcore-engine-fingerprint-v1\0";

/// How instance memory is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Allocation {
    /// Memories are mapped when an instance is created: cheapest for one run.
    OnDemand,
    /// Slots are reserved up front and reused: fastest for many runs.
    Pooling(PoolingOptions),
}

/// Sizes of the pooling allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolingOptions {
    /// How many instances may be alive at once (one per concurrently running
    /// tenant).
    pub concurrent_instances: u32,
    /// The largest linear memory any slot must hold, in MiB; per-tenant caps
    /// below it are enforced by the store's resource limiter.
    pub max_memory_mib: u32,
    /// The largest table any slot must hold, in elements.
    pub max_table_elements: usize,
}

/// Engine settings chosen by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    pub allocation: Allocation,
    /// Bytes of wasm stack a guest may use before it traps with a stack
    /// overflow.
    pub max_wasm_stack: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self { allocation: Allocation::OnDemand, max_wasm_stack: DEFAULT_MAX_WASM_STACK }
    }
}

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("wasmtime refused the engine configuration: {0}")]
    Config(String),
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(std::io::Error),
}

/// A configured wasmtime engine with its epoch ticker running.
///
/// Dropping it stops the ticker thread.
pub struct NightEngine {
    engine: Engine,
    fingerprint: String,
    options: EngineOptions,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for NightEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NightEngine").field("fingerprint", &self.fingerprint).field("options", &self.options).finish()
    }
}

impl NightEngine {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(options: EngineOptions) -> Result<Self, EngineError> {
        let config = engine_config(&options);
        let engine = Engine::new(&config).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let fingerprint = fingerprint_of(&engine);
        let ticker = EpochTicker::start(engine.clone()).map_err(EngineError::Ticker)?;
        Ok(Self { engine, fingerprint, options, _ticker: ticker })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Lower-case hex SHA-256 over the wasmtime version and every setting that
    /// decides whether a precompiled artifact is compatible with this engine.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The options this engine was built with.
    pub fn options(&self) -> EngineOptions {
        self.options
    }
}

fn engine_config(options: &EngineOptions) -> Config {
    let mut config = Config::new();
    config.consume_fuel(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(options.max_wasm_stack);
    config.cranelift_opt_level(OptLevel::Speed);
    // 64-bit memories are off so that every memory is bounded by the 32-bit
    // index space as well as the limiter. Threads and shared memories (which the
    // resource limiter does not see) are not compiled into this wasmtime at all:
    // the `threads` feature is off in the workspace, and validation refuses
    // shared memories before compiling.
    config.wasm_memory64(false);
    // NaNs are canonicalised so that a module computes the same bits on every
    // host; it costs little and keeps runs comparable across machines.
    config.cranelift_nan_canonicalization(true);
    config.relaxed_simd_deterministic(true);
    if let Allocation::Pooling(pool) = options.allocation {
        let mut pooling = PoolingAllocationConfig::new();
        let slots = pool.concurrent_instances.max(1);
        pooling.total_core_instances(slots);
        pooling.total_memories(slots);
        pooling.total_stacks(slots);
        pooling.total_tables(slots.saturating_mul(crate::limits::MAX_TABLES as u32));
        pooling.total_component_instances(0);
        pooling.max_memories_per_module(crate::limits::MAX_MEMORIES as u32);
        pooling.max_tables_per_module(crate::limits::MAX_TABLES as u32);
        pooling.max_memory_size((pool.max_memory_mib as usize).saturating_mul(1024 * 1024));
        pooling.table_elements(pool.max_table_elements);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    }
    config
}

/// Feeds everything `Hash` writes into SHA-256, so that wasmtime's
/// compatibility hash becomes a stable digest instead of a process-local
/// `u64`.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        // Only the full digest is used; `finish` exists to satisfy the trait.
        let digest = self.0.clone().finalize();
        u64::from_le_bytes([digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7]])
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn fingerprint_of(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.write(FINGERPRINT_DOMAIN);
    hasher.write(WASMTIME_VERSION.as_bytes());
    hasher.write(&[0]);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(hasher.0.finalize())
}

/// A background thread that advances the engine's epoch every [`EPOCH_TICK`].
/// It stops when the sending side of its channel is dropped.
struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new().name("nightcore-epoch".into()).spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                engine.increment_epoch();
            }
        })?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread only sleeps and increments a counter; a panic there
            // would be a wasmtime bug and is not worth propagating from drop.
            let _ = thread.join();
        }
    }
}

/// Number of epoch ticks that covers `timeout`, plus one because the tick in
/// progress when the run starts may be almost over.
pub fn deadline_ticks(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos().max(1);
    let ticks = timeout.as_nanos().div_ceil(tick);
    u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasmtime_version_matches_the_workspace_pin() {
        let root = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml")).unwrap();
        let line = root.lines().find(|l| l.starts_with("wasmtime =")).unwrap();
        assert!(line.contains(&format!("\"={WASMTIME_VERSION}\"")), "{line}");
    }

    #[test]
    fn fingerprint_is_stable_and_shared_by_allocation_strategies() {
        let a = NightEngine::new(EngineOptions::default()).unwrap();
        let b = NightEngine::new(EngineOptions::default()).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let pool = PoolingOptions { concurrent_instances: 2, max_memory_mib: 64, max_table_elements: 1000 };
        let pooled =
            NightEngine::new(EngineOptions { allocation: Allocation::Pooling(pool), ..EngineOptions::default() })
                .unwrap();
        // The allocation strategy does not change generated code, so one-off runs
        // and `--all` share cached artifacts.
        assert_eq!(a.fingerprint(), pooled.fingerprint());
        assert!(a.fingerprint().len() == 64 && a.fingerprint().bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn fingerprint_follows_every_setting_that_changes_generated_code() {
        let ours = NightEngine::new(EngineOptions::default()).unwrap();
        assert_eq!(ours.fingerprint(), fingerprint_of(ours.engine()));
        type Change = fn(&mut Config);
        let changes: [(&str, Change); 4] = [
            ("no fuel metering", |c| {
                c.consume_fuel(false);
            }),
            ("no epoch interruption", |c| {
                c.epoch_interruption(false);
            }),
            ("unoptimised", |c| {
                c.cranelift_opt_level(OptLevel::None);
            }),
            ("NaNs not canonicalised", |c| {
                c.cranelift_nan_canonicalization(false);
            }),
        ];
        for (what, change) in changes {
            let mut config = engine_config(&EngineOptions::default());
            change(&mut config);
            let other = Engine::new(&config).unwrap();
            assert_ne!(
                fingerprint_of(&other),
                ours.fingerprint(),
                "{what}: an artifact of that engine would load into ours"
            );
        }
    }

    #[test]
    fn deadline_ticks_round_up() {
        assert_eq!(deadline_ticks(Duration::from_millis(0)), 1);
        assert_eq!(deadline_ticks(Duration::from_millis(10)), 2);
        assert_eq!(deadline_ticks(Duration::from_millis(11)), 3);
    }
}
