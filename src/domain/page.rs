//! Paging: where a paged read starts and how many items it returns.

/// Where a paged read of [`Segments`](crate::Segments) starts, and how many
/// items it returns: [`list`](crate::Segments::list),
/// [`members`](crate::Segments::members),
/// [`timeline`](crate::Segments::timeline),
/// [`members_as_of`](crate::Segments::members_as_of) and
/// [`death_signals_since`](crate::Segments::death_signals_since) and
/// [`changes_since`](crate::Segments::changes_since) each take
/// one, of their own kind of cursor `C`. Each page they return says where
/// the next one starts (its `next`): pass it to [`after`](Self::after).
///
/// ```
/// use segments_engine::{DeathCursor, PageOptions};
/// let first_page: PageOptions<DeathCursor> = PageOptions::new().limit(1_000);
/// let later = PageOptions::new().after(DeathCursor::new(42)).limit(1_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageOptions<C> {
    pub(crate) after: Option<C>,
    pub(crate) limit: Option<usize>,
}

impl<C> Default for PageOptions<C> {
    fn default() -> Self {
        Self {
            after: None,
            limit: None,
        }
    }
}

impl<C> PageOptions<C> {
    /// From the start, [`DEFAULT_PAGE_LIMIT`](crate::limits::DEFAULT_PAGE_LIMIT) items.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start after this cursor (exclusive).
    pub fn after(mut self, cursor: C) -> Self {
        self.after = Some(cursor);
        self
    }

    /// Return at most `limit` items, 1 to [`MAX_PAGE_LIMIT`](crate::limits::MAX_PAGE_LIMIT).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}
