//! The ledger: org heads, entries, the change feed and timelines, in SQL.

use r2d2_postgres::postgres::Row;

use super::{Tx, count, damaged, get, sql_int, time};
use crate::domain::pid::is_well_formed;
use crate::store::entries::{self, Head, Ledger};
use crate::store::{Page, Stamp};
use crate::{Change, ChangeKind, Error, OrgId, Pid, Provenance, Result, SegmentId, StorageFailure};

pub(super) use crate::store::entries::{ADDED, READDED};

/// Locks the org's head row for the rest of the transaction.
pub(super) const LOCK_HEAD: &str =
    "SELECT last_seq, last_at FROM {schema}.segment_heads WHERE org = $1 FOR UPDATE";

/// Makes the org's head row, the first time the org writes.
pub(super) const NEW_HEAD: &str = "INSERT INTO {schema}.segment_heads (org, last_seq, last_at)
     VALUES ($1, 0, $2) ON CONFLICT (org) DO NOTHING";

pub(super) const MOVE_HEAD: &str =
    "UPDATE {schema}.segment_heads SET last_seq = $2, last_at = $3 WHERE org = $1";

/// Writes one transaction's ledger entries for one org: locks the org's
/// head when it opens (so the org's writes take turns, and seq order is
/// commit order), numbers entries from it, and moves it when it closes.
pub(super) struct PostgresLedger<'a> {
    /// The head as this transaction holds it: its seqs and its time.
    pub(super) head: Head<'a>,
}

impl<'a, 't> Ledger<'a, Tx<'t>> for PostgresLedger<'a> {
    /// Locks and reads the org's head: the first statement of every write
    /// that changes segments or members.
    fn open(tx: &mut Tx<'t>, org: &'a OrgId, stamp: Stamp<'a>) -> Result<Self> {
        let row = match tx.query_opt(LOCK_HEAD, &[&org.as_str()])? {
            Some(row) => row,
            None => {
                // Racing first writes of an org: one inserts, the other
                // waits for it, and both then lock the one row.
                tx.execute(NEW_HEAD, &[&org.as_str(), &i64::MIN])?;
                tx.query_opt(LOCK_HEAD, &[&org.as_str()])?.ok_or_else(|| {
                    Error::storage_failure(
                        StorageFailure::Corrupt,
                        format!("org {org}: its ledger head is missing just after it was made"),
                    )
                })?
            }
        };
        let row = (get(&row, 0)?, get(&row, 1)?);
        Ok(Self {
            head: Head::open(org, stamp, Some(row)),
        })
    }

    /// Moves the org's head past this transaction's entries (nothing to do
    /// when it wrote none; the lock goes at commit either way).
    fn close(self, tx: &mut Tx<'t>) -> Result<()> {
        if self.head.moved() {
            tx.execute(
                MOVE_HEAD,
                &[&self.head.org, &self.head.last(), &self.head.at()],
            )?;
        }
        Ok(())
    }
}

impl PostgresLedger<'_> {
    /// Appends an entry about a segment; returns its `seq`.
    pub(super) fn append(
        &mut self,
        tx: &mut Tx<'_>,
        segment: SegmentId,
        kind: &ChangeKind,
    ) -> Result<i64> {
        let entry = entries::segment_entry(kind)?;
        let seq = self.head.take(1);
        tx.execute(
            "INSERT INTO {schema}.segment_ledger (org, seq, at, request_id, segment, kind, name, description)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &self.head.org,
                &seq,
                &self.head.at(),
                &self.head.request_id,
                segment.as_uuid(),
                &entry.code,
                &entry.name,
                &entry.description,
            ],
        )?;
        Ok(seq)
    }

    /// Appends one membership entry per `(code, person)`, in order, in one
    /// statement, each naming the set operation they came from when
    /// `provenance` says so; returns the last one's `seq`, if any.
    pub(super) fn members(
        &mut self,
        tx: &mut Tx<'_>,
        segment: SegmentId,
        codes: &[i16],
        persons: &[i64],
        provenance: Option<&Provenance>,
    ) -> Result<Option<i64>> {
        if codes.is_empty() {
            return Ok(None);
        }
        // A set operation is named by its first entry's seq.
        let op = provenance.map(|_| self.head.last() + 1);
        tx.execute(
            "INSERT INTO {schema}.segment_ledger (org, seq, at, request_id, segment, kind, person, op)
             SELECT $1, $2 + u.i, $3, $4, $5, u.kind, u.person, $8
             FROM unnest($6::smallint[], $7::bigint[]) WITH ORDINALITY AS u (kind, person, i)",
            &[
                &self.head.org,
                &self.head.last(),
                &self.head.at(),
                &self.head.request_id,
                segment.as_uuid(),
                &codes,
                &persons,
                &op,
            ],
        )?;
        if let (Some(provenance), Some(op)) = (provenance, op) {
            let sources: Vec<uuid::Uuid> =
                provenance.sources.iter().map(|id| *id.as_uuid()).collect();
            tx.execute(
                "INSERT INTO {schema}.segment_ops (org, op, sources, read_at) VALUES ($1, $2, $3, $4)",
                &[&self.head.org, &op, &sources, &sql_int(provenance.read_at)],
            )?;
        }
        Ok(Some(self.head.take(codes.len() as i64)))
    }
}

/// The change feed's query: entries after a seq, in order. The PID and
/// the set operation of an entry are scalar subqueries, a seek of a key
/// per entry: a join there could walk all of the org's operations for each
/// entry, with some statistics.
pub(super) const SINCE: &str = "SELECT l.seq, l.at, l.request_id, l.segment, l.kind,
            (SELECT p.pid FROM {schema}.segment_people p WHERE p.org = l.org AND p.person = l.person),
            l.name, l.description,
            (SELECT o.sources FROM {schema}.segment_ops o WHERE o.org = l.org AND o.op = l.op),
            (SELECT o.read_at FROM {schema}.segment_ops o WHERE o.org = l.org AND o.op = l.op)
     FROM {schema}.segment_ledger l
     WHERE l.org = $1 AND l.seq > $2 ORDER BY l.seq LIMIT $3";

/// Up to `limit` of the org's entries after `after`, in order.
pub(super) fn since(
    tx: &mut Tx<'_>,
    org: &OrgId,
    Page { after, limit }: Page<u64>,
) -> Result<Vec<Change>> {
    tx.query(SINCE, &[&org.as_str(), &sql_int(after), &sql_int(limit)])?
        .iter()
        .map(change_from_row)
        .collect()
}

/// The seq of the org's last entry, from its head; 0 without one.
pub(super) fn last_seq(tx: &mut Tx<'_>, org: &OrgId) -> Result<u64> {
    match tx.query_opt(LAST_SEQ, &[&org.as_str()])? {
        Some(row) => count(&row, 0),
        None => Ok(0),
    }
}

/// The org's head's seq, without a lock (a read).
pub(super) const LAST_SEQ: &str = "SELECT last_seq FROM {schema}.segment_heads WHERE org = $1";

/// A person's entries after a seq, in order; lookups as in [`SINCE`].
pub(super) const TIMELINE: &str = "SELECT l.seq, l.at, l.request_id, l.segment, l.kind,
            $2::text,
            l.name, l.description,
            (SELECT o.sources FROM {schema}.segment_ops o WHERE o.org = l.org AND o.op = l.op),
            (SELECT o.read_at FROM {schema}.segment_ops o WHERE o.org = l.org AND o.op = l.op)
     FROM {schema}.segment_ledger l
     WHERE l.org = $1
       AND l.person = (SELECT p.person FROM {schema}.segment_people p WHERE p.org = $1 AND p.pid = $2)
       AND l.seq > $3
     ORDER BY l.seq LIMIT $4";

/// Up to `limit` of `pid`'s entries after `after`, in order.
pub(super) fn timeline(
    tx: &mut Tx<'_>,
    org: &OrgId,
    pid: &Pid,
    Page { after, limit }: Page<u64>,
) -> Result<Vec<Change>> {
    tx.query(
        TIMELINE,
        &[
            &org.as_str(),
            &pid.as_str(),
            &sql_int(after),
            &sql_int(limit),
        ],
    )?
    .iter()
    .map(change_from_row)
    .collect()
}

/// A PID column; a malformed one is a damaged row.
pub(super) fn pid_at(row: &Row, i: usize) -> Result<Pid> {
    let pid: String = get(row, i)?;
    if is_well_formed(&pid) {
        Ok(Pid::new_unchecked(&pid))
    } else {
        Err(damaged(format!("stored PID {pid:?} is malformed")))
    }
}

/// A ledger row, read with the columns of [`SINCE`] and [`TIMELINE`].
fn change_from_row(row: &Row) -> Result<Change> {
    let pid = get::<Option<String>>(row, 5)?
        .is_some()
        .then(|| pid_at(row, 5))
        .transpose()?;
    let provenance = match get::<Option<Vec<uuid::Uuid>>>(row, 8)? {
        None => None,
        Some(sources) => Some(Provenance {
            sources: sources.into_iter().map(SegmentId::from_uuid).collect(),
            read_at: count(row, 9)?,
        }),
    };
    Ok(Change {
        seq: count(row, 0)?,
        at: time(row, 1)?,
        request_id: get(row, 2)?,
        segment_id: SegmentId::from_uuid(get(row, 3)?),
        kind: entries::kind(get(row, 4)?, pid, get(row, 6)?, get(row, 7)?)?,
        provenance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_and_the_timeline_read_the_same_columns() {
        // The PID column differs (a lookup, or the PID asked about); the
        // rest is the same list.
        let columns = |sql: &str| {
            let list = sql.split("\n     FROM ").next().unwrap().to_owned();
            let (head, tail) = list.split_once('\n').unwrap();
            let (_, tail) = tail.split_once('\n').unwrap();
            (head.to_owned(), tail.to_owned())
        };
        assert_eq!(
            columns(SINCE),
            columns(TIMELINE),
            "change_from_row reads both"
        );
    }
}
