//! The member call's plan. A backend reads what each PID of the call is to
//! the segment, asks for the plan, then writes it; a dry run reads, plans
//! and stops.

use crate::store::{StoreAddOutcome, StoreRemoveOutcome};
use crate::{Error, Result, SegmentId};

/// What one PID of a member call was to the segment before the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Never a member (or a person the org never saw).
    NotMember,
    /// A member once, removed since.
    Removed,
    /// An active member.
    Member,
}

impl Standing {
    /// [`Standing::NotMember`] as the SQL backends' queries write it.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) const NOT_MEMBER_CODE: i16 = 0;
    /// [`Standing::Member`] as the SQL backends' queries write it.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) const MEMBER_CODE: i16 = 1;
    /// [`Standing::Removed`] as the SQL backends' queries write it.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) const REMOVED_CODE: i16 = 2;

    /// The standing a SQL query wrote as `code`.
    ///
    /// # Errors
    /// A storage error for a code no query writes.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn from_code(code: i64) -> Result<Self> {
        match code {
            c if c == i64::from(Self::NOT_MEMBER_CODE) => Ok(Self::NotMember),
            c if c == i64::from(Self::MEMBER_CODE) => Ok(Self::Member),
            c if c == i64::from(Self::REMOVED_CODE) => Ok(Self::Removed),
            other => Err(Error::storage(format!("unknown membership state {other}"))),
        }
    }
}

/// How a PID joins the segment: its ledger entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Joined {
    /// A first membership: an `Added` entry.
    Added,
    /// A removed member back: a `ReAdded` entry.
    ReAdded,
}

/// What an add writes, for people of any form `T` (a PID, a person number).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AddPlan<T> {
    /// New memberships, in the order the rows came.
    pub(crate) insert: Vec<T>,
    /// Removed members to make active again (and touch).
    pub(crate) readd: Vec<T>,
    /// Active members whose `last_added_at` moves.
    pub(crate) touch: Vec<T>,
    /// The ledger entries, in the caller's order.
    pub(crate) entries: Vec<(Joined, T)>,
}

impl<T> AddPlan<T> {
    /// The call's result, for a segment of `size` active members before it.
    pub(crate) fn outcome(&self, size: u64) -> StoreAddOutcome {
        let n_added = self.entries.len() as u64;
        StoreAddOutcome {
            n_added,
            n_redundant_additions: self.touch.len() as u64,
            new_current_size: size + n_added,
        }
    }
}

/// The plan of an add, from each PID's place in the caller's order, the
/// person, and their standing (rows in any order; each PID once).
pub(crate) fn add<T: Clone>(rows: impl IntoIterator<Item = (usize, T, Standing)>) -> AddPlan<T> {
    let mut plan = AddPlan {
        insert: Vec::new(),
        readd: Vec::new(),
        touch: Vec::new(),
        entries: Vec::new(),
    };
    let mut entries = Vec::new();
    for (place, person, standing) in rows {
        match standing {
            Standing::NotMember => {
                plan.insert.push(person.clone());
                entries.push((place, Joined::Added, person));
            }
            Standing::Removed => {
                plan.readd.push(person.clone());
                entries.push((place, Joined::ReAdded, person));
            }
            Standing::Member => plan.touch.push(person),
        }
    }
    entries.sort_by_key(|(place, _, _)| *place);
    plan.entries = entries
        .into_iter()
        .map(|(_, joined, person)| (joined, person))
        .collect();
    plan
}

/// The people a remove takes out, in the caller's order (each a `Removed`
/// entry), from each PID's place, person and standing (rows in any order).
pub(crate) fn remove<T>(rows: impl IntoIterator<Item = (usize, T, Standing)>) -> Vec<T> {
    let mut leaving: Vec<(usize, T)> = rows
        .into_iter()
        .filter(|(_, _, standing)| *standing == Standing::Member)
        .map(|(place, person, _)| (place, person))
        .collect();
    leaving.sort_by_key(|(place, _)| *place);
    leaving.into_iter().map(|(_, person)| person).collect()
}

/// The result of a remove of `n_deleted` active members of segment `id`,
/// which had `size` before it.
///
/// # Errors
/// A storage error when the stored size is below the members removed.
pub(crate) fn removed(id: SegmentId, size: u64, n_deleted: u64) -> Result<StoreRemoveOutcome> {
    let new_current_size = size.checked_sub(n_deleted).ok_or_else(|| {
        Error::storage(format!(
            "segment {id}: current_size {size} is below the {n_deleted} members removed"
        ))
    })?;
    Ok(StoreRemoveOutcome {
        n_deleted,
        new_current_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each standing lands in its list; entries follow the caller's
    /// places, not the rows' order; redundant PIDs make no entry.
    #[test]
    fn an_add_splits_by_standing_and_orders_entries_by_place() {
        let plan = add([
            (2, "c", Standing::NotMember),
            (0, "a", Standing::Removed),
            (3, "d", Standing::Member),
            (1, "b", Standing::NotMember),
        ]);
        assert_eq!(plan.insert, ["c", "b"], "new memberships, in row order");
        assert_eq!(plan.readd, ["a"], "removed members come back");
        assert_eq!(plan.touch, ["d"], "active members are touched");
        assert_eq!(
            plan.entries,
            [
                (Joined::ReAdded, "a"),
                (Joined::Added, "b"),
                (Joined::Added, "c")
            ],
            "entries in the caller's order"
        );
        let out = plan.outcome(10);
        assert_eq!(
            (out.n_added, out.n_redundant_additions, out.new_current_size),
            (3, 1, 13),
            "counts and size"
        );
    }

    /// Only active members leave, in the caller's order; the size cannot
    /// go below zero.
    #[test]
    fn a_remove_takes_active_members_in_the_caller_s_order() {
        let leaving = remove([
            (1, "b", Standing::Member),
            (0, "a", Standing::Member),
            (2, "c", Standing::Removed),
            (3, "d", Standing::NotMember),
        ]);
        assert_eq!(leaving, ["a", "b"], "active members only, by place");
        let id = SegmentId::now_v7();
        assert_eq!(removed(id, 5, 2).unwrap().new_current_size, 3, "5 - 2");
        assert!(removed(id, 1, 2).is_err(), "a size below the removed");
    }
}
