//! `PostgresStore`: the conformance suite and the PostgreSQL-specific checks
//! (schema versions, concurrent migrations, failures and their kinds,
//! outages), on a throwaway server the tests start themselves, or on the one
//! `SEGMENTS_POSTGRES_URL` names.

#![cfg(all(feature = "postgres", feature = "conformance"))]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::{Client, NoTls};
use segments_engine::{
    Error, NewSegment, OrgId, PageOptions, PostgresStore, Segment, SegmentId, SegmentStore,
    Segments, StorageFailure,
};
use support::postgres::{TestServer, url};

/// A store on the test server, in the schema the conformance tests of this
/// run share (the suite keeps its tests apart by org).
fn store() -> PostgresStore {
    PostgresStore::builder(&url())
        .schema("segments_conformance")
        .connect()
        .expect("the test server accepts the store")
}

mod conformance {
    use super::*;
    segments_engine::conformance_tests!(store());

    mod through_arc_dyn {
        use super::*;
        segments_engine::conformance_tests!(
            std::sync::Arc::new(store()) as std::sync::Arc<dyn SegmentStore>
        );
    }
}

/// The whole suite again with each connection keeping its statements
/// prepared (`PostgresStoreBuilder::prepared_statements`).
mod kept_statements {
    use super::*;

    fn store() -> PostgresStore {
        PostgresStore::builder(&url())
            .schema("segments_conformance")
            .prepared_statements(true)
            .connect()
            .expect("the test server accepts the store")
    }

    segments_engine::conformance_tests!(store());
}

/// The whole suite again, through a role that may only read and write the
/// rows of a schema an owner migrated: what an app server needs once its
/// schema is at the crate's version (the store's docs, "Privileges").
mod least_privilege {
    use std::sync::OnceLock;

    use super::*;

    /// The role and schema are the same on every run (and created if
    /// missing), so a server that `SEGMENTS_POSTGRES_URL` names does not
    /// gather one role per run.
    const ROLE: &str = "segments_test_app";
    const SCHEMA: &str = "segments_least_privilege";

    /// The URL of [`ROLE`], which holds only `USAGE` on [`SCHEMA`] and
    /// `SELECT`, `INSERT`, `UPDATE`, `DELETE` on its tables (and, like any
    /// role, no `CREATE` on the database), set up once per run.
    fn app_url() -> &'static str {
        static URL: OnceLock<String> = OnceLock::new();
        URL.get_or_init(|| {
            // The owner (the test server's superuser) creates and migrates.
            drop(
                PostgresStore::builder(&url())
                    .schema(SCHEMA)
                    .connect()
                    .expect("the owner migrates the schema"),
            );
            ensure_role(ROLE);
            raw(&url())
                .batch_execute(&format!(
                    "GRANT USAGE ON SCHEMA {SCHEMA} TO {ROLE};
                     GRANT SELECT, INSERT, UPDATE, DELETE
                         ON ALL TABLES IN SCHEMA {SCHEMA} TO {ROLE};"
                ))
                .expect("the owner grants the app role its rights");
            role_url(ROLE)
        })
    }

    fn app_store() -> PostgresStore {
        PostgresStore::builder(app_url())
            .schema(SCHEMA)
            .connect()
            .expect("the app role connects to a schema at the crate's version")
    }

    mod conformance {
        use super::*;
        segments_engine::conformance_tests!(app_store());
    }

    #[test]
    fn the_app_role_cannot_migrate_and_says_so() {
        let schema = fresh_schema("unmigrated");
        let err = PostgresStore::builder(app_url())
            .schema(schema.clone())
            .connect()
            .unwrap_err();
        assert_failure(&err, StorageFailure::Other, "permission denied");
        let exists: bool = raw(&url())
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&schema],
            )
            .unwrap()
            .get(0);
        assert!(!exists, "a refused migration leaves nothing behind");
    }

    /// A schema an administrator made for a role that may not create
    /// schemas: the role migrates it, and the store works. Eight servers
    /// start at once, and the role's transactions default to `REPEATABLE
    /// READ`: each migrator still sees what the one before it committed.
    #[test]
    fn the_owner_of_a_schema_made_for_it_migrates_it() {
        const OWNER: &str = "segments_test_owner";
        let schema = fresh_schema("owned");
        ensure_role(OWNER);
        raw(&url())
            .batch_execute(&format!(
                "ALTER ROLE {OWNER} SET default_transaction_isolation = 'repeatable read';
                 CREATE SCHEMA {schema} AUTHORIZATION {OWNER};"
            ))
            .unwrap();
        let outcomes: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        PostgresStore::builder(&role_url(OWNER))
                            .schema(schema.clone())
                            .connect()
                            .map(Segments::new)
                            .and_then(|segments| {
                                segments.create(&org("owned"), NewSegment::new(fresh_schema("s")))
                            })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // The schema goes whatever happened, so that the role owns nothing
        // on a server `SEGMENTS_POSTGRES_URL` names.
        raw(&url())
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .unwrap();
        for outcome in outcomes {
            outcome.expect("the schema's owner migrates it and writes");
        }
    }
}

/// Creates the login role `name` if it is missing (its password is its
/// name, the same for every run), with no rights of its own. Roles belong
/// to the whole server: on one that `SEGMENTS_POSTGRES_URL` names, the
/// tests' roles stay, and the URL's role needs `CREATEROLE`.
fn ensure_role(name: &str) {
    raw(&url())
        .batch_execute(&format!(
            "DO $$ BEGIN
                 CREATE ROLE {name};
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
             END $$;
             ALTER ROLE {name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{name}';"
        ))
        .unwrap();
}

/// The test server's URL, as the role `name` ([`ensure_role`]).
fn role_url(name: &str) -> String {
    with_option(&with_option(&url(), "user", name), "password", name)
}

/// A schema name no other test uses.
fn fresh_schema(what: &str) -> String {
    format!(
        "t_{what}_{}",
        uuid::Uuid::now_v7().simple().to_string().get(20..).unwrap()
    )
}

fn raw(url: &str) -> Client {
    Client::connect(url, NoTls).expect("a raw connection")
}

fn org(name: &str) -> OrgId {
    OrgId::new(name).unwrap()
}

#[test]
fn a_reconnected_store_keeps_everything() {
    let schema = fresh_schema("reopen");
    segments_engine::conformance::reopened_store_keeps_everything(&|| {
        Box::new(
            PostgresStore::builder(&url())
                .schema(schema.clone())
                .connect()
                .unwrap(),
        ) as Box<dyn SegmentStore>
    });
}

#[test]
fn servers_starting_together_migrate_once() {
    let schema = fresh_schema("migrate");
    let stores: Vec<PostgresStore> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let schema = schema.clone();
                scope.spawn(move || {
                    PostgresStore::builder(&url())
                        .schema(schema)
                        .pool_size(2)
                        .connect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().expect("every racing connect succeeds"))
            .collect()
    });
    let mut client = raw(&url());
    let versions: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {schema}.segments_schema"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(versions, 1, "each migration ran once, whoever won the lock");
    // And every store works on the schema they made.
    let org = org("acme");
    for (i, store) in stores.into_iter().enumerate() {
        Segments::new(store)
            .create(&org, NewSegment::new(format!("made by {i}")))
            .expect("a create on the migrated schema");
    }
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let schema = fresh_schema("newer");
    drop(
        PostgresStore::builder(&url())
            .schema(schema.clone())
            .connect()
            .unwrap(),
    );
    let mut client = raw(&url());
    client
        .execute(
            &format!("INSERT INTO {schema}.segments_schema VALUES (99, 0)"),
            &[],
        )
        .unwrap();
    let before: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {schema}.segments_schema"),
            &[],
        )
        .unwrap()
        .get(0);
    let err = PostgresStore::builder(&url())
        .schema(schema.clone())
        .connect()
        .unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooNew { found: 99, .. }),
        "a newer schema is refused: {err:?}"
    );
    let after: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {schema}.segments_schema"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(before, after, "nothing in it was touched");
}

#[test]
fn a_schema_missing_a_table_is_refused_at_connect() {
    let schema = fresh_schema("missing");
    drop(
        PostgresStore::builder(&url())
            .schema(schema.clone())
            .connect()
            .unwrap(),
    );
    raw(&url())
        .batch_execute(&format!("DROP TABLE {schema}.segment_heads"))
        .unwrap();
    let err = PostgresStore::builder(&url())
        .schema(schema)
        .connect()
        .unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageFailure::Corrupt), "{err:?}");
}

#[test]
fn bad_settings_are_typed_errors() {
    let err = PostgresStore::builder(&url())
        .schema("Not A Schema")
        .connect()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid(e) if e.field() == segments_engine::Field::Schema),
        "a bad schema name is Invalid: {err:?}"
    );
    let err = PostgresStore::connect("postgresql://[bad").unwrap_err();
    assert_eq!(
        err.storage_kind(),
        Some(StorageFailure::CannotOpen),
        "{err:?}"
    );
    let err = PostgresStore::builder("postgresql://postgres@127.0.0.1:1/postgres")
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .unwrap_err();
    assert_eq!(
        err.storage_kind(),
        Some(StorageFailure::Unavailable),
        "no server there: {err:?}"
    );
    // A server that takes the connection and never answers: the pool gives
    // up after `connect_timeout`, and the store says `Unavailable` (the
    // socket is held open until then, and closed after).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let err =
            PostgresStore::builder(&format!("postgresql://postgres@127.0.0.1:{port}/postgres"))
                .connect_timeout(Duration::from_millis(500))
                .connect()
                .unwrap_err();
        let _ = done.send(err);
    });
    let held = silent.accept().unwrap();
    let err = outcome
        .recv_timeout(Duration::from_secs(60))
        .expect("connect() returns while the server stays silent");
    drop((held, silent));
    assert_eq!(
        err.storage_kind(),
        Some(StorageFailure::Unavailable),
        "a silent server: {err:?}"
    );
    // A server that answers but refuses: not `Unavailable`, which a host
    // may retry, but `Other`, with the server's reason.
    // (It fails as soon as an attempt is refused, not after the timeout.)
    let err = PostgresStore::builder(&with_option(&url(), "dbname", "no_such_database"))
        .connect_timeout(Duration::from_secs(30))
        .connect()
        .unwrap_err();
    assert_failure(&err, StorageFailure::Other, "no_such_database");
    // A server with no room for another connection: `Unavailable`, which
    // may pass.
    let role = format!("limited_{}", uuid::Uuid::now_v7().simple());
    raw(&url())
        .batch_execute(&format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 0"))
        .unwrap();
    let err = PostgresStore::builder(&with_option(&url(), "user", &role))
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .unwrap_err();
    raw(&url())
        .batch_execute(&format!("DROP ROLE {role}"))
        .unwrap();
    assert_failure(&err, StorageFailure::Unavailable, "too many connections");
    // Without `tls` (feature `postgres-tls`), a URL that requires TLS fails
    // the same way, and never falls back to plain text.
    let err = PostgresStore::builder(&with_option(&url(), "sslmode", "require"))
        .connect_timeout(Duration::from_secs(30))
        .connect()
        .unwrap_err();
    assert_failure(&err, StorageFailure::Other, "TLS");
}

/// `err` is a storage failure of `kind` that keeps its reason (`why`).
fn assert_failure(err: &Error, kind: StorageFailure, why: &str) {
    assert_eq!(err.storage_kind(), Some(kind), "{err:?}");
    assert!(
        format!("{err:?}").contains(why),
        "the error says why ({why}): {err:?}"
    );
}

/// `url` with one more connection option, as a URL query parameter or a
/// `key=value` pair (whichever form `url` has); a later option wins.
fn with_option(url: &str, key: &str, value: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{key}={value}")
    } else {
        format!("{url} {key}={value}")
    }
}

#[test]
fn a_statement_past_its_time_limit_is_a_timeout_and_changes_nothing() {
    let schema = fresh_schema("timeout");
    let segments = Segments::new(
        PostgresStore::builder(&url())
            .schema(schema.clone())
            .connect()
            .unwrap(),
    );
    let org = org("acme");
    let s = segments.create(&org, NewSegment::new("Slow")).unwrap();
    // A trigger that sleeps makes the member call slower than the limit.
    raw(&url())
        .batch_execute(&format!(
            "CREATE FUNCTION {schema}.slow() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
             CREATE TRIGGER slow AFTER INSERT ON {schema}.segment_memberships
                 FOR EACH STATEMENT EXECUTE FUNCTION {schema}.slow();"
        ))
        .unwrap();
    let impatient = Segments::new(
        PostgresStore::builder(&url())
            .schema(schema)
            .statement_timeout(Duration::from_millis(200))
            .connect()
            .unwrap(),
    );
    let err = impatient
        .add_members(&org, s.id, &["p-a", "p-b"])
        .unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageFailure::Timeout), "{err:?}");
    let after = segments.get(&org, s.id).unwrap();
    assert_eq!(after.current_size, 0, "nothing was added");
    assert_eq!(
        segments
            .changes_since(&org, PageOptions::new().limit(10))
            .unwrap()
            .changes
            .len(),
        1,
        "only the create is in the ledger"
    );
}

#[test]
fn a_lock_held_too_long_is_busy_and_changes_nothing() {
    let schema = fresh_schema("busy");
    let segments = Segments::new(
        PostgresStore::builder(&url())
            .schema(schema.clone())
            .lock_timeout(Duration::from_millis(200))
            .connect()
            .unwrap(),
    );
    let org = org("acme");
    let s = segments.create(&org, NewSegment::new("Locked")).unwrap();
    // Another server holds the org's head row in an open transaction.
    let mut other = raw(&url());
    let mut held = other.transaction().unwrap();
    held.query(
        &format!("SELECT 1 FROM {schema}.segment_heads WHERE org = 'acme' FOR UPDATE"),
        &[],
    )
    .unwrap();
    let err = segments.add_members(&org, s.id, &["p-a"]).unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageFailure::Busy), "{err:?}");
    held.rollback().unwrap();
    assert_eq!(segments.get(&org, s.id).unwrap().current_size, 0);
    let out = segments.add_members(&org, s.id, &["p-a"]).unwrap();
    assert_eq!(out.n_added, 1, "once the lock is free, writes go on");
}

#[test]
fn serialization_failures_are_tried_again_up_to_a_bound() {
    let schema = fresh_schema("retry");
    let url = url();
    let segments = Segments::new(
        PostgresStore::builder(&url)
            .schema(schema.clone())
            .max_retries(3)
            .connect()
            .unwrap(),
    );
    let org = org("acme");
    let s = segments.create(&org, NewSegment::new("Contended")).unwrap();
    // The first two ledger inserts fail as a serialization failure would
    // (the sequence is not transactional, so the count survives rollbacks).
    raw(&url)
        .batch_execute(&format!(
            "CREATE SEQUENCE {schema}.failures;
             CREATE FUNCTION {schema}.fail_twice() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN
                      IF nextval('{schema}.failures') <= 2 THEN
                        RAISE EXCEPTION 'injected' USING ERRCODE = '40001';
                      END IF;
                      RETURN NULL;
                    END $$;
             CREATE TRIGGER fail_twice AFTER INSERT ON {schema}.segment_ledger
                 FOR EACH STATEMENT EXECUTE FUNCTION {schema}.fail_twice();"
        ))
        .unwrap();
    let out = segments.add_members(&org, s.id, &["p-a", "p-b"]).unwrap();
    assert_eq!(out.n_added, 2, "the third try went through");
    let feed = segments
        .changes_since(&org, PageOptions::new().limit(10))
        .unwrap()
        .changes;
    assert_eq!(
        feed.len(),
        3,
        "the failed tries left nothing: one create, two adds"
    );
    // A failure that keeps coming is reported once the retries are spent.
    raw(&url)
        .batch_execute(&format!("ALTER SEQUENCE {schema}.failures RESTART"))
        .unwrap();
    let stubborn = Segments::new(
        PostgresStore::builder(&url)
            .schema(schema)
            .max_retries(1)
            .connect()
            .unwrap(),
    );
    let err = stubborn.add_members(&org, s.id, &["p-c"]).unwrap_err();
    let source = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<postgres::Error>())
        .and_then(postgres::Error::code);
    assert_eq!(
        source,
        Some(&postgres::error::SqlState::T_R_SERIALIZATION_FAILURE),
        "the cause is kept: {err:?}"
    );
    assert_eq!(segments.get(&org, s.id).unwrap().current_size, 2);
}

/// Makes the store's pool hold `n` open connections: `n` writes at once to
/// `org`, each holding its connection while it waits for the org's head,
/// which a raw connection holds until all `n` wait; then they go through.
fn fill_the_pool(
    segments: &Segments<PostgresStore>,
    url: &str,
    org: &OrgId,
    id: SegmentId,
    n: usize,
) {
    let mut holder = raw(url);
    let mut held = holder.transaction().unwrap();
    held.query(
        "SELECT 1 FROM segments.segment_heads WHERE org = $1 FOR UPDATE",
        &[&org.as_str()],
    )
    .unwrap();
    let mut watcher = raw(url);
    let mut count = |sql: &str| -> i64 { watcher.query_one(sql, &[]).unwrap().get(0) };
    std::thread::scope(|scope| {
        let calls: Vec<_> = (0..n)
            .map(|t| {
                scope.spawn(move || {
                    let pid = format!("p-warm{t}x{}", uuid::Uuid::now_v7().simple());
                    segments
                        .add_members(org, id, &[pid])
                        .expect("a write that waited for the head")
                })
            })
            .collect();
        while count(
            "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = 'segments-engine' AND wait_event_type = 'Lock'",
        ) < n as i64
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        held.commit().unwrap();
        for call in calls {
            call.join().unwrap();
        }
    });
    assert_eq!(
        count("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'segments-engine'"),
        n as i64,
        "the pool holds {n} connections"
    );
}

/// Every member of a segment, by PID.
fn every_pid(segments: &Segments<PostgresStore>, org: &OrgId, id: SegmentId) -> Vec<String> {
    let mut members = Vec::new();
    let mut options = PageOptions::new().limit(1_000);
    loop {
        let page = segments.members(org, id, options.clone()).unwrap();
        members.extend(page.members.iter().map(|m| m.pid.as_str().to_owned()));
        match page.next {
            Some(next) => options = options.after(next),
            None => return members,
        }
    }
}

/// Members of a segment by batch: the `N` of PIDs `p-<N>x<i>`.
fn batches(pids: &[String], prefix: &str) -> BTreeMap<u32, usize> {
    let mut by_batch = BTreeMap::new();
    for pid in pids {
        let batch = pid
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('x').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{pid} is no PID of a batch {prefix}N"));
        *by_batch.entry(batch).or_default() += 1;
    }
    by_batch
}

/// The server crashes (`pg_ctl stop -m immediate`) while a writer thread
/// runs, and comes back, with the store's default pool and retries: calls
/// during the outage fail with `Unavailable`, never a panic or a hang; the
/// first call after the restart succeeds, even when every connection the
/// pool holds died with the server; every batch is whole, and every call
/// that returned `Ok` is there.
#[test]
fn an_outage_is_a_typed_error_and_nothing_that_returned_is_lost() {
    const POOL: usize = 8;
    const WRITER_BATCH: usize = 2_000;
    let server = TestServer::start();
    let url = server.url();
    let segments = Segments::new(
        PostgresStore::builder(&url)
            .connect_timeout(Duration::from_millis(500))
            .connect()
            .unwrap(),
    );
    let org = org("acme");
    let s = segments
        .create(&org, NewSegment::new("Through an outage"))
        .unwrap();
    let warm = segments.create(&org, NewSegment::new("Warm-up")).unwrap();
    let written = segments.create(&org, NewSegment::new("Written")).unwrap();
    let mut acknowledged = Vec::new();
    let mut batch = 0u32;
    let mut add = |acknowledged: &mut Vec<u32>| {
        batch += 1;
        let pids: Vec<String> = (0..50).map(|i| format!("p-{batch}x{i}")).collect();
        let out = segments.add_members(&org, s.id, &pids)?;
        assert_eq!(out.n_added, 50);
        acknowledged.push(batch);
        Ok::<(), Error>(())
    };
    for _ in 0..5 {
        add(&mut acknowledged).expect("the server is up");
    }
    let stop = AtomicBool::new(false);
    let (writer_acknowledged, after_restart) = std::thread::scope(|scope| {
        // A writer in flight when the server goes: it keeps adding batches
        // of new PIDs, whatever fails, until told to stop.
        let writer = scope.spawn(|| {
            let mut acknowledged = Vec::new();
            for n in 0u32.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let pids: Vec<String> = (0..WRITER_BATCH).map(|i| format!("p-w{n}x{i}")).collect();
                match segments.add_members(&org, written.id, &pids) {
                    Ok(_) => acknowledged.push(n),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            acknowledged
        });
        // Wait for the writer to be under way.
        while every_pid(&segments, &org, written.id).len() < 2 * WRITER_BATCH {
            std::thread::sleep(Duration::from_millis(10));
        }
        server.stop_immediate();
        let mut failures = Vec::new();
        for _ in 0..3 {
            let err = add(&mut acknowledged).expect_err("the server is down");
            failures.push(err.storage_kind());
        }
        assert!(
            failures
                .iter()
                .all(|kind| *kind == Some(StorageFailure::Unavailable)),
            "calls during the outage are Unavailable: {failures:?}"
        );
        server.start_again();
        add(&mut acknowledged).expect("the first call after the restart");
        let after_restart = every_pid(&segments, &org, written.id).len();
        // Let the writer get some batches through the restored server.
        while every_pid(&segments, &org, written.id).len() < after_restart + 2 * WRITER_BATCH {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::SeqCst);
        (
            writer.join().expect("the writer does not panic"),
            after_restart,
        )
    });
    assert!(after_restart > 0, "the writer's first batches are there");

    // Again, every connection of a full pool dies with the server while
    // idle: the first call after the restart replaces them all and goes
    // through, though there are more of them than max_retries.
    fill_the_pool(&segments, &url, &org, warm.id, POOL);
    server.stop_immediate();
    server.start_again();
    add(&mut acknowledged).expect("the first call after a restart that killed a full pool");
    for _ in 0..3 {
        add(&mut acknowledged).expect("normal service");
    }

    let members = every_pid(&segments, &org, s.id);
    let by_batch = batches(&members, "p-");
    for batch in &acknowledged {
        assert_eq!(
            by_batch.get(batch),
            Some(&50),
            "batch {batch} returned Ok and is whole"
        );
    }
    assert_eq!(
        by_batch.len(),
        acknowledged.len(),
        "nothing but the acknowledged batches (the failed calls never reached the server)"
    );
    assert_eq!(
        segments.get(&org, s.id).unwrap().current_size,
        members.len() as u64
    );
    // The writer's: a batch whose call failed may have committed (the
    // connection may have dropped after COMMIT was sent), but whole.
    let written_members = every_pid(&segments, &org, written.id);
    let by_batch = batches(&written_members, "p-w");
    for (batch, count) in &by_batch {
        assert_eq!(*count, WRITER_BATCH, "the writer's batch {batch} is whole");
    }
    for batch in &writer_acknowledged {
        assert!(
            by_batch.contains_key(batch),
            "the writer's batch {batch} returned Ok and is there"
        );
    }
    assert_eq!(
        segments.get(&org, written.id).unwrap().current_size,
        written_members.len() as u64
    );
}

/// `pool_status` counts the pool's connections, and tells those a call
/// holds from the idle ones: here a create that waits on its org's head
/// row, which a raw transaction holds.
#[test]
fn the_pool_status_counts_connections_in_use() {
    let store = PostgresStore::builder(&url())
        .schema("segments_conformance")
        .pool_size(3)
        .connect()
        .unwrap();
    let status = store.pool_status();
    assert_eq!(status.max_size, 3);
    assert!((1..=3).contains(&status.connections), "{status:?}");
    assert_eq!(
        status.idle, status.connections,
        "no call holds one: {status:?}"
    );
    let segments = Segments::new(store.clone());
    let org = org(&fresh_schema("pool_status"));
    segments.create(&org, NewSegment::new("first")).unwrap();
    let mut holder = raw(&url());
    let mut tx = holder.transaction().unwrap();
    tx.execute(
        "SELECT 1 FROM segments_conformance.segment_heads WHERE org = $1 FOR UPDATE",
        &[&org.as_str()],
    )
    .unwrap();
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| segments.create(&org, NewSegment::new("second")));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let status = store.pool_status();
            if status.connections - status.idle == 1 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the waiting create holds a connection: {status:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        tx.commit().unwrap();
        waiting.join().unwrap().unwrap();
    });
    let status = store.pool_status();
    assert_eq!(
        status.idle, status.connections,
        "the create gave it back: {status:?}"
    );
}

/// An async host's calls, connects and drops, on the threads of a tokio
/// runtime: the `postgres` client runs a runtime of its own, which tokio
/// refuses to start on a thread that drives one ("Cannot start a runtime
/// from within a runtime"). The store moves that work off such threads,
/// so each call works there (blocking the thread for its time), and
/// nothing panics or aborts.
mod async_hosts {
    use std::sync::Arc;

    use super::*;

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn multi_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Connects, creates, reads the segment back and drops the store, all
    /// on the calling thread; what was created and read.
    fn connect_call_drop(url: &str, schema: &str) -> (Segment, Segment) {
        let store = PostgresStore::builder(url)
            .schema(schema)
            .pool_size(2)
            .connect()
            .expect("connect works on this thread");
        let segments = Segments::new(store);
        let org = org("async");
        let made = segments
            .create(&org, NewSegment::new(format!("s-{}", uuid::Uuid::now_v7())))
            .expect("a create works on this thread");
        let read = segments
            .get(&org, made.id)
            .expect("a read works on this thread");
        drop(segments);
        (made, read)
    }

    fn check((made, read): (Segment, Segment)) {
        assert_eq!(made, read, "the segment reads back as it was made");
    }

    #[test]
    fn a_current_thread_runtime_thread_connects_calls_and_drops() {
        let (url, schema) = (url(), fresh_schema("async_ct"));
        check(current_thread().block_on(async { connect_call_drop(&url, &schema) }));
    }

    #[test]
    fn a_multi_thread_runtime_worker_connects_calls_and_drops() {
        let (url, schema) = (url(), fresh_schema("async_mt"));
        let rt = multi_thread();
        // In a task, on a worker thread, and in the root future.
        let task = rt.spawn({
            let (url, schema) = (url.clone(), schema.clone());
            async move { connect_call_drop(&url, &schema) }
        });
        check(rt.block_on(task).expect("the task does not panic"));
        check(rt.block_on(async { connect_call_drop(&url, &schema) }));
    }

    #[test]
    fn the_blocking_pool_connects_calls_and_drops() {
        let (url, schema) = (url(), fresh_schema("async_blocking"));
        for rt in [current_thread(), multi_thread()] {
            let (url, schema) = (url.clone(), schema.clone());
            let outcome = rt.block_on(async move {
                tokio::task::spawn_blocking(move || connect_call_drop(&url, &schema)).await
            });
            check(outcome.expect("the blocking task does not panic"));
        }
    }

    /// A store made on a plain thread, its pool holding open connections,
    /// is dropped by a task (an async host's state, at shutdown).
    #[test]
    fn a_store_with_open_connections_drops_on_a_runtime_thread() {
        let (url, schema) = (url(), fresh_schema("async_drop"));
        for rt in [current_thread(), multi_thread()] {
            let store = PostgresStore::builder(&url)
                .schema(schema.clone())
                .pool_size(2)
                .connect()
                .unwrap();
            let segments = Arc::new(Segments::new(store.clone()));
            segments
                .create(
                    &org("async"),
                    NewSegment::new(uuid::Uuid::now_v7().to_string()),
                )
                .unwrap();
            assert!(
                store.pool_status().connections > 0,
                "the pool holds a connection to close"
            );
            drop(store);
            rt.block_on(async move {
                tokio::spawn(async move { drop(segments) })
                    .await
                    .expect("the drop does not panic");
            });
            // And the runtime itself goes, with nothing of the store left.
            drop(rt);
        }
    }

    /// A connect that fails on a runtime thread returns its error: the
    /// half-made store is dropped there too, without a panic.
    #[test]
    fn a_failed_connect_on_a_runtime_thread_is_a_typed_error() {
        let (url, schema) = (url(), fresh_schema("async_newer"));
        drop(
            PostgresStore::builder(&url)
                .schema(schema.clone())
                .connect()
                .unwrap(),
        );
        raw(&url)
            .execute(
                &format!("INSERT INTO {schema}.segments_schema VALUES (99, 0)"),
                &[],
            )
            .unwrap();
        for rt in [current_thread(), multi_thread()] {
            let err = rt
                .block_on(async {
                    PostgresStore::builder(&url)
                        .schema(schema.clone())
                        .connect()
                })
                .unwrap_err();
            assert!(
                matches!(err, Error::SchemaTooNew { found: 99, .. }),
                "a newer schema, refused on a runtime thread: {err:?}"
            );
            let err = rt
                .block_on(async {
                    PostgresStore::builder("postgresql://postgres@127.0.0.1:1/postgres")
                        .connect_timeout(Duration::from_millis(200))
                        .connect()
                })
                .unwrap_err();
            assert_eq!(
                err.storage_kind(),
                Some(StorageFailure::Unavailable),
                "no server there, on a runtime thread: {err:?}"
            );
        }
    }
}

/// The whole suite again through PgBouncer in transaction pooling, stock
/// settings otherwise: each transaction may run on another server session
/// than the one before, and a session may have served other clients.
mod through_pgbouncer {
    use super::*;

    fn store() -> PostgresStore {
        PostgresStore::builder(&support::postgres::pgbouncer())
            .schema("segments_pgbouncer")
            .connect()
            .expect("the store connects through PgBouncer")
    }

    segments_engine::conformance_tests!(store());

    /// After the store's calls of every kind (writes, reads, page reads
    /// with their hint, a failed call), the server sessions PgBouncer hands
    /// out hold nothing of them: no prepared statement, no setting.
    #[test]
    fn the_store_leaves_nothing_on_the_server_sessions() {
        let segments = Segments::new(
            PostgresStore::builder(&support::postgres::pgbouncer())
                .schema("segments_pgbouncer")
                .statement_timeout(Duration::from_secs(7))
                .lock_timeout(Duration::from_secs(3))
                .connect()
                .unwrap(),
        );
        let org = org(&format!("clean-{}", uuid::Uuid::now_v7().simple()));
        let s = segments.create(&org, NewSegment::new("clean")).unwrap();
        segments
            .add_members(&org, s.id, &["p-0001", "p-0002"])
            .unwrap();
        segments.get(&org, s.id).unwrap();
        segments
            .members(&org, s.id, PageOptions::new().limit(1))
            .unwrap();
        segments
            .changes_since(&org, PageOptions::new().limit(10))
            .unwrap();
        segments
            .create(&org, NewSegment::new("clean"))
            .expect_err("a duplicate name fails, mid-transaction");
        // Simple queries: they prepare nothing themselves.
        let mut client = raw(&support::postgres::pgbouncer());
        let value = |client: &mut Client, sql: &str| -> String {
            client
                .simple_query(sql)
                .unwrap()
                .into_iter()
                .find_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                })
                .unwrap()
        };
        for _ in 0..5 {
            assert_eq!(
                value(&mut client, "SELECT count(*) FROM pg_prepared_statements"),
                "0",
                "no statement outlives its transaction"
            );
            for (setting, default) in [
                ("statement_timeout", "0"),
                ("lock_timeout", "0"),
                ("enable_sort", "on"),
            ] {
                assert_eq!(
                    value(&mut client, &format!("SHOW {setting}")),
                    default,
                    "{setting} is the server's"
                );
            }
        }
    }

    /// Two stores through PgBouncer, their transactions interleaved on its
    /// few server sessions, each reading what the other wrote: nothing of
    /// one client's session (statements, settings) reaches the other's.
    #[test]
    fn clients_sharing_server_sessions_see_one_database() {
        let (a, b) = (Segments::new(store()), Segments::new(store()));
        let org = org(&format!("bouncer-{}", uuid::Uuid::now_v7().simple()));
        for i in 0..20 {
            let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
            let s = writer
                .create(&org, NewSegment::new(format!("s{i}")))
                .expect("a create through PgBouncer");
            writer
                .add_members(&org, s.id, &[format!("p-{i:04}").as_str()])
                .expect("an add through PgBouncer");
            let read = reader.get(&org, s.id).expect("the other client reads it");
            assert_eq!(read.current_size, 1, "the other client sees the add");
        }
    }
}
