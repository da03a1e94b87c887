//! The member calls of the SQL backends, written once: what a call reads,
//! what it asks the plan ([`rules::members`](super::rules::members)) and
//! what it writes, in which order. A backend implements [`MemberSql`]
//! with its statements and the decoding of their rows, and calls [`add`],
//! [`remove`], [`add_from`] and [`remove_from`] (a set operation's
//! members come from the backend's own SQL, then join or leave the same
//! way).
//!
//! Each step is one statement over the whole batch, whatever its size, so
//! a call costs a handful of round trips (SPEC §10).

use super::entries::{Batch, REMOVED, join_code};
use super::rules::members::{self as plan, Standing};
use super::{StoreAddOutcome, StoreRemoveOutcome};
use crate::{Error, Provenance, Result, SegmentId, SetExpr};

/// One member call on one segment, inside its write transaction, with the
/// org's ledger open: the statements a SQL backend runs for each step.
/// People are named by the org's person numbers.
pub(crate) trait MemberSql {
    /// The segment of the call.
    fn segment(&self) -> SegmentId;

    /// The segment's active members before the call.
    fn size(&self) -> u64;

    /// The org's last seq before this transaction: what a set operation
    /// read its sources at.
    fn read_at(&self) -> i64;

    /// The members of `expr`, in PID order, each with what they are to
    /// the call's segment. A source the org does not have is `NotFound`
    /// (the first missing one, in id order).
    fn members_of(&mut self, expr: &SetExpr) -> Result<Vec<SetMember>>;

    /// Every PID of `batch`, in PID order: its person number and what it
    /// is to the segment. Numbers the people the org has never seen (to
    /// the segment they are [`Standing::NotMember`]).
    fn number_or_classify(&mut self, batch: &Batch<'_>) -> Result<Vec<(i64, Standing)>>;

    /// The active members of the segment among the PIDs of `batch`: each
    /// one's index in PID order, and person number.
    fn active_among(&mut self, batch: &Batch<'_>) -> Result<Vec<(usize, i64)>>;

    /// Inserts new memberships, each `(person, PID)`, first and last added
    /// now.
    fn insert(&mut self, people: &[(i64, &str)]) -> Result<()>;

    /// Makes the removed members of `readd` active again and moves the
    /// last add of the active members of `touch`, both to now.
    fn rejoin(&mut self, readd: &[i64], touch: &[i64]) -> Result<()>;

    /// Ends the active memberships of `people`, now.
    fn end(&mut self, people: &[i64]) -> Result<()>;

    /// Appends one ledger entry per `(code, person)`, in order, naming the
    /// set operation they came from when `provenance` says so; returns the
    /// last entry's seq, if any.
    fn entries(
        &mut self,
        entries: &[(i16, i64)],
        provenance: Option<&Provenance>,
    ) -> Result<Option<i64>>;

    /// Records the segment's size after the call, when the call wrote an
    /// entry (`last_entry`); a call that changed nothing records nothing.
    fn set_size(&mut self, last_entry: Option<i64>, size: u64) -> Result<()>;
}

/// Where the entry of the PID at `i` (in PID order) goes among the call's
/// entries: its place in the caller's order.
fn place(batch: &Batch<'_>, i: usize) -> Result<usize> {
    batch
        .place(i)
        .ok_or_else(|| Error::storage(format!("no PID at place {i} of the call")))
}

/// Makes every PID of `batch` an active member.
pub(crate) fn add(call: &mut impl MemberSql, batch: &Batch<'_>) -> Result<StoreAddOutcome> {
    let states = call.number_or_classify(batch)?;
    if states.len() != batch.len() {
        return Err(Error::storage(format!(
            "classifying {} PIDs gave {} rows",
            batch.len(),
            states.len()
        )));
    }
    let rows = states
        .into_iter()
        .enumerate()
        .map(|(i, (person, standing))| {
            // Entries follow the caller's order.
            Ok((place(batch, i)?, (person, batch.texts()[i]), standing))
        })
        .collect::<Result<Vec<_>>>()?;
    join(call, rows, None)
}

/// Makes active members of the people of `rows` (each its entry's place
/// among the call's entries, `(person, PID)` and standing, in PID order),
/// recording an entry for each who joins, in the order of their places,
/// with `provenance`; updates the size.
fn join(
    call: &mut impl MemberSql,
    rows: Vec<(usize, (i64, &str), Standing)>,
    provenance: Option<&Provenance>,
) -> Result<StoreAddOutcome> {
    let plan = plan::add(rows);
    if !plan.insert.is_empty() {
        call.insert(&plan.insert)?;
    }
    let person = |&(person, _): &(i64, &str)| person;
    let readd: Vec<i64> = plan.readd.iter().map(person).collect();
    let touch: Vec<i64> = plan.touch.iter().map(person).collect();
    if !(readd.is_empty() && touch.is_empty()) {
        call.rejoin(&readd, &touch)?;
    }
    let entries: Vec<(i16, i64)> = plan
        .entries
        .iter()
        .map(|&(joined, (person, _))| (join_code(joined), person))
        .collect();
    let last_entry = call.entries(&entries, provenance)?;
    let out = plan.outcome(call.size());
    call.set_size(last_entry, out.new_current_size)?;
    Ok(out)
}

/// Ends the active membership of every PID of `batch` that has one.
pub(crate) fn remove(call: &mut impl MemberSql, batch: &Batch<'_>) -> Result<StoreRemoveOutcome> {
    let leaving = call
        .active_among(batch)?
        .into_iter()
        // Entries follow the caller's order.
        .map(|(i, person)| Ok((place(batch, i)?, person)))
        .collect::<Result<Vec<_>>>()?;
    leave(call, leaving, None)
}

/// Ends the active membership of the people of `leaving` (each its
/// entry's place among the call's entries and person, all active
/// members), recording an entry for each in the order of their places,
/// with `provenance`; updates the size.
fn leave(
    call: &mut impl MemberSql,
    mut leaving: Vec<(usize, i64)>,
    provenance: Option<&Provenance>,
) -> Result<StoreRemoveOutcome> {
    let out = plan::removed(call.segment(), call.size(), leaving.len() as u64)?;
    if !leaving.is_empty() {
        let people: Vec<i64> = leaving.iter().map(|&(_, person)| person).collect();
        call.end(&people)?;
    }
    leaving.sort_unstable_by_key(|&(place, _)| place);
    let entries: Vec<(i16, i64)> = leaving.iter().map(|&(_, p)| (REMOVED, p)).collect();
    let last_entry = call.entries(&entries, provenance)?;
    call.set_size(last_entry, out.new_current_size)?;
    Ok(out)
}

/// A member of a set expression, as a backend's SQL found it.
pub(crate) struct SetMember {
    pub(crate) person: i64,
    pub(crate) pid: String,
    /// What they are to the segment the operation writes.
    pub(crate) standing: Standing,
}

/// Makes every member of `expr` an active member of the call's segment;
/// their entries follow PID order and name the operation.
pub(crate) fn add_from(call: &mut impl MemberSql, expr: &SetExpr) -> Result<StoreAddOutcome> {
    let found = call.members_of(expr)?;
    let provenance = provenance(call, expr);
    let rows = found
        .iter()
        .enumerate()
        .map(|(place, m)| (place, (m.person, m.pid.as_str()), m.standing))
        .collect();
    join(call, rows, Some(&provenance))
}

/// Ends the membership in the call's segment of every member of `expr`
/// who is an active member of it; their entries follow PID order and name
/// the operation.
pub(crate) fn remove_from(call: &mut impl MemberSql, expr: &SetExpr) -> Result<StoreRemoveOutcome> {
    let found = call.members_of(expr)?;
    let provenance = provenance(call, expr);
    let leaving = found
        .iter()
        .filter(|m| m.standing == Standing::Member)
        .enumerate()
        .map(|(place, m)| (place, m.person))
        .collect();
    leave(call, leaving, Some(&provenance))
}

/// Where the entries of a set operation on `expr` came from.
fn provenance(call: &impl MemberSql, expr: &SetExpr) -> Provenance {
    Provenance {
        sources: expr.segments(),
        read_at: u64::try_from(call.read_at()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pid;
    use crate::store::entries::{ADDED, READDED};

    /// A store of one segment in memory that records what the flow asks
    /// of it: people by number (the PID's last hex digit), standings as
    /// given.
    #[derive(Default)]
    struct MemberRecorder {
        standings: Vec<(String, Standing)>,
        size: u64,
        calls: Vec<String>,
        entries: Vec<(i16, i64)>,
        sizes: Vec<(Option<i64>, u64)>,
    }

    fn person(pid: &str) -> i64 {
        i64::from_str_radix(&pid[pid.len() - 1..], 16).unwrap()
    }

    impl MemberSql for MemberRecorder {
        fn segment(&self) -> SegmentId {
            SegmentId::from_uuid(uuid::Uuid::nil())
        }
        fn size(&self) -> u64 {
            self.size
        }
        fn read_at(&self) -> i64 {
            7
        }
        fn members_of(&mut self, _: &SetExpr) -> Result<Vec<SetMember>> {
            let mut found: Vec<SetMember> = self
                .standings
                .iter()
                .map(|(pid, standing)| SetMember {
                    person: person(pid),
                    pid: pid.clone(),
                    standing: *standing,
                })
                .collect();
            found.sort_by(|a, b| a.pid.cmp(&b.pid));
            Ok(found)
        }
        fn number_or_classify(&mut self, batch: &Batch<'_>) -> Result<Vec<(i64, Standing)>> {
            Ok(batch
                .texts()
                .iter()
                .map(|pid| {
                    let standing = self
                        .standings
                        .iter()
                        .find(|(p, _)| p == pid)
                        .map_or(Standing::NotMember, |(_, s)| *s);
                    (person(pid), standing)
                })
                .collect())
        }
        fn active_among(&mut self, batch: &Batch<'_>) -> Result<Vec<(usize, i64)>> {
            let states = self.number_or_classify(batch)?;
            Ok(states
                .into_iter()
                .enumerate()
                .filter(|(_, (_, s))| *s == Standing::Member)
                .map(|(i, (p, _))| (i, p))
                .collect())
        }
        fn insert(&mut self, people: &[(i64, &str)]) -> Result<()> {
            self.calls.push(format!("insert {people:?}"));
            Ok(())
        }
        fn rejoin(&mut self, readd: &[i64], touch: &[i64]) -> Result<()> {
            self.calls.push(format!("rejoin {readd:?} touch {touch:?}"));
            Ok(())
        }
        fn end(&mut self, people: &[i64]) -> Result<()> {
            self.calls.push(format!("end {people:?}"));
            Ok(())
        }
        fn entries(
            &mut self,
            entries: &[(i16, i64)],
            p: Option<&Provenance>,
        ) -> Result<Option<i64>> {
            self.calls.push(format!("entries from op: {}", p.is_some()));
            self.entries.extend_from_slice(entries);
            Ok((!entries.is_empty()).then_some(100))
        }
        fn set_size(&mut self, last_entry: Option<i64>, size: u64) -> Result<()> {
            self.sizes.push((last_entry, size));
            Ok(())
        }
    }

    fn pids(texts: &[&str]) -> Vec<Pid> {
        texts.iter().map(|t| Pid::parse(t).unwrap()).collect()
    }

    fn fixture() -> MemberRecorder {
        MemberRecorder {
            standings: vec![
                ("p-00000000000a".into(), Standing::Member),
                ("p-00000000000b".into(), Standing::Removed),
            ],
            size: 1,
            ..MemberRecorder::default()
        }
    }

    #[test]
    fn an_add_writes_each_kind_once_and_its_entries_in_the_callers_order() {
        let mut store = fixture();
        // Caller's order: new 3, active a, removed b, new 1.
        let call = pids(&[
            "p-000000000003",
            "p-00000000000a",
            "p-00000000000b",
            "p-000000000001",
        ]);
        let out = add(&mut store, &Batch::new(&call).unwrap()).unwrap();
        assert_eq!(
            (out.n_added, out.n_redundant_additions, out.new_current_size),
            (3, 1, 4)
        );
        assert_eq!(
            store.calls,
            [
                r#"insert [(1, "p-000000000001"), (3, "p-000000000003")]"#,
                "rejoin [11] touch [10]",
                "entries from op: false",
            ]
        );
        assert_eq!(store.entries, [(ADDED, 3), (READDED, 11), (ADDED, 1)]);
        assert_eq!(store.sizes, [(Some(100), 4)]);
    }

    #[test]
    fn a_remove_ends_only_active_members_and_one_that_changes_nothing_records_nothing() {
        let mut store = fixture();
        let call = pids(&["p-00000000000b", "p-00000000000a", "p-000000000005"]);
        let out = remove(&mut store, &Batch::new(&call).unwrap()).unwrap();
        assert_eq!((out.n_deleted, out.new_current_size), (1, 0));
        assert_eq!(store.calls, ["end [10]", "entries from op: false"]);
        assert_eq!(store.entries, [(REMOVED, 10)]);

        let mut store = fixture();
        let call = pids(&["p-000000000005"]);
        remove(&mut store, &Batch::new(&call).unwrap()).unwrap();
        assert_eq!(store.calls, ["entries from op: false"]);
        assert_eq!(
            store.sizes,
            [(None, 1)],
            "no entry: the size is not recorded"
        );
    }

    #[test]
    fn set_operations_name_their_sources_and_keep_pid_order() {
        let expr = SetExpr::segment(SegmentId::from_uuid(uuid::Uuid::max()));
        let mut store = fixture();
        let out = add_from(&mut store, &expr).unwrap();
        assert_eq!((out.n_added, out.n_redundant_additions), (1, 1));
        assert_eq!(store.entries, [(READDED, 11)]);
        assert_eq!(store.calls.last().unwrap(), "entries from op: true");

        let mut store = fixture();
        let out = remove_from(&mut store, &expr).unwrap();
        assert_eq!(out.n_deleted, 1);
        assert_eq!(store.entries, [(REMOVED, 10)]);
    }
}
