//! Death signals: ingestion, and what a segment sees.

use super::trace::traced;
use super::{Segments, check_limit};
use crate::domain::limits::{DEFAULT_PAGE_LIMIT, MAX_DEATHS_PER_CALL, MAX_PAGE_LIMIT};
use crate::store::Page;
use crate::{
    DeathCursor, DeathRecord, DeathReport, DeathSignals, DeathsIngested, Error, OrgId, PageOptions,
    RejectedDeath, Result, SegmentId, SegmentStore,
};

impl<S: SegmentStore> Segments<S> {
    /// Ingests death records. Each report is checked on its own: bad ones
    /// (a malformed PID, a date that is not `YYYY-MM-DD`, a confidence
    /// outside 0–1, …) are returned with their reason, the rest are stored in
    /// one transaction. Reporting a known `obituary_id` again updates the
    /// record but keeps its first `first_observed_at` and its place in the
    /// death feed. A report without `first_observed_at` is observed now.
    ///
    /// Death records are facts about people, shared by every org: each org
    /// sees those of its own segments' members.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for more than
    /// [`MAX_DEATHS_PER_CALL`] reports; `Storage` (then nothing is stored).
    pub fn ingest_deaths(&self, reports: Vec<DeathReport>) -> Result<DeathsIngested> {
        traced!(
            "segments.ingest_deaths",
            None::<&OrgId>,
            None::<SegmentId>,
            [n_pids = reports.len()],
            (|| {
                if reports.len() > MAX_DEATHS_PER_CALL {
                    return Err(Error::TooLarge {
                        what: "death records",
                        limit: MAX_DEATHS_PER_CALL,
                    });
                }
                let now = self.now();
                let mut records = Vec::with_capacity(reports.len());
                let mut rejected = Vec::new();
                for (index, report) in reports.into_iter().enumerate() {
                    let obituary_id = report.obituary_id.clone();
                    match report.check(now) {
                        Ok(record) => records.push(record),
                        Err(reason) => rejected.push(RejectedDeath {
                            index,
                            obituary_id,
                            reason,
                        }),
                    }
                }
                let done = self.store.upsert_deaths(&records, now)?;
                Ok(DeathsIngested {
                    n_inserted: done.n_inserted,
                    n_updated: done.n_updated,
                    rejected,
                })
            })()
        )
    }

    /// The death records of the segment's current members, in the order they
    /// entered the death feed: the documented `signals/deaths` answer.
    ///
    /// The store is read a page of
    /// [`MAX_PAGE_LIMIT`] records at a time; a record ingested while the
    /// pages are read is in the answer if it lands after the page being
    /// read, as if the call had come a moment later.
    ///
    /// # Errors
    /// `NotFound`; `Storage`.
    pub fn death_signals(&self, org: &OrgId, id: SegmentId) -> Result<Vec<DeathRecord>> {
        traced!(
            "segments.death_signals",
            Some(org),
            Some(id),
            [],
            (|| {
                let mut records = Vec::new();
                let mut after = DeathCursor::START;
                loop {
                    let page =
                        self.store
                            .death_signals(org, id, Page::new(after, MAX_PAGE_LIMIT))?;
                    let full = page.records.len() == MAX_PAGE_LIMIT;
                    after = page.next;
                    records.extend(page.records);
                    if !full {
                        return Ok(records);
                    }
                }
            })()
        )
    }

    /// For monitoring: the death records of the segment's current members
    /// that entered the death feed after the cursor (from the start by
    /// default), up to `limit` (default [`DEFAULT_PAGE_LIMIT`], 1 to
    /// [`MAX_PAGE_LIMIT`]). Keep the returned [`DeathSignals::next`] and pass
    /// it to [`PageOptions::after`] next time to see only new records (a poll reads only what entered
    /// the feed since the last one). An updated record does not come
    /// again (unless it now names another person: then it is new to that
    /// person's segments). The feed follows records, not members: a person
    /// who joins the segment after their record entered the feed is in
    /// [`death_signals`](Segments::death_signals) but not here.
    ///
    /// # Errors
    /// `Invalid` for a bad limit; `NotFound`; `Storage`.
    pub fn death_signals_since(
        &self,
        org: &OrgId,
        id: SegmentId,
        options: PageOptions<DeathCursor>,
    ) -> Result<DeathSignals> {
        traced!(
            "segments.death_signals_since",
            Some(org),
            Some(id),
            [],
            (|| {
                let limit = options.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
                check_limit(limit)?;
                let since = options.after.unwrap_or(DeathCursor::START);
                self.store.death_signals(org, id, Page::new(since, limit))
            })()
        )
    }
}
