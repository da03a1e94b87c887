//! The PostgreSQL schema, its version table and its migrations.
//!
//! The version lives in `segments_schema`, a table of the crate's own in
//! the store's schema. Migrations are plain SQL, applied in order inside
//! one transaction that first takes a transaction-scoped advisory lock, so
//! that servers starting at the same moment take turns.

use r2d2_postgres::postgres::{Client, IsolationLevel, Transaction};

use super::PostgresDb;
use crate::error::{Field, Rule, ValidationError};
use crate::store::entries::SQL_TABLES;
use crate::{Error, Result, StorageFailure};

/// Migration `i` takes the schema from version `i` to `i + 1`. They run
/// with the store's schema alone on the `search_path`, set for their
/// transaction only (`SET LOCAL`).
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: org heads, segments, people, memberships, the ledger, sizes over
    // time, death records and the death feed's head.
    r#"
    -- Each org's ledger head: the last seq given and the last entry's time.
    -- Every write of the org locks it first and moves it before commit, so
    -- the org's writes take turns and seq order is commit order.
    CREATE TABLE segment_heads (
        org      text COLLATE "C" PRIMARY KEY,
        last_seq bigint NOT NULL CHECK (last_seq >= 0),
        last_at  bigint NOT NULL
    );
    CREATE TABLE segments (
        org          text COLLATE "C" NOT NULL,
        id           uuid   NOT NULL,
        name         text   NOT NULL,
        name_key     text COLLATE "C" NOT NULL,
        description  text,
        source       text   NOT NULL,
        current_size bigint NOT NULL DEFAULT 0 CHECK (current_size >= 0),
        created_at   bigint NOT NULL,
        updated_at   bigint NOT NULL,
        CONSTRAINT segments_pkey PRIMARY KEY (org, id),
        CONSTRAINT segments_name_key_unique UNIQUE (org, name_key)
    );
    -- Ids are unique across orgs, as in every backend.
    CREATE UNIQUE INDEX segments_id_unique ON segments (id);
    CREATE INDEX segments_by_creation ON segments (org, created_at, id);
    -- Everyone who ever joined one of an org's segments, numbered as they
    -- first did: the big indexes hold the number, which grows as people
    -- arrive, so filling a segment appends to them. People are never
    -- deleted (their timelines outlive segments).
    CREATE TABLE segment_people (
        org    text COLLATE "C" NOT NULL,
        pid    text COLLATE "C" NOT NULL,
        person bigint GENERATED ALWAYS AS IDENTITY,
        CONSTRAINT segment_people_pkey PRIMARY KEY (org, pid),
        CONSTRAINT segment_people_number UNIQUE (org, person)
    );
    -- Memberships go with their segment: a delete removes them in the same
    -- transaction (no foreign key, which would cost a trigger per row on
    -- the hot insert path; the org's head lock keeps the two consistent).
    CREATE TABLE segment_memberships (
        org            text COLLATE "C" NOT NULL,
        segment        uuid   NOT NULL,
        person         bigint NOT NULL,
        pid            text COLLATE "C" NOT NULL,
        first_added_at bigint NOT NULL,
        last_added_at  bigint NOT NULL,
        removed_at     bigint,
        CONSTRAINT segment_memberships_pkey PRIMARY KEY (org, segment, person)
    );
    -- Active members in list order; pages are index-only scans.
    CREATE INDEX segment_memberships_active
        ON segment_memberships (org, segment, first_added_at, pid) INCLUDE (last_added_at, person)
        WHERE removed_at IS NULL;
    -- Those who left, in list order: members_as_of merges the two. (Two
    -- partial indexes rather than one of everyone: a fill writes only the
    -- first, and no index but the key starts with (org, segment) without
    -- a condition on removed_at, so a lookup of one membership can only
    -- take the key.)
    CREATE INDEX segment_memberships_removed
        ON segment_memberships (org, segment, first_added_at, pid) INCLUDE (person)
        WHERE removed_at IS NOT NULL;
    -- The ledger: every change, numbered per org in commit order. Segments
    -- are named by id, so entries outlive the segments they describe.
    CREATE TABLE segment_ledger (
        org         text COLLATE "C" NOT NULL,
        seq         bigint   NOT NULL,
        at          bigint   NOT NULL,
        request_id  text,
        segment     uuid     NOT NULL,
        kind        smallint NOT NULL,
        person      bigint,
        name        text,
        description text,
        op          bigint,
        CONSTRAINT segment_ledger_pkey PRIMARY KEY (org, seq)
    );
    -- Set operations: the segments an operation read and the org's seq it
    -- read them at. Its entries name it by its first entry's seq
    -- (segment_ledger.op).
    CREATE TABLE segment_ops (
        org     text COLLATE "C" NOT NULL,
        op      bigint NOT NULL,
        sources uuid[] NOT NULL,
        read_at bigint NOT NULL,
        CONSTRAINT segment_ops_pkey PRIMARY KEY (org, op)
    );
    CREATE INDEX segment_ledger_by_person
        ON segment_ledger (org, person, seq)
        WHERE person IS NOT NULL;
    -- A segment's size after each call that changed its members, by seq,
    -- with the call's time (times never go back within an org).
    CREATE TABLE segment_sizes (
        org     text COLLATE "C" NOT NULL,
        segment uuid   NOT NULL,
        seq     bigint NOT NULL,
        at      bigint NOT NULL,
        size    bigint NOT NULL CHECK (size >= 0),
        CONSTRAINT segment_sizes_pkey PRIMARY KEY (org, segment, seq)
    );
    CREATE INDEX segment_sizes_by_time ON segment_sizes (org, segment, at, seq);
    -- Death records, shared by every org; seq is the death feed's order,
    -- taken from the feed's head row, locked by each ingestion.
    CREATE TABLE death_feed_head (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        last_seq bigint  NOT NULL CHECK (last_seq >= 0)
    );
    INSERT INTO death_feed_head (only_row, last_seq) VALUES (true, 0);
    CREATE TABLE death_records (
        seq                          bigint PRIMARY KEY,
        obituary_id                  text COLLATE "C" NOT NULL UNIQUE,
        pid                          text COLLATE "C" NOT NULL,
        date_of_death                date   NOT NULL,
        publication_last_update_date date,
        first_observed_at            bigint NOT NULL,
        source                       text   NOT NULL,
        obituary_url                 text,
        publication_name             text,
        confidence_score             double precision NOT NULL,
        updated_at                   bigint NOT NULL
    );
    -- Idempotency keys: what the first keyed write with each key did,
    -- until the key expires (keyed writes forget a few expired keys each,
    -- oldest first, by segment_keys_by_expiry).
    CREATE TABLE segment_keys (
        org         text COLLATE "C" NOT NULL,
        key         text COLLATE "C" NOT NULL,
        fingerprint bytea  NOT NULL CHECK (length(fingerprint) = 32),
        outcome     bytea  NOT NULL,
        request_id  text,
        recorded_at bigint NOT NULL,
        expires_at  bigint NOT NULL,
        CONSTRAINT segment_keys_pkey PRIMARY KEY (org, key)
    );
    CREATE INDEX segment_keys_by_expiry ON segment_keys (org, expires_at);
    "#,
];

/// The schema version this build of the crate writes and reads.
pub(super) const LATEST: i32 = MIGRATIONS.len() as i32;

/// The tables of the latest schema, each of which a usable schema holds.
pub(super) fn tables() -> impl Iterator<Item = &'static str> {
    SQL_TABLES.iter().copied().chain(["death_feed_head"])
}

/// Checks a schema name: a lowercase SQL identifier that needs no quoting.
pub(super) fn check_name(schema: &str) -> Result<()> {
    let ok = (1..=63).contains(&schema.len())
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            Field::Schema,
            Rule::Malformed {
                expected: "a lowercase SQL identifier of 1 to 63 of [a-z0-9_]",
            },
        )
        .into())
    }
}

/// `schema` as a quoted SQL identifier, for statements that name it.
pub(super) fn quoted(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

/// The advisory lock key of a schema's migrations: a stable 64-bit hash
/// (FNV-1a) of `segments:` and the schema name, the same in every process.
fn lock_key(schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "segments:".bytes().chain(schema.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash as i64
}

/// The schema version of `schema`; 0 for one this crate never touched.
fn version(client: &mut impl postgres_like::Queries, schema: &str) -> Result<i32> {
    let has_table: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables
                            WHERE schemaname = $1 AND tablename = 'segments_schema')",
            &[&schema],
        )?
        .try_get(0)
        .db()?;
    if !has_table {
        return Ok(0);
    }
    client
        .query_one(
            &format!(
                "SELECT coalesce(max(version), 0) FROM {}.segments_schema",
                quoted(schema)
            ),
            &[],
        )?
        .try_get(0)
        .db()
}

/// Refuses a schema from a newer version of the crate, before anything is
/// written to it.
fn check_not_newer(client: &mut impl postgres_like::Queries, schema: &str) -> Result<i32> {
    let found = version(client, schema)?;
    if found > LATEST {
        return Err(Error::SchemaTooNew {
            found: i64::from(found),
            supported: i64::from(LATEST),
        });
    }
    Ok(found)
}

/// Brings `schema` up to [`LATEST`], in one transaction (as every
/// statement of the store, so that it works through a pooler that hands
/// each transaction another session): reads the version; if it is older,
/// takes the schema's advisory lock (held to commit), reads the version
/// again and runs the missing migrations. Then checks that every table is
/// there.
pub(super) fn migrate(client: &mut Client, schema: &str) -> Result<()> {
    // Read committed whatever the server's default, so that the reads
    // after the lock see what a migration before this one committed.
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .db()?;
    if check_not_newer(&mut tx, schema)? < LATEST {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(schema)])
            .db()?;
        let current = check_not_newer(&mut tx, schema)?;
        if current < LATEST {
            // Only a schema that is not there is created: `CREATE SCHEMA IF
            // NOT EXISTS` asks for `CREATE` on the database even when the
            // schema exists, which the owner of a schema made for it may
            // not have. (Every migration holds the lock, so no other
            // process creates it in between.)
            let exists: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
                    &[&schema],
                )
                .db()?
                .try_get(0)
                .db()?;
            let name = quoted(schema);
            if !exists {
                tx.batch_execute(&format!("CREATE SCHEMA {name}")).db()?;
            }
            tx.batch_execute(&format!(
                "SET LOCAL search_path TO {name};
                 CREATE TABLE IF NOT EXISTS {name}.segments_schema (
                     version    integer PRIMARY KEY,
                     applied_at bigint  NOT NULL
                 );"
            ))
            .db()?;
            let now = chrono::Utc::now().timestamp_micros();
            let record =
                format!("INSERT INTO {name}.segments_schema (version, applied_at) VALUES ($1, $2)");
            for (from, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                tx.batch_execute(sql).db()?;
                tx.execute(&record, &[&(from as i32 + 1), &now]).db()?;
            }
        }
    }
    check_tables(&mut tx, schema)?;
    tx.commit().db()
}

/// Checks that a schema at the latest version holds every table of it: one
/// that lost a table is refused with [`StorageFailure::Corrupt`] at
/// connect, rather than failing at its first write.
fn check_tables(client: &mut Transaction<'_>, schema: &str) -> Result<()> {
    let found: Vec<String> = client
        .query(
            "SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = $1",
            &[&schema],
        )
        .db()?
        .iter()
        .map(|row| row.try_get(0).db())
        .collect::<Result<_>>()?;
    for table in tables() {
        if !found.iter().any(|t| t == table) {
            return Err(Error::storage_failure(
                StorageFailure::Corrupt,
                format!(
                    "schema {schema} is at version {LATEST} but has no table {table}: \
                     something removed it; recreate the schema"
                ),
            ));
        }
    }
    Ok(())
}

/// What `version` needs of a client or a transaction.
mod postgres_like {
    use r2d2_postgres::postgres::types::ToSql;
    use r2d2_postgres::postgres::{Client, Row, Transaction};

    use super::super::PostgresDb;
    use crate::Result;

    pub(super) trait Queries {
        fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row>;
    }

    impl Queries for Client {
        fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
            Client::query_one(self, sql, params).db()
        }
    }

    impl Queries for Transaction<'_> {
        fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
            Transaction::query_one(self, sql, params).db()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_hold_no_settings() {
        for sql in MIGRATIONS {
            let lower = sql.to_ascii_lowercase();
            let sets = lower
                .lines()
                .map(str::trim_start)
                .filter(|l| !l.starts_with("--"))
                .any(|l| l.starts_with("set ") || l.contains("search_path"));
            assert!(!sets, "migrations hold no session settings: {sql}");
        }
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["segments", "segments_eu", "s1", "_x"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1s",
            "Segments",
            "seg ments",
            "seg;drop",
            "a-b",
            &"s".repeat(64),
        ] {
            assert!(
                check_name(bad).unwrap_err().to_string().contains("schema"),
                "{bad:?} is refused, naming the field"
            );
        }
    }

    #[test]
    fn lock_keys_are_stable_and_differ_by_schema() {
        assert_eq!(lock_key("segments"), lock_key("segments"));
        assert_ne!(lock_key("segments"), lock_key("segments_eu"));
    }
}
