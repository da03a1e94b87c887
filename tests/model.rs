//! Model-based property test: random sequences of create, rename, delete,
//! add, remove, another org's intrusions and clock moves (back as well as
//! forth) run against every backend (PostgreSQL too, with the `postgres`
//! feature) and against a plain in-test model, with dry runs before the
//! member calls and set operations they must foretell, and idempotency
//! keys from a small set on creates, deletes and member calls (a reused
//! key replays its first outcome and changes nothing; other input with it
//! is a conflict); every
//! outcome, every `current_size` and, at the end, every member list (order
//! and timestamps, walked with a small cursor page) must agree.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use segments_engine::clock::{ManualClock, SequentialIds};
use segments_engine::store::{
    KeyRecord, MemberSlice, MemberStart, Page, SegmentChange, SegmentInsert, Stamp,
    StoreAddOutcome, StoreDeathsIngested, StoreRemoveOutcome,
};
use segments_engine::{
    AddOutcome, Change, DeathCursor, DeathRecord, DeathSignals, Error, MemberCursor, MemoryStore,
    NewSegment, OrgId, PageOptions, PastMember, Pid, RemoveOutcome, Segment, SegmentCursor,
    SegmentId, SegmentStore, Segments, SetExpr, SqliteStore,
};

#[derive(Clone, Debug)]
enum PidChoice {
    Valid(u8),
    Malformed(u8),
}

impl PidChoice {
    fn text(&self) -> String {
        match self {
            PidChoice::Valid(n) => format!("p-{n:02}"),
            PidChoice::Malformed(n) => ["p-BAD", "nope", "p-", "p-x!"][*n as usize % 4].to_owned(),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Create a segment; names collide by key on purpose ("S1" vs "s1 ").
    Create {
        name: u8,
        shout: bool,
        key: Option<u8>,
    },
    Rename {
        segment: usize,
        name: u8,
        shout: bool,
    },
    Delete {
        segment: usize,
        key: Option<u8>,
    },
    /// Add, with an idempotency key from a small set (so that keys are
    /// reused: a retry, or other input with a used key).
    Add {
        segment: usize,
        pids: Vec<PidChoice>,
        key: Option<u8>,
    },
    Remove {
        segment: usize,
        pids: Vec<PidChoice>,
        key: Option<u8>,
    },
    /// Adds the members of `a ∪ b`, `a ∩ b` or `a − b` (`kind` 0, 1, 2) to
    /// `target`, or removes them.
    FromSet {
        target: usize,
        a: usize,
        b: usize,
        kind: u8,
        add: bool,
    },
    /// Another org acts on the segment: always `NotFound`, nothing changes.
    Intrude {
        segment: usize,
        pids: Vec<PidChoice>,
    },
    /// Moves the clock, backwards too.
    Tick {
        micros: i8,
    },
}

fn pid_choice() -> impl Strategy<Value = PidChoice> {
    prop_oneof![
        9 => (0u8..40).prop_map(PidChoice::Valid),
        1 => (0u8..4).prop_map(PidChoice::Malformed),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let pids = || prop::collection::vec(pid_choice(), 0..25);
    let key = || prop::option::weighted(0.3, 0u8..4);
    prop_oneof![
        2 => (0u8..6, any::<bool>(), key())
            .prop_map(|(name, shout, key)| Op::Create { name, shout, key }),
        1 => (0usize..8, 0u8..6, any::<bool>())
            .prop_map(|(segment, name, shout)| Op::Rename { segment, name, shout }),
        1 => (0usize..8, key()).prop_map(|(segment, key)| Op::Delete { segment, key }),
        5 => (0usize..8, pids(), key())
            .prop_map(|(segment, pids, key)| Op::Add { segment, pids, key }),
        3 => (0usize..8, pids(), key())
            .prop_map(|(segment, pids, key)| Op::Remove { segment, pids, key }),
        2 => (0usize..8, 0usize..8, 0usize..8, 0u8..3, any::<bool>())
            .prop_map(|(target, a, b, kind, add)| Op::FromSet { target, a, b, kind, add }),
        1 => (0usize..8, prop::collection::vec(pid_choice(), 0..5))
            .prop_map(|(segment, pids)| Op::Intrude { segment, pids }),
        2 => (-2i8..4).prop_map(|micros| Op::Tick { micros }),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Membership {
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    active: bool,
}

#[derive(Debug)]
struct ModelSegment {
    id: SegmentId,
    /// The name as stored (trimmed), to tell a rename that changes nothing.
    name: String,
    key: String,
    deleted: bool,
    members: HashMap<String, Membership>,
}

impl ModelSegment {
    fn size(&self) -> u64 {
        self.members.values().filter(|m| m.active).count() as u64
    }
}

/// What adding `valid` (unique PIDs) does to `s` at `at`: (added,
/// redundant, the PIDs that joined in order).
fn model_add(
    s: &mut ModelSegment,
    valid: Vec<String>,
    at: DateTime<Utc>,
) -> (u64, u64, Vec<String>) {
    let (mut added, mut redundant) = (0, 0);
    let mut joined = Vec::new();
    for pid in valid {
        let m = s.members.entry(pid.clone()).or_insert(Membership {
            first: at,
            last: at,
            active: false,
        });
        if m.active {
            redundant += 1
        } else {
            added += 1;
            joined.push(pid.clone());
        }
        m.active = true;
        m.last = at;
    }
    (added, redundant, joined)
}

/// What removing `valid` (unique PIDs) does to `s`: (deleted, the PIDs
/// that left in order).
fn model_remove(s: &mut ModelSegment, valid: Vec<String>) -> (u64, Vec<String>) {
    let mut left = Vec::new();
    for pid in valid {
        if let Some(m) = s.members.get_mut(&pid).filter(|m| m.active) {
            m.active = false;
            left.push(pid);
        }
    }
    (left.len() as u64, left)
}

/// Partitions a call's PIDs the way the documented API does.
fn split(pids: &[PidChoice]) -> (Vec<String>, Vec<String>, u64) {
    let (mut valid, mut invalid, mut repeats) = (Vec::new(), Vec::new(), 0);
    let mut seen = std::collections::HashSet::new();
    for p in pids {
        let text = p.text();
        let fresh = seen.insert(text.clone());
        match (p, fresh) {
            (PidChoice::Valid(_), true) => valid.push(text),
            (PidChoice::Valid(_), false) => repeats += 1,
            (PidChoice::Malformed(_), true) => invalid.push(text),
            (PidChoice::Malformed(_), false) => {}
        }
    }
    (valid, invalid, repeats)
}

/// The ledger, as the model sees it: times never go backwards within the
/// org, and each membership change is an event at its ledger time.
#[derive(Default)]
struct History {
    last: Option<DateTime<Utc>>,
    /// (ledger time, segment index, PID, joined?)
    events: Vec<(DateTime<Utc>, usize, String, bool)>,
}

impl History {
    /// The time of a change made at `now`: never before the org's last
    /// ledger entry. Rows and ledger entries of the change both carry it.
    fn effective(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.last.map_or(now, |last| last.max(now))
    }

    /// The ledger time of an entry written at `now`.
    fn stamp(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        let at = self.effective(now);
        self.last = Some(at);
        at
    }

    fn record(&mut self, now: DateTime<Utc>, segment: usize, pids: Vec<String>, join: bool) {
        if pids.is_empty() {
            return;
        }
        let at = self.stamp(now);
        self.events
            .extend(pids.into_iter().map(|pid| (at, segment, pid, join)));
    }

    /// Members of `segment` after every event at or before `t`, in PID
    /// order, each with the time of the join in effect.
    fn as_of(&self, segment: usize, t: DateTime<Utc>) -> BTreeMap<String, DateTime<Utc>> {
        let mut members = BTreeMap::new();
        for (at, s, pid, join) in &self.events {
            if *s != segment || *at > t {
                continue;
            }
            if *join {
                members.insert(pid.clone(), *at);
            } else {
                members.remove(pid);
            }
        }
        members
    }
}

/// The idempotency keys used so far: for each, the input of its first call
/// and that call's outcome (`Debug`).
#[derive(Default)]
struct Keys(HashMap<u8, (String, String)>);

/// What a keyed call must do, the model says.
enum Keyed {
    /// No key, or a key not used yet: the call runs.
    Runs,
    /// A retry: the first outcome again, and nothing changes.
    Replays(String),
    /// Other input with a used key: a conflict, and nothing changes.
    Conflicts,
}

impl Keys {
    fn expect(&self, key: Option<u8>, input: &str) -> Keyed {
        match key.and_then(|k| self.0.get(&k)) {
            None => Keyed::Runs,
            Some((first, outcome)) if first == input => Keyed::Replays(outcome.clone()),
            Some(_) => Keyed::Conflicts,
        }
    }

    /// Records a keyed call's outcome, if it is one a key keeps (a success,
    /// a duplicate name, an unknown segment).
    fn record<T: std::fmt::Debug>(
        &mut self,
        key: Option<u8>,
        input: String,
        outcome: &Result<T, Error>,
    ) {
        let kept = matches!(
            outcome,
            Ok(_) | Err(Error::DuplicateName { .. } | Error::NotFound { .. })
        );
        if let (Some(k), true) = (key, kept) {
            self.0.insert(k, (input, format!("{outcome:?}")));
        }
    }

    /// Checks a call against what the model expects of its key; `true`
    /// when the call ran (and the model must apply it).
    fn check<T: std::fmt::Debug>(
        &mut self,
        key: Option<u8>,
        input: String,
        outcome: &Result<T, Error>,
    ) -> Result<bool, TestCaseError> {
        match self.expect(key, &input) {
            Keyed::Runs => {
                self.record(key, input, outcome);
                Ok(true)
            }
            Keyed::Replays(first) => {
                prop_assert_eq!(format!("{outcome:?}"), first, "a retry replays");
                Ok(false)
            }
            Keyed::Conflicts => {
                prop_assert!(
                    matches!(outcome, Err(Error::IdempotencyConflict { .. })),
                    "other input with a used key: {:?}",
                    outcome
                );
                Ok(false)
            }
        }
    }
}

fn spelled(name: u8, shout: bool) -> (String, String) {
    let text = if shout {
        format!(" S{name}  ")
    } else {
        format!("s{name}")
    };
    (text, format!("s{name}"))
}

fn run(store: &dyn SegmentStore, ops: &[Op]) -> Result<(), TestCaseError> {
    let start = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let clock = ManualClock::new(start);
    let segments = Segments::new(store)
        .with_clock(clock.clone())
        .with_id_generator(SequentialIds::new());
    let org = OrgId::new("model").unwrap();
    let intruder = OrgId::new("intruder").unwrap();
    let mut now = start;
    let mut model: Vec<ModelSegment> = Vec::new();
    let mut history = History::default();
    let mut times = vec![start - TimeDelta::seconds(1), start];
    let mut keys = Keys::default();
    let keyed: Vec<_> = (0..4u8)
        .map(|k| segments.with_idempotency_key(format!("key-{k}")))
        .collect();
    // The service a call with `key` goes through.
    let with = |key: &Option<u8>| key.map(|k| &keyed[usize::from(k)]);

    for op in ops {
        match op {
            Op::Create {
                name,
                shout,
                key: idem,
            } => {
                let (text, key) = spelled(*name, *shout);
                let taken = model.iter().any(|s| !s.deleted && s.key == key);
                let result = match with(idem) {
                    Some(s) => s.create(&org, NewSegment::new(&text)),
                    None => segments.create(&org, NewSegment::new(&text)),
                };
                if !keys.check(*idem, format!("create {text}"), &result)? {
                    continue;
                }
                match result {
                    Ok(s) => {
                        prop_assert!(!taken, "create of a taken key succeeded");
                        prop_assert_eq!(s.current_size, 0);
                        history.stamp(now);
                        model.push(ModelSegment {
                            id: s.id,
                            name: s.name.clone(),
                            key,
                            deleted: false,
                            members: HashMap::new(),
                        });
                    }
                    Err(Error::DuplicateName { .. }) => {
                        prop_assert!(taken, "create of a free key refused")
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("create failed: {e}"))),
                }
            }
            Op::Rename {
                segment,
                name,
                shout,
            } => {
                let Some(target) = model.get(*segment) else {
                    continue;
                };
                let (text, key) = spelled(*name, *shout);
                let (id, deleted) = (target.id, target.deleted);
                let taken = model
                    .iter()
                    .any(|s| !s.deleted && s.key == key && s.id != id);
                match segments.rename(&org, id, &text) {
                    Ok(s) => {
                        prop_assert!(
                            !deleted && !taken,
                            "rename onto a taken key, or of a deleted segment, succeeded"
                        );
                        prop_assert_eq!(s.name.as_str(), text.trim());
                        // A rename to the very name it has is no change, and
                        // records nothing (so does not hold back later times).
                        if model[*segment].name != text.trim() {
                            history.stamp(now);
                        }
                        model[*segment].name = text.trim().to_owned();
                        model[*segment].key = key;
                    }
                    Err(Error::DuplicateName { .. }) => {
                        prop_assert!(!deleted && taken, "rename to a free key refused")
                    }
                    Err(Error::NotFound { .. }) => {
                        prop_assert!(deleted, "rename of a live segment: not found")
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("rename failed: {e}"))),
                }
            }
            Op::Intrude { segment, pids } => {
                let Some(s) = model.get(*segment) else {
                    continue;
                };
                let texts: Vec<String> = pids.iter().map(PidChoice::text).collect();
                let not_found = |r: Result<(), Error>| matches!(r, Err(Error::NotFound { .. }));
                prop_assert!(
                    not_found(segments.get(&intruder, s.id).map(drop)),
                    "another org's get"
                );
                prop_assert!(
                    not_found(segments.add_members(&intruder, s.id, &texts).map(drop)),
                    "another org's add"
                );
                prop_assert!(
                    not_found(segments.remove_members(&intruder, s.id, &texts).map(drop)),
                    "another org's remove"
                );
                prop_assert!(
                    not_found(segments.rename(&intruder, s.id, "stolen").map(drop)),
                    "another org's rename"
                );
                prop_assert!(
                    not_found(segments.delete(&intruder, s.id)),
                    "another org's delete"
                );
            }
            Op::Delete { segment, key } => {
                let Some(s) = model.get_mut(*segment) else {
                    continue;
                };
                let result = match with(key) {
                    Some(keyed) => keyed.delete(&org, s.id),
                    None => segments.delete(&org, s.id),
                };
                if !keys.check(*key, format!("delete {}", s.id), &result)? {
                    continue;
                }
                match result {
                    Ok(()) => {
                        prop_assert!(!s.deleted, "deleted twice");
                        history.stamp(now);
                    }
                    Err(Error::NotFound { .. }) => {
                        prop_assert!(s.deleted, "live segment not found")
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("delete failed: {e}"))),
                }
                s.deleted = true;
            }
            Op::Add { segment, pids, key } => {
                let Some(s) = model.get_mut(*segment) else {
                    continue;
                };
                let texts: Vec<String> = pids.iter().map(PidChoice::text).collect();
                let dry = segments.dry_run().add_members(&org, s.id, &texts);
                let result = match with(key) {
                    Some(keyed) => keyed.add_members(&org, s.id, &texts),
                    None => segments.add_members(&org, s.id, &texts),
                };
                if !keys.check(*key, format!("add {} {texts:?}", s.id), &result)? {
                    continue;
                }
                prop_assert_eq!(
                    format!("{:?}", dry),
                    format!("{:?}", result),
                    "a dry add says what the add then does"
                );
                if s.deleted {
                    prop_assert!(
                        matches!(result, Err(Error::NotFound { .. })),
                        "add to a deleted segment: {:?}",
                        result
                    );
                    continue;
                }
                let (valid, invalid, repeats) = split(pids);
                let at = history.effective(now);
                let (added, redundant, joined) = model_add(s, valid, at);
                let redundant = redundant + repeats;
                history.record(now, *segment, joined, true);
                let expected = AddOutcome {
                    n_added: added,
                    n_redundant_additions: redundant,
                    invalid_pids: invalid,
                    new_current_size: s.size(),
                };
                prop_assert_eq!(result.expect("add succeeds"), expected);
            }
            Op::Remove { segment, pids, key } => {
                let Some(s) = model.get_mut(*segment) else {
                    continue;
                };
                let texts: Vec<String> = pids.iter().map(PidChoice::text).collect();
                let dry = segments.dry_run().remove_members(&org, s.id, &texts);
                let result = match with(key) {
                    Some(keyed) => keyed.remove_members(&org, s.id, &texts),
                    None => segments.remove_members(&org, s.id, &texts),
                };
                if !keys.check(*key, format!("remove {} {texts:?}", s.id), &result)? {
                    continue;
                }
                prop_assert_eq!(
                    format!("{:?}", dry),
                    format!("{:?}", result),
                    "a dry removal says what the removal then does"
                );
                if s.deleted {
                    prop_assert!(
                        matches!(result, Err(Error::NotFound { .. })),
                        "remove from a deleted segment: {:?}",
                        result
                    );
                    continue;
                }
                let (valid, invalid, _) = split(pids);
                let (deleted, left) = model_remove(s, valid);
                history.record(now, *segment, left, false);
                let expected = RemoveOutcome {
                    n_deleted: deleted,
                    invalid_pids: invalid,
                    new_current_size: s.size(),
                };
                prop_assert_eq!(result.expect("remove succeeds"), expected);
            }
            Op::FromSet {
                target,
                a,
                b,
                kind,
                add,
            } => {
                let (Some(t), Some(sa), Some(sb)) =
                    (model.get(*target), model.get(*a), model.get(*b))
                else {
                    continue;
                };
                let active = |s: &ModelSegment| -> std::collections::BTreeSet<String> {
                    s.members
                        .iter()
                        .filter(|(_, m)| m.active)
                        .map(|(p, _)| p.clone())
                        .collect()
                };
                let (set_a, set_b) = (active(sa), active(sb));
                let members: Vec<String> = match kind {
                    0 => set_a.union(&set_b).cloned().collect(),
                    1 => set_a.intersection(&set_b).cloned().collect(),
                    _ => set_a.difference(&set_b).cloned().collect(),
                };
                let seg = SetExpr::segment;
                let expr = match kind {
                    0 => seg(sa.id).union(seg(sb.id)),
                    1 => seg(sa.id).intersect(seg(sb.id)),
                    _ => seg(sa.id).minus(seg(sb.id)),
                };
                let (target_id, any_deleted) = (t.id, t.deleted || sa.deleted || sb.deleted);
                // The dry run first: it must say exactly what the call does.
                let (dry, real, result) = if *add {
                    let dry = segments.dry_run().add_from(&org, target_id, &expr);
                    let real = segments.add_from(&org, target_id, &expr);
                    let result = real
                        .as_ref()
                        .map(|o| (o.n_added, o.n_redundant_additions, o.new_current_size))
                        .map_err(|e| format!("{e:?}"));
                    (format!("{dry:?}"), format!("{real:?}"), result)
                } else {
                    let dry = segments.dry_run().remove_from(&org, target_id, &expr);
                    let real = segments.remove_from(&org, target_id, &expr);
                    let result = real
                        .as_ref()
                        .map(|o| (o.n_deleted, 0, o.new_current_size))
                        .map_err(|e| format!("{e:?}"));
                    (format!("{dry:?}"), format!("{real:?}"), result)
                };
                prop_assert_eq!(dry, real, "a dry set operation says what it then does");
                if any_deleted {
                    prop_assert!(
                        matches!(&result, Err(e) if e.starts_with("NotFound")),
                        "a set operation touching a deleted segment: {:?}",
                        result
                    );
                    continue;
                }
                let result = result.expect("the set operation succeeds");
                let s = &mut model[*target];
                let expected = if *add {
                    let at = history.effective(now);
                    let (added, redundant, joined) = model_add(s, members, at);
                    history.record(now, *target, joined, true);
                    (added, redundant, s.size())
                } else {
                    let (deleted, left) = model_remove(s, members);
                    history.record(now, *target, left, false);
                    (deleted, 0, s.size())
                };
                prop_assert_eq!(result, expected, "set operation {:?}", op);
            }
            Op::Tick { micros } => {
                now += TimeDelta::microseconds(i64::from(*micros));
                clock.set(now);
                times.extend([now - TimeDelta::microseconds(1), now]);
            }
        }
        for s in model.iter().filter(|s| !s.deleted) {
            prop_assert_eq!(
                segments.get(&org, s.id).expect("live segment").current_size,
                s.size(),
                "current_size"
            );
        }
    }

    // As of every time the run passed through, each live segment's size and
    // members agree with the model's replay of its history.
    for (index, s) in model.iter().enumerate().filter(|(_, s)| !s.deleted) {
        for &t in &times {
            let expected = history.as_of(index, t);
            prop_assert_eq!(
                segments.size_as_of(&org, s.id, t).expect("size_as_of"),
                expected.len() as u64,
                "size of {} as of {}",
                s.key,
                t
            );
            let mut got = Vec::new();
            let mut options = PageOptions::new().limit(4);
            loop {
                let page = segments
                    .members_as_of(&org, s.id, t, options.clone())
                    .expect("members_as_of");
                got.extend(
                    page.members
                        .iter()
                        .map(|m| (m.pid.as_str().to_owned(), (m.first_added_at, m.joined_at))),
                );
                match page.next {
                    Some(next) => options = options.after(next),
                    None => break,
                }
            }
            // In list order: first joined, then PID.
            let mut expected: Vec<_> = expected
                .into_iter()
                .map(|(pid, joined)| {
                    let first = s.members[&pid].first;
                    (pid, (first, joined))
                })
                .collect();
            expected.sort_by(|a, b| (a.1.0, &a.0).cmp(&(b.1.0, &b.0)));
            prop_assert_eq!(got, expected, "members of {} as of {}", s.key, t);
        }
    }

    // Every member list, in order, with its timestamps.
    for s in model.iter().filter(|s| !s.deleted) {
        let expected: BTreeMap<(DateTime<Utc>, String), DateTime<Utc>> = s
            .members
            .iter()
            .filter(|(_, m)| m.active)
            .map(|(pid, m)| ((m.first, pid.clone()), m.last))
            .collect();
        let mut got = Vec::new();
        let mut options = PageOptions::new().limit(3);
        loop {
            let page = segments
                .members(&org, s.id, options.clone())
                .expect("members");
            got.extend(page.members.iter().map(|m| {
                (
                    (m.first_added_at, m.pid.as_str().to_owned()),
                    m.last_added_at,
                )
            }));
            match page.next {
                Some(next) => options = PageOptions::new().after(next).limit(3),
                None => break,
            }
        }
        let expected: Vec<_> = expected.into_iter().collect();
        let page = segments.members_page(&org, s.id, 1).expect("members page");
        prop_assert_eq!(
            page.total_count as usize,
            expected.len(),
            "total_count of {}",
            s.key
        );
        prop_assert_eq!(got, expected, "member list of {}", s.key);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn memory_store_agrees_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run(&MemoryStore::new(), &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn sqlite_in_memory_agrees_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run(&SqliteStore::open_in_memory().unwrap(), &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn sqlite_file_agrees_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        run(&SqliteStore::open(dir.path().join("model.db")).unwrap(), &ops)?;
    }
}

/// Two stores on one file, taking turns call by call: each has its own
/// write and read connections, so every call follows a commit by the
/// other.
#[derive(Debug)]
struct TakingTurns {
    stores: [SqliteStore; 2],
    turn: std::sync::atomic::AtomicUsize,
}

impl TakingTurns {
    fn next(&self) -> &SqliteStore {
        let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.stores[turn % 2]
    }
}

impl SegmentStore for TakingTurns {
    fn insert_segment(
        &self,
        org: &OrgId,
        segment: SegmentInsert,
        stamp: Stamp<'_>,
    ) -> segments_engine::Result<Segment> {
        self.next().insert_segment(org, segment, stamp)
    }
    fn segment(&self, org: &OrgId, id: SegmentId) -> segments_engine::Result<Segment> {
        self.next().segment(org, id)
    }
    fn segment_by_key(&self, org: &OrgId, key: &str) -> segments_engine::Result<Option<Segment>> {
        self.next().segment_by_key(org, key)
    }
    fn segments(
        &self,
        org: &OrgId,
        page: Page<Option<SegmentCursor>>,
    ) -> segments_engine::Result<Vec<Segment>> {
        self.next().segments(org, page)
    }
    fn update_segment(
        &self,
        org: &OrgId,
        id: SegmentId,
        change: &SegmentChange,
        stamp: Stamp<'_>,
    ) -> segments_engine::Result<Segment> {
        self.next().update_segment(org, id, change, stamp)
    }
    fn delete_segment(
        &self,
        org: &OrgId,
        id: SegmentId,
        stamp: Stamp<'_>,
    ) -> segments_engine::Result<()> {
        self.next().delete_segment(org, id, stamp)
    }
    fn add_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> segments_engine::Result<StoreAddOutcome> {
        self.next().add_members(org, id, pids, stamp)
    }
    fn remove_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> segments_engine::Result<StoreRemoveOutcome> {
        self.next().remove_members(org, id, pids, stamp)
    }
    fn create_from(
        &self,
        org: &OrgId,
        segment: SegmentInsert,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> segments_engine::Result<Segment> {
        self.next().create_from(org, segment, expr, stamp)
    }
    fn add_from(
        &self,
        org: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> segments_engine::Result<StoreAddOutcome> {
        self.next().add_from(org, id, expr, stamp)
    }
    fn remove_from(
        &self,
        org: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> segments_engine::Result<StoreRemoveOutcome> {
        self.next().remove_from(org, id, expr, stamp)
    }
    fn members(
        &self,
        org: &OrgId,
        id: SegmentId,
        page: Page<MemberStart<'_>>,
    ) -> segments_engine::Result<MemberSlice> {
        self.next().members(org, id, page)
    }
    fn changes_since(&self, org: &OrgId, page: Page<u64>) -> segments_engine::Result<Vec<Change>> {
        self.next().changes_since(org, page)
    }
    fn last_seq(&self, org: &OrgId) -> segments_engine::Result<u64> {
        self.next().last_seq(org)
    }
    fn timeline(
        &self,
        org: &OrgId,
        pid: &Pid,
        page: Page<u64>,
    ) -> segments_engine::Result<Vec<Change>> {
        self.next().timeline(org, pid, page)
    }
    fn size_as_of(
        &self,
        org: &OrgId,
        id: SegmentId,
        at: DateTime<Utc>,
    ) -> segments_engine::Result<u64> {
        self.next().size_as_of(org, id, at)
    }
    fn members_as_of(
        &self,
        org: &OrgId,
        id: SegmentId,
        at: DateTime<Utc>,
        page: Page<Option<&MemberCursor>>,
    ) -> segments_engine::Result<Vec<PastMember>> {
        self.next().members_as_of(org, id, at, page)
    }
    fn idempotency_record(
        &self,
        org: &OrgId,
        key: &str,
        now: DateTime<Utc>,
    ) -> segments_engine::Result<Option<KeyRecord>> {
        self.next().idempotency_record(org, key, now)
    }
    fn record_idempotency(
        &self,
        org: &OrgId,
        key: &str,
        record: KeyRecord,
        now: DateTime<Utc>,
    ) -> segments_engine::Result<KeyRecord> {
        self.next().record_idempotency(org, key, record, now)
    }
    fn upsert_deaths(
        &self,
        records: &[DeathRecord],
        at: DateTime<Utc>,
    ) -> segments_engine::Result<StoreDeathsIngested> {
        self.next().upsert_deaths(records, at)
    }
    fn death_signals(
        &self,
        org: &OrgId,
        id: SegmentId,
        page: Page<DeathCursor>,
    ) -> segments_engine::Result<DeathSignals> {
        self.next().death_signals(org, id, page)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn two_stores_taking_turns_on_one_file_agree_with_the_model(
        ops in prop::collection::vec(op(), 1..60)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.db");
        let store = TakingTurns {
            stores: [SqliteStore::open(&path).unwrap(), SqliteStore::open(&path).unwrap()],
            turn: Default::default(),
        };
        run(&store, &ops)?;
    }
}

#[cfg(feature = "postgres")]
mod support;

/// The model against PostgreSQL (the throwaway test server, or
/// `SEGMENTS_POSTGRES_URL`), each case in a schema of its own, dropped
/// afterwards.
#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn postgres_agrees_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
            let url = support::postgres::url();
            let schema = format!(
                "model_{}",
                uuid::Uuid::now_v7().simple().to_string().get(16..).unwrap()
            );
            let store = segments_engine::PostgresStore::builder(&url)
                .schema(schema.clone())
                .pool_size(2)
                .connect()
                .expect("the test server accepts the store");
            let outcome = run(&store, &ops);
            drop(store);
            ::postgres::Client::connect(&url, ::postgres::NoTls)
                .unwrap()
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .unwrap();
            outcome?;
        }
    }
}
