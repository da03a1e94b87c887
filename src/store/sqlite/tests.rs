//! SQLite-specific tests: configuration, files, schema versions; and the
//! conformance suite on every configuration.

use super::*;
use crate::PageOptions;
use crate::StorageFailure;
use crate::{NewSegment, Segments};
use rusqlite::TransactionBehavior;

pub(super) fn file_store() -> (tempfile::TempDir, SqliteStore) {
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
        .members(&org, s.id, PageOptions::new())
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
    let feed = a
        .changes_since(&org, PageOptions::new().limit(1_000))
        .unwrap();
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
        b.changes_since(&org, PageOptions::new().limit(1_000))
            .unwrap(),
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

#[test]
fn keyed_writes_forget_a_bounded_number_of_expired_keys() {
    let (_dir, store) = file_store();
    let held = || -> usize {
        let n: i64 = store
            .writer()
            .query_row("SELECT count(*) FROM segment_keys", [], |r| r.get(0))
            .unwrap();
        n as usize
    };
    crate::store::rules::keys::check_keyed_writes_forget_a_bounded_number_of_expired_keys(
        store.clone(),
        held,
    );
}
