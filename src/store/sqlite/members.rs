//! People and memberships, in SQL: set-based member calls, and member
//! pages.
//!
//! A member call is a handful of statements over the whole batch, each
//! reading or writing the batch in PID order (the order of the people
//! index, so each statement walks the B-tree pages the one before it
//! touched): one classifies every PID, one numbers the people the org has
//! never seen, one inserts the new memberships, one updates the re-added
//! or redundant (or removed) ones; the ledger entries are then appended in
//! the caller's order.

use std::rc::Rc;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::ledger::{ADDED, Ledger, READDED, REMOVED, pid_at};
use super::segments::{Located, locate};
use super::{Db, array, micros, sql_int, time_at};
use crate::store::{MemberSlice, MemberStart, MembersAdded, MembersRemoved, Stamp};
use crate::{Error, Member, OrgId, Pid, Result, SegmentId};

/// The PIDs of one member call in PID order, each with its place in the
/// call. Built before the write lock is taken.
pub(super) struct Batch<'p> {
    sorted: Vec<(usize, &'p Pid)>,
}

impl<'p> Batch<'p> {
    pub(super) fn new(pids: &'p [Pid]) -> Self {
        let mut sorted: Vec<(usize, &Pid)> = pids.iter().enumerate().collect();
        sorted.sort_unstable_by(|a, b| a.1.cmp(b.1));
        Self { sorted }
    }

    /// The PIDs, in PID order, as one `rarray` parameter.
    fn texts(&self) -> Rc<Vec<Value>> {
        array(self.sorted.iter().map(|(_, pid)| pid.as_str().to_owned()))
    }

    /// The position in PID order of `pid`.
    fn position(&self, pid: &str) -> Option<usize> {
        self.sorted
            .binary_search_by(|(_, p)| p.as_str().cmp(pid))
            .ok()
    }
}

/// What a PID is to the segment, before an add.
const NEW: i64 = 0;
const ACTIVE: i64 = 1;
const REMOVED_MEMBER: i64 = 2;

/// Every PID of the batch (`rarray` in PID order): its person number, if
/// the org knows them, and what they are to the segment.
pub(super) const CLASSIFY: &str = "SELECT p.person,
            CASE WHEN m.person IS NULL THEN 0 WHEN m.removed_at IS NULL THEN 1 ELSE 2 END
     FROM rarray(?1) r
     LEFT JOIN segment_people p ON p.org = ?2 AND p.pid = r.value
     LEFT JOIN segment_memberships m ON m.segment = ?3 AND m.person = p.person
     ORDER BY r.rowid";

/// Numbers the people of the batch the org has never seen.
pub(super) const NEW_PEOPLE: &str = "INSERT INTO segment_people (org, pid)
     SELECT ?1, value FROM rarray(?2) ORDER BY rowid
     RETURNING pid, person";

/// New memberships, from person numbers in PID order.
pub(super) const INSERT_MEMBERS: &str =
    "INSERT INTO segment_memberships (segment, person, pid, first_added_at, last_added_at)
     SELECT ?1, p.person, p.pid, ?2, ?2
     FROM rarray(?3) r JOIN segment_people p ON p.person = r.value
     ORDER BY r.rowid";

pub(super) const REJOIN: &str =
    "UPDATE segment_memberships SET last_added_at = ?2, removed_at = NULL
     WHERE segment = ?1 AND person IN rarray(?3)";

pub(super) const TOUCH: &str = "UPDATE segment_memberships SET last_added_at = ?2
     WHERE segment = ?1 AND person IN rarray(?3)";

/// Makes every PID of `batch` an active member. Call inside a write
/// transaction.
pub(super) fn add(
    tx: &Connection,
    org: &OrgId,
    id: SegmentId,
    batch: &Batch<'_>,
    stamp: Stamp<'_>,
) -> Result<MembersAdded> {
    let segment = locate(tx, org, id)?;
    let mut ledger = Ledger::open(tx, org, stamp)?;
    let at = ledger.at();
    let states = tx
        .prepare_cached(CLASSIFY)
        .db()?
        .query_map(params![batch.texts(), org.as_str(), segment.number], |r| {
            Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, i64>(1)?))
        })
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    check_rows(states.len(), batch)?;
    let mut persons: Vec<Option<i64>> = states.iter().map(|(person, _)| *person).collect();
    number_new_people(tx, org, batch, &mut persons)?;

    let (mut new, mut rejoining, mut redundant) = (Vec::new(), Vec::new(), Vec::new());
    // (place in the call, ledger code, person) of everyone who joins.
    let mut joined = Vec::new();
    for (i, ((_, state), person)) in states.iter().zip(&persons).enumerate() {
        let person = person.ok_or_else(|| Error::storage("a new person got no number"))?;
        let given = batch.sorted[i].0;
        match *state {
            NEW => {
                new.push(person);
                joined.push((given, ADDED, person));
            }
            REMOVED_MEMBER => {
                rejoining.push(person);
                joined.push((given, READDED, person));
            }
            ACTIVE => redundant.push(person),
            other => return Err(Error::storage(format!("unknown membership state {other}"))),
        }
    }
    let n_added = joined.len() as u64;
    let n_redundant = redundant.len() as u64;
    for (sql, persons) in [
        (INSERT_MEMBERS, new),
        (REJOIN, rejoining),
        (TOUCH, redundant),
    ] {
        if !persons.is_empty() {
            tx.prepare_cached(sql)
                .db()?
                .execute(params![segment.number, at, array(persons)])
                .db()?;
        }
    }
    joined.sort_unstable_by_key(|(given, _, _)| *given);
    let last_entry = ledger.members(tx, id, joined.into_iter().map(|(_, c, p)| (c, p)))?;
    let new_current_size = segment.current_size + n_added;
    set_size(tx, segment, at, last_entry, new_current_size)?;
    ledger.close(tx)?;
    Ok(MembersAdded {
        n_added,
        n_redundant,
        new_current_size,
    })
}

/// Numbers the people of the batch who have none yet (`None` in
/// `persons`, in PID order), in one statement.
fn number_new_people(
    tx: &Connection,
    org: &OrgId,
    batch: &Batch<'_>,
    persons: &mut [Option<i64>],
) -> Result<()> {
    let unknown: Vec<String> = batch
        .sorted
        .iter()
        .zip(persons.iter())
        .filter(|(_, person)| person.is_none())
        .map(|((_, pid), _)| pid.as_str().to_owned())
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(NEW_PEOPLE).db()?;
    let mut rows = insert.query(params![org.as_str(), array(unknown)]).db()?;
    while let Some(row) = rows.next().db()? {
        let pid: String = row.get(0).db()?;
        let person: i64 = row.get(1).db()?;
        let i = batch.position(&pid).ok_or_else(|| {
            Error::storage(format!("numbered {pid}, which the call did not hold"))
        })?;
        persons[i] = Some(person);
    }
    Ok(())
}

/// The active members among the batch (`rarray` in PID order): their
/// place in PID order (the `rarray` rowid, from 1) and person number.
pub(super) const ACTIVE_AMONG: &str = "SELECT r.rowid, p.person
     FROM rarray(?1) r
     JOIN segment_people p ON p.org = ?2 AND p.pid = r.value
     JOIN segment_memberships m ON m.segment = ?3 AND m.person = p.person AND m.removed_at IS NULL
     ORDER BY r.rowid";

pub(super) const LEAVE: &str = "UPDATE segment_memberships SET removed_at = ?2
     WHERE segment = ?1 AND person IN rarray(?3)";

/// Ends the active membership of every PID of `batch` that has one. Call
/// inside a write transaction.
pub(super) fn remove(
    tx: &Connection,
    org: &OrgId,
    id: SegmentId,
    batch: &Batch<'_>,
    stamp: Stamp<'_>,
) -> Result<MembersRemoved> {
    let segment = locate(tx, org, id)?;
    let mut ledger = Ledger::open(tx, org, stamp)?;
    let leaving = tx
        .prepare_cached(ACTIVE_AMONG)
        .db()?
        .query_map(params![batch.texts(), org.as_str(), segment.number], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    let n_deleted = leaving.len() as u64;
    let new_current_size = segment.current_size.checked_sub(n_deleted).ok_or_else(|| {
        Error::storage(format!(
            "segment {id}: current_size {} is below the {n_deleted} members removed",
            segment.current_size
        ))
    })?;
    if !leaving.is_empty() {
        tx.prepare_cached(LEAVE)
            .db()?
            .execute(params![
                segment.number,
                ledger.at(),
                array(leaving.iter().map(|&(_, person)| person))
            ])
            .db()?;
    }
    let mut entries = leaving
        .into_iter()
        .map(|(rowid, person)| {
            let place = usize::try_from(rowid - 1)
                .ok()
                .and_then(|i| batch.sorted.get(i))
                .ok_or_else(|| Error::storage(format!("no PID at place {rowid} of the call")))?;
            Ok((place.0, person))
        })
        .collect::<Result<Vec<_>>>()?;
    entries.sort_unstable_by_key(|(given, _)| *given);
    let last_entry = ledger.members(tx, id, entries.into_iter().map(|(_, p)| (REMOVED, p)))?;
    set_size(tx, segment, ledger.at(), last_entry, new_current_size)?;
    ledger.close(tx)?;
    Ok(MembersRemoved {
        n_deleted,
        new_current_size,
    })
}

/// A statement over the batch must answer once per PID.
fn check_rows(rows: usize, batch: &Batch<'_>) -> Result<()> {
    if rows == batch.sorted.len() {
        Ok(())
    } else {
        Err(Error::storage(format!(
            "classifying {} PIDs gave {rows} rows",
            batch.sorted.len()
        )))
    }
}

/// Stores a segment's new size, both as `current_size` and as the size
/// after ledger entry `entry` (for `size_as_of`, and as its
/// `members_seq`). Nothing to do when the call recorded no entry: the
/// members did not change.
fn set_size(
    tx: &Connection,
    segment: Located,
    at: i64,
    entry: Option<i64>,
    size: u64,
) -> Result<()> {
    let Some(entry) = entry else {
        return Ok(());
    };
    tx.prepare_cached("UPDATE segments SET current_size = ?1 WHERE number = ?2")
        .db()?
        .execute(params![sql_int(size), segment.number])
        .db()?;
    tx.prepare_cached("INSERT INTO segment_sizes (segment, at, seq, size) VALUES (?1, ?2, ?3, ?4)")
        .db()?
        .execute(params![segment.number, at, entry, sql_int(size)])
        .db()?;
    Ok(())
}

/// A member row: `pid, first_added_at, last_added_at`.
pub(super) fn member_from_row(row: &Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        pid: pid_at(row, 0)?,
        first_added_at: time_at(row, 1)?,
        last_added_at: time_at(row, 2)?,
    })
}

/// The segment's `members_seq`: its last size sample's seq.
pub(super) const MEMBERS_SEQ: &str =
    "SELECT seq FROM segment_sizes WHERE segment = ?1 ORDER BY at DESC, seq DESC LIMIT 1";

/// Active members after a position, in list order.
pub(super) const AFTER: &str = "SELECT pid, first_added_at, last_added_at FROM segment_memberships
     WHERE segment = ?1 AND removed_at IS NULL AND (first_added_at, pid) > (?2, ?3)
     ORDER BY first_added_at, pid LIMIT ?4";

/// Active members from an offset, in list order.
pub(super) const AT_OFFSET: &str =
    "SELECT pid, first_added_at, last_added_at FROM segment_memberships
     WHERE segment = ?1 AND removed_at IS NULL
     ORDER BY first_added_at, pid LIMIT ?2 OFFSET ?3";

/// Up to `limit` active members from `from`, with the segment's size and
/// `members_seq`. Call inside one read transaction.
pub(super) fn slice(
    conn: &Connection,
    org: &OrgId,
    id: SegmentId,
    from: MemberStart<'_>,
    limit: usize,
) -> Result<MemberSlice> {
    let segment = locate(conn, org, id)?;
    let members_seq: i64 = conn
        .prepare_cached(MEMBERS_SEQ)
        .db()?
        .query_row([segment.number], |r| r.get(0))
        .optional()
        .db()?
        .unwrap_or(0);
    let members = match from {
        MemberStart::After(c) => conn
            .prepare_cached(AFTER)
            .db()?
            .query_map(
                params![
                    segment.number,
                    micros(c.first_added_at()),
                    c.pid().as_str(),
                    sql_int(limit)
                ],
                member_from_row,
            )
            .db()?
            .collect::<rusqlite::Result<Vec<_>>>(),
        MemberStart::Offset(offset) => conn
            .prepare_cached(AT_OFFSET)
            .db()?
            .query_map(
                params![segment.number, sql_int(limit), sql_int(offset)],
                member_from_row,
            )
            .db()?
            .collect(),
    }
    .db()?;
    Ok(MemberSlice {
        members,
        current_size: segment.current_size,
        members_seq: u64::try_from(members_seq).unwrap_or(0),
    })
}
