//! PostgreSQL plans: every statement the store runs, planned as the
//! store's transactions plan it, at the server's default settings (each
//! statement is parsed and planned for the values it runs with, on the
//! unnamed statement: a custom plan), for a segment of 20,000 members
//! among many small ones, on tables not analyzed yet (the planner guesses
//! from their pages) and analyzed. A plan that scans a whole table, sorts
//! what an index gives in order or walks a segment to find one member
//! would cost what the segment holds, not what the call reads; none may.
//! The same checks run again on generic plans (planned once for any
//! values), which kept statements may get.
//!
//! Runs on the tests' throwaway server (`tests/support/postgres.rs`), or on
//! the one `SEGMENTS_POSTGRES_URL` names.

use r2d2_postgres::postgres::{self as pg, Client, NoTls};

use super::errors::failure_kind;
use super::plan_fixture::{BIG, analyze, drop_and_check, skewed_schema};
use super::*;
use crate::StorageFailure;
use crate::store::Page;

// The tests' harness, shared with the integration tests.
#[allow(unreachable_pub)]
#[path = "../../../tests/support/postgres.rs"]
pub(super) mod server;

/// A batch of `n` as an SQL array: `item(i)` for each `i` from 1.
fn batch(n: usize, item: impl Fn(usize) -> String) -> String {
    let items: Vec<String> = (1..=n).map(item).collect();
    format!("ARRAY[{}]", items.join(", "))
}

/// `args` with the fixture's values in: `BIG` the big segment's id, `PIDS`
/// a batch of 1,000 PIDs (half of them people the big org knows),
/// `PERSONS` a batch of 1,000 of the big org's person numbers,
/// `OBITUARIES` a batch of 100 obituary ids (half of them known). (The
/// death records are shared by every org: a batch that is a few percent
/// of them is read faster by a scan, and the planner says so.)
fn values(args: &str) -> String {
    args.replace("BIG", &format!("'{BIG}'::uuid"))
        .replace(
            "PIDS",
            &batch(1_000, |i| {
                if i % 2 == 0 {
                    format!("'p-b{}'", i * 7)
                } else {
                    format!("'p-new{i}'")
                }
            }),
        )
        .replace(
            "PERSONS",
            &format!("{}::bigint[]", batch(1_000, |i| (i * 7).to_string())),
        )
        .replace(
            "OBITUARIES",
            &batch(100, |i| {
                if i % 2 == 0 {
                    format!("'o{}'", i * 3)
                } else {
                    format!("'o-new{i}'")
                }
            }),
        )
}

/// `plan` with its long lines (a batch's values) cut, for a message.
fn shorten(plan: &str) -> String {
    plan.lines()
        .map(|line| match line.char_indices().nth(200) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The plan of `sql` in `schema`, run with the values `args` (SQL
/// literals, and the names [`values`] replaces), one node a line: prepared
/// and run once, as the store runs it, with explicit sorts off when
/// `in_order` (the store's `read_in_order`).
fn plan(client: &mut Client, schema: &str, sql: &str, args: &str, in_order: bool) -> String {
    let sql = sql.replace("{schema}", schema);
    client.batch_execute("DEALLOCATE ALL").unwrap();
    // What the store's `read_in_order` sets in its transactions.
    let sort = if in_order { "off" } else { "on" };
    client
        .batch_execute(&format!("SET enable_sort = {sort}"))
        .unwrap();
    client
        .batch_execute(&format!("PREPARE q AS {sql}"))
        .unwrap_or_else(|e| panic!("{sql}\ndoes not prepare: {e}"));
    let explain = if args.is_empty() {
        "EXPLAIN EXECUTE q".to_owned()
    } else {
        format!("EXPLAIN EXECUTE q({})", values(args))
    };
    client
        .query(&explain, &[])
        .unwrap_or_else(|e| panic!("{sql}\ndoes not run with ({args}): {e}"))
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each statement the store runs, the values it runs with (for the
/// big segment), the indexes its plan must walk, and whether it may sort.
/// Sorting is only allowed where noted: of a batch, by its place in the
/// call.
type Case = (&'static str, &'static str, &'static [&'static str], bool);

fn cases() -> Vec<Case> {
    const PEOPLE_KEY: &str = "segment_people_pkey";
    // Ids are unique on their own: a seek by (org, id) may take either.
    const SEGMENT_KEY: &str = "segments_pkey|segments_id_unique";
    const MEMBERSHIP_KEY: &str = "segment_memberships_pkey";
    vec![
        (
            members::KNOWN_PEOPLE,
            "'big', PIDS",
            &["Function Scan on unnest", PEOPLE_KEY],
            false,
        ),
        (
            members::MEMBERSHIPS_OF,
            "'big', BIG, PERSONS",
            &[MEMBERSHIP_KEY],
            false,
        ),
        (
            members::NEW_PEOPLE,
            "'big', PIDS",
            &["Function Scan on unnest"],
            true,
        ),
        (
            members::INSERT_MEMBERS,
            "'big', BIG, 30000, PERSONS, PIDS",
            &["Function Scan on u"],
            false,
        ),
        // Rows by address, addresses by a seek of the key.
        (
            members::REJOIN,
            "'big', BIG, 30000, PERSONS",
            &[MEMBERSHIP_KEY, "Tid Scan"],
            false,
        ),
        (
            members::LEAVE,
            "'big', BIG, 30000, PERSONS",
            &[MEMBERSHIP_KEY, "Tid Scan"],
            false,
        ),
        (
            members::SIZE_AND_SEQ,
            "'big', BIG",
            &[SEGMENT_KEY, "segment_sizes_pkey"],
            false,
        ),
        (
            segments::SET_SIZE,
            "'big', BIG, 18001, 20001, 30000",
            &[SEGMENT_KEY],
            false,
        ),
        (
            members::AFTER,
            "'big', BIG, 10000, 'p-b10000', 100",
            &["segment_memberships_active"],
            false,
        ),
        (
            members::AT_OFFSET,
            "'big', BIG, 100, 100",
            &["segment_memberships_active"],
            false,
        ),
        (ledger::LOCK_HEAD, "'big'", &["segment_heads_pkey"], false),
        (ledger::NEW_HEAD, "'big', 0", &["segment_heads_pkey"], false),
        (
            ledger::MOVE_HEAD,
            "'big', 20001, 30000",
            &["segment_heads_pkey"],
            false,
        ),
        (ledger::LAST_SEQ, "'big'", &["segment_heads_pkey"], false),
        (
            ledger::SINCE,
            "'big', 10000, 100",
            &[
                "segment_ledger_pkey",
                "segment_people_number",
                "segment_ops_pkey",
            ],
            false,
        ),
        (
            ledger::TIMELINE,
            "'big', 'p-b5', 0, 100",
            &[PEOPLE_KEY, "segment_ledger_by_person", "segment_ops_pkey"],
            false,
        ),
        (segments::LOCATE, "'big', BIG", &[SEGMENT_KEY], false),
        (segments::GET, "'big', BIG", &[SEGMENT_KEY], false),
        (
            segments::BY_KEY,
            "'big', 'big'",
            &["segments_name_key_unique"],
            false,
        ),
        (
            segments::LIST,
            "'big', 0, '00000000-0000-0000-0000-000000000000', 100",
            &["segments_by_creation"],
            false,
        ),
        (
            as_of::SIZE_AT,
            "'big', BIG, 10000",
            &["segment_sizes_by_time"],
            false,
        ),
        (
            as_of::MEMBERS_AT,
            "'big', BIG, 10000, 'p-b10000', 15000, 0, 1, 100",
            &[
                "segment_memberships_active",
                "segment_memberships_removed",
                "segment_ledger_by_person",
            ],
            // Of at most twice a page: the two walks' pages, merged.
            true,
        ),
        // One row ever (its key is `true`): a scan reads that row.
        (deaths::LOCK_FEED, "", &[], false),
        (
            deaths::KNOWN,
            "OBITUARIES",
            &["death_records_obituary_id_key"],
            false,
        ),
        (
            deaths::SIGNALS,
            "'big', BIG, 49900, 100",
            &["death_records_pkey", PEOPLE_KEY, MEMBERSHIP_KEY],
            false,
        ),
        (deaths::FEED_END, "", &[], false),
        (keys::GET, "'big', 'k5'", &["segment_keys_pkey"], false),
        (
            keys::UPSERT,
            "'big', 'k5', '\\x00', '\\x00', NULL, 30000, 40000, 30000",
            &["segment_keys_pkey"],
            false,
        ),
        (
            keys::FORGET_EXPIRED,
            "'big', 500, 10",
            &["segment_keys_by_expiry", "segment_keys_pkey"],
            false,
        ),
    ]
}

/// The statements the store runs in a `read_in_order` transaction (no
/// explicit sorts): each sorts what an index gives in order before its
/// tables are analyzed, as [`every_statement_walks_indexes_whatever_the_tables_sizes`]
/// checks.
const IN_ORDER: &[&str] = &[
    segments::LIST,
    members::SIZE_AND_SEQ,
    members::AFTER,
    members::AT_OFFSET,
    ledger::SINCE,
    segments::LOCATE,
    as_of::SIZE_AT,
];

/// The statements of [`IN_ORDER`] that plan a sort without the hint, on
/// tables not analyzed: why the hint is there.
const SORT_WITHOUT_HINT: &[&str] = &[
    segments::LIST,
    members::AFTER,
    members::AT_OFFSET,
    ledger::SINCE,
    as_of::SIZE_AT,
];

/// Plans every statement of [`cases`] in `schema`, as the store runs it;
/// what is wrong with each plan, `when` saying what the tables hold.
fn check_plans(client: &mut Client, schema: &str, when: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    for (sql, args, walks, may_sort) in cases() {
        let plan = plan(client, schema, sql, args, IN_ORDER.contains(&sql));
        let shown = shorten(&plan);
        let mut fault = |what: String| wrong.push(format!("{when}: {sql}\n{what}:\n{shown}"));
        for index in walks {
            // `a|b`: either will do.
            if !index.split('|').any(|i| plan.contains(i)) {
                fault(format!("should use {index}"));
            }
        }
        for bad in ["Seq Scan", "Hash", "Merge Join", "Materialize"] {
            let one_row = bad == "Seq Scan" && plan.contains("Seq Scan on death_feed_head");
            if plan.contains(bad) && !one_row {
                fault(format!("plans a {bad}, which grows with the table"));
            }
        }
        if !may_sort && plan.contains("Sort") {
            fault("sorts what an index gives in order".to_owned());
        }
        // A join that filters pairs of rows (a nested loop whose inner
        // side is a walk of a key's prefix, say) reads that prefix per
        // row; so does a lookup that filters a walk of a key's prefix
        // rather than seeking the whole key; and a bitmap of a key's
        // prefix reads all of it.
        for line in plan.lines().map(str::trim_start) {
            let lookup = ["person =", "pid =", "ctid ="]
                .iter()
                .any(|lookup| line.contains(lookup));
            if line.starts_with("Join Filter:") || (line.starts_with("Filter:") && lookup) {
                fault(format!("filters by {line:?} instead of seeking"));
            }
        }
        if plan.contains("Bitmap") && !plan.contains("= ANY") {
            fault("gathers a key's prefix in a bitmap".to_owned());
        }
    }
    wrong
}

/// The plans of the store's statements, at the server's defaults: no
/// planner setting is changed, in the session or in the transaction.
#[test]
fn every_statement_walks_indexes_whatever_the_tables_sizes() {
    let (schema, mut client) = skewed_schema();
    let mut wrong = check_plans(&mut client, &schema, "skewed tables, not analyzed");
    // Why the batch's people are looked up one by one: by an array, the
    // planner reads all of the org's people for a batch.
    let by_array = plan(
        &mut client,
        &schema,
        members::KNOWN_PEOPLE_BY_ARRAY,
        "'big', PIDS",
        false,
    );
    if !by_array
        .lines()
        .any(|line| line.trim_start().starts_with("Filter: (pid = ANY"))
    {
        wrong.push(format!(
            "the people of a batch by an array, before ANALYZE, no longer filter the \
             org's people: is the lookup per PID still needed?\n{}",
            shorten(&by_array)
        ));
    }
    // Why `read_in_order` turns sorts off: without it, these would sort a
    // whole segment (or org's ledger) for a page.
    for sql in SORT_WITHOUT_HINT {
        let args = cases()
            .into_iter()
            .find(|case| case.0 == *sql)
            .expect("a case of each statement")
            .1;
        let plan = plan(&mut client, &schema, sql, args, false);
        if !plan.contains("Sort") {
            wrong.push(format!(
                "{sql}\nplans no sort without the hint, before ANALYZE: is it still needed?\n{}",
                shorten(&plan)
            ));
        }
    }
    analyze(&mut client);
    wrong.extend(check_plans(&mut client, &schema, "skewed tables, analyzed"));
    // Once analyzed, the hint changes nothing: the plans walk indexes
    // without it.
    for (sql, args, ..) in cases().into_iter().filter(|c| IN_ORDER.contains(&c.0)) {
        let hinted = plan(&mut client, &schema, sql, args, true);
        let plain = plan(&mut client, &schema, sql, args, false);
        if hinted != plain {
            wrong.push(format!(
                "{sql}\nplans otherwise without the hint, once analyzed:\n{plain}"
            ));
        }
    }
    drop_and_check(&mut client, &schema, &wrong);
}

/// With kept statements ([`PostgresStoreBuilder::prepared_statements`]),
/// PostgreSQL may plan a statement once for any values (a generic plan,
/// `plan_cache_mode = auto`): those plans walk indexes too. (The reads
/// that need `read_in_order`'s hint never run kept statements.)
#[test]
fn every_statement_walks_indexes_in_a_generic_plan_too() {
    let (schema, mut client) = skewed_schema();
    client
        .batch_execute("SET plan_cache_mode = force_generic_plan")
        .unwrap();
    let mut wrong = check_plans(&mut client, &schema, "generic plans, not analyzed");
    analyze(&mut client);
    wrong.extend(check_plans(&mut client, &schema, "generic plans, analyzed"));
    drop_and_check(&mut client, &schema, &wrong);
}

/// The kind each `postgres` error gets. Only a connection that failed is
/// `Unavailable` (a host may retry it); a failure that would come again
/// the same way is `Other`, and a value that does not decode is `Corrupt`.
#[test]
fn errors_are_unavailable_only_when_the_connection_failed() {
    let kind = |e: pg::Error| failure_kind(&e);
    // No SQLSTATE, and no connection involved.
    let parse = "postgresql://[bad".parse::<pg::Config>().unwrap_err();
    assert_eq!(
        kind(parse),
        StorageFailure::Other,
        "a URL that does not parse"
    );
    let url = server::url();
    let mut client = Client::connect(&url, NoTls).unwrap();
    let none = client.query_one("SELECT 1 WHERE false", &[]).unwrap_err();
    assert_eq!(kind(none), StorageFailure::Other, "query_one of no row");
    let param = client.query("SELECT $1::int", &[&"text"]).unwrap_err();
    assert_eq!(
        kind(param),
        StorageFailure::Other,
        "a parameter of the wrong type"
    );
    // Decoding.
    let row = client.query_one("SELECT 'x'::text", &[]).unwrap();
    for (what, err) in [
        ("a text as a number", get::<i64>(&row, 0).unwrap_err()),
        (
            "a column that is not there",
            get::<String>(&row, 5).unwrap_err(),
        ),
    ] {
        assert_eq!(err.storage_kind(), Some(StorageFailure::Corrupt), "{what}");
    }
    // SQLSTATEs.
    let syntax = client.batch_execute("SELEC 1").unwrap_err();
    assert_eq!(kind(syntax), StorageFailure::Other, "a syntax error");
    client.batch_execute("SET statement_timeout = 10").unwrap();
    let slow = client.batch_execute("SELECT pg_sleep(1)").unwrap_err();
    assert_eq!(
        kind(slow),
        StorageFailure::Timeout,
        "a statement past its time"
    );
    // The connection itself.
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    Client::connect(&url, NoTls)
        .unwrap()
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    for attempt in ["the first call after", "a later call after"] {
        let gone = client.batch_execute("SELECT 1").unwrap_err();
        assert_eq!(
            kind(gone),
            StorageFailure::Unavailable,
            "{attempt} the server ended the session"
        );
    }
    let refused = Client::connect("postgresql://postgres@127.0.0.1:1/postgres", NoTls)
        .err()
        .expect("no server there");
    assert_eq!(
        kind(refused),
        StorageFailure::Unavailable,
        "no server there"
    );
}

/// The death feed's head, a row the schema makes once: missing, the store
/// reports a damaged schema (it read no row where one must be), not an
/// outage to wait out.
#[test]
fn a_missing_death_feed_head_is_corrupt() {
    let schema = format!(
        "heads_{}",
        uuid::Uuid::now_v7().simple().to_string().get(20..).unwrap()
    );
    let url = server::url();
    let store = PostgresStore::builder(&url)
        .schema(schema.clone())
        .connect()
        .unwrap();
    let segments = crate::Segments::new(store.clone());
    let org = OrgId::new("acme").unwrap();
    let s = segments
        .create(&org, crate::NewSegment::new("Heads"))
        .unwrap();
    let mut client = Client::connect(&url, NoTls).unwrap();
    client
        .batch_execute(&format!("DELETE FROM {schema}.death_feed_head"))
        .unwrap();
    let err = store
        .death_signals(&org, s.id, Page::new(DeathCursor::new(0), 10))
        .unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageFailure::Corrupt), "{err:?}");
    let record = DeathRecord {
        minerva_pid: Pid::parse("p-a").unwrap(),
        obituary_id: format!("o.{schema}"),
        date_of_death: chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        publication_last_update_date: None,
        first_observed_at: chrono::Utc::now(),
        signal_metadata: crate::SignalMetadata {
            source: "test".into(),
            obituary_url: None,
            publication_name: None,
            confidence_score: 0.5,
        },
    };
    let err = store
        .upsert_deaths(&[record], chrono::Utc::now())
        .unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageFailure::Corrupt), "{err:?}");
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}
