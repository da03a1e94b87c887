//! [`Segments`]: the service every host calls.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock::{Clock, IdGenerator, SystemClock, UuidV7, truncate_to_micros};
use crate::domain::limits::{
    DEFAULT_PAGE_LIMIT, DEFAULT_SOURCE, MAX_PAGE_LIMIT, MAX_PIDS_PER_CALL, MEMBERS_PAGE_SIZE,
};
use crate::domain::member::SplitPids;
use crate::domain::name::{validate_description, validate_source};
use crate::error::{Field, Rule, ValidationError};
use crate::{
    AddOutcome, Error, ListOptions, Member, MemberList, MemberOptions, MembersPage, NewSegment,
    OrgId, PersonDirectory, RemoveOutcome, Result, Segment, SegmentChange, SegmentId,
    SegmentInsert, SegmentName, SegmentPage, SegmentStore,
};

/// The segments service: validates input, stamps times and ids, and calls
/// the store.
///
/// `Segments` is cheap to share: put it in an `Arc`, or clone it when the
/// store is `Clone` (both backends are; clones share one state). All methods
/// are synchronous; async hosts call them from `spawn_blocking`.
///
/// ```
/// use segments::{Error, NewSegment, OrgId, Segments, SqliteStore};
/// let segments = Segments::new(SqliteStore::open_in_memory()?);
/// let org = OrgId::new("acme")?;
/// let s = segments.create(&org, NewSegment::new("Q1 2024 Enterprise Prospects")
///     .description("500+ employees, tech"))?;
/// assert_eq!(s.current_size, 0);
/// assert_eq!(s.source, "api");
/// assert_eq!(segments.get(&org, s.id)?, s);
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Segments<S> {
    store: S,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    directory: Option<Arc<dyn PersonDirectory>>,
}

impl<S: SegmentStore> Segments<S> {
    /// A service over `store`, with the system clock and UUID v7 ids.
    pub fn new(store: S) -> Self {
        Self {
            store,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7::shared()),
            directory: None,
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
    /// know are reported in [`AddOutcome::invalid_pids`] and not added.
    /// Without one, every well-formed PID is accepted.
    pub fn with_person_directory(mut self, directory: impl PersonDirectory + 'static) -> Self {
        self.directory = Some(Arc::new(directory));
        self
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
        let (name, description, source) = new.into_parts();
        let name = SegmentName::parse(&name)?;
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
        let created_at = self.now();
        self.store.insert_segment(
            org,
            SegmentInsert {
                id: self.ids.next_id(created_at),
                name,
                description,
                source,
                created_at,
            },
        )
    }

    /// Reads a segment, with its exact `current_size` (O(1)).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown id or an
    /// id of another org; `Storage` on backend failure.
    pub fn get(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
        self.store.segment(org, id)
    }

    /// Finds the segment whose name has the same key as `name` (so case,
    /// spacing and Unicode normalization do not matter).
    ///
    /// # Errors
    /// `Invalid` when `name` could not be a segment name; `Storage` on
    /// backend failure.
    pub fn find_by_name(&self, org: &OrgId, name: &str) -> Result<Option<Segment>> {
        let name = SegmentName::parse(name)?;
        self.store.segment_by_key(org, name.key())
    }

    /// Lists the org's segments in creation order, a page at a time.
    ///
    /// Pass the returned [`SegmentPage::next`] to [`ListOptions::after`] for
    /// the next page; it is `None` on the last page. The cost of a page does
    /// not depend on its depth.
    ///
    /// ```
    /// use segments::{ListOptions, MemoryStore, NewSegment, OrgId, Segments};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// for name in ["a", "b", "c"] {
    ///     segments.create(&org, NewSegment::new(name))?;
    /// }
    /// let first = segments.list(&org, ListOptions::new().limit(2))?;
    /// assert_eq!(first.segments.len(), 2);
    /// let rest = segments.list(&org, ListOptions::new().after(first.next.unwrap()))?;
    /// assert_eq!(rest.segments[0].name, "c");
    /// assert!(rest.next.is_none());
    /// # Ok::<(), segments::Error>(())
    /// ```
    ///
    /// # Errors
    /// `Invalid` (field `limit`) for a limit of 0 or over
    /// [`MAX_PAGE_LIMIT`]; `Storage` on backend failure.
    pub fn list(&self, org: &OrgId, options: ListOptions) -> Result<SegmentPage> {
        let limit = options.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
        check_limit(limit)?;
        // One more than asked tells whether another page exists.
        let mut segments = self.store.segments(org, options.after, limit + 1)?;
        let next = if segments.len() > limit {
            segments.truncate(limit);
            segments.last().map(Segment::cursor)
        } else {
            None
        };
        Ok(SegmentPage { segments, next })
    }

    /// Renames a segment. The new name follows the creation rules, uniqueness
    /// included; a segment may take a name with its own key (to change case
    /// or spacing). Moves `updated_at`.
    ///
    /// # Errors
    /// `Invalid` for a bad name; `NotFound`; `DuplicateName` when another
    /// segment of the org holds the key; `Storage`. Nothing changes on error.
    pub fn rename(&self, org: &OrgId, id: SegmentId, name: &str) -> Result<Segment> {
        let name = SegmentName::parse(name)?;
        self.store
            .update_segment(org, id, &SegmentChange::Rename(name), self.now())
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
        if let Some(d) = description {
            validate_description(d)?;
        }
        let change = SegmentChange::Describe(description.map(str::to_owned));
        self.store.update_segment(org, id, &change, self.now())
    }

    /// Deletes a segment with all its memberships. Its name is free again at
    /// once. Atomic.
    ///
    /// # Errors
    /// `NotFound` for an unknown id or another org's; `Storage`.
    pub fn delete(&self, org: &OrgId, id: SegmentId) -> Result<()> {
        self.store.delete_segment(org, id)
    }
}

impl<S: SegmentStore> Segments<S> {
    /// Adds people to a segment.
    ///
    /// Each PID that is not a member joins; one that was removed joins again
    /// with its original `first_added_at`; one that is a member already is
    /// counted in `n_redundant_additions` and its `last_added_at` moves, as
    /// do repeats of a PID within the call. Malformed PIDs, and PIDs the
    /// [`PersonDirectory`] does not know, are listed in `invalid_pids` and
    /// skipped: they never fail the call.
    ///
    /// Atomic: either every valid PID of the call is applied, with
    /// `current_size`, or none is.
    ///
    /// ```
    /// use segments::{MemoryStore, NewSegment, OrgId, Segments};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// let s = segments.create(&org, NewSegment::new("Prospects"))?;
    /// let out = segments.add_members(&org, s.id, &["p-a1b2c3d4e5f6", "p-x9y8z7w6v5u4", "p-bad!"])?;
    /// assert_eq!((out.n_added, out.n_redundant_additions, out.new_current_size), (2, 0, 2));
    /// assert_eq!(out.invalid_pids, ["p-bad!"]);
    /// let again = segments.add_members(&org, s.id, &["p-a1b2c3d4e5f6"])?;
    /// assert_eq!((again.n_added, again.n_redundant_additions), (0, 1));
    /// # Ok::<(), segments::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::TooLarge`] for more than [`MAX_PIDS_PER_CALL`] PIDs;
    /// an error of the person directory (asked before the store, when the
    /// call holds a well-formed PID); `NotFound` for an unknown id or another
    /// org's; `Storage`. Nothing changes on error.
    pub fn add_members<P: AsRef<str>>(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[P],
    ) -> Result<AddOutcome> {
        check_batch(pids.len())?;
        let SplitPids {
            mut valid,
            mut invalid,
        } = SplitPids::new(pids);
        if let Some(directory) = self.directory.as_ref().filter(|_| !valid.is_empty()) {
            let known = directory.known(org, &valid)?;
            if known.len() != valid.len() {
                return Err(Error::storage(format!(
                    "the person directory answered for {} PIDs out of {}",
                    known.len(),
                    valid.len()
                )));
            }
            let mut known = known.into_iter();
            let mut unknown = foldhash::HashSet::default();
            valid.retain(|pid| {
                let keep = known.next().unwrap_or(false);
                if !keep && unknown.insert(pid.clone()) {
                    invalid.push(pid.as_str().to_owned());
                }
                keep
            });
        }
        let done = self.store.add_members(org, id, &valid, self.now())?;
        Ok(AddOutcome {
            n_added: done.n_added,
            n_redundant_additions: done.n_redundant,
            invalid_pids: invalid,
            new_current_size: done.new_current_size,
        })
    }

    /// Removes people from a segment.
    ///
    /// Well-formed PIDs that are members stop being members (their history
    /// is kept: re-added later, they get their original `first_added_at`
    /// back); well-formed PIDs that are not members are neither counted nor
    /// an error; malformed PIDs are listed in `invalid_pids`. Atomic.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for more than [`MAX_PIDS_PER_CALL`] PIDs;
    /// `NotFound`; `Storage`. Nothing changes on error.
    pub fn remove_members<P: AsRef<str>>(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[P],
    ) -> Result<RemoveOutcome> {
        check_batch(pids.len())?;
        let split = SplitPids::new(pids);
        let done = self
            .store
            .remove_members(org, id, &split.valid, self.now())?;
        Ok(RemoveOutcome {
            n_deleted: done.n_deleted,
            invalid_pids: split.invalid,
            new_current_size: done.new_current_size,
        })
    }

    /// The documented page API: page `page` (from 1) of the segment's
    /// members, [`MEMBERS_PAGE_SIZE`] to a page, in order of
    /// `first_added_at`, then PID. A page past the end is empty, with
    /// `list_continues` false. `total_count` is the segment's
    /// `current_size`, read in the same instant as the page.
    ///
    /// The cost of a page grows with its number; to walk a large segment,
    /// use the cursor API, [`Segments::members`].
    ///
    /// # Errors
    /// `Invalid` (field `page`) for page 0; `NotFound`; `Storage`.
    pub fn members_page(&self, org: &OrgId, id: SegmentId, page: u64) -> Result<MembersPage> {
        if page == 0 {
            return Err(
                ValidationError::new(Field::Page, Rule::OutOfRange { min: 1, max: None }).into(),
            );
        }
        let offset = (page - 1).saturating_mul(MEMBERS_PAGE_SIZE as u64);
        let (items, total_count) =
            self.store
                .members_at_offset(org, id, offset, MEMBERS_PAGE_SIZE)?;
        let list_continues = offset.saturating_add(items.len() as u64) < total_count;
        Ok(MembersPage {
            items,
            total_count,
            page,
            list_continues,
        })
    }

    /// The cursor API: up to `limit` members (default
    /// [`DEFAULT_PAGE_LIMIT`], at most [`MAX_PAGE_LIMIT`]) in order of
    /// `first_added_at`, then PID, after the cursor. A page costs the same at
    /// any depth. Pass [`MemberList::next`] to [`MemberOptions::after`] for
    /// the next page; it is `None` on the last.
    ///
    /// ```
    /// use segments::{MemberOptions, MemoryStore, NewSegment, OrgId, Segments};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// let s = segments.create(&org, NewSegment::new("All"))?;
    /// segments.add_members(&org, s.id, &["p-c", "p-a", "p-b"])?;
    /// let first = segments.members(&org, s.id, MemberOptions::new().limit(2))?;
    /// assert_eq!(first.members[0].pid.as_str(), "p-a");
    /// let rest = segments.members(&org, s.id, MemberOptions::new().after(first.next.unwrap()))?;
    /// assert_eq!(rest.members[0].pid.as_str(), "p-c");
    /// assert!(rest.next.is_none());
    /// # Ok::<(), segments::Error>(())
    /// ```
    ///
    /// # Errors
    /// `Invalid` (field `limit`) for a limit of 0 or over the maximum;
    /// `NotFound`; `Storage`.
    pub fn members(
        &self,
        org: &OrgId,
        id: SegmentId,
        options: MemberOptions,
    ) -> Result<MemberList> {
        let limit = options.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
        check_limit(limit)?;
        let mut members = self
            .store
            .members(org, id, options.after.as_ref(), limit + 1)?;
        let next = if members.len() > limit {
            members.truncate(limit);
            members.last().map(Member::cursor)
        } else {
            None
        };
        Ok(MemberList { members, next })
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
