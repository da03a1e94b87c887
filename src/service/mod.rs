//! [`Segments`]: the service every host calls.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::SegmentCursor;
use crate::clock::{Clock, IdGenerator, SystemClock, UuidV7, truncate_to_micros};
use crate::domain::limits::{
    DEFAULT_IDEMPOTENCY_TTL, DEFAULT_PAGE_LIMIT, DEFAULT_SOURCE, MAX_PAGE_LIMIT, MAX_PIDS_PER_CALL,
};
use crate::domain::name::{validate_description, validate_source};
use crate::error::{Field, Rule, ValidationError};
use crate::store::{Page, SegmentChange, SegmentInsert, Stamp, Written};
use crate::{
    Error, NewSegment, OrgId, PageOptions, PersonDirectory, Result, Segment, SegmentId,
    SegmentName, SegmentPage, SegmentStore,
};

mod deaths;
mod history;
mod idempotency;
mod members;
mod outcomes;
mod sets;
mod trace;

pub use idempotency::IdempotencyRecord;
pub use sets::DryRun;
use trace::traced;

use members::PageHints;

/// The segments service: validates input, stamps times and ids, and calls
/// the store.
///
/// `Segments` is cheap to share: put it in an `Arc`, or clone it when the
/// store is `Clone` (both backends are; clones share one state). All methods
/// are synchronous: they block until the store answers. Async hosts use
/// `AsyncSegments` (feature `tokio`; `segments.into_async()`),
/// the same calls as `async fn`s run on Tokio's blocking pool.
///
/// ```
/// use segments_engine::{Error, NewSegment, OrgId, Segments, SqliteStore};
/// let segments = Segments::new(SqliteStore::open_in_memory()?);
/// let org = OrgId::new("acme")?;
/// let s = segments.create(&org, NewSegment::new("Q1 2024 Enterprise Prospects")
///     .description("500+ employees, tech"))?;
/// assert_eq!(s.current_size, 0);
/// assert_eq!(s.source, "api");
/// assert_eq!(segments.get(&org, s.id)?, s);
/// # Ok::<(), Error>(())
/// ```
///
/// # Tracing
/// With the feature `tracing` (off by default), every call is an `INFO`
/// span named after it (`segments.create`, `segments.add_members`,
/// `segments.dry_run.add_from`, …) with the `org`, the `segment` id, the
/// input's size (`n_pids`) and, once it returns, its `outcome` (`ok`, or
/// the error's code: `not_found`, `duplicate_name`, `invalid`, `storage`,
/// …) and counts (`n_added`, `n_redundant_additions`, `n_deleted`, `n_invalid`,
/// `size`, `n_items`), with `keyed` and `replayed` for writes with an
/// idempotency key. A storage failure is also an `ERROR` event with the
/// error's chain (the first line of each cause: a database's detail lines
/// may quote row values); every failed call is a `DEBUG` event with the
/// whole chain, messages included.
///
/// **No PID, segment name or description is written above `DEBUG`**: PIDs
/// identify people, and names and descriptions may say who they are. Keep
/// `DEBUG` for `segments_engine` off in production logs that should not hold
/// them. With no subscriber at `INFO`, a call makes no span and costs a
/// check of two statics (about 30 instructions; the create and add bench
/// rows measure it). The spans go to `tracing` subscribers only, not to
/// tracing's `log` compatibility layer.
#[derive(Clone, Debug)]
pub struct Segments<S> {
    store: S,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    directory: Option<Arc<dyn PersonDirectory>>,
    request_id: Option<Arc<str>>,
    idempotency_key: Option<Arc<str>>,
    idempotency_ttl: Duration,
    page_hints: Arc<PageHints>,
}

impl<S: SegmentStore> Segments<S> {
    /// A service over `store`, with the system clock and UUID v7 ids.
    pub fn new(store: S) -> Self {
        Self {
            store,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7::shared()),
            directory: None,
            request_id: None,
            idempotency_key: None,
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
            page_hints: Arc::default(),
        }
    }

    /// Replaces the clock (for deterministic tests, say with a
    /// [`ManualClock`](crate::clock::ManualClock)). Times it returns are
    /// truncated to microseconds.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Replaces the id generator (for deterministic tests, say with
    /// [`SequentialIds`](crate::clock::SequentialIds)).
    pub fn with_id_generator(mut self, ids: impl IdGenerator + 'static) -> Self {
        self.ids = Arc::new(ids);
        self
    }

    /// Plugs in a directory of known people: well-formed PIDs it does not
    /// know are reported in [`AddOutcome::invalid_pids`](crate::AddOutcome::invalid_pids) and not added.
    /// Without one, every well-formed PID is accepted.
    pub fn with_person_directory(mut self, directory: impl PersonDirectory + 'static) -> Self {
        self.directory = Some(Arc::new(directory));
        self
    }

    /// The same service, for one request: every change it makes is recorded
    /// in the ledger with `request_id`. Cheap (it borrows the store).
    ///
    /// ```
    /// use segments_engine::{ChangeKind, MemoryStore, NewSegment, OrgId, PageOptions, Segments};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// segments.for_request("req_seg123").create(&org, NewSegment::new("Tracked"))?;
    /// let feed = segments.changes_since(&org, PageOptions::new().limit(10))?;
    /// assert_eq!(feed.changes[0].request_id.as_deref(), Some("req_seg123"));
    /// assert!(matches!(feed.changes[0].kind, ChangeKind::Created { .. }));
    /// # Ok::<(), segments_engine::Error>(())
    /// ```
    pub fn for_request(&self, request_id: impl Into<String>) -> Segments<&S> {
        let mut view = self.view();
        view.request_id = Some(Arc::from(request_id.into()));
        view
    }

    /// The same service over a borrowed store, with the same settings.
    fn view(&self) -> Segments<&S> {
        Segments {
            store: &self.store,
            clock: Arc::clone(&self.clock),
            ids: Arc::clone(&self.ids),
            directory: self.directory.clone(),
            request_id: self.request_id.clone(),
            idempotency_key: self.idempotency_key.clone(),
            idempotency_ttl: self.idempotency_ttl,
            page_hints: Arc::clone(&self.page_hints),
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Takes the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        truncate_to_micros(self.clock.now())
    }

    pub(super) fn stamp(&self) -> Stamp<'_> {
        Stamp {
            at: self.now(),
            request_id: self.request_id.as_deref(),
            dry_run: false,
            key: None,
        }
    }

    /// Creates an empty segment in `org`.
    ///
    /// The name is trimmed and must be unique in the org by its key
    /// (see [`SegmentName`]). The new segment has `current_size` 0, source
    /// `"api"` unless [`NewSegment::source`] set another, and
    /// `created_at == updated_at`, truncated to microseconds.
    ///
    /// # Errors
    /// [`Error::Invalid`](crate::Error::Invalid) for a blank, too long or
    /// control-character name, a description over 2,000 characters or with
    /// NUL, or a bad source label; [`Error::DuplicateName`](crate::Error::DuplicateName)
    /// (status 404, as documented) when the org has a segment with the same
    /// name key; `Storage` on backend failure. Nothing is created on error.
    pub fn create(&self, org: &OrgId, new: NewSegment) -> Result<Segment> {
        traced!(
            "segments.create",
            Some(org),
            None::<SegmentId>,
            [],
            (|| {
                let stamp = self.stamp();
                let insert = self.checked_insert(new, stamp)?;
                let input = self.input("create", |f| {
                    f.insert(&insert);
                });
                self.keyed(org, stamp, input, &written_segment, |stamp| {
                    self.store.insert_segment(org, insert, stamp)
                })
            })()
        )
    }

    /// The org's segment whose name has the same key as `new`'s name, as it
    /// is, or else a new segment made from `new`: what an import or a sync
    /// job wants when it is handed a segment by name.
    ///
    /// An existing segment is returned unchanged (its description and
    /// source are not touched, and nothing is recorded in the ledger).
    /// Race-safe: calls racing with one name key, in this process or any
    /// other sharing the store, all return the same segment, and the ledger
    /// has one `Created` entry for it. Through
    /// [`with_idempotency_key`](Self::with_idempotency_key), the segment
    /// the first call returned, found or created, is what a retry returns.
    ///
    /// ```
    /// use segments_engine::{MemoryStore, NewSegment, OrgId, Segments};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// let made = segments.find_or_create(&org, NewSegment::new("Q1 Leads").description("first"))?;
    /// let found = segments.find_or_create(&org, NewSegment::new(" q1   leads ").description("second"))?;
    /// assert_eq!(found, made, "the same segment, its description unchanged");
    /// # Ok::<(), segments_engine::Error>(())
    /// ```
    ///
    /// # Errors
    /// `Invalid` for a name, description or source that [`create`](Self::create)
    /// would refuse (checked even when the segment exists, so a call's
    /// validity does not depend on the store's contents);
    /// `IdempotencyConflict` for a key used with other input; `Storage` on
    /// backend failure. Nothing is created on error.
    pub fn find_or_create(&self, org: &OrgId, new: NewSegment) -> Result<Segment> {
        traced!(
            "segments.find_or_create",
            Some(org),
            None::<SegmentId>,
            [],
            (|| {
                let stamp = self.stamp();
                let insert = self.checked_insert(new, stamp)?;
                let input = self.input("find_or_create", |f| {
                    f.insert(&insert);
                });
                self.found_or_created(
                    org,
                    stamp,
                    input,
                    || self.store.segment_by_key(org, insert.name.key()),
                    |stamp| self.store.insert_segment(org, insert.clone(), stamp),
                )
            })()
        )
    }

    /// `new`, checked, with an id: what a store inserts.
    pub(super) fn checked_insert(
        &self,
        new: NewSegment,
        stamp: Stamp<'_>,
    ) -> Result<SegmentInsert> {
        let (name, description, source) = new.into_parts();
        let name = SegmentName::parse_owned(name)?;
        if let Some(d) = &description {
            validate_description(d)?;
        }
        let source = match source {
            Some(s) => {
                validate_source(&s)?;
                s
            }
            None => DEFAULT_SOURCE.to_owned(),
        };
        Ok(SegmentInsert {
            id: self.ids.next_id(stamp.at),
            name,
            description,
            source,
        })
    }

    /// Reads a segment, with its exact `current_size` (O(1)).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown id or an
    /// id of another org; `Storage` on backend failure.
    pub fn get(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
        traced!(
            "segments.get",
            Some(org),
            Some(id),
            [],
            self.store.segment(org, id)
        )
    }

    /// Finds the segment whose name has the same key as `name` (so case,
    /// spacing and Unicode normalization do not matter).
    ///
    /// # Errors
    /// `Invalid` when `name` could not be a segment name; `Storage` on
    /// backend failure.
    pub fn find_by_name(&self, org: &OrgId, name: &str) -> Result<Option<Segment>> {
        traced!(
            "segments.find_by_name",
            Some(org),
            None::<SegmentId>,
            [],
            (|| {
                let name = SegmentName::parse(name)?;
                self.store.segment_by_key(org, name.key())
            })()
        )
    }

    /// Lists the org's segments in creation order, a page at a time.
    ///
    /// Pass the returned [`SegmentPage::next`] to [`PageOptions::after`] for
    /// the next page; it is `None` on the last page. The cost of a page does
    /// not depend on its depth.
    ///
    /// ```
    /// use segments_engine::{PageOptions, MemoryStore, NewSegment, OrgId, Segments};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// for name in ["a", "b", "c"] {
    ///     segments.create(&org, NewSegment::new(name))?;
    /// }
    /// let first = segments.list(&org, PageOptions::new().limit(2))?;
    /// assert_eq!(first.segments.len(), 2);
    /// let rest = segments.list(&org, PageOptions::new().after(first.next.unwrap()))?;
    /// assert_eq!(rest.segments[0].name, "c");
    /// assert!(rest.next.is_none());
    /// # Ok::<(), segments_engine::Error>(())
    /// ```
    ///
    /// # Errors
    /// `Invalid` (field `limit`) for a limit of 0 or over
    /// [`MAX_PAGE_LIMIT`]; `Storage` on backend failure.
    pub fn list(&self, org: &OrgId, options: PageOptions<SegmentCursor>) -> Result<SegmentPage> {
        traced!(
            "segments.list",
            Some(org),
            None::<SegmentId>,
            [],
            (|| {
                let limit = options.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
                check_limit(limit)?;
                let found = self
                    .store
                    .segments(org, Page::new(options.after, limit + 1))?;
                let (segments, next) = page(found, limit, Segment::cursor);
                Ok(SegmentPage { segments, next })
            })()
        )
    }

    /// Renames a segment. The new name follows the creation rules, uniqueness
    /// included; a segment may take a name with its own key (to change case
    /// or spacing). Moves `updated_at`.
    ///
    /// # Errors
    /// `Invalid` for a bad name; `NotFound`; `DuplicateName` when another
    /// segment of the org holds the key; `Storage`. Nothing changes on error.
    pub fn rename(&self, org: &OrgId, id: SegmentId, name: &str) -> Result<Segment> {
        traced!(
            "segments.rename",
            Some(org),
            Some(id),
            [],
            (|| {
                let name = SegmentName::parse(name)?;
                let input = self.input("rename", |f| {
                    f.id(id).text(name.as_str());
                });
                let change = SegmentChange::Rename(name);
                self.keyed(org, self.stamp(), input, &written_segment, |stamp| {
                    self.store.update_segment(org, id, &change, stamp)
                })
            })()
        )
    }

    /// Sets or clears (`None`) a segment's description. Moves `updated_at`.
    ///
    /// # Errors
    /// `Invalid` for a description over 2,000 characters or with NUL;
    /// `NotFound`; `Storage`. Nothing changes on error.
    pub fn set_description(
        &self,
        org: &OrgId,
        id: SegmentId,
        description: Option<&str>,
    ) -> Result<Segment> {
        traced!(
            "segments.set_description",
            Some(org),
            Some(id),
            [],
            (|| {
                if let Some(d) = description {
                    validate_description(d)?;
                }
                let input = self.input("describe", |f| {
                    f.id(id).maybe(description);
                });
                let change = SegmentChange::Describe(description.map(str::to_owned));
                self.keyed(org, self.stamp(), input, &written_segment, |stamp| {
                    self.store.update_segment(org, id, &change, stamp)
                })
            })()
        )
    }

    /// Deletes a segment with all its memberships. Its name is free again at
    /// once. Atomic.
    ///
    /// # Errors
    /// `NotFound` for an unknown id or another org's; `Storage`.
    pub fn delete(&self, org: &OrgId, id: SegmentId) -> Result<()> {
        traced!("segments.delete", Some(org), Some(id), [], {
            let input = self.input("delete", |f| {
                f.id(id);
            });
            let deleted = |w: Written<'_>| matches!(w, Written::Deleted).then_some(());
            self.keyed(org, self.stamp(), input, &deleted, |stamp| {
                self.store.delete_segment(org, id, stamp)
            })
        })
    }
}

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl<S: SegmentStore + 'static> Segments<S> {
    /// This service for async hosts: every call as an `async fn` that runs
    /// on Tokio's blocking pool (feature `tokio`; see
    /// [`AsyncSegments`](crate::AsyncSegments)).
    ///
    /// ```
    /// use segments_engine::{MemoryStore, NewSegment, OrgId, Segments};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> segments_engine::Result<()> {
    /// let segments = Segments::new(MemoryStore::new()).into_async();
    /// let org = OrgId::new("acme")?;
    /// let s = segments.create(&org, NewSegment::new("Watchlist")).await?;
    /// assert_eq!(s.current_size, 0);
    /// # Ok(()) }
    /// ```
    pub fn into_async(self) -> crate::AsyncSegments<S> {
        crate::AsyncSegments::new(self)
    }
}

/// The outcome of a keyed write that returns the segment it wrote.
fn written_segment(written: Written<'_>) -> Option<Segment> {
    match written {
        Written::Segment(s) => Some(s.clone()),
        _ => None,
    }
}

/// A page from `limit + 1` items asked of a store: the one more than asked
/// tells whether another page exists, and the page's last item gives the
/// cursor to it.
fn page<T, C>(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> C) -> (Vec<T>, Option<C>) {
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(cursor);
        (items, next)
    } else {
        (items, None)
    }
}

fn check_batch(len: usize) -> Result<()> {
    if len > MAX_PIDS_PER_CALL {
        return Err(Error::TooLarge {
            what: "minerva_pids",
            limit: MAX_PIDS_PER_CALL,
        });
    }
    Ok(())
}

fn check_limit(limit: usize) -> Result<(), ValidationError> {
    if (1..=MAX_PAGE_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(ValidationError::new(
            Field::Limit,
            Rule::OutOfRange {
                min: 1,
                max: Some(MAX_PAGE_LIMIT as u64),
            },
        ))
    }
}
