//! SQLite files that fail: read-only, full, corrupt, missing; each a
//! typed error that changes nothing.

use super::tests::file_store;
use super::*;
use crate::PageOptions;
use crate::StorageFailure;
use crate::{NewSegment, Segments};

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
        segments
            .changes_since(&org, PageOptions::new().limit(100))
            .unwrap()
            .changes
            .len(),
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
            .members(&org, id, PageOptions::new())
            .unwrap()
            .members
            .len(),
        3,
        "no member was added"
    );
    assert_eq!(
        segments
            .changes_since(&org, PageOptions::new().limit(100))
            .unwrap()
            .changes
            .len(),
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
