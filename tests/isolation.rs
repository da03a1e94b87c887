//! Tenant isolation: org B performs every operation on org A's segment ids,
//! names and members. B always gets `NotFound` or its own data, and nothing
//! of A's changes.

use chrono::Utc;
use proptest::prelude::*;
use segments_engine::clock::{ManualClock, SequentialIds};
use segments_engine::{
    DeathReport, Error, MemoryStore, NewSegment, OrgId, PageOptions, SegmentId, SegmentStore,
    Segments, SignalMetadata, SqliteStore,
};

#[derive(Clone, Debug)]
enum Intrusion {
    Get,
    Rename(u8),
    Describe,
    Delete,
    Add(u8),
    Remove(u8),
    Members,
    Page,
    AsOf,
    Size,
    Deaths,
    DeathsSince,
    FindByName(u8),
    CreateSameName(u8),
    List,
    Feed,
    Timeline(u8),
}

fn intrusion() -> impl Strategy<Value = Intrusion> {
    prop_oneof![
        Just(Intrusion::Get),
        (0u8..3).prop_map(Intrusion::Rename),
        Just(Intrusion::Describe),
        Just(Intrusion::Delete),
        (0u8..6).prop_map(Intrusion::Add),
        (0u8..6).prop_map(Intrusion::Remove),
        Just(Intrusion::Members),
        Just(Intrusion::Page),
        Just(Intrusion::AsOf),
        Just(Intrusion::Size),
        Just(Intrusion::Deaths),
        Just(Intrusion::DeathsSince),
        (0u8..3).prop_map(Intrusion::FindByName),
        (0u8..3).prop_map(Intrusion::CreateSameName),
        Just(Intrusion::List),
        Just(Intrusion::Feed),
        (0u8..6).prop_map(Intrusion::Timeline),
    ]
}

const NAMES: [&str; 3] = ["Alpha", "Beta", "Gamma"];

fn pid(n: u8) -> String {
    format!("p-a{n}")
}

/// Everything org A can read.
fn view(s: &Segments<&dyn SegmentStore>, org: &OrgId) -> String {
    let list = s.list(org, PageOptions::new().limit(1_000)).unwrap();
    let mut out = format!("{list:?}");
    for seg in &list.segments {
        out += &format!(
            "{:?}",
            s.members(org, seg.id, PageOptions::new().limit(1_000))
                .unwrap()
        );
        out += &format!("{:?}", s.death_signals(org, seg.id).unwrap());
    }
    out + &format!(
        "{:?}",
        s.changes_since(org, PageOptions::new().limit(10_000))
            .unwrap()
    )
}

fn not_found<T: std::fmt::Debug>(
    r: segments_engine::Result<T>,
    id: SegmentId,
    what: &str,
) -> Result<(), TestCaseError> {
    match r {
        Err(Error::NotFound { id: got }) if got == id => Ok(()),
        other => Err(TestCaseError::fail(format!(
            "{what} on another org's segment: {other:?}"
        ))),
    }
}

fn run(store: &dyn SegmentStore, intrusions: &[(usize, Intrusion)]) -> Result<(), TestCaseError> {
    let segments = Segments::new(store)
        .with_clock(ManualClock::new(Utc::now()))
        .with_id_generator(SequentialIds::new());
    let (a, b) = (OrgId::new("org-a").unwrap(), OrgId::new("org-b").unwrap());
    let mut ids = Vec::new();
    for name in NAMES {
        let s = segments.create(&a, NewSegment::new(name)).unwrap();
        segments
            .add_members(&a, s.id, &[pid(0), pid(1), pid(2)])
            .unwrap();
        ids.push(s.id);
    }
    segments
        .ingest_deaths(vec![DeathReport {
            minerva_pid: pid(1),
            obituary_id: "o-1".into(),
            date_of_death: "2023-12-15".into(),
            publication_last_update_date: None,
            first_observed_at: None,
            signal_metadata: SignalMetadata {
                source: "obituary_database".into(),
                obituary_url: None,
                publication_name: None,
                confidence_score: 0.9,
            },
        }])
        .unwrap();
    // B has a segment of its own, with a name A also uses.
    let mut own = vec![segments.create(&b, NewSegment::new("Alpha")).unwrap().id];
    let a_before = view(&segments, &a);

    for (target, intrusion) in intrusions {
        let id = ids[*target % ids.len()];
        match intrusion {
            Intrusion::Get => not_found(segments.get(&b, id), id, "get")?,
            Intrusion::Rename(n) => {
                not_found(segments.rename(&b, id, NAMES[*n as usize]), id, "rename")?
            }
            Intrusion::Describe => not_found(
                segments.set_description(&b, id, Some("B's")),
                id,
                "describe",
            )?,
            Intrusion::Delete => not_found(segments.delete(&b, id), id, "delete")?,
            Intrusion::Add(n) => not_found(segments.add_members(&b, id, &[pid(*n)]), id, "add")?,
            Intrusion::Remove(n) => {
                not_found(segments.remove_members(&b, id, &[pid(*n)]), id, "remove")?
            }
            Intrusion::Members => {
                not_found(segments.members(&b, id, PageOptions::new()), id, "members")?
            }
            Intrusion::Page => not_found(segments.members_page(&b, id, 1), id, "members_page")?,
            Intrusion::AsOf => not_found(
                segments.members_as_of(&b, id, Utc::now(), PageOptions::new().limit(10)),
                id,
                "members_as_of",
            )?,
            Intrusion::Size => {
                not_found(segments.size_as_of(&b, id, Utc::now()), id, "size_as_of")?
            }
            Intrusion::Deaths => not_found(segments.death_signals(&b, id), id, "death_signals")?,
            Intrusion::DeathsSince => not_found(
                segments.death_signals_since(&b, id, PageOptions::new().limit(10)),
                id,
                "death_signals_since",
            )?,
            Intrusion::FindByName(n) => {
                let found = segments.find_by_name(&b, NAMES[*n as usize]).unwrap();
                prop_assert!(
                    found.is_none_or(|s| own.contains(&s.id)),
                    "find_by_name finds only B's own"
                );
            }
            Intrusion::CreateSameName(n) => {
                match segments.create(&b, NewSegment::new(NAMES[*n as usize])) {
                    Ok(s) => {
                        prop_assert!(!ids.contains(&s.id), "B creates its own segment");
                        own.push(s.id);
                    }
                    Err(Error::DuplicateName { .. }) => {
                        prop_assert!(
                            segments
                                .find_by_name(&b, NAMES[*n as usize])
                                .unwrap()
                                .is_some(),
                            "only B's own names collide"
                        )
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("create: {e:?}"))),
                }
            }
            Intrusion::List => {
                let listed = segments.list(&b, PageOptions::new()).unwrap();
                prop_assert!(
                    listed.segments.iter().all(|s| !ids.contains(&s.id)),
                    "B lists only its own"
                );
            }
            Intrusion::Feed => {
                let feed = segments
                    .changes_since(&b, PageOptions::new().limit(1_000))
                    .unwrap();
                prop_assert!(
                    feed.changes.iter().all(|c| !ids.contains(&c.segment_id)),
                    "B's feed holds only B's"
                );
            }
            Intrusion::Timeline(n) => {
                let timeline = segments
                    .timeline(&b, &pid(*n), PageOptions::new().limit(100))
                    .unwrap();
                prop_assert!(
                    timeline
                        .changes
                        .iter()
                        .all(|c| !ids.contains(&c.segment_id)),
                    "B's timelines hold only B's"
                );
            }
        }
    }
    prop_assert_eq!(view(&segments, &a), a_before, "nothing of A's changed");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn org_b_never_reaches_org_a_in_memory(intrusions in prop::collection::vec((0usize..3, intrusion()), 1..40)) {
        run(&MemoryStore::new(), &intrusions)?;
    }

    #[test]
    fn org_b_never_reaches_org_a_in_sqlite(intrusions in prop::collection::vec((0usize..3, intrusion()), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        run(&SqliteStore::open(dir.path().join("isolation.db")).unwrap(), &intrusions)?;
    }
}
