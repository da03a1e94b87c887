//! The command line, as clap reads it.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Import, export and follow segments: named, per-organization lists of
/// person ids (PIDs such as p-a1b2c3d4e5f6), on SQLite or PostgreSQL.
#[derive(Debug, Parser)]
#[command(
    name = "segments",
    version,
    propagate_version = true,
    after_help = "Every command takes --db FILE or --postgres URL, and --org ORG, before or after its name.\n\
                  Exit status: 0 when the command completed, 2 for a usage error, 1 for any other failure."
)]
pub(crate) struct Cli {
    /// Where the segments are, and whose.
    #[command(flatten)]
    pub(crate) target: Target,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The store and the organization: options every command takes, before or
/// after its name.
#[derive(Args, Debug)]
pub(crate) struct Target {
    /// The SQLite database file (`import` and `migrate` create it when it
    /// does not exist; the other commands refuse a missing file).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) db: Option<PathBuf>,
    /// A PostgreSQL URL, such as postgresql://user@host/db (needs a build
    /// with the `postgres` feature).
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) postgres: Option<String>,
    /// The organization whose segments the command reads or writes.
    #[arg(long, global = true, value_name = "ORG")]
    pub(crate) org: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Adds the PIDs of a CSV file (or of one PID a line) to a segment,
    /// creating the segment if needed. Resumable: rerun after a failure.
    #[command(after_long_help = IMPORT_HELP)]
    Import(ImportArgs),
    /// Writes a segment's members, in list order: pid, first_added_at,
    /// last_added_at.
    Export(ExportArgs),
    /// Lists the org's segments and their sizes, as CSV.
    List,
    /// Writes the org's change feed as NDJSON, one change a line.
    History(HistoryArgs),
    /// Creates or upgrades the database schema, then exits.
    Migrate,
}

/// The details of `segments import --help`.
const IMPORT_HELP: &str = "\
Input: CSV (quoted fields, CRLF or LF line ends, a UTF-8 BOM; blank lines are skipped) or one PID \
a line. The first line is a header when it has a field named minerva_pid or pid, or none that \
starts with p-. Spaces around a PID are trimmed. Malformed PIDs are counted, skipped, and the \
first ones are listed with their line numbers.

Resuming: PIDs are written in atomic batches of 10,000. The import's key (--key, or one derived \
from the segment, --column and a SHA-256 of the file) makes a rerun of the same command replay \
the batches that committed and apply the rest: nothing is applied twice. Keys are remembered for \
24 hours: within them, importing the same file into the same segment again replays the first \
import and changes nothing; pass another --key to import it anew.

Exit status: 0 when the import completed, malformed lines or not; 2 for a usage error; 1 for any \
other failure, with a message naming the file and the line.";

/// `segments import`.
#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    /// The segment to add to (created when the org has none of that name).
    #[arg(long, value_name = "NAME")]
    pub(crate) segment: String,
    /// The column holding the PIDs: its number (from 1) or its header. By
    /// default the column headed `minerva_pid` or `pid`, or the only one.
    #[arg(long, value_name = "N|HEADER", value_parser = parse_column)]
    pub(crate) column: Option<Column>,
    /// The import's idempotency key: a rerun with the same key resumes
    /// instead of importing again. By default derived from the segment and
    /// a hash of the file's bytes; reading stdin, an import without a key
    /// is not resumable.
    #[arg(long, value_name = "KEY")]
    pub(crate) key: Option<String>,
    /// The file to read, or `-` for stdin.
    #[arg(value_name = "FILE|-")]
    pub(crate) input: String,
}

/// Which column holds the PIDs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Column {
    /// The column at this index, from 0 (given from 1 on the command line).
    Index(usize),
    /// The column with this header (compared ignoring ASCII case).
    Header(String),
}

/// `--column`: a number from 1, or a header.
fn parse_column(text: &str) -> Result<Column, String> {
    if text.trim().is_empty() {
        return Err("a column is a number from 1 or a header".to_owned());
    }
    match text.parse::<usize>() {
        Ok(0) => Err("columns are numbered from 1".to_owned()),
        Ok(n) => Ok(Column::Index(n - 1)),
        Err(_) => Ok(Column::Header(text.trim().to_owned())),
    }
}

/// `segments export`.
#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// The segment to export.
    #[arg(long, value_name = "NAME")]
    pub(crate) segment: String,
    /// CSV with a header, or one JSON object a line.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub(crate) format: Format,
    /// The members the segment had at this time (RFC 3339, such as
    /// 2026-03-01T12:00:00Z, or a date, meaning its midnight UTC). The third
    /// column is then `joined_at`, when the membership in effect began.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub(crate) as_of: Option<DateTime<Utc>>,
    /// The file to write (replaced if it exists), or `-` for stdout.
    #[arg(value_name = "FILE|-", default_value = "-")]
    pub(crate) output: String,
}

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// Newline-delimited JSON: one object a line.
    Ndjson,
}

/// `--as-of`: RFC 3339, or a date (its midnight UTC).
fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err("expected an RFC 3339 time (2026-03-01T12:00:00Z) or a date (2026-03-01)".to_owned())
}

/// `segments history`.
#[derive(Args, Debug)]
pub(crate) struct HistoryArgs {
    /// Start after this sequence number (0: from the first change).
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    pub(crate) after: u64,
    /// Keep polling for new changes until interrupted.
    #[arg(long)]
    pub(crate) follow: bool,
    /// With --follow: milliseconds between polls.
    #[arg(long, value_name = "MS", default_value_t = 1_000, requires = "follow")]
    pub(crate) interval_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn columns_are_numbers_from_one_or_headers() {
        assert_eq!(parse_column("1"), Ok(Column::Index(0)));
        assert_eq!(parse_column("3"), Ok(Column::Index(2)));
        assert_eq!(parse_column("Person"), Ok(Column::Header("Person".into())));
        assert!(parse_column("0").is_err(), "column 0 does not exist");
        assert!(parse_column(" ").is_err(), "a blank column names nothing");
    }

    #[test]
    fn times_are_rfc3339_or_dates() {
        let at = parse_time("2026-03-01T12:00:00+01:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-03-01T11:00:00+00:00");
        let day = parse_time("2026-03-01").unwrap();
        assert_eq!(day.to_rfc3339(), "2026-03-01T00:00:00+00:00");
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn store_options_go_before_or_after_the_command() {
        for argv in [
            &["segments", "--db", "s.db", "--org", "acme", "list"][..],
            &["segments", "list", "--db", "s.db", "--org", "acme"][..],
        ] {
            let cli = Cli::try_parse_from(argv).unwrap();
            assert_eq!(cli.target.db.as_deref(), Some(std::path::Path::new("s.db")));
            assert_eq!(cli.target.org.as_deref(), Some("acme"));
        }
    }
}
