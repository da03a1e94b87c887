//! Set operations and dry runs, async.

use super::members::copied;
use super::{AsyncSegments, in_view};
use crate::{
    AddOutcome, NewSegment, OrgId, RemoveOutcome, Result, Segment, SegmentId, SegmentStore, SetExpr,
};

impl<S: SegmentStore + 'static> AsyncSegments<S> {
    /// [`Segments::create_from`](crate::Segments::create_from), on the
    /// blocking pool (`expr` is cloned).
    ///
    /// # Errors
    /// As [`Segments::create_from`](crate::Segments::create_from);
    /// `Storage` with a [`NotRun`](crate::NotRun) source.
    pub async fn create_from(
        &self,
        org: &OrgId,
        new: NewSegment,
        expr: &SetExpr,
    ) -> Result<Segment> {
        let (org, expr) = (org.clone(), expr.clone());
        in_view!(self, |s| s.create_from(&org, new, &expr))
    }

    /// [`Segments::add_from`](crate::Segments::add_from), on the blocking
    /// pool (`expr` is cloned).
    ///
    /// # Errors
    /// As [`Segments::add_from`](crate::Segments::add_from); `Storage`
    /// with a [`NotRun`](crate::NotRun) source.
    pub async fn add_from(
        &self,
        org: &OrgId,
        target: SegmentId,
        expr: &SetExpr,
    ) -> Result<AddOutcome> {
        let (org, expr) = (org.clone(), expr.clone());
        in_view!(self, |s| s.add_from(&org, target, &expr))
    }

    /// [`Segments::remove_from`](crate::Segments::remove_from), on the
    /// blocking pool (`expr` is cloned).
    ///
    /// # Errors
    /// As [`Segments::remove_from`](crate::Segments::remove_from);
    /// `Storage` with a [`NotRun`](crate::NotRun) source.
    pub async fn remove_from(
        &self,
        org: &OrgId,
        target: SegmentId,
        expr: &SetExpr,
    ) -> Result<RemoveOutcome> {
        let (org, expr) = (org.clone(), expr.clone());
        in_view!(self, |s| s.remove_from(&org, target, &expr))
    }

    /// The dry-run view ([`Segments::dry_run`](crate::Segments::dry_run)):
    /// member calls and set operations that report exactly what they would
    /// do now and change nothing. Owned, like the other views.
    ///
    /// ```
    /// use segments_engine::{MemoryStore, NewSegment, OrgId, Segments};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> segments_engine::Result<()> {
    /// let segments = Segments::new(MemoryStore::new()).into_async();
    /// let org = OrgId::new("acme")?;
    /// let s = segments.create(&org, NewSegment::new("Prospects")).await?;
    /// let would = segments.dry_run().add_members(&org, s.id, &["p-a1b2c3d4e5f6"]).await?;
    /// assert_eq!(would.new_current_size, 1);
    /// assert_eq!(segments.get(&org, s.id).await?.current_size, 0, "nothing was written");
    /// # Ok(()) }
    /// ```
    pub fn dry_run(&self) -> AsyncDryRun<S> {
        AsyncDryRun {
            segments: self.clone(),
        }
    }
}

/// Member calls and set operations that change nothing and say what they
/// would do ([`AsyncSegments::dry_run`]), on the blocking pool. Every
/// method takes the same input and gives the same outcome and errors as
/// its namesake on [`DryRun`](crate::DryRun).
#[derive(Debug)]
pub struct AsyncDryRun<S: SegmentStore + 'static> {
    segments: AsyncSegments<S>,
}

impl<S: SegmentStore + 'static> Clone for AsyncDryRun<S> {
    fn clone(&self) -> Self {
        Self {
            segments: self.segments.clone(),
        }
    }
}

impl<S: SegmentStore + 'static> AsyncDryRun<S> {
    /// What [`AsyncSegments::add_members`] would do now.
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
        in_view!(self.segments, |s| s.dry_run().add_members(&org, id, &pids))
    }

    /// What [`AsyncSegments::remove_members`] would do now.
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
        in_view!(self.segments, |s| s
            .dry_run()
            .remove_members(&org, id, &pids))
    }

    /// What [`AsyncSegments::add_from`] would do now.
    ///
    /// # Errors
    /// As [`Segments::add_from`](crate::Segments::add_from); `Storage`
    /// with a [`NotRun`](crate::NotRun) source.
    pub async fn add_from(
        &self,
        org: &OrgId,
        target: SegmentId,
        expr: &SetExpr,
    ) -> Result<AddOutcome> {
        let (org, expr) = (org.clone(), expr.clone());
        in_view!(self.segments, |s| s.dry_run().add_from(&org, target, &expr))
    }

    /// What [`AsyncSegments::remove_from`] would do now.
    ///
    /// # Errors
    /// As [`Segments::remove_from`](crate::Segments::remove_from);
    /// `Storage` with a [`NotRun`](crate::NotRun) source.
    pub async fn remove_from(
        &self,
        org: &OrgId,
        target: SegmentId,
        expr: &SetExpr,
    ) -> Result<RemoveOutcome> {
        let (org, expr) = (org.clone(), expr.clone());
        in_view!(self.segments, |s| s
            .dry_run()
            .remove_from(&org, target, &expr))
    }
}
