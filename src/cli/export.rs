//! `segments export`: a segment's members in list order (`first_added_at`,
//! then PID), streamed a page of 10,000 at a time, as CSV with a header or
//! as NDJSON.
//!
//! Pages follow the members' cursor, so an export made while others write
//! is not a snapshot: a member who joins during it may or may not appear.
//! `--as-of TIME` reads the ledger instead and is exact for that time; its
//! third column is `joined_at` (when the membership in effect then began),
//! since the ledger does not keep the redundant adds that move
//! `last_added_at`.

use std::io::Write;

use chrono::{DateTime, Utc};
use segments_engine::limits::MAX_PAGE_LIMIT;
use segments_engine::{OrgId, PageOptions, Segment};

use crate::args::{ExportArgs, Format, Target};
use crate::failure::{self, Failure};
use crate::output::Output;
use crate::store::{self, Open, Service};
use crate::times::rfc3339;

/// Runs `segments export`.
///
/// # Errors
/// A usage error for a bad org or name; a failure when the segment does
/// not exist, the store fails, or the output cannot be written.
pub(crate) fn run(target: &Target, args: &ExportArgs) -> Result<(), Failure> {
    let org = store::org(target)?;
    let segments = store::open(target, Open::MustExist)?;
    let segment = find(&segments, &org, &args.segment)?;
    let mut out = Output::create(&args.output)?;
    let third = if args.as_of.is_some() {
        "joined_at"
    } else {
        "last_added_at"
    };
    let mut rows = Rows {
        format: args.format,
        third,
    };
    if args.format == Format::Csv {
        writeln!(out.writer(), "pid,first_added_at,{third}").map_err(|e| out.failed(e))?;
    }
    match args.as_of {
        None => current(&segments, &org, &segment, &mut rows, &mut out)?,
        Some(at) => as_of(&segments, &org, &segment, at, &mut rows, &mut out)?,
    }
    out.flush()
}

/// The segment named `name` in `org`.
///
/// # Errors
/// A usage error for a string that cannot be a name; a failure when the
/// org has no such segment, or the store fails.
pub(crate) fn find(segments: &Service, org: &OrgId, name: &str) -> Result<Segment, Failure> {
    segments
        .find_by_name(org, name)
        .map_err(|e| failure::library(format!("--segment {name:?}"), e))?
        .ok_or_else(|| Failure::failed(format!("org {org} has no segment named {name:?}")))
}

/// Writes rows in the chosen format.
struct Rows {
    format: Format,
    /// The third column's name.
    third: &'static str,
}

impl Rows {
    fn write(
        &mut self,
        out: &mut Output,
        pid: &str,
        first: DateTime<Utc>,
        third: DateTime<Utc>,
    ) -> Result<(), Failure> {
        let (first, third_at) = (rfc3339(first), rfc3339(third));
        // PIDs are `p-` and [0-9a-z]: nothing to quote or escape.
        let written = match self.format {
            Format::Csv => writeln!(out.writer(), "{pid},{first},{third_at}"),
            Format::Ndjson => writeln!(
                out.writer(),
                r#"{{"pid":"{pid}","first_added_at":"{first}","{}":"{third_at}"}}"#,
                self.third
            ),
        };
        written.map_err(|e| out.failed(e))
    }
}

fn current(
    segments: &Service,
    org: &OrgId,
    segment: &Segment,
    rows: &mut Rows,
    out: &mut Output,
) -> Result<(), Failure> {
    let mut options = PageOptions::new().limit(MAX_PAGE_LIMIT);
    loop {
        let page = segments
            .members(org, segment.id, options.clone())
            .map_err(|e| failure::library(format!("segment {:?}", segment.name), e))?;
        for m in &page.members {
            rows.write(out, m.pid.as_str(), m.first_added_at, m.last_added_at)?;
        }
        match page.next {
            Some(next) => options = options.after(next),
            None => return Ok(()),
        }
    }
}

fn as_of(
    segments: &Service,
    org: &OrgId,
    segment: &Segment,
    at: DateTime<Utc>,
    rows: &mut Rows,
    out: &mut Output,
) -> Result<(), Failure> {
    let mut options = PageOptions::new().limit(MAX_PAGE_LIMIT);
    loop {
        let page = segments
            .members_as_of(org, segment.id, at, options.clone())
            .map_err(|e| failure::library(format!("segment {:?}", segment.name), e))?;
        for m in &page.members {
            rows.write(out, m.pid.as_str(), m.first_added_at, m.joined_at)?;
        }
        match page.next {
            Some(next) => options = options.after(next),
            None => return Ok(()),
        }
    }
}
