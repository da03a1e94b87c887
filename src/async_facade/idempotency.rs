//! Idempotency keys, async: the keyed view and key records.

use std::sync::Arc;

use super::AsyncSegments;
use crate::{IdempotencyRecord, OrgId, Result, SegmentStore};

impl<S: SegmentStore + 'static> AsyncSegments<S> {
    /// The same service, for calls that may be retried
    /// ([`Segments::with_idempotency_key`](crate::Segments::with_idempotency_key)):
    /// every write made through it records `key` with its outcome, and a
    /// retry with the same key and input returns that outcome and applies
    /// nothing again. Cheap; the view is owned, so a task can take it.
    ///
    /// ```
    /// use segments_engine::{MemoryStore, NewSegment, OrgId, Segments};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> segments_engine::Result<()> {
    /// let segments = Segments::new(MemoryStore::new()).into_async();
    /// let org = OrgId::new("acme")?;
    /// let s = segments.create(&org, NewSegment::new("Watchlist")).await?;
    /// let retry_safe = segments.with_idempotency_key("k-123");
    /// let first = retry_safe.add_members(&org, s.id, &["p-a1b2c3d4e5f6"]).await?;
    /// let again = retry_safe.add_members(&org, s.id, &["p-a1b2c3d4e5f6"]).await?;
    /// assert_eq!(again, first, "the first outcome, not a redundant add");
    /// # Ok(()) }
    /// ```
    pub fn with_idempotency_key(&self, key: impl Into<String>) -> AsyncSegments<S> {
        let mut view = self.clone();
        view.idempotency_key = Some(Arc::from(key.into()));
        view
    }

    /// [`Segments::idempotency_record`](crate::Segments::idempotency_record),
    /// on the blocking pool (`key` is copied).
    ///
    /// # Errors
    /// As [`Segments::idempotency_record`](crate::Segments::idempotency_record);
    /// `Storage` with a [`NotRun`](crate::NotRun) source.
    pub async fn idempotency_record(
        &self,
        org: &OrgId,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        let (org, key) = (org.clone(), key.to_owned());
        self.run(move |s| s.idempotency_record(&org, &key)).await
    }
}
