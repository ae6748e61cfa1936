//! Per-store resource limits that say which limit stopped a guest.
//!
//! wasmtime's own `StoreLimits` refuses growth with a plain error, so the host
//! cannot tell a memory bomb from any other failure. This limiter returns a
//! [`LimitExceeded`] instead, which survives as the error's root cause and is
//! classified by [`crate::exec`].

use wasmtime::ResourceLimiter;

/// Linear memories a module may have. One is all that a WASI command uses.
pub const MAX_MEMORIES: usize = 1;
/// Tables a module may have.
pub const MAX_TABLES: usize = 4;
/// Instances a store may hold: each run instantiates exactly one module.
pub const MAX_INSTANCES: usize = 1;
/// Default cap on table elements.
pub const DEFAULT_MAX_TABLE_ELEMENTS: usize = 100_000;

// Compile-time caps. Cranelift cannot be interrupted, so the cost of compiling
// is bounded from the bytes before it starts. Measured on 2 shared cores
// (wasmtime 48, see `hostile` in the runtime tests): 100k empty functions
// compile in about 8 s, every declared local costs about 64 ns, and block
// nesting costs quadratically (10k levels 0.3 s, 30k levels 2 s). Real
// programs stay far below each cap: large Rust or C programs have tens of
// thousands of functions, LLVM's deepest nesting comes from `br_table`
// lowering (one level per `match` arm), and functions rarely declare more
// than a few hundred locals. Shapes that need no cap of ours: a `br_table`
// over 65,520 targets is refused by Cranelift itself, and a 7 MB function of
// straight-line code compiles in about 0.7 s.

/// Functions a module may define.
pub const MAX_DEFINED_FUNCTIONS: u32 = 100_000;
/// Nesting depth of blocks, loops and ifs within one function.
pub const MAX_CONTROL_DEPTH: u32 = 10_000;
/// Locals declared across all functions of a module (wasmparser already
/// caps one function at 50,000).
pub const MAX_DECLARED_LOCALS: u64 = 5_000_000;

/// The growth caps of one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestLimits {
    /// Largest linear memory, in bytes.
    pub memory_bytes: usize,
    /// Largest table, in elements.
    pub table_elements: usize,
}

/// Which limit a guest ran into. Returned from the limiter as the error that
/// stops the guest, and from the output pipes when a stream overflows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitExceeded {
    #[error("linear memory growth to {desired} bytes exceeds the {limit}-byte cap")]
    Memory { desired: usize, limit: usize },
    #[error("table growth to {desired} elements exceeds the {limit}-element cap")]
    Table { desired: usize, limit: usize },
    #[error("{stream} output exceeds the {limit}-byte cap")]
    Output { stream: &'static str, limit: u64 },
}

/// A [`ResourceLimiter`] that records the largest memory it allowed and stops
/// the guest with [`LimitExceeded`] when a cap is passed.
#[derive(Debug, Clone)]
pub struct GuestLimiter {
    limits: GuestLimits,
    peak_memory_bytes: usize,
}

impl GuestLimiter {
    pub fn new(limits: GuestLimits) -> Self {
        Self { limits, peak_memory_bytes: 0 }
    }

    /// The largest linear memory size this limiter allowed, in bytes.
    pub fn peak_memory_bytes(&self) -> usize {
        self.peak_memory_bytes
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Refusing with an error rather than `Ok(false)` stops the guest at the
        // growth attempt: a guest that merely sees `memory.grow` fail would
        // usually abort with an unclassifiable `unreachable` trap instead.
        if desired > self.limits.memory_bytes {
            return Err(wasmtime::Error::new(LimitExceeded::Memory { desired, limit: self.limits.memory_bytes }));
        }
        self.peak_memory_bytes = self.peak_memory_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limits.table_elements {
            return Err(wasmtime::Error::new(LimitExceeded::Table { desired, limit: self.limits.table_elements }));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}
