//! The backends agree: random sequences of creates, deletes, member calls
//! (with repeats, re-adds and calls on the other org's segments), clock moves
//! (backwards too) and death records run against `MemoryStore` and, side by
//! side, an in-memory `SqliteStore` and (feature `postgres`) a
//! `PostgresStore`; after every step every read of both must be the same:
//! segment lists, the change feed, timelines, member lists, cursors at every
//! place of interest, every offset, as-of reads and death signals.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use segments_engine::clock::{ManualClock, SequentialIds};
use segments_engine::store::{MemberStart, Page};
use segments_engine::{
    Change, DeathCursor, DeathReport, Member, MemberCursor, MemoryStore, NewSegment, OrgId, Pid,
    Segment, SegmentId, SegmentStore, Segments, SignalMetadata, SqliteStore,
};

#[derive(Clone, Debug)]
enum Op {
    Create { org: u8, name: u8 },
    Delete { org: u8, seg: u8 },
    Add { org: u8, seg: u8, pids: Vec<u8> },
    Remove { org: u8, seg: u8, pids: Vec<u8> },
    Tick { micros: i8 },
    Death { pid: u8, obit: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    let pids = || prop::collection::vec(0u8..14, 0..12);
    prop_oneof![
        2 => (0u8..2, 0u8..5).prop_map(|(org, name)| Op::Create { org, name }),
        1 => (0u8..2, 0u8..8).prop_map(|(org, seg)| Op::Delete { org, seg }),
        6 => (0u8..2, 0u8..8, pids()).prop_map(|(org, seg, pids)| Op::Add { org, seg, pids }),
        4 => (0u8..2, 0u8..8, pids()).prop_map(|(org, seg, pids)| Op::Remove { org, seg, pids }),
        3 => (-3i8..4).prop_map(|micros| Op::Tick { micros }),
        1 => (0u8..14, 0u8..6).prop_map(|(pid, obit)| Op::Death { pid, obit }),
    ]
}

fn pid_text(n: u8) -> String {
    format!("p-{n:x}")
}

fn orgs() -> [OrgId; 2] {
    [OrgId::new("acme").unwrap(), OrgId::new("beta").unwrap()]
}

/// Runs `ops` on a `MemoryStore` and on `other` (empty), comparing every
/// outcome and, after every step, every read.
fn run(ops: &[Op], other: &dyn SegmentStore) -> Result<(), TestCaseError> {
    let start = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let clock = ManualClock::new(start);
    let memory = MemoryStore::new();
    let mem = Segments::new(&memory as &dyn SegmentStore)
        .with_clock(clock.clone())
        .with_id_generator(SequentialIds::new());
    let sql = Segments::new(other)
        .with_clock(clock.clone())
        .with_id_generator(SequentialIds::new());
    let orgs = orgs();
    // All segment ids ever created, per org (deleted ones included).
    let mut ids: [Vec<SegmentId>; 2] = [Vec::new(), Vec::new()];
    let mut now = start;
    let mut times: Vec<DateTime<Utc>> = vec![start - TimeDelta::microseconds(1), start];
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Create { org, name } => {
                let o = &orgs[*org as usize];
                let a = mem.create(o, NewSegment::new(format!("S{name}")));
                let b = sql.create(o, NewSegment::new(format!("S{name}")));
                prop_assert_eq!(
                    format!("{a:?}"),
                    format!("{b:?}"),
                    "create at step {}",
                    step
                );
                if let Ok(s) = a {
                    ids[*org as usize].push(s.id);
                }
            }
            Op::Delete { org, seg } => {
                let o = &orgs[*org as usize];
                let Some(&id) = ids[*org as usize].get(*seg as usize) else {
                    continue;
                };
                let a = mem.delete(o, id);
                let b = sql.delete(o, id);
                prop_assert_eq!(
                    format!("{a:?}"),
                    format!("{b:?}"),
                    "delete at step {}",
                    step
                );
            }
            Op::Add { org, seg, pids } | Op::Remove { org, seg, pids } => {
                let o = &orgs[*org as usize];
                // Sometimes the other org's segment, to check refusals.
                let all: Vec<SegmentId> = ids[0].iter().chain(ids[1].iter()).copied().collect();
                let Some(&id) = all.get(*seg as usize) else {
                    continue;
                };
                let texts: Vec<String> = pids.iter().map(|n| pid_text(*n)).collect();
                let (a, b) = if matches!(op, Op::Add { .. }) {
                    (
                        format!("{:?}", mem.add_members(o, id, &texts)),
                        format!("{:?}", sql.add_members(o, id, &texts)),
                    )
                } else {
                    (
                        format!("{:?}", mem.remove_members(o, id, &texts)),
                        format!("{:?}", sql.remove_members(o, id, &texts)),
                    )
                };
                prop_assert_eq!(a, b, "member call at step {}", step);
            }
            Op::Tick { micros } => {
                now += TimeDelta::microseconds(i64::from(*micros));
                clock.set(now);
                times.push(now);
                times.push(now + TimeDelta::microseconds(1));
            }
            Op::Death { pid, obit } => {
                let report = DeathReport {
                    minerva_pid: pid_text(*pid),
                    obituary_id: format!("ob-{obit}"),
                    date_of_death: "2024-01-02".to_owned(),
                    publication_last_update_date: None,
                    first_observed_at: None,
                    signal_metadata: SignalMetadata {
                        source: "obituary_database".to_owned(),
                        obituary_url: None,
                        publication_name: None,
                        confidence_score: 0.9,
                    },
                };
                let a = mem.ingest_deaths(vec![report.clone()]);
                let b = sql.ingest_deaths(vec![report]);
                prop_assert_eq!(
                    format!("{a:?}"),
                    format!("{b:?}"),
                    "deaths at step {}",
                    step
                );
            }
        }
        compare(*mem.store(), *sql.store(), &orgs, &ids, &times, step)?;
    }
    Ok(())
}

/// Every segment of `org`, read in pages of 2.
fn all_segments(store: &dyn SegmentStore, org: &OrgId) -> segments_engine::Result<Vec<Segment>> {
    let mut out: Vec<Segment> = Vec::new();
    loop {
        let page = store.segments(org, Page::new(out.last().map(Segment::cursor), 2))?;
        let done = page.len() < 2;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// Every entry of a ledger read by `page(after, limit)`, in pages of 3.
fn all_changes(
    page: impl Fn(u64, usize) -> segments_engine::Result<Vec<Change>>,
) -> segments_engine::Result<Vec<Change>> {
    let mut out: Vec<Change> = Vec::new();
    loop {
        let got = page(out.last().map_or(0, |c| c.seq), 3)?;
        let done = got.len() < 3;
        out.extend(got);
        if done {
            return Ok(out);
        }
    }
}

/// Every active member, by cursor in pages of 4.
fn all_members(
    store: &dyn SegmentStore,
    org: &OrgId,
    id: SegmentId,
) -> segments_engine::Result<Vec<Member>> {
    let mut out: Vec<Member> = Vec::new();
    loop {
        let cursor = out.last().map(Member::cursor);
        let from = cursor
            .as_ref()
            .map_or(MemberStart::FIRST, MemberStart::After);
        let got = store.members(org, id, Page::new(from, 4))?.members;
        let done = got.len() < 4;
        out.extend(got);
        if done {
            return Ok(out);
        }
    }
}

/// Every death signal after `since`, in pages of 2, and where the reads ended.
fn all_signals(
    store: &dyn SegmentStore,
    org: &OrgId,
    id: SegmentId,
    since: DeathCursor,
) -> segments_engine::Result<(Vec<segments_engine::DeathRecord>, DeathCursor)> {
    let mut out = Vec::new();
    let mut after = since;
    loop {
        let page = store.death_signals(org, id, Page::new(after, 2))?;
        let done = page.records.len() < 2;
        after = page.next;
        out.extend(page.records);
        if done {
            return Ok((out, after));
        }
    }
}

fn compare(
    a: &dyn SegmentStore,
    b: &dyn SegmentStore,
    orgs: &[OrgId; 2],
    ids: &[Vec<SegmentId>; 2],
    times: &[DateTime<Utc>],
    step: usize,
) -> Result<(), TestCaseError> {
    let pids: Vec<Pid> = (0u8..15)
        .map(|n| Pid::parse(&pid_text(n)).unwrap())
        .collect();
    for (oi, org) in orgs.iter().enumerate() {
        prop_assert_eq!(
            format!("{:?}", all_segments(a, org)),
            format!("{:?}", all_segments(b, org)),
            "segments, step {}",
            step
        );
        prop_assert_eq!(
            format!(
                "{:?}",
                all_changes(|after, limit| a.changes_since(org, Page::new(after, limit)))
            ),
            format!(
                "{:?}",
                all_changes(|after, limit| b.changes_since(org, Page::new(after, limit)))
            ),
            "changes, step {}",
            step
        );
        for pid in &pids {
            prop_assert_eq!(
                format!(
                    "{:?}",
                    all_changes(|after, limit| a.timeline(org, pid, Page::new(after, limit)))
                ),
                format!(
                    "{:?}",
                    all_changes(|after, limit| b.timeline(org, pid, Page::new(after, limit)))
                ),
                "timeline {:?} org {}, step {}",
                pid,
                oi,
                step
            );
        }
        for id in ids.iter().flatten() {
            let ma = all_members(a, org, *id);
            let mb = all_members(b, org, *id);
            prop_assert_eq!(
                format!("{ma:?}"),
                format!("{mb:?}"),
                "members, step {}",
                step
            );
            let sa = a.segment(org, *id);
            prop_assert_eq!(
                format!("{sa:?}"),
                format!("{:?}", b.segment(org, *id)),
                "segment, step {}",
                step
            );
            let Ok(ma) = ma else { continue };
            if let Ok(s) = &sa {
                prop_assert_eq!(
                    s.current_size,
                    ma.len() as u64,
                    "size vs list, step {}",
                    step
                );
            }
            // Cursors at every member, and at every (time, pid) of interest.
            let mut cursor_times: Vec<DateTime<Utc>> =
                ma.iter().map(|m| m.first_added_at).collect();
            cursor_times.extend(times.iter().copied());
            cursor_times.sort();
            cursor_times.dedup();
            for t in &cursor_times {
                for pid in &pids {
                    let c = MemberCursor::new(*t, pid.clone());
                    for limit in [1usize, 3] {
                        prop_assert_eq!(
                            format!(
                                "{:?}",
                                a.members(org, *id, Page::new(MemberStart::After(&c), limit))
                            ),
                            format!(
                                "{:?}",
                                b.members(org, *id, Page::new(MemberStart::After(&c), limit))
                            ),
                            "members after {:?}, step {}",
                            c,
                            step
                        );
                    }
                    for limit in [2usize, 100] {
                        prop_assert_eq!(
                            format!(
                                "{:?}",
                                a.members_as_of(org, *id, *t, Page::new(Some(&c), limit))
                            ),
                            format!(
                                "{:?}",
                                b.members_as_of(org, *id, *t, Page::new(Some(&c), limit))
                            ),
                            "members_as_of {} after {:?} limit {}, step {}",
                            t,
                            c,
                            limit,
                            step
                        );
                    }
                }
            }
            for offset in (0..(ma.len() as u64 + 3)).chain([u64::MAX]) {
                for limit in [1usize, 2, 5] {
                    prop_assert_eq!(
                        format!(
                            "{:?}",
                            a.members(org, *id, Page::new(MemberStart::Offset(offset), limit))
                        ),
                        format!(
                            "{:?}",
                            b.members(org, *id, Page::new(MemberStart::Offset(offset), limit))
                        ),
                        "offset {} limit {}, step {}",
                        offset,
                        limit,
                        step
                    );
                }
            }
            for t in times {
                prop_assert_eq!(
                    format!("{:?}", a.size_as_of(org, *id, *t)),
                    format!("{:?}", b.size_as_of(org, *id, *t)),
                    "size_as_of {}, step {}",
                    t,
                    step
                );
                for limit in [2usize, 100] {
                    prop_assert_eq!(
                        format!("{:?}", a.members_as_of(org, *id, *t, Page::first(limit))),
                        format!("{:?}", b.members_as_of(org, *id, *t, Page::first(limit))),
                        "members_as_of {} limit {}, step {}",
                        t,
                        limit,
                        step
                    );
                }
            }
            for since in 0..4 {
                let since = DeathCursor::new(since);
                prop_assert_eq!(
                    format!("{:?}", all_signals(a, org, *id, since)),
                    format!("{:?}", all_signals(b, org, *id, since)),
                    "death_signals since {:?}, step {}",
                    since,
                    step
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn memory_and_sqlite_agree_on_every_read(ops in prop::collection::vec(op(), 1..40)) {
        run(&ops, &SqliteStore::open_in_memory().unwrap())?;
    }
}

/// The same against PostgreSQL (the throwaway test server, or
/// `SEGMENTS_POSTGRES_URL`), each case in a schema of its own. Fewer and
/// shorter cases: every read is a round trip to the server.
#[cfg(feature = "postgres")]
mod support;

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    fn fresh_store() -> (segments_engine::PostgresStore, String) {
        let schema = format!(
            "agree_{}",
            uuid::Uuid::now_v7().simple().to_string().get(16..).unwrap()
        );
        let store = segments_engine::PostgresStore::builder(&support::postgres::url())
            .schema(schema.clone())
            .pool_size(2)
            .connect()
            .expect("the test server accepts the store");
        (store, schema)
    }

    fn drop_schema(schema: &str) {
        let mut client =
            ::postgres::Client::connect(&support::postgres::url(), ::postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]
        #[test]
        fn memory_and_postgres_agree_on_every_read(ops in prop::collection::vec(op(), 1..25)) {
            let (store, schema) = fresh_store();
            let outcome = run(&ops, &store);
            drop(store);
            drop_schema(&schema);
            outcome?;
        }
    }
}

/// Targeted: a person in several segments (SmallVec spills), a delete, a re-add elsewhere.
#[test]
fn spilled_person_delete_and_readd() {
    let ops = vec![
        Op::Create { org: 0, name: 0 },
        Op::Create { org: 0, name: 1 },
        Op::Create { org: 0, name: 2 },
        Op::Create { org: 1, name: 0 },
        Op::Add {
            org: 0,
            seg: 0,
            pids: vec![1, 2, 3],
        },
        Op::Add {
            org: 0,
            seg: 1,
            pids: vec![1, 2],
        },
        Op::Add {
            org: 0,
            seg: 2,
            pids: vec![1],
        },
        Op::Add {
            org: 1,
            seg: 3,
            pids: vec![1, 2],
        },
        Op::Tick { micros: 1 },
        Op::Remove {
            org: 0,
            seg: 1,
            pids: vec![1, 1],
        },
        Op::Delete { org: 0, seg: 0 },
        Op::Add {
            org: 0,
            seg: 1,
            pids: vec![1, 3, 1],
        },
        Op::Death { pid: 1, obit: 0 },
        Op::Tick { micros: -3 },
        Op::Add {
            org: 0,
            seg: 2,
            pids: vec![4, 0],
        },
        Op::Remove {
            org: 0,
            seg: 2,
            pids: vec![1],
        },
        Op::Add {
            org: 0,
            seg: 2,
            pids: vec![1, 5],
        },
        Op::Create { org: 0, name: 0 },
        Op::Add {
            org: 0,
            seg: 4,
            pids: vec![1, 2, 3],
        },
    ];
    run(&ops, &SqliteStore::open_in_memory().unwrap()).unwrap();
}
