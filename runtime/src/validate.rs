//! Checks a module's bytes against the effective policy before compiling them.
//!
//! Compiling is the most expensive and most exposed step before running, so
//! anything that can be refused from the bytes alone is refused here: oversized
//! or malformed modules, components, shared memories, too many memories or
//! tables, a missing `_start`, and every import the policy does not allow.
//!
//! # Which WASI imports are allowed
//!
//! Only functions from `wasi_snapshot_preview1` are ever linked; any other
//! module name, and any non-function import, is refused by name. Within WASI:
//!
//! - **always**: arguments, environment, clocks, randomness, `poll_oneoff`,
//!   `sched_yield`, `proc_exit`/`proc_raise`, and the descriptor calls that also
//!   work on stdio (`fd_read`, `fd_write`, `fd_close`, `fd_seek`, `fd_tell`,
//!   `fd_fdstat_get`, `fd_fdstat_set_flags`, `fd_filestat_get`, `fd_sync`,
//!   `fd_datasync`), and **`fd_prestat_get`/`fd_prestat_dir_name`**. The latter
//!   two only describe preopens the host granted (with none they return
//!   `EBADF`), and wasi-libc imports them for preopen discovery in any program
//!   that touches the file system API, so refusing them would refuse modules
//!   for a capability they cannot use anyway. A plain Rust 1.95 `println!`
//!   hello imports only `environ_get`, `environ_sizes_get`, `fd_write` and
//!   `proc_exit`.
//! - **only with at least one preopen**: every `path_*` call and the
//!   descriptor calls that only make sense on files or directories
//!   (`fd_readdir`, `fd_pread`, `fd_pwrite`, `fd_advise`, `fd_allocate`,
//!   `fd_filestat_set_size`, `fd_filestat_set_times`, `fd_fdstat_set_rights`,
//!   `fd_renumber`). A module that opens files but was granted no directory is
//!   refused up front rather than failing at run time.
//! - **only with network access**: `sock_accept`, `sock_recv`, `sock_send`,
//!   `sock_shutdown`.
//!
//! Names that preview 1 does not define are refused.

use wasmparser::{
    FuncValidator, FuncValidatorAllocations, FunctionBody, Parser, Payload, TypeRef, ValType, ValidPayload, Validator,
    ValidatorResources,
};

use crate::limits::{MAX_CONTROL_DEPTH, MAX_DECLARED_LOCALS, MAX_DEFINED_FUNCTIONS, MAX_MEMORIES, MAX_TABLES};

/// The only import module name a guest may use.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Default module size cap, checked before anything else reads the bytes.
pub const DEFAULT_MAX_MODULE_BYTES: usize = 64 * 1024 * 1024;

const ALWAYS: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "environ_get",
    "environ_sizes_get",
    "fd_close",
    "fd_datasync",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_filestat_get",
    "fd_prestat_dir_name",
    "fd_prestat_get",
    "fd_read",
    "fd_seek",
    "fd_sync",
    "fd_tell",
    "fd_write",
    "poll_oneoff",
    "proc_exit",
    "proc_raise",
    "random_get",
    "sched_yield",
];

const FILESYSTEM: &[&str] = &[
    "fd_advise",
    "fd_allocate",
    "fd_fdstat_set_rights",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pread",
    "fd_pwrite",
    "fd_readdir",
    "fd_renumber",
    "path_create_directory",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_open",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
];

const NETWORK: &[&str] = &["sock_accept", "sock_recv", "sock_send", "sock_shutdown"];

/// Which optional groups of WASI imports the effective policy allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportPolicy {
    pub filesystem: Grant,
    pub network: Grant,
}

/// Whether a capability is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Allowed,
    Denied,
}

/// Why a module was refused before compiling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    #[error("module is {size} bytes, over the {max}-byte cap")]
    TooLarge { size: usize, max: usize },
    #[error("module is not valid WebAssembly: {0}")]
    Malformed(String),
    #[error("module is a component; only core WebAssembly modules are run")]
    Component,
    #[error("import {module}::{name} is not allowed: {reason}")]
    DisallowedImport { module: String, name: String, reason: &'static str },
    #[error("module uses a shared memory, which the runtime does not support")]
    SharedMemory,
    #[error("module has {count} memories; at most {max} allowed")]
    TooManyMemories { count: usize, max: usize },
    #[error("module has {count} tables; at most {max} allowed")]
    TooManyTables { count: usize, max: usize },
    #[error("module defines {count} functions; at most {max} allowed")]
    TooManyFunctions { count: u64, max: u32 },
    #[error("defined function {function} nests blocks more than {max} deep")]
    NestingTooDeep { function: u32, max: u32 },
    #[error("module declares {count} locals in all; at most {max} allowed")]
    TooManyLocals { count: u64, max: u64 },
    #[error("module does not export a `_start` function of type () -> ()")]
    NoStart,
    #[error("module imports WASI functions but exports no memory named `memory` for them to use")]
    NoMemoryExport,
}

impl ValidationError {
    /// A stable snake_case code for JSON output and audit events.
    pub fn reason_code(&self) -> &'static str {
        match self {
            ValidationError::TooLarge { .. } => "module_too_large",
            ValidationError::Malformed(_) => "malformed_module",
            ValidationError::Component => "component_module",
            ValidationError::DisallowedImport { .. } => "disallowed_import",
            ValidationError::SharedMemory => "shared_memory",
            ValidationError::TooManyMemories { .. } => "too_many_memories",
            ValidationError::TooManyTables { .. } => "too_many_tables",
            ValidationError::TooManyFunctions { .. } => "too_many_functions",
            ValidationError::NestingTooDeep { .. } => "nesting_too_deep",
            ValidationError::TooManyLocals { .. } => "too_many_locals",
            ValidationError::NoStart => "no_start",
            ValidationError::NoMemoryExport => "no_memory_export",
        }
    }
}

/// What validation learned about an accepted module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSummary {
    /// The WASI functions the module imports, in import order.
    pub imports: Vec<String>,
}

/// Validates one function body as wasmparser's `FuncValidator::validate`
/// does, operator by operator, refusing nesting deeper than
/// [`MAX_CONTROL_DEPTH`] as it goes; returns the locals the body declares.
/// Doing this inside validation, rather than in a second pass over the code,
/// keeps our checks nearly free next to validation itself.
fn validate_function(
    func: &mut FuncValidator<ValidatorResources>,
    body: &FunctionBody<'_>,
    function: u32,
) -> Result<u64, ValidationError> {
    let malformed = |e: wasmparser::BinaryReaderError| ValidationError::Malformed(e.to_string());
    let mut locals = 0u64;
    for group in body.get_locals_reader().map_err(malformed)? {
        locals += u64::from(group.map_err(malformed)?.0);
    }
    let mut reader = body.get_binary_reader();
    func.read_locals(&mut reader).map_err(malformed)?;
    while !reader.eof() {
        reader.visit_operator(&mut func.visitor(reader.original_position())).map_err(malformed)?.map_err(malformed)?;
        // The function's own frame is the first on the stack.
        if func.control_stack_height() > MAX_CONTROL_DEPTH + 1 {
            return Err(ValidationError::NestingTooDeep { function, max: MAX_CONTROL_DEPTH });
        }
    }
    reader.finish_expression(&func.visitor(reader.original_position())).map_err(malformed)?;
    Ok(locals)
}

/// Validates `bytes` under `policy`, refusing anything over `max_module_bytes`
/// before parsing.
pub fn validate_module(
    bytes: &[u8],
    policy: ImportPolicy,
    max_module_bytes: usize,
) -> Result<ModuleSummary, ValidationError> {
    if bytes.len() > max_module_bytes {
        return Err(ValidationError::TooLarge { size: bytes.len(), max: max_module_bytes });
    }
    if Parser::is_component(bytes) {
        return Err(ValidationError::Component);
    }
    // One pass: wasmparser validates each payload before it is looked at
    // here, so everything below reads well-formed sections, and a malformed
    // module is reported with wasmparser's own message.
    let mut validator = Validator::new();
    let mut allocations = FuncValidatorAllocations::default();

    let mut imports = Vec::new();
    let mut memories = 0usize;
    let mut tables = 0usize;
    let mut function_types: Vec<u32> = Vec::new();
    let mut imported_functions = 0u32;
    let mut types: Vec<(Vec<ValType>, Vec<ValType>)> = Vec::new();
    let mut start_function = None;
    let mut exports_memory = false;
    let mut declared_locals = 0u64;
    let mut defined = 0u32;
    let malformed = |e: wasmparser::BinaryReaderError| ValidationError::Malformed(e.to_string());

    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(malformed)?;
        // The function count before anything validates the functions: it is
        // one number in the bytes, and validating a million functions is
        // itself slow.
        if let Payload::FunctionSection(reader) = &payload
            && reader.count() > MAX_DEFINED_FUNCTIONS
        {
            return Err(ValidationError::TooManyFunctions { count: reader.count().into(), max: MAX_DEFINED_FUNCTIONS });
        }
        if let ValidPayload::Func(to_validate, body) = validator.payload(&payload).map_err(malformed)? {
            let mut func = to_validate.into_validator(std::mem::take(&mut allocations));
            declared_locals += validate_function(&mut func, &body, defined)?;
            allocations = func.into_allocations();
            if declared_locals > MAX_DECLARED_LOCALS {
                return Err(ValidationError::TooManyLocals { count: declared_locals, max: MAX_DECLARED_LOCALS });
            }
            defined += 1;
            continue;
        }
        match payload {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group.map_err(malformed)?.into_types() {
                        match &sub.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => {
                                types.push((f.params().to_vec(), f.results().to_vec()));
                            }
                            // A non-function type still takes a type index; the
                            // placeholder never matches `() -> ()`.
                            _ => types.push((vec![ValType::I32], Vec::new())),
                        }
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(malformed)?;
                    check_import(import.module, import.name, &import.ty, policy)?;
                    match import.ty {
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => imported_functions += 1,
                        _ => {}
                    }
                    imports.push(import.name.to_string());
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    function_types.push(ty.map_err(malformed)?);
                }
            }
            Payload::TableSection(reader) => tables += reader.count() as usize,
            Payload::MemorySection(reader) => {
                for memory in reader {
                    if memory.map_err(malformed)?.shared {
                        return Err(ValidationError::SharedMemory);
                    }
                    memories += 1;
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(malformed)?;
                    if export.name == "_start" && export.kind == wasmparser::ExternalKind::Func {
                        start_function = Some(export.index);
                    }
                    if export.name == "memory" && export.kind == wasmparser::ExternalKind::Memory {
                        exports_memory = true;
                    }
                }
            }
            _ => {}
        }
    }
    if memories > MAX_MEMORIES {
        return Err(ValidationError::TooManyMemories { count: memories, max: MAX_MEMORIES });
    }
    if tables > MAX_TABLES {
        return Err(ValidationError::TooManyTables { count: tables, max: MAX_TABLES });
    }
    // `_start` must be a defined function taking and returning nothing; an
    // imported one could only be a WASI function, which is never a command.
    let start_ok = start_function
        .and_then(|index| index.checked_sub(imported_functions))
        .and_then(|defined| function_types.get(defined as usize))
        .and_then(|ty| types.get(*ty as usize))
        .is_some_and(|(params, results)| params.is_empty() && results.is_empty());
    if !start_ok {
        return Err(ValidationError::NoStart);
    }
    // WASI passes every buffer through the exported memory; without one the
    // first call would fail with an opaque host error.
    if !imports.is_empty() && !exports_memory {
        return Err(ValidationError::NoMemoryExport);
    }
    Ok(ModuleSummary { imports })
}

fn check_import(module: &str, name: &str, ty: &TypeRef, policy: ImportPolicy) -> Result<(), ValidationError> {
    let refuse =
        |reason| Err(ValidationError::DisallowedImport { module: module.to_string(), name: name.to_string(), reason });
    if module != WASI_MODULE {
        return refuse("only wasi_snapshot_preview1 functions are provided");
    }
    if !matches!(ty, TypeRef::Func(_) | TypeRef::FuncExact(_)) {
        return refuse("only functions may be imported");
    }
    if ALWAYS.contains(&name) {
        return Ok(());
    }
    if FILESYSTEM.contains(&name) {
        return match policy.filesystem {
            Grant::Allowed => Ok(()),
            Grant::Denied => refuse("file system access needs a preopened directory, and none is granted"),
        };
    }
    if NETWORK.contains(&name) {
        return match policy.network {
            Grant::Allowed => Ok(()),
            Grant::Denied => refuse("network access is not granted"),
        };
    }
    refuse("not a wasi_snapshot_preview1 function")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: ImportPolicy = ImportPolicy { filesystem: Grant::Denied, network: Grant::Denied };

    fn module(body: &str) -> Vec<u8> {
        wat::parse_str(format!("(module {body} (func (export \"_start\")))")).unwrap()
    }

    fn with_memory(body: &str) -> Vec<u8> {
        module(&format!("{body} (memory (export \"memory\") 1)"))
    }

    #[test]
    fn hello_imports_are_accepted() {
        let bytes = module(
            r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
               (import "wasi_snapshot_preview1" "fd_prestat_get" (func (param i32 i32) (result i32)))
               (memory (export "memory") 1)"#,
        );
        let summary = validate_module(&bytes, NONE, 1 << 20).unwrap();
        assert_eq!(summary.imports, ["fd_write", "fd_prestat_get"]);
    }

    #[test]
    fn path_open_needs_a_preopen() {
        let bytes = with_memory(
            r#"(import "wasi_snapshot_preview1" "path_open" (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"#,
        );
        let err = validate_module(&bytes, NONE, 1 << 20).unwrap_err();
        assert_eq!(err.reason_code(), "disallowed_import");
        assert!(err.to_string().contains("wasi_snapshot_preview1::path_open"), "{err}");
        let fs = ImportPolicy { filesystem: Grant::Allowed, network: Grant::Denied };
        validate_module(&bytes, fs, 1 << 20).unwrap();
    }

    #[test]
    fn sockets_need_network() {
        let bytes = with_memory(
            r#"(import "wasi_snapshot_preview1" "sock_send" (func (param i32 i32 i32 i32 i32) (result i32)))"#,
        );
        let err = validate_module(&bytes, NONE, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("sock_send is not allowed: network access is not granted"), "{err}");
        // Granted network, the same import validates; the file-system grant alone is not enough.
        let files_only = ImportPolicy { filesystem: Grant::Allowed, network: Grant::Denied };
        assert!(matches!(validate_module(&bytes, files_only, 1 << 20), Err(ValidationError::DisallowedImport { .. })));
        let network = ImportPolicy { filesystem: Grant::Denied, network: Grant::Allowed };
        assert!(validate_module(&bytes, network, 1 << 20).is_ok(), "a network grant admits sock_send");
    }

    #[test]
    fn foreign_modules_and_non_functions_are_refused() {
        let bytes = module(r#"(import "env" "abort" (func))"#);
        assert_eq!(
            validate_module(&bytes, NONE, 1 << 20).unwrap_err(),
            ValidationError::DisallowedImport {
                module: "env".into(),
                name: "abort".into(),
                reason: "only wasi_snapshot_preview1 functions are provided"
            }
        );
        let bytes = module(r#"(import "wasi_snapshot_preview1" "memory" (memory 1))"#);
        assert!(matches!(validate_module(&bytes, NONE, 1 << 20), Err(ValidationError::DisallowedImport { .. })));
        let bytes = module(r#"(import "wasi_snapshot_preview1" "path_open_at" (func))"#);
        let fs = ImportPolicy { filesystem: Grant::Allowed, network: Grant::Allowed };
        assert!(
            validate_module(&bytes, fs, 1 << 20)
                .unwrap_err()
                .to_string()
                .contains("not a wasi_snapshot_preview1 function")
        );
    }

    #[test]
    fn size_is_checked_before_parsing() {
        let err = validate_module(&[0u8; 100], NONE, 99).unwrap_err();
        assert_eq!(err, ValidationError::TooLarge { size: 100, max: 99 });
    }

    #[test]
    fn malformed_bytes_carry_the_parser_message() {
        let err = validate_module(b"\0asm\x01\0\0\0\x01", NONE, 1 << 20).unwrap_err();
        assert!(matches!(err, ValidationError::Malformed(_)), "{err}");
        assert!(
            validate_module(b"not wasm", NONE, 1 << 20)
                .unwrap_err()
                .to_string()
                .starts_with("module is not valid WebAssembly: ")
        );
    }

    #[test]
    fn start_must_exist_with_the_right_type() {
        let bytes = wat::parse_str("(module (func (export \"main\")))").unwrap();
        assert_eq!(validate_module(&bytes, NONE, 1 << 20), Err(ValidationError::NoStart));
        let bytes = wat::parse_str("(module (func (export \"_start\") (param i32)))").unwrap();
        assert_eq!(validate_module(&bytes, NONE, 1 << 20), Err(ValidationError::NoStart));
    }

    #[test]
    fn wasi_imports_need_an_exported_memory() {
        let bytes = module(r#"(import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))"#);
        assert_eq!(validate_module(&bytes, NONE, 1 << 20), Err(ValidationError::NoMemoryExport));
        let bytes = with_memory(r#"(import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))"#);
        validate_module(&bytes, NONE, 1 << 20).unwrap();
    }

    #[test]
    fn multiple_memories_are_refused() {
        let bytes = module("(memory 1) (memory 1)");
        assert_eq!(validate_module(&bytes, NONE, 1 << 20), Err(ValidationError::TooManyMemories { count: 2, max: 1 }));
    }
}
