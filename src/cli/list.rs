//! `segments list`: the org's segments, in creation order, as CSV
//! (`name,current_size,id,created_at,source`).

use std::io::Write;

use segments_engine::limits::MAX_PAGE_LIMIT;
use segments_engine::{PageOptions, SegmentCursor};

use crate::args::Target;
use crate::failure::{self, Failure};
use crate::output::Output;
use crate::store::{self, Open};
use crate::times::rfc3339;

/// Runs `segments list`.
///
/// # Errors
/// A usage error for a bad org; a failure when the store fails or stdout
/// cannot be written.
pub(crate) fn run(target: &Target) -> Result<(), Failure> {
    let org = store::org(target)?;
    let segments = store::open(target, Open::MustExist)?;
    let mut out = Output::create("-")?;
    writeln!(out.writer(), "name,current_size,id,created_at,source").map_err(|e| out.failed(e))?;
    let mut after: Option<SegmentCursor> = None;
    loop {
        let mut options = PageOptions::new().limit(MAX_PAGE_LIMIT);
        if let Some(cursor) = after.take() {
            options = options.after(cursor);
        }
        let page = segments
            .list(&org, options)
            .map_err(|e| failure::library("list", e))?;
        for s in &page.segments {
            writeln!(
                out.writer(),
                "{},{},{},{},{}",
                csv_field(&s.name),
                s.current_size,
                s.id,
                rfc3339(s.created_at),
                csv_field(&s.source)
            )
            .map_err(|e| out.failed(e))?;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    out.flush()
}

/// A CSV field: quoted, with quotes doubled, when it holds a comma, a
/// quote or a line end.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn fields_are_quoted_when_they_must_be() {
        assert_eq!(csv_field("Leads"), "Leads");
        assert_eq!(csv_field("A, B"), "\"A, B\"");
        assert_eq!(csv_field("the \"best\""), "\"the \"\"best\"\"\"");
    }
}
