//! Durable backends: everything survives a reopen.

use super::*;

/// For durable backends: everything written survives closing and reopening
/// the store: segments with every field, renames, deletions (the name stays
/// free), members with their timestamps, sizes, and the history of removed
/// members (a re-add after the reopen restores `first_added_at`).
///
/// `open` opens the same database each time it is called; the store it
/// returns is dropped before the next call. Not part of
/// [`conformance_tests!`]: a backend calls it with its own `open`.
///
/// Like every function of the suite, it uses an org and ids of its own, so
/// `open` may open a database that holds other data too.
pub fn reopened_store_keeps_everything(open: &dyn Fn() -> Box<dyn SegmentStore>) {
    let ns = Namespace::new();
    let acme = ns.org("acme");
    let clock = ManualClock::new(start());
    let ids = ns.ids();
    let written = {
        let store = open();
        let segments = Segments::new(&*store)
            .with_clock(clock.clone())
            .with_id_generator(ids.clone());
        let kept = segments
            .create(
                &acme,
                NewSegment::new("Kept")
                    .description("across opens")
                    .source("import"),
            )
            .unwrap();
        let renamed = segments.create(&acme, NewSegment::new("Renamed")).unwrap();
        let renamed = segments.rename(&acme, renamed.id, "Renamed Again").unwrap();
        let deleted = segments.create(&acme, NewSegment::new("Deleted")).unwrap();
        segments.delete(&acme, deleted.id).unwrap();
        segments
            .add_members(&acme, kept.id, &["p-a", "p-b", "p-c"])
            .unwrap();
        clock.advance(TimeDelta::seconds(1));
        segments.remove_members(&acme, kept.id, &["p-b"]).unwrap();
        let members = every_member(&segments, &acme, kept.id);
        let ledger = whole_ledger(&segments, &acme);
        (
            vec![segments.get(&acme, kept.id).unwrap(), renamed],
            members,
            ledger,
        )
    };
    let store = open();
    let segments = Segments::new(&*store)
        .with_clock(clock.clone())
        .with_id_generator(ids);
    assert_eq!(
        all(&segments, &acme),
        written.0,
        "every segment and change survives a reopen, exactly"
    );
    let kept = written.0[0].id;
    assert_eq!(
        every_member(&segments, &acme, kept),
        written.1,
        "members and their timestamps survive a reopen"
    );
    assert_eq!(
        whole_ledger(&segments, &acme),
        written.2,
        "the ledger survives a reopen"
    );
    assert_duplicate(
        segments.create(&acme, NewSegment::new("kept")),
        "kept",
        "uniqueness after a reopen",
    );
    segments
        .create(&acme, NewSegment::new("deleted"))
        .expect("a deleted name stays free after a reopen");
    clock.advance(TimeDelta::seconds(1));
    segments.add_members(&acme, kept, &["p-b"]).unwrap();
    let back = every_member(&segments, &acme, kept);
    assert_eq!(
        back[1].pid.as_str(),
        "p-b",
        "the re-added member is back in its original place"
    );
    assert_eq!(
        back[1].first_added_at,
        start_micros(),
        "history of a removed member survives a reopen"
    );
    let ledger = whole_ledger(&segments, &acme);
    let next: Vec<u64> = ledger[written.2.len()..].iter().map(|c| c.seq).collect();
    let from = written.2.len() as u64 + 1;
    assert_eq!(
        next,
        (from..from + next.len() as u64).collect::<Vec<_>>(),
        "the ledger goes on without a gap after a reopen"
    );
}
