//! `segments import`: streams the PIDs of a file (or stdin) into a segment
//! with `import_members`, in atomic batches of 10,000, resumable through
//! an idempotency key.
//!
//! The key is `--key`, or for a file `import:{segment id}:{SHA-256 of
//! --column and the file's bytes}`: rerunning the same import of the same file resumes it,
//! replaying the batches that committed and applying the rest. Reading
//! stdin there is nothing to hash before reading, so without `--key` such
//! an import is not resumable (a rerun adds the same PIDs again: those
//! already in count as redundant, and the ledger still records each join
//! once, unless someone removed them in between).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use segments_engine::limits::{IMPORT_BATCH_SIZE, MAX_IDEMPOTENCY_KEY_BYTES};
use segments_engine::{Error, ImportOutcome, NewSegment, OrgId, Segment};
use sha2::{Digest, Sha256};

use crate::args::{Column, ImportArgs, Target};
use crate::failure::{self, Failure, chain};
use crate::pids::PidReader;
use crate::progress::Progress;
use crate::store::{self, Open};

/// Bytes `import_members` needs after the key for each batch's number.
const BATCH_SUFFIX_BYTES: usize = 21;

/// The longest `--key`.
pub(crate) const MAX_KEY_BYTES: usize = MAX_IDEMPOTENCY_KEY_BYTES - BATCH_SUFFIX_BYTES;

/// How many malformed lines the summary lists.
const MALFORMED_SHOWN: usize = 20;

/// The source label of segments the command creates.
const SOURCE: &str = "cli";

/// Runs `segments import`.
///
/// # Errors
/// Usage errors (exit status 2) for a bad org, segment name or key;
/// failures (exit status 1) naming the input and its line when it cannot
/// be read, and naming the batch's lines when the store fails.
pub(crate) fn run(target: &Target, args: &ImportArgs) -> Result<(), Failure> {
    let org = store::org(target)?;
    if let Some(key) = &args.key {
        check_key(key)?;
    }
    let from_stdin = args.input == "-";
    let name = if from_stdin {
        "stdin"
    } else {
        args.input.as_str()
    };
    // Read the input before touching the store: a wrong path changes nothing.
    let (input, total_bytes, digest): (Box<dyn BufRead>, _, _) = if from_stdin {
        (Box::new(io::stdin().lock()), None, None)
    } else {
        let digest = file_digest(name, args.column.as_ref())?;
        let file = File::open(name).map_err(|e| cannot_open(name, &e))?;
        let size = file.metadata().ok().map(|m| m.len());
        (
            Box::new(BufReader::with_capacity(1 << 16, file)),
            size,
            Some(digest),
        )
    };
    let segments = store::open(target, Open::CreateIfMissing)?;
    let segment = segments
        .find_or_create(&org, NewSegment::new(args.segment.as_str()).source(SOURCE))
        .map_err(|e| failure::library(format!("--segment {:?}", args.segment), e))?;
    let key = match (&args.key, digest) {
        (Some(key), _) => Some(key.clone()),
        (None, Some(digest)) => Some(format!("import:{}:{digest}", segment.id)),
        (None, None) => {
            eprintln!(
                "note: reading stdin without --key: this import is not resumable \
                 (pass --key KEY to make a rerun resume it)"
            );
            None
        }
    };

    let progress = Rc::new(RefCell::new(Progress::start(total_bytes)));
    let shown = Rc::clone(&progress);
    let mut reader = PidReader::new(
        input,
        name,
        args.column.as_ref(),
        Some(Box::new(move |rows, bytes| {
            shown.borrow_mut().update(rows, bytes)
        })),
    )?;
    // A replay writes no ledger entry: how a rerun of a finished import is told.
    let seq_before = segments.last_seq(&org).ok();
    let imported = match &key {
        Some(key) => segments.with_idempotency_key(key.as_str()).import_members(
            &org,
            segment.id,
            &mut reader,
        ),
        None => segments.import_members(&org, segment.id, &mut reader),
    };
    progress.borrow().finish();
    let outcome = imported.map_err(|e| batch_failed(&reader, name, key.as_deref(), e))?;
    if let Some(error) = reader.error() {
        return Err(Failure::failed(format!(
            "{error}\nthe {} batches before it ({} rows) are applied; {}",
            outcome.n_batches,
            outcome.n_batches * IMPORT_BATCH_SIZE as u64,
            rerun_hint(key.as_deref())
        )));
    }
    print!(
        "{}",
        summary(&org, name, &segment, key.as_deref(), &reader, &outcome)
    );
    if outcome.n_added > 0 && seq_before.is_some() && segments.last_seq(&org).ok() == seq_before {
        eprintln!(
            "note: this import was made before under the same key (within the last 24 hours): \
             the counts are the first run's and nothing was applied again; pass another --key \
             to import the file anew"
        );
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), Failure> {
    if key.is_empty() {
        return Err(Failure::usage("--key: a key cannot be empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Failure::usage(format!(
            "--key: a key is at most {MAX_KEY_BYTES} bytes (this one has {})",
            key.len()
        )));
    }
    Ok(())
}

fn cannot_open(name: &str, error: &io::Error) -> Failure {
    Failure::failed(format!("{name}: cannot open it: {error}"))
}

/// The SHA-256 of `--column` and of a file's bytes, in hex: what a rerun of
/// the same import has in common with the first run.
fn file_digest(name: &str, column: Option<&Column>) -> Result<String, Failure> {
    let mut file = File::open(name).map_err(|e| cannot_open(name, &e))?;
    let mut hasher = Sha256::new();
    hasher.update(format!("{column:?}\0"));
    let mut buffer = vec![0; 1 << 16];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::failed(format!("{name}: cannot read it: {e}"))),
        }
    }
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize() {
        let _ = write!(hex, "{byte:02x}");
    }
    Ok(hex)
}

fn rerun_hint(key: Option<&str>) -> String {
    match key {
        Some(_) => "rerun the same command to resume (the same file, or --key)".to_owned(),
        None => "this import had no --key: a rerun adds every PID again".to_owned(),
    }
}

/// The failure when a batch failed: which lines it held, what was applied.
fn batch_failed<R>(reader: &PidReader<R>, name: &str, key: Option<&str>, error: Error) -> Failure {
    // The failed batch is the last one the import took PIDs for.
    let batch = reader.yielded().saturating_sub(1) / IMPORT_BATCH_SIZE as u64;
    let line = reader
        .chunk_line(batch as usize)
        .map_or_else(String::new, |line| format!(":{line}"));
    let why = match &error {
        Error::IdempotencyConflict { .. } => format!(
            "the key {:?} was used before for other input: pass another --key",
            key.unwrap_or_default()
        ),
        other => chain(other),
    };
    Failure::failed(format!(
        "{name}{line}: batch {} (from this line) failed: {why}\nthe {batch} batches before it ({} rows) are applied; {}",
        batch + 1,
        batch * IMPORT_BATCH_SIZE as u64,
        rerun_hint(key)
    ))
}

/// The totals, then the first malformed lines.
fn summary<R>(
    org: &OrgId,
    name: &str,
    segment: &Segment,
    key: Option<&str>,
    reader: &PidReader<R>,
    out: &ImportOutcome,
) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "imported {name} into segment {:?} ({}) of org {org}",
        segment.name, segment.id
    );
    let header = match reader.header() {
        Some(h) => format!(
            "line {}, PID column {} {:?}",
            h.line,
            reader.column() + 1,
            h.column_name
        ),
        None => format!("none, PID column {}", reader.column() + 1),
    };
    let _ = writeln!(text, "header: {header}");
    let _ = writeln!(text, "rows: {}", reader.rows());
    let _ = writeln!(text, "added: {}", out.n_added);
    let _ = writeln!(text, "redundant: {}", out.n_redundant_additions);
    let _ = writeln!(text, "malformed: {}", out.n_invalid);
    let _ = writeln!(text, "size: {}", out.new_current_size);
    let _ = writeln!(text, "batches: {}", out.n_batches);
    let _ = writeln!(text, "key: {}", key.unwrap_or("(none)"));
    if out.n_invalid > 0 {
        let shown = out.invalid_pids.len().min(MALFORMED_SHOWN);
        let _ = writeln!(
            text,
            "malformed lines (the first {shown} of {}):",
            out.n_invalid
        );
        for invalid in &out.invalid_pids[..shown] {
            match reader.malformed_at(invalid.position) {
                Some(m) => {
                    let _ = writeln!(text, "{name}:{}: {}", m.line, m.text);
                }
                None => {
                    let _ = writeln!(
                        text,
                        "{name}: data row {}: {:?}",
                        invalid.position + 1,
                        invalid.pid
                    );
                }
            }
        }
    }
    text
}
