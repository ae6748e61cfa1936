//! Running one instance of a compiled module under an effective policy, and
//! saying precisely how the run ended.
//!
//! Each run gets its own store with its own fuel, epoch deadline, resource
//! limiter, WASI context and output pipes, so nothing one guest does can
//! reach another's state. The outcome is classified from the error the call
//! returns: `proc_exit` arrives as [`wasmtime_wasi::I32Exit`], fuel and epoch
//! stops as [`wasmtime::Trap::OutOfFuel`] and [`wasmtime::Trap::Interrupt`],
//! and the host's own limits as [`LimitExceeded`].
//!
//! Guests run as futures on a per-run, single-threaded tokio runtime (WASI's
//! asynchronous host functions), so that a wall-clock timeout also reaches a
//! guest that is blocked in a host call, where epoch interruption cannot.

use std::time::{Duration, Instant};

use signer::manifest::PreopenMode;
use wasmtime::{InstancePre, Linker, Module, Store, Trap};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::engine::{NightEngine, deadline_ticks};
use crate::limits::{DEFAULT_MAX_TABLE_ELEMENTS, GuestLimiter, GuestLimits, LimitExceeded};
use crate::output::CappedPipe;
use crate::policy::EffectivePolicy;

/// Whether the guest sees the host's clocks and randomness or fixed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Determinism {
    /// Real clocks and a secure random source.
    Host,
    /// The wall clock reads [`DETERMINISTIC_EPOCH`], the monotonic clock
    /// advances one microsecond per reading, and randomness is a fixed stream
    /// derived from a seed: the same module, arguments, environment and files
    /// then produce the same output and fuel, which `runtime replay` checks.
    /// The random stream is public; nothing secret may depend on it.
    Fixed,
}

/// What the wall clock reads under [`Determinism::Fixed`]: 2000-01-01T00:00:00Z.
pub const DETERMINISTIC_EPOCH: Duration = Duration::from_secs(946_684_800);

/// Seed bytes of the fixed random stream; public by design.
const DETERMINISTIC_SEED_DOMAIN: &[u8] = b"nightcore-deterministic-random-v1\0";

struct FixedWallClock;

impl wasmtime_wasi::HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_micros(1)
    }

    fn now(&self) -> Duration {
        DETERMINISTIC_EPOCH
    }
}

/// A monotonic clock that moves only when read, so that loops waiting for
/// time to pass still terminate, in the same number of steps every run.
#[derive(Default)]
struct SteppingMonotonicClock(std::sync::atomic::AtomicU64);

impl wasmtime_wasi::HostMonotonicClock for SteppingMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000
    }

    fn now(&self) -> u64 {
        self.0.fetch_add(1_000, std::sync::atomic::Ordering::Relaxed)
    }
}

/// 64 KiB of SHA-256 counter-mode output, cycled by wasmtime-wasi's
/// `Deterministic` generator.
fn fixed_random_stream(label: &[u8]) -> wasmtime_wasi::Deterministic {
    use sha2::{Digest, Sha256};
    let mut bytes = Vec::with_capacity(64 * 1024);
    for counter in 0u32..2048 {
        let mut block = Sha256::new();
        block.update(DETERMINISTIC_SEED_DOMAIN);
        block.update(label);
        block.update(counter.to_be_bytes());
        bytes.extend_from_slice(&block.finalize());
    }
    wasmtime_wasi::Deterministic::new(bytes)
}

/// Per-store host state: the guest's WASI context and its resource limiter.
pub struct HostState {
    wasi: WasiP1Ctx,
    limiter: GuestLimiter,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The guest exited: through `proc_exit(code)`, or with 0 by returning
    /// from `_start`.
    Exited { code: i32 },
    /// The instruction budget ran out.
    FuelExhausted,
    /// The wall-clock limit passed.
    Timeout,
    /// The guest tried to grow its linear memory past the cap.
    MemoryLimit { desired: usize, limit: usize },
    /// The guest tried to grow a table past the cap.
    TableLimit { desired: usize, limit: usize },
    /// The guest wrote more than the output cap to `stream`.
    OutputLimit { stream: &'static str, limit: u64 },
    /// The wasm stack bound was reached.
    StackOverflow,
    /// Any other trap; `kind` is wasmtime's trap code in snake_case, or
    /// `host_error` for a failure that is not a wasm trap.
    Trap { kind: String, message: String },
}

impl Outcome {
    /// A stable snake_case name for the kind of outcome.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Exited { .. } => "exited",
            Outcome::FuelExhausted => "fuel_exhausted",
            Outcome::Timeout => "timeout",
            Outcome::MemoryLimit { .. } => "memory_limit",
            Outcome::TableLimit { .. } => "table_limit",
            Outcome::OutputLimit { .. } => "output_limit",
            Outcome::StackOverflow => "stack_overflow",
            Outcome::Trap { .. } => "trap",
        }
    }

    /// Whether a host-imposed limit stopped the guest.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Outcome::FuelExhausted
                | Outcome::Timeout
                | Outcome::MemoryLimit { .. }
                | Outcome::TableLimit { .. }
                | Outcome::OutputLimit { .. }
        )
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Exited { code } => write!(f, "exited with status {code}"),
            Outcome::FuelExhausted => write!(f, "stopped: fuel exhausted"),
            Outcome::Timeout => write!(f, "stopped: timeout"),
            Outcome::MemoryLimit { desired, limit } => {
                write!(f, "stopped: memory growth to {desired} bytes over the {limit}-byte cap")
            }
            Outcome::TableLimit { desired, limit } => {
                write!(f, "stopped: table growth to {desired} elements over the {limit}-element cap")
            }
            Outcome::OutputLimit { stream, limit } => write!(f, "stopped: {stream} over the {limit}-byte cap"),
            Outcome::StackOverflow => write!(f, "trapped: stack overflow"),
            Outcome::Trap { kind, message } => write!(f, "trapped ({kind}): {message}"),
        }
    }
}

/// Fuel accounting for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuelUsage {
    pub limit: u64,
    /// Fuel consumed, or `None` when it cannot be known: after an epoch
    /// interrupt wasmtime may still report the starting fuel, so no number is
    /// better than a wrong one.
    pub consumed: Option<u64>,
}

/// Everything observed about one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub outcome: Outcome,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub fuel: FuelUsage,
    pub wall_time: Duration,
    /// The largest linear memory the guest was allowed, in bytes.
    pub peak_memory_bytes: usize,
}

/// Why a run could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    #[error("cannot link the module against WASI: {0}")]
    Link(String),
    #[error("cannot preopen host directory {host} as {guest}: {reason}")]
    Preopen { guest: String, host: String, reason: String },
    #[error("cannot set up the store: {0}")]
    Store(String),
}

/// A linker with WASI preview 1 and nothing else.
pub fn wasi_linker(engine: &NightEngine) -> Result<Linker<HostState>, ExecError> {
    let mut linker = Linker::new(engine.engine());
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut HostState| &mut state.wasi)
        .map_err(|e| ExecError::Link(format!("{e:#}")))?;
    Ok(linker)
}

/// Resolves `module`'s imports once, so that each run only instantiates.
pub fn prepare(linker: &Linker<HostState>, module: &Module) -> Result<InstancePre<HostState>, ExecError> {
    linker.instantiate_pre(module).map_err(|e| ExecError::Link(format!("{e:#}")))
}

/// Runs `_start` of a fresh instance under `policy`, with `args` as argv
/// (`argv[0]` is the tenant name).
pub fn run(
    engine: &NightEngine,
    pre: &InstancePre<HostState>,
    policy: &EffectivePolicy,
    args: &[String],
    determinism: Determinism,
) -> Result<RunReport, ExecError> {
    let stdout = CappedPipe::new("stdout", policy.max_output_bytes);
    let stderr = CappedPipe::new("stderr", policy.max_output_bytes);
    let wasi = wasi_context(policy, args, &stdout, &stderr, determinism)?;
    let limiter = GuestLimiter::new(GuestLimits {
        memory_bytes: policy.memory_bytes(),
        table_elements: DEFAULT_MAX_TABLE_ELEMENTS,
    });
    let mut store = Store::new(engine.engine(), HostState { wasi, limiter });
    store.limiter(|state| &mut state.limiter);
    store.set_fuel(policy.fuel).map_err(|e| ExecError::Store(format!("{e:#}")))?;
    store.set_epoch_deadline(deadline_ticks(policy.timeout));
    store.epoch_deadline_trap();

    // The guest runs as a future on a single-threaded tokio runtime: the epoch
    // deadline stops guests that spin in wasm, and the tokio timeout stops
    // guests that sit in a blocking host call (`poll_oneoff` sleeping, a slow
    // read), which epoch interruption cannot reach because no wasm is running.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| ExecError::Store(format!("cannot start the async runtime: {e}")))?;
    let started = Instant::now();
    let result = runtime.block_on(async {
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call_async(&mut store, ()).await
        };
        tokio::time::timeout(policy.timeout, call).await
    });
    let wall_time = started.elapsed();
    // Blocking file operations still in flight for a stopped guest finish on
    // their own thread; nothing waits for them.
    runtime.shutdown_background();

    let outcome = match result {
        Ok(Ok(())) => Outcome::Exited { code: 0 },
        Ok(Err(error)) => classify(&error),
        Err(_elapsed) => Outcome::Timeout,
    };
    let consumed = match outcome {
        Outcome::Timeout => None,
        Outcome::FuelExhausted => Some(policy.fuel),
        _ => store.get_fuel().ok().map(|left| policy.fuel.saturating_sub(left)),
    };
    let peak_memory_bytes = store.data().limiter.peak_memory_bytes();
    drop(store);
    tracing::debug!(tenant = %policy.tenant, outcome = %outcome, ?wall_time, "run finished");
    Ok(RunReport {
        outcome,
        stdout_truncated: stdout.truncated(),
        stderr_truncated: stderr.truncated(),
        stdout: stdout.contents(),
        stderr: stderr.contents(),
        fuel: FuelUsage { limit: policy.fuel, consumed },
        wall_time,
        peak_memory_bytes,
    })
}

fn wasi_context(
    policy: &EffectivePolicy,
    args: &[String],
    stdout: &CappedPipe,
    stderr: &CappedPipe,
    determinism: Determinism,
) -> Result<WasiP1Ctx, ExecError> {
    let mut builder = WasiCtxBuilder::new();
    if determinism == Determinism::Fixed {
        builder.wall_clock(FixedWallClock);
        builder.monotonic_clock(SteppingMonotonicClock::default());
        builder.secure_random(fixed_random_stream(b"secure"));
        builder.insecure_random(fixed_random_stream(b"insecure"));
        builder.insecure_random_seed(0);
    }
    // Nothing is inherited: stdin stays closed, the environment holds only the
    // variables the policy lists, and the output goes to the capped pipes.
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(policy.tenant.clone());
    argv.extend(args.iter().cloned());
    builder.args(&argv);
    for (name, value) in &policy.env {
        builder.env(name, value);
    }
    builder.stdout(stdout.clone());
    builder.stderr(stderr.clone());
    // File operations go to tokio's blocking pool rather than blocking the
    // guest's thread, so that the run's timeout can still fire while one is
    // pending.
    builder.allow_blocking_current_thread(false);
    builder.allow_ip_name_lookup(false);
    if policy.network.is_empty() {
        builder.allow_tcp(false);
        builder.allow_udp(false);
    } else {
        let allowed = policy.network.clone();
        builder.socket_addr_check(move |addr, _use| {
            let ok = allowed.contains(&addr);
            Box::pin(async move { ok })
        });
    }
    for preopen in &policy.preopens {
        let perms = match preopen.mode {
            PreopenMode::ReadOnly => FsPerms::ReadOnly,
            PreopenMode::ReadWrite => FsPerms::ReadWrite,
        };
        builder.preopened_dir(&preopen.host, &preopen.guest, perms).map_err(|e| ExecError::Preopen {
            guest: preopen.guest.clone(),
            host: preopen.host.display().to_string(),
            reason: format!("{e:#}"),
        })?;
    }
    Ok(builder.build_p1())
}

/// Sorts an error from instantiation or `_start` into an [`Outcome`].
pub fn classify(error: &wasmtime::Error) -> Outcome {
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return Outcome::Exited { code: exit.0 };
    }
    if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
        return match *limit {
            LimitExceeded::Memory { desired, limit } => Outcome::MemoryLimit { desired, limit },
            LimitExceeded::Table { desired, limit } => Outcome::TableLimit { desired, limit },
            LimitExceeded::Output { stream, limit } => Outcome::OutputLimit { stream, limit },
        };
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => Outcome::FuelExhausted,
            Trap::Interrupt => Outcome::Timeout,
            Trap::StackOverflow => Outcome::StackOverflow,
            other => Outcome::Trap { kind: snake_case(&format!("{other:?}")), message: other.to_string() },
        };
    }
    Outcome::Trap { kind: "host_error".to_string(), message: format!("{error:#}") }
}

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_names_become_snake_case() {
        assert_eq!(snake_case("UnreachableCodeReached"), "unreachable_code_reached");
        assert_eq!(snake_case("MemoryOutOfBounds"), "memory_out_of_bounds");
    }
}
