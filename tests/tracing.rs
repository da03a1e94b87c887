//! The `tracing` feature: every call of the service is a span with its org,
//! segment, counts and outcome; a storage failure is an `ERROR` event with
//! its chain; and no PID, name or description is written above `DEBUG`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use segments_engine::{
    Error, MemoryStore, NewSegment, OrgId, PersonDirectory, Pid, Segments, SetExpr,
};
use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Every line a subscriber wrote, kept.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

impl Lines {
    fn json(&self) -> Vec<Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON lines"))
            .collect()
    }
}

/// A directory that is down: its error has a cause, and the cause's
/// second line quotes a PID (as a database's detail line might).
#[derive(Debug)]
struct DownDirectory;

impl PersonDirectory for DownDirectory {
    fn known(&self, _: &OrgId, pids: &[Pid]) -> segments_engine::Result<Vec<bool>> {
        Err(Error::storage(std::io::Error::other(format!(
            "directory unreachable\nDETAIL: while asking for {}",
            pids[0].as_str()
        ))))
    }
}

/// Runs `f` under a JSON subscriber at `TRACE`, recording span closes.
fn capture(f: impl FnOnce()) -> Vec<Value> {
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(lines.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::CLOSE)
        .with_current_span(true)
        .with_span_list(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    lines.json()
}

const SECRET_PIDS: [&str; 2] = ["p-a1b2c3d4e5f6", "p-x9y8z7w6v5u4"];
const SECRET_NAME: &str = "Patients of Dr Who";
const SECRET_DESCRIPTION: &str = "diagnosed 2024";

/// The span closes named `name`, as their field maps.
fn closes<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["fields"]["message"] == "close" && l["span"]["name"] == name)
        .map(|l| &l["span"])
        .collect()
}

#[test]
fn calls_are_spans_with_org_segment_counts_and_outcome() {
    let segments = Segments::new(MemoryStore::new());
    let org = OrgId::new("acme").unwrap();
    let mut id = None;
    let lines = capture(|| {
        let s = segments
            .create(
                &org,
                NewSegment::new(SECRET_NAME).description(SECRET_DESCRIPTION),
            )
            .unwrap();
        id = Some(s.id);
        segments
            .add_members(
                &org,
                s.id,
                &[SECRET_PIDS[0], SECRET_PIDS[1], SECRET_PIDS[0], "bad!"],
            )
            .unwrap();
        segments
            .with_idempotency_key("k-1")
            .remove_members(&org, s.id, &[SECRET_PIDS[1]])
            .unwrap();
        segments
            .with_idempotency_key("k-1")
            .remove_members(&org, s.id, &[SECRET_PIDS[1]])
            .unwrap();
        segments
            .dry_run()
            .add_from(&org, s.id, &SetExpr::segment(s.id))
            .unwrap();
        assert!(segments.create(&org, NewSegment::new(SECRET_NAME)).is_err());
        segments.members_page(&org, s.id, 1).unwrap();
    });
    let id = id.unwrap().to_string();

    let create = closes(&lines, "segments.create");
    assert_eq!(create.len(), 2);
    assert_eq!(create[0]["org"], "acme");
    assert_eq!(create[0]["segment"], id.as_str(), "the new segment's id");
    assert_eq!(create[0]["outcome"], "ok");
    assert_eq!(
        create[1]["outcome"], "duplicate_name",
        "the error's code, not its text"
    );

    let add = closes(&lines, "segments.add_members")[0];
    assert_eq!(add["segment"], id.as_str());
    assert_eq!(add["n_pids"], 4);
    assert_eq!(add["n_added"], 2);
    assert_eq!(add["n_redundant_additions"], 1);
    assert_eq!(add["n_invalid"], 1);
    assert_eq!(add["size"], 2);

    let removes = closes(&lines, "segments.remove_members");
    assert_eq!(removes.len(), 2);
    assert_eq!(
        (&removes[0]["keyed"], &removes[0]["replayed"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    assert_eq!(removes[1]["replayed"], true, "the retry is a replay");
    assert_eq!(removes[1]["n_deleted"], 1, "with the first outcome");

    let dry = closes(&lines, "segments.dry_run.add_from")[0];
    assert_eq!(dry["outcome"], "ok");
    let page = closes(&lines, "segments.members_page")[0];
    assert_eq!(
        (&page["n_items"], &page["size"]),
        (&Value::from(1), &Value::from(1))
    );

    // The duplicate's message (with the name) is at DEBUG only.
    assert!(lines.iter().any(|l| {
        l["level"] == "DEBUG"
            && l["fields"]["error"]
                .as_str()
                .is_some_and(|e| e.contains(SECRET_NAME))
    }));
    assert_nothing_secret_above_debug(&lines);
}

#[test]
fn storage_failures_are_error_events_with_their_chain() {
    let segments = Segments::new(MemoryStore::new()).with_person_directory(DownDirectory);
    let org = OrgId::new("acme").unwrap();
    let s = segments.create(&org, NewSegment::new(SECRET_NAME)).unwrap();
    let lines = capture(|| {
        assert!(segments.add_members(&org, s.id, &SECRET_PIDS).is_err());
    });
    let add = closes(&lines, "segments.add_members")[0];
    assert_eq!(add["outcome"], "storage");
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{lines:#?}");
    let chain = errors[0]["fields"]["error"].as_str().unwrap();
    assert!(
        chain.contains("directory unreachable"),
        "the cause is in the chain: {chain}"
    );
    let debug_chain = lines
        .iter()
        .find(|l| l["level"] == "DEBUG" && l["fields"]["error"].is_string())
        .expect("a DEBUG event with the whole chain");
    assert!(
        debug_chain["fields"]["error"]
            .as_str()
            .unwrap()
            .contains(SECRET_PIDS[0]),
        "DEBUG keeps every line"
    );
    assert_nothing_secret_above_debug(&lines);
}

fn assert_nothing_secret_above_debug(lines: &[Value]) {
    for line in lines
        .iter()
        .filter(|l| l["level"] != "DEBUG" && l["level"] != "TRACE")
    {
        let text = line.to_string();
        for secret in SECRET_PIDS
            .iter()
            .chain([&SECRET_NAME, &SECRET_DESCRIPTION])
        {
            assert!(
                !text.contains(secret),
                "{secret:?} written at {}: {text}",
                line["level"]
            );
        }
    }
}
