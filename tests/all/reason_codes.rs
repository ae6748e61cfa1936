//! The registry of reason codes: every arm of every `reason_code()` in the
//! product crates, read from the source and pinned in one snapshot.
//!
//! Reason codes are an interface (`--json`, audit events, exit-code tables in
//! pipelines) that the docs call stable. A code renamed, dropped, merged into
//! another or moved to a different variant changes the snapshot, so it cannot
//! happen without a reviewed change to `snapshots/all__reason_codes__registry.snap`.
//! Each enum's match has no wildcard arm over its own variants, so a new
//! variant cannot compile without a code, and then appears here.

use std::collections::BTreeMap;
use std::path::Path;

/// One arm of a `reason_code()` match: the pattern and what it yields (a
/// code, or the inner error whose code it passes on).
#[derive(Debug)]
struct Arm {
    pattern: String,
    yields: Yield,
}

#[derive(Debug, PartialEq, Eq)]
enum Yield {
    Code(String),
    Delegated(String),
}

/// The `impl` a line at byte `at` of `text` belongs to: the type name of the
/// nearest `impl Name {` before it.
fn impl_name(text: &str, at: usize) -> String {
    let line = text[..at].lines().rev().find(|l| l.starts_with("impl ")).expect("reason_code outside an impl");
    let name = line.trim_start_matches("impl ").trim_end_matches(" {");
    name.rsplit(" for ").next().unwrap().split('<').next().unwrap().trim().to_string()
}

/// The arms of the `match` in the function body starting at `body`.
fn arms(body: &str) -> Vec<Arm> {
    // The body is `{ match self { ARMS } }`: take what is between the match's
    // braces, then split it into arms at the commas that end a line.
    let open = body.find("match self {").expect("reason_code is one match on self") + "match self {".len();
    let mut depth = 1usize;
    let mut close = open;
    for (i, c) in body[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = open + i;
                    break;
                }
            }
            _ => {}
        }
    }
    let mut arms = Vec::new();
    let mut pending = String::new();
    for line in body[open..close].lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("//")) {
        pending.push_str(line);
        pending.push(' ');
        if !line.ends_with(',') {
            continue;
        }
        let arm = std::mem::take(&mut pending);
        let (pattern, result) = arm.split_once("=>").unwrap_or_else(|| panic!("an arm without =>: {arm}"));
        let result = result.trim().trim_end_matches(',').trim();
        let yields = if let Some(code) = result.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Yield::Code(code.to_string())
        } else if let Some(inner) = result.strip_suffix(".reason_code()") {
            Yield::Delegated(inner.to_string())
        } else {
            panic!("an arm that yields neither a literal code nor an inner error's code: {arm}");
        };
        arms.push(Arm { pattern: pattern.split_whitespace().collect::<Vec<_>>().join(" "), yields });
    }
    assert!(pending.trim().is_empty(), "an unterminated arm: {pending}");
    arms
}

/// `SomeVariant` as serde's `rename_all = "snake_case"` spells it.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The codes of enums whose JSON names its variants
/// (`#[serde(tag = "…", rename_all = "snake_case")]`, the audit crate's way):
/// one arm per variant, the variant's name being the code.
fn serde_tagged(text: &str) -> Vec<(String, Vec<Arm>)> {
    let mut found = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(tag) =
            line.strip_prefix("#[serde(tag = \"").and_then(|r| r.strip_suffix("\", rename_all = \"snake_case\")]"))
        else {
            continue;
        };
        let Some((at, name)) = lines[i..].iter().enumerate().find_map(|(j, l)| {
            l.strip_prefix("pub enum ").map(|rest| (i + j, rest.trim_end_matches(" {").to_string()))
        }) else {
            continue;
        };
        let mut arms = Vec::new();
        for variant in lines[at + 1..].iter().take_while(|l| **l != "}") {
            let Some(rest) = variant.strip_prefix("    ").filter(|r| r.starts_with(|c: char| c.is_ascii_uppercase()))
            else {
                continue;
            };
            let ident: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            arms.push(Arm { pattern: format!("{name}::{ident}"), yields: Yield::Code(snake_case(&ident)) });
        }
        found.push((format!("{name} (serde tag \"{tag}\")"), arms));
    }
    found
}

/// Every `reason_code()` and every serde-tagged error enum of the product
/// crates, by `crate/file: Type`.
fn registry() -> BTreeMap<String, Vec<Arm>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for product in ["signer", "audit", "runtime", "guardian", "xtask"] {
        crate::tidy::rust_files(&root.join(product).join("src"), &mut files);
    }
    let mut registry = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("pub fn reason_code(&self) -> &'static str {") {
            let owner = impl_name(&text, at);
            let relative = file.strip_prefix(root).unwrap().display().to_string();
            let arms = arms(&text[at..]);
            assert!(!arms.is_empty(), "{relative}: {owner}::reason_code has no arms");
            registry.insert(format!("{relative}: {owner}"), arms);
        }
        for (owner, arms) in serde_tagged(&text) {
            let relative = file.strip_prefix(root).unwrap().display().to_string();
            assert!(!arms.is_empty(), "{relative}: {owner} has no variants");
            registry.insert(format!("{relative}: {owner}"), arms);
        }
    }
    registry
}

#[test]
fn every_code_is_snake_case() {
    let registry = registry();
    assert!(registry.len() >= 20, "found only {} registries: {:?}", registry.len(), registry.keys());
    for (owner, arms) in &registry {
        for arm in arms {
            let Yield::Code(code) = &arm.yields else { continue };
            assert!(
                code.starts_with(|c: char| c.is_ascii_lowercase())
                    && code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{owner}: {code:?} is not a snake_case code"
            );
        }
    }
}

#[test]
fn the_registry_is_pinned() {
    let mut table = String::new();
    for (owner, arms) in registry() {
        table.push_str(&format!("{owner}\n"));
        for arm in arms {
            match arm.yields {
                Yield::Code(code) => table.push_str(&format!("    {code:<34} {}\n", arm.pattern)),
                Yield::Delegated(inner) => {
                    table.push_str(&format!("    {:<34} {}\n", format!("<{inner}'s code>"), arm.pattern))
                }
            }
        }
    }
    insta::assert_snapshot!("registry", table);
}
