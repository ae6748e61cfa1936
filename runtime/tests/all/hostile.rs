//! Hostile modules generated with `wasm-encoder`: shapes that attack the
//! parser, validator and compiler rather than run as a misbehaving guest.
//! Each is signed (an attacker who controls a signing key, or a tenant
//! attacking the host) and goes through the whole pipeline; each must end in
//! a named refusal or a bounded run, never a hang. The compile-time caps and
//! their measured costs are in `runtime::limits`.

use std::sync::mpsc;
use std::time::Duration;

use runtime::limits::{MAX_CONTROL_DEPTH, MAX_DECLARED_LOCALS, MAX_DEFINED_FUNCTIONS};
use runtime::{
    EngineOptions, ExecOptions, ExecReport, HostPolicies, NightEngine, Outcome, Refusal, Verification, exec_bundle,
    wasi_linker,
};
use signer::manifest::Capabilities;
use signer::trust::TrustStore;
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, CustomSection, DataSection, ExportKind, ExportSection, Function,
    FunctionSection, Instruction, MemorySection, MemoryType, Module, TypeSection, ValType,
};

use crate::support::Signer;

/// Not a speed assertion: a liveness guard, far above any bounded case, so a
/// regression that hangs fails the test instead of stalling CI.
const HANG: Duration = Duration::from_secs(300);

/// The pieces of a generated module; `_start` is always function 0.
#[derive(Default)]
struct Shape {
    functions: u32,
    locals_per_function: u32,
    /// Nested `block`s in `_start`.
    nesting: u32,
    /// Initial memory pages and one active data segment at offset 0.
    memory: Option<(u64, usize)>,
    /// Count and size of extra custom sections.
    customs: (usize, usize),
    /// Every function but `_start` pops from an empty stack: invalid, so a
    /// refusal for another reason shows that check came before validation.
    invalid_bodies: bool,
    /// One more function, declaring this many locals.
    extra_function_locals: Option<u32>,
}

impl Shape {
    fn encode(&self) -> Vec<u8> {
        let mut module = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], []);
        module.section(&types);
        let mut funcs = FunctionSection::new();
        for _ in 0..self.functions.max(1) + u32::from(self.extra_function_locals.is_some()) {
            funcs.function(0);
        }
        module.section(&funcs);
        if let Some((pages, _)) = self.memory {
            let mut memories = MemorySection::new();
            memories.memory(MemoryType {
                minimum: pages,
                maximum: None,
                memory64: false,
                shared: false,
                page_size_log2: None,
            });
            module.section(&memories);
        }
        let mut exports = ExportSection::new();
        exports.export("_start", ExportKind::Func, 0);
        module.section(&exports);
        let mut code = CodeSection::new();
        for i in 0..self.functions.max(1) {
            let locals = (self.locals_per_function > 0).then_some((self.locals_per_function, ValType::I64));
            let mut f = Function::new(locals);
            if i > 0 && self.invalid_bodies {
                f.instruction(&Instruction::Drop);
            }
            if i == 0 {
                for _ in 0..self.nesting {
                    f.instruction(&Instruction::Block(BlockType::Empty));
                }
                for _ in 0..self.nesting {
                    f.instruction(&Instruction::End);
                }
            }
            f.instruction(&Instruction::End);
            code.function(&f);
        }
        if let Some(locals) = self.extra_function_locals {
            let mut f = Function::new([(locals, ValType::I64)]);
            f.instruction(&Instruction::End);
            code.function(&f);
        }
        module.section(&code);
        if let Some((_, size)) = self.memory {
            let mut data = DataSection::new();
            data.active(0, &ConstExpr::i32_const(0), std::iter::repeat_n(0x5a, size));
            module.section(&data);
        }
        let payload = vec![0xab; self.customs.1];
        for i in 0..self.customs.0 {
            module.section(&CustomSection { name: format!("flood{i}").into(), data: payload.as_slice().into() });
        }
        module.finish()
    }
}

/// Signs `module` as a bundle and runs it through the whole pipeline on
/// another thread, failing if it does not finish within [`HANG`].
fn run_signed(module: Vec<u8>, max_module_bytes: Option<usize>) -> Result<ExecReport, Refusal> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::new(dir.path());
        let bundle = signer.bundle(&dir.path().join("b"), "hostile", &module, Capabilities::default());
        let trust = TrustStore::load(&signer.trust_dir).unwrap();
        let policies = HostPolicies::default();
        let mut options = ExecOptions::new(Verification::Required(&trust), &policies);
        if let Some(max) = max_module_bytes {
            options.max_module_bytes = max;
        }
        let engine = NightEngine::new(EngineOptions::default()).unwrap();
        let linker = wasi_linker(&engine).unwrap();
        let _ = tx.send(exec_bundle(&engine, &linker, &bundle, &[], &options));
    });
    match rx.recv_timeout(HANG) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the pipeline hung on a hostile module"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the pipeline panicked on a hostile module"),
    }
}

fn refusal(module: Vec<u8>) -> (String, String) {
    let refusal = run_signed(module, None).expect_err("a hostile module ran");
    (refusal.reason_code().to_string(), refusal.to_string())
}

fn exited(module: Vec<u8>) -> Outcome {
    run_signed(module, None).expect("a bounded module was refused").run.outcome
}

#[test]
fn thousands_of_functions_compile_and_too_many_are_refused_before_validation() {
    assert_eq!(exited(Shape { functions: 5_000, ..Shape::default() }.encode()), Outcome::Exited { code: 0 });
    let invalid = Shape { functions: 3, invalid_bodies: true, ..Shape::default() }.encode();
    assert_eq!(refusal(invalid).0, "malformed_module", "the invalid bodies are invalid");
    let (code, message) =
        refusal(Shape { functions: MAX_DEFINED_FUNCTIONS + 1, invalid_bodies: true, ..Shape::default() }.encode());
    assert_eq!(code, "too_many_functions");
    assert_eq!(
        message,
        format!("module refused: module defines 100001 functions; at most {MAX_DEFINED_FUNCTIONS} allowed")
    );
}

#[test]
fn deep_block_nesting_is_bounded() {
    assert_eq!(exited(Shape { nesting: MAX_CONTROL_DEPTH, ..Shape::default() }.encode()), Outcome::Exited { code: 0 });
    let (code, message) = refusal(Shape { nesting: MAX_CONTROL_DEPTH + 1, ..Shape::default() }.encode());
    assert_eq!(code, "nesting_too_deep");
    assert!(
        message.contains(&format!("defined function 0 nests blocks more than {MAX_CONTROL_DEPTH} deep")),
        "{message}"
    );
}

#[test]
fn a_locals_bomb_is_refused() {
    // 8 KB of bytes that would cost Cranelift seconds: 50,000 locals in each of 101 functions.
    let bomb = Shape { functions: 101, locals_per_function: 50_000, ..Shape::default() }.encode();
    assert!(bomb.len() < 10_000);
    let (code, message) = refusal(bomb);
    assert_eq!(code, "too_many_locals");
    assert!(message.contains(&format!("at most {MAX_DECLARED_LOCALS} allowed")), "{message}");
    let fine = Shape { functions: 10, locals_per_function: 50_000, ..Shape::default() }.encode();
    assert_eq!(exited(fine), Outcome::Exited { code: 0 });
}

/// The caps are checked before compiling, so each is tested at the
/// validation step (compiling a module at a cap is what they exist to avoid):
/// exactly at the cap passes, one past it is refused with its code.
#[test]
fn each_compile_cost_cap_holds_exactly_at_its_boundary() {
    let policy = runtime::validate::ImportPolicy {
        filesystem: runtime::validate::Grant::Denied,
        network: runtime::validate::Grant::Denied,
    };
    let validate = |shape: Shape| runtime::validate_module(&shape.encode(), policy, 64 << 20);

    assert!(validate(Shape { functions: MAX_DEFINED_FUNCTIONS, ..Shape::default() }).is_ok());
    assert_eq!(
        validate(Shape { functions: MAX_DEFINED_FUNCTIONS + 1, ..Shape::default() }).unwrap_err(),
        runtime::ValidationError::TooManyFunctions {
            count: u64::from(MAX_DEFINED_FUNCTIONS) + 1,
            max: MAX_DEFINED_FUNCTIONS
        }
    );

    // 100 functions of 50,000 locals (wasmparser's own per-function cap) make
    // exactly the cap; one function more with one local is one past it.
    let per_function = 50_000u32;
    let functions = u32::try_from(MAX_DECLARED_LOCALS / u64::from(per_function)).unwrap();
    assert_eq!(u64::from(functions) * u64::from(per_function), MAX_DECLARED_LOCALS);
    let at_cap = Shape { functions, locals_per_function: per_function, ..Shape::default() };
    assert!(validate(at_cap).is_ok());
    let over =
        Shape { functions, locals_per_function: per_function, extra_function_locals: Some(1), ..Shape::default() };
    assert_eq!(
        validate(over).unwrap_err(),
        runtime::ValidationError::TooManyLocals { count: MAX_DECLARED_LOCALS + 1, max: MAX_DECLARED_LOCALS }
    );

    assert!(validate(Shape { nesting: MAX_CONTROL_DEPTH, ..Shape::default() }).is_ok());
    assert_eq!(
        validate(Shape { nesting: MAX_CONTROL_DEPTH + 1, ..Shape::default() }).unwrap_err(),
        runtime::ValidationError::NestingTooDeep { function: 0, max: MAX_CONTROL_DEPTH }
    );
}

#[test]
fn huge_data_segments_are_bounded_by_memory_and_the_size_cap() {
    // 32 MiB of data into a one-page memory: the segment does not fit, so
    // instantiation traps.
    let report = run_signed(Shape { memory: Some((1, 32 << 20)), ..Shape::default() }.encode(), None).unwrap();
    assert!(
        matches!(&report.run.outcome, Outcome::Trap { kind, .. } if kind == "memory_out_of_bounds"),
        "{:?}",
        report.run.outcome
    );
    // A memory declared larger than the memory cap is stopped before it exists.
    let report = run_signed(Shape { memory: Some((4096, 16)), ..Shape::default() }.encode(), None).unwrap();
    assert!(matches!(&report.run.outcome, Outcome::MemoryLimit { .. }), "{:?}", report.run.outcome);
    // More data than the module cap allows is refused before it is read whole.
    let big = Shape { memory: Some((600, 8 << 20)), ..Shape::default() }.encode();
    let refusal = run_signed(big, Some(4 << 20)).unwrap_err();
    assert_eq!(refusal.reason_code(), "file_too_large", "{refusal}");
}

#[test]
fn a_custom_section_flood_is_linear_and_bounded_by_the_size_cap() {
    let flood = Shape { customs: (100_000, 16), ..Shape::default() }.encode();
    assert_eq!(exited(flood), Outcome::Exited { code: 0 });
    let one_huge = Shape { customs: (1, 48 << 20), ..Shape::default() }.encode();
    assert_eq!(exited(one_huge), Outcome::Exited { code: 0 });
    let over = Shape { customs: (1_000, 8 << 10), ..Shape::default() }.encode();
    let refusal = run_signed(over, Some(4 << 20)).unwrap_err();
    assert_eq!(refusal.reason_code(), "file_too_large", "{refusal}");
}

/// One function: a `br_table` with `targets` entries, or `straight` blocks of
/// arithmetic on locals.
fn one_long_function(targets: u32, straight: u32) -> Vec<u8> {
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    module.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    module.section(&funcs);
    let mut exports = ExportSection::new();
    exports.export("_start", ExportKind::Func, 0);
    module.section(&exports);
    let mut code = CodeSection::new();
    let mut f = Function::new([(4, ValType::I32)]);
    if targets > 0 {
        f.instruction(&Instruction::Block(BlockType::Empty));
        f.instruction(&Instruction::LocalGet(0));
        f.instruction(&Instruction::BrTable(vec![0; targets as usize].into(), 0));
        f.instruction(&Instruction::End);
    }
    for i in 0..straight {
        f.instruction(&Instruction::LocalGet(i % 4));
        f.instruction(&Instruction::LocalGet((i + 1) % 4));
        f.instruction(&Instruction::I32Add);
        f.instruction(&Instruction::LocalSet((i + 2) % 4));
    }
    f.instruction(&Instruction::End);
    code.function(&f);
    module.section(&code);
    module.finish()
}

#[test]
fn a_huge_br_table_and_a_long_function_are_bounded() {
    // Measured: a million br_table targets is refused by Cranelift (its limit
    // is 65,520) in about 0.14 s; a million straight-line additions (7 MB)
    // compiles in about 0.7 s. Neither needs a cap of its own.
    let (code, message) = refusal(one_long_function(1_000_000, 0));
    assert_eq!(code, "compile_failed", "{message}");
    assert!(message.contains("`br_table` has 1000000 targets, which exceeds the implementation limit"), "{message}");
    assert_eq!(exited(one_long_function(0, 1_000_000)), Outcome::Exited { code: 0 });
}
