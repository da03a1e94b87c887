//! The [`SegmentStore`] methods of [`SqliteStore`], in SQL.

use super::*;

pub(super) const SEGMENT_COLUMNS: &str =
    "id, name, description, source, current_size, created_at, updated_at";

fn segment_from_row(row: &Row<'_>) -> rusqlite::Result<Segment> {
    let id: [u8; 16] = row.get(0)?;
    Ok(Segment {
        id: SegmentId::from_uuid(uuid::Uuid::from_bytes(id)),
        name: row.get(1)?,
        description: row.get(2)?,
        source: row.get(3)?,
        current_size: count_at(row, 4)?,
        created_at: time_at(row, 5)?,
        updated_at: time_at(row, 6)?,
    })
}

fn member_from_row(row: &Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        pid: history::pid_at(row, 0)?,
        first_added_at: time_at(row, 1)?,
        last_added_at: time_at(row, 2)?,
    })
}

/// The row id and size of segment `id` of `org`.
fn locate(conn: &Connection, org: &OrgId, id: SegmentId) -> Result<(i64, u64)> {
    conn.prepare_cached("SELECT seq, current_size FROM segments WHERE id = ?1 AND org = ?2")
        .db()?
        .query_row(params![id.as_bytes(), org.as_str()], |r| {
            Ok((r.get(0)?, count_at(r, 1)?))
        })
        .optional()
        .db()?
        .ok_or(Error::NotFound { id })
}

/// Stores a segment's new size, both as `current_size` and as the size
/// after ledger entry `entry` (for `size_as_of`). Nothing to do when the
/// call recorded no entry: the size did not change.
fn set_size(conn: &Connection, seq: i64, entry: Option<i64>, size: u64) -> Result<()> {
    let Some(entry) = entry else {
        return Ok(());
    };
    conn.prepare_cached("UPDATE segments SET current_size = ?1 WHERE seq = ?2")
        .db()?
        .execute(params![size as i64, seq])
        .db()?;
    history::record_size(conn, seq, entry, size)
}

/// `pids` with their positions, in key order: the B-tree pages each
/// statement touches are then the ones the previous statement touched. The
/// sort is stable, so repeats stay in the order given and the first one is
/// the one that counts.
fn key_order(pids: &[Pid]) -> Vec<(usize, &str)> {
    let mut sorted: Vec<(usize, &str)> = pids.iter().map(Pid::as_str).enumerate().collect();
    sorted.sort_by(|a, b| a.1.cmp(b.1));
    sorted
}

/// Writes membership entries in the order the caller gave the PIDs (the
/// order every store records them in); returns the last entry's `seq`.
fn record_in_given_order(
    conn: &Connection,
    ledger: &mut Ledger<'_>,
    id: SegmentId,
    mut entries: Vec<(usize, Membership, &str)>,
) -> Result<Option<i64>> {
    entries.sort_unstable_by_key(|(given, _, _)| *given);
    let mut last = None;
    for (_, kind, pid) in entries {
        last = Some(ledger.member(conn, id, kind, pid)?);
    }
    Ok(last)
}

pub(super) const MEMBER_COLUMNS: &str = "pid, first_added_at, last_added_at";

fn select_segment(conn: &Connection, org: &OrgId, id: SegmentId) -> Result<Segment> {
    conn.prepare_cached(&format!(
        "SELECT {SEGMENT_COLUMNS} FROM segments WHERE id = ?1 AND org = ?2"
    ))
    .db()?
    .query_row(params![id.as_bytes(), org.as_str()], segment_from_row)
    .optional()
    .db()?
    .ok_or(Error::NotFound { id })
}

impl SegmentStore for SqliteStore {
    fn insert_segment(&self, org: &OrgId, new: SegmentInsert, stamp: Stamp<'_>) -> Result<Segment> {
        let mut writer = self.writer();
        let Writer { conn, tails } = &mut *writer;
        let tx = WriteTx::begin(conn, self.inner.options.busy_timeout)?;
        let mut ledger = Ledger::open(&tx, tails, org.as_str(), stamp)?;
        let number = ledger.org_number(&tx)?;
        // The row is also the segment's `Created` ledger entry (see the
        // schema), so it takes the entry's seq.
        let seq = ledger.reserve()?;
        // The unique index decides between racing creates, in this process
        // or another; `ON CONFLICT` tells its answer without matching text.
        let inserted = tx
            .prepare_cached(
                "INSERT INTO segments (seq, id, org, name, name_key, description, source,
                                       created_at, updated_at, request_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)
                 ON CONFLICT (org, name_key) DO NOTHING",
            )
            .db()?
            .execute(params![
                history::row_id(number, seq),
                new.id.as_bytes(),
                org.as_str(),
                new.name.as_str(),
                new.name.key(),
                new.description,
                new.source,
                ledger.at(),
                stamp.request_id,
            ])
            .db()?;
        if inserted == 0 {
            return Err(Error::DuplicateName {
                name: new.name.as_str().to_owned(),
            });
        }
        let (segment, _) = new.into_segment(ledger.time());
        tx.commit()?;
        ledger.committed();
        Ok(segment)
    }

    fn segment(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
        self.read(|conn| select_segment(conn, org, id))
    }

    fn segment_by_key(&self, org: &OrgId, key: &str) -> Result<Option<Segment>> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {SEGMENT_COLUMNS} FROM segments WHERE org = ?1 AND name_key = ?2"
            ))
            .db()?
            .query_row(params![org.as_str(), key], segment_from_row)
            .optional()
            .db()
        })
    }

    fn segments(
        &self,
        org: &OrgId,
        after: Option<SegmentCursor>,
        limit: usize,
    ) -> Result<Vec<Segment>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let rows = match after {
                None => conn
                    .prepare_cached(&format!(
                        "SELECT {SEGMENT_COLUMNS} FROM segments WHERE org = ?1
                         ORDER BY created_at, id LIMIT ?2"
                    ))
                    .db()?
                    .query_map(params![org.as_str(), limit], segment_from_row)
                    .db()?
                    .collect::<rusqlite::Result<Vec<_>>>(),
                Some(c) => conn
                    .prepare_cached(&format!(
                        "SELECT {SEGMENT_COLUMNS} FROM segments
                         WHERE org = ?1 AND (created_at, id) > (?2, ?3)
                         ORDER BY created_at, id LIMIT ?4"
                    ))
                    .db()?
                    .query_map(
                        params![
                            org.as_str(),
                            micros(c.created_at()),
                            c.id().as_bytes(),
                            limit
                        ],
                        segment_from_row,
                    )
                    .db()?
                    .collect(),
            };
            rows.db()
        })
    }

    fn update_segment(
        &self,
        org: &OrgId,
        id: SegmentId,
        change: &SegmentChange,
        stamp: Stamp<'_>,
    ) -> Result<Segment> {
        let mut writer = self.writer();
        let Writer { conn, tails } = &mut *writer;
        let tx = WriteTx::begin(conn, self.inner.options.busy_timeout)?;
        let current = select_segment(&tx, org, id)?;
        if change.is_no_op(&current) {
            return Ok(current);
        }
        let mut ledger = Ledger::open(&tx, tails, org.as_str(), stamp)?;
        ledger.log_creation(&tx, id)?;
        let at = ledger.at();
        let kind = match change {
            SegmentChange::Rename(name) => {
                // Under the write lock this read is the truth; the unique
                // index stays the last word.
                let holder: Option<[u8; 16]> = tx
                    .prepare_cached("SELECT id FROM segments WHERE org = ?1 AND name_key = ?2")
                    .db()?
                    .query_row(params![org.as_str(), name.key()], |r| r.get(0))
                    .optional()
                    .db()?;
                if holder.is_some_and(|h| h != *id.as_bytes()) {
                    return Err(Error::DuplicateName {
                        name: name.as_str().to_owned(),
                    });
                }
                tx.prepare_cached(
                    "UPDATE segments SET name = ?1, name_key = ?2, updated_at = ?3 WHERE id = ?4",
                )
                .db()?
                .execute(params![name.as_str(), name.key(), at, id.as_bytes()])
                .db()?;
                ChangeKind::Renamed {
                    name: name.as_str().to_owned(),
                }
            }
            SegmentChange::Describe(description) => {
                tx.prepare_cached(
                    "UPDATE segments SET description = ?1, updated_at = ?2 WHERE id = ?3",
                )
                .db()?
                .execute(params![description, at, id.as_bytes()])
                .db()?;
                ChangeKind::DescriptionChanged {
                    description: description.clone(),
                }
            }
        };
        ledger.append(&tx, id, &kind)?;
        let segment = select_segment(&tx, org, id)?;
        tx.commit()?;
        ledger.committed();
        Ok(segment)
    }

    fn add_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<MembersAdded> {
        let sorted = key_order(pids);
        let mut writer = self.writer();
        let Writer { conn, tails } = &mut *writer;
        let tx = WriteTx::begin(conn, self.inner.options.busy_timeout)?;
        let (seq, size) = locate(&tx, org, id)?;
        let mut ledger = Ledger::open(&tx, tails, org.as_str(), stamp)?;
        let at = ledger.at();
        let mut state = tx
            .prepare_cached(
                "SELECT removed_at IS NULL FROM segment_memberships WHERE segment = ?1 AND pid = ?2",
            )
            .db()?;
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO segment_memberships (segment, pid, first_added_at, last_added_at)
                 VALUES (?1, ?2, ?3, ?3)",
            )
            .db()?;
        let mut rejoin = tx
            .prepare_cached(
                "UPDATE segment_memberships SET last_added_at = ?3, removed_at = NULL
                 WHERE segment = ?1 AND pid = ?2",
            )
            .db()?;
        let mut touch = tx
            .prepare_cached(
                "UPDATE segment_memberships SET last_added_at = ?3 WHERE segment = ?1 AND pid = ?2",
            )
            .db()?;
        let mut n_redundant = 0;
        let mut joined = Vec::new();
        for (given, pid) in sorted {
            let active: Option<bool> = state
                .query_row(params![seq, pid], |r| r.get(0))
                .optional()
                .db()?;
            let entry = match active {
                Some(true) => {
                    touch.execute(params![seq, pid, at]).db()?;
                    n_redundant += 1;
                    continue;
                }
                Some(false) => {
                    rejoin.execute(params![seq, pid, at]).db()?;
                    Membership::ReAdded
                }
                None => {
                    insert.execute(params![seq, pid, at]).db()?;
                    Membership::Added
                }
            };
            joined.push((given, entry, pid));
        }
        drop((state, insert, rejoin, touch));
        let n_added = joined.len() as u64;
        let last_entry = record_in_given_order(&tx, &mut ledger, id, joined)?;
        let new_current_size = size + n_added;
        set_size(&tx, seq, last_entry, new_current_size)?;
        tx.commit()?;
        ledger.committed();
        Ok(MembersAdded {
            n_added,
            n_redundant,
            new_current_size,
        })
    }

    fn remove_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<MembersRemoved> {
        let sorted = key_order(pids);
        let mut writer = self.writer();
        let Writer { conn, tails } = &mut *writer;
        let tx = WriteTx::begin(conn, self.inner.options.busy_timeout)?;
        let (seq, size) = locate(&tx, org, id)?;
        let mut ledger = Ledger::open(&tx, tails, org.as_str(), stamp)?;
        let at = ledger.at();
        let mut remove = tx
            .prepare_cached(
                "UPDATE segment_memberships SET removed_at = ?3
                 WHERE segment = ?1 AND pid = ?2 AND removed_at IS NULL",
            )
            .db()?;
        let mut left = Vec::new();
        for (given, pid) in sorted {
            if remove.execute(params![seq, pid, at]).db()? > 0 {
                left.push((given, Membership::Removed, pid));
            }
        }
        drop(remove);
        let n_deleted = left.len() as u64;
        let last_entry = record_in_given_order(&tx, &mut ledger, id, left)?;
        let new_current_size = size.checked_sub(n_deleted).ok_or_else(|| {
            Error::storage(format!(
                "segment {id}: current_size {size} is below the {n_deleted} members removed"
            ))
        })?;
        set_size(&tx, seq, last_entry, new_current_size)?;
        tx.commit()?;
        ledger.committed();
        Ok(MembersRemoved {
            n_deleted,
            new_current_size,
        })
    }

    fn members(
        &self,
        org: &OrgId,
        id: SegmentId,
        after: Option<&MemberCursor>,
        limit: usize,
    ) -> Result<Vec<Member>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let tx = conn.unchecked_transaction().db()?;
            let (seq, _) = locate(&tx, org, id)?;
            let rows = match after {
                None => tx
                    .prepare_cached(&format!(
                        "SELECT {MEMBER_COLUMNS} FROM segment_memberships
                         WHERE segment = ?1 AND removed_at IS NULL
                         ORDER BY first_added_at, pid LIMIT ?2"
                    ))
                    .db()?
                    .query_map(params![seq, limit], member_from_row)
                    .db()?
                    .collect::<rusqlite::Result<Vec<_>>>(),
                Some(c) => tx
                    .prepare_cached(&format!(
                        "SELECT {MEMBER_COLUMNS} FROM segment_memberships
                         WHERE segment = ?1 AND removed_at IS NULL
                           AND (first_added_at, pid) > (?2, ?3)
                         ORDER BY first_added_at, pid LIMIT ?4"
                    ))
                    .db()?
                    .query_map(
                        params![seq, micros(c.first_added_at()), c.pid().as_str(), limit],
                        member_from_row,
                    )
                    .db()?
                    .collect(),
            };
            rows.db()
        })
    }

    fn members_at_offset(
        &self,
        org: &OrgId,
        id: SegmentId,
        offset: u64,
        limit: usize,
    ) -> Result<(Vec<Member>, u64)> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.read(|conn| {
            // One read transaction: the page and the size are one snapshot.
            let tx = conn.unchecked_transaction().db()?;
            let (seq, size) = locate(&tx, org, id)?;
            let page = tx
                .prepare_cached(&format!(
                    "SELECT {MEMBER_COLUMNS} FROM segment_memberships
                     WHERE segment = ?1 AND removed_at IS NULL
                     ORDER BY first_added_at, pid LIMIT ?2 OFFSET ?3"
                ))
                .db()?
                .query_map(params![seq, limit, offset], member_from_row)
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .db()?;
            Ok((page, size))
        })
    }

    fn delete_segment(&self, org: &OrgId, id: SegmentId, stamp: Stamp<'_>) -> Result<()> {
        let mut writer = self.writer();
        let Writer { conn, tails } = &mut *writer;
        let tx = WriteTx::begin(conn, self.inner.options.busy_timeout)?;
        locate(&tx, org, id)?;
        let mut ledger = Ledger::open(&tx, tails, org.as_str(), stamp)?;
        // The row goes: its `Created` entry moves to the ledger table first.
        ledger.log_creation(&tx, id)?;
        tx.prepare_cached("DELETE FROM segments WHERE id = ?1 AND org = ?2")
            .db()?
            .execute(params![id.as_bytes(), org.as_str()])
            .db()?;
        ledger.append(&tx, id, &ChangeKind::Deleted)?;
        tx.commit()?;
        ledger.committed();
        Ok(())
    }

    fn changes_since(&self, org: &OrgId, after: u64, limit: usize) -> Result<Vec<Change>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let tx = conn.unchecked_transaction().db()?;
            history::changes(&tx, org.as_str(), after, limit)
        })
    }

    fn timeline(&self, org: &OrgId, pid: &Pid) -> Result<Vec<Change>> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM segment_ledger WHERE org = ?1 AND pid = ?2 ORDER BY seq",
                history::CHANGE_COLUMNS
            ))
            .db()?
            .query_map(
                params![org.as_str(), pid.as_str()],
                history::change_from_row,
            )
            .db()?
            .collect::<rusqlite::Result<Vec<_>>>()
            .db()
        })
    }

    fn size_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction().db()?;
            let (seq, _) = locate(&tx, org, id)?;
            let bound = history::bound(&tx, org.as_str(), at)?;
            let size: Option<i64> = tx
                .prepare_cached(
                    "SELECT size FROM segment_sizes WHERE segment = ?1 AND seq <= ?2
                     ORDER BY seq DESC LIMIT 1",
                )
                .db()?
                .query_row(params![seq, bound], |r| r.get(0))
                .optional()
                .db()?;
            Ok(size.map_or(0, |s| s.max(0) as u64))
        })
    }

    fn members_as_of(
        &self,
        org: &OrgId,
        id: SegmentId,
        at: DateTime<Utc>,
        after: Option<&Pid>,
        limit: usize,
    ) -> Result<Vec<PastMember>> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction().db()?;
            let (seq, _) = locate(&tx, org, id)?;
            let bound = history::bound(&tx, org.as_str(), at)?;
            let mut last_entry = tx
                .prepare_cached(
                    "SELECT kind, at FROM segment_ledger
                     WHERE org = ?1 AND pid = ?2 AND seq <= ?3 AND segment = ?4
                     ORDER BY seq DESC LIMIT 1",
                )
                .db()?;
            let mut candidates = tx
                .prepare_cached(
                    "SELECT pid, first_added_at, last_added_at FROM segment_memberships
                     WHERE segment = ?1 AND pid > ?2 AND first_added_at <= ?3 ORDER BY pid",
                )
                .db()?;
            // Nobody who first joined after `at` can have been a member then:
            // they are skipped without a ledger lookup.
            let mut rows = candidates
                .query(params![
                    seq,
                    after.map_or("", Pid::as_str),
                    at.timestamp_micros()
                ])
                .db()?;
            let mut past = Vec::new();
            while past.len() < limit {
                let Some(row) = rows.next().db()? else { break };
                let member = member_from_row(row).db()?;
                let entry: Option<(i64, i64)> = last_entry
                    .query_row(
                        params![org.as_str(), member.pid.as_str(), bound, id.as_bytes()],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .db()?;
                if let Some((_, joined)) = entry.filter(|(kind, _)| history::joins(*kind)) {
                    past.push(PastMember {
                        joined_at: DateTime::from_timestamp_micros(joined).ok_or_else(|| {
                            Error::storage(format!("stored time {joined} is out of range"))
                        })?,
                        pid: member.pid,
                        first_added_at: member.first_added_at,
                    });
                }
            }
            Ok(past)
        })
    }

    fn upsert_deaths(&self, records: &[DeathRecord], at: DateTime<Utc>) -> Result<(u64, u64)> {
        let writer = self.writer();
        let tx = WriteTx::begin(&writer.conn, self.inner.options.busy_timeout)?;
        let counts = history::upsert_deaths(&tx, records, at)?;
        tx.commit()?;
        Ok(counts)
    }

    fn death_signals(
        &self,
        org: &OrgId,
        id: SegmentId,
        after: DeathCursor,
        limit: usize,
    ) -> Result<Vec<(DeathCursor, DeathRecord)>> {
        let after = i64::try_from(after.get()).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let tx = conn.unchecked_transaction().db()?;
            let (seq, _) = locate(&tx, org, id)?;
            tx.prepare_cached(&format!(
                "SELECT {} FROM death_records d
                 JOIN segment_memberships m
                   ON m.segment = ?1 AND m.pid = d.pid AND m.removed_at IS NULL
                 WHERE d.seq > ?2 ORDER BY d.seq LIMIT ?3",
                history::DEATH_COLUMNS
            ))
            .db()?
            .query_map(params![seq, after, limit], history::death_from_row)
            .db()?
            .map(|r| r.map(|(n, record)| (DeathCursor::new(n), record)))
            .collect::<rusqlite::Result<Vec<_>>>()
            .db()
        })
    }
}
