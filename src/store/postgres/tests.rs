//! PostgreSQL plans: every statement the store prepares, planned as the
//! store's sessions plan it (generic plans, no table scans) on a schema
//! whose tables are empty, which is when a new schema's first calls plan
//! them. A plan that joins by hashing or scans a whole table would be
//! cheap on empty tables and quadratic once they grow; none may.
//!
//! Runs on the tests' throwaway server (`tests/support/postgres.rs`), or on
//! the one `SEGMENTS_POSTGRES_URL` names.

use r2d2_postgres::postgres::{Client, NoTls};

use super::*;

// The tests' harness, shared with the integration tests.
#[allow(unreachable_pub)]
#[path = "../../../tests/support/postgres.rs"]
mod server;

/// The plan of `sql` (parameters unbound, a generic plan), one node a line.
fn plan(client: &mut Client, sql: &str) -> String {
    let params = (1..=12).filter(|n| sql.contains(&format!("${n}"))).count();
    client.batch_execute("DEALLOCATE ALL").unwrap();
    client
        .batch_execute(&format!("PREPARE q AS {sql}"))
        .unwrap_or_else(|e| panic!("{sql}\ndoes not prepare: {e}"));
    let nulls = vec!["NULL"; params].join(", ");
    let explain = if params == 0 {
        "EXPLAIN EXECUTE q".to_owned()
    } else {
        format!("EXPLAIN EXECUTE q({nulls})")
    };
    client
        .query(&explain, &[])
        .unwrap()
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_statement_walks_indexes_whatever_the_tables_sizes() {
    let schema = format!(
        "plans_{}",
        uuid::Uuid::now_v7().simple().to_string().get(20..).unwrap()
    );
    let url = server::url();
    drop(
        PostgresStore::builder(&url)
            .schema(schema.clone())
            .connect()
            .unwrap(),
    );
    let mut client = Client::connect(&url, NoTls).unwrap();
    client
        .batch_execute(&format!(
            "SET search_path TO {schema};
             SET plan_cache_mode = force_generic_plan;
             SET enable_seqscan = off;
             SET enable_hashjoin = off;
             SET enable_mergejoin = off;
             SET enable_material = off;"
        ))
        .unwrap();
    // Each statement, and the indexes its plan must walk. Sorting is only
    // allowed where noted: of a batch, by its place in the call.
    let people_key = "segment_people_pkey";
    // Ids are unique on their own: a seek by (org, id) may take either.
    let segment_key = "segments_pkey|segments_id_unique";
    let membership_key = "segment_memberships_pkey";
    let cases: &[(&str, &[&str], bool)] = &[
        (members::CLASSIFY, &[people_key, membership_key], true),
        (members::NEW_PEOPLE, &["Function Scan on unnest"], true),
        (members::INSERT_MEMBERS, &["Function Scan on u"], false),
        (members::REJOIN, &[membership_key], false),
        (members::TOUCH, &[membership_key], false),
        (members::LEAVE, &[membership_key], false),
        (members::ACTIVE_AMONG, &[people_key, membership_key], true),
        (
            members::SIZE_AND_SEQ,
            &[segment_key, "segment_sizes_pkey"],
            false,
        ),
        (members::AFTER, &["segment_memberships_active"], false),
        (members::AT_OFFSET, &["segment_memberships_active"], false),
        (ledger::LOCK_HEAD, &["segment_heads_pkey"], false),
        (ledger::NEW_HEAD, &["segment_heads_pkey"], false),
        (ledger::MOVE_HEAD, &["segment_heads_pkey"], false),
        (
            ledger::SINCE,
            &["segment_ledger_pkey", "segment_people_number"],
            false,
        ),
        (
            ledger::TIMELINE,
            &[people_key, "segment_ledger_by_person"],
            false,
        ),
        (segments::LOCATE, &[segment_key], false),
        (segments::GET, &[segment_key], false),
        (segments::BY_KEY, &["segments_name_key_unique"], false),
        (segments::LIST, &["segments_by_creation"], false),
        (as_of::SIZE_AT, &["segment_sizes_by_time"], false),
        (
            as_of::MEMBERS_AT,
            &[
                "segment_memberships_active",
                "segment_memberships_removed",
                "segment_ledger_by_person",
            ],
            // Of at most twice a page: the two walks' pages, merged.
            true,
        ),
        (deaths::LOCK_FEED, &["death_feed_head_pkey"], false),
        (deaths::KNOWN, &["death_records_obituary_id_key"], false),
        (
            deaths::SIGNALS,
            &["death_records_pkey", people_key, membership_key],
            false,
        ),
        (deaths::FEED_END, &["death_feed_head_pkey"], false),
        (keys::GET, &["segment_keys_pkey"], false),
        (keys::UPSERT, &["segment_keys_pkey"], false),
        (
            keys::FORGET_EXPIRED,
            &["segment_keys_by_expiry", "segment_keys_pkey"],
            false,
        ),
    ];
    for (sql, walks, may_sort) in cases {
        let plan = plan(&mut client, sql);
        for index in *walks {
            // `a|b`: either will do.
            assert!(
                index.split('|').any(|i| plan.contains(i)),
                "{sql}\nshould use {index}:\n{plan}"
            );
        }
        for bad in ["Seq Scan", "Hash", "Merge Join", "Materialize"] {
            assert!(
                !plan.contains(bad),
                "{sql}\nplans a {bad}, which grows with the table:\n{plan}"
            );
        }
        assert!(
            *may_sort || !plan.contains("Sort"),
            "{sql}\nsorts what an index gives in order:\n{plan}"
        );
        // A lookup that filters a walk of a key's prefix (rather than
        // seeking the whole key) scans a segment per row.
        for line in plan
            .lines()
            .filter(|l| l.trim_start().starts_with("Filter:"))
        {
            assert!(
                !line.contains("person =") && !line.contains("pid ="),
                "{sql}\nfilters by person instead of seeking:\n{plan}"
            );
        }
    }
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}
