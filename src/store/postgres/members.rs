//! People and memberships, in SQL: set-based member calls, and member
//! pages.
//!
//! A member call is a handful of statements, whatever its size: the batch
//! travels as arrays (`unnest`, `= ANY`), in PID order (the order of the
//! people index). An add first numbers the people the org has never seen
//! (an insert that skips those it knows); only the others are looked up,
//! they and their memberships of the segment, so a fill of new people
//! reads nothing before it writes. Then one statement inserts the new
//! memberships, one updates the re-added and redundant ones (or the
//! removed ones), and one appends every ledger entry, in the caller's
//! order (the flow is [`member_calls`](crate::store::member_calls),
//! shared with SQLite). Every lookup of one person or membership is a
//! seek of its whole key, whatever the planner believes about the tables.

use std::collections::HashMap;

use r2d2_postgres::postgres::Row;

use super::ledger::{PostgresLedger, pid_at};
use super::segments::{PostgresSegmentWrite, locate, set_size};
use super::{Tx, count, get, micros, sql_int, time};
use crate::store::entries::Batch;
use crate::store::member_calls::{self, MemberSql, SetMember};
use crate::store::rules::members::Standing;
use crate::store::{MemberSlice, MemberStart, Page, StoreAddOutcome};
use crate::{Error, Member, OrgId, Provenance, Result, SegmentId, SetExpr};

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
    let all: Vec<usize> = (0..batch.len()).collect();
    classify_known(tx, org, id, batch, &all, &mut out)?;
    Ok(out)
}

/// Looks up the PIDs of `batch` at `places` (in PID order) among the
/// org's people and, for those found, their memberships of the segment,
/// filling their slots of `out`: a person number, and what they are to
/// the segment (the slots of those not found stay as they were).
fn classify_known(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    batch: &Batch<'_>,
    places: &[usize],
    out: &mut [(Option<i64>, i16)],
) -> Result<()> {
    if places.is_empty() {
        return Ok(());
    }
    let texts: Vec<&str> = places.iter().map(|&i| batch.texts()[i]).collect();
    let known = tx.query(KNOWN_PEOPLE, &[&org.as_str(), &texts])?;
    if known.is_empty() {
        return Ok(());
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
        out[i] = (Some(person), NEW);
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
    Ok(())
}

/// Numbers the people of the batch (`$2`, in PID order) the org (`$1`)
/// has never seen, and returns their numbers; the people it knows are
/// left as they are (`DO NOTHING` writes nothing for them, but uses up a
/// person number each). The insert's own probe of the people key is how
/// an add finds who is new, so a fill of new people reads nothing before
/// it writes; a lookup first (a seek per PID that finds no one) made a
/// fill slow down as the org grew. A re-add of known people pays the
/// probe on top of their lookup (`benches/README.md` has both figures).
pub(super) const NEW_PEOPLE: &str = "INSERT INTO {schema}.segment_people (org, pid)
     SELECT $1, u.pid FROM unnest($2::text[]) WITH ORDINALITY AS u (pid, i) ORDER BY u.i
     ON CONFLICT (org, pid) DO NOTHING
     RETURNING pid, person";

/// New memberships: a plain insert. (One upsert of the whole batch, `ON
/// CONFLICT … DO UPDATE`, would also serve [`REJOIN`], but a speculative
/// insertion per row made a fill measurably slower: `benches/README.md`.)
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

/// A member call on one segment: the statements of each step of the
/// shared flow ([`member_calls`]).
pub(super) struct PostgresMemberCall<'c, 't, 'l> {
    tx: &'c mut Tx<'t>,
    ledger: &'c mut PostgresLedger<'l>,
    org: &'c OrgId,
    id: SegmentId,
    size: u64,
}

impl<'c, 't, 'l> PostgresMemberCall<'c, 't, 'l> {
    /// The call on segment `id` (`NotFound` if the org has no such
    /// segment), with the org's ledger open.
    fn on(
        tx: &'c mut Tx<'t>,
        ledger: &'c mut PostgresLedger<'l>,
        org: &'c OrgId,
        id: SegmentId,
    ) -> Result<Self> {
        let size = locate(tx, org, id)?;
        Ok(Self::located(tx, ledger, org, id, size))
    }

    fn located(
        tx: &'c mut Tx<'t>,
        ledger: &'c mut PostgresLedger<'l>,
        org: &'c OrgId,
        id: SegmentId,
        size: u64,
    ) -> Self {
        Self {
            tx,
            ledger,
            org,
            id,
            size,
        }
    }
}

impl MemberSql for PostgresMemberCall<'_, '_, '_> {
    fn segment(&self) -> SegmentId {
        self.id
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self) -> i64 {
        self.ledger.head.read_at()
    }

    fn members_of(&mut self, expr: &SetExpr) -> Result<Vec<SetMember>> {
        members_of(self.tx, self.org, self.id, expr)
    }

    fn number_or_classify(&mut self, batch: &Batch<'_>) -> Result<Vec<(i64, Standing)>> {
        number_or_classify(self.tx, self.org, self.id, batch)?
            .into_iter()
            .map(|(person, state)| {
                let person =
                    person.ok_or_else(|| Error::storage("a PID of the call got no number"))?;
                Ok((person, Standing::from_code(i64::from(state))?))
            })
            .collect()
    }

    fn active_among(&mut self, batch: &Batch<'_>) -> Result<Vec<(usize, i64)>> {
        Ok(classify(self.tx, self.org, self.id, batch)?
            .into_iter()
            .enumerate()
            .filter_map(|(i, state)| match state {
                (Some(person), ACTIVE) => Some((i, person)),
                _ => None,
            })
            .collect())
    }

    fn insert(&mut self, people: &[(i64, &str)]) -> Result<()> {
        let (persons, pids): (Vec<i64>, Vec<&str>) = people.iter().copied().unzip();
        let at = self.ledger.head.at();
        self.tx.execute(
            INSERT_MEMBERS,
            &[&self.org.as_str(), self.id.as_uuid(), &at, &persons, &pids],
        )?;
        Ok(())
    }

    fn rejoin(&mut self, readd: &[i64], touch: &[i64]) -> Result<()> {
        // One statement re-adds and touches (both move `last_added_at`; the
        // org's head lock orders writers, so the rows' order is free).
        let people = [readd, touch].concat();
        update_each(
            self.tx,
            REJOIN,
            self.org,
            self.id,
            self.ledger.head.at(),
            &people,
        )
    }

    fn end(&mut self, people: &[i64]) -> Result<()> {
        update_each(
            self.tx,
            LEAVE,
            self.org,
            self.id,
            self.ledger.head.at(),
            people,
        )
    }

    fn entries(
        &mut self,
        entries: &[(i16, i64)],
        provenance: Option<&Provenance>,
    ) -> Result<Option<i64>> {
        let (codes, people): (Vec<i16>, Vec<i64>) = entries.iter().copied().unzip();
        self.ledger
            .members(self.tx, self.id, &codes, &people, provenance)
    }

    fn set_size(&mut self, last_entry: Option<i64>, size: u64) -> Result<()> {
        set_size(self.tx, self.org, self.id, self.ledger, last_entry, size)
    }
}

/// Runs `f`, a member call on segment `id` of `org` (`NotFound` if the
/// org has no such segment), in `ledger`'s transaction.
pub(super) fn on_segment<T>(
    tx: &mut Tx<'_>,
    ledger: &mut PostgresLedger<'_>,
    org: &OrgId,
    id: SegmentId,
    f: impl FnOnce(&mut PostgresMemberCall<'_, '_, '_>) -> Result<T>,
) -> Result<T> {
    f(&mut PostgresMemberCall::on(tx, ledger, org, id)?)
}

/// Every PID of the batch, in PID order, with its person number and what
/// it is to the segment: numbers the people the org has never seen (they
/// are [`NEW`]), then classifies the others, whom the org knows.
fn number_or_classify(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    batch: &Batch<'_>,
) -> Result<Vec<(Option<i64>, i16)>> {
    let mut out = vec![(None, NEW); batch.len()];
    for row in tx.query(NEW_PEOPLE, &[&org.as_str(), &batch.texts()])? {
        let pid: &str = get(&row, 0)?;
        let i = batch.position(pid).ok_or_else(|| {
            Error::storage(format!("numbered {pid}, which the call did not hold"))
        })?;
        out[i].0 = Some(get(&row, 1)?);
    }
    let known: Vec<usize> = (0..out.len()).filter(|&i| out[i].0.is_none()).collect();
    classify_known(tx, org, id, batch, &known, &mut out)?;
    Ok(out)
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

/// The members of `expr` (its sources checked in id order, the first
/// missing one `NotFound`), in PID order, each with what they are to
/// segment `target`.
///
/// The expression is computed by PostgreSQL over whole segments: the
/// planner may hash, merge and sort, as it judges best.
fn members_of(
    tx: &mut Tx<'_>,
    org: &OrgId,
    target: SegmentId,
    expr: &SetExpr,
) -> Result<Vec<SetMember>> {
    for source in expr.segments() {
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
    tx.query_once(&sql, &[&org.as_str(), target.as_uuid()])?
        .iter()
        .map(|row| {
            Ok(SetMember {
                person: get(row, 0)?,
                pid: get(row, 1)?,
                standing: Standing::from_code(i64::from(get::<i16>(row, 2)?))?,
            })
        })
        .collect()
}

/// Makes the members of `expr` members of segment `id`, which `w` has
/// just created, empty ([`create_from`](crate::store::segment_calls::create_from)).
pub(super) fn add_to_new(
    w: &mut PostgresSegmentWrite<'_, '_, '_>,
    id: SegmentId,
    expr: &SetExpr,
) -> Result<StoreAddOutcome> {
    member_calls::add_from(
        &mut PostgresMemberCall::located(w.tx, w.ledger, w.org, id, 0),
        expr,
    )
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
    Page { after: from, limit }: Page<MemberStart<'_>>,
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
