//! Streaming line reader with a hard cap on line length.
//!
//! `BufRead::read_until` would grow its buffer without bound on a hostile
//! multi-gigabyte line; this reader never holds more than one capped line plus
//! one read chunk, skips over oversized lines without storing them, and tells
//! a complete line from a torn tail (bytes after the last newline).

use std::io::{self, Read};

use crate::scan::MAX_LINE_BYTES;

const READ_CHUNK: usize = 256 * 1024;
const MAX_BUFFER: usize = MAX_LINE_BYTES + READ_CHUNK;

/// What the next read produced.
#[derive(Debug)]
pub(crate) enum Line<'a> {
    /// A line, without its newline.
    Complete(&'a [u8]),
    /// A newline-terminated line longer than [`MAX_LINE_BYTES`], skipped.
    Oversized { length: u64 },
    /// Bytes after the last newline of the input: never a committed entry.
    Torn { offset: u64, length: u64 },
    /// Nothing left.
    End,
}

pub(crate) struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Input offset of `buf[start]`.
    offset: u64,
}

impl<R: Read> LineReader<R> {
    /// `offset` is where in the file `inner` starts, for reporting.
    pub(crate) fn new(inner: R, offset: u64) -> Self {
        LineReader { inner, buf: vec![0; READ_CHUNK], start: 0, end: 0, eof: false, offset }
    }

    /// Offset just past the last line returned: where the next one starts.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    pub(crate) fn next_line(&mut self) -> io::Result<Line<'_>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let line_start = self.start;
                self.start += i + 1;
                self.offset += (i + 1) as u64;
                if i > MAX_LINE_BYTES {
                    // The buffer can hold a little more than the cap.
                    return Ok(Line::Oversized { length: i as u64 });
                }
                return Ok(Line::Complete(&self.buf[line_start..line_start + i]));
            }
            let pending = self.end - self.start;
            if pending > MAX_LINE_BYTES {
                return self.skip_oversized();
            }
            if self.eof {
                if pending == 0 {
                    return Ok(Line::End);
                }
                let offset = self.offset;
                self.start = self.end;
                self.offset += pending as u64;
                return Ok(Line::Torn { offset, length: pending as u64 });
            }
            self.fill()?;
        }
    }

    /// Moves pending bytes to the front, grows the buffer if a long line
    /// needs it (never past one capped line plus a chunk), and reads.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).min(MAX_BUFFER);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Discards the rest of an over-long line, counting its bytes.
    fn skip_oversized(&mut self) -> io::Result<Line<'_>> {
        let line_offset = self.offset;
        let mut length = (self.end - self.start) as u64;
        self.start = 0;
        self.end = 0;
        loop {
            if self.eof {
                self.offset += length;
                return Ok(Line::Torn { offset: line_offset, length });
            }
            self.fill()?;
            if let Some(i) = memchr::memchr(b'\n', &self.buf[..self.end]) {
                length += i as u64;
                self.start = i + 1;
                self.offset += length + 1;
                return Ok(Line::Oversized { length });
            }
            length += self.end as u64;
            self.end = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8]) -> Vec<String> {
        let mut reader = LineReader::new(input, 0);
        let mut out = Vec::new();
        loop {
            match reader.next_line().unwrap() {
                Line::Complete(line) => out.push(format!("line {}", line.len())),
                Line::Oversized { length } => out.push(format!("oversized {length}")),
                Line::Torn { offset, length } => out.push(format!("torn {offset}+{length}")),
                Line::End => return out,
            }
        }
    }

    #[test]
    fn complete_oversized_and_torn_lines() {
        let mut input = b"ab\n\n".to_vec();
        input.extend(vec![b'x'; MAX_LINE_BYTES + 10]);
        input.extend(b"\ncd\nef");
        assert_eq!(
            collect(&input),
            vec![
                "line 2".to_owned(),
                "line 0".to_owned(),
                format!("oversized {}", MAX_LINE_BYTES + 10),
                "line 2".to_owned(),
                format!("torn {}+2", input.len() - 2),
            ]
        );
        let mut huge_tail = b"ab\n".to_vec();
        huge_tail.extend(vec![b'x'; MAX_LINE_BYTES * 2]);
        assert_eq!(collect(&huge_tail), vec!["line 2".to_owned(), format!("torn 3+{}", MAX_LINE_BYTES * 2)]);
        let exact = [vec![b'y'; MAX_LINE_BYTES], b"\n".to_vec()].concat();
        assert_eq!(collect(&exact), vec![format!("line {MAX_LINE_BYTES}")]);
    }

    #[test]
    fn lines_spanning_reads_are_reassembled() {
        let line = vec![b'z'; READ_CHUNK + 17];
        let input = [line.clone(), b"\n".to_vec(), line, b"\n".to_vec()].concat();
        let mut reader = LineReader::new(&input[..], 0);
        for _ in 0..2 {
            match reader.next_line().unwrap() {
                Line::Complete(l) => assert_eq!(l.len(), READ_CHUNK + 17),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(reader.offset(), input.len() as u64);
        assert!(matches!(reader.next_line().unwrap(), Line::End));
    }
}
