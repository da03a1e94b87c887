//! The SQLite schema, its version table and its migrations.
//!
//! The version lives in `segments_schema`, a table of the crate's own (not
//! `PRAGMA user_version`, which a host may use for its own tables in the same
//! file). Migrations are plain SQL, applied in order inside one `IMMEDIATE`
//! transaction; they hold no PRAGMAs.

use rusqlite::{Connection, TransactionBehavior};

use super::SqliteDb;
use crate::store::entries::SQL_TABLES;
use crate::{Error, Result, StorageFailure};

/// Migration `i` takes the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: org heads, segments, people, memberships, the ledger, sizes over
    // time, death records, idempotency keys.
    "-- Each org's ledger head: the last seq given and the last entry's
    -- time. Every write reads it, takes the next seqs and a time no
    -- earlier than last_at, and moves it, in its own transaction.
    CREATE TABLE segment_heads (
        org      TEXT    PRIMARY KEY,
        last_seq INTEGER NOT NULL CHECK (last_seq >= 0),
        last_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE segments (
        number       INTEGER PRIMARY KEY,
        id           BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),
        org          TEXT    NOT NULL,
        name         TEXT    NOT NULL,
        name_key     TEXT    NOT NULL,
        description  TEXT,
        source       TEXT    NOT NULL,
        current_size INTEGER NOT NULL DEFAULT 0 CHECK (current_size >= 0),
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX segments_by_name_key ON segments (org, name_key);
    CREATE INDEX segments_by_creation ON segments (org, created_at, id);
    -- Everyone who ever joined one of an org's segments, numbered in the
    -- order they first did: the big indexes below hold the number, which
    -- grows as people arrive, so filling a segment appends to them. People
    -- are never deleted (their timelines outlive segments), so the tables
    -- that hold a person number need no foreign key to keep it valid.
    CREATE TABLE segment_people (
        person INTEGER PRIMARY KEY,
        org    TEXT    NOT NULL,
        pid    TEXT    NOT NULL,
        UNIQUE (org, pid)
    );
    CREATE TABLE segment_memberships (
        segment        INTEGER NOT NULL REFERENCES segments (number) ON DELETE CASCADE,
        person         INTEGER NOT NULL,
        pid            TEXT    NOT NULL,
        first_added_at INTEGER NOT NULL,
        last_added_at  INTEGER NOT NULL,
        removed_at     INTEGER,
        PRIMARY KEY (segment, person)
    ) WITHOUT ROWID;
    -- Active members in list order. Covering, so pages are index-only:
    -- removed_at (always NULL here) is listed so that the queries'
    -- `removed_at IS NULL` is answered from the index too.
    CREATE INDEX segment_memberships_active
        ON segment_memberships (segment, first_added_at, pid, last_added_at, removed_at)
        WHERE removed_at IS NULL;
    -- Everyone who ever joined, in list order, for members_as_of.
    CREATE INDEX segment_memberships_ever
        ON segment_memberships (segment, first_added_at, pid);
    -- The ledger: every change, numbered per org in commit order. Segments
    -- are named by id, so entries outlive the segments they describe.
    CREATE TABLE segment_ledger (
        org         TEXT    NOT NULL,
        seq         INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        request_id  TEXT,
        segment     BLOB    NOT NULL,
        kind        INTEGER NOT NULL,
        person      INTEGER,
        name        TEXT,
        description TEXT,
        op          INTEGER,
        PRIMARY KEY (org, seq)
    ) WITHOUT ROWID;
    -- Set operations: the segments an operation read (16-byte ids, in
    -- order) and the org's seq it read them at. Its entries name it by its
    -- first entry's seq (segment_ledger.op).
    CREATE TABLE segment_ops (
        org     TEXT    NOT NULL,
        op      INTEGER NOT NULL,
        sources BLOB    NOT NULL,
        read_at INTEGER NOT NULL,
        PRIMARY KEY (org, op)
    ) WITHOUT ROWID;
    CREATE INDEX segment_ledger_by_person
        ON segment_ledger (person, seq)
        WHERE person IS NOT NULL;
    -- A segment's size after each call that changed its members, with the
    -- call's time and seq (times never go back within an org, so time
    -- order is seq order): size_as_of is one index read.
    CREATE TABLE segment_sizes (
        segment INTEGER NOT NULL REFERENCES segments (number) ON DELETE CASCADE,
        at      INTEGER NOT NULL,
        seq     INTEGER NOT NULL,
        size    INTEGER NOT NULL CHECK (size >= 0),
        PRIMARY KEY (segment, at, seq)
    ) WITHOUT ROWID;
    -- Death records, shared by every org; seq is the death feed's order.
    CREATE TABLE death_records (
        seq                          INTEGER PRIMARY KEY AUTOINCREMENT,
        obituary_id                  TEXT    NOT NULL UNIQUE,
        pid                          TEXT    NOT NULL,
        date_of_death                TEXT    NOT NULL,
        publication_last_update_date TEXT,
        first_observed_at            INTEGER NOT NULL,
        source                       TEXT    NOT NULL,
        obituary_url                 TEXT,
        publication_name             TEXT,
        confidence_score             REAL    NOT NULL,
        updated_at                   INTEGER NOT NULL
    );
    -- Idempotency keys: what the first keyed write with each key did,
    -- until the key expires (keyed writes forget a few expired keys each,
    -- oldest first, by segment_keys_by_expiry).
    CREATE TABLE segment_keys (
        org         TEXT    NOT NULL,
        key         TEXT    NOT NULL,
        fingerprint BLOB    NOT NULL CHECK (length(fingerprint) = 32),
        outcome     BLOB    NOT NULL,
        request_id  TEXT,
        recorded_at INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        UNIQUE (org, key)
    );
    CREATE INDEX segment_keys_by_expiry ON segment_keys (org, expires_at);",
];

/// The schema version this build of the crate writes and reads.
pub(super) const LATEST: i64 = MIGRATIONS.len() as i64;

/// The schema version of the database behind `conn`; 0 for a database this
/// crate never touched. Reads only.
pub(super) fn version(conn: &Connection) -> Result<i64> {
    let has_table: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'segments_schema')",
            [],
            |r| r.get(0),
        )
        .db()?;
    if !has_table {
        return Ok(0);
    }
    conn.query_row(
        "SELECT coalesce(max(version), 0) FROM segments_schema",
        [],
        |r| r.get(0),
    )
    .db()
}

/// Refuses a database from a newer version of the crate, before anything
/// is written to it.
pub(super) fn check_not_newer(conn: &Connection) -> Result<i64> {
    let found = version(conn)?;
    if found > LATEST {
        return Err(Error::SchemaTooNew {
            found,
            supported: LATEST,
        });
    }
    Ok(found)
}

/// Brings the database up to [`LATEST`]. Safe against other processes
/// migrating the same file at the same time: the version is read again under
/// the write lock.
pub(super) fn migrate(conn: &mut Connection, now_micros: i64) -> Result<()> {
    if check_not_newer(conn)? == LATEST {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS segments_schema (
            version    INTEGER PRIMARY KEY,
            applied_at INTEGER NOT NULL
        )",
    )
    .db()?;
    let current = check_not_newer(&tx)?;
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).db()?;
        tx.execute(
            "INSERT INTO segments_schema (version, applied_at) VALUES (?1, ?2)",
            (from as i64 + 1, now_micros),
        )
        .db()?;
    }
    tx.commit().db()
}

/// Checks that a file at the latest version holds every table of it: one
/// that lost a table (dropped by something else), or that a development
/// build wrote under the same version number, is refused at open with
/// [`StorageFailure::Corrupt`] rather than failing at its first write.
pub(super) fn check_tables(conn: &Connection) -> Result<()> {
    let mut exists = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)",
        )
        .db()?;
    for table in SQL_TABLES {
        let found: bool = exists.query_row([table], |r| r.get(0)).db()?;
        if !found {
            return Err(Error::storage_failure(
                StorageFailure::Corrupt,
                format!(
                    "the database is at schema version {LATEST} but has no table {table}: \
                     something removed it, or a development build of the crate wrote \
                     the file; recreate it"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_in_order_and_record_the_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(version(&conn).unwrap(), 0);
        migrate(&mut conn, 1).unwrap();
        assert_eq!(version(&conn).unwrap(), LATEST);
        // A second run is a no-op.
        migrate(&mut conn, 2).unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM segments_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, LATEST, "one row per applied migration");
        let fk_problems: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(fk_problems, 0);
    }

    #[test]
    fn migrations_hold_no_pragmas() {
        for sql in MIGRATIONS {
            assert!(
                !sql.to_ascii_lowercase().contains("pragma"),
                "migrations hold no PRAGMA: {sql}"
            );
        }
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, 1).unwrap();
        conn.execute("INSERT INTO segments_schema VALUES (?1, 0)", [LATEST + 1])
            .unwrap();
        let err = migrate(&mut conn, 2).unwrap_err();
        assert!(
            matches!(err, Error::SchemaTooNew { found, supported } if found == LATEST + 1 && supported == LATEST),
            "got {err:?}"
        );
    }
}
