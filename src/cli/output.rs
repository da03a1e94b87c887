//! Where `export` and `history` write: a file or stdout, buffered.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use crate::failure::{Failure, chain};

/// A buffered destination that names itself in its errors.
pub(crate) struct Output {
    name: String,
    writer: BufWriter<Box<dyn Write>>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").field("name", &self.name).finish()
    }
}

impl Output {
    /// Stdout for `-`, else the file at `path`, created or truncated.
    ///
    /// # Errors
    /// A failure naming the file when it cannot be created.
    pub(crate) fn create(path: &str) -> Result<Self, Failure> {
        let (name, writer): (String, Box<dyn Write>) = if path == "-" {
            ("stdout".to_owned(), Box::new(io::stdout().lock()))
        } else {
            let file = File::create(path)
                .map_err(|e| Failure::failed(format!("{path}: cannot create it: {e}")))?;
            (path.to_owned(), Box::new(file))
        };
        Ok(Self {
            name,
            writer: BufWriter::with_capacity(1 << 16, writer),
        })
    }

    /// The buffered writer, for formatters that write into it; pass its
    /// errors to [`Output::failed`].
    pub(crate) fn writer(&mut self) -> &mut impl Write {
        &mut self.writer
    }

    /// Writes out what is buffered.
    ///
    /// # Errors
    /// See [`Output::failed`].
    pub(crate) fn flush(&mut self) -> Result<(), Failure> {
        self.writer.flush().map_err(|e| self.failed(e))
    }

    /// The failure for a write error: [`Failure::Closed`] when the reader
    /// went away (`segments export … | head`), else a failure naming the
    /// destination.
    pub(crate) fn failed(&self, error: io::Error) -> Failure {
        if error.kind() == io::ErrorKind::BrokenPipe {
            Failure::Closed
        } else {
            Failure::failed(format!("{}: cannot write: {}", self.name, chain(&error)))
        }
    }
}
