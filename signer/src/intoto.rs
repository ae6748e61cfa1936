//! in-toto statements beside bundles: where the DSSE envelope of a bundle's
//! build provenance lives, and the check the offline signer makes before it
//! adds its signature to one (`signer sign`).
//!
//! The statement itself (a SLSA provenance predicate) is written and judged
//! in full by `cargo xtask sign` and `verify-reproducible`; an offline signer
//! has neither the source nor the toolchain to judge the recorded inputs, but
//! it must never sign a statement about other bytes than the module it
//! approves.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::dsse::{Envelope, MAX_ENVELOPE_BYTES};
use crate::fsutil::{ReadCappedError, read_capped};

/// Appended to the bundle directory's name to give the statement's file:
/// `dist/hello/1/` has `dist/hello/1.intoto.json`. Outside the bundle, whose
/// layout the guardian watches.
pub const ENVELOPE_SUFFIX: &str = ".intoto.json";
/// The DSSE payload type of in-toto statements.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// `<bundle dir>.intoto.json`. A path without a last name (`.`, `..`,
/// `hello/1/..`) is made absolute and normalised first, so the statement
/// never lands inside a bundle as `./.intoto.json`.
pub fn envelope_path(bundle_dir: &Path) -> PathBuf {
    let named = |p: &Path| p.file_name().is_some() && !p.ends_with("..");
    let dir = if named(bundle_dir) {
        bundle_dir.to_path_buf()
    } else {
        let absolute = std::path::absolute(bundle_dir).unwrap_or_else(|_| bundle_dir.to_path_buf());
        let mut normal = PathBuf::new();
        for part in absolute.components() {
            match part {
                std::path::Component::ParentDir => {
                    normal.pop();
                }
                std::path::Component::CurDir => {}
                other => normal.push(other),
            }
        }
        normal
    };
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.with_file_name(format!("{name}{ENVELOPE_SUFFIX}"))
}

/// What is beside a bundle.
#[derive(Debug)]
pub enum Found {
    /// No statement file.
    Missing,
    /// A file that is not a DSSE envelope (or too large, or not a regular file).
    Unreadable {
        reason: &'static str,
        error: String,
    },
    Envelope(Envelope),
}

/// Reads the statement beside `bundle_dir`, size-capped; only I/O errors
/// other than "not found" are errors.
pub fn read_envelope(bundle_dir: &Path) -> Result<Found, ReadCappedError> {
    let path = envelope_path(bundle_dir);
    let bytes = match read_capped(&path, MAX_ENVELOPE_BYTES as u64) {
        Ok(bytes) => bytes,
        Err(ReadCappedError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Found::Missing);
        }
        Err(e @ ReadCappedError::TooLarge { .. }) => {
            return Ok(Found::Unreadable { reason: "envelope_too_large", error: e.to_string() });
        }
        Err(e @ ReadCappedError::NotAFile { .. }) => {
            return Ok(Found::Unreadable { reason: "not_a_file", error: e.to_string() });
        }
        Err(e) => return Err(e),
    };
    Ok(match Envelope::from_json_bytes(&bytes) {
        Ok(envelope) => Found::Envelope(envelope),
        Err(e) => Found::Unreadable { reason: e.reason_code(), error: e.to_string() },
    })
}

/// Why an envelope is not a statement about a given module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    #[error("envelope payload type {found:?} is not {PAYLOAD_TYPE:?}")]
    PayloadType { found: String },
    #[error("payload is not an in-toto statement v1: {0}")]
    NotAStatement(String),
    #[error("the statement is about {found:?}, not about module sha256 {expected}")]
    OtherSubject { expected: String, found: Vec<String> },
}

#[derive(Deserialize)]
struct StatementHead {
    #[serde(rename = "_type")]
    statement_type: String,
    subject: Vec<Subject>,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// Checks that `envelope` holds an in-toto statement whose one subject is the
/// module with SHA-256 `module_sha256` (lower-case hex).
pub fn check_subject(envelope: &Envelope, module_sha256: &str) -> Result<(), SubjectError> {
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(SubjectError::PayloadType { found: envelope.payload_type.chars().take(200).collect() });
    }
    let head: StatementHead =
        serde_json::from_slice(&envelope.payload).map_err(|e| SubjectError::NotAStatement(e.to_string()))?;
    if head.statement_type != STATEMENT_TYPE {
        return Err(SubjectError::NotAStatement(format!("_type is {:?}", head.statement_type)));
    }
    let found: Vec<String> =
        head.subject.iter().map(|s| s.digest.get("sha256").cloned().unwrap_or_else(|| "no sha256".into())).collect();
    if found != [module_sha256] {
        return Err(SubjectError::OtherSubject { expected: module_sha256.to_owned(), found });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(payload: &str) -> Envelope {
        Envelope::new(PAYLOAD_TYPE, payload.as_bytes().to_vec())
    }

    #[test]
    fn the_path_sits_beside_the_bundle() {
        assert_eq!(envelope_path(Path::new("dist/hello/1")), Path::new("dist/hello/1.intoto.json"));
        assert_eq!(envelope_path(Path::new("dist/hello/1/")), Path::new("dist/hello/1.intoto.json"));
        let here = std::env::current_dir().unwrap();
        let beside = |p: &Path| p.with_file_name(format!("{}.intoto.json", p.file_name().unwrap().to_string_lossy()));
        assert_eq!(envelope_path(Path::new(".")), beside(&here));
        assert_eq!(envelope_path(Path::new("..")), beside(here.parent().unwrap()));
        assert_eq!(envelope_path(Path::new("a/..")), beside(&here));
    }

    #[test]
    fn only_a_statement_about_exactly_this_module_passes() {
        let ok = r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"m","digest":{"sha256":"aa"}}]}"#;
        assert_eq!(check_subject(&envelope(ok), "aa"), Ok(()));
        assert!(matches!(check_subject(&envelope(ok), "bb"), Err(SubjectError::OtherSubject { .. })));
        let two = ok.replace("}]}", "},{\"digest\":{\"sha256\":\"bb\"}}]}");
        assert!(matches!(check_subject(&envelope(&two), "aa"), Err(SubjectError::OtherSubject { .. })));
        let other_type = ok.replace("Statement/v1", "Statement/v0.1");
        assert!(matches!(check_subject(&envelope(&other_type), "aa"), Err(SubjectError::NotAStatement(_))));
        assert!(matches!(check_subject(&envelope("[1,2"), "aa"), Err(SubjectError::NotAStatement(_))));
        let mut wrong = envelope(ok);
        wrong.payload_type = "text/plain".into();
        assert!(matches!(check_subject(&wrong, "aa"), Err(SubjectError::PayloadType { .. })));
    }
}
