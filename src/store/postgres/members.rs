//! People and memberships, in SQL: set-based member calls, and member
//! pages.
//!
//! A member call is a handful of statements, whatever its size: the batch
//! travels as arrays (`unnest`, `= ANY`), in PID order (the order of the
//! people index). One statement finds the people of the batch the org
//! knows and one their memberships of the segment, one numbers the people
//! the org has never seen, one inserts the new memberships, one updates
//! the re-added and redundant ones (or the removed ones), and one appends
//! every ledger entry, in the caller's order. Every lookup of one person
//! or membership is a seek of its whole key, whatever the planner believes
//! about the tables.

use std::collections::HashMap;

use r2d2_postgres::postgres::Row;

use super::ledger::{PostgresLedger, REMOVED, pid_at};
use super::segments::{locate, set_size};
use super::{Tx, count, get, micros, sql_int, time};
use crate::store::entries::{Batch, join_code};
use crate::store::rules::members::{self as plan, Standing};
use crate::store::{
    MemberSlice, MemberStart, SegmentInsert, Stamp, StoreAddOutcome, StoreRemoveOutcome,
};
use crate::{Error, Member, OrgId, Provenance, Result, Segment, SegmentId, SetExpr};

/// What a PID is to the segment, before an add.
const NEW: i16 = Standing::NOT_MEMBER_CODE;
const ACTIVE: i16 = Standing::MEMBER_CODE;
const REMOVED_MEMBER: i16 = Standing::REMOVED_CODE;

/// The people of the batch (`$2`, in PID order) whose org (`$1`) knows
/// them, and their numbers: a scalar subquery per PID, which PostgreSQL
/// runs as a seek of the whole people key, whatever it believes of the
/// tables; a row only for those found (none, when a call brings only new
/// people). `p.pid = ANY($2)` would leave the plan to the statistics:
/// before a growing table is analyzed, the planner takes an org for a
/// few rows, and reads all of the org's people for each batch, filtering
/// them by the array (the plan test shows it). `OFFSET 0` keeps the
/// subquery from being pulled up, which would run each lookup twice.
pub(super) const KNOWN_PEOPLE: &str = "SELECT k.pid, k.person
     FROM (SELECT u.pid,
                  (SELECT p.person FROM {schema}.segment_people p
                   WHERE p.org = $1 AND p.pid = u.pid) AS person
           FROM unnest($2::text[]) AS u (pid) OFFSET 0) k
     WHERE k.person IS NOT NULL";

/// [`KNOWN_PEOPLE`] as it was: kept for the plan test, which shows why it
/// went.
#[cfg(test)]
pub(super) const KNOWN_PEOPLE_BY_ARRAY: &str =
    "SELECT p.pid, p.person FROM {schema}.segment_people p
     WHERE p.org = $1 AND p.pid = ANY($2::text[])";

/// Each of the people `$3` and whether their membership of segment `$2` is
/// active (NULL: they have none). A scalar subquery per person, which
/// PostgreSQL runs as a seek of the whole membership key: `m.person =
/// ANY($3)` would let a generic plan, which believes a segment holds a
/// row or two, walk the segment's key prefix and filter it by person.
pub(super) const MEMBERSHIPS_OF: &str = "SELECT u.person,
            (SELECT m.removed_at IS NULL FROM {schema}.segment_memberships m
             WHERE m.org = $1 AND m.segment = $2 AND m.person = u.person)
     FROM unnest($3::bigint[]) AS u (person)";

/// Every PID of the batch, in PID order: their person number, if the org
/// knows them, and what they are to the segment ([`NEW`], [`ACTIVE`] or
/// [`REMOVED_MEMBER`]). Two statements, the second only when the org
/// knows someone of the batch.
fn classify(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    batch: &Batch<'_>,
) -> Result<Vec<(Option<i64>, i16)>> {
    let mut out = vec![(None, NEW); batch.len()];
    let known = tx.query(KNOWN_PEOPLE, &[&org.as_str(), &batch.texts()])?;
    if known.is_empty() {
        return Ok(out);
    }
    let mut persons = Vec::with_capacity(known.len());
    // Person number → position in PID order.
    let mut positions = HashMap::with_capacity(known.len());
    for row in &known {
        let pid: &str = get(row, 0)?;
        let person: i64 = get(row, 1)?;
        let i = batch
            .position(pid)
            .ok_or_else(|| Error::storage(format!("found {pid}, which the call did not hold")))?;
        out[i].0 = Some(person);
        persons.push(person);
        if positions.insert(person, i).is_some() {
            return Err(super::damaged(format!(
                "person number {person} is given twice"
            )));
        }
    }
    let states = tx.query(MEMBERSHIPS_OF, &[&org.as_str(), id.as_uuid(), &persons])?;
    if states.len() != persons.len() {
        return Err(Error::storage(format!(
            "looking up {} people gave {} rows",
            persons.len(),
            states.len()
        )));
    }
    for row in &states {
        let person: i64 = get(row, 0)?;
        let &i = positions
            .get(&person)
            .ok_or_else(|| Error::storage(format!("looked up person {person}, not asked for")))?;
        out[i].1 = match get::<Option<bool>>(row, 1)? {
            None => NEW,
            Some(true) => ACTIVE,
            Some(false) => REMOVED_MEMBER,
        };
    }
    Ok(out)
}

/// Numbers the people of the batch the org has never seen.
pub(super) const NEW_PEOPLE: &str = "INSERT INTO {schema}.segment_people (org, pid)
     SELECT $1, u.pid FROM unnest($2::text[]) WITH ORDINALITY AS u (pid, i) ORDER BY u.i
     RETURNING pid, person";

/// New memberships: a plain insert. (One upsert of the whole batch, `ON
/// CONFLICT … DO UPDATE`, would also serve [`REJOIN`], but a speculative
/// insertion per row made a 600k-row fill of the table a third slower.)
pub(super) const INSERT_MEMBERS: &str =
    "INSERT INTO {schema}.segment_memberships (org, segment, person, pid, first_added_at, last_added_at)
     SELECT $1, $2, u.person, u.pid, $3, $3
     FROM unnest($4::bigint[], $5::text[]) AS u (person, pid)";

/// Makes active members again of people the segment has a membership of
/// (removed ones, and active ones whose add is redundant: for them
/// `removed_at` is NULL already), moving `last_added_at` and keeping
/// `first_added_at`. Rows are updated by address: the addresses are found
/// by a seek of the whole key per person (a scalar subquery), then read
/// by a TID scan. An `UPDATE … FROM unnest(…)` joined on the person would
/// leave the join order to the planner, which with some statistics (one
/// big segment among many small ones, or a table not analyzed yet) walks
/// the segment's key prefix for every person. The addresses cannot move
/// before the update reads them: every write of the org holds its head.
pub(super) const REJOIN: &str =
    "UPDATE {schema}.segment_memberships SET last_added_at = $3, removed_at = NULL
     WHERE ctid = ANY(ARRAY(
         SELECT (SELECT m.ctid FROM {schema}.segment_memberships m
                 WHERE m.org = $1 AND m.segment = $2 AND m.person = u.person)
         FROM unnest($4::bigint[]) AS u (person)))";

/// Makes every PID of `batch` an active member. Call inside a write
/// transaction.
pub(super) fn add(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    batch: &Batch<'_>,
    stamp: Stamp<'_>,
) -> Result<StoreAddOutcome> {
    let mut ledger = PostgresLedger::open(tx, org, stamp)?;
    let size = locate(tx, org, id)?;
    let states = classify(tx, org, id, batch)?;
    let mut persons: Vec<Option<i64>> = states.iter().map(|&(person, _)| person).collect();
    number_new_people(tx, org, batch, &mut persons)?;
    let mut rows = Vec::with_capacity(states.len());
    for (i, (&(_, state), person)) in states.iter().zip(&persons).enumerate() {
        let person = person.ok_or_else(|| Error::storage("a new person got no number"))?;
        // Entries follow the caller's order.
        rows.push(Joining {
            place: batch
                .place(i)
                .ok_or_else(|| Error::storage(format!("no PID at place {i} of the call")))?,
            person,
            pid: batch.texts()[i],
            state,
        });
    }
    let out = join(tx, org, id, size, &mut ledger, &rows, None)?;
    ledger.close(tx)?;
    Ok(out)
}

/// A person a call or set operation makes a member, and what they were.
struct Joining<'p> {
    /// Where the entry goes among the call's entries.
    place: usize,
    person: i64,
    pid: &'p str,
    /// [`NEW`], [`ACTIVE`] or [`REMOVED_MEMBER`].
    state: i16,
}

/// Makes active members of the people of `rows` (in PID order), recording
/// an entry for each who joins, in the order of their places, with
/// `provenance`; updates the size. Call inside a write transaction, after
/// the ledger opened.
fn join(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    size: u64,
    ledger: &mut PostgresLedger<'_>,
    rows: &[Joining<'_>],
    provenance: Option<&Provenance>,
) -> Result<StoreAddOutcome> {
    let at = ledger.at();
    let rows = rows
        .iter()
        .map(|row| {
            let standing = Standing::from_code(i64::from(row.state))?;
            Ok((row.place, (row.person, row.pid), standing))
        })
        .collect::<Result<Vec<_>>>()?;
    let plan = plan::add(rows);
    if !plan.insert.is_empty() {
        let (new, new_pids): (Vec<i64>, Vec<&str>) = plan.insert.iter().copied().unzip();
        tx.execute(
            INSERT_MEMBERS,
            &[&org.as_str(), id.as_uuid(), &at, &new, &new_pids],
        )?;
    }
    // One statement re-adds and touches (both move `last_added_at`; the
    // org's head lock orders writers, so the rows' order is free).
    let existing: Vec<i64> = plan
        .readd
        .iter()
        .chain(&plan.touch)
        .map(|&(person, _)| person)
        .collect();
    update_each(tx, REJOIN, org, id, at, &existing)?;
    let codes: Vec<i16> = plan.entries.iter().map(|&(j, _)| join_code(j)).collect();
    let people: Vec<i64> = plan.entries.iter().map(|&(_, (p, _))| p).collect();
    let last_entry = ledger.members(tx, id, &codes, &people, provenance)?;
    let out = plan.outcome(size);
    set_size(tx, org, id, ledger, last_entry, out.new_current_size)?;
    Ok(out)
}

/// Numbers the people of the batch who have none yet (`None` in
/// `persons`, in PID order), in one statement.
fn number_new_people(
    tx: &mut Tx<'_>,
    org: &OrgId,
    batch: &Batch<'_>,
    persons: &mut [Option<i64>],
) -> Result<()> {
    let unknown: Vec<&str> = batch
        .texts()
        .iter()
        .zip(persons.iter())
        .filter(|(_, person)| person.is_none())
        .map(|(pid, _)| *pid)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    for row in tx.query(NEW_PEOPLE, &[&org.as_str(), &unknown])? {
        let pid: &str = get(&row, 0)?;
        let i = batch.position(pid).ok_or_else(|| {
            Error::storage(format!("numbered {pid}, which the call did not hold"))
        })?;
        persons[i] = Some(get(&row, 1)?);
    }
    Ok(())
}

/// Ends memberships, updated by address as in [`REJOIN`].
pub(super) const LEAVE: &str = "UPDATE {schema}.segment_memberships SET removed_at = $3
     WHERE ctid = ANY(ARRAY(
         SELECT (SELECT m.ctid FROM {schema}.segment_memberships m
                 WHERE m.org = $1 AND m.segment = $2 AND m.person = u.person)
         FROM unnest($4::bigint[]) AS u (person)))";

/// Runs `sql` ([`REJOIN`] or [`LEAVE`]) on the memberships of `persons`
/// in the segment, each of which must exist: one that does not is a
/// storage error (the call's classification, under the org's head lock,
/// found it), and the call rolls back.
fn update_each(
    tx: &mut Tx<'_>,
    sql: &'static str,
    org: &OrgId,
    id: SegmentId,
    at: i64,
    persons: &[i64],
) -> Result<()> {
    if persons.is_empty() {
        return Ok(());
    }
    let updated = tx.execute(sql, &[&org.as_str(), id.as_uuid(), &at, &persons])?;
    if updated != persons.len() as u64 {
        return Err(Error::storage(format!(
            "segment {id}: {} memberships to update, {updated} found",
            persons.len()
        )));
    }
    Ok(())
}

/// Ends the active membership of every PID of `batch` that has one. Call
/// inside a write transaction.
pub(super) fn remove(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    batch: &Batch<'_>,
    stamp: Stamp<'_>,
) -> Result<StoreRemoveOutcome> {
    let mut ledger = PostgresLedger::open(tx, org, stamp)?;
    let size = locate(tx, org, id)?;
    let mut leaving = Vec::new();
    for (i, (person, state)) in classify(tx, org, id, batch)?.into_iter().enumerate() {
        let (Some(person), ACTIVE) = (person, state) else {
            continue;
        };
        let place = batch
            .place(i)
            .ok_or_else(|| Error::storage(format!("no PID at place {i} of the call")))?;
        // Entries follow the caller's order.
        leaving.push((place, person));
    }
    let out = leave(tx, org, id, size, &mut ledger, leaving, None)?;
    ledger.close(tx)?;
    Ok(out)
}

/// Ends the active membership of the people of `leaving` (each `(place,
/// person)`, all active members), recording an entry for each in the order
/// of their places, with `provenance`; updates the size. Call inside a
/// write transaction, after the ledger opened.
fn leave(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    size: u64,
    ledger: &mut PostgresLedger<'_>,
    mut leaving: Vec<(usize, i64)>,
    provenance: Option<&Provenance>,
) -> Result<StoreRemoveOutcome> {
    let out = plan::removed(id, size, leaving.len() as u64)?;
    let persons: Vec<i64> = leaving.iter().map(|&(_, person)| person).collect();
    update_each(tx, LEAVE, org, id, ledger.at(), &persons)?;
    leaving.sort_unstable_by_key(|(place, _)| *place);
    let codes = vec![REMOVED; leaving.len()];
    let people: Vec<i64> = leaving.iter().map(|&(_, person)| person).collect();
    let last_entry = ledger.members(tx, id, &codes, &people, provenance)?;
    set_size(tx, org, id, ledger, last_entry, out.new_current_size)?;
    Ok(out)
}

/// The SQL of the people (person numbers) an expression stands for: the
/// active members of its sources (`$1` is the org), combined by `UNION`,
/// `INTERSECT` and `EXCEPT`.
fn expression_sql(expr: &SetExpr) -> String {
    match expr {
        SetExpr::Segment(id) => format!(
            "SELECT person FROM {{schema}}.segment_memberships \
             WHERE org = $1 AND segment = '{}'::uuid AND removed_at IS NULL",
            id.as_uuid().hyphenated()
        ),
        SetExpr::Union(a, b) => compound(a, "UNION", b),
        SetExpr::Intersect(a, b) => compound(a, "INTERSECT", b),
        SetExpr::Minus(a, b) => compound(a, "EXCEPT", b),
    }
}

fn compound(a: &SetExpr, op: &str, b: &SetExpr) -> String {
    format!("({}) {op} ({})", expression_sql(a), expression_sql(b))
}

/// A member of a set expression, and what they are to the target.
struct Found {
    person: i64,
    pid: String,
    state: i16,
}

/// The members of `expr` (its sources checked in id order, the first
/// missing one `NotFound`), in PID order, each with what they are to
/// segment `target`, and the provenance of entries made from them.
///
/// The expression is computed by PostgreSQL over whole segments: the
/// planner may hash, merge and sort, as it judges best.
fn evaluate(
    tx: &mut Tx<'_>,
    org: &OrgId,
    target: SegmentId,
    expr: &SetExpr,
    ledger: &PostgresLedger<'_>,
) -> Result<(Vec<Found>, Provenance)> {
    let sources = expr.segments();
    for &source in &sources {
        locate(tx, org, source)?;
    }
    let sql = format!(
        "SELECT e.person, p.pid,
                CASE WHEN m.person IS NULL THEN {NEW}::smallint
                     WHEN m.removed_at IS NULL THEN {ACTIVE}::smallint
                     ELSE {REMOVED_MEMBER}::smallint END
         FROM ({}) e
         JOIN {{schema}}.segment_people p ON p.org = $1 AND p.person = e.person
         LEFT JOIN {{schema}}.segment_memberships m ON m.org = $1 AND m.segment = $2 AND m.person = e.person
         ORDER BY p.pid",
        expression_sql(expr)
    );
    let rows = tx
        .query_once(&sql, &[&org.as_str(), target.as_uuid()])?
        .iter()
        .map(|row| {
            Ok(Found {
                person: get(row, 0)?,
                pid: get(row, 1)?,
                state: get(row, 2)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let provenance = Provenance {
        sources,
        read_at: u64::try_from(ledger.read_at()).unwrap_or(0),
    };
    Ok((rows, provenance))
}

/// Makes every member of `expr` an active member of segment `id`. Call
/// inside a write transaction.
pub(super) fn add_from(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    expr: &SetExpr,
    stamp: Stamp<'_>,
) -> Result<StoreAddOutcome> {
    let mut ledger = PostgresLedger::open(tx, org, stamp)?;
    let size = locate(tx, org, id)?;
    let out = add_from_located(tx, org, id, size, expr, &mut ledger)?;
    ledger.close(tx)?;
    Ok(out)
}

fn add_from_located(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    size: u64,
    expr: &SetExpr,
    ledger: &mut PostgresLedger<'_>,
) -> Result<StoreAddOutcome> {
    let (found, provenance) = evaluate(tx, org, id, expr, ledger)?;
    // Entries in PID order: the order of the rows.
    let rows: Vec<Joining<'_>> = found
        .iter()
        .enumerate()
        .map(|(place, found)| Joining {
            place,
            person: found.person,
            pid: &found.pid,
            state: found.state,
        })
        .collect();
    join(tx, org, id, size, ledger, &rows, Some(&provenance))
}

/// Ends the membership in segment `id` of every member of `expr`. Call
/// inside a write transaction.
pub(super) fn remove_from(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    expr: &SetExpr,
    stamp: Stamp<'_>,
) -> Result<StoreRemoveOutcome> {
    let mut ledger = PostgresLedger::open(tx, org, stamp)?;
    let size = locate(tx, org, id)?;
    let (found, provenance) = evaluate(tx, org, id, expr, &ledger)?;
    let leaving = found
        .into_iter()
        .filter(|found| found.state == ACTIVE)
        .enumerate()
        .map(|(place, found)| (place, found.person))
        .collect();
    let out = leave(tx, org, id, size, &mut ledger, leaving, Some(&provenance))?;
    ledger.close(tx)?;
    Ok(out)
}

/// Creates a segment and makes the members of `expr` its members. Call
/// inside a write transaction.
pub(super) fn create_from(
    tx: &mut Tx<'_>,
    org: &OrgId,
    new: &SegmentInsert,
    expr: &SetExpr,
    stamp: Stamp<'_>,
) -> Result<Segment> {
    let mut ledger = PostgresLedger::open(tx, org, stamp)?;
    // The sources first: a missing one creates nothing.
    for source in expr.segments() {
        locate(tx, org, source)?;
    }
    let created = super::segments::insert_with(tx, org, new, &mut ledger)?;
    let added = add_from_located(tx, org, created.id, 0, expr, &mut ledger)?;
    ledger.close(tx)?;
    Ok(Segment {
        current_size: added.new_current_size,
        ..created
    })
}

fn member_from_row(row: &Row) -> Result<Member> {
    Ok(Member {
        pid: pid_at(row, 0)?,
        first_added_at: time(row, 1)?,
        last_added_at: time(row, 2)?,
    })
}

/// The segment's size and `members_seq` (its last size sample's seq).
pub(super) const SIZE_AND_SEQ: &str = "SELECT s.current_size,
            coalesce((SELECT z.seq FROM {schema}.segment_sizes z WHERE z.org = s.org AND z.segment = s.id
                      ORDER BY z.seq DESC LIMIT 1), 0)
     FROM {schema}.segments s WHERE s.org = $1 AND s.id = $2";

/// Active members after a position, in list order.
pub(super) const AFTER: &str =
    "SELECT pid, first_added_at, last_added_at FROM {schema}.segment_memberships
     WHERE org = $1 AND segment = $2 AND removed_at IS NULL
       AND (first_added_at, pid) > ($3, $4)
     ORDER BY first_added_at, pid LIMIT $5";

/// Active members from an offset, in list order.
pub(super) const AT_OFFSET: &str =
    "SELECT pid, first_added_at, last_added_at FROM {schema}.segment_memberships
     WHERE org = $1 AND segment = $2 AND removed_at IS NULL
     ORDER BY first_added_at, pid LIMIT $3 OFFSET $4";

/// Up to `limit` active members from `from`, with the segment's size and
/// `members_seq`. Call inside one read transaction.
pub(super) fn slice(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    from: MemberStart<'_>,
    limit: usize,
) -> Result<MemberSlice> {
    let Some(head) = tx.query_opt(SIZE_AND_SEQ, &[&org.as_str(), id.as_uuid()])? else {
        return Err(Error::NotFound { id });
    };
    let current_size = count(&head, 0)?;
    let members_seq = count(&head, 1)?;
    let rows = match from {
        // Past the last member: nothing to read (OFFSET would walk them all).
        MemberStart::Offset(offset) if offset >= current_size => Vec::new(),
        MemberStart::After(c) => tx.query(
            AFTER,
            &[
                &org.as_str(),
                id.as_uuid(),
                &micros(c.first_added_at()),
                &c.pid().as_str(),
                &sql_int(limit),
            ],
        )?,
        MemberStart::Offset(offset) => tx.query(
            AT_OFFSET,
            &[
                &org.as_str(),
                id.as_uuid(),
                &sql_int(limit),
                &sql_int(offset),
            ],
        )?,
    };
    Ok(MemberSlice {
        members: rows.iter().map(member_from_row).collect::<Result<_>>()?,
        current_size,
        members_seq,
    })
}
