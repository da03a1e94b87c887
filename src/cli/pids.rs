//! Reading PIDs from a CSV file, or from a file of one PID a line.
//!
//! - The first non-blank line is a header when one of its fields is
//!   `minerva_pid` or `pid` (ignoring ASCII case), when `--column` names a
//!   header, or when none of its fields starts with `p-` (so a file whose
//!   first PID is malformed but starts with `p-` loses no line to it).
//! - The PID column is `--column`, else the one headed `minerva_pid`, else
//!   `pid`, else the only column; without a header, the first field of the
//!   first line that starts with `p-`.
//! - Quoted fields, CRLF (or CR) line ends and a UTF-8 byte order mark are
//!   read as CSV means them ([`records`](crate::records)). Blank lines
//!   (nothing but spaces) are skipped.
//!   Spaces around a PID are trimmed; anything else that is not a
//!   well-formed PID is passed on as it is, to be counted as malformed.
//! - Rows are read ahead in chunks of [`IMPORT_BATCH_SIZE`], aligned with
//!   the batches `import_members` makes: when reading fails (an I/O error),
//!   the chunk being read is dropped whole and the PIDs end there, so the
//!   import applies whole batches only. Memory stays bounded by one chunk.

use std::collections::VecDeque;
use std::io::{BufRead, ErrorKind};

use segments_engine::is_well_formed_pid;
use segments_engine::limits::{IMPORT_BATCH_SIZE, MAX_IMPORT_INVALID_REPORTED};

use crate::args::Column;
use crate::failure::Failure;
use crate::records::{Record, RecordError, Records};

/// The most characters of a malformed PID kept to show.
const MAX_SHOWN_CHARS: usize = 80;

/// A data row whose PID is not well-formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// Its index among the data rows, from 0: the `position` the import
    /// reports.
    pub(crate) position: u64,
    /// Its line in the file, from 1.
    pub(crate) line: u64,
    /// What the PID column held (shortened), or why there was nothing.
    pub(crate) text: String,
}

/// Called after each chunk with the data rows and the bytes read so far.
pub(crate) type OnChunk = Box<dyn FnMut(u64, u64)>;

/// The PIDs of a CSV input, one per data row, as an iterator for
/// `import_members`. Check [`PidReader::error`] when it ends.
pub(crate) struct PidReader<R> {
    records: Records<R>,
    /// The input's name in messages (`leads.csv`, `stdin`).
    name: String,
    column: usize,
    header: Option<HeaderLine>,
    record: Record,
    ahead: VecDeque<String>,
    /// Data rows read so far (into `ahead` or already yielded).
    rows: u64,
    malformed: Vec<Malformed>,
    n_malformed: u64,
    error: Option<String>,
    done: bool,
    on_chunk: Option<OnChunk>,
    /// PIDs handed out by the iterator so far.
    yielded: u64,
    /// The line of the first row of each chunk: chunk `i` is the import's
    /// batch `i`, so a failed batch is told by its lines.
    chunk_lines: Vec<u64>,
}

impl<R> std::fmt::Debug for PidReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PidReader")
            .field("name", &self.name)
            .field("column", &self.column)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// The header line, when the input has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeaderLine {
    /// Its line number, from 1.
    pub(crate) line: u64,
    /// The header of the PID column.
    pub(crate) column_name: String,
}

impl<R: BufRead> PidReader<R> {
    /// Reads up to the first data row, settling the header and the PID
    /// column, and reads the first chunk ahead.
    ///
    /// # Errors
    /// A failure naming the input and the line when it cannot be read, or
    /// when its header does not say which column holds the PIDs.
    pub(crate) fn new(
        input: R,
        name: impl Into<String>,
        column: Option<&Column>,
        on_chunk: Option<OnChunk>,
    ) -> Result<Self, Failure> {
        let mut reader = Self {
            records: Records::new(input),
            name: name.into(),
            column: 0,
            header: None,
            record: Record::default(),
            ahead: VecDeque::with_capacity(IMPORT_BATCH_SIZE),
            rows: 0,
            malformed: Vec::new(),
            n_malformed: 0,
            error: None,
            done: false,
            on_chunk,
            yielded: 0,
            chunk_lines: Vec::new(),
        };
        loop {
            match reader.records.read(&mut reader.record) {
                Ok(true) if reader.record.is_blank() => continue,
                Ok(true) => break,
                Ok(false) => {
                    reader.done = true;
                    if let Some(Column::Index(i)) = column {
                        reader.column = *i;
                    }
                    return Ok(reader);
                }
                Err(e) => return Err(Failure::failed(reader.read_error(&e))),
            }
        }
        let line = reader.record.line();
        let fields: Vec<String> = (0..reader.record.len())
            .filter_map(|i| reader.record.get(i).map(text))
            .collect();
        let named = |h: &str| fields.iter().position(|f| f.eq_ignore_ascii_case(h));
        let by_name = named("minerva_pid").or_else(|| named("pid"));
        let looks_like_header = by_name.is_some()
            || !fields
                .iter()
                .any(|f| f.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("p-")));
        let (index, header) = match column {
            Some(Column::Header(h)) => match named(h) {
                Some(i) => (i, true),
                None => {
                    return Err(Failure::failed(format!(
                        "{}:{line}: no column is headed {h:?} (the first line holds {})",
                        reader.name,
                        shown_list(&fields)
                    )));
                }
            },
            Some(Column::Index(i)) => (*i, looks_like_header),
            None if looks_like_header => match by_name {
                Some(i) => (i, true),
                None if fields.len() == 1 => (0, true),
                None => {
                    return Err(Failure::failed(format!(
                        "{}:{line}: which column holds the PIDs? None is headed minerva_pid or pid \
                         (the header holds {}): pass --column N or --column HEADER",
                        reader.name,
                        shown_list(&fields)
                    )));
                }
            },
            None => (
                fields.iter().position(|f| f.starts_with("p-")).unwrap_or(0),
                false,
            ),
        };
        reader.column = index;
        if header {
            reader.header = Some(HeaderLine {
                line,
                column_name: fields.get(index).cloned().unwrap_or_default(),
            });
        } else {
            reader.push_row();
        }
        reader.fill();
        Ok(reader)
    }
}

impl<R> PidReader<R> {
    /// The header line, if the input has one.
    pub(crate) fn header(&self) -> Option<&HeaderLine> {
        self.header.as_ref()
    }

    /// The PID column, from 0.
    pub(crate) fn column(&self) -> usize {
        self.column
    }

    /// Data rows read so far (each one PID, well-formed or not).
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// How many data rows held no well-formed PID.
    #[cfg(test)]
    pub(crate) fn n_malformed(&self) -> u64 {
        self.n_malformed
    }

    /// The first malformed rows (up to
    /// [`MAX_IMPORT_INVALID_REPORTED`]), in order.
    #[cfg(test)]
    pub(crate) fn malformed(&self) -> &[Malformed] {
        &self.malformed
    }

    /// The malformed row at a data-row position, if it is among the first
    /// ones kept.
    pub(crate) fn malformed_at(&self, position: u64) -> Option<&Malformed> {
        self.malformed
            .binary_search_by_key(&position, |m| m.position)
            .ok()
            .map(|i| &self.malformed[i])
    }

    /// PIDs handed out so far.
    pub(crate) fn yielded(&self) -> u64 {
        self.yielded
    }

    /// The line of the first data row of chunk (batch) `i`, from 0.
    pub(crate) fn chunk_line(&self, i: usize) -> Option<u64> {
        self.chunk_lines.get(i).copied()
    }

    /// Why reading stopped early, naming the input and the line; `None`
    /// when the PIDs ended because the input did.
    pub(crate) fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Takes the current record as a data row.
    fn push_row(&mut self) {
        let position = self.rows;
        if position.is_multiple_of(IMPORT_BATCH_SIZE as u64) {
            self.chunk_lines.push(self.record.line());
        }
        self.rows += 1;
        let pid = self.record.get(self.column).map(text).unwrap_or_default();
        if !is_well_formed_pid(&pid) {
            self.n_malformed += 1;
            if self.malformed.len() < MAX_IMPORT_INVALID_REPORTED {
                let shown = if self.column >= self.record.len() {
                    format!("(no column {})", self.column + 1)
                } else if pid.is_empty() {
                    "(empty)".to_owned()
                } else {
                    shorten(&pid)
                };
                self.malformed.push(Malformed {
                    position,
                    line: self.record.line(),
                    text: shown,
                });
            }
        }
        self.ahead.push_back(pid);
    }
}

impl<R: BufRead> PidReader<R> {
    fn read_error(&self, e: &RecordError) -> String {
        if e.error.kind() == ErrorKind::InvalidData {
            format!("{}:{}: {}", self.name, e.line, e.error)
        } else {
            format!("{}:{}: cannot read it: {}", self.name, e.line, e.error)
        }
    }

    /// Reads rows until a chunk of [`IMPORT_BATCH_SIZE`] is ahead or the
    /// input ends. On a read error, drops the chunk whole.
    fn fill(&mut self) {
        while !self.done && self.ahead.len() < IMPORT_BATCH_SIZE {
            match self.records.read(&mut self.record) {
                Ok(true) if self.record.is_blank() => {}
                Ok(true) => self.push_row(),
                Ok(false) => self.done = true,
                Err(e) => {
                    self.error = Some(self.read_error(&e));
                    self.done = true;
                    self.rows -= self.ahead.len() as u64;
                    if !self.ahead.is_empty() {
                        self.chunk_lines.pop();
                    }
                    self.ahead.clear();
                    let rows = self.rows;
                    let dropped = self.malformed.iter().filter(|m| m.position >= rows).count();
                    self.malformed.retain(|m| m.position < rows);
                    // Past the kept ones, the count cannot be told apart
                    // exactly; it is only shown on success.
                    self.n_malformed = self.n_malformed.saturating_sub(dropped as u64);
                }
            }
        }
        let (rows, bytes) = (self.rows, self.records.bytes());
        if let Some(on_chunk) = self.on_chunk.as_mut() {
            on_chunk(rows, bytes);
        }
    }
}

impl<R: BufRead> Iterator for PidReader<R> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.ahead.is_empty() {
            self.fill();
        }
        let pid = self.ahead.pop_front()?;
        self.yielded += 1;
        Some(pid)
    }
}

/// A field as text: invalid UTF-8 replaced (the PID is then malformed),
/// surrounding spaces trimmed.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes.trim_ascii()).into_owned()
}

/// A malformed PID as shown: quoted, and cut after a few dozen characters.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((at, _)) => format!("{:?}…", &text[..at]),
        None => format!("{text:?}"),
    }
}

fn shown_list(fields: &[String]) -> String {
    let shown: Vec<String> = fields.iter().take(8).map(|f| shorten(f)).collect();
    let more = if fields.len() > 8 { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &str, column: Option<Column>) -> (PidReader<&[u8]>, Vec<String>) {
        let mut reader = PidReader::new(input.as_bytes(), "in.csv", column.as_ref(), None).unwrap();
        let pids: Vec<String> = reader.by_ref().collect();
        assert!(reader.error().is_none(), "{:?}", reader.error());
        (reader, pids)
    }

    #[test]
    fn one_pid_a_line_without_a_header() {
        let (r, pids) = read("p-a1\np-b2\n", None);
        assert_eq!(pids, ["p-a1", "p-b2"]);
        assert!(r.header().is_none());
    }

    #[test]
    fn a_header_names_the_column() {
        let (r, pids) = read("email,PID,x\na@b,p-1,z\nc@d,p-2,z\n", None);
        assert_eq!(pids, ["p-1", "p-2"]);
        assert_eq!(r.header().map(|h| h.line), Some(1));
        assert_eq!(r.column(), 1);
        let (_, pids) = read("pid,minerva_pid\np-no,p-yes\n", None);
        assert_eq!(pids, ["p-yes"], "minerva_pid comes before pid");
    }

    #[test]
    fn column_by_number_or_header() {
        let (_, pids) = read("a,b\nx,p-1\n", Some(Column::Index(1)));
        assert_eq!(pids, ["p-1"]);
        let (_, pids) = read("who,Person\nx,p-1\n", Some(Column::Header("person".into())));
        assert_eq!(pids, ["p-1"]);
        let (r, pids) = read("p-0,x\np-1,y\n", Some(Column::Index(0)));
        assert_eq!(pids, ["p-0", "p-1"], "no header: the first line is data");
        assert!(r.header().is_none());
    }

    #[test]
    fn an_unknown_header_or_an_unnamed_column_is_an_error_with_its_line() {
        let e = PidReader::new(
            &b"\n\na,b\n"[..],
            "in.csv",
            Some(&Column::Header("pid".into())),
            None,
        )
        .unwrap_err();
        assert!(
            matches!(&e, Failure::Failed(m) if m.starts_with("in.csv:3: no column is headed \"pid\"")),
            "{e:?}"
        );
        let e = PidReader::new(&b"a,b\nx,p-1\n"[..], "in.csv", None, None).unwrap_err();
        assert!(
            matches!(&e, Failure::Failed(m) if m.contains("in.csv:1: which column")),
            "{e:?}"
        );
    }

    #[test]
    fn crlf_bom_quotes_and_blank_lines() {
        let input = "\u{feff}pid\r\n\r\n\"p-1\"\r\n  \r\n\" p-2 \"\r\n\"p-3,x\"\r\n";
        let (r, pids) = read(input, None);
        assert_eq!(pids, ["p-1", "p-2", "p-3,x"]);
        assert_eq!(
            r.header().map(|h| h.line),
            Some(1),
            "the BOM does not hide the header"
        );
        assert_eq!(r.malformed().len(), 1);
        assert_eq!(
            r.malformed()[0].line,
            6,
            "lines count blank ones and CRLF once"
        );
        assert_eq!(r.malformed()[0].position, 2);
    }

    #[test]
    fn a_bom_before_a_pid_is_not_part_of_it() {
        let (r, pids) = read("\u{feff}p-1\np-2\n", None);
        assert_eq!(pids, ["p-1", "p-2"]);
        assert_eq!(r.n_malformed(), 0);
    }

    #[test]
    fn malformed_rows_keep_their_lines() {
        let (r, pids) = read("pid\np-1\n\nbad!\np-2,extra\nP-UPPER\n", None);
        assert_eq!(pids.len(), 4);
        let lines: Vec<(u64, u64)> = r.malformed().iter().map(|m| (m.position, m.line)).collect();
        assert_eq!(lines, [(1, 4), (3, 6)]);
        assert_eq!(
            r.malformed_at(3).map(|m| m.text.as_str()),
            Some("\"P-UPPER\"")
        );
        assert_eq!(r.n_malformed(), 2);
    }

    #[test]
    fn a_missing_column_is_a_malformed_row() {
        let (r, pids) = read("a,pid\nx,p-1\ny\n", None);
        assert_eq!(pids, ["p-1", ""]);
        assert_eq!(r.malformed()[0].text, "(no column 2)");
        assert_eq!(r.malformed()[0].line, 3);
        let (r, _) = read("a,pid\nx,\n", None);
        assert_eq!(r.malformed()[0].text, "(empty)");
    }

    #[test]
    fn empty_and_header_only_inputs_have_no_rows() {
        for input in ["", "\n\n", "pid\n", "\u{feff}minerva_pid\r\n\r\n"] {
            let (r, pids) = read(input, None);
            assert!(pids.is_empty(), "{input:?}");
            assert_eq!(r.rows(), 0);
        }
    }

    /// A reader that fails after `ok` bytes.
    struct FailsAfter {
        data: Vec<u8>,
        at: usize,
        ok: usize,
    }

    impl std::io::Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.at >= self.ok {
                return Err(std::io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.ok - self.at).min(4096);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn a_read_error_drops_the_chunk_it_is_in() {
        let data: Vec<u8> = (0..25_000)
            .flat_map(|i| format!("p-{i:012x}\n").into_bytes())
            .collect();
        // 15 bytes a line: fail in the middle of the third chunk.
        let input = FailsAfter {
            data,
            at: 0,
            ok: 15 * 22_500,
        };
        let mut reader =
            PidReader::new(std::io::BufReader::new(input), "in.csv", None, None).unwrap();
        let n = reader.by_ref().count();
        assert_eq!(n, 2 * IMPORT_BATCH_SIZE, "whole chunks only");
        assert_eq!(reader.rows(), n as u64);
        let error = reader.error().expect("the error is kept");
        assert!(
            error.starts_with("in.csv:") && error.contains("disk on fire"),
            "{error}"
        );
    }
}
