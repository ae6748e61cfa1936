//! Comparison of signed module bytes with the bytes of a rebuild, for
//! `cargo xtask verify-reproducible`.
//!
//! "The hashes differ" is true but useless; the report says where: the first
//! differing byte, which wasm sections differ and by how much, which function
//! bodies changed (named from the `name` section when there is one), machine
//! paths that leaked into data or custom sections (the usual cause), and how
//! the recorded provenance differs from the rebuild's (the usual explanation).
//!
//! [`RebuildReport`] and the structs inside it are serialize-only: they are the
//! documented `--json` output of `verify-reproducible`.

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use signer::manifest::Provenance;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use wasmparser::{KnownCustom, Name, Parser, Payload, TypeRef};

/// Byte strings that betray a machine path when found inside a module.
pub const MACHINE_PATH_MARKERS: &[&str] =
    &["/home/", "/root/", "/tmp/", "/work/", "/Users/", "C:\\", ".cargo/registry", ".cargo/git", ".rustup/toolchains"];

/// At most this many differing functions are listed; the count is always exact.
pub const MAX_LISTED_FUNCTIONS: usize = 200;

/// Hash and size of one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Digest {
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

impl Digest {
    /// Digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self { sha256: hex::encode(Sha256::digest(bytes)), size: bytes.len() as u64 }
    }
}

/// One top-level section, compared across the two modules. Sections are
/// matched by name (custom sections by their own name) and occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionComparison {
    /// Section id: 0 for custom sections, 1–13 for the standard ones.
    pub id: u8,
    /// `type`, `import`, `code`, `data`, …, or `custom:<name>`; a second
    /// section of the same name gets `#2`.
    pub name: String,
    /// Content size in the expected module, absent when it has no such section.
    pub expected_size: Option<u64>,
    /// Content size in the rebuilt module, absent when it has no such section.
    pub actual_size: Option<u64>,
    /// `actual_size - expected_size`, a missing section counting as 0.
    pub size_delta: i64,
    /// Whether the contents are byte-for-byte equal.
    pub equal: bool,
}

/// A defined function whose body differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionDifference {
    /// Index in the function index space (imported functions come first).
    pub index: u32,
    /// Name from the `name` section of either module, when present.
    pub name: Option<String>,
    /// Body size in the expected module, absent when it has fewer functions.
    pub expected_size: Option<u64>,
    /// Body size in the rebuilt module, absent when it has fewer functions.
    pub actual_size: Option<u64>,
}

/// Which module a finding is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The rebuilt module.
    Actual,
    /// Both (they are identical).
    Both,
    /// The expected (signed) module.
    Expected,
}

/// A machine path found in a data or custom section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmbeddedPath {
    pub side: Side,
    /// The section it is in, named as in [`SectionComparison::name`].
    pub section: String,
    /// File offset of the start of the printable string holding the path.
    pub offset: u64,
    /// The printable string holding the path (at most 256 bytes).
    pub text: String,
}

/// A provenance field whose recorded value is not what the rebuild used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvenanceDifference {
    /// Field name in [`Provenance`].
    pub field: &'static str,
    pub recorded: String,
    pub rebuilt: String,
}

/// The comparison of expected and rebuilt module bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    /// Whether the bytes are identical; everything else explains a `false`.
    pub identical: bool,
    pub expected: Digest,
    pub actual: Digest,
    /// Offset of the first differing byte (the shorter length when one module
    /// is a prefix of the other); absent when identical.
    pub first_difference_offset: Option<u64>,
    /// Every section of either module, in the order of the expected module
    /// with sections only the rebuild has at the end.
    pub sections: Vec<SectionComparison>,
    /// Number of defined functions whose bodies differ.
    pub differing_function_count: usize,
    /// The first [`MAX_LISTED_FUNCTIONS`] of them, by index.
    pub functions: Vec<FunctionDifference>,
    /// Machine paths inside the modules (reported even when identical).
    pub embedded_paths: Vec<EmbeddedPath>,
    /// Provenance fields that differ; empty when the rebuild matched the record.
    pub provenance: Vec<ProvenanceDifference>,
    /// Why part of the analysis could not be done, e.g. bytes that are not wasm.
    pub notes: Vec<String>,
}

/// Module bytes with the provenance they were (or are claimed to be) built with.
#[derive(Debug, Clone, Copy)]
pub struct Artifact<'a> {
    pub bytes: &'a [u8],
    pub provenance: &'a Provenance,
}

/// Compares the expected module with the rebuilt one.
pub fn compare(expected: Artifact<'_>, actual: Artifact<'_>) -> RebuildReport {
    let identical = expected.bytes == actual.bytes;
    let mut notes = Vec::new();
    let expected_sections = sections_or_note(expected.bytes, "expected", &mut notes);
    let actual_sections = sections_or_note(actual.bytes, "rebuilt", &mut notes);

    let mut embedded_paths = Vec::new();
    if identical {
        embedded_paths.extend(find_embedded_paths(&expected_sections, Side::Both));
    } else {
        embedded_paths.extend(find_embedded_paths(&expected_sections, Side::Expected));
        embedded_paths.extend(find_embedded_paths(&actual_sections, Side::Actual));
    }

    let (differing_function_count, functions) = if identical {
        (0, Vec::new())
    } else {
        match (function_bodies(expected.bytes), function_bodies(actual.bytes)) {
            (Ok(expected), Ok(actual)) => diff_functions(&expected, &actual),
            (Err(e), _) | (_, Err(e)) => {
                notes.push(format!("function bodies not compared: {e}"));
                (0, Vec::new())
            }
        }
    };

    RebuildReport {
        identical,
        expected: Digest::of(expected.bytes),
        actual: Digest::of(actual.bytes),
        first_difference_offset: first_difference(expected.bytes, actual.bytes),
        sections: compare_sections(&expected_sections, &actual_sections),
        differing_function_count,
        functions,
        embedded_paths,
        provenance: diff_provenance(expected.provenance, actual.provenance),
        notes,
    }
}

/// Offset of the first byte that differs, or `None` when the slices are equal.
pub fn first_difference(expected: &[u8], actual: &[u8]) -> Option<u64> {
    if expected == actual {
        return None;
    }
    let common = expected.iter().zip(actual).position(|(a, b)| a != b);
    Some(common.unwrap_or(expected.len().min(actual.len())) as u64)
}

/// The provenance fields that differ between the record and the rebuild.
pub fn diff_provenance(recorded: &Provenance, rebuilt: &Provenance) -> Vec<ProvenanceDifference> {
    let flags = |p: &Provenance| serde_json::to_string(&p.build_flags).unwrap_or_else(|_| p.build_flags.join(" "));
    let fields = [
        ("toolchain", recorded.toolchain.clone(), rebuilt.toolchain.clone()),
        ("cargo_lock_sha256", recorded.cargo_lock_sha256.clone(), rebuilt.cargo_lock_sha256.clone()),
        ("source_tree_sha256", recorded.source_tree_sha256.clone(), rebuilt.source_tree_sha256.clone()),
        ("build_flags", flags(recorded), flags(rebuilt)),
        ("source_date_epoch", recorded.source_date_epoch.to_string(), rebuilt.source_date_epoch.to_string()),
        ("commit", recorded.commit.clone(), rebuilt.commit.clone()),
    ];
    fields
        .into_iter()
        .filter(|(_, recorded, rebuilt)| recorded != rebuilt)
        .map(|(field, recorded, rebuilt)| ProvenanceDifference { field, recorded, rebuilt })
        .collect()
}

/// A top-level section as it sits in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawSection<'a> {
    id: u8,
    /// Unique name: see [`SectionComparison::name`].
    name: String,
    /// File offset of `content`.
    offset: usize,
    /// The section's content (for a custom section, including its name).
    content: &'a [u8],
}

fn sections_or_note<'a>(bytes: &'a [u8], side: &str, notes: &mut Vec<String>) -> Vec<RawSection<'a>> {
    match raw_sections(bytes) {
        Ok(sections) => sections,
        Err(e) => {
            notes.push(format!("the {side} module is not a readable wasm binary: {e}"));
            Vec::new()
        }
    }
}

/// Splits a wasm binary into its top-level sections without interpreting
/// them, so that even a module wasmparser would reject can be compared.
fn raw_sections(bytes: &[u8]) -> Result<Vec<RawSection<'_>>, String> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err("no \\0asm header".to_owned());
    }
    let mut sections: Vec<RawSection<'_>> = Vec::new();
    let mut occurrences: BTreeMap<String, usize> = BTreeMap::new();
    let mut position = 8;
    while position < bytes.len() {
        let id = bytes[position];
        let (size, leb_len) = read_leb_u32(&bytes[position + 1..])
            .ok_or_else(|| format!("bad section size at offset {}", position + 1))?;
        let offset = position + 1 + leb_len;
        let end = offset
            .checked_add(size as usize)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| format!("section at offset {position} runs past the end"))?;
        let content = &bytes[offset..end];
        let base = match id {
            0 => format!("custom:{}", custom_section_name(content).unwrap_or("?")),
            _ => standard_section_name(id).to_owned(),
        };
        let count = occurrences.entry(base.clone()).or_insert(0);
        *count += 1;
        let name = if *count == 1 { base } else { format!("{base}#{count}") };
        sections.push(RawSection { id, name, offset, content });
        position = end;
    }
    Ok(sections)
}

use signer::sections::read_leb_u32;

fn custom_section_name(content: &[u8]) -> Option<&str> {
    let (len, leb_len) = read_leb_u32(content)?;
    let name = content.get(leb_len..leb_len.checked_add(len as usize)?)?;
    std::str::from_utf8(name).ok()
}

fn standard_section_name(id: u8) -> &'static str {
    match id {
        1 => "type",
        2 => "import",
        3 => "function",
        4 => "table",
        5 => "memory",
        6 => "global",
        7 => "export",
        8 => "start",
        9 => "element",
        10 => "code",
        11 => "data",
        12 => "datacount",
        13 => "tag",
        _ => "unknown",
    }
}

fn compare_sections(expected: &[RawSection<'_>], actual: &[RawSection<'_>]) -> Vec<SectionComparison> {
    let size = |s: &RawSection<'_>| s.content.len() as u64;
    let mut comparisons = Vec::new();
    for section in expected {
        let other = actual.iter().find(|a| a.name == section.name);
        let actual_size = other.map(size);
        comparisons.push(SectionComparison {
            id: section.id,
            name: section.name.clone(),
            expected_size: Some(size(section)),
            actual_size,
            size_delta: actual_size.unwrap_or(0) as i64 - size(section) as i64,
            equal: other.is_some_and(|o| o.content == section.content),
        });
    }
    for section in actual.iter().filter(|a| !expected.iter().any(|e| e.name == a.name)) {
        comparisons.push(SectionComparison {
            id: section.id,
            name: section.name.clone(),
            expected_size: None,
            actual_size: Some(size(section)),
            size_delta: size(section) as i64,
            equal: false,
        });
    }
    comparisons
}

/// Finds [`MACHINE_PATH_MARKERS`] in the payloads of data segments and custom
/// sections.
fn find_embedded_paths(sections: &[RawSection<'_>], side: Side) -> Vec<EmbeddedPath> {
    let mut found: Vec<EmbeddedPath> = Vec::new();
    for section in sections {
        for (region_offset, region) in scanned_regions(section) {
            for marker in MACHINE_PATH_MARKERS {
                let needle = marker.as_bytes();
                let mut from = 0;
                while let Some(at) = find(&region[from..], needle) {
                    let hit = from + at;
                    let (start, end) = printable_run(region, hit, hit + needle.len());
                    let offset = (region_offset + start) as u64;
                    if !found.iter().any(|f| f.section == section.name && f.offset == offset) {
                        found.push(EmbeddedPath {
                            side,
                            section: section.name.clone(),
                            offset,
                            text: String::from_utf8_lossy(&region[start..end]).into_owned(),
                        });
                    }
                    from = end.max(hit + 1);
                }
            }
        }
    }
    found.sort_by_key(|f| f.offset);
    found
}

/// The byte regions of a section that can hold strings, with their file
/// offsets: each data segment's bytes, a custom section's payload after its
/// name. Segment headers are left out so that a length byte that happens to be
/// printable does not join the string after it.
fn scanned_regions<'a>(section: &RawSection<'a>) -> Vec<(usize, &'a [u8])> {
    match section.id {
        0 => {
            let Some((len, leb_len)) = read_leb_u32(section.content) else { return Vec::new() };
            let start = (leb_len + len as usize).min(section.content.len());
            vec![(section.offset + start, &section.content[start..])]
        }
        11 => {
            let reader = wasmparser::BinaryReader::new(section.content, section.offset);
            let segments = wasmparser::DataSectionReader::new(reader)
                .and_then(|segments| segments.into_iter().collect::<Result<Vec<_>, _>>());
            match segments {
                Ok(segments) => segments.into_iter().map(|d| (d.range.end - d.data.len(), d.data)).collect(),
                // An unreadable data section is still searched, as a whole.
                Err(_) => vec![(section.offset, section.content)],
            }
        }
        _ => Vec::new(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// The printable-ASCII run around `[start, end)`, at most 256 bytes long.
fn printable_run(bytes: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    const MAX: usize = 256;
    let printable = |b: u8| (0x20..0x7f).contains(&b);
    while start > 0 && printable(bytes[start - 1]) && end - start < MAX {
        start -= 1;
    }
    while end < bytes.len() && printable(bytes[end]) && end - start < MAX {
        end += 1;
    }
    (start, end)
}

/// The defined function bodies of a core module, with function names.
#[derive(Debug, Default)]
struct FunctionBodies<'a> {
    imported: u32,
    bodies: Vec<&'a [u8]>,
    names: BTreeMap<u32, String>,
}

fn function_bodies(bytes: &[u8]) -> Result<FunctionBodies<'_>, String> {
    let mut functions = FunctionBodies::default();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| e.to_string())? {
            Payload::Version { encoding: wasmparser::Encoding::Component, .. } => {
                return Err("components are not analysed, only core modules".to_owned());
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| e.to_string())?;
                    if matches!(import.ty, TypeRef::Func(_) | TypeRef::FuncExact(_)) {
                        functions.imported += 1;
                    }
                }
            }
            Payload::CodeSectionEntry(body) => functions.bodies.push(body.as_bytes()),
            Payload::CustomSection(reader) => {
                if let KnownCustom::Name(names) = reader.as_known() {
                    // A malformed name section only costs us the names.
                    for subsection in names.into_iter().flatten() {
                        if let Name::Function(map) = subsection {
                            for naming in map.into_iter().flatten() {
                                functions.names.insert(naming.index, naming.name.to_owned());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(functions)
}

fn diff_functions(expected: &FunctionBodies<'_>, actual: &FunctionBodies<'_>) -> (usize, Vec<FunctionDifference>) {
    let mut count = 0;
    let mut listed = Vec::new();
    for position in 0..expected.bodies.len().max(actual.bodies.len()) {
        let expected_body = expected.bodies.get(position);
        let actual_body = actual.bodies.get(position);
        if expected_body == actual_body {
            continue;
        }
        count += 1;
        if listed.len() < MAX_LISTED_FUNCTIONS {
            // Index spaces only line up when both import the same number of
            // functions; the expected module's numbering is the reference.
            let index = expected.imported + position as u32;
            let actual_index = actual.imported + position as u32;
            let name = expected.names.get(&index).or_else(|| actual.names.get(&actual_index)).cloned();
            listed.push(FunctionDifference {
                index,
                name,
                expected_size: expected_body.map(|b| b.len() as u64),
                actual_size: actual_body.map(|b| b.len() as u64),
            });
        }
    }
    (count, listed)
}

/// The report as text for a person; `title` names the module.
pub fn render_human(title: &str, report: &RebuildReport) -> String {
    let mut out = String::new();
    let short = |sha: &str| sha.get(..16).unwrap_or(sha).to_owned();
    if report.identical {
        let _ =
            writeln!(out, "{title}: reproducible (sha256 {}, {} bytes)", report.expected.sha256, report.expected.size);
    } else {
        let _ = writeln!(out, "{title}: NOT reproducible");
        let _ = writeln!(out, "  expected  sha256 {}  {} bytes", report.expected.sha256, report.expected.size);
        let _ = writeln!(out, "  rebuilt   sha256 {}  {} bytes", report.actual.sha256, report.actual.size);
        if let Some(offset) = report.first_difference_offset {
            let _ = writeln!(out, "  first difference at byte {offset} (0x{offset:x})");
        }
        let differing: Vec<&SectionComparison> = report.sections.iter().filter(|s| !s.equal).collect();
        if !differing.is_empty() {
            let _ = writeln!(out, "  sections that differ:");
            for s in differing {
                let size = |v: Option<u64>| v.map_or_else(|| "absent".to_owned(), |v| v.to_string());
                let _ = writeln!(
                    out,
                    "    {:<24} expected {:>8}  rebuilt {:>8}  ({:+})",
                    s.name,
                    size(s.expected_size),
                    size(s.actual_size),
                    s.size_delta
                );
            }
        }
        if report.differing_function_count > 0 {
            let _ = writeln!(out, "  function bodies that differ: {}", report.differing_function_count);
            for f in report.functions.iter().take(20) {
                let size = |v: Option<u64>| v.map_or_else(|| "absent".to_owned(), |v| v.to_string());
                let name = f.name.as_deref().unwrap_or("(no name section)");
                let _ = writeln!(
                    out,
                    "    #{:<6} {name}  {} -> {} bytes",
                    f.index,
                    size(f.expected_size),
                    size(f.actual_size)
                );
            }
            if report.differing_function_count > 20 {
                let _ = writeln!(out, "    … and {} more (see --json)", report.differing_function_count - 20);
            }
        }
    }
    if !report.embedded_paths.is_empty() {
        let _ = writeln!(out, "  machine paths embedded in the module:");
        for p in &report.embedded_paths {
            let side = match p.side {
                Side::Actual => "rebuilt ",
                Side::Both => "both    ",
                Side::Expected => "expected",
            };
            let _ = writeln!(out, "    {side} {} @0x{:x}: {:?}", p.section, p.offset, p.text);
        }
    }
    if !report.provenance.is_empty() {
        let _ = writeln!(out, "  provenance differences (recorded -> rebuilt):");
        for d in &report.provenance {
            let value = |v: &str| if v.len() == 64 { short(v) + "…" } else { v.to_owned() };
            let _ = writeln!(out, "    {}: {:?} -> {:?}", d.field, value(&d.recorded), value(&d.rebuilt));
        }
    }
    for note in &report.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(body_constant: i32, message: &str) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module
                (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
                (memory (export "memory") 1)
                (data (i32.const 16) "{message}")
                (func $helper (result i32) i32.const 7)
                (func $compute (export "compute") (result i32) i32.const {body_constant})
                (func $_start (export "_start") call $compute drop)
            )"#
        ))
        .unwrap()
    }

    fn provenance() -> Provenance {
        Provenance {
            toolchain: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
            cargo_lock_sha256: "a".repeat(64),
            source_tree_sha256: "b".repeat(64),
            build_flags: vec!["--release".into()],
            source_date_epoch: 1_700_000_000,
            commit: "c".repeat(40),
        }
    }

    #[test]
    fn identical_modules_give_a_clean_report() {
        let bytes = module(42, "hello");
        let p = provenance();
        let report = compare(Artifact { bytes: &bytes, provenance: &p }, Artifact { bytes: &bytes, provenance: &p });
        assert!(report.identical);
        assert_eq!(report.first_difference_offset, None);
        assert!(report.sections.iter().all(|s| s.equal && s.size_delta == 0));
        assert_eq!(report.differing_function_count, 0);
        assert!(report.embedded_paths.is_empty());
        assert!(report.provenance.is_empty());
        assert!(report.notes.is_empty());
        assert!(render_human("m", &report).starts_with("m: reproducible"));
    }

    #[test]
    fn a_planted_code_change_names_the_code_section_and_the_function() {
        let expected = module(42, "hello");
        let actual = module(4242, "hello");
        let p = provenance();
        let report =
            compare(Artifact { bytes: &expected, provenance: &p }, Artifact { bytes: &actual, provenance: &p });
        assert!(!report.identical);
        let differing: Vec<&str> = report.sections.iter().filter(|s| !s.equal).map(|s| s.name.as_str()).collect();
        assert_eq!(differing, ["code"], "names and data are unchanged");
        let code = report.sections.iter().find(|s| s.name == "code").unwrap();
        assert_eq!(code.size_delta, 1, "i32.const 4242 takes one more LEB byte than 42");
        assert_eq!(report.differing_function_count, 1);
        // Index 2: one imported function, then $helper (1), then $compute (2).
        assert_eq!(
            report.functions,
            [FunctionDifference {
                index: 2,
                name: Some("compute".into()),
                expected_size: Some(4),
                actual_size: Some(5)
            }]
        );
        let offset = report.first_difference_offset.unwrap() as usize;
        assert_ne!(expected[offset], actual[offset]);
        assert_eq!(expected[..offset], actual[..offset]);
        let text = render_human("m", &report);
        assert!(text.contains("NOT reproducible") && text.contains("#2      compute"), "{text}");
    }

    #[test]
    fn a_leaked_path_in_data_is_found_and_the_function_list_stays_empty() {
        let expected = module(42, "panicked at /nightcore/modules/hello/src/main.rs");
        let actual = module(42, "panicked at /home/alice/src/hello/src/main.rs:3");
        let p = provenance();
        let report =
            compare(Artifact { bytes: &expected, provenance: &p }, Artifact { bytes: &actual, provenance: &p });
        assert!(!report.identical);
        let data = report.sections.iter().find(|s| s.name == "data").unwrap();
        assert!(!data.equal);
        assert_eq!(data.size_delta, actual.len() as i64 - expected.len() as i64);
        assert!(report.sections.iter().filter(|s| s.name != "data").all(|s| s.equal), "{:?}", report.sections);
        assert_eq!(report.differing_function_count, 0);
        assert_eq!(report.embedded_paths.len(), 1, "{:?}", report.embedded_paths);
        let leak = &report.embedded_paths[0];
        assert_eq!((leak.side, leak.section.as_str()), (Side::Actual, "data"));
        assert_eq!(leak.text, "panicked at /home/alice/src/hello/src/main.rs:3");
        assert_eq!(&actual[leak.offset as usize..leak.offset as usize + 8], b"panicked");
    }

    #[test]
    fn custom_sections_are_compared_by_name() {
        let mut expected = module(42, "x");
        let mut actual = expected.clone();
        // Append a custom section `producers-like` to each, with different contents.
        for (bytes, content) in
            [(&mut expected, b"/root/.cargo/registry/x".as_slice()), (&mut actual, b"clean".as_slice())]
        {
            let name = b"notes";
            let mut section = vec![name.len() as u8];
            section.extend_from_slice(name);
            section.extend_from_slice(content);
            bytes.push(0);
            bytes.push(section.len() as u8);
            bytes.extend_from_slice(&section);
        }
        let p = provenance();
        let report =
            compare(Artifact { bytes: &expected, provenance: &p }, Artifact { bytes: &actual, provenance: &p });
        let notes = report.sections.iter().find(|s| s.name == "custom:notes").unwrap();
        assert_eq!((notes.id, notes.equal, notes.size_delta), (0, false, -18));
        assert_eq!(report.differing_function_count, 0);
        assert_eq!(report.embedded_paths.len(), 1);
        assert_eq!(report.embedded_paths[0].side, Side::Expected);
        assert_eq!(report.embedded_paths[0].section, "custom:notes");
        assert_eq!(report.embedded_paths[0].text, "/root/.cargo/registry/x");
    }

    #[test]
    fn an_extra_function_and_a_missing_section_are_reported() {
        let expected = wat::parse_str("(module (func $a) (func $b))").unwrap();
        let actual = wat::parse_str("(module (memory 1) (func $a) (func $b) (func $c i32.const 1 drop))").unwrap();
        let p = provenance();
        let report =
            compare(Artifact { bytes: &expected, provenance: &p }, Artifact { bytes: &actual, provenance: &p });
        let memory = report.sections.iter().find(|s| s.name == "memory").unwrap();
        assert_eq!((memory.expected_size, memory.equal), (None, false));
        assert_eq!(report.differing_function_count, 1);
        assert_eq!(report.functions[0].index, 2);
        assert_eq!(report.functions[0].name.as_deref(), Some("c"));
        assert_eq!(report.functions[0].expected_size, None);
    }

    #[test]
    fn bytes_that_are_not_wasm_still_get_hashes_and_a_note() {
        let p = provenance();
        let report =
            compare(Artifact { bytes: b"not wasm", provenance: &p }, Artifact { bytes: b"not wasm!", provenance: &p });
        assert!(!report.identical);
        assert_eq!(report.first_difference_offset, Some(8));
        assert!(
            report.notes.iter().any(|n| n.contains("expected module is not a readable wasm binary")),
            "{:?}",
            report.notes
        );
        assert_eq!(report.expected.size, 8);
    }

    #[test]
    fn provenance_differences_name_the_field_and_both_values() {
        let recorded = provenance();
        let mut rebuilt = provenance();
        rebuilt.commit = "d".repeat(40);
        rebuilt.build_flags.push("--locked".into());
        let diff = diff_provenance(&recorded, &rebuilt);
        assert_eq!(diff.len(), 2);
        assert_eq!(diff[0].field, "build_flags");
        assert_eq!(diff[0].recorded, r#"["--release"]"#);
        assert_eq!(diff[0].rebuilt, r#"["--release","--locked"]"#);
        assert_eq!((diff[1].field, diff[1].rebuilt.as_str()), ("commit", "d".repeat(40).as_str()));
    }

    #[test]
    fn first_difference_handles_prefixes() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"ab", b"abc"), Some(2));
    }

    #[test]
    fn the_json_shape_is_stable() {
        let bytes = module(1, "x");
        let p = provenance();
        let report = compare(Artifact { bytes: &bytes, provenance: &p }, Artifact { bytes: &bytes, provenance: &p });
        let json = serde_json::to_value(&report).unwrap();
        let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "actual",
                "differing_function_count",
                "embedded_paths",
                "expected",
                "first_difference_offset",
                "functions",
                "identical",
                "notes",
                "provenance",
                "sections"
            ]
        );
        assert_eq!(json["sections"][0]["name"], "type");
    }
}
