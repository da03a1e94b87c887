//! [`Segments`]: the service every host calls.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock::{Clock, IdGenerator, SystemClock, UuidV7, truncate_to_micros};
use crate::domain::limits::{
    DEFAULT_PAGE_LIMIT, DEFAULT_SOURCE, MAX_DEATHS_PER_CALL, MAX_PAGE_LIMIT, MAX_PIDS_PER_CALL,
    MEMBERS_PAGE_SIZE,
};
use crate::domain::member::SplitPids;
use crate::domain::name::{validate_description, validate_source};
use crate::error::{Field, Rule, ValidationError};
use crate::{
    AddOutcome, ChangePage, DeathCursor, DeathRecord, DeathReport, DeathSignals, DeathsIngested,
    Error, ListOptions, Member, MemberList, MemberOptions, MembersAsOf, MembersPage, NewSegment,
    OrgId, PersonDirectory, Pid, RejectedDeath, RemoveOutcome, Result, Segment, SegmentChange,
    SegmentId, SegmentInsert, SegmentName, SegmentPage, SegmentStore, Stamp,
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
    request_id: Option<Arc<str>>,
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

    /// The same service, for one request: every change it makes is recorded
    /// in the ledger with `request_id`. Cheap (it borrows the store).
    ///
    /// ```
    /// use segments::{ChangeKind, MemoryStore, NewSegment, OrgId, Segments};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// segments.for_request("req_seg123").create(&org, NewSegment::new("Tracked"))?;
    /// let feed = segments.changes_since(&org, 0, 10)?;
    /// assert_eq!(feed.changes[0].request_id.as_deref(), Some("req_seg123"));
    /// assert!(matches!(feed.changes[0].kind, ChangeKind::Created { .. }));
    /// # Ok::<(), segments::Error>(())
    /// ```
    pub fn for_request(&self, request_id: impl Into<String>) -> Segments<&S> {
        Segments {
            store: &self.store,
            clock: Arc::clone(&self.clock),
            ids: Arc::clone(&self.ids),
            directory: self.directory.clone(),
            request_id: Some(Arc::from(request_id.into())),
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

    fn stamp(&self) -> Stamp<'_> {
        Stamp {
            at: self.now(),
            request_id: self.request_id.as_deref(),
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
        let stamp = self.stamp();
        let insert = SegmentInsert {
            id: self.ids.next_id(stamp.at),
            name,
            description,
            source,
        };
        self.store.insert_segment(org, insert, stamp)
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
        let found = self.store.segments(org, options.after, limit + 1)?;
        let (segments, next) = page(found, limit, Segment::cursor);
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
            .update_segment(org, id, &SegmentChange::Rename(name), self.stamp())
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
        self.store.update_segment(org, id, &change, self.stamp())
    }

    /// Deletes a segment with all its memberships. Its name is free again at
    /// once. Atomic.
    ///
    /// # Errors
    /// `NotFound` for an unknown id or another org's; `Storage`.
    pub fn delete(&self, org: &OrgId, id: SegmentId) -> Result<()> {
        self.store.delete_segment(org, id, self.stamp())
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
        let done = self.store.add_members(org, id, &valid, self.stamp())?;
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
            .remove_members(org, id, &split.valid, self.stamp())?;
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
        let found = self
            .store
            .members(org, id, options.after.as_ref(), limit + 1)?;
        let (members, next) = page(found, limit, Member::cursor);
        Ok(MemberList { members, next })
    }
}

impl<S: SegmentStore> Segments<S> {
    /// The org's change feed: up to `limit` ledger entries after sequence
    /// `after` (0 for the beginning), in order. Poll with the returned
    /// [`ChangePage::next`] and no entry is missed or seen twice, whatever
    /// else writes in between. A page costs the same however long the ledger.
    ///
    /// # Errors
    /// `Invalid` (field `limit`) for a limit of 0 or over
    /// [`MAX_PAGE_LIMIT`]; `Invalid` (field `cursor`) when `after` is past
    /// the end of the org's ledger (a cursor from another store, or from a
    /// database since restored from an older copy); `Storage`.
    pub fn changes_since(&self, org: &OrgId, after: u64, limit: usize) -> Result<ChangePage> {
        check_limit(limit)?;
        let changes = self.store.changes_since(org, after, limit)?;
        // Nothing new: make sure `after` is a place in this ledger, not a
        // cursor of another store or org, which would skip what comes next.
        if changes.is_empty()
            && after > 0
            && self.store.changes_since(org, after - 1, 1)?.is_empty()
        {
            return Err(ValidationError::new(
                Field::Cursor,
                Rule::Malformed {
                    expected: "a sequence number this org's ledger has reached",
                },
            )
            .into());
        }
        let next = changes.last().map_or(after, |c| c.seq);
        Ok(ChangePage { changes, next })
    }

    /// One person's joins and leaves across the org's segments, deleted ones
    /// included, in order.
    ///
    /// # Errors
    /// `Invalid` (field `minerva_pids`) for a malformed PID; `Storage`.
    pub fn timeline(&self, org: &OrgId, pid: &str) -> Result<Vec<crate::Change>> {
        self.store.timeline(org, &Pid::parse(pid)?)
    }

    /// How many members the segment had at `at`: after every ledger entry
    /// recorded at or before that time. 0 before its first member joined.
    /// A binary search over the ledger's sequence numbers and one index
    /// read: the cost grows with the logarithm of the ledger, never with its
    /// length.
    ///
    /// # Errors
    /// `NotFound` for an unknown, deleted or other org's segment; `Storage`.
    pub fn size_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64> {
        self.store.size_as_of(org, id, truncate_to_micros(at))
    }

    /// The members the segment had at `at`, in PID order, a page of up to
    /// `limit` (1 to [`MAX_PAGE_LIMIT`]) after `after`.
    ///
    /// Cost: `SqliteStore` walks the segment's membership rows in PID order
    /// from `after` and stops at a full page; for each person who had joined
    /// by `at` it looks up their last entry as of `at` (people who first
    /// joined later are passed over without a lookup). `MemoryStore` looks
    /// at everyone who ever joined the segment, on every page, and walks the
    /// history of those who had joined by `at`.
    ///
    /// # Errors
    /// `Invalid` for a bad limit or a malformed `after`; `NotFound`;
    /// `Storage`.
    pub fn members_as_of(
        &self,
        org: &OrgId,
        id: SegmentId,
        at: DateTime<Utc>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<MembersAsOf> {
        check_limit(limit)?;
        let after = after.map(Pid::parse).transpose()?;
        let found =
            self.store
                .members_as_of(org, id, truncate_to_micros(at), after.as_ref(), limit + 1)?;
        let (members, next) = page(found, limit, |m| m.pid.clone());
        Ok(MembersAsOf { members, next })
    }

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
        let (n_inserted, n_updated) = self.store.upsert_deaths(&records, now)?;
        Ok(DeathsIngested {
            n_inserted,
            n_updated,
            rejected,
        })
    }

    /// The death records of the segment's current members, in the order they
    /// entered the death feed: the documented `signals/deaths` answer.
    ///
    /// # Errors
    /// `NotFound`; `Storage`.
    pub fn death_signals(&self, org: &OrgId, id: SegmentId) -> Result<Vec<DeathRecord>> {
        let signals = self
            .store
            .death_signals(org, id, DeathCursor::START, usize::MAX)?;
        Ok(signals.into_iter().map(|(_, record)| record).collect())
    }

    /// For monitoring: the death records of the segment's current members
    /// that entered the death feed after `since`, up to `limit` (1 to
    /// [`MAX_PAGE_LIMIT`]). Keep the returned [`DeathSignals::next`] and pass
    /// it next time to see only new records. An updated record does not come
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
        since: DeathCursor,
        limit: usize,
    ) -> Result<DeathSignals> {
        check_limit(limit)?;
        let signals = self.store.death_signals(org, id, since, limit)?;
        let next = signals.last().map_or(since, |(cursor, _)| *cursor);
        Ok(DeathSignals {
            records: signals.into_iter().map(|(_, record)| record).collect(),
            next,
        })
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
