//! The top-level sections of a core WebAssembly module, walked with
//! `wasmparser` and written with `wasm-encoder`, for the two formats that carry
//! signatures in a custom section: our single-file bundles ([`crate::embed`],
//! section last) and the tool-conventions signatures ([`crate::wasmsig`],
//! section first).
//!
//! Only section headers are read: the code section is skipped whole, so the
//! walk costs one step per section, whatever the module's size.

use std::ops::Range;

use wasm_encoder::Section as _;
use wasmparser::{Chunk, Encoding, Parser, Payload};

/// A custom section found in a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomAt {
    /// Offset of the section's id byte: cutting here removes the section and
    /// everything after it.
    pub start: usize,
    /// The section's data, after its name.
    pub data: Range<usize>,
    /// Offset just past the section.
    pub end: usize,
}

/// Why a file's sections could not be walked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SectionsError {
    #[error("not a WebAssembly module (no \\0asm header for a core module)")]
    NotWasm,
    #[error("section at byte {offset} is truncated or malformed")]
    Malformed { offset: usize },
}

/// The custom sections of a module with one name: how many there are, and
/// the first and last of them. Callers allow at most one, so only those are
/// kept however many an attacker packs in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Named {
    pub count: usize,
    pub first: Option<CustomAt>,
    pub last: Option<CustomAt>,
}

/// Finds the custom sections of `file` named `name`.
pub fn custom_sections(file: &[u8], name: &str) -> Result<Named, SectionsError> {
    if !file.starts_with(b"\0asm") {
        return Err(SectionsError::NotWasm);
    }
    let mut parser = Parser::new(0);
    let mut offset = 0usize;
    let mut found = Named::default();
    loop {
        let malformed = SectionsError::Malformed { offset };
        let Chunk::Parsed { consumed, payload } = parser.parse(&file[offset..], true).map_err(|_| malformed.clone())?
        else {
            // With `eof` set the parser reports truncation as an error; be
            // defensive all the same.
            return Err(malformed);
        };
        let start = offset;
        offset = offset.checked_add(consumed).filter(|o| *o <= file.len()).ok_or(malformed.clone())?;
        match payload {
            Payload::Version { encoding: Encoding::Component, .. } => return Err(SectionsError::NotWasm),
            Payload::CustomSection(reader) if reader.name() == name => {
                let data = reader.data_offset()..reader.data_offset() + reader.data().len();
                let at = CustomAt { start, data, end: offset };
                found.count += 1;
                found.first.get_or_insert_with(|| at.clone());
                found.last = Some(at);
            }
            Payload::CodeSectionStart { size, .. } => {
                // The caller skips the code section's content (wasmparser's contract).
                parser.skip_section();
                offset = offset.checked_add(size as usize).filter(|o| *o <= file.len()).ok_or(malformed)?;
            }
            Payload::End(_) => return Ok(found),
            _ => {}
        }
    }
}

/// The bytes of a custom section named `name` holding `data`.
pub fn custom_section(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + name.len() + 12);
    wasm_encoder::CustomSection { name: name.into(), data: data.into() }.append_to(&mut out);
    out
}

/// A strict unsigned LEB128 of at most 5 bytes, as wasm encodes section sizes
/// and name lengths; returns the value and its length.
pub fn read_leb_u32(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().take(5).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return u32::try_from(value).ok().map(|v| (v, i + 1));
        }
    }
    None
}

/// The id and byte range of each section of a well-formed `file`, for the
/// truncation tests of the formats built on this walker.
#[cfg(test)]
pub(crate) fn section_ranges(file: &[u8]) -> Vec<(u8, Range<usize>)> {
    let mut sections = Vec::new();
    let mut at = 8;
    while at < file.len() {
        let (size, leb) = read_leb_u32(&file[at + 1..]).expect("a well-formed section size");
        let end = at + 1 + leb + size as usize;
        sections.push((file[at], at..end));
        at = end;
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_named_sections_around_a_skipped_code_section() {
        let mut module = wat::parse_str(r#"(module (func (export "f")) (@custom "x" "first"))"#).unwrap();
        module.extend_from_slice(&custom_section("x", b"second"));
        let found = custom_sections(&module, "x").unwrap();
        assert_eq!(found.count, 2);
        let (first, last) = (found.first.unwrap(), found.last.unwrap());
        assert_eq!((&module[first.data], &module[last.data.clone()]), (&b"first"[..], &b"second"[..]));
        assert_eq!(last.end, module.len());
        assert_eq!(&module[last.start..], custom_section("x", b"second"));
    }

    #[test]
    fn truncations_and_garbage_are_errors_not_panics() {
        let mut module = wat::parse_str(r#"(module (func (export "f")))"#).unwrap();
        module.extend_from_slice(&custom_section("x", b"data"));
        for cut in 0..module.len() {
            let result = custom_sections(&module[..cut], "x");
            assert!(result.is_err() || result.as_ref().is_ok_and(|f| f.count == 0), "cut at {cut}: {result:?}");
        }
        assert_eq!(custom_sections(b"MZ", "x"), Err(SectionsError::NotWasm));
        let component = wat::parse_str("(component)").unwrap();
        assert_eq!(custom_sections(&component, "x"), Err(SectionsError::NotWasm));
    }
}
