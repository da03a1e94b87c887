//! SQLite-specific tests: configuration, files, schema versions; and the
//! conformance suite on every configuration.

use super::*;
use crate::StorageFailure;
use crate::{NewSegment, Segments};
use rusqlite::TransactionBehavior;

fn file_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("segments.db")).unwrap();
    (dir, store)
}

#[cfg(feature = "conformance")]
mod conformance {
    use super::*;

    mod in_memory {
        use super::*;
        crate::conformance_tests!(SqliteStore::open_in_memory().unwrap());
    }

    mod in_memory_through_arc_dyn {
        use super::*;
        crate::conformance_tests!(
            Arc::new(SqliteStore::open_in_memory().unwrap()) as Arc<dyn SegmentStore>
        );
    }

    mod wal_file {
        use super::*;
        crate::conformance_tests!(file_store());
    }

    mod wal_file_full_sync {
        use super::*;
        crate::conformance_tests!({
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::builder()
                .synchronous(Synchronous::Full)
                .open(dir.path().join("segments.db"))
                .unwrap();
            (dir, store)
        });
    }

    mod wal_file_through_arc_dyn {
        use super::*;
        crate::conformance_tests!({
            let (dir, store) = file_store();
            (dir, Arc::new(store) as Arc<dyn SegmentStore>)
        });
    }
}

fn pragma(conn: &Connection, name: &str) -> String {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| {
        r.get::<_, rusqlite::types::Value>(0)
    })
    .map(|v| match v {
        rusqlite::types::Value::Integer(i) => i.to_string(),
        rusqlite::types::Value::Text(t) => t,
        other => format!("{other:?}"),
    })
    .unwrap()
}

#[test]
fn every_connection_gets_the_pragmas() {
    let (_dir, store) = file_store();
    let check = |conn: &Connection, role: &str| {
        assert_eq!(pragma(conn, "journal_mode"), "wal", "{role}: WAL");
        assert_eq!(
            pragma(conn, "synchronous"),
            "1",
            "{role}: synchronous=NORMAL"
        );
        assert_eq!(pragma(conn, "foreign_keys"), "1", "{role}: foreign_keys=ON");
        assert_eq!(
            pragma(conn, "busy_timeout"),
            "5000",
            "{role}: busy_timeout 5 s"
        );
    };
    check(&store.writer(), "writer");
    store
        .read(|conn| {
            check(conn, "reader");
            assert_eq!(pragma(conn, "query_only"), "1", "readers are read-only");
            Ok(())
        })
        .unwrap();
    let full = SqliteStore::builder()
        .synchronous(Synchronous::Full)
        .open(_dir.path().join("full.db"))
        .unwrap();
    assert_eq!(
        pragma(&full.writer(), "synchronous"),
        "2",
        "synchronous=FULL when chosen"
    );
}

#[cfg(feature = "conformance")]
#[test]
fn a_reopened_file_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("segments.db");
    crate::conformance::reopened_store_keeps_everything(&|| {
        Box::new(SqliteStore::open(&path).unwrap()) as Box<dyn SegmentStore>
    });
}

#[test]
fn readers_do_not_wait_for_the_writer() {
    let (_dir, store) = file_store();
    let org = OrgId::new("acme").unwrap();
    let segments = Segments::new(store.clone());
    let s = segments.create(&org, NewSegment::new("Readable")).unwrap();
    // Hold the write lock with an open write transaction...
    let mut writer = store.writer();
    let tx = writer
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    tx.execute("UPDATE segments SET name = 'uncommitted'", [])
        .unwrap();
    // ...and read from this same thread: a reader that waited would hang.
    let read = segments.get(&org, s.id).unwrap();
    assert_eq!(
        read.name, "Readable",
        "readers see the last commit, not the open transaction"
    );
    drop(tx);
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("segments.db");
    drop(SqliteStore::open(&path).unwrap());
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO segments_schema VALUES (?1, 0)",
            [schema::LATEST + 1],
        )
        .unwrap();
        // Leave the file in rollback-journal mode: the refused open must not
        // even switch it to WAL.
        conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooNew { found, supported } if found == schema::LATEST + 1 && supported == schema::LATEST),
        "got {err:?}"
    );
    assert!(
        err.to_string().contains("newer"),
        "the message says why: {err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file is byte for byte untouched"
    );
}

#[test]
fn a_file_missing_one_of_its_tables_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("segments.db");
    drop(SqliteStore::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE segment_heads")
        .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageFailure::Corrupt), "{err:?}");
    let chain = format!("{:?}", std::error::Error::source(&err));
    assert!(
        chain.contains("segment_heads"),
        "the cause names the table: {chain}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not.db");
    std::fs::write(
        &path,
        b"this is not a SQLite database, just some text, long enough to have a header",
    )
    .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "got {err:?}");
    let source = std::error::Error::source(&err).expect("the SQLite error is chained");
    assert!(
        source.downcast_ref::<rusqlite::Error>().is_some(),
        "the source keeps its type"
    );
}

#[test]
fn a_failure_mid_batch_applies_nothing() {
    let (_dir, store) = file_store();
    let org = OrgId::new("acme").unwrap();
    let segments = Segments::new(store.clone());
    let s = segments.create(&org, NewSegment::new("Atomic")).unwrap();
    segments.add_members(&org, s.id, &["p-a", "p-b"]).unwrap();
    // Make the storage fail on one PID in the middle of a batch.
    store
        .writer()
        .execute_batch(
            "CREATE TRIGGER fail_on_boom BEFORE INSERT ON segment_memberships
             WHEN NEW.pid = 'p-m' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
    let err = segments
        .add_members(&org, s.id, &["p-a", "p-c", "p-m", "p-z"])
        .unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "got {err:?}");
    let members: Vec<_> = segments
        .members(&org, s.id, crate::MemberOptions::new())
        .unwrap()
        .members
        .into_iter()
        .map(|m| m.pid.as_str().to_owned())
        .collect();
    assert_eq!(
        members,
        ["p-a", "p-b"],
        "no PID of the failed call was applied"
    );
    assert_eq!(
        segments.get(&org, s.id).unwrap().current_size,
        2,
        "the size did not move"
    );
    // The store keeps working for other calls.
    store
        .writer()
        .execute_batch("DROP TRIGGER fail_on_boom")
        .unwrap();
    assert_eq!(
        segments
            .add_members(&org, s.id, &["p-c"])
            .unwrap()
            .new_current_size,
        3
    );
}

/// The query plan of `sql` (its parameters unbound), its steps joined by
/// `; `.
fn plan(conn: &Connection, sql: &str) -> String {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let mut rows = stmt.raw_query();
    let mut steps = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        steps.push(row.get::<_, String>(3).unwrap());
    }
    steps.join("; ")
}

#[test]
fn every_query_reads_an_index_in_order() {
    let store = SqliteStore::open_in_memory().unwrap();
    let conn = store.writer();
    let list = "SELECT id FROM segments WHERE org = ?1 AND (created_at, id) > (?2, ?3)
                ORDER BY created_at, id LIMIT ?4";
    let cases: &[(&str, &[&str])] = &[
        (
            segments::LOCATE,
            &["USING INDEX sqlite_autoindex_segments_1 (id=?)"],
        ),
        (
            list,
            &["INDEX segments_by_creation (org=? AND (created_at,id)>(?,?))"],
        ),
        (
            members::CLASSIFY,
            &[
                "SCAN r VIRTUAL TABLE",
                "SEARCH p USING COVERING INDEX sqlite_autoindex_segment_people_1 (org=? AND pid=?)",
                "SEARCH m USING PRIMARY KEY (segment=? AND person=?)",
            ],
        ),
        (members::NEW_PEOPLE, &["SCAN rarray VIRTUAL TABLE"]),
        (
            members::INSERT_MEMBERS,
            &[
                "SCAN r VIRTUAL TABLE",
                "SEARCH p USING INTEGER PRIMARY KEY (rowid=?)",
            ],
        ),
        (
            members::REJOIN,
            &["USING PRIMARY KEY (segment=? AND person=?)"],
        ),
        (
            members::TOUCH,
            &["USING PRIMARY KEY (segment=? AND person=?)"],
        ),
        (
            members::LEAVE,
            &["USING PRIMARY KEY (segment=? AND person=?)"],
        ),
        (
            members::ACTIVE_AMONG,
            &[
                "SCAN r VIRTUAL TABLE",
                "SEARCH p USING COVERING INDEX sqlite_autoindex_segment_people_1 (org=? AND pid=?)",
                "SEARCH m USING PRIMARY KEY (segment=? AND person=?)",
            ],
        ),
        (members::MEMBERS_SEQ, &["USING PRIMARY KEY (segment=?)"]),
        (ledger::LAST_SEQ, &["USING PRIMARY KEY (org=?)"]),
        (as_of::SIZE_AT, &["USING PRIMARY KEY (segment=? AND at<?)"]),
        (
            members::AFTER,
            &[
                "USING COVERING INDEX segment_memberships_active (segment=? AND (first_added_at,pid)>(?,?))",
            ],
        ),
        (
            members::AT_OFFSET,
            &["USING COVERING INDEX segment_memberships_active (segment=?)"],
        ),
        (
            ledger::SINCE,
            &[
                "SEARCH l USING PRIMARY KEY (org=? AND seq>?)",
                "SEARCH p USING INTEGER PRIMARY KEY (rowid=?)",
            ],
        ),
        (
            ledger::PERSON,
            &["USING COVERING INDEX sqlite_autoindex_segment_people_1 (org=? AND pid=?)"],
        ),
        (
            ledger::TIMELINE,
            &["SEARCH l USING INDEX segment_ledger_by_person (person=? AND seq>?)"],
        ),
        (
            as_of::EVER_AFTER,
            &[
                "USING COVERING INDEX segment_memberships_ever (segment=? AND (first_added_at,pid)>(?,?) AND first_added_at<?)",
            ],
        ),
        (
            as_of::LAST_ENTRY,
            &["USING INDEX segment_ledger_by_person (person=?)"],
        ),
        (
            deaths::SIGNALS,
            &[
                "SEARCH d USING INTEGER PRIMARY KEY (rowid>?)",
                "SEARCH p USING COVERING INDEX sqlite_autoindex_segment_people_1 (org=? AND pid=?)",
                "SEARCH m USING PRIMARY KEY (segment=? AND person=?)",
            ],
        ),
        (
            keys::GET,
            &["USING INDEX sqlite_autoindex_segment_keys_1 (org=? AND key=?)"],
        ),
        (
            keys::FORGET_EXPIRED,
            &["USING COVERING INDEX segment_keys_by_expiry (org=? AND expires_at<?)"],
        ),
    ];
    for (sql, expected) in cases {
        let plan = plan(&conn, sql);
        for step in *expected {
            assert!(plan.contains(step), "{sql}\nshould use {step}: {plan}");
        }
        assert!(
            !plan.contains("TEMP B-TREE"),
            "{sql}\nneeds no sort: {plan}"
        );
        for step in plan.split("; ").filter(|s| s.starts_with("SCAN")) {
            assert!(
                step.contains("VIRTUAL TABLE"),
                "{sql}\nscans only the batch, never a table: {plan}"
            );
        }
    }
}

#[test]
fn deleting_a_segment_deletes_its_membership_rows() {
    let (_dir, store) = file_store();
    let org = OrgId::new("acme").unwrap();
    let segments = Segments::new(store.clone());
    let s = segments.create(&org, NewSegment::new("Gone")).unwrap();
    let kept = segments.create(&org, NewSegment::new("Kept")).unwrap();
    segments.add_members(&org, s.id, &["p-a", "p-b"]).unwrap();
    segments.remove_members(&org, s.id, &["p-a"]).unwrap();
    segments.add_members(&org, kept.id, &["p-a"]).unwrap();
    segments.delete(&org, s.id).unwrap();
    let rows: i64 = store
        .writer()
        .query_row("SELECT count(*) FROM segment_memberships", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "only the other segment's membership row is left");
}

#[test]
fn two_stores_on_one_file_keep_one_gapless_ledger() {
    // Each store has its own write connection and remembers its orgs' ledger
    // tails; a commit by the other must make it look again.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = Segments::new(SqliteStore::open(&path).unwrap());
    let b = Segments::new(SqliteStore::open(&path).unwrap());
    let org = OrgId::new("acme").unwrap();
    let s = a.create(&org, NewSegment::new("Shared")).unwrap();
    for round in 0..20 {
        let (writer, other) = if round % 3 == 0 { (&b, &a) } else { (&a, &b) };
        writer
            .add_members(&org, s.id, &[format!("p-{round}")])
            .unwrap();
        if round % 5 == 0 {
            other
                .remove_members(&org, s.id, &[format!("p-{round}")])
                .unwrap();
        }
        // A create's entry is its row: the other store must count it too.
        if round % 4 == 1 {
            let made = other
                .create(&org, NewSegment::new(format!("Made {round}")))
                .unwrap();
            if round % 8 == 1 {
                writer.delete(&org, made.id).unwrap();
            }
        }
    }
    let feed = a.changes_since(&org, 0, 1_000).unwrap();
    let seqs: Vec<u64> = feed.changes.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "one gapless ledger"
    );
    assert_eq!(
        seqs.len(),
        1 + 20 + 4 + 5 + 3,
        "every change of both stores is in it"
    );
    assert_eq!(
        b.changes_since(&org, 0, 1_000).unwrap(),
        feed,
        "both stores read the same ledger"
    );
}

#[test]
fn a_create_writes_its_row_its_ledger_entry_and_its_orgs_head() {
    let (_dir, store) = file_store();
    let org = OrgId::new("acme").unwrap();
    let segments = Segments::new(store.clone());
    let count = |sql: &str| -> i64 { store.writer().query_row(sql, [], |r| r.get(0)).unwrap() };
    let a = segments.create(&org, NewSegment::new("A")).unwrap();
    segments.create(&org, NewSegment::new("B")).unwrap();
    assert_eq!(count("SELECT count(*) FROM segments"), 2);
    assert_eq!(
        count("SELECT count(*) FROM segment_ledger WHERE kind = 1"),
        2,
        "one Created row each"
    );
    assert_eq!(
        count("SELECT last_seq FROM segment_heads WHERE org = 'acme'"),
        2,
        "the head holds the last seq"
    );
    assert_eq!(
        count("SELECT last_at FROM segment_heads WHERE org = 'acme'"),
        a.created_at
            .timestamp_micros()
            .max(count("SELECT max(at) FROM segment_ledger")),
        "and the last entry's time"
    );
    // A failed create (a duplicate name) leaves the head where it was.
    assert!(segments.create(&org, NewSegment::new("a")).is_err());
    assert_eq!(
        count("SELECT last_seq FROM segment_heads WHERE org = 'acme'"),
        2
    );
}

/// The org, a store on a fresh file with one segment of three members, and
/// the segment's id.
fn seeded_store() -> (tempfile::TempDir, SqliteStore, OrgId, SegmentId) {
    let (dir, store) = file_store();
    let org = OrgId::new("acme").unwrap();
    let segments = Segments::new(store.clone());
    let s = segments.create(&org, NewSegment::new("Seeded")).unwrap();
    segments
        .add_members(&org, s.id, &["p-a", "p-b", "p-c"])
        .unwrap();
    (dir, store, org, s.id)
}

#[test]
fn a_read_only_file_reads_and_refuses_writes_cleanly() {
    let (dir, store, org, id) = seeded_store();
    drop(store);
    let path = dir.path().join("segments.db");
    // `mode=ro` makes the file read-only even for root, as a read-only
    // mount would.
    let uri = format!("file:{}?mode=ro", path.display());
    let segments =
        Segments::new(SqliteStore::open(&uri).expect("a read-only file opens for reading"));
    assert_eq!(
        segments.get(&org, id).unwrap().current_size,
        3,
        "reads work"
    );
    let refused = [
        segments.create(&org, NewSegment::new("New")).map(drop),
        segments.add_members(&org, id, &["p-d"]).map(drop),
        segments.remove_members(&org, id, &["p-a"]).map(drop),
        segments.rename(&org, id, "Renamed").map(drop),
        segments.delete(&org, id),
    ];
    for result in refused {
        let err = result.expect_err("a write to a read-only file fails");
        assert_eq!(
            err.storage_kind(),
            Some(StorageFailure::ReadOnly),
            "a typed read-only error: {err:?}"
        );
        assert_eq!(err.status_code(), 500);
    }
    assert_eq!(
        segments.get(&org, id).unwrap().current_size,
        3,
        "nothing was changed"
    );
    assert_eq!(
        segments.changes_since(&org, 0, 100).unwrap().changes.len(),
        4,
        "nothing was recorded"
    );
}

#[test]
fn a_full_database_fails_whole_calls_and_recovers() {
    let (_dir, store, org, id) = seeded_store();
    let segments = Segments::new(store.clone());
    let pages: i64 = store
        .writer()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    // No room for more pages: a big batch cannot fit.
    store
        .writer()
        .pragma_update(None, "max_page_count", pages)
        .unwrap();
    let big: Vec<String> = (0..5_000).map(|i| format!("p-{i:08}")).collect();
    let err = segments.add_members(&org, id, &big).unwrap_err();
    assert_eq!(
        err.storage_kind(),
        Some(StorageFailure::Full),
        "a typed full error: {err:?}"
    );
    assert!(
        err.to_string().contains("full"),
        "the message says so: {err}"
    );
    assert_eq!(
        segments.get(&org, id).unwrap().current_size,
        3,
        "nothing of the batch was applied"
    );
    assert_eq!(
        segments
            .members(&org, id, crate::MemberOptions::new())
            .unwrap()
            .members
            .len(),
        3,
        "no member was added"
    );
    assert_eq!(
        segments.changes_since(&org, 0, 100).unwrap().changes.len(),
        4,
        "nothing was recorded"
    );
    // Reads and small writes that fit go on; room again, the batch goes in.
    segments.remove_members(&org, id, &["p-a"]).unwrap();
    store
        .writer()
        .pragma_update(None, "max_page_count", 1_000_000)
        .unwrap();
    assert_eq!(
        segments
            .add_members(&org, id, &big)
            .unwrap()
            .new_current_size,
        5_002
    );
}

#[test]
fn a_corrupt_file_is_a_typed_error_and_other_stores_go_on() {
    let (dir, store, org, id) = seeded_store();
    drop(store);
    let path = dir.path().join("segments.db");
    // Damage every page after the header page.
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().skip(4096) {
        *b = 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = match SqliteStore::open(&path) {
        Err(e) => e,
        Ok(store) => Segments::new(store).get(&org, id).unwrap_err(),
    };
    assert_eq!(
        err.storage_kind(),
        Some(StorageFailure::Corrupt),
        "a typed corruption error: {err:?}"
    );
    // The process keeps working with other databases.
    let (_other_dir, other) = file_store();
    let segments = Segments::new(other);
    segments
        .create(&org, NewSegment::new("Elsewhere"))
        .expect("another store works");
}

#[test]
fn a_missing_directory_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(dir.path().join("no/such/dir/segments.db")).unwrap_err();
    assert_eq!(
        err.storage_kind(),
        Some(StorageFailure::CannotOpen),
        "{err:?}"
    );
}

#[test]
fn keyed_writes_forget_a_bounded_number_of_expired_keys() {
    use crate::limits::EXPIRED_KEYS_PER_WRITE;
    let clock = crate::clock::ManualClock::new(chrono::Utc::now());
    let (_dir, store) = file_store();
    let segments = Segments::new(store.clone())
        .with_clock(clock.clone())
        .with_idempotency_ttl(Duration::from_secs(60));
    let org = OrgId::new("acme").unwrap();
    let s = segments.create(&org, NewSegment::new("s")).unwrap();
    let used = EXPIRED_KEYS_PER_WRITE + 10;
    for i in 0..used {
        segments
            .with_idempotency_key(format!("k-{i}"))
            .add_members(&org, s.id, &["p-a"])
            .unwrap();
    }
    let held = || -> usize {
        let n: i64 = store
            .writer()
            .query_row("SELECT count(*) FROM segment_keys", [], |r| r.get(0))
            .unwrap();
        n as usize
    };
    assert_eq!(held(), used);
    clock.advance(chrono::TimeDelta::minutes(2));
    segments
        .with_idempotency_key("k-new")
        .add_members(&org, s.id, &["p-a"])
        .unwrap();
    assert_eq!(
        held(),
        used - EXPIRED_KEYS_PER_WRITE + 1,
        "64 forgotten, one new"
    );
    segments
        .with_idempotency_key("k-newer")
        .add_members(&org, s.id, &["p-a"])
        .unwrap();
    assert_eq!(held(), 2, "the rest forgotten by the next keyed write");
}
