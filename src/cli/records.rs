//! CSV records with the line each starts on.
//!
//! A small reader of RFC 4180 CSV (the csv crate's record positions count a
//! record's line before the blank lines it skips, and count a CRLF's line
//! end late, so they cannot give the line numbers the import reports):
//!
//! - fields are separated by commas; a field that starts with `"` is
//!   quoted, holds commas and line ends, and `""` in it is one `"`; a quote
//!   inside an unquoted field is kept as it is, as the csv crate keeps it;
//! - records end at LF or CRLF outside quotes; lines are counted by LF;
//! - a UTF-8 byte order mark at the start of the input is skipped;
//! - a record is at most [`MAX_RECORD_BYTES`]: an unclosed quote cannot
//!   swallow the rest of a file into memory.

use std::io::{self, BufRead};

/// The longest record, line ends included.
pub(crate) const MAX_RECORD_BYTES: usize = 1 << 20;

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One record: its fields and the line it starts on.
#[derive(Debug, Default)]
pub(crate) struct Record {
    data: Vec<u8>,
    ends: Vec<usize>,
    line: u64,
}

impl Record {
    /// The line the record starts on, from 1.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// How many fields it has (at least 1).
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Field `i`, unquoted, if the record has it.
    pub(crate) fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.data[start..end])
    }

    /// Whether every field is empty or spaces (a blank line).
    pub(crate) fn is_blank(&self) -> bool {
        self.data.trim_ascii().is_empty()
    }
}

/// Where the CSV reader is within a record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CsvState {
    FieldStart,
    Unquoted,
    Quoted,
    /// A `"` inside a quoted field: the end of the quotes, or the first of `""`.
    QuoteInQuoted,
}

/// Reads [`Record`]s from a buffered input.
#[derive(Debug)]
pub(crate) struct Records<R> {
    input: R,
    /// Lines read so far.
    lines: u64,
    /// Bytes read so far.
    bytes: u64,
    line: Vec<u8>,
}

impl<R: BufRead> Records<R> {
    /// Reads records from `input`.
    pub(crate) fn new(input: R) -> Self {
        Self {
            input,
            lines: 0,
            bytes: 0,
            line: Vec::new(),
        }
    }

    /// Bytes of input read so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Reads the next record into `record`; `false` at the end of the input.
    ///
    /// # Errors
    /// The input's I/O errors, at the line after the last one read;
    /// `InvalidData` for a record longer than [`MAX_RECORD_BYTES`] or a
    /// quote still open at the end of the input, at the line the record
    /// starts on.
    pub(crate) fn read(&mut self, record: &mut Record) -> Result<bool, RecordError> {
        self.read_record(record).map_err(|error| RecordError {
            line: if error.kind() == io::ErrorKind::InvalidData {
                record.line
            } else {
                self.lines + 1
            },
            error,
        })
    }

    fn read_record(&mut self, record: &mut Record) -> io::Result<bool> {
        record.data.clear();
        record.ends.clear();
        record.line = self.lines + 1;
        let mut state = CsvState::FieldStart;
        let mut size = 0usize;
        loop {
            self.line.clear();
            let room = (MAX_RECORD_BYTES - size) as u64 + 1;
            let n = <&mut R as io::Read>::take(&mut self.input, room)
                .read_until(b'\n', &mut self.line)?;
            if n == 0 {
                if state == CsvState::Quoted {
                    return Err(invalid("a quoted field is never closed".to_owned()));
                }
                if size == 0 {
                    return Ok(false);
                }
                break;
            }
            let mut text = &self.line[..];
            if self.bytes == 0 {
                text = text.strip_prefix(BOM).unwrap_or(text);
            }
            self.bytes += n as u64;
            size += text.len();
            let ended = text.last() == Some(&b'\n');
            if !ended && size == 0 {
                // Only a byte order mark: the input ends on the next read.
                continue;
            }
            if ended {
                self.lines += 1;
            } else if size > MAX_RECORD_BYTES {
                return Err(invalid(format!(
                    "a record longer than {MAX_RECORD_BYTES} bytes (an unclosed quote?)"
                )));
            }
            let mut end = &b""[..];
            if ended {
                let cut = if text.ends_with(b"\r\n") { 2 } else { 1 };
                (text, end) = text.split_at(text.len() - cut);
            }
            for &b in text {
                state = match (state, b) {
                    (CsvState::FieldStart, b'"') => CsvState::Quoted,
                    (CsvState::FieldStart | CsvState::Unquoted | CsvState::QuoteInQuoted, b',') => {
                        record.ends.push(record.data.len());
                        CsvState::FieldStart
                    }
                    (CsvState::Quoted, b'"') => CsvState::QuoteInQuoted,
                    (CsvState::QuoteInQuoted, b'"') => {
                        record.data.push(b'"');
                        CsvState::Quoted
                    }
                    (CsvState::Quoted, b) => {
                        record.data.push(b);
                        CsvState::Quoted
                    }
                    (_, b) => {
                        record.data.push(b);
                        CsvState::Unquoted
                    }
                };
            }
            if state == CsvState::Quoted && ended {
                // A line end inside quotes belongs to the field.
                record.data.extend_from_slice(end);
                continue;
            }
            if state == CsvState::Quoted {
                // The input ended inside quotes: reported on the next turn.
                continue;
            }
            break;
        }
        record.ends.push(record.data.len());
        Ok(true)
    }
}

/// Why a record could not be read, and at which line.
#[derive(Debug)]
pub(crate) struct RecordError {
    /// The line, from 1.
    pub(crate) line: u64,
    /// What went wrong: `InvalidData` for bad CSV, else the input's error.
    pub(crate) error: io::Error,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &str) -> Vec<(u64, Vec<String>)> {
        let mut records = Records::new(input.as_bytes());
        let mut record = Record::default();
        let mut out = Vec::new();
        while records.read(&mut record).unwrap() {
            let fields = (0..record.len())
                .map(|i| String::from_utf8(record.get(i).unwrap().to_vec()).unwrap())
                .collect();
            out.push((record.line(), fields));
        }
        out
    }

    fn f(line: u64, fields: &[&str]) -> (u64, Vec<String>) {
        (line, fields.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn lines_count_blank_lines_and_crlf_once() {
        assert_eq!(
            all("a\n\n\nb\r\n\r\nc"),
            [
                f(1, &["a"]),
                f(2, &[""]),
                f(3, &[""]),
                f(4, &["b"]),
                f(5, &[""]),
                f(6, &["c"])
            ]
        );
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_line_ends() {
        assert_eq!(
            all("\"a,b\",\"say \"\"hi\"\"\"\r\n\"x\r\ny\",z\nlast,\n"),
            [
                f(1, &["a,b", "say \"hi\""]),
                f(2, &["x\r\ny", "z"]),
                f(4, &["last", ""]),
            ]
        );
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_kept() {
        assert_eq!(all("ab\"c,d\n"), [f(1, &["ab\"c", "d"])]);
    }

    #[test]
    fn a_byte_order_mark_opening_the_input_is_skipped() {
        assert_eq!(
            all("\u{feff}\"pid\"\np-1\n"),
            [f(1, &["pid"]), f(2, &["p-1"])]
        );
        assert_eq!(all("\u{feff}"), Vec::<(u64, Vec<String>)>::new());
    }

    #[test]
    fn an_unclosed_quote_is_an_error_naming_its_line() {
        let mut records = Records::new(&b"a\n\"b\nc\n"[..]);
        let mut record = Record::default();
        assert!(records.read(&mut record).unwrap());
        let e = records.read(&mut record).unwrap_err();
        assert_eq!(e.error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(e.line, 2, "the line the record starts on");
    }

    #[test]
    fn records_are_bounded() {
        let long = format!("\"{}\n", "x".repeat(MAX_RECORD_BYTES));
        let mut records = Records::new(long.as_bytes());
        let e = records.read(&mut Record::default()).unwrap_err();
        assert!(e.error.to_string().contains("longer than"), "{e:?}");
    }
}
