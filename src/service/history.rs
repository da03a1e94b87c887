//! History: the change feed, timelines and as-of reads.

use chrono::{DateTime, Utc};

use super::trace::traced;
use super::{Segments, check_limit, page};
use crate::MemberCursor;
use crate::clock::truncate_to_micros;
use crate::error::{Field, Rule, ValidationError};
use crate::limits::DEFAULT_PAGE_LIMIT;
use crate::store::Page;
use crate::{
    ChangePage, MembersAsOf, OrgId, PageOptions, PastMember, Pid, Result, SegmentId, SegmentStore,
};

impl<S: SegmentStore> Segments<S> {
    /// The org's change feed: up to the options' limit of ledger entries
    /// after the sequence number they start after (from the beginning
    /// without one), in order. Poll with the returned [`ChangePage::next`]
    /// and no entry is missed or seen twice, whatever else writes in
    /// between.
    ///
    /// # Errors
    /// `Invalid` (field `limit`) for a limit of 0 or over
    /// [`MAX_PAGE_LIMIT`](crate::limits::MAX_PAGE_LIMIT); `Invalid` (field
    /// `cursor`) when the start is past the end of the org's ledger (a cursor
    /// from another store, or from a database since restored from an older
    /// copy); `Storage`.
    pub fn changes_since(&self, org: &OrgId, options: PageOptions<u64>) -> Result<ChangePage> {
        let after = options.after.unwrap_or(0);
        traced!(
            "segments.changes_since",
            Some(org),
            None::<SegmentId>,
            [after = after],
            (|| {
                let limit = options.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
                check_limit(limit)?;
                let changes = self.store.changes_since(org, Page::new(after, limit))?;
                // Nothing new: make sure `after` is a place in this ledger, not a
                // cursor of another store or org, which would skip what comes next.
                if changes.is_empty() && after > 0 && after > self.store.last_seq(org)? {
                    return Err(ValidationError::new(
                        Field::Cursor,
                        Rule::Malformed {
                            expected: "a sequence number this org's ledger has reached",
                        },
                    )
                    .into());
                }
                let next = changes.last().map_or(after, |c| c.seq);
                Ok(ChangePage { changes, next })
            })()
        )
    }

    /// The seq of the org's last ledger entry; 0 when the org has none.
    /// Costs the same however long the ledger (it reads the org's head).
    ///
    /// With it a reader shows the tail of the feed without walking it:
    ///
    /// ```
    /// use segments_engine::{MemoryStore, NewSegment, OrgId, PageOptions, Segments};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// assert_eq!(segments.last_seq(&org)?, 0, "no entries yet");
    /// let s = segments.create(&org, NewSegment::new("Leads"))?;
    /// let pids: Vec<String> = (0..20).map(|i| format!("p-{i:012x}")).collect();
    /// segments.add_members(&org, s.id, &pids)?;
    /// let last = segments.last_seq(&org)?;
    /// assert_eq!(last, 21, "one Created entry, then one per PID");
    /// let tail = segments.changes_since(&org, PageOptions::new().after(last - 5).limit(5))?;
    /// assert_eq!(tail.changes.len(), 5);
    /// assert_eq!(tail.changes.last().map(|c| c.seq), Some(last));
    /// # Ok::<(), segments_engine::Error>(())
    /// ```
    ///
    /// # Errors
    /// `Storage` on backend failure.
    pub fn last_seq(&self, org: &OrgId) -> Result<u64> {
        traced!(
            "segments.last_seq",
            Some(org),
            None::<SegmentId>,
            [],
            self.store.last_seq(org)
        )
    }

    /// One person's joins and leaves across the org's segments, deleted ones
    /// included, in order: up to `limit` entries (default
    /// [`DEFAULT_PAGE_LIMIT`]) after sequence `after` (from the first by
    /// default). Pass [`ChangePage::next`] to [`PageOptions::after`] for
    /// the next page; a page with fewer than `limit` entries is the last
    /// for now.
    ///
    /// ```
    /// use segments_engine::{MemoryStore, NewSegment, OrgId, PageOptions, Segments};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// let s = segments.create(&org, NewSegment::new("Watchlist"))?;
    /// segments.add_members(&org, s.id, &["p-a1b2c3d4e5f6"])?;
    /// segments.remove_members(&org, s.id, &["p-a1b2c3d4e5f6"])?;
    /// let first = segments.timeline(&org, "p-a1b2c3d4e5f6", PageOptions::new().limit(1))?;
    /// assert!(first.changes[0].kind.joins());
    /// let rest = segments.timeline(&org, "p-a1b2c3d4e5f6", PageOptions::new().after(first.next))?;
    /// assert_eq!(rest.changes.len(), 1);
    /// # Ok::<(), segments_engine::Error>(())
    /// ```
    ///
    /// # Errors
    /// `Invalid` (field `minerva_pids`) for a malformed PID, (field `limit`)
    /// for a bad limit; `Storage`.
    pub fn timeline(
        &self,
        org: &OrgId,
        pid: &str,
        options: PageOptions<u64>,
    ) -> Result<ChangePage> {
        let after = options.after.unwrap_or(0);
        traced!(
            "segments.timeline",
            Some(org),
            None::<SegmentId>,
            [after = after],
            (|| {
                let limit = options.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
                check_limit(limit)?;
                let changes =
                    self.store
                        .timeline(org, &Pid::parse(pid)?, Page::new(after, limit))?;
                let next = changes.last().map_or(after, |c| c.seq);
                Ok(ChangePage { changes, next })
            })()
        )
    }

    /// How many members the segment had at `at`: after every ledger entry
    /// recorded at or before that time. 0 before its first member joined.
    ///
    /// # Errors
    /// `NotFound` for an unknown, deleted or other org's segment; `Storage`.
    pub fn size_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64> {
        traced!(
            "segments.size_as_of",
            Some(org),
            Some(id),
            [],
            self.store.size_as_of(org, id, truncate_to_micros(at))
        )
    }

    /// The members the segment had at `at`, in list order (`first_added_at`,
    /// then PID), a page of up to `limit` (default [`DEFAULT_PAGE_LIMIT`],
    /// 1 to [`MAX_PAGE_LIMIT`](crate::limits::MAX_PAGE_LIMIT)) after the
    /// cursor. Pass [`MembersAsOf::next`] to [`PageOptions::after`] for
    /// the next page.
    ///
    /// # Errors
    /// `Invalid` for a bad limit; `NotFound`; `Storage`.
    pub fn members_as_of(
        &self,
        org: &OrgId,
        id: SegmentId,
        at: DateTime<Utc>,
        options: PageOptions<MemberCursor>,
    ) -> Result<MembersAsOf> {
        traced!(
            "segments.members_as_of",
            Some(org),
            Some(id),
            [],
            (|| {
                let limit = options.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
                check_limit(limit)?;
                let found = self.store.members_as_of(
                    org,
                    id,
                    truncate_to_micros(at),
                    Page::new(options.after.as_ref(), limit + 1),
                )?;
                let (members, next) = page(found, limit, PastMember::cursor);
                Ok(MembersAsOf { members, next })
            })()
        )
    }
}
