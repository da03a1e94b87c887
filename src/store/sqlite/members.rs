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

use super::ledger::{SqliteLedger, pid_at};
use super::segments::{Located, SqliteSegmentWrite, locate, set_size};
use super::{SqliteDb, array, micros, sql_int, time_at};
use crate::store::entries::Batch;
use crate::store::member_calls::{self, MemberSql, SetMember};
use crate::store::rules::members::Standing;
use crate::store::{MemberSlice, MemberStart, Page, StoreAddOutcome};
use crate::{Error, Member, OrgId, Provenance, Result, SegmentId, SetExpr};

/// The PIDs of `batch`, in PID order, as one `rarray` parameter.
fn texts(batch: &Batch<'_>) -> Rc<Vec<Value>> {
    array(batch.texts().iter().map(|pid| (*pid).to_owned()))
}

/// What a person is to the segment, before an add.
const NEW: i64 = Standing::NOT_MEMBER_CODE as i64;
const ACTIVE: i64 = Standing::MEMBER_CODE as i64;
const REMOVED_MEMBER: i64 = Standing::REMOVED_CODE as i64;

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

/// A member call on one segment: the statements of each step of the
/// shared flow ([`member_calls`]).
pub(super) struct SqliteMemberCall<'c, 'l> {
    tx: &'c Connection,
    ledger: &'c mut SqliteLedger<'l>,
    org: &'c OrgId,
    id: SegmentId,
    segment: Located,
}

impl MemberSql for SqliteMemberCall<'_, '_> {
    fn segment(&self) -> SegmentId {
        self.id
    }

    fn size(&self) -> u64 {
        self.segment.current_size
    }

    fn read_at(&self) -> i64 {
        self.ledger.head.read_at()
    }

    fn members_of(&mut self, expr: &SetExpr) -> Result<Vec<SetMember>> {
        members_of(self.tx, self.org, self.segment.number, expr)
    }

    fn number_or_classify(&mut self, batch: &Batch<'_>) -> Result<Vec<(i64, Standing)>> {
        let states = self
            .tx
            .prepare_cached(CLASSIFY)
            .db()?
            .query_map(
                params![texts(batch), self.org.as_str(), self.segment.number],
                |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, i64>(1)?)),
            )
            .db()?
            .collect::<rusqlite::Result<Vec<_>>>()
            .db()?;
        let mut persons: Vec<Option<i64>> = states.iter().map(|(person, _)| *person).collect();
        number_new_people(self.tx, self.org, batch, &mut persons)?;
        states
            .iter()
            .zip(persons)
            .map(|(&(_, code), person)| {
                let person = person.ok_or_else(|| Error::storage("a new person got no number"))?;
                Ok((person, Standing::from_code(code)?))
            })
            .collect()
    }

    fn active_among(&mut self, batch: &Batch<'_>) -> Result<Vec<(usize, i64)>> {
        self.tx
            .prepare_cached(ACTIVE_AMONG)
            .db()?
            .query_map(
                params![texts(batch), self.org.as_str(), self.segment.number],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .db()?
            .map(|row| {
                let (rowid, person) = row.db()?;
                let i = usize::try_from(rowid - 1)
                    .map_err(|_| Error::storage(format!("no PID at place {rowid} of the call")))?;
                Ok((i, person))
            })
            .collect()
    }

    fn insert(&mut self, people: &[(i64, &str)]) -> Result<()> {
        self.each(INSERT_MEMBERS, people.iter().map(|&(person, _)| person))
    }

    fn rejoin(&mut self, readd: &[i64], touch: &[i64]) -> Result<()> {
        self.each(REJOIN, readd.iter().copied())?;
        self.each(TOUCH, touch.iter().copied())
    }

    fn end(&mut self, people: &[i64]) -> Result<()> {
        self.each(LEAVE, people.iter().copied())
    }

    fn entries(
        &mut self,
        entries: &[(i16, i64)],
        provenance: Option<&Provenance>,
    ) -> Result<Option<i64>> {
        self.ledger
            .members(self.tx, self.id, entries.iter().copied(), provenance)
    }

    fn set_size(&mut self, last_entry: Option<i64>, size: u64) -> Result<()> {
        set_size(
            self.tx,
            self.segment,
            self.ledger.head.at(),
            last_entry,
            size,
        )
    }
}

impl SqliteMemberCall<'_, '_> {
    /// Runs `sql` ([`INSERT_MEMBERS`], [`REJOIN`], [`TOUCH`] or [`LEAVE`])
    /// for `persons`, now; nothing for none.
    fn each(&self, sql: &str, persons: impl ExactSizeIterator<Item = i64>) -> Result<()> {
        if persons.len() == 0 {
            return Ok(());
        }
        self.tx
            .prepare_cached(sql)
            .db()?
            .execute(params![
                self.segment.number,
                self.ledger.head.at(),
                array(persons)
            ])
            .db()?;
        Ok(())
    }
}

/// Runs `f`, a member call on segment `id` of `org` (`NotFound` if the
/// org has no such segment), in `ledger`'s transaction.
pub(super) fn on_segment<T>(
    tx: &Connection,
    ledger: &mut SqliteLedger<'_>,
    org: &OrgId,
    id: SegmentId,
    f: impl FnOnce(&mut SqliteMemberCall<'_, '_>) -> Result<T>,
) -> Result<T> {
    let segment = locate(tx, org, id)?;
    f(&mut SqliteMemberCall {
        tx,
        ledger,
        org,
        id,
        segment,
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
        .texts()
        .iter()
        .zip(persons.iter())
        .filter(|(_, person)| person.is_none())
        .map(|(pid, _)| (*pid).to_owned())
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

/// The SQL of the people (person numbers) an expression stands for: the
/// active members of its sources, combined by `UNION`, `INTERSECT` and
/// `EXCEPT`. Sources are given by row number, resolved beforehand.
fn expression_sql(expr: &SetExpr, numbers: &[(SegmentId, i64)]) -> Result<String> {
    let sql = match expr {
        SetExpr::Segment(id) => {
            let number = numbers
                .iter()
                .find(|(source, _)| source == id)
                .map(|(_, n)| *n)
                .ok_or_else(|| Error::storage(format!("source {id} was not resolved")))?;
            format!(
                "SELECT person FROM segment_memberships \
                 WHERE segment = {number} AND removed_at IS NULL"
            )
        }
        SetExpr::Union(a, b) => compound(a, "UNION", b, numbers)?,
        SetExpr::Intersect(a, b) => compound(a, "INTERSECT", b, numbers)?,
        SetExpr::Minus(a, b) => compound(a, "EXCEPT", b, numbers)?,
    };
    Ok(sql)
}

fn compound(a: &SetExpr, op: &str, b: &SetExpr, numbers: &[(SegmentId, i64)]) -> Result<String> {
    Ok(format!(
        "SELECT person FROM ({}) {op} SELECT person FROM ({})",
        expression_sql(a, numbers)?,
        expression_sql(b, numbers)?
    ))
}

/// The members of `expr` (resolving its sources in `org`, the first
/// missing one in id order `NotFound`), in PID order, each with what they
/// are to segment `target` (row number `target`).
fn members_of(tx: &Connection, org: &OrgId, target: i64, expr: &SetExpr) -> Result<Vec<SetMember>> {
    let numbers = expr
        .segments()
        .into_iter()
        .map(|source| Ok((source, locate(tx, org, source)?.number)))
        .collect::<Result<Vec<_>>>()?;
    let sql = format!(
        "SELECT e.person, p.pid,
                CASE WHEN m.person IS NULL THEN {NEW}
                     WHEN m.removed_at IS NULL THEN {ACTIVE} ELSE {REMOVED_MEMBER} END
         FROM ({}) e
         JOIN segment_people p ON p.person = e.person
         LEFT JOIN segment_memberships m ON m.segment = ?1 AND m.person = e.person
         ORDER BY p.pid",
        expression_sql(expr, &numbers)?
    );
    tx.prepare(&sql)
        .db()?
        .query_map([target], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?))
        })
        .db()?
        .map(|row| {
            let (person, pid, code) = row.db()?;
            Ok(SetMember {
                person,
                pid,
                standing: Standing::from_code(code)?,
            })
        })
        .collect()
}

/// Makes the members of `expr` members of segment `id`, which `w` has
/// just created ([`create_from`](crate::store::segment_calls::create_from)).
pub(super) fn add_to_new(
    w: &mut SqliteSegmentWrite<'_, '_>,
    id: SegmentId,
    expr: &SetExpr,
) -> Result<StoreAddOutcome> {
    let segment = locate(w.tx, w.org, id)?;
    let mut call = SqliteMemberCall {
        tx: w.tx,
        ledger: w.ledger,
        org: w.org,
        id,
        segment,
    };
    member_calls::add_from(&mut call, expr)
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
    Page { after: from, limit }: Page<MemberStart<'_>>,
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
        // Past the last member: nothing to read (OFFSET would walk them all).
        MemberStart::Offset(offset) if offset >= segment.current_size => Ok(Vec::new()),
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
