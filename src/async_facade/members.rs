//! Members, async: adds, removals, and the two ways to list them.

use super::{AsyncSegments, in_view};
use crate::MemberCursor;
use crate::{
    AddOutcome, ImportOutcome, MemberList, MembersPage, OrgId, PageOptions, RemoveOutcome, Result,
    SegmentId, SegmentStore,
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

    /// [`Segments::import_members`](crate::Segments::import_members), on
    /// the blocking pool: any number of PIDs, in batches of 10,000, each
    /// batch atomic, resumable under an idempotency key.
    ///
    /// `pids` moves to the blocking pool and is iterated there, one batch
    /// in memory at a time: an iterator that blocks to read (the lines of a
    /// file, say) blocks the pool, not the async threads. To import from
    /// an async source (a request body, a stream), send its PIDs through a
    /// channel and pass the receiving end as an iterator:
    ///
    /// ```
    /// use segments_engine::{MemoryStore, NewSegment, OrgId, Segments};
    /// # #[tokio::main]
    /// # async fn main() -> segments_engine::Result<()> {
    /// let segments = Segments::new(MemoryStore::new()).into_async();
    /// let org = OrgId::new("acme")?;
    /// let s = segments.find_or_create(&org, NewSegment::new("Leads")).await?;
    ///
    /// let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1_000);
    /// tokio::spawn(async move {
    ///     // An async source: here, numbers; in a host, a body's lines.
    ///     for i in 0..25_000 {
    ///         if tx.send(format!("p-{i:012x}")).await.is_err() {
    ///             break; // the import stopped
    ///         }
    ///     }
    /// });
    /// let pids = std::iter::from_fn(move || rx.blocking_recv());
    /// let out = segments.with_idempotency_key("import-7").import_members(&org, s.id, pids).await?;
    /// assert_eq!((out.n_added, out.n_batches), (25_000, 3));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Segments::import_members`](crate::Segments::import_members)
    /// (batches before a failing one stay applied); `Storage` with a
    /// [`NotRun`](crate::NotRun) source, when nothing was read.
    pub async fn import_members<I>(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: I,
    ) -> Result<ImportOutcome>
    where
        I: IntoIterator + Send + 'static,
        I::Item: AsRef<str>,
    {
        let org = org.clone();
        in_view!(self, |s| s.import_members(&org, id, pids))
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
        options: PageOptions<MemberCursor>,
    ) -> Result<MemberList> {
        let org = org.clone();
        self.run(move |s| s.members(&org, id, options)).await
    }
}

/// The PIDs of a member call, owned, for the blocking pool.
pub(super) fn copied<P: AsRef<str>>(pids: &[P]) -> Vec<Box<str>> {
    pids.iter().map(|p| Box::from(p.as_ref())).collect()
}
