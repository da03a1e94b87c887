//! Imports: [`Segments::import_members`] streams any number of PIDs in
//! batches, counts every PID once, and resumes under an idempotency key.

use super::*;
use crate::limits::{IMPORT_BATCH_SIZE, MAX_IMPORT_INVALID_REPORTED};

/// An import counts every PID it reads exactly once (added, redundant or
/// invalid, malformed repeats included), reports the first malformed ones
/// with their positions in the input, and applies batches of 10,000: the
/// counts a user reconciles against the rows of their file.
pub fn an_import_counts_every_pid_once(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Imported")).unwrap();
    let known = ns.pid("p-known");
    segments.add_members(&acme, s.id, &[&known]).unwrap();
    // 25,000 lines: 20,000 distinct PIDs (the first 5,000 twice), a PID
    // already a member, and 150 malformed lines (30 texts, 5 times each).
    let total = 2 * IMPORT_BATCH_SIZE + 5_000;
    let line = |i: usize| -> String {
        if i % 167 == 5 && i / 167 < 150 {
            format!("bad line {}", (i / 167) % 30)
        } else if i == 11 {
            known.clone()
        } else {
            ns.pid(&format!("p-{:06}", i % 20_000))
        }
    };
    let n_bad = (0..total)
        .filter(|&i| i % 167 == 5 && i / 167 < 150)
        .count() as u64;
    assert_eq!(n_bad, 150, "the fixture has 150 malformed lines");
    let out = segments
        .import_members(&acme, s.id, (0..total).map(line))
        .unwrap();
    assert_eq!(out.n_batches, 3, "25,000 PIDs are three batches");
    assert_eq!(out.n_invalid, n_bad, "every malformed occurrence counts");
    assert_eq!(
        out.n_added + out.n_redundant_additions + out.n_invalid,
        total as u64,
        "added + redundant + invalid is the number of PIDs read: {out:?}"
    );
    let distinct_new = (0..total)
        .filter(|&i| !(i % 167 == 5 && i / 167 < 150) && i != 11)
        .map(|i| i % 20_000)
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    assert_eq!(out.n_added, distinct_new, "each new PID is added once");
    assert_eq!(
        out.new_current_size,
        distinct_new + 1,
        "the size after the last batch"
    );
    assert_eq!(
        segments.get(&acme, s.id).unwrap().current_size,
        out.new_current_size,
        "the stored size agrees"
    );
    assert_eq!(
        out.invalid_pids.len(),
        MAX_IMPORT_INVALID_REPORTED,
        "the first 100 malformed occurrences are listed"
    );
    let expected: Vec<(u64, String)> = (0..total)
        .filter(|&i| i % 167 == 5 && i / 167 < 150)
        .take(MAX_IMPORT_INVALID_REPORTED)
        .map(|i| (i as u64, line(i)))
        .collect();
    let listed: Vec<(u64, String)> = out
        .invalid_pids
        .iter()
        .map(|p| (p.position, p.pid.clone()))
        .collect();
    assert_eq!(
        listed, expected,
        "in input order, each with its 0-based position in the whole input"
    );
}

/// An empty import applies nothing and reports the segment's size; an
/// import into an unknown segment is `NotFound` and changes nothing.
pub fn an_empty_or_misdirected_import_changes_nothing(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Quiet")).unwrap();
    segments
        .add_members(&acme, s.id, &ns.pids(["p-a", "p-b"]))
        .unwrap();
    let before = segments.last_seq(&acme).unwrap();
    let out = segments
        .import_members(&acme, s.id, std::iter::empty::<&str>())
        .unwrap();
    assert_eq!(
        out,
        ImportOutcome {
            new_current_size: 2,
            ..ImportOutcome::default()
        },
        "no batches, the segment's size"
    );
    let missing = SegmentId::from_uuid(uuid::Uuid::nil());
    let pids = ns.pids(["p-c"]);
    assert_not_found(
        segments.import_members(&acme, missing, &pids).map(|_| ()),
        missing,
        "an import into an unknown segment",
    );
    assert_not_found(
        segments
            .import_members(&acme, missing, std::iter::empty::<&str>())
            .map(|_| ()),
        missing,
        "an empty import into an unknown segment",
    );
    assert_eq!(
        segments.last_seq(&acme).unwrap(),
        before,
        "nothing was recorded"
    );
}

/// An import under an idempotency key `k` makes batch `i` with the key
/// `k/i`: after a crash partway, rerunning the same import with the same
/// key replays the batches that committed and applies the rest, so the
/// totals are the uninterrupted import's and the ledger records each PID's
/// join once. The same key over other input is a conflict.
pub fn a_keyed_import_resumes_where_it_stopped(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Resumed")).unwrap();
    let total = 2 * IMPORT_BATCH_SIZE + 1_234;
    let pids: Vec<String> = (0..total).map(|i| ns.pid(&format!("p-{:06}", i))).collect();
    let keyed = segments.with_idempotency_key("import-1");
    // A "crash" after the first batch: the first 10,000 PIDs only, then
    // the process stops.
    let first = keyed
        .import_members(&acme, s.id, &pids[..IMPORT_BATCH_SIZE])
        .unwrap();
    assert_eq!(
        (first.n_batches, first.n_added),
        (1, IMPORT_BATCH_SIZE as u64)
    );
    let rerun = keyed.import_members(&acme, s.id, &pids).unwrap();
    assert_eq!(
        (rerun.n_batches, rerun.n_added, rerun.n_redundant_additions),
        (3, total as u64, 0),
        "the replayed batch counts as it did the first time: {rerun:?}"
    );
    assert_eq!(rerun.new_current_size, total as u64);
    let again = keyed.import_members(&acme, s.id, &pids).unwrap();
    assert_eq!(again, rerun, "a whole rerun replays every batch");
    let joins = whole_ledger(&segments, &acme)
        .iter()
        .filter(|c| matches!(c.kind, ChangeKind::MemberAdded { .. }))
        .count();
    assert_eq!(joins, total, "the ledger records each PID's join once");
    let other: Vec<String> = (0..10).map(|i| ns.pid(&format!("p-x{i}"))).collect();
    assert!(
        matches!(
            keyed.import_members(&acme, s.id, &other),
            Err(Error::IdempotencyConflict { .. })
        ),
        "the same key over another input is a conflict"
    );
    assert_eq!(
        segments.get(&acme, s.id).unwrap().current_size,
        total as u64,
        "and applies nothing"
    );
    let long = "k".repeat(crate::limits::MAX_IDEMPOTENCY_KEY_BYTES - 20);
    assert_invalid(
        segments
            .with_idempotency_key(long)
            .import_members(&acme, s.id, &other),
        Field::IdempotencyKey,
        "a key with no room for the batch suffix",
    );
}
