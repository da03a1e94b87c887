//! Members, async: adds, removals, and the two ways to list them.

use super::{AsyncSegments, in_view};
use crate::{
    AddOutcome, MemberList, MemberOptions, MembersPage, OrgId, RemoveOutcome, Result, SegmentId,
    SegmentStore,
};

impl<S: SegmentStore + 'static> AsyncSegments<S> {
    /// [`Segments::add_members`](crate::Segments::add_members), on the
    /// blocking pool. The PIDs are copied (malformed ones too: they are
    /// reported in `invalid_pids`, as the sync call does).
    ///
    /// # Errors
    /// As [`Segments::add_members`](crate::Segments::add_members);
    /// `Storage` with a [`NotRun`](crate::NotRun) source.
    pub async fn add_members<P: AsRef<str>>(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[P],
    ) -> Result<AddOutcome> {
        let (org, pids) = (org.clone(), copied(pids));
        in_view!(self, |s| s.add_members(&org, id, &pids))
    }

    /// [`Segments::remove_members`](crate::Segments::remove_members), on
    /// the blocking pool. The PIDs are copied.
    ///
    /// # Errors
    /// As [`Segments::remove_members`](crate::Segments::remove_members);
    /// `Storage` with a [`NotRun`](crate::NotRun) source.
    pub async fn remove_members<P: AsRef<str>>(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[P],
    ) -> Result<RemoveOutcome> {
        let (org, pids) = (org.clone(), copied(pids));
        in_view!(self, |s| s.remove_members(&org, id, &pids))
    }

    /// [`Segments::members_page`](crate::Segments::members_page), on the
    /// blocking pool: the documented page API (pages of 5,000, from 1).
    ///
    /// # Errors
    /// As [`Segments::members_page`](crate::Segments::members_page);
    /// `Storage` with a [`NotRun`](crate::NotRun) source.
    pub async fn members_page(&self, org: &OrgId, id: SegmentId, page: u64) -> Result<MembersPage> {
        let org = org.clone();
        self.run(move |s| s.members_page(&org, id, page)).await
    }

    /// [`Segments::members`](crate::Segments::members), on the blocking
    /// pool: the cursor API.
    ///
    /// # Errors
    /// As [`Segments::members`](crate::Segments::members); `Storage` with
    /// a [`NotRun`](crate::NotRun) source.
    pub async fn members(
        &self,
        org: &OrgId,
        id: SegmentId,
        options: MemberOptions,
    ) -> Result<MemberList> {
        let org = org.clone();
        self.run(move |s| s.members(&org, id, options)).await
    }
}

/// The PIDs of a member call, owned, for the blocking pool.
pub(super) fn copied<P: AsRef<str>>(pids: &[P]) -> Vec<Box<str>> {
    pids.iter().map(|p| Box::from(p.as_ref())).collect()
}
