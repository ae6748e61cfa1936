//! `files`: a tenant that uses the file system through preopens only. It reads
//! `/input/<NAME>` (a read-only preopen), counts its lines, words and bytes,
//! and writes the counts to `/output/<NAME>.counts` (a read-write preopen), so a
//! test can check that reads work, writes land only where granted, and a
//! read-only grant really refuses writes.
//!
//! Usage: `files [NAME]` (default `input.txt`). Exit status 0 on success, 2 when
//! a file cannot be read or written, 3 when NAME is not a plain file name.
#![forbid(unsafe_code)]

use std::process::ExitCode;

/// The guest path of the read-only preopen declared in Cargo.toml.
const INPUT_DIR: &str = "/input";
/// The guest path of the read-write preopen declared in Cargo.toml.
const OUTPUT_DIR: &str = "/output";
const DEFAULT_NAME: &str = "input.txt";

/// Line, word and byte counts, as `wc` would give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Counts {
    lines: u64,
    words: u64,
    bytes: u64,
}

/// Counts like `wc`: a line is a `\n`, a word is a maximal run of bytes that
/// are not ASCII white space. Works on bytes so that any input is accepted.
fn count(data: &[u8]) -> Counts {
    let mut counts = Counts { bytes: data.len() as u64, ..Counts::default() };
    let mut in_word = false;
    for &byte in data {
        if byte == b'\n' {
            counts.lines += 1;
        }
        if byte.is_ascii_whitespace() {
            in_word = false;
        } else if !in_word {
            in_word = true;
            counts.words += 1;
        }
    }
    counts
}

/// Only a plain file name is accepted, so the module cannot be talked into
/// reaching outside the two preopens (the host enforces that too; this gives a
/// clear message instead of a permission error).
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

fn main() -> ExitCode {
    let name = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_NAME.to_owned());
    if !is_plain_file_name(&name) {
        eprintln!("files: {name:?} is not a plain file name");
        return ExitCode::from(3);
    }
    let input = format!("{INPUT_DIR}/{name}");
    let data = match std::fs::read(&input) {
        Ok(data) => data,
        Err(e) => {
            eprintln!("files: cannot read {input}: {e}");
            return ExitCode::from(2);
        }
    };
    let counts = count(&data);
    let report = format!("lines {}\nwords {}\nbytes {}\n", counts.lines, counts.words, counts.bytes);
    let output = format!("{OUTPUT_DIR}/{name}.counts");
    if let Err(e) = std::fs::write(&output, &report) {
        eprintln!("files: cannot write {output}: {e}");
        return ExitCode::from(2);
    }
    print!("{report}");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_wc() {
        assert_eq!(count(b""), Counts { lines: 0, words: 0, bytes: 0 });
        assert_eq!(count(b"one two\n three\n"), Counts { lines: 2, words: 3, bytes: 15 });
        assert_eq!(count(b"no newline"), Counts { lines: 0, words: 2, bytes: 10 });
    }

    #[test]
    fn refuses_names_that_leave_the_preopen() {
        assert!(is_plain_file_name("input.txt"));
        assert!(!is_plain_file_name("../etc/passwd"));
        assert!(!is_plain_file_name(".."));
        assert!(!is_plain_file_name(""));
    }
}
