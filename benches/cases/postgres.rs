//! PostgreSQL: `create` and the 0 → size fill on `PostgresStore`, beside
//! raw `postgres` statements doing the same work on the same server, in the
//! same run. The server is the throwaway one the tests use
//! (`tests/support/postgres.rs`: started once for the run, in a temporary
//! directory, default durability settings), or the one
//! `SEGMENTS_POSTGRES_URL` names. Each side writes in a schema of its own,
//! created fresh.

use std::time::Instant;

use postgres::{Client, NoTls};
use segments_engine::{NewSegment, OrgId, PostgresStore, Segments};

use super::pids::{self, PidForm};
use super::{BATCH, Case, Config, Fill, FillRoutine, Routine, Target, count, timed};

#[path = "../../tests/support/postgres.rs"]
pub(super) mod server;

/// The org every case writes to.
const ORG: &str = "acme";

/// A fresh schema name.
pub(super) fn fresh_schema(what: &str) -> String {
    format!(
        "bench_{what}_{}",
        uuid::Uuid::now_v7().simple().to_string().get(20..).unwrap()
    )
}

/// A store in a fresh schema (created with the crate's tables).
pub(super) fn store(schema: &str) -> PostgresStore {
    PostgresStore::builder(&server::url())
        .schema(schema)
        .pool_size(2)
        .connect()
        .expect("the bench server accepts the store")
}

/// A raw connection whose unqualified names are in `schema`.
pub(super) fn raw(schema: &str) -> Client {
    let mut client = Client::connect(&server::url(), NoTls).expect("a raw connection");
    client
        .batch_execute(&format!("SET search_path TO {schema}"))
        .unwrap();
    client
}

/// `create` on PostgresStore vs the same work as raw statements in one
/// transaction on the same server: lock the org's head row, insert the
/// segment row, insert its `Created` ledger row, move the head, commit;
/// with a fresh UUID v7 and the clock, as a create takes them. The raw
/// side prepares its statements once; the store as configured by
/// default runs them unprepared (PgBouncer-safe), and with
/// `prepared_statements` keeps them as the raw side does.
pub fn create(prepared_statements: bool) -> Case {
    let lib_schema = fresh_schema("create_lib");
    let lib_store = PostgresStore::builder(&server::url())
        .schema(&lib_schema)
        .pool_size(2)
        .prepared_statements(prepared_statements)
        .connect()
        .expect("the bench server accepts the store");
    let segments = Segments::new(lib_store);
    let org = OrgId::new(ORG).unwrap();
    let mut n = 0u64;
    let library: Routine = Box::new(move |iters| {
        timed(iters, || {
            n += 1;
            segments
                .create(&org, NewSegment::new(format!("segment {n}")))
                .unwrap();
        })
    });

    let floor_schema = fresh_schema("create_floor");
    drop(store(&floor_schema));
    let mut client = raw(&floor_schema);
    client
        .execute(
            "INSERT INTO segment_heads (org, last_seq, last_at) VALUES ($1, 0, 0)",
            &[&ORG],
        )
        .unwrap();
    let lock = client
        .prepare("SELECT last_seq, last_at FROM segment_heads WHERE org = $1 FOR UPDATE")
        .unwrap();
    let insert = client
        .prepare(
            "INSERT INTO segments (org, id, name, name_key, description, source, created_at, updated_at)
             VALUES ($1, $2, $3, $4, NULL, 'api', $5, $5)",
        )
        .unwrap();
    let entry = client
        .prepare(
            "INSERT INTO segment_ledger (org, seq, at, request_id, segment, kind, name)
             VALUES ($1, $2, $3, NULL, $4, 1, $5)",
        )
        .unwrap();
    let head = client
        .prepare("UPDATE segment_heads SET last_seq = $2, last_at = $3 WHERE org = $1")
        .unwrap();
    let mut m = 0u64;
    let floor: Routine = Box::new(move |iters| {
        timed(iters, || {
            m += 1;
            let name = format!("segment {m}");
            let id = uuid::Uuid::now_v7();
            let now = chrono::Utc::now().timestamp_micros();
            let mut tx = client.transaction().unwrap();
            let row = tx.query_one(&lock, &[&ORG]).unwrap();
            let (last_seq, last_at): (i64, i64) = (row.get(0), row.get(1));
            let (seq, at) = (last_seq + 1, now.max(last_at));
            tx.execute(&insert, &[&ORG, &id, &name, &name, &at])
                .unwrap();
            tx.execute(&entry, &[&ORG, &seq, &at, &id, &name]).unwrap();
            tx.execute(&head, &[&ORG, &seq, &at]).unwrap();
            tx.commit().unwrap();
        })
    });
    let (id, name) = if prepared_statements {
        (
            "create/postgres_prepared",
            "create, PostgresStore with prepared_statements(true) (direct connections) vs raw tx on the same server (head lock, segment row, ledger row, head update)",
        )
    } else {
        (
            "create/postgres",
            "create, PostgresStore (default: unprepared, PgBouncer-safe) vs raw tx on the same server (head lock, segment row, ledger row, head update)",
        )
    };
    Case {
        id: id.into(),
        name: name.into(),
        unit: "creates",
        ops_per_iter: 1,
        target: Target::RatioAtLeast(0.8),
        library,
        floor,
    }
}

/// `add_members` on PostgresStore vs the least any store with history
/// must do (SPEC §8): a raw `unnest($1::text[])` upsert of the same PIDs
/// into a plain `(segment, pid, first_added_at, last_added_at)` table with
/// the key `(segment, pid)`, **plus** a plain insert of one ledger row per
/// entry `(org, seq, segment, pid, at)` with the key `(org, seq)`, one
/// transaction per batch, on the same server; text keys `COLLATE "C"`;
/// each fill in a fresh schema. The upsert alone is reported beside it.
pub fn fill(config: Config, form: PidForm) -> Fill {
    let size = config.size;
    let library: FillRoutine = Box::new(move || {
        let schema = fresh_schema("fill_lib");
        let segments = Segments::new(store(&schema));
        let org = OrgId::new(ORG).unwrap();
        let id = segments.create(&org, NewSegment::new("fill")).unwrap().id;
        let mut times = Vec::with_capacity((size / BATCH) as usize);
        for b in 0..size / BATCH {
            let batch = pids::batch(form, b * BATCH, BATCH);
            let start = Instant::now();
            let out = segments.add_members(&org, id, &batch).unwrap();
            times.push(start.elapsed());
            assert_eq!(out.n_added, BATCH);
        }
        assert_eq!(segments.get(&org, id).unwrap().current_size, size);
        drop(segments);
        drop_schema(&schema);
        times
    });
    Fill {
        id: format!("add_members/postgres/{}", form.tag()),
        name: format!(
            "add_members fill 0 -> {}, {}-PID batches, PostgresStore vs raw unnest upsert + one ledger row per entry, 1 tx/batch, same server, {}",
            count(size),
            count(BATCH),
            form.describe()
        ),
        size,
        // A PostgreSQL fill of 1M takes about half a minute.
        fills: 1,
        whole: Target::RatioAtLeast(0.7),
        last: Target::RatioAtLeast(0.7),
        library,
        floor: raw_fill(size, form, Raw::WithLedger),
        also: vec![
            ("the upsert alone", raw_fill(size, form, Raw::Upsert)),
            (
                "the floor with a per-person timeline index",
                raw_fill(size, form, Raw::WithTimeline),
            ),
            (
                "the floor with the timeline and list-order indexes",
                raw_fill(size, form, Raw::WithReadIndexes),
            ),
        ],
    }
}

/// What a raw fill writes.
#[derive(Clone, Copy, PartialEq)]
enum Raw {
    /// The `unnest` upsert of each batch into a plain membership table.
    Upsert,
    /// The upsert and a plain insert of one ledger row per PID: the floor.
    WithLedger,
    /// The floor, with one B-tree more on the ledger, `(org, pid, seq)`:
    /// the least a store needs to read one person's timeline without
    /// reading the whole ledger. Reported beside the floor, to show what
    /// such an index costs on its own.
    WithTimeline,
    /// [`Raw::WithTimeline`], and a B-tree of the memberships in list
    /// order, `(segment, first_added_at, pid)`: the least a store needs for
    /// member pages that cost O(page) at any depth. These two indexes are
    /// what PostgresStore's reads rest on (its own are keyed by person
    /// numbers), so this row is the fill's work with nothing of the
    /// library's own.
    WithReadIndexes,
}

/// The raw fill, in one transaction per batch.
fn raw_fill(size: u64, form: PidForm, raw: Raw) -> FillRoutine {
    let ledger = raw != Raw::Upsert;
    Box::new(move || {
        let schema = fresh_schema("fill_floor");
        let mut client = Client::connect(&server::url(), NoTls).unwrap();
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {schema};
                 CREATE TABLE {schema}.memberships (
                     segment        bigint,
                     pid            text COLLATE \"C\",
                     first_added_at bigint,
                     last_added_at  bigint,
                     PRIMARY KEY (segment, pid)
                 );
                 CREATE TABLE {schema}.ledger (
                     org     text COLLATE \"C\",
                     seq     bigint,
                     segment bigint,
                     pid     text COLLATE \"C\",
                     at      bigint,
                     PRIMARY KEY (org, seq)
                 );"
            ))
            .unwrap();
        if matches!(raw, Raw::WithTimeline | Raw::WithReadIndexes) {
            client
                .batch_execute(&format!(
                    "CREATE INDEX ledger_by_pid ON {schema}.ledger (org, pid, seq)"
                ))
                .unwrap();
        }
        if raw == Raw::WithReadIndexes {
            client
                .batch_execute(&format!(
                    "CREATE INDEX memberships_in_order
                         ON {schema}.memberships (segment, first_added_at, pid)"
                ))
                .unwrap();
        }
        let upsert = client
            .prepare(&format!(
                "INSERT INTO {schema}.memberships (segment, pid, first_added_at, last_added_at)
                 SELECT 1, u.pid, $2, $2 FROM unnest($1::text[]) AS u (pid)
                 ON CONFLICT (segment, pid) DO UPDATE SET last_added_at = excluded.last_added_at"
            ))
            .unwrap();
        let entries = client
            .prepare(&format!(
                "INSERT INTO {schema}.ledger (org, seq, segment, pid, at)
                 SELECT $3, $4 + u.n, 1, u.pid, $2
                 FROM unnest($1::text[]) WITH ORDINALITY AS u (pid, n)"
            ))
            .unwrap();
        let mut times = Vec::with_capacity((size / BATCH) as usize);
        let mut seq: i64 = 0;
        for b in 0..size / BATCH {
            let batch = pids::batch(form, b * BATCH, BATCH);
            let start = Instant::now();
            let now = chrono::Utc::now().timestamp_micros();
            let mut tx = client.transaction().unwrap();
            tx.execute(&upsert, &[&batch, &now]).unwrap();
            if ledger {
                tx.execute(&entries, &[&batch, &now, &ORG, &seq]).unwrap();
                seq += batch.len() as i64;
            }
            tx.commit().unwrap();
            times.push(start.elapsed());
        }
        let mut count = |table: &str| -> u64 {
            let n: i64 = client
                .query_one(&format!("SELECT count(*) FROM {schema}.{table}"), &[])
                .unwrap()
                .get(0);
            n as u64
        };
        assert_eq!(count("memberships"), size);
        assert_eq!(count("ledger"), if ledger { size } else { 0 });
        drop(client);
        drop_schema(&schema);
        times
    })
}

fn drop_schema(schema: &str) {
    Client::connect(&server::url(), NoTls)
        .unwrap()
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}
