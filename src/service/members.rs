//! Members: adds, removals, and the two ways to list them.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::trace::traced;
use super::{Segments, check_batch, check_limit, page};
use crate::domain::limits::{
    DEFAULT_PAGE_LIMIT, IMPORT_BATCH_SIZE, MAX_IDEMPOTENCY_KEY_BYTES, MAX_IMPORT_INVALID_REPORTED,
    MEMBERS_PAGE_SIZE,
};
use crate::domain::member::SplitPids;
use crate::error::{Field, Rule, ValidationError};
use crate::store::{MemberSlice, MemberStart, Page, StoreAddOutcome, StoreRemoveOutcome, Written};
use crate::{
    AddOutcome, Error, ImportOutcome, InvalidPid, Member, MemberCursor, MemberList, MembersPage,
    OrgId, PageOptions, RemoveOutcome, Result, SegmentId, SegmentStore,
};

impl<S: SegmentStore> Segments<S> {
    /// Adds people to a segment.
    ///
    /// Each PID that is not a member joins; one that was removed joins again
    /// with its original `first_added_at`; one that is a member already is
    /// counted in `n_redundant_additions` and its `last_added_at` moves, as
    /// do repeats of a PID within the call. Malformed PIDs, and PIDs the
    /// [`PersonDirectory`](crate::PersonDirectory) does not know, are listed
    /// in `invalid_pids` and skipped: they never fail the call.
    ///
    /// Atomic: either every valid PID of the call is applied, with
    /// `current_size`, or none is.
    ///
    /// ```
    /// use segments_engine::{MemoryStore, NewSegment, OrgId, Segments};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// let s = segments.create(&org, NewSegment::new("Prospects"))?;
    /// let out = segments.add_members(&org, s.id, &["p-a1b2c3d4e5f6", "p-x9y8z7w6v5u4", "p-bad!"])?;
    /// assert_eq!((out.n_added, out.n_redundant_additions, out.new_current_size), (2, 0, 2));
    /// assert_eq!(out.invalid_pids, ["p-bad!"]);
    /// let again = segments.add_members(&org, s.id, &["p-a1b2c3d4e5f6"])?;
    /// assert_eq!((again.n_added, again.n_redundant_additions), (0, 1));
    /// # Ok::<(), segments_engine::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::TooLarge`] for more than
    /// [`MAX_PIDS_PER_CALL`](crate::limits::MAX_PIDS_PER_CALL) PIDs; an
    /// error of the person directory (asked before the store, when the call
    /// holds a well-formed PID); `NotFound` for an unknown id or another
    /// org's; `Storage`. Nothing changes on error.
    pub fn add_members<P: AsRef<str>>(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[P],
    ) -> Result<AddOutcome> {
        traced!(
            "segments.add_members",
            Some(org),
            Some(id),
            [n_pids = pids.len()],
            self.add_members_with(org, id, pids, false)
        )
    }

    /// Adds any number of people to a segment, streaming them in batches of
    /// [`IMPORT_BATCH_SIZE`] (10,000): what an import of a file of PIDs
    /// calls. Memory stays bounded by one batch, however long `pids` is.
    ///
    /// **Each batch is atomic; the import as a whole is not.** When a batch
    /// fails, the batches before it stay applied and the error is returned.
    /// Make an import resumable with an idempotency key: under
    /// [`with_idempotency_key(k)`](Self::with_idempotency_key), batch `i`
    /// (from 0) is made with the key `k/i`, so rerunning the same import
    /// with the same key after a crash or an error replays the batches that
    /// committed (applying nothing again, and counting them as they were
    /// counted the first time) and applies the rest: the ledger records each
    /// PID's join once.
    ///
    /// Counts add up: every PID read is counted once, as added, redundant
    /// or invalid (see [`ImportOutcome`]); malformed PIDs never fail the
    /// import.
    ///
    /// ```
    /// use segments_engine::{MemoryStore, NewSegment, OrgId, Segments};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// let s = segments.find_or_create(&org, NewSegment::new("Leads"))?;
    /// let lines = (0..25_000).map(|i| if i % 1_000 == 7 { "bad!".to_owned() } else { format!("p-{:012x}", i % 20_000) });
    /// let out = segments.with_idempotency_key("import-7").import_members(&org, s.id, lines)?;
    /// assert_eq!(out.n_batches, 3);
    /// assert_eq!(out.n_invalid, 25, "every malformed line counts");
    /// assert_eq!(out.invalid_pids[0].position, 7);
    /// assert_eq!(out.n_added + out.n_redundant_additions + out.n_invalid, 25_000);
    /// assert_eq!(out.new_current_size, 19_980);
    /// # Ok::<(), segments_engine::Error>(())
    /// ```
    ///
    /// # Errors
    /// `Invalid` (field `idempotency_key`) for a key that leaves no room
    /// for the batch suffix (`k` may be at most
    /// [`MAX_IDEMPOTENCY_KEY_BYTES`](crate::limits::MAX_IDEMPOTENCY_KEY_BYTES)
    /// − 21 bytes); `NotFound`; `IdempotencyConflict` when a batch's key was
    /// used with other input (the same key over another file); `Storage`;
    /// an error of the person directory. Batches before the failing one
    /// stay applied.
    pub fn import_members<I>(&self, org: &OrgId, id: SegmentId, pids: I) -> Result<ImportOutcome>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        traced!(
            "segments.import_members",
            Some(org),
            Some(id),
            [],
            self.import(org, id, pids.into_iter())
        )
    }

    fn import<I>(&self, org: &OrgId, id: SegmentId, mut pids: I) -> Result<ImportOutcome>
    where
        I: Iterator,
        I::Item: AsRef<str>,
    {
        // Room for "/" and the batch number (u64::MAX has 20 digits).
        const SUFFIX: usize = 21;
        if let Some(key) = self.idempotency_key.as_deref()
            && key.len() + SUFFIX > MAX_IDEMPOTENCY_KEY_BYTES
        {
            return Err(ValidationError::new(
                Field::IdempotencyKey,
                Rule::TooLong {
                    max: MAX_IDEMPOTENCY_KEY_BYTES - SUFFIX,
                    unit: "bytes",
                },
            )
            .into());
        }
        let mut out = ImportOutcome::default();
        let mut batch: Vec<I::Item> = Vec::with_capacity(IMPORT_BATCH_SIZE);
        let mut position: u64 = 0;
        loop {
            batch.clear();
            batch.extend(pids.by_ref().take(IMPORT_BATCH_SIZE));
            if batch.is_empty() {
                break;
            }
            let mut view = self.view();
            if let Some(key) = &self.idempotency_key {
                view.idempotency_key = Some(format!("{key}/{}", out.n_batches).into());
            }
            let added = view.add_members(org, id, &batch)?;
            out.n_batches += 1;
            out.n_added += added.n_added;
            out.n_redundant_additions += added.n_redundant_additions;
            out.new_current_size = added.new_current_size;
            if !added.invalid_pids.is_empty() {
                let invalid: HashSet<&str> =
                    added.invalid_pids.iter().map(String::as_str).collect();
                for (at, pid) in (position..).zip(&batch) {
                    let pid = pid.as_ref();
                    if invalid.contains(pid) {
                        out.n_invalid += 1;
                        if out.invalid_pids.len() < MAX_IMPORT_INVALID_REPORTED {
                            out.invalid_pids.push(InvalidPid {
                                position: at,
                                pid: pid.to_owned(),
                            });
                        }
                    }
                }
            }
            position += batch.len() as u64;
            if batch.len() < IMPORT_BATCH_SIZE {
                break;
            }
        }
        if out.n_batches == 0 {
            out.new_current_size = self.store.segment(org, id)?.current_size;
        }
        Ok(out)
    }

    /// [`add_members`](Self::add_members), or its dry run.
    pub(super) fn add_members_with<P: AsRef<str>>(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[P],
        dry_run: bool,
    ) -> Result<AddOutcome> {
        check_batch(pids.len())?;
        let mut split = SplitPids::new(pids);
        if let Some(directory) = self.directory.as_ref().filter(|_| !split.valid.is_empty()) {
            let known = directory.known(org, &split.valid)?;
            if known.len() != split.valid.len() {
                return Err(Error::storage(format!(
                    "the person directory answered for {} PIDs out of {}",
                    known.len(),
                    split.valid.len()
                )));
            }
            split.retain_known(&known);
        }
        let added = |done: &StoreAddOutcome| AddOutcome {
            n_added: done.n_added,
            n_redundant_additions: done.n_redundant_additions + split.n_repeats(),
            invalid_pids: split.invalid.clone(),
            new_current_size: done.new_current_size,
        };
        if dry_run {
            let done = self
                .store
                .add_members(org, id, &split.valid, self.dry_stamp())?;
            return Ok(added(&done));
        }
        let input = self.input("add_members", |f| {
            f.id(id).texts(pids);
        });
        let outcome = |w: Written<'_>| match w {
            Written::Added(done) => Some(added(done)),
            _ => None,
        };
        self.keyed(org, self.stamp(), input, &outcome, |stamp| {
            let done = self.store.add_members(org, id, &split.valid, stamp)?;
            Ok(added(&done))
        })
    }

    /// Removes people from a segment.
    ///
    /// Well-formed PIDs that are members stop being members (their history
    /// is kept: re-added later, they get their original `first_added_at`
    /// back); well-formed PIDs that are not members, and repeats, are
    /// neither counted nor an error; malformed PIDs are listed in
    /// `invalid_pids`. Atomic.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for more than
    /// [`MAX_PIDS_PER_CALL`](crate::limits::MAX_PIDS_PER_CALL) PIDs;
    /// `NotFound`; `Storage`. Nothing changes on error.
    pub fn remove_members<P: AsRef<str>>(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[P],
    ) -> Result<RemoveOutcome> {
        traced!(
            "segments.remove_members",
            Some(org),
            Some(id),
            [n_pids = pids.len()],
            self.remove_members_with(org, id, pids, false)
        )
    }

    /// [`remove_members`](Self::remove_members), or its dry run.
    pub(super) fn remove_members_with<P: AsRef<str>>(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[P],
        dry_run: bool,
    ) -> Result<RemoveOutcome> {
        check_batch(pids.len())?;
        let split = SplitPids::new(pids);
        let removed = |done: &StoreRemoveOutcome| RemoveOutcome {
            n_deleted: done.n_deleted,
            invalid_pids: split.invalid.clone(),
            new_current_size: done.new_current_size,
        };
        if dry_run {
            let done = self
                .store
                .remove_members(org, id, &split.valid, self.dry_stamp())?;
            return Ok(removed(&done));
        }
        let input = self.input("remove_members", |f| {
            f.id(id).texts(pids);
        });
        let outcome = |w: Written<'_>| match w {
            Written::Removed(done) => Some(removed(done)),
            _ => None,
        };
        self.keyed(org, self.stamp(), input, &outcome, |stamp| {
            let done = self.store.remove_members(org, id, &split.valid, stamp)?;
            Ok(removed(&done))
        })
    }

    /// The documented page API: page `page` (from 1) of the segment's
    /// members, [`MEMBERS_PAGE_SIZE`] to a page, in order of
    /// `first_added_at`, then PID. A page past the end is empty, with
    /// `list_continues` false. `total_count` is the segment's
    /// `current_size`, read in the same instant as the page.
    ///
    /// A client that walks the pages in order pays about the same for each
    /// page: the service remembers where each page it served ended (for a
    /// few thousand segment pages at a time, in this process), and while the
    /// segment's members stay the same, the next page starts there rather
    /// than counting members from the start. A page asked for out of order,
    /// or after the members changed, is counted from the start, at a cost
    /// that grows with its number. The cursor API,
    /// [`Segments::members`], costs the same at any depth in every case.
    ///
    /// # Errors
    /// `Invalid` (field `page`) for page 0; `NotFound`; `Storage`.
    pub fn members_page(&self, org: &OrgId, id: SegmentId, page: u64) -> Result<MembersPage> {
        traced!(
            "segments.members_page",
            Some(org),
            Some(id),
            [page = page],
            (|| {
                if page == 0 {
                    return Err(ValidationError::new(
                        Field::Page,
                        Rule::OutOfRange { min: 1, max: None },
                    )
                    .into());
                }
                let offset = (page - 1).saturating_mul(MEMBERS_PAGE_SIZE as u64);
                let slice = self.member_page_at(org, id, offset)?;
                let list_continues =
                    offset.saturating_add(slice.members.len() as u64) < slice.current_size;
                if let Some(last) = slice.members.last().filter(|_| list_continues) {
                    self.page_hints.remember(
                        org,
                        id,
                        offset + slice.members.len() as u64,
                        slice.members_seq,
                        last.cursor(),
                    );
                }
                Ok(MembersPage {
                    items: slice.members,
                    total_count: slice.current_size,
                    page,
                    list_continues,
                })
            })()
        )
    }

    /// The page at `offset`: from where an earlier page ended if the
    /// members have not changed since, else counted from the start.
    fn member_page_at(&self, org: &OrgId, id: SegmentId, offset: u64) -> Result<MemberSlice> {
        if let Some((members_seq, cursor)) = self.page_hints.get(org, id, offset) {
            let slice = self.store.members(
                org,
                id,
                Page::new(MemberStart::After(&cursor), MEMBERS_PAGE_SIZE),
            )?;
            if slice.members_seq == members_seq {
                return Ok(slice);
            }
        }
        self.store.members(
            org,
            id,
            Page::new(MemberStart::Offset(offset), MEMBERS_PAGE_SIZE),
        )
    }

    /// The cursor API: up to `limit` members (default
    /// [`DEFAULT_PAGE_LIMIT`], at most
    /// [`MAX_PAGE_LIMIT`](crate::limits::MAX_PAGE_LIMIT)) in order of
    /// `first_added_at`, then PID, after the cursor. A page costs the same at
    /// any depth. Pass [`MemberList::next`] to [`PageOptions::after`] for
    /// the next page; it is `None` on the last.
    ///
    /// ```
    /// use segments_engine::{PageOptions, MemoryStore, NewSegment, OrgId, Segments};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// let s = segments.create(&org, NewSegment::new("All"))?;
    /// segments.add_members(&org, s.id, &["p-c", "p-a", "p-b"])?;
    /// let first = segments.members(&org, s.id, PageOptions::new().limit(2))?;
    /// assert_eq!(first.members[0].pid.as_str(), "p-a");
    /// let rest = segments.members(&org, s.id, PageOptions::new().after(first.next.unwrap()))?;
    /// assert_eq!(rest.members[0].pid.as_str(), "p-c");
    /// assert!(rest.next.is_none());
    /// # Ok::<(), segments_engine::Error>(())
    /// ```
    ///
    /// # Errors
    /// `Invalid` (field `limit`) for a limit of 0 or over the maximum;
    /// `NotFound`; `Storage`.
    pub fn members(
        &self,
        org: &OrgId,
        id: SegmentId,
        options: PageOptions<MemberCursor>,
    ) -> Result<MemberList> {
        traced!(
            "segments.members",
            Some(org),
            Some(id),
            [],
            (|| {
                let limit = options.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
                check_limit(limit)?;
                let from = options
                    .after
                    .as_ref()
                    .map_or(MemberStart::FIRST, MemberStart::After);
                let found = self.store.members(org, id, Page::new(from, limit + 1))?;
                let (members, next) = page(found.members, limit, Member::cursor);
                Ok(MemberList { members, next })
            })()
        )
    }
}

/// How many page ends [`PageHints`] keeps before it starts over.
const MAX_PAGE_HINTS: usize = 4_096;

/// Where pages of the documented page API ended: for (org, segment, offset
/// of the next page), the segment's `members_seq` when the page was read
/// and the cursor after its last member. Shared by a service's clones and
/// its [`for_request`](Segments::for_request) views.
#[derive(Debug, Default)]
pub(super) struct PageHints {
    ends: Mutex<HashMap<PagePlace, (u64, MemberCursor)>>,
}

/// A page of a segment: its org, its id, and the offset it starts at.
type PagePlace = (OrgId, SegmentId, u64);

impl PageHints {
    fn get(&self, org: &OrgId, id: SegmentId, offset: u64) -> Option<(u64, MemberCursor)> {
        let ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        ends.get(&(org.clone(), id, offset)).cloned()
    }

    fn remember(
        &self,
        org: &OrgId,
        id: SegmentId,
        offset: u64,
        members_seq: u64,
        cursor: MemberCursor,
    ) {
        let mut ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a service serving very many walks starts over now and
        // then (a forgotten hint only costs one counted page).
        if ends.len() >= MAX_PAGE_HINTS {
            ends.clear();
        }
        ends.insert((org.clone(), id, offset), (members_seq, cursor));
    }
}
