//! [`Roster`]: a segment's members in list order, for [`MemoryStore`].
//!
//! [`MemoryStore`]: super::MemoryStore

use std::collections::BTreeSet;
use std::ops::Bound;

use crate::Pid;

/// A segment's members in list order: an ordered set of
/// (`first_added_at` in µs, PID).
#[derive(Debug, Default)]
pub(super) struct Roster {
    members: BTreeSet<(i64, Pid)>,
}

impl Roster {
    /// The number of members.
    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    /// Adds members who were not in the roster, each at its
    /// `first_added_at`.
    pub(super) fn insert(&mut self, members: Vec<(i64, Pid)>) {
        self.members.extend(members);
    }

    /// Removes members, each given with its `first_added_at`.
    pub(super) fn remove(&mut self, members: Vec<(i64, Pid)>) {
        for member in &members {
            self.members.remove(member);
        }
    }

    /// Up to `limit` members after `after` (from the start for `None`), in
    /// order, as (`first_added_at`, PID).
    pub(super) fn after<'a>(
        &'a self,
        after: Option<(i64, &'a Pid)>,
        limit: usize,
    ) -> Vec<(i64, &'a Pid)> {
        self.iter_from(after).take(limit).collect()
    }

    /// The members after `after` (from the start for `None`), in order, as
    /// (`first_added_at`, PID).
    pub(super) fn iter_from<'a>(
        &'a self,
        after: Option<(i64, &'a Pid)>,
    ) -> impl Iterator<Item = (i64, &'a Pid)> + 'a {
        let from = match after {
            Some((at, pid)) => Bound::Excluded((at, pid.clone())),
            None => Bound::Unbounded,
        };
        self.members
            .range((from, Bound::Unbounded))
            .map(|(at, pid)| (*at, pid))
    }

    /// Up to `limit` members from position `offset` (from 0), in order:
    /// linear in `offset`.
    pub(super) fn at_offset(&self, offset: usize, limit: usize) -> Vec<(i64, &Pid)> {
        self.members
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(at, pid)| (*at, pid))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(n: u32) -> Pid {
        Pid::parse(&format!("p-{n:x}")).unwrap()
    }

    /// Members are listed by time, then PID; a cursor starts after its
    /// member, an offset counts from the first.
    #[test]
    fn lists_by_time_then_pid() {
        let mut roster = Roster::default();
        roster.insert(vec![(5, pid(3)), (5, pid(1))]);
        roster.insert(vec![(5, pid(2)), (5, pid(9))]);
        roster.insert(vec![(1, pid(7))]);
        let order: Vec<(i64, String)> = roster
            .after(None, 10)
            .into_iter()
            .map(|(t, p)| (t, p.to_string()))
            .collect();
        assert_eq!(
            order,
            [(1, "p-7"), (5, "p-1"), (5, "p-2"), (5, "p-3"), (5, "p-9")]
                .map(|(t, p)| (t, p.to_owned())),
            "time first, then PID"
        );
        let p2 = pid(2);
        assert_eq!(
            roster.after(Some((5, &p2)), 2),
            vec![(5, &pid(3)), (5, &pid(9))],
            "after the cursor's member"
        );
        assert_eq!(roster.at_offset(3, 10), vec![(5, &pid(3)), (5, &pid(9))]);
        roster.remove(vec![(1, pid(7))]);
        assert_eq!(roster.len(), 4, "one removed");
        assert_eq!(roster.at_offset(4, 10), vec![], "past the end");
    }
}
