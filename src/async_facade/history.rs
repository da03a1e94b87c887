//! History, async: the change feed, timelines and as-of reads.

use chrono::{DateTime, Utc};

use super::AsyncSegments;
use crate::MemberCursor;
use crate::{ChangePage, MembersAsOf, OrgId, PageOptions, Result, SegmentId, SegmentStore};

impl<S: SegmentStore + 'static> AsyncSegments<S> {
    /// [`Segments::changes_since`](crate::Segments::changes_since), on the
    /// blocking pool: the org's change feed.
    ///
    /// # Errors
    /// As [`Segments::changes_since`](crate::Segments::changes_since);
    /// `Storage` with a [`NotRun`](crate::NotRun) source.
    pub async fn changes_since(
        &self,
        org: &OrgId,
        options: PageOptions<u64>,
    ) -> Result<ChangePage> {
        let org = org.clone();
        self.run(move |s| s.changes_since(&org, options)).await
    }

    /// [`Segments::last_seq`](crate::Segments::last_seq), on the blocking
    /// pool.
    ///
    /// # Errors
    /// As [`Segments::last_seq`](crate::Segments::last_seq); `Storage`
    /// with a [`NotRun`](crate::NotRun) source.
    pub async fn last_seq(&self, org: &OrgId) -> Result<u64> {
        let org = org.clone();
        self.run(move |s| s.last_seq(&org)).await
    }

    /// [`Segments::timeline`](crate::Segments::timeline), on the blocking
    /// pool (`pid` is copied).
    ///
    /// # Errors
    /// As [`Segments::timeline`](crate::Segments::timeline); `Storage`
    /// with a [`NotRun`](crate::NotRun) source.
    pub async fn timeline(
        &self,
        org: &OrgId,
        pid: &str,
        options: PageOptions<u64>,
    ) -> Result<ChangePage> {
        let (org, pid) = (org.clone(), pid.to_owned());
        self.run(move |s| s.timeline(&org, &pid, options)).await
    }

    /// [`Segments::size_as_of`](crate::Segments::size_as_of), on the
    /// blocking pool.
    ///
    /// # Errors
    /// As [`Segments::size_as_of`](crate::Segments::size_as_of); `Storage`
    /// with a [`NotRun`](crate::NotRun) source.
    pub async fn size_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64> {
        let org = org.clone();
        self.run(move |s| s.size_as_of(&org, id, at)).await
    }

    /// [`Segments::members_as_of`](crate::Segments::members_as_of), on the
    /// blocking pool.
    ///
    /// # Errors
    /// As [`Segments::members_as_of`](crate::Segments::members_as_of);
    /// `Storage` with a [`NotRun`](crate::NotRun) source.
    pub async fn members_as_of(
        &self,
        org: &OrgId,
        id: SegmentId,
        at: DateTime<Utc>,
        options: PageOptions<MemberCursor>,
    ) -> Result<MembersAsOf> {
        let org = org.clone();
        self.run(move |s| s.members_as_of(&org, id, at, options))
            .await
    }
}
