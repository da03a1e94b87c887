//! `segments history`: the org's change feed as NDJSON, one change a line:
//! `seq`, `at`, `segment_id`, `kind` (`created`, `renamed`,
//! `description_changed`, `deleted`, `member_added`, `member_re_added`,
//! `member_removed`), then `pid`, `name` or `description` as the kind has
//! them, `request_id` when the change had one, and `provenance` (the source
//! segments and the seq they were read at) for changes made by a set
//! operation. `--follow` polls for more until interrupted.

use segments_engine::PageOptions;
use std::io::Write;
use std::thread;
use std::time::Duration;

use segments_engine::limits::MAX_PAGE_LIMIT;
use segments_engine::{Change, ChangeKind};
use serde_json::{Value, json};

use crate::args::{HistoryArgs, Target};
use crate::failure::{self, Failure};
use crate::output::Output;
use crate::store::{self, Open};
use crate::times::rfc3339;

/// Runs `segments history`.
///
/// # Errors
/// A usage error for a bad org or an `--after` past the end of the
/// ledger; a failure when the store fails or stdout cannot be written.
pub(crate) fn run(target: &Target, args: &HistoryArgs) -> Result<(), Failure> {
    let org = store::org(target)?;
    let segments = store::open(target, Open::MustExist)?;
    let mut out = Output::create("-")?;
    let mut after = args.after;
    loop {
        let page = segments
            .changes_since(&org, PageOptions::new().after(after).limit(MAX_PAGE_LIMIT))
            .map_err(|e| failure::library(format!("--after {after}"), e))?;
        for change in &page.changes {
            writeln!(out.writer(), "{}", line(change)).map_err(|e| out.failed(e))?;
        }
        after = page.next;
        if page.changes.len() < MAX_PAGE_LIMIT {
            out.flush()?;
            if !args.follow {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(args.interval_ms));
        }
    }
}

/// One change as a JSON object, its fields in the documented order.
fn line(change: &Change) -> String {
    let mut object: Vec<(&str, Value)> = vec![
        ("seq", json!(change.seq)),
        ("at", json!(rfc3339(change.at))),
        ("segment_id", json!(change.segment_id.to_string())),
    ];
    let (kind, more) = match &change.kind {
        ChangeKind::Created { name, description } => (
            "created",
            vec![("name", json!(name)), ("description", json!(description))],
        ),
        ChangeKind::Renamed { name } => ("renamed", vec![("name", json!(name))]),
        ChangeKind::DescriptionChanged { description } => (
            "description_changed",
            vec![("description", json!(description))],
        ),
        ChangeKind::Deleted => ("deleted", vec![]),
        ChangeKind::MemberAdded { pid } => ("member_added", vec![("pid", json!(pid.as_str()))]),
        ChangeKind::MemberReAdded { pid } => {
            ("member_re_added", vec![("pid", json!(pid.as_str()))])
        }
        ChangeKind::MemberRemoved { pid } => ("member_removed", vec![("pid", json!(pid.as_str()))]),
        _ => ("other", vec![]),
    };
    object.push(("kind", json!(kind)));
    object.extend(more);
    if let Some(request_id) = &change.request_id {
        object.push(("request_id", json!(request_id)));
    }
    if let Some(provenance) = &change.provenance {
        let sources: Vec<String> = provenance.sources.iter().map(ToString::to_string).collect();
        object.push((
            "provenance",
            json!({ "sources": sources, "read_at": provenance.read_at }),
        ));
    }
    let fields: Vec<String> = object
        .iter()
        .map(|(name, value)| format!("{}:{value}", json!(name)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use segments_engine::{Pid, SegmentId};

    #[test]
    fn a_change_is_one_json_object_in_field_order() {
        let change = Change {
            seq: 7,
            at: chrono::DateTime::from_timestamp_micros(1_772_366_400_000_000).unwrap(),
            request_id: Some("r-1".into()),
            segment_id: SegmentId::parse("01a251a1-ec61-7256-8296-7f427df56d2b").unwrap(),
            kind: ChangeKind::MemberAdded {
                pid: Pid::parse("p-a1").unwrap(),
            },
            provenance: None,
        };
        assert_eq!(
            line(&change),
            r#"{"seq":7,"at":"2026-03-01T12:00:00.000000Z","segment_id":"01a251a1-ec61-7256-8296-7f427df56d2b","kind":"member_added","pid":"p-a1","request_id":"r-1"}"#
        );
    }
}
