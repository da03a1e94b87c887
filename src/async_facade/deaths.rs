//! Death signals, async: ingestion, and what a segment sees.

use super::AsyncSegments;
use crate::{
    DeathCursor, DeathRecord, DeathReport, DeathSignals, DeathsIngested, OrgId, PageOptions,
    Result, SegmentId, SegmentStore,
};

impl<S: SegmentStore + 'static> AsyncSegments<S> {
    /// [`Segments::ingest_deaths`](crate::Segments::ingest_deaths), on the
    /// blocking pool (the reports move there).
    ///
    /// # Errors
    /// As [`Segments::ingest_deaths`](crate::Segments::ingest_deaths);
    /// `Storage` with a [`NotRun`](crate::NotRun) source.
    pub async fn ingest_deaths(&self, reports: Vec<DeathReport>) -> Result<DeathsIngested> {
        self.run(move |s| s.ingest_deaths(reports)).await
    }

    /// [`Segments::death_signals`](crate::Segments::death_signals), on the
    /// blocking pool.
    ///
    /// # Errors
    /// As [`Segments::death_signals`](crate::Segments::death_signals);
    /// `Storage` with a [`NotRun`](crate::NotRun) source.
    pub async fn death_signals(&self, org: &OrgId, id: SegmentId) -> Result<Vec<DeathRecord>> {
        let org = org.clone();
        self.run(move |s| s.death_signals(&org, id)).await
    }

    /// [`Segments::death_signals_since`](crate::Segments::death_signals_since),
    /// on the blocking pool.
    ///
    /// # Errors
    /// As [`Segments::death_signals_since`](crate::Segments::death_signals_since);
    /// `Storage` with a [`NotRun`](crate::NotRun) source.
    pub async fn death_signals_since(
        &self,
        org: &OrgId,
        id: SegmentId,
        options: PageOptions<DeathCursor>,
    ) -> Result<DeathSignals> {
        let org = org.clone();
        self.run(move |s| s.death_signals_since(&org, id, options))
            .await
    }
}
