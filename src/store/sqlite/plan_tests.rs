//! SQLite query plans: every query of the store reads an index in order,
//! never scans a table.

use super::*;

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
