//! The plan tests' fixture: the store's tables in a schema of their own,
//! filled with skewed data and not analyzed yet.

use r2d2_postgres::postgres::{Client, NoTls};

use super::tests::server;
use super::{PostgresStore, schema};

/// The big segment of [`SKEWED`].
pub(super) const BIG: &str = "00000000-0000-0000-0000-0000000000b1";

/// Skewed tables: one org with 2,000 segments, one of which holds 20,000
/// members (a tenth of whom left) and 20,000 entries, beside 20,000 other
/// orgs, 200 of them with 2,000 segments of two members each; 2,000 set
/// operations, 50,000 death records and 20,000 idempotency keys. A planner
/// that believes a segment holds a row or two (most do) finds walking a
/// segment's key prefix as cheap as seeking a member, or sorting it as
/// cheap as reading an index in order, and for the big one it is not.
pub(super) const SKEWED: &str = "
    INSERT INTO segment_heads (org, last_seq, last_at)
        SELECT 'org' || o, 0, 0 FROM generate_series(0, 199) o;
    INSERT INTO segment_heads (org, last_seq, last_at) VALUES ('big', 0, 0);
    INSERT INTO segment_heads (org, last_seq, last_at)
        SELECT 'other' || o, 0, 0 FROM generate_series(0, 19799) o;
    INSERT INTO segments (org, id, name, name_key, source, current_size, created_at, updated_at)
        SELECT 'big', md5('b' || g)::uuid, 'b' || g, 'b' || g, 'api', 0, g, g
        FROM generate_series(1, 1999) g;
    INSERT INTO segments (org, id, name, name_key, source, current_size, created_at, updated_at)
        SELECT 'org' || (g % 200), md5('s' || g)::uuid, 'n' || g, 'n' || g, 'api', 2, g, g
        FROM generate_series(0, 1999) g;
    INSERT INTO segments (org, id, name, name_key, source, current_size, created_at, updated_at)
        VALUES ('big', '00000000-0000-0000-0000-0000000000b1', 'big', 'big', 'api', 18000, 0, 0);
    INSERT INTO segment_people (org, pid)
        SELECT 'big', 'p-b' || g FROM generate_series(1, 20000) g;
    INSERT INTO segment_people (org, pid)
        SELECT 'org' || (g % 200), 'p-s' || g FROM generate_series(0, 3999) g;
    INSERT INTO segment_memberships
            (org, segment, person, pid, first_added_at, last_added_at, removed_at)
        SELECT org, '00000000-0000-0000-0000-0000000000b1', person, pid, person, person,
               CASE WHEN person % 10 = 0 THEN person + 1 END
        FROM segment_people WHERE org = 'big';
    INSERT INTO segment_memberships (org, segment, person, pid, first_added_at, last_added_at)
        SELECT org, md5('s' || (substr(pid, 4)::int % 2000))::uuid, person, pid, 1, 1
        FROM segment_people WHERE org <> 'big';
    INSERT INTO segment_ledger (org, seq, at, segment, kind, person)
        SELECT org, row_number() OVER (PARTITION BY org ORDER BY person), person, segment, 5, person
        FROM segment_memberships;
    INSERT INTO segment_ops (org, op, sources, read_at)
        SELECT 'big', seq, ARRAY['00000000-0000-0000-0000-0000000000b1'::uuid], seq - 1
        FROM segment_ledger WHERE org = 'big' AND seq % 10 = 5;
    UPDATE segment_ledger SET op = seq WHERE org = 'big' AND seq % 10 = 5;
    INSERT INTO segment_sizes (org, segment, seq, at, size)
        SELECT org, segment, seq, at, seq FROM segment_ledger;
    INSERT INTO death_records (seq, obituary_id, pid, date_of_death, first_observed_at, source,
                               confidence_score, updated_at)
        SELECT g, 'o' || g, 'p-b' || (g * 4), '2024-01-01', 0, 's', 0.5, 0
        FROM generate_series(1, 50000) g;
    UPDATE death_feed_head SET last_seq = 50000;
    INSERT INTO segment_keys (org, key, fingerprint, outcome, recorded_at, expires_at)
        SELECT 'big', 'k' || g, decode(md5('k' || g) || md5('k' || g), 'hex'), '', g, g
        FROM generate_series(1, 20000) g;
";

/// A fresh schema with the store's tables filled with [`SKEWED`], before
/// autovacuum has analyzed them (the planner guesses their sizes from
/// their pages), and a client whose search path is that schema (for the
/// fixture's statements only; the store names its schema).
pub(super) fn skewed_schema() -> (String, Client) {
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
        .batch_execute(&format!("SET search_path TO {schema}"))
        .unwrap();
    client.batch_execute(SKEWED).unwrap();
    assert!(
        client
            .query_one(
                &format!("SELECT 1 FROM segments WHERE org = 'big' AND id = '{BIG}'"),
                &[]
            )
            .is_ok(),
        "the fixture holds the big segment"
    );
    (schema, client)
}

/// Has the server analyze every table of the fixture's schema (the
/// client's search path).
pub(super) fn analyze(client: &mut Client) {
    for table in schema::tables() {
        client.batch_execute(&format!("ANALYZE {table}")).unwrap();
    }
}

/// Drops the fixture's schema, then fails with every wrong plan found.
pub(super) fn drop_and_check(client: &mut Client, schema: &str, wrong: &[String]) {
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
    assert!(
        wrong.is_empty(),
        "{} plans are wrong:\n\n{}",
        wrong.len(),
        wrong.join("\n\n")
    );
}
