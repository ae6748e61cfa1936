//! Attacker-chosen strings (file and tenant names, manifest labels, event
//! details) in human-readable output.
//!
//! A name is data, but a terminal treats some characters as commands: an ANSI
//! escape sequence in a file name can repaint `guardian status`, hide a line
//! or fake one; a carriage return can overwrite a line; bidirectional
//! overrides can reorder what is shown. Every such string goes through
//! [`escape`] before it reaches a terminal; JSON output needs no escaping of
//! ours (serde escapes control characters).

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write;

/// Whether `c` would be interpreted rather than shown: C0 and C1 controls,
/// DEL, and the Unicode bidirectional formatting characters.
fn is_dangerous(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control or bidirectional formatting character written
/// as a visible escape (`\n`, `\t`, `\r`, `\u{1b}`); borrowed when there are
/// none, which is the usual case.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_dangerous) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    push_escaped(&mut out, text);
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_dangerous(c) => {
                let _ = write!(out, "{}", c.escape_unicode());
            }
            c => out.push(c),
        }
    }
}

/// A name from the file system, which need not be UTF-8: valid parts as by
/// [`escape`], every invalid byte as `\xNN`. Two different names never give
/// the same text (backslashes are doubled).
pub fn escape_os(name: &OsStr) -> String {
    let mut out = String::new();
    for chunk in name.as_encoded_bytes().utf8_chunks() {
        push_escaped(&mut out, &chunk.valid().replace('\\', "\\\\"));
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn escapes_terminal_controls_and_keeps_the_rest() {
        assert!(matches!(escape("hello-1.0 ünïcode"), Cow::Borrowed(_)));
        assert_eq!(escape("a\u{1b}[2J\u{1b}[31mb"), "a\\u{1b}[2J\\u{1b}[31mb");
        assert_eq!(escape("line\rover\nnext\ttab"), "line\\rover\\nnext\\ttab");
        assert_eq!(escape("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape("del\u{7f}"), "del\\u{7f}");
    }

    #[test]
    fn non_utf8_names_are_escaped_without_collisions() {
        assert_eq!(escape_os(OsStr::from_bytes(b"ten\xffant")), "ten\\xffant");
        assert_eq!(escape_os(OsStr::from_bytes(b"ten\\xffant")), "ten\\\\xffant");
        assert_eq!(escape_os(OsStr::from_bytes(b"\x1b[31m")), "\\u{1b}[31m");
    }
}
